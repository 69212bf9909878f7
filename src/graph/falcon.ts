/**
 * Falcon (Almazrouei et al. 2023), as in transformers' modeling_falcon.py: a pre-norm causal decoder with
 * rotary embeddings (rotate_half, whole head) and a fused `self_attention.query_key_value` whose layout depends
 * on the variant:
 * - new_decoder_architecture (Falcon-40B/180B, Falcon 2): `num_kv_heads` groups, each [n query heads, 1 key,
 *   1 value] with n = heads / num_kv_heads (query head h reads group ⌊h / n⌋);
 * - multi_query (Falcon-7B): [all query heads, 1 key, 1 value] — the 'blocks' layout [H queries, K keys, K values]
 *   with K = 1, which is also how llama.cpp's converter stores every variant (load/gguf-checkpoint.ts);
 * - otherwise: per head [q, k, v] (as GPT-NeoX).
 * Blocks are parallel — x + attn(ln(x)) + mlp(ln(x)), with one norm (`input_layernorm`) or, in the new
 * architecture, two (`ln_attn`, `ln_mlp`; num_ln_in_parallel_attn) — or sequential with
 * `post_attention_layernorm` when parallel_attn is false. MLP: dense_4h_to_h(gelu(dense_h_to_4h(x))).
 *
 * What is reported: q and k after RoPE, kv heads repeated per query head (Attention.kvHeads), as they enter
 * softmax(q·kᵀ/√d + mask). Generates with a KV cache (decoder.ts). ALiBi variants (alibi: true, Falcon-RW) are
 * refused by name.
 *
 * Names: `transformer.` prefix or none: `word_embeddings`, `h.N.{input_layernorm | ln_attn, ln_mlp,
 * post_attention_layernorm, self_attention.query_key_value, self_attention.dense, mlp.dense_h_to_4h,
 * mlp.dense_4h_to_h}`, `ln_f`; lm_head tied by default. Config defaults are FalconConfig's: vocab_size 65024,
 * hidden_size 4544, num_hidden_layers 32, num_attention_heads 71, num_kv_heads = heads, layer_norm_epsilon
 * 1e-5, new_decoder_architecture false, multi_query true, parallel_attn true, bias false,
 * max_position_embeddings 2048, rope_theta 10000, ffn_hidden_size 4·hidden, activation gelu.
 */
