/**
 * GPT-J (Wang & Komatsuzaki 2021), as in transformers' modeling_gptj.py: a pre-norm causal decoder with a
 * parallel residual, x + attn(ln_1(x)) + mlp(ln_1(x)) (one norm for both branches), separate q/k/v
 * projections without biases, and rotary embeddings on the first `rotary_dim` dimensions of each head in the
 * *interleaved* layout (rotate_every_two: dims 2j and 2j + 1 rotate together, θ_j = 10000^(−2j/rotary_dim)),
 * the rest passing through. MLP: fc_out(gelu_new(fc_in(x))).
 *
 * What is reported: q and k after the rotation, as they enter softmax(q·kᵀ/√d + mask); Attention.rotary is
 * 'interleaved' (the order of the rotated pairs).
 *
 * Names: `transformer.` prefix (GPTJForCausalLM) or none: `wte`, `h.N.{ln_1, attn.{q,k,v,out}_proj,
 * mlp.fc_in, mlp.fc_out}`, `ln_f`; lm_head (untied, with a bias) and the mask buffers `attn.bias`,
 * `attn.masked_bias` are skipped. Config defaults are GPTJConfig's: vocab_size 50400, n_positions 2048,
 * n_embd 4096, n_layer 28, n_head 16, rotary_dim 64, n_inner 4·n_embd, activation_function gelu_new,
 * layer_norm_epsilon 1e-5.
 */
import { check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import {
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  INPUTS,
  outputNames,
  TASK_HEADS,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface GptjConfig extends ModelDims {
  vocab: number;
  inner: number;
  eps: number;
  act: ActivationName;
  /** Rotated dimensions per head (rotary_dim; the whole head when null in the config). */
  rotaryDims: number;
  rope: 'interleaved';
}

function readConfig(c: ModelConfig): GptjConfig {
  const hidden = c.size(['n_embd', 'hidden_size'], 4096);
  const heads = c.size(['n_head', 'num_attention_heads'], 16);
  const d = headDim(c, hidden, heads);
  const rotaryDims = c.raw.rotary_dim === null ? d : c.size('rotary_dim', 64);
  check(
    rotaryDims % 2 === 0 && rotaryDims <= d,
    `${c.path}: rotary_dim ${rotaryDims} must be even and at most the head size ${d}`,
  );
  return {
    layers: c.size(['n_layer', 'num_hidden_layers'], 28),
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size(['n_positions', 'max_position_embeddings'], 2048),
    vocab: c.size('vocab_size', 50400),
    inner: c.raw.n_inner === null || c.raw.n_inner === undefined ? 4 * hidden : c.size('n_inner'),
    eps: c.float('layer_norm_epsilon', 1e-5),
    act: oneOf(c, 'activation_function', ACTIVATIONS, 'gelu_new'),
    rotaryDims,
    rope: 'interleaved',
  };
}

function build(g: GraphBuilder, w: Weights, c: GptjConfig, options: BuildOptions): void {
  const p = w.has('transformer.wte.weight') ? 'transformer.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim,
    r = c.rotaryDims;
  const get = (name: string, shape: number[]) => w.get(p + name, shape);
  const linear = (x: string, name: string, nIn: number, nOut: number, bias: boolean) =>
    g.linear(x, get(`${name}.weight`, [nOut, nIn]), bias ? get(`${name}.bias`, [nOut]) : undefined);
  const layerNorm = (x: string, name: string, out?: string) =>
    g.layerNorm(x, get(`${name}.weight`, [D]), get(`${name}.bias`, [D]), c.eps, out);

  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const mask = g.input(INPUTS.causalMask, 'float', ['T', 'T']);
  // rotate_every_two on the first r dimensions: the interleaved RoPE of decoder.ts over a slice of the head.
  const rotatePairs = rotary(g, { positions, invFreq: ropeInvFreq(r, 10000, null), headDim: r, layout: 'interleaved' });
  const rotate = (x: string, out: string) => {
    if (r === d) return rotatePairs(x, out);
    const slice = (from: number, to: number) => g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([2])]);
    return g.op('Concat', [rotatePairs(slice(0, r)), slice(r, d)], { axis: 2 }, out);
  };

  let x = g.embedding(get('wte.weight', [c.vocab, D]), ids);
  for (let i = 0; i < c.layers; i++) {
    const l = `h.${i}`;
    const out = outputNames(i);
    const h = layerNorm(x, `${l}.ln_1`);
    const q = rotate(g.splitHeads(linear(h, `${l}.attn.q_proj`, D, D, false), H, d), out.q);
    const k = rotate(g.splitHeads(linear(h, `${l}.attn.k_proj`, D, D, false), H, d), out.k);
    const v = g.splitHeads(linear(h, `${l}.attn.v_proj`, D, D, false), H, d);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(d), out.probs, mask), H, d);
    const attn = linear(context, `${l}.attn.out_proj`, D, D, false);
    // Parallel residual: both branches read ln_1(x).
    const mlp = linear(
      g.activation(linear(h, `${l}.mlp.fc_in`, D, c.inner, true), c.act),
      `${l}.mlp.fc_out`,
      c.inner,
      D,
      true,
    );
    x = g.add(g.add(attn, mlp), x);
  }

  g.output(layerNorm(x, 'ln_f', HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const gptj: Family<GptjConfig> = {
  modelType: 'gptj',
  causal: true,
  readConfig,
  build,
  skipped: [TASK_HEADS, /^lm_head\./, /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/],
};
