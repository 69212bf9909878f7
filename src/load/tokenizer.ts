/**
 * Text → token ids for a model folder in Hugging Face layout, on tokenizers.js (@huggingface/tokenizers).
 * A tokenizer.json is used as it is. Older folders that only carry the "slow" tokenizer files (BERT's
 * vocab.txt, GPT-2's, RoBERTa's and BART's vocab.json + merges.txt) get, in memory, the tokenizer.json that
 * transformers' convert_slow_tokenizer would write for them, so both kinds of folder tokenize identically.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { AttnvizError, check, shorten } from '../core/errors.js';
import {
  addedToken,
  BYTE_LEVEL_POST,
  byteLevelBpe,
  robertaProcessing,
  sequence,
  specialToken,
  templateProcessing,
  type AddedTokenJson,
  type JsonObject,
  type PostProcessorJson,
  type TokenizerJson,
  type Vocab,
} from './tokenizer-json.js';

export interface Encoded {
  /** Token ids, including special tokens. */
  ids: number[];
  /** Token strings exactly as the tokenizer produced them (e.g. 'Ġthe', '##ing', '▁the', '<0x0A>'). */
  tokens: string[];
  /** token_type_ids; all 0 when the model has no segments. */
  typeIds: number[];
  /** Index of the first token of the second text; null without a pair. */
  sentenceBStart: number | null;
  /** Per token: a special token ([CLS], </s>, BOS, ...), as transformers' special-tokens mask. */
  special: boolean[];
}

export interface TextTokenizer {
  encode(text: string, pair?: string | null): Encoded;
  decode(ids: number[]): string;
  /** The vocabulary string of one id (as in Encoded.tokens), e.g. for generated tokens. */
  idToToken(id: number): string;
  /** An encoder-decoder's target text, when the tokenizer encodes it differently (Marian's target.spm). */
  encodeTarget?(text: string): Encoded;
}

/**
 * The part of tokenizers.js' Tokenizer used here. Its .d.ts files import each other without file
 * extensions, which NodeNext resolution refuses, so the package's own types arrive as `any`.
 */
interface HfTokenizer {
  encode(
    text: string,
    options?: { text_pair?: string | null; add_special_tokens?: boolean; return_token_type_ids?: boolean },
  ): { ids: number[]; tokens: string[]; token_type_ids?: number[] };
  decode(ids: number[]): string;
  id_to_token(id: number): string | undefined;
  get_added_tokens_decoder(): Map<number, { id: number; special: boolean }>;
  /** A BPE model's merges as pairs (only read while it is built). */
  model: { merges?: unknown };
}

export async function loadTokenizer(dir: string, modelType: string): Promise<TextTokenizer> {
  const config = await readTokenizerConfig(dir);
  const jsonPath = join(dir, 'tokenizer.json');
  if (modelType === 'marian' && !existsSync(jsonPath)) return marianTokenizer(dir, config);
  // tokenizers.js reads BPE merges in both layouts ("Ġ t" strings and newer ["Ġ", "t"] pairs), so
  // tokenizer.json needs no rewriting (the tests load both forms).
  const tokenizerJson = existsSync(jsonPath)
    ? withDefaults(await readJson(jsonPath), jsonPath)
    : await convertSlowTokenizer(dir, modelType, config);
  return tokenizerFromJson(tokenizerJson, config, dir);
}

/** A tokenizer from a tokenizer.json object made in memory (a GGUF file's BPE vocabulary, gguf-tokenizer.ts). */
export function tokenizerFromJson(json: TokenizerJson, config: JsonObject, what: string): TextTokenizer {
  return wrap(hfTokenizer(json, config, what), pairLayout(json.post_processor));
}

/**
 * tokenizers.js keeps the tokenizer.json it was built from — vocabulary and merges, ~100,000 small objects for
 * GPT-2's — after making its own maps of them, and never reads them again; every full garbage collection walks
 * them, and each fresh attention() result brings one about (external memory). So they are dropped once built:
 * GPT-2's tokenizer went from 35 to 17 ms per collection (22.8 → 12.5 MB of heap).
 */
