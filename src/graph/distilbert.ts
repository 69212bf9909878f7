/**
 * DistilBERT (Sanh et al. 2019), as in transformers' modeling_distilbert.py: BERT's post-norm encoder with
 * half the layers, no token types (the graph declares no `token_type_ids`) and its own names —
 * `transformer.layer.N.attention.{q,k,v,out}_lin`, `sa_layer_norm`, `ffn.lin1/lin2`, `output_layer_norm`.
 * Every LayerNorm uses eps 1e-12 (hard-coded there, not in the config). Reads checkpoints with or without
 * the `distilbert.` prefix; the masked-LM head (`vocab_transform`, `vocab_layer_norm`, `vocab_projector`) and
 * classifier heads are ignored. Sinusoidal position tables (`sinusoidal_pos_embds`) are stored in the
 * checkpoint like learned ones and read the same way.
 */
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { oneOf, type ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import {
  ID_BUFFERS,
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

/** modeling_distilbert.py's FFN accepts these two. */
const DISTILBERT_ACTIVATIONS = ['gelu', 'relu'] as const;

export interface DistilbertConfig extends ModelDims {
  vocab: number;
  /** FFN width (`hidden_dim`). */
  ffn: number;
  act: (typeof DISTILBERT_ACTIVATIONS)[number];
}

/** modeling_distilbert.py: nn.LayerNorm(config.dim, eps=1e-12) everywhere. */
const EPS = 1e-12;

function readConfig(c: ModelConfig): DistilbertConfig {
  // DistilBertConfig's defaults.
  const hidden = c.size('dim', 768);
  const heads = c.size('n_heads', 12);
  return {
    layers: c.size('n_layers', 6),
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    maxPositions: c.size('max_position_embeddings', 512),
    vocab: c.size('vocab_size', 30522),
    ffn: c.size('hidden_dim', 3072),
    act: oneOf(c, 'activation', DISTILBERT_ACTIVATIONS, 'gelu'),
  };
}

function build(g: GraphBuilder, w: Weights, c: DistilbertConfig, options: BuildOptions): void {
  const p = w.has('distilbert.embeddings.word_embeddings.weight') ? 'distilbert.' : '';
  const D = c.hidden;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: EPS });

  // Embeddings: word + position, then LayerNorm (no token types).
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) => g.op('Gather', [g.weight(get(name, [rows, D])), index]);
  let x = g.add(
    embed('embeddings.word_embeddings.weight', c.vocab, ids),
    embed('embeddings.position_embeddings.weight', c.maxPositions, positions),
  );
  x = layerNorm(x, 'embeddings.LayerNorm');

  for (let i = 0; i < c.layers; i++) {
    const l = `transformer.layer.${i}`;
    const out = outputNames(i);
    // Self-attention. modeling_distilbert.py divides q by √d *before* q·kᵀ; the reported q is the projection
    // itself (unscaled), like every other family here, and the 1/√d is applied to the scores instead:
    // (q/√d)·kᵀ = (q·kᵀ)/√d, so the attention is the same up to float rounding.
    const q = g.splitHeads(linear(x, `${l}.attention.q_lin`, D, D), c.heads, c.headDim, out.q);
    const k = g.splitHeads(linear(x, `${l}.attention.k_lin`, D, D), c.heads, c.headDim, out.k);
    const v = g.splitHeads(linear(x, `${l}.attention.v_lin`, D, D), c.heads, c.headDim);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(c.headDim), out.probs), c.heads, c.headDim);
    x = layerNorm(g.add(linear(context, `${l}.attention.out_lin`, D, D), x), `${l}.sa_layer_norm`);
    // Feed-forward: D → hidden_dim → D, post-norm residual.
    const h = g.activation(linear(x, `${l}.ffn.lin1`, D, c.ffn), c.act);
    x = layerNorm(g.add(linear(h, `${l}.ffn.lin2`, c.ffn, D), x), `${l}.output_layer_norm`);
  }

  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const distilbert: Family<DistilbertConfig> = {
  modelType: 'distilbert',
  causal: false,
  readConfig,
  build,
  // The masked-LM head.
  skipped: [ID_BUFFERS, TASK_HEADS, /^vocab_(transform|layer_norm|projector)\./],
};
