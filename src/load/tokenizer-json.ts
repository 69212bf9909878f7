/**
 * The parts of tokenizer.json (the Hugging Face tokenizers format tokenizers.js reads) that the tokenizers made
 * in memory share — the slow-tokenizer conversions (tokenizer.ts), SentencePiece models (sentencepiece.ts) and
 * a GGUF file's vocabulary (gguf-tokenizer.ts) — so each field is spelled once, with the value transformers'
 * converters give it.
 */

export type JsonObject = Record<string, unknown>;
/** Token → id. */
export type Vocab = Record<string, number>;

export type TemplateItem =
  | { SpecialToken: { id: string; type_id: number } }
  | { Sequence: { id: 'A' | 'B'; type_id: number } };

export interface PostProcessorJson extends JsonObject {
  type: string;
  single?: TemplateItem[];
  pair?: TemplateItem[];
  processors?: PostProcessorJson[];
}

export interface TokenizerJson extends JsonObject {
  model: JsonObject;
  post_processor: PostProcessorJson | null;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

type AddedTokenFlags = Partial<Omit<AddedTokenJson, 'id' | 'content'>>;

/** An added_tokens entry: by default a special token matched whole, as the converters register them. */
export const addedToken = (id: number, content: string, flags: AddedTokenFlags = {}): AddedTokenJson => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
  ...flags,
});

export const specialToken = (id: string, typeId = 0): TemplateItem => ({ SpecialToken: { id, type_id: typeId } });
export const sequence = (id: 'A' | 'B', typeId = 0): TemplateItem => ({ Sequence: { id, type_id: typeId } });

/** A TemplateProcessing post-processor; `ids` gives the id of each special token the templates name. */
export function templateProcessing(
  single: TemplateItem[],
  pair: TemplateItem[],
  ids: Readonly<Record<string, number>>,
): PostProcessorJson {
  return {
    type: 'TemplateProcessing',
    single,
    pair,
    special_tokens: Object.fromEntries(Object.entries(ids).map(([s, id]) => [s, { id: s, ids: [id], tokens: [s] }])),
  };
}

/**
 * tokenizers' BPE model over `vocab` and `merges` ("a b" strings or [a, b] pairs): byte-level (GPT-2's: no
 * unknown token, every byte has a symbol) unless `sentencePiece` gives the unknown piece and byte fallback of a
 * SentencePiece BPE model (LlamaConverter's).
 */
export function bpeModel(
  vocab: Vocab,
  merges: readonly (string | [string, string])[],
  sentencePiece?: { unk: string; byteFallback: boolean },
): JsonObject {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: sentencePiece?.unk ?? null,
    continuing_subword_prefix: sentencePiece ? null : '',
    end_of_word_suffix: sentencePiece ? null : '',
    fuse_unk: sentencePiece !== undefined,
    byte_fallback: sentencePiece?.byteFallback ?? false,
    ignore_merges: false,
    vocab,
    merges,
  };
}

export interface ByteLevelBpeOptions {
  /** added_tokens (none by default). */
  added?: AddedTokenJson[];
  /**
   * Regexes that split the text, one after the other, before the byte-level step (a GGUF file's pre-tokenizer,
   * gguf-tokenizer.ts); none: the byte-level step splits with GPT-2's own regex.
   */
  splits?: readonly string[];
  /** A space put before the text (the tokenizer's add_prefix_space; false by default). */
  addPrefixSpace?: boolean;
  postProcessor?: PostProcessorJson | null;
}

/** The tokenizer.json of a byte-level BPE model (GPT-2's, RoBERTa's, Llama 3's …), as GPT2Converter writes it. */
export function byteLevelBpe(
  vocab: Vocab,
  merges: readonly (string | [string, string])[],
  options: ByteLevelBpeOptions = {},
): TokenizerJson {
  const { added = [], splits = [], addPrefixSpace = false, postProcessor = null } = options;
  const byteLevel = (useRegex: boolean) => ({
    type: 'ByteLevel',
    add_prefix_space: addPrefixSpace,
    trim_offsets: true,
    use_regex: useRegex,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer:
      splits.length === 0
        ? byteLevel(true)
        : {
            type: 'Sequence',
            pretokenizers: [
              ...splits.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
              byteLevel(false),
            ],
          },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(vocab, merges),
  };
}

/** GPT-2's post-processor: nothing added to the text. */
export const BYTE_LEVEL_POST: PostProcessorJson = {
  type: 'ByteLevel',
  add_prefix_space: true,
  trim_offsets: false,
  use_regex: true,
};

/** RoBERTa's post-processor: <s> A </s> and <s> A </s></s> B </s> (`sep`, `cls`: token and id). */
export const robertaProcessing = (
  sep: [string, number],
  cls: [string, number],
  addPrefixSpace: boolean,
): PostProcessorJson => ({ type: 'RobertaProcessing', sep, cls, trim_offsets: true, add_prefix_space: addPrefixSpace });
