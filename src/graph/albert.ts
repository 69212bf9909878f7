/**
 * ALBERT (Lan et al. 2020), as in transformers' modeling_albert.py: a BERT-style post-norm encoder with two
 * savings. Embeddings are factorised — tokens embed into a small `embedding_size` E, LayerNorm there, and one
 * linear map (`encoder.embedding_hidden_mapping_in`) lifts them to the hidden size D. And layers share
 * weights: the num_hidden_layers layers are split into num_hidden_groups consecutive runs, and every layer
 * of run g applies the same `encoder.albert_layer_groups.g.albert_layers.0.*` (released ALBERTs have one
 * group: all layers are the same layer). The graph repeats that layer's computation per layer but holds
 * each of its weights once (GraphBuilder.weight reuses a name it has seen), and each layer's attention
 * differs because its input does.
 *
 * Reads checkpoints with or without the `albert.` prefix; the pooler, the masked-LM head (`predictions.*`)
 * and the sentence-order head (`sop_classifier.*`) are ignored. inner_group_num > 1 (several different
 * layers inside one group, none released) is rejected.
 */
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { check } from '../core/errors.js';
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

export interface AlbertConfig extends ModelDims {
  vocab: number;
  typeVocab: number;
  /** E, the width of the token embeddings before `embedding_hidden_mapping_in`. */
  embedding: number;
  /** Layers i share the weights of group floor(i / (layers / groups)). */
  groups: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
}

function readConfig(c: ModelConfig): AlbertConfig {
  // AlbertConfig's defaults are albert-xxlarge's sizes.
  const hidden = c.size('hidden_size', 4096);
  const heads = c.size('num_attention_heads', 64);
  const layers = c.size('num_hidden_layers', 12);
  const groups = c.size('num_hidden_groups', 1);
  check(groups <= layers, `${c.path}: num_hidden_groups ${groups} is more than num_hidden_layers ${layers}`);
  const inner = c.size('inner_group_num', 1);
  check(inner === 1, `${c.path}: inner_group_num ${inner} is not supported (only 1: one shared layer per group)`);
  oneOf(c, 'position_embedding_type', ['absolute'], 'absolute');
  return {
    layers,
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    maxPositions: c.size('max_position_embeddings', 512),
    vocab: c.size('vocab_size', 30000),
    typeVocab: c.size('type_vocab_size', 2),
    embedding: c.size('embedding_size', 128),
    groups,
    intermediate: c.size('intermediate_size', 16384),
    eps: c.float('layer_norm_eps', 1e-12),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu_new'),
  };
}

function build(g: GraphBuilder, w: Weights, c: AlbertConfig, options: BuildOptions): void {
  const p = w.has('albert.embeddings.word_embeddings.weight') ? 'albert.' : '';
  const D = c.hidden,
    E = c.embedding;
  const { get, linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });

  // Embeddings in E: word + position + token type, LayerNorm, then the one map E → D.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const types = g.input(INPUTS.tokenTypeIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) => g.op('Gather', [g.weight(get(name, [rows, E])), index]);
  let x = g.add(
    g.add(
      embed('embeddings.word_embeddings.weight', c.vocab, ids),
      embed('embeddings.position_embeddings.weight', c.maxPositions, positions),
    ),
    embed('embeddings.token_type_embeddings.weight', c.typeVocab, types),
  );
  x = linear(layerNorm(x, 'embeddings.LayerNorm', E), 'encoder.embedding_hidden_mapping_in', E, D);

  for (let i = 0; i < c.layers; i++) {
    // The shared layer of this layer's group (modeling_albert.py: int(i / (layers / groups))).
    const l = `encoder.albert_layer_groups.${Math.floor(i / (c.layers / c.groups))}.albert_layers.0`;
    const out = outputNames(i);
    // Self-attention: softmax(q·kᵀ/√d)·v per head, then dense and a post-norm residual.
    const q = g.splitHeads(linear(x, `${l}.attention.query`, D, D), c.heads, c.headDim, out.q);
    const k = g.splitHeads(linear(x, `${l}.attention.key`, D, D), c.heads, c.headDim, out.k);
    const v = g.splitHeads(linear(x, `${l}.attention.value`, D, D), c.heads, c.headDim);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(c.headDim), out.probs), c.heads, c.headDim);
    x = layerNorm(g.add(x, linear(context, `${l}.attention.dense`, D, D)), `${l}.attention.LayerNorm`, D);
    // Feed-forward: D → intermediate → D (`ffn`, `ffn_output`), post-norm residual.
    const h = g.activation(linear(x, `${l}.ffn`, D, c.intermediate), c.act);
    x = layerNorm(g.add(linear(h, `${l}.ffn_output`, c.intermediate, D), x), `${l}.full_layer_layer_norm`, D);
  }

  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const albert: Family<AlbertConfig> = {
  modelType: 'albert',
  causal: false,
  readConfig,
  build,
  // Masked-LM and sentence-order heads, pooler.
  skipped: [ID_BUFFERS, TASK_HEADS, /^predictions\./, /^sop_classifier\./, /^(albert\.)?pooler\./],
};
