/**
 * BERT (Devlin et al. 2019), as in transformers' modeling_bert.py: post-norm encoder, learned absolute
 * positions, token types for sentence pairs. Reads checkpoints with or without the `bert.` prefix and with
 * LayerNorm parameters named `weight`/`bias` or the legacy `gamma`/`beta`; heads (`cls.*`, `pooler.*`) are
 * not part of the encoder and are ignored.
 */
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
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

export interface BertConfig extends ModelDims {
  vocab: number;
  typeVocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
}

/**
 * Defaults of a config class for fields config.json leaves out (transformers fills them in from the class's
 * __init__ signature, so a missing field means that value, not an error).
 */
export interface BertDefaults {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  typeVocab: number;
  eps: number;
}

/**
 * BertConfig's defaults, which RobertaConfig, XLMRobertaConfig and CamembertConfig repeat (RoBERTa's vocabulary
 * aside). BERT itself takes only eps and typeVocab from here and still requires the sizes (its tests name them).
 */
export const BERT_DEFAULTS: BertDefaults = {
  vocab: 30522,
  hidden: 768,
  layers: 12,
  heads: 12,
  intermediate: 3072,
  maxPositions: 512,
  typeVocab: 2,
  eps: 1e-12,
};

/** BERT's config fields, also RoBERTa's, XLM-R's, CamemBERT's and ELECTRA's (which differ only in defaults). */
export function readBertConfig(
  c: ModelConfig,
  defaults: Partial<BertDefaults> & Pick<BertDefaults, 'eps' | 'typeVocab'>,
): BertConfig {
  const hidden = c.size('hidden_size', defaults.hidden);
  const heads = c.size('num_attention_heads', defaults.heads);
  oneOf(c, 'position_embedding_type', ['absolute'], 'absolute');
  return {
    layers: c.size('num_hidden_layers', defaults.layers),
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    maxPositions: c.size('max_position_embeddings', defaults.maxPositions),
    vocab: c.size('vocab_size', defaults.vocab),
    typeVocab: c.size('type_vocab_size', defaults.typeVocab),
    intermediate: c.size('intermediate_size', defaults.intermediate),
    eps: c.float('layer_norm_eps', defaults.eps),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu'),
  };
}

/** LayerNorm `weight`/`bias` in current saves, `gamma`/`beta` in the original TF-converted ones. */
function layerNorm(g: GraphBuilder, w: Weights, x: string, name: string, width: number, eps: number): string {
  return g.layerNorm(
    x,
    w.get([`${name}.weight`, `${name}.gamma`], [width]),
    w.get([`${name}.bias`, `${name}.beta`], [width]),
    eps,
  );
}

function build(g: GraphBuilder, w: Weights, c: BertConfig, options: BuildOptions): void {
  const p = w.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
  // Embeddings: word + position + token type, then LayerNorm.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const types = g.input(INPUTS.tokenTypeIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) =>
    g.op('Gather', [g.weight(w.get(`${p}embeddings.${name}.weight`, [rows, c.hidden])), index]);
  const x = g.add(
    g.add(embed('word_embeddings', c.vocab, ids), embed('position_embeddings', c.maxPositions, positions)),
    embed('token_type_embeddings', c.typeVocab, types),
  );
  bertEncoder(g, w, p, c, layerNorm(g, w, x, `${p}embeddings.LayerNorm`, c.hidden, c.eps), options);
}

/**
 * BERT's encoder after the embeddings `x` [T, D], name for name also RoBERTa's and ELECTRA's (their
 * modeling files copy it): post-norm self-attention and feed-forward layers. Emits the per-layer outputs
 * and `hidden_last`.
 */
export function bertEncoder(
  g: GraphBuilder,
  w: Weights,
  prefix: string,
  c: BertConfig,
  x: string,
  options: BuildOptions,
): void {
  const D = c.hidden;
  const { linear } = namedLayers(g, w, prefix, { hidden: D, eps: c.eps });
  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.layer.${i}`;
    const out = outputNames(i);
    // Self-attention: softmax(q·kᵀ/√d)·v per head; no mask, every token sees every token.
    const q = g.splitHeads(linear(x, `${l}.attention.self.query`, D, D), c.heads, c.headDim, out.q);
    const k = g.splitHeads(linear(x, `${l}.attention.self.key`, D, D), c.heads, c.headDim, out.k);
    const v = g.splitHeads(linear(x, `${l}.attention.self.value`, D, D), c.heads, c.headDim);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(c.headDim), out.probs), c.heads, c.headDim);
    x = layerNorm(
      g,
      w,
      g.add(linear(context, `${l}.attention.output.dense`, D, D), x),
      `${prefix}${l}.attention.output.LayerNorm`,
      D,
      c.eps,
    );
    // Feed-forward: D → intermediate → D, post-norm residual.
    const h = g.activation(linear(x, `${l}.intermediate.dense`, D, c.intermediate), c.act);
    x = layerNorm(
      g,
      w,
      g.add(linear(h, `${l}.output.dense`, c.intermediate, D), x),
      `${prefix}${l}.output.LayerNorm`,
      D,
      c.eps,
    );
  }
  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const bert: Family<BertConfig> = {
  modelType: 'bert',
  causal: false,
  readConfig: (c) => readBertConfig(c, BERT_DEFAULTS),
  build,
  skipped: [ID_BUFFERS, TASK_HEADS, /^cls\./, /^(bert\.)?pooler\./],
};
