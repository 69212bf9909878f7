/**
 * Small tokenizers written by the tests themselves, in the layouts of the golden models' (tokenizer.json +
 * tokenizer_config.json), so that tests that need a tokenizer but no pretrained weights run without
 * ../shared: a BERT-style WordPiece (lower case, [CLS] A [SEP] B [SEP]), a GPT-2-style byte-level BPE (no
 * special tokens added) and a RoBERTa-style one (<s> A </s></s> B </s>, BART's too). Vocabularies are a few
 * hundred entries: every character of ASCII text is covered (WordPiece letters and `##` letters, the 256
 * byte symbols of byte-level BPE), and the words of the tests' texts are whole tokens.
 */

import {
  addedToken,
  BYTE_LEVEL_POST,
  byteLevelBpe,
  robertaProcessing,
  sequence,
  specialToken,
  templateProcessing,
} from '../src/load/tokenizer-json.js';

export type TinyTokenizer = 'bert-tiny' | 'gpt2-tiny' | 'roberta-tiny';

/** Words made whole tokens (as a real vocabulary has them), from the texts the tests run. */
const WORDS = (
  'The cat sat on the mat dog unimpressed watched it A second sentence Le chat est assis sur le tapis ' +
  'lay rug Hello world a an and of to in is was he she'
).split(' ');

const PUNCTUATION = [...'.,;:!?\'"()-[]<>/'];

/**
 * File contents: tokenizer.json and tokenizer_config.json. The vocabulary is padded with unused entries to
 * `vocabSize` (the model's), as real vocabularies fill their embedding table, so every id a model can
 * generate has a token.
 */
export function tinyTokenizerFiles(kind: TinyTokenizer, vocabSize = 0): Record<string, string> {
  const json = kind === 'bert-tiny' ? wordPiece(vocabSize) : byteLevel(kind === 'roberta-tiny', vocabSize);
  return {
    'tokenizer.json': JSON.stringify(json),
    'tokenizer_config.json': JSON.stringify(CONFIGS[kind]),
  };
}

const CONFIGS: Record<TinyTokenizer, Record<string, unknown>> = {
  'bert-tiny': {
    do_lower_case: true,
    model_max_length: 512,
    tokenizer_class: 'BertTokenizer',
    unk_token: '[UNK]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    cls_token: '[CLS]',
    mask_token: '[MASK]',
  },
  'gpt2-tiny': {
    model_max_length: 256,
    tokenizer_class: 'GPT2Tokenizer',
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    add_prefix_space: false,
  },
  'roberta-tiny': {
    model_max_length: 512,
    tokenizer_class: 'RobertaTokenizer',
    bos_token: '<s>',
    eos_token: '</s>',
    sep_token: '</s>',
    cls_token: '<s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    mask_token: '<mask>',
    add_prefix_space: false,
  },
};

/** `[unused0]`, `[unused1]`, … (BERT's name for vocabulary entries no text produces) up to `size` pieces. */
function padded(pieces: string[], size: number): string[] {
  return [...pieces, ...Array.from({ length: Math.max(0, size - pieces.length) }, (_, i) => `[unused${i}]`)];
}

/** BERT's uncased WordPiece: specials, characters, `##` characters, then whole words. */
function wordPiece(vocabSize: number): unknown {
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const chars = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
  const pieces = [
    ...specials,
    ...PUNCTUATION,
    ...chars,
    ...chars.map((c) => `##${c}`),
    ...new Set(WORDS.map((w) => w.toLowerCase())),
  ];
  const vocab = Object.fromEntries(padded([...new Set(pieces)], vocabSize).map((p, i) => [p, i]));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((s) => addedToken(vocab[s], s)),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: templateProcessing(
      [specialToken('[CLS]'), sequence('A'), specialToken('[SEP]')],
      [specialToken('[CLS]'), sequence('A'), specialToken('[SEP]'), sequence('B', 1), specialToken('[SEP]', 1)],
      { '[CLS]': vocab['[CLS]'], '[SEP]': vocab['[SEP]'] },
    ),
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/** GPT-2's bytes_to_unicode: a printable character for each byte (space → Ġ, newline → Ċ). */
function byteSymbols(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + extra++));
}

/**
 * Byte-level BPE: the 256 byte symbols, then for every test word (alone and after a space, `Ġword`) the merges
 * that build it left to right; RoBERTa's specials around them (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3, `<mask>`
 * last), GPT-2's `<|endoftext|>` last.
 */
function byteLevel(roberta: boolean, vocabSize: number): unknown {
  const head = roberta ? ['<s>', '<pad>', '</s>', '<unk>'] : [];
  const pieces = [...head, ...byteSymbols()];
  const merges: [string, string][] = [];
  const known = new Set(pieces);
  // Words after a space first: their merges rank higher, so `Ġthe` is one token rather than `Ġ` + `the`.
  for (const word of WORDS.flatMap((w) => [`Ġ${w}`, w])) {
    let piece = word[0];
    for (const ch of word.slice(1)) {
      const merged = piece + ch;
      if (!known.has(merged)) {
        merges.push([piece, ch]);
        pieces.push(merged);
        known.add(merged);
      }
      piece = merged;
    }
  }
  const tail = roberta ? '<mask>' : '<|endoftext|>';
  const vocab = Object.fromEntries([...padded(pieces, vocabSize - 1), tail].map((p, i) => [p, i]));
  return byteLevelBpe(
    vocab,
    merges.map(([a, b]) => `${a} ${b}`),
    {
      added: [...head, tail].map((s) => addedToken(vocab[s], s)),
      postProcessor: roberta ? robertaProcessing(['</s>', 2], ['<s>', 0], false) : BYTE_LEVEL_POST,
    },
  );
}
