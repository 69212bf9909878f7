/**
 * The tokenizer stored inside a GGUF file. `tokenizer.ggml.model` "gpt2" (byte-level BPE: Llama 3, Qwen2, …)
 * becomes the tokenizer.json those models ship with — BPE over the file's vocabulary and merges, after the
 * pre-tokenizer regex named by `tokenizer.ggml.pre` (llama.cpp's names), control and user-defined pieces as
 * added tokens, BOS prepended when `tokenizer.ggml.add_bos_token` — and runs on tokenizers.js.
 *
 * "llama" (Llama 2, Mistral, TinyLlama, llama2.c) is SentencePiece-style BPE
 * driven by the piece scores, with byte fallback — llama2.c's encode()/decode():
 *
 * - encode: BOS, then (unless `tokenizer.ggml.add_space_prefix` is false) a dummy "▁" prefix, then the text
 *   with spaces as "▁", one piece per Unicode character (a character with no piece becomes its UTF-8 bytes
 *   as <0xNN> byte pieces); then, repeatedly, the adjacent pair whose concatenation is a piece with the
 *   highest score (leftmost on ties) is merged, until no pair merges.
 * - decode: pieces with "▁" as spaces, <0xNN> pieces as raw bytes (UTF-8 decoded together), control pieces
 *   (BOS, EOS) as nothing; the leading space of the first piece, or of one following BOS, is dropped.
 */
import { check } from '../core/errors.js';
import type { GgufFile } from './gguf.js';
import { tokenizerFromJson, type Encoded, type TextTokenizer } from './tokenizer.js';
import { addedToken, byteLevelBpe, sequence, specialToken, templateProcessing } from './tokenizer-json.js';

/** tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface GgufTokenizer extends TextTokenizer {
  bos: number | null;
  eos: number | null;
}

/** tokenizer.ggml.tokens, and the BOS and EOS ids (null when absent or not a token of the vocabulary). */
function vocabularyOf(file: GgufFile, what: string): { vocab: string[]; bos: number | null; eos: number | null } {
  const pieces = file.metadata.get('tokenizer.ggml.tokens');
  check(
    Array.isArray(pieces) && pieces.length > 0 && pieces.every((t) => typeof t === 'string'),
    `${what}: missing metadata "tokenizer.ggml.tokens" (a list of strings)`,
  );
  const vocab = pieces as string[];
  const id = (key: string): number | null => {
    const v = file.metadata.get(key);
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < vocab.length ? v : null;
  };
  return { vocab, bos: id('tokenizer.ggml.bos_token_id'), eos: id('tokenizer.ggml.eos_token_id') };
}

