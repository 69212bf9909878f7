/**
 * RoBERTa (Liu et al. 2019), as in transformers' modeling_roberta.py, and the two families that are the same
 * model under other names: XLM-RoBERTa (Conneau et al. 2020; modeling_xlm_roberta.py) and CamemBERT (Martin et
 * al. 2020; modeling_camembert.py). BERT's post-norm encoder unchanged, with two differences in the
 * embeddings. Positions are counted from padding_idx + 1 (row 0 … padding_idx of the position table are never
 * used, so roberta-base's 514 rows give 512 usable positions), and every token has type 0 (released
 * checkpoints have type_vocab_size 1). Sentence pairs are `<s> A </s></s> B </s>`, which the tokenizer's
 * RobertaProcessing produces. All three save the encoder under `roberta.` (their base_model_prefix) or with no
 * prefix; the masked-LM head (`lm_head.*`), the pooler and classifier heads are not part of the encoder.
 *
 * Config defaults are each config class's own (RobertaConfig, XLMRobertaConfig, CamembertConfig: BertConfig's
 * values, layer_norm_eps 1e-12 and type_vocab_size 2 included, pad_token_id 1; vocab_size 50265 for RoBERTa,
 * 30522 for the other two), as transformers fills in fields config.json leaves out.
 */
import type { GraphBuilder } from './builder.js';
import { namedLayers } from './layers.js';
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { Weights } from '../load/weights.js';
import { BERT_DEFAULTS, bertEncoder, readBertConfig, type BertConfig, type BertDefaults } from './bert.js';
import { ID_BUFFERS, TASK_HEADS, INPUTS, type BuildOptions, type Family } from './family.js';

export interface RobertaConfig extends BertConfig {
  /** Rows of the position table (max_position_embeddings); maxPositions = rows - padding_idx - 1. */
  positionRows: number;
  /** Position of token i is padIdx + 1 + i. */
  padIdx: number;
}

function readConfig(c: ModelConfig, defaults: BertDefaults): RobertaConfig {
  const bert = readBertConfig(c, defaults);
  const positionRows = bert.maxPositions;
  const padIdx = c.float('pad_token_id', 1);
  check(
    Number.isSafeInteger(padIdx) && padIdx >= 0 && padIdx + 1 < positionRows,
    `${c.path}: pad_token_id ${padIdx} leaves no positions in a table of max_position_embeddings ${positionRows} rows`,
  );
  return { ...bert, maxPositions: positionRows - padIdx - 1, positionRows, padIdx };
}

function build(g: GraphBuilder, w: Weights, c: RobertaConfig, options: BuildOptions): void {
  const p = w.has('roberta.embeddings.word_embeddings.weight') ? 'roberta.' : '';
  const D = c.hidden;
  // Embeddings: word + position + token type, then LayerNorm. The engine feeds positions 0..T-1; RoBERTa
  // reserves rows 0..padding_idx for padding, so token i reads row padding_idx + 1 + i. (transformers
  // derives positions from input_ids by a cumulative count of non-pad tokens; for a text without <pad>
  // tokens, the only kind the tokenizer makes here, that is the same offset.) Every token is type 0.
  const ids = g.input(INPUTS.inputIds, 'int64', ['T']);
  const positions = g.op('Add', [g.input(INPUTS.positionIds, 'int64', ['T']), g.ints([c.padIdx + 1])]);
  const table = (name: string, rows: number) => g.weight(w.get(`${p}embeddings.${name}.weight`, [rows, D]));
  const typeRow = g.op('Gather', [table('token_type_embeddings', c.typeVocab), g.ints([0])]); // [1, D]
  const x = g.add(
    g.add(
      g.op('Gather', [table('word_embeddings', c.vocab), ids]),
      g.op('Gather', [table('position_embeddings', c.positionRows), positions]),
    ),
    typeRow,
  );
  const norm = namedLayers(g, w, p, { hidden: D, eps: c.eps }).layerNorm(x, 'embeddings.LayerNorm');
  // The encoder is BERT's, name for name (modeling_roberta.py copies it from modeling_bert.py).
  bertEncoder(g, w, p, c, norm, options);
}

const family = (modelType: string, defaults: BertDefaults): Family<RobertaConfig> => ({
  modelType,
  causal: false,
  readConfig: (c) => readConfig(c, defaults),
  build,
  skipped: [ID_BUFFERS, TASK_HEADS, /^lm_head\./, /^(roberta\.)?pooler\./],
});

export const roberta = family('roberta', { ...BERT_DEFAULTS, vocab: 50265 });
export const xlmRoberta = family('xlm-roberta', BERT_DEFAULTS);
export const camembert = family('camembert', BERT_DEFAULTS);