function hfTokenizer(json: TokenizerJson, config: JsonObject, what: string): HfTokenizer {
  let tokenizer: HfTokenizer;
  try {
    tokenizer = new Tokenizer(json, config) as HfTokenizer;
  } catch (e) {
    throw new AttnvizError(`cannot build the tokenizer of ${what}: ${(e as Error).message}`);
  }
  delete json.model.vocab;
  delete json.model.merges;
  delete tokenizer.model.merges;
  return tokenizer;
}

/**
 * How a pair of texts is encoded. Encoders whose single-text template closes the text with a special
 * token (BERT's [SEP], RoBERTa's </s>) were trained on segment pairs and get one. Decoder-only models
 * (GPT-2, Llama: no template, or one that only prepends BOS) never saw pairs: the texts are joined with
 * one space, as in the golden references.
 */
type PairLayout = { kind: 'segments'; specialsBeforeB: number; zeroTypeIds: boolean } | { kind: 'joined' };

const JOINED: PairLayout = { kind: 'joined' };

function pairLayout(pp: PostProcessorJson | null): PairLayout {
  switch (pp?.type) {
    case 'BertProcessing': // [CLS] A [SEP] B [SEP]
      return { kind: 'segments', specialsBeforeB: 2, zeroTypeIds: false };
    case 'RobertaProcessing': // <s> A </s></s> B </s>
      // tokenizers.js gives B type id 1; RoBERTa-style models have a single token type, and the Rust
      // library and transformers give all zeros.
      return { kind: 'segments', specialsBeforeB: 3, zeroTypeIds: true };
    case 'TemplateProcessing': {
      const single = pp.single ?? [];
      const pair = pp.pair ?? [];
      const closesA = single
        .slice(single.findIndex((item) => 'Sequence' in item) + 1)
        .some((item) => 'SpecialToken' in item);
      const b = pair.findIndex((item) => 'Sequence' in item && item.Sequence.id === 'B');
      if (!closesA || b < 0) return JOINED;
      // tokenizers.js emits one token per SpecialToken item.
      return {
        kind: 'segments',
        specialsBeforeB: pair.slice(0, b).filter((item) => 'SpecialToken' in item).length,
        zeroTypeIds: false,
      };
    }
    case 'Sequence': // e.g. [ByteLevel, TemplateProcessing]: the first processor with a pair layout decides
      return (pp.processors ?? []).map(pairLayout).find((layout) => layout.kind === 'segments') ?? JOINED;
    default:
      return JOINED;
  }
}

function wrap(tokenizer: HfTokenizer, layout: PairLayout): TextTokenizer {
  const specialIds = new Set(
    [...tokenizer.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) => t.id),
  );
  const run = (text: string, pair: string | null) => {
    const e = tokenizer.encode(text, { text_pair: pair, return_token_type_ids: true });
    return {
      ids: e.ids,
      tokens: e.tokens,
      typeIds: e.token_type_ids ?? zeros(e.ids.length),
      special: e.ids.map((id) => specialIds.has(id)),
    };
  };
  const encode = (text: string, pair: string | null): Encoded => {
    check(text.trim() !== '', 'text is empty');
    if (pair === null) return { ...run(text, null), sentenceBStart: null };
    check(pair.trim() !== '', 'second text of the pair is empty');
    if (layout.kind === 'joined') {
      return { ...run(`${text} ${pair}`, null), sentenceBStart: tokenizer.encode(text).ids.length };
    }
    const encoded = run(text, pair);
    const aLength = tokenizer.encode(text, { add_special_tokens: false }).ids.length;
    return {
      ...encoded,
      typeIds: layout.zeroTypeIds ? zeros(encoded.ids.length) : encoded.typeIds,
      sentenceBStart: layout.specialsBeforeB + aLength,
    };
  };
  return {
    encode(text, pair = null) {
      try {
        return encode(text, pair);
      } catch (e) {
        // tokenizers.js trusts tokenizer.json's structure: a malformed file fails deep inside it (a TypeError).
        if (e instanceof AttnvizError) throw e;
        throw new AttnvizError(`the tokenizer fails on this text (malformed tokenizer.json?): ${(e as Error).message}`);
      }
    },
    // tokenizers.js throws on an empty list.
    decode: (ids) => (ids.length === 0 ? '' : tokenizer.decode(ids)),
    idToToken(id) {
      const token = tokenizer.id_to_token(id);
      check(token !== undefined, `token id ${id} is not in the vocabulary`);
      return token;
    },
  };
}

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

