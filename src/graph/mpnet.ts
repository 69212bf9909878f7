/**
 * MPNet (Song et al. 2020), as in transformers' modeling_mpnet.py — the encoder of sentence-transformers'
 * all-mpnet-base-v2 and its kin. BERT's post-norm encoder with RoBERTa's positions (token i reads row
 * padding_idx + 1 + i), no token types, and a relative position bias: one table
 * `encoder.relative_attention_bias` `[buckets, H]`, looked up once per input with T5's bidirectional bucket
 * function (max distance 128) and added to every layer's scores: softmax(q·kᵀ/√d + bias[h, i, j]).
 *
 * What is reported: q and k as they enter q·kᵀ (unscaled projections), and the bias `[H, T, T]` as
 * Attention.positionBias (graph output `position_bias`), shared by all layers, so that
 * softmax(q·kᵀ/√d + position_bias) reproduces every attention.
 *
 * Names: `mpnet.` prefix (MPNetForMaskedLM and the task heads) or none (MPNetModel, sentence-transformers):
 * `embeddings.{word,position}_embeddings`, `embeddings.LayerNorm`, `encoder.layer.N.attention.attn.{q,k,v,o}`,
 * `encoder.layer.N.attention.LayerNorm`, `encoder.layer.N.intermediate.dense`, `encoder.layer.N.output.dense`,
 * `encoder.layer.N.output.LayerNorm`, `encoder.relative_attention_bias`; the pooler and heads are skipped.
 *
 * Config defaults are MPNetConfig's: vocab_size 30527, hidden_size 768, num_hidden_layers 12,
 * num_attention_heads 12, intermediate_size 3072, hidden_act gelu, max_position_embeddings 512,
 * layer_norm_eps 1e-12, relative_attention_num_buckets 32, pad_token_id 1.
 */
import { check } from '../core/errors.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import {
  declareLayerOutputs,
  headDim,
  HIDDEN_LAST,
  ID_BUFFERS,
  INPUTS,
  outputNames,
  POSITION_BIAS_OUTPUT,
  TASK_HEADS,
  type BuildOptions,
  type Family,
  type ModelDims,
} from './family.js';
import { relativePositionBias } from './t5.js';

/** modeling_mpnet.py's relative_position_bucket default. */
const MAX_DISTANCE = 128;

export interface MpnetConfig extends ModelDims {
  vocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
  buckets: number;
  /** Rows of the position table; token i reads row padIdx + 1 + i. */
  positionRows: number;
  padIdx: number;
}

function readConfig(c: ModelConfig): MpnetConfig {
  const hidden = c.size('hidden_size', 768);
  const heads = c.size('num_attention_heads', 12);
  const positionRows = c.size('max_position_embeddings', 512);
  const padIdx = c.float('pad_token_id', 1);
  check(
    Number.isSafeInteger(padIdx) && padIdx >= 0 && padIdx + 1 < positionRows,
    `${c.path}: pad_token_id ${padIdx} leaves no positions in a table of max_position_embeddings ${positionRows} rows`,
  );
  return {
    layers: c.size('num_hidden_layers', 12),
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    maxPositions: positionRows - padIdx - 1,
    vocab: c.size('vocab_size', 30527),
    intermediate: c.size('intermediate_size', 3072),
    eps: c.float('layer_norm_eps', 1e-12),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu'),
    buckets: c.size('relative_attention_num_buckets', 32),
    positionRows,
    padIdx,
  };
}

function build(g: GraphBuilder, w: Weights, c: MpnetConfig, options: BuildOptions): void {
  const p = w.has('mpnet.embeddings.word_embeddings.weight') ? 'mpnet.' : '';
  const D = c.hidden,
    H = c.heads,
    d = c.headDim;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  // Embeddings: word + position (row padding_idx + 1 + i), LayerNorm; no token types.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const rows = g.op('Add', [positions, g.ints([c.padIdx + 1])]);
  let x = layerNorm(
    g.add(
      g.op('Gather', [g.weight(get('embeddings.word_embeddings.weight', [c.vocab, D])), ids]),
      g.op('Gather', [g.weight(get('embeddings.position_embeddings.weight', [c.positionRows, D])), rows]),
    ),
    'embeddings.LayerNorm',
  );
  // The relative position bias [H, T, T], computed once and added in every layer.
  const table = get('encoder.relative_attention_bias.weight', [c.buckets, H]);
  const bias = relativePositionBias(g, table, positions, true, c.buckets, MAX_DISTANCE, POSITION_BIAS_OUTPUT);

  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.layer.${i}`;
    const out = outputNames(i);
    // Self-attention: softmax(q·kᵀ/√d + bias)·v, then LN(o(context) + x).
    const q = g.splitHeads(linear(x, `${l}.attention.attn.q`, D, D), H, d, out.q);
    const k = g.splitHeads(linear(x, `${l}.attention.attn.k`, D, D), H, d, out.k);
    const v = g.splitHeads(linear(x, `${l}.attention.attn.v`, D, D), H, d);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(d), out.probs, bias), H, d);
    x = layerNorm(g.add(linear(context, `${l}.attention.attn.o`, D, D), x), `${l}.attention.LayerNorm`);
    // Feed-forward, post-norm as BERT.
    const h = g.activation(linear(x, `${l}.intermediate.dense`, D, c.intermediate), c.act);
    x = layerNorm(g.add(linear(h, `${l}.output.dense`, c.intermediate, D), x), `${l}.output.LayerNorm`);
  }

  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  if (options.extract) g.output(bias, [H, 'T', 'T']);
  declareLayerOutputs(g, c, options);
}

export const mpnet: Family<MpnetConfig> = {
  modelType: 'mpnet',
  causal: false,
  readConfig,
  build,
  skipped: [ID_BUFFERS, TASK_HEADS, /^lm_head\./, /^(mpnet\.)?pooler\./],
};
