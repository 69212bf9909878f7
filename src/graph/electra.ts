/**
 * ELECTRA (Clark et al. 2020), as in transformers' modeling_electra.py: BERT's post-norm encoder, name for
 * name, under the `electra.` prefix. Its embeddings may be narrower than the hidden size: word + position +
 * token type in `embedding_size` E, LayerNorm there, then `embeddings_project` (E → D) when E ≠ D. Loads
 * discriminators and generators alike (both are ElectraModel underneath); their heads
 * (`discriminator_predictions.*`, `generator_predictions.*`, `generator_lm_head.*`) are ignored.
 */
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import type { ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { BERT_DEFAULTS, bertEncoder, readBertConfig, type BertConfig } from './bert.js';
import { ID_BUFFERS, TASK_HEADS, INPUTS, type BuildOptions, type Family } from './family.js';

export interface ElectraConfig extends BertConfig {
  /** E, the width of the embeddings; projected to the hidden size when they differ. */
  embedding: number;
}

function readConfig(c: ModelConfig): ElectraConfig {
  // ElectraConfig's defaults (the small discriminator's sizes).
  const defaults = { ...BERT_DEFAULTS, hidden: 256, heads: 4, intermediate: 1024 };
  return { ...readBertConfig(c, defaults), embedding: c.size('embedding_size', 128) };
}

function build(g: GraphBuilder, w: Weights, c: ElectraConfig, options: BuildOptions): void {
  const p = w.has('electra.embeddings.word_embeddings.weight') ? 'electra.' : '';
  const D = c.hidden,
    E = c.embedding;
  // Embeddings in E: word + position + token type, LayerNorm, then E → D if they differ.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.input(INPUTS.positionIds, 'int64', ['T']);
  const types = g.input(INPUTS.tokenTypeIds, 'int64', ['T']);
  const embed = (name: string, rows: number, index: string) =>
    g.op('Gather', [g.weight(w.get(`${p}embeddings.${name}.weight`, [rows, E])), index]);
  let x = g.add(
    g.add(embed('word_embeddings', c.vocab, ids), embed('position_embeddings', c.maxPositions, positions)),
    embed('token_type_embeddings', c.typeVocab, types),
  );
  const { linear, layerNorm } = namedLayers(g, w, p, { hidden: D, eps: c.eps });
  x = layerNorm(x, 'embeddings.LayerNorm', E);
  if (E !== D) x = linear(x, 'embeddings_project', E, D);
  bertEncoder(g, w, p, c, x, options);
}

export const electra: Family<ElectraConfig> = {
  modelType: 'electra',
  causal: false,
  readConfig,
  build,
  skipped: [ID_BUFFERS, TASK_HEADS, /^discriminator_predictions\./, /^generator_(predictions|lm_head)\./],
};