/**
 * tokenizer_config.json overlaid with special_tokens_map.json (which wins, as in transformers'
 * from_pretrained). Special tokens saved as AddedToken objects ({content, lstrip, ...}) become their
 * strings: tokenizers.js and the converters below expect strings.
 */
async function readTokenizerConfig(dir: string): Promise<JsonObject> {
  const config: JsonObject = {};
  for (const name of ['tokenizer_config.json', 'special_tokens_map.json']) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    const json = await readJson(file);
    check(isObject(json), `${file} is not a JSON object`);
    for (const [key, value] of Object.entries(json)) {
      config[key] =
        Array.isArray(value) && key === 'additional_special_tokens' ? value.map(tokenContent) : tokenContent(value);
    }
  }
  return config;
}

function tokenContent(value: unknown): unknown {
  return isObject(value) && typeof value.content === 'string' ? value.content : value;
}

async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AttnvizError(`${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** tokenizers.js insists on every top-level key that the Rust library may leave out. */
function withDefaults(json: unknown, file: string): TokenizerJson {
  check(isObject(json) && isObject(json.model), `${file} has no "model" object`);
  for (const part of PIPELINE) checkComponent(json[part], `${file}: "${part}"`, 0);
  return {
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...json,
  } as unknown as TokenizerJson;
}

/** The pipeline components of tokenizer.json, each null or an object with a "type" (Sequences nest). */
const PIPELINE = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;
/** Fields holding text a component inserts or matches: the tokenizer's work grows with their length per word. */
const TEXT_FIELDS = ['prepend', 'content', 'String', 'Regex', 'pattern', 'sep', 'cls', 'replacement'];
const MAX_TEXT_FIELD = 1000;
const MAX_NESTING = 16;

/**
 * Checks a pipeline component before tokenizers.js sees it: an object with a string "type" (or null), nested
 * Sequences no deeper than MAX_NESTING, and inserted or matched text of at most MAX_TEXT_FIELD characters — a
 * Prepend of 100,000 characters made every encode take minutes, a number in place of an object a TypeError.
 */
function checkComponent(value: unknown, where: string, depth: number): void {
  if (value === null || value === undefined) return;
  check(isObject(value) && typeof value.type === 'string', `${where} must be null or an object with a "type"`);
  check(depth < MAX_NESTING, `${where} nests more than ${MAX_NESTING} levels`);
  if (value.type === 'TemplateProcessing')
    for (const k of ['single', 'pair'])
      check(
        value[k] === undefined || (Array.isArray(value[k]) && value[k].every(isObject)),
        `${where}: "${k}" must be a list of template items`,
      );
  for (const [key, v] of Object.entries(value)) {
    const text = typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : null;
    if (TEXT_FIELDS.includes(key) && text !== null)
      check(text.length <= MAX_TEXT_FIELD, `${where}: "${key}" is ${text.length} characters, over ${MAX_TEXT_FIELD}`);
    if (isObject(v) && key === 'pattern') for (const k of ['String', 'Regex']) checkLength(v[k], `${where}.pattern`);
    if (Array.isArray(v) && ['normalizers', 'pretokenizers', 'processors', 'decoders'].includes(key))
      v.forEach((c, i) => checkComponent(c, `${where}.${key}[${i}]`, depth + 1));
  }
}

function checkLength(v: unknown, where: string): void {
  if (typeof v === 'string')
    check(v.length <= MAX_TEXT_FIELD, `${where} is ${v.length} characters, over ${MAX_TEXT_FIELD}`);
}

async function convertSlowTokenizer(dir: string, modelType: string, config: JsonObject): Promise<TokenizerJson> {
  // Imported here, not at start: only a folder without tokenizer.json needs it (and protobufjs, which it reads with).
  const { readSentencePiece, SENTENCEPIECE_FAMILIES, sentencePieceJson } = await import('./sentencepiece.js');
  const has = (name: string) => existsSync(join(dir, name));
  const missing = (files: string) => `no tokenizer in ${dir}: found neither tokenizer.json nor ${files}`;
  // SentencePiece models: converted as transformers does for the families sentencepiece.ts knows.
  if (SENTENCEPIECE_FAMILIES.includes(modelType) && (modelType !== 'albert' || !has('vocab.txt'))) {
    const spm = SENTENCEPIECE_FILES.find(has);
    check(spm, () => missing(SENTENCEPIECE_FILES.join(' or ')));
    const file = join(dir, spm);
    return withDefaults(
      sentencePieceJson(readSentencePiece(await readFile(file), file), modelType, config, file),
      file,
    );
  }
  // MPNet's slow vocab.txt is WordPiece with RoBERTa-style specials (<s> A </s></s> B </s>): not converted.
  check(
    modelType !== 'mpnet',
    () => `no tokenizer.json in ${dir}: mpnet's vocab.txt alone is not supported (use a folder with a tokenizer.json)`,
  );
  // BART's slow tokenizer is RoBERTa's (transformers converts both with RobertaConverter).
  if (modelType === 'gpt2' || modelType === 'roberta' || modelType === 'bart') {
    check(has('vocab.json') && has('merges.txt'), () => missing('vocab.json + merges.txt'));
    const vocabFile = join(dir, 'vocab.json');
    const vocab = await readJson(vocabFile);
    check(
      isObject(vocab) && Object.values(vocab).every(Number.isInteger),
      `${vocabFile} does not map tokens to integer ids`,
    );
    const mergesFile = join(dir, 'merges.txt');
    const merges = parseMerges(await readFile(mergesFile, 'utf8'), mergesFile);
    return modelType === 'gpt2'
      ? gpt2Json(vocab as Vocab, merges, config)
      : robertaJson(vocab as Vocab, merges, config, vocabFile);
  }
  check(has('vocab.txt'), () => missing('vocab.txt'));
  const vocabFile = join(dir, 'vocab.txt');
  return bertJson(parseVocabTxt(await readFile(vocabFile, 'utf8')), config, vocabFile);
}

