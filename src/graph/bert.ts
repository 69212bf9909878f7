/**
 * BERT (Devlin et al. 2019), as in transformers' modeling_bert.py: post-norm encoder, learned absolute
 * positions, token types for sentence pairs. Reads checkpoints with or without the `bert.` prefix and with
 * LayerNorm parameters named `weight`/`bias` or the legacy `gamma`/`beta`; heads (`cls.*`, `pooler.*`) are
 * not part of the encoder and are ignored.
 */
import { ACTIVATIONS, type ActivationName, type GraphBuilder } from './builder.js';
import { oneOf, type ModelConfig } from '../models/config.js';
import type { Weights } from '../models/weights.js';
import { declareLayerOutputs, headDim, HIDDEN_LAST, INPUTS, outputNames, type BuildOptions, type Family, type ModelDims } from './family.js';

export interface BertConfig extends ModelDims {
  vocab: number;
  typeVocab: number;
  intermediate: number;
  eps: number;
  act: ActivationName;
}

function readConfig(c: ModelConfig): BertConfig {
  const hidden = c.size('hidden_size');
  const heads = c.size('num_attention_heads');
  return {
    layers: c.size('num_hidden_layers'),
    heads,
    headDim: headDim(c, hidden, heads),
    hidden,
    maxPositions: c.size('max_position_embeddings'),
    vocab: c.size('vocab_size'),
    typeVocab: c.size('type_vocab_size', 2),
    intermediate: c.size('intermediate_size'),
    eps: c.float('layer_norm_eps', 1e-12),
    act: oneOf(c, 'hidden_act', ACTIVATIONS, 'gelu'),
  };
}

function build(g: GraphBuilder, w: Weights, c: BertConfig, options: BuildOptions): void {
  const p = w.has('bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
  const D = c.hidden;
  const get = (name: string, shape: number[]) => w.get(p + name, shape);
  // LayerNorm `weight`/`bias` in current saves, `gamma`/`beta` in the original TF-converted ones.
  const layerNorm = (x: string, name: string) => g.layerNorm(x,
    w.get([`${p}${name}.weight`, `${p}${name}.gamma`], [D]), w.get([`${p}${name}.bias`, `${p}${name}.beta`], [D]), c.eps);

  // Embeddings: word + position + token type, then LayerNorm.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const types = g.input(INPUTS.tokenTypeIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) => g.op('Gather', [g.weight(get(name, [rows, D])), index]);
  let x = g.add(g.add(embed('embeddings.word_embeddings.weight', c.vocab, ids),
    embed('embeddings.position_embeddings.weight', c.maxPositions, positions)),
    embed('embeddings.token_type_embeddings.weight', c.typeVocab, types));
  x = layerNorm(x, 'embeddings.LayerNorm');

  for (let i = 0; i < c.layers; i++) {
    const l = `encoder.layer.${i}`;
    const out = outputNames(i);
    const project = (name: string) => g.linear(x, get(`${l}.attention.self.${name}.weight`, [D, D]), get(`${l}.attention.self.${name}.bias`, [D]));
    // Self-attention: softmax(q·kᵀ/√d)·v per head; no mask, every token sees every token.
    const q = g.splitHeads(project('query'), c.heads, c.headDim, out.q);
    const k = g.splitHeads(project('key'), c.heads, c.headDim, out.k);
    const v = g.splitHeads(project('value'), c.heads, c.headDim);
    const context = g.mergeHeads(g.attention(q, k, v, 1 / Math.sqrt(c.headDim), out.probs), c.heads, c.headDim);
    const attnOut = g.linear(context, get(`${l}.attention.output.dense.weight`, [D, D]), get(`${l}.attention.output.dense.bias`, [D]));
    x = layerNorm(g.add(attnOut, x), `${l}.attention.output.LayerNorm`);
    // Feed-forward: D → intermediate → D, post-norm residual.
    const h = g.activation(g.linear(x, get(`${l}.intermediate.dense.weight`, [c.intermediate, D]), get(`${l}.intermediate.dense.bias`, [c.intermediate])), c.act);
    const ffOut = g.linear(h, get(`${l}.output.dense.weight`, [D, c.intermediate]), get(`${l}.output.dense.bias`, [D]));
    x = layerNorm(g.add(ffOut, x), `${l}.output.LayerNorm`);
  }

  g.output(g.op('Identity', [x], {}, HIDDEN_LAST), ['T', D]);
  declareLayerOutputs(g, c, options);
}

export const bert: Family<BertConfig> = { modelType: 'bert', causal: false, readConfig, build };