export function ggufTokenizer(file: GgufFile, what: string): GgufTokenizer {
  const meta = file.metadata;
  const model = meta.get('tokenizer.ggml.model');
  check(model !== undefined, `${what}: missing metadata "tokenizer.ggml.model" (no tokenizer in the file)`);
  check(
    model === 'llama' || model === 'gpt2',
    `${what}: tokenizer model "${String(model)}" is not supported ` +
      `(only "llama": SentencePiece with scores, "gpt2": byte-level BPE)`,
  );
  if (model === 'gpt2') return byteLevelBpeTokenizer(file, what);
  const { vocab, bos, eos } = vocabularyOf(file, what);
  const rawScores = meta.get('tokenizer.ggml.scores');
  check(
    Array.isArray(rawScores) && rawScores.length === vocab.length && rawScores.every((s) => typeof s === 'number'),
    `${what}: missing metadata "tokenizer.ggml.scores" (one number per token)`,
  );
  const scores = rawScores as number[];
  const rawTypes = meta.get('tokenizer.ggml.token_type');
  const types =
    Array.isArray(rawTypes) && rawTypes.length === vocab.length
      ? (rawTypes as number[])
      : vocab.map(() => TOKEN_TYPE.normal);
  const addBos = meta.get('tokenizer.ggml.add_bos_token') !== false;
  const spacePrefix = meta.get('tokenizer.ggml.add_space_prefix') !== false;

  const lookup = new Map<string, number>();
  vocab.forEach((piece, i) => {
    if (!lookup.has(piece)) lookup.set(piece, i);
  });
  const byteIds = Array.from({ length: 256 }, (_, b) =>
    lookup.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`),
  );

  const bpe = (text: string): number[] => {
    const ids: number[] = [];
    for (const ch of (spacePrefix ? '▁' : '') + text.replaceAll(' ', '▁')) {
      const known = lookup.get(ch);
      if (known !== undefined) {
        ids.push(known);
        continue;
      }
      for (const byte of new TextEncoder().encode(ch)) {
        const b = byteIds[byte];
        check(
          b !== undefined,
          () =>
            `${what}: the vocabulary has no piece for ${JSON.stringify(ch)} ` +
            `and no byte piece <0x${byte.toString(16).toUpperCase()}>`,
        );
        ids.push(b);
      }
    }
    for (;;) {
      let best = -Infinity,
        at = -1,
        merged = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const m = lookup.get(vocab[ids[i]] + vocab[ids[i + 1]]);
        if (m !== undefined && scores[m] > best) [best, at, merged] = [scores[m], i, m];
      }
      if (at < 0) return ids;
      ids.splice(at, 2, merged);
    }
  };

  const encodeOne = (text: string): number[] => [...(addBos && bos !== null ? [bos] : []), ...bpe(text)];
  const encoded = (ids: number[], sentenceBStart: number | null): Encoded => ({
    ids,
    tokens: ids.map((i) => vocab[i]),
    typeIds: ids.map(() => 0),
    sentenceBStart,
    special: ids.map((i) => types[i] === TOKEN_TYPE.control),
  });

  return {
    bos,
    eos,
    encode(text, pair = null) {
      check(text.trim() !== '', 'text is empty');
      if (pair === null) return encoded(encodeOne(text), null);
      check(pair.trim() !== '', 'second text of the pair is empty');
      // A decoder never saw pairs: the two texts are joined with one space (as for HF Llama tokenizers).
      return encoded(encodeOne(`${text} ${pair}`), encodeOne(text).length);
    },
    decode(ids) {
      const bytes: number[] = [];
      ids.forEach((i, n) => {
        check(
          Number.isInteger(i) && i >= 0 && i < vocab.length,
          `token id ${i} is outside the vocabulary of ${vocab.length}`,
        );
        if (types[i] === TOKEN_TYPE.control) return;
        const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(vocab[i]);
        if (byte) {
          bytes.push(parseInt(byte[1], 16));
          return;
        }
        let piece = vocab[i].replaceAll('▁', ' ');
        if (piece.startsWith(' ') && (n === 0 || ids[n - 1] === bos)) piece = piece.slice(1);
        bytes.push(...new TextEncoder().encode(piece));
      });
      return new TextDecoder().decode(Uint8Array.from(bytes));
    },
    idToToken(i) {
      check(
        Number.isInteger(i) && i >= 0 && i < vocab.length,
        `token id ${i} is outside the vocabulary of ${vocab.length}`,
      );
      return vocab[i];
    },
  };
}

/**
 * Pre-tokenizer regexes by `tokenizer.ggml.pre` (llama.cpp's names; as in the models' own tokenizer.json files,
 * or, for bloom and falcon, llama.cpp's llama-vocab.cpp): each splits the pieces the previous one left.
 */
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|" +
  ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+';
const PRE_TOKENIZERS: Record<string, string[]> = {
  default: [GPT2_PATTERN],
  gpt2: [GPT2_PATTERN],
  'gpt-2': [GPT2_PATTERN], // GPT-2 and GPT-J
  olmo: [GPT2_PATTERN],
  'llama-bpe': [LLAMA3_PATTERN],
  dbrx: [LLAMA3_PATTERN], // cl100k-style vocabularies (OLMo 2)
  qwen2: [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|" +
      ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+',
  ],
  bloom: [' ?[^(\\s|.,!?…。，、।۔،)]+'],
  falcon: [
    '[\\p{P}\\$\\+<=>\\^~\\|`]+',
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    '[0-9][0-9][0-9]',
  ],
};

/** tokenizer.ggml.model "gpt2": the tokenizer.json of a byte-level BPE model, built from the file. */
function byteLevelBpeTokenizer(file: GgufFile, what: string): GgufTokenizer {
  const meta = file.metadata;
  const { vocab, bos, eos } = vocabularyOf(file, what);
  const merges = meta.get('tokenizer.ggml.merges');
  check(
    Array.isArray(merges) && merges.every((m) => typeof m === 'string' && m.includes(' ')),
    `${what}: missing metadata "tokenizer.ggml.merges" (a list of "a b" strings)`,
  );
  const pre = String(meta.get('tokenizer.ggml.pre') ?? 'default');
  const patterns = Object.hasOwn(PRE_TOKENIZERS, pre) ? PRE_TOKENIZERS[pre] : undefined;
  check(
    patterns !== undefined,
    `${what}: pre-tokenizer "${pre}" is not supported (supported: ${Object.keys(PRE_TOKENIZERS).join(', ')})`,
  );
  const types = meta.get('tokenizer.ggml.token_type');
  const typeOf = (i: number) => (Array.isArray(types) ? (types[i] as number) : TOKEN_TYPE.normal);
  const addBos = meta.get('tokenizer.ggml.add_bos_token') === true;
  const ids: Record<string, number> = {};
  vocab.forEach((piece, i) => {
    if (!Object.hasOwn(ids, piece)) ids[piece] = i;
  });
  const added = vocab.flatMap((content, i) =>
    typeOf(i) === TOKEN_TYPE.control || typeOf(i) === TOKEN_TYPE.userDefined
      ? [addedToken(i, content, { special: typeOf(i) === TOKEN_TYPE.control })]
      : [],
  );
  const postProcessor =
    addBos && bos !== null
      ? templateProcessing(
          [specialToken(vocab[bos]), sequence('A')],
          [specialToken(vocab[bos]), sequence('A'), sequence('B')],
          { [vocab[bos]]: bos },
        )
      : null;
  const json = byteLevelBpe(ids, merges as string[], { added, splits: patterns, postProcessor });
  return { ...tokenizerFromJson(json, {}, what), bos, eos };
}