/** SentencePiece model files, by the names transformers' slow tokenizers give them. */
const SENTENCEPIECE_FILES = ['spiece.model', 'sentencepiece.bpe.model', 'spm.model', 'tokenizer.model'];

/**
 * MarianTokenizer (OPUS-MT folders ship no tokenizer.json, and transformers has no fast Marian tokenizer): a
 * language code opening the text (`>>fr<<`) kept whole, the rest cut into pieces by source.spm (targets by
 * target.spm), each piece given its vocab.json id — a piece vocab.json lacks is <unk> — then </s>. Tokens are
 * vocab.json's strings of the ids (convert_ids_to_tokens), so an unknown piece shows as <unk>.
 */
async function marianTokenizer(dir: string, config: JsonObject): Promise<TextTokenizer> {
  check(
    config.separate_vocabs !== true,
    `${dir}: a Marian tokenizer with separate_vocabs (target_vocab.json) is not supported (use a tokenizer.json)`,
  );
  const vocabFile = join(dir, 'vocab.json');
  check(
    existsSync(vocabFile) && existsSync(join(dir, 'source.spm')),
    () => `no tokenizer in ${dir}: found neither tokenizer.json nor Marian's source.spm + vocab.json`,
  );
  const vocab = await readJson(vocabFile);
  check(
    isObject(vocab) && Object.values(vocab).every(Number.isSafeInteger),
    `${vocabFile} does not map tokens to integer ids`,
  );
  const ids = vocab as Vocab;
  const unkName = tokenString(config, 'unk_token') ?? '<unk>';
  const eosName = tokenString(config, 'eos_token') ?? '</s>';
  const unk = vocabId(ids, unkName, vocabFile);
  const eos = vocabId(ids, eosName, vocabFile);
  const names = new Map(Object.entries(ids).map(([token, id]) => [id, token]));
  const specialNames = new Set([
    unkName,
    eosName,
    tokenString(config, 'pad_token') ?? '<pad>',
    ...additionalSpecialTokens(config),
  ]);
  // transformers' special-tokens mask: the special tokens but <unk>.
  const special = new Set([...specialNames].flatMap((t) => (Object.hasOwn(ids, t) && ids[t] !== unk ? [ids[t]] : [])));
  const spm = async (name: string): Promise<HfTokenizer> => {
    const file = join(dir, name);
    const { readSentencePiece, sentencePieceJson } = await import('./sentencepiece.js');
    const json = sentencePieceJson(readSentencePiece(await readFile(file), file), 'marian', config, file);
    return hfTokenizer(withDefaults(json, file), config, file);
  };
  const source = await spm('source.spm');
  const target = existsSync(join(dir, 'target.spm')) ? await spm('target.spm') : source;
  const pieces = (tokenizer: HfTokenizer, text: string): number[] => {
    const end = text.startsWith('>>') ? text.indexOf('<<') : -1;
    const rest = end < 0 ? text : text.slice(end + 2);
    const tokens = rest === '' ? [] : tokenizer.encode(rest, { add_special_tokens: false }).tokens;
    return [...(end < 0 ? [] : [text.slice(0, end + 2)]), ...tokens].map((t) => (Object.hasOwn(ids, t) ? ids[t] : unk));
  };
  const idToToken = (id: number): string => {
    const token = names.get(id);
    check(token !== undefined, `token id ${id} is not in ${vocabFile}`);
    return token;
  };
  const encoded = (a: number[], b: number[] | null): Encoded => {
    const all = [...a, ...(b ?? []), eos];
    return {
      ids: all,
      tokens: all.map(idToToken),
      typeIds: zeros(all.length),
      sentenceBStart: b === null ? null : a.length,
      special: all.map((id) => special.has(id)),
    };
  };
  return {
    encode(text, pair = null) {
      check(text.trim() !== '', 'text is empty');
      check(pair === null || pair.trim() !== '', 'second text of the pair is empty');
      return encoded(pieces(source, text), pair === null ? null : pieces(source, pair));
    },
    encodeTarget(text) {
      check(text.trim() !== '', 'text is empty');
      return encoded(pieces(target, text), null);
    },
    decode(ids) {
      // convert_tokens_to_string: the pieces between special tokens decoded (▁ as spaces, the prefix dropped),
      // each special token as it is and a space.
      let out = '';
      let run: string[] = [];
      const flush = () => {
        out += run.join('').replaceAll('▁', ' ').replace(/^ /, '');
        run = [];
      };
      for (const id of ids) {
        const token = names.get(id) ?? unkName;
        if (specialNames.has(token)) {
          flush();
          out += `${token} `;
        } else run.push(token);
      }
      flush();
      return out.trim();
    },
    idToToken,
  };
}

