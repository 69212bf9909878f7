/**
 * GPT-2 (Radford et al. 2019), as in transformers' modeling_gpt2.py and nanoGPT's model.py: pre-norm decoder,
 * learned absolute positions, causal self-attention, final LayerNorm. Weights are Conv1D `[in, out]`
 * (x·W + b) and `c_attn` packs [q | k | v] along its output axis. Reads checkpoints with or without the
 * `transformer.` prefix; `h.N.attn.bias` / `h.N.attn.masked_bias` are causal-mask buffers, not parameters,
 * and are never read (the mask is an input); `lm_head` is tied to `wte` and not needed for attention.
 */
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import {
  TASK_HEADS,
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  INPUTS,
  outputNames,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';

export interface Gpt2Config extends ModelDims {
  vocab: number;
  inner: number;
  eps: number;
  act: ActivationName;
  /** GPT-2 option: divide scores by (layer + 1) as well as √d. */
  scaleByInverseLayer: boolean;
}

/** GPT2Config's defaults (GPT-2 small). */
const DEFAULTS = { hidden: 768, heads: 12, layers: 12, positions: 1024, vocab: 50257 };

function readConfig(c: ModelConfig): Gpt2Config {
  const hidden = c.size(['n_embd', 'hidden_size'], DEFAULTS.hidden);
  const heads = c.size(['n_head', 'num_attention_heads'], DEFAULTS.heads);
  const d = headDim(c, hidden, heads);
  return {
    layers: c.size(['n_layer', 'num_hidden_layers'], DEFAULTS.layers),
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size(['n_positions', 'max_position_embeddings'], DEFAULTS.positions),
    vocab: c.size('vocab_size', DEFAULTS.vocab),
    // scale_attn_weights false: q·kᵀ unscaled.
    ...(c.bool('scale_attn_weights', true) ? {} : { scoreScale: 1 }),
    inner: c.size('n_inner', 4 * hidden),
    eps: c.float('layer_norm_epsilon', 1e-5),
    act: oneOf(c, 'activation_function', ACTIVATIONS, 'gelu_new'),
    scaleByInverseLayer: c.bool('scale_attn_by_inverse_layer_idx', false),
  };
}

function build(g: GraphBuilder, w: Weights, c: Gpt2Config, options: BuildOptions): void {
  const p = w.has('transformer.wte.weight') ? 'transformer.' : '';
  const D = c.hidden;
  const { get, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  const conv1d = (x: string, name: string, nIn: number, nOut: number) =>
    g.conv1d(x, get(`${name}.weight`, [nIn, nOut]), get(`${name}.bias`, [nOut]));

  // Token + position embeddings.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const mask = g.input(INPUTS.causalMask, 'float', ['T', 'T']);
  let x = g.add(
    g.op('Gather', [g.weight(get('wte.weight', [c.vocab, D])), ids]),
    g.op('Gather', [g.weight(get('wpe.weight', [c.maxPositions, D])), positions]),
  );

  for (let i = 0; i < c.layers; i++) {
    const l = `h.${i}`;
    const out = outputNames(i);
    // Causal self-attention on the pre-normed input; q, k, v come out of one projection.
    const [qAll, kAll, vAll] = g.opN('Split', [conv1d(layerNorm(x, `${l}.ln_1`), `${l}.attn.c_attn`, D, 3 * D)], 3, {
      axis: 1,
    });
    const q = g.splitHeads(qAll, c.heads, c.headDim, out.q);
    const k = g.splitHeads(kAll, c.heads, c.headDim, out.k);
    const v = g.splitHeads(vAll, c.heads, c.headDim);
    const scale = (c.scoreScale ?? 1 / Math.sqrt(c.headDim)) / (c.scaleByInverseLayer ? i + 1 : 1);
    const context = g.mergeHeads(g.attention(q, k, v, scale, out.probs, mask), c.heads, c.headDim);
    x = g.add(x, conv1d(context, `${l}.attn.c_proj`, D, D));
    // MLP on the pre-normed input: D → inner → D.
    const h = g.activation(conv1d(layerNorm(x, `${l}.ln_2`), `${l}.mlp.c_fc`, D, c.inner), c.act);
    x = g.add(x, conv1d(h, `${l}.mlp.c_proj`, c.inner, D));
  }

  g.output(layerNorm(x, 'ln_f', D, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const gpt2: Family<Gpt2Config> = {
  modelType: 'gpt2',
  causal: true,
  readConfig,
  build,
  // Causal-mask buffers and the head tied to wte.
  skipped: [TASK_HEADS, /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/, /^lm_head\.weight$/],
};