import { AttnvizError, check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import type { DecodingBuildOptions } from './decoding.js';
import {
  checkKvHeads,
  decoderInputs,
  decoderOutputs,
  DECODER_SKIPPED,
  ropeSettings,
  selfAttention,
  tokenEmbedding,
  type DecoderDims,
} from './decoder.js';
import { headDim, HIDDEN_LAST, type Family } from './family.js';
import { ropeInvFreq, rotary } from './rotary.js';

export interface FalconConfig extends DecoderDims {
  vocab: number;
  ffn: number;
  eps: number;
  act: ActivationName;
  layout: 'grouped' | 'blocks' | 'per-head';
  parallel: boolean;
  /** Norms before the parallel branches: 1 (input_layernorm) or 2 (ln_attn, ln_mlp). */
  parallelNorms: 1 | 2;
  bias: boolean;
  invFreq: Float32Array;
  tied: boolean;
}

function readConfig(c: ModelConfig): FalconConfig {
  const hidden = c.size(['n_embed', 'hidden_size'], 4544);
  const heads = c.size(['num_attention_heads', 'n_head'], 71);
  const d = headDim(c, hidden, heads);
  if (c.bool('alibi', false))
    throw new AttnvizError(`${c.path}: alibi is true; Falcon with ALiBi instead of rotary embeddings is not supported`);
  const newArch = c.bool('new_decoder_architecture', false);
  const multiQuery = c.bool('multi_query', true);
  const kvHeads = newArch ? c.size(['num_kv_heads', 'n_head_kv'], heads) : multiQuery ? 1 : heads;
  checkKvHeads(c, heads, kvHeads);
  // The new architecture is always parallel (its MLP reads ln_mlp(x) or the attention's norm, never x + attn).
  const parallel = newArch || c.bool('parallel_attn', true);
  const norms = c.raw.num_ln_in_parallel_attn ?? (newArch ? 2 : 1);
  check(norms === 1 || norms === 2, `${c.path}: num_ln_in_parallel_attn ${JSON.stringify(norms)} must be 1 or 2`);
  const { theta, scaling } = ropeSettings(c, 10000);
  return {
    layers: c.size(['num_hidden_layers', 'n_layer'], 32),
    heads,
    headDim: d,
    hidden,
    maxPositions: c.size('max_position_embeddings', 2048),
    kvHeads,
    rope: 'half',
    vocab: c.size('vocab_size', 65024),
    ffn: c.size('ffn_hidden_size', 4 * hidden),
    eps: c.float('layer_norm_epsilon', 1e-5),
    act: oneOf(c, 'activation', ACTIVATIONS, 'gelu'),
    layout: newArch ? 'grouped' : multiQuery ? 'blocks' : 'per-head',
    parallel,
    parallelNorms: newArch ? (norms as 1 | 2) : 1,
    bias: c.bool('bias', false),
    invFreq: ropeInvFreq(d, theta, scaling),
    tied: c.bool('tie_word_embeddings', true),
  };
}

function build(g: GraphBuilder, w: Weights, c: FalconConfig, options: DecodingBuildOptions): void {
  const p = w.has('transformer.word_embeddings.weight') ? 'transformer.' : '';
  const D = c.hidden,
    H = c.heads,
    K = c.kvHeads,
    d = c.headDim;
  const { linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  /** Entries [from, to) of `axis`. */
  const slice = (x: string, from: number, to: number, axis: number) =>
    g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([axis])]);

  /**
   * The fused projection `[T, (H + 2K)·d]` → per-head q `[H, T, d]`, k and v `[K, T, d]`, as the variant lays it
   * out.
   */
  const split = (qkv: string) => {
    if (c.layout === 'per-head') {
      const perHead = g.op('Transpose', [g.op('Reshape', [qkv, g.ints([0, H, 3 * d])])], { perm: [1, 0, 2] });
      const [q, k, v] = g.opN('Split', [perHead], 3, { axis: 2 });
      return { q, k, v };
    }
    if (c.layout === 'blocks')
      return {
        q: g.splitHeads(slice(qkv, 0, H * d, 1), H, d),
        k: g.splitHeads(slice(qkv, H * d, (H + K) * d, 1), K, d),
        v: g.splitHeads(slice(qkv, (H + K) * d, (H + 2 * K) * d, 1), K, d),
      };
    const n = H / K;
    const groups = g.op('Reshape', [qkv, g.ints([0, K, n + 2, d])]); // [T, K, n + 2, d]
    const flat = (x: string, heads: number) => g.splitHeads(g.op('Reshape', [x, g.ints([0, heads * d])]), heads, d);
    return {
      q: flat(slice(groups, 0, n, 2), H),
      k: flat(slice(groups, n, n + 1, 2), K),
      v: flat(slice(groups, n + 1, n + 2, 2), K),
    };
  };

  const { ids, positions, mask } = decoderInputs(g, options);
  const rotate = rotary(g, { positions, invFreq: c.invFreq, headDim: d, layout: c.rope });
  const embedding = tokenEmbedding(w, `${p}word_embeddings.weight`, c);
  let x = g.embedding(embedding, ids);

  for (let i = 0; i < c.layers; i++) {
    const l = `h.${i}`;
    const attnIn = layerNorm(x, c.parallelNorms === 2 ? `${l}.ln_attn` : `${l}.input_layernorm`);
    const qkv = linear(attnIn, `${l}.self_attention.query_key_value`, D, (H + 2 * K) * d, c.bias);
    const context = selfAttention(g, c, i, split(qkv), rotate, options, { scale: 1 / Math.sqrt(d), mask });
    const attn = linear(context, `${l}.self_attention.dense`, D, D, c.bias);
    const mlp = (h: string) =>
      linear(
        g.activation(linear(h, `${l}.mlp.dense_h_to_4h`, D, c.ffn, c.bias), c.act),
        `${l}.mlp.dense_4h_to_h`,
        c.ffn,
        D,
        c.bias,
      );
    if (c.parallel) {
      // x + attn(ln(x)) + mlp(ln(x)) (Falcon-40B: the MLP's own norm ln_mlp).
      const mlpIn = c.parallelNorms === 2 ? layerNorm(x, `${l}.ln_mlp`) : attnIn;
      x = g.add(g.add(mlp(mlpIn), attn), x);
    } else {
      const a = g.add(attn, x);
      x = g.add(mlp(layerNorm(a, `${l}.post_attention_layernorm`)), a);
    }
  }

  decoderOutputs(g, w, layerNorm(x, 'ln_f', D, HIDDEN_LAST), embedding, c, options);
}

export const falcon: Family<FalconConfig> = {
  modelType: 'falcon',
  causal: true,
  lmHead: true,
  readConfig,
  build,
  skipped: DECODER_SKIPPED,
};