/** One token per line, id = line number (as transformers' load_vocab: only the "\n" is stripped). */
function parseVocabTxt(text: string): Vocab {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return Object.fromEntries(lines.map((token, id) => [token, id]));
}

/** "a b" per line; the first line may be a "#version: ..." header (as GPT2Tokenizer reads it). */
function parseMerges(text: string, file: string): [string, string][] {
  const merges: [string, string][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(/\s+/);
    check(parts.length === 2, () => `${file} line ${i + 1} is not two tokens: ${JSON.stringify(line)}`);
    merges.push([parts[0], parts[1]]);
  });
  return merges;
}

/** transformers' BertConverter. */
function bertJson(vocab: Vocab, config: JsonObject, vocabFile: string): TokenizerJson {
  const unk = tokenString(config, 'unk_token') ?? '[UNK]';
  const sep = tokenString(config, 'sep_token') ?? '[SEP]';
  const cls = tokenString(config, 'cls_token') ?? '[CLS]';
  const pad = tokenString(config, 'pad_token') ?? '[PAD]';
  const mask = tokenString(config, 'mask_token') ?? '[MASK]';
  const clsId = vocabId(vocab, cls, vocabFile);
  const sepId = vocabId(vocab, sep, vocabFile);
  vocabId(vocab, unk, vocabFile);
  const strip = config.strip_accents;
  return {
    version: '1.0',
    added_tokens: addedTokens(vocab, [unk, sep, pad, cls, mask, ...additionalSpecialTokens(config)]),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: flag(config, 'tokenize_chinese_chars', true),
      // null: strip accents exactly when lowercasing
      strip_accents: typeof strip === 'boolean' ? strip : null,
      lowercase: flag(config, 'do_lower_case', true),
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: { type: 'WordPiece', unk_token: unk, continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    post_processor: templateProcessing(
      [specialToken(cls), sequence('A'), specialToken(sep)],
      [specialToken(cls), sequence('A'), specialToken(sep), sequence('B', 1), specialToken(sep, 1)],
      { [cls]: clsId, [sep]: sepId },
    ),
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  };
}

/** transformers' GPT2Converter (without add_bos_token): no special tokens are added to the text. */
function gpt2Json(vocab: Vocab, merges: [string, string][], config: JsonObject): TokenizerJson {
  const specials = ['bos_token', 'eos_token', 'unk_token'].map((key) => tokenString(config, key) ?? '<|endoftext|>');
  return byteLevelBpe(vocab, merges, {
    added: addedTokens(vocab, [...specials, tokenString(config, 'pad_token'), ...additionalSpecialTokens(config)]),
    addPrefixSpace: flag(config, 'add_prefix_space', false),
    postProcessor: BYTE_LEVEL_POST,
  });
}

/** transformers' RobertaConverter: <s> A </s> and <s> A </s></s> B </s>. */
function robertaJson(vocab: Vocab, merges: [string, string][], config: JsonObject, vocabFile: string): TokenizerJson {
  const bos = tokenString(config, 'bos_token') ?? '<s>';
  const eos = tokenString(config, 'eos_token') ?? '</s>';
  const sep = tokenString(config, 'sep_token') ?? '</s>';
  const cls = tokenString(config, 'cls_token') ?? '<s>';
  const unk = tokenString(config, 'unk_token') ?? '<unk>';
  const pad = tokenString(config, 'pad_token') ?? '<pad>';
  const mask = tokenString(config, 'mask_token') ?? '<mask>';
  const addPrefixSpace = flag(config, 'add_prefix_space', false);
  return byteLevelBpe(vocab, merges, {
    // RobertaTokenizer lets <mask> absorb the space before it (lstrip): in "a <mask>." the mask stands
    // for a whole "Ġword" token.
    added: addedTokens(vocab, [bos, eos, sep, cls, unk, pad, mask, ...additionalSpecialTokens(config)], mask),
    addPrefixSpace,
    postProcessor: robertaProcessing(
      [sep, vocabId(vocab, sep, vocabFile)],
      [cls, vocabId(vocab, cls, vocabFile)],
      addPrefixSpace,
    ),
  });
}

/**
 * The special tokens found in the vocabulary, registered so that they are matched whole in the text
 * (as the slow tokenizers split on them). One missing from the vocabulary could never be produced
 * anyway and is left out; those the post-processor needs are checked by vocabId.
 */
function addedTokens(
  vocab: Vocab,
  contents: (string | undefined)[],
  lstripped: string | null = null,
): AddedTokenJson[] {
  return [...new Set(contents)]
    .filter((content): content is string => content !== undefined && Object.hasOwn(vocab, content))
    .map((content) => addedToken(vocab[content], content, { lstrip: content === lstripped }));
}

function vocabId(vocab: Vocab, token: string, vocabFile: string): number {
  check(Object.hasOwn(vocab, token), () => `${vocabFile} has no special token ${token}`);
  return vocab[token];
}

function tokenString(config: JsonObject, key: string): string | undefined {
  const value = config[key];
  return typeof value === 'string' ? value : undefined;
}

function additionalSpecialTokens(config: JsonObject): string[] {
  const list = config.additional_special_tokens;
  return Array.isArray(list) ? list.filter((t): t is string => typeof t === 'string') : [];
}

function flag(config: JsonObject, key: string, fallback: boolean): boolean {
  const value = config[key];
  return typeof value === 'boolean' ? value : fallback;
}

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `text` (and `pair`) encoded for a model that takes at most `maxPositions` tokens: an input with no tokens is
 * an error, a longer one too unless `truncate`, and then it is cut as truncateEncoding does. `source` names
 * the model in messages.
 */
export function encodeWithin(
  tokenizer: Pick<TextTokenizer, 'encode'>,
  text: string,
  options: { pair?: string | null; truncate?: boolean },
  limit: { maxPositions: number; source: string; vocab?: number },
): Encoded {
  const encoded = tokenizer.encode(text, options.pair ?? null);
  check(encoded.ids.length > 0 && encoded.sentenceBStart !== 0, 'the text gives no tokens: nothing to attend to');
  // A tokenizer (an added token, a post-processor) may name an id past the embedding's rows: onnxruntime
  // would fail in Gather with a log line, or read out of bounds.
  const vocab = limit.vocab ?? Number.MAX_SAFE_INTEGER;
  const bad = encoded.ids.findIndex((id) => !(Number.isSafeInteger(id) && id >= 0 && id < vocab));
  check(
    bad < 0,
    () =>
      `${limit.source}: the tokenizer gives token ${shorten(encoded.tokens[bad])} id ${encoded.ids[bad]}, ` +
      `outside the model's ${vocab} embedding rows (a tokenizer that does not match the weights)`,
  );
  const max = limit.maxPositions;
  if (encoded.ids.length <= max) return encoded;
  check(
    options.truncate,
    `text is ${encoded.ids.length} tokens but ${limit.source} takes at most ${max} positions ` +
      '(pass --truncate / { truncate: true } to cut it)',
  );
  return truncateEncoding(encoded, max);
}

/**
 * Cuts an encoding to `max` tokens as transformers' default `longest_first` does: one token at a time from
 * the end of the longer text (the second on a tie), never a special token, so [CLS]/[SEP] stay in place.
 */
export function truncateEncoding(e: Encoded, max: number): Encoded {
  const b = e.sentenceBStart ?? e.ids.length;
  const content = (from: number, to: number) =>
    e.ids.map((_, i) => i).filter((i) => i >= from && i < to && !e.special[i]);
  const a = content(0, b),
    bb = content(b, e.ids.length);
  const dropped = new Set<number>();
  for (let excess = e.ids.length - max; excess > 0; excess--) {
    const from = a.length > bb.length ? a : bb.length > 0 ? bb : a;
    check(from.length > 0, `cannot truncate to ${max} tokens: only special tokens would remain`);
    dropped.add(from.pop()!);
  }
  const keep = <T>(xs: readonly T[]) => xs.filter((_, i) => !dropped.has(i));
  const droppedFromA = [...dropped].filter((i) => i < b).length;
  return {
    ids: keep(e.ids),
    tokens: keep(e.tokens),
    typeIds: keep(e.typeIds),
    special: keep(e.special),
    sentenceBStart: e.sentenceBStart === null ? null : e.sentenceBStart - droppedFromA,
  };
}
