/**
 * SentencePiece `.model` files (src/load/sentencepiece.ts): ModelProto bytes encoded by hand in this file from
 * sentencepiece_model.proto's field numbers (so the reader's schema is checked against the layout, not against
 * itself), decoded field by field, and folders holding only such a file tokenizing exactly as folders with the
 * tokenizer.json of the same model — T5's (test/tiny-seq2seq.ts, the Unigram tokenizer.json the T5 tests use)
 * and an XLM-R-style one written here (fairseq ids: <s> <pad> </s> <unk>, pieces shifted by one, <mask> last).
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadTokenizer } from '../src/load/tokenizer.js';
import { readGguf, type GgufFile, type GgufValue } from '../src/load/gguf.js';
import { ggufTokenizer } from '../src/load/gguf-tokenizer.js';
import { readSentencePiece } from '../src/load/sentencepiece.js';
import { loadModel } from '../src/models/load-model.js';
import { expectBad, HAVE_SHARED, maxAbsDiff, SHARED } from './shared.js';
import { removeTinyModels, writeTinyModel, TinyWeights, Rng } from './tiny-models.js';
import {
  bartConfig,
  bartWeights,
  MARIAN,
  PIECES,
  t5TokenizerJson,
  t5Weights,
  T5_V11,
  writeT5,
} from './tiny-seq2seq.js';
import { addedToken } from '../src/load/tokenizer-json.js';

afterAll(removeTinyModels);

// ---- a protobuf writer (wire format: varint keys, length-delimited messages and strings, fixed32 floats) ----

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
const key = (field: number, wire: number) => varint(field * 8 + wire);
const bytesField = (field: number, data: number[]) => [...key(field, 2), ...varint(data.length), ...data];
const stringField = (field: number, s: string) => bytesField(field, [...new TextEncoder().encode(s)]);
const intField = (field: number, n: number) => [...key(field, 0), ...varint(n)];
const floatField = (field: number, x: number) => [...key(field, 5), ...new Uint8Array(Float32Array.of(x).buffer)];

/**
 * A ModelProto: pieces (1: piece, 2: score, 3: type), trainer_spec (3: model_type, 35: byte_fallback, 40: unk_id),
 * normalizer_spec (3: add_dummy_prefix, 4: remove_extra_whitespaces).
 */
function modelProto(
  pieces: [string, number, number][],
  options: { modelType?: number; unkId: number; byteFallback?: boolean; identity?: boolean },
): Uint8Array {
  const out: number[] = [];
  for (const [piece, score, type] of pieces)
    out.push(...bytesField(1, [...stringField(1, piece), ...floatField(2, score), ...intField(3, type)]));
  out.push(
    ...bytesField(2, [
      ...intField(3, options.modelType ?? 1),
      ...intField(4, pieces.length),
      ...intField(35, options.byteFallback ? 1 : 0),
      ...intField(40, options.unkId),
    ]),
  );
  // Llama's tokenizer.model: the identity normalizer keeps runs of spaces (remove_extra_whitespaces false).
  out.push(
    ...bytesField(3, [...stringField(1, 'identity'), ...intField(3, 1), ...intField(4, options.identity ? 0 : 1)]),
  );
  return Uint8Array.from(out);
}

const TYPES: Record<string, number> = { '<pad>': 3, '</s>': 3, '<s>': 3, '<unk>': 2 };
/** T5's pieces as a .model: <pad> </s> control, <unk> unknown, the rest normal. */
const T5_MODEL = modelProto(
  PIECES.map(([p, s]) => [p, s, TYPES[p] ?? 1]),
  { unkId: 2 },
);

/**
 * The normalizer transformers' SpmConverter writes for a model without a precompiled charsmap (trailing spaces
 * stripped, runs of spaces collapsed), as the Hub's tokenizer.json files of SentencePiece models carry one.
 */
const SPM_NORMALIZER = {
  type: 'Sequence',
  normalizers: [
    { type: 'Strip', strip_left: false, strip_right: true },
    { type: 'Replace', pattern: { Regex: ' {2,}' }, content: '▁' },
  ],
};

const TEXTS = [
  'The cat sat on the mat.',
  'Le chat est assis sur le tapis, the dog sat.',
  '  The   cat  ',
  'thecat sat on themat',
  'Unknown words: Zürich, 東京 and naïve.',
  'The </s> cat',
];

describe('readSentencePiece: the protobuf layout', () => {
  test('pieces, scores (float32), types, model type, unk id and normalizer flags', () => {
    const sp = readSentencePiece(T5_MODEL, 'spiece.model');
    expect(sp.pieces).toHaveLength(PIECES.length);
    expect(sp.pieces[1]).toEqual({ piece: '</s>', score: 0, type: 3 });
    expect(sp.pieces[3]).toEqual({ piece: '▁The', score: -2, type: 1 });
    expect(sp.pieces.at(-1)!.score).toBe(-6);
    expect(sp.modelType).toBe(1);
    expect(sp.unkId).toBe(2);
    expect(sp.addDummyPrefix).toBe(true);
    expect(sp.byteFallback).toBe(false);
    expect(sp.removeExtraWhitespaces).toBe(true);
    const llama = readSentencePiece(
      modelProto([['<unk>', 0, 2]], { unkId: 0, byteFallback: true, identity: true }),
      'x',
    );
    expect([llama.byteFallback, llama.removeExtraWhitespaces]).toEqual([true, false]);
  });

  test('not a model, no pieces, an unk id past the pieces: one-line errors', () => {
    expect(() => readSentencePiece(Uint8Array.from([0x0a, 0xff, 0xff]), 'bad.model')).toThrow(
      /bad\.model is not a SentencePiece model/,
    );
    expect(() => readSentencePiece(new Uint8Array(0), 'empty.model')).toThrow(
      /empty\.model is not a SentencePiece model \(no pieces\)/,
    );
    expect(() => readSentencePiece(modelProto([['a', 0, 1]], { unkId: 5 }), 'u.model')).toThrow(
      /unk_id 5 is not a piece/,
    );
  });
});

describe.skipIf(!HAVE_SHARED)('a folder with only a SentencePiece model tokenizes as with tokenizer.json', () => {
  test('T5 (spiece.model, extra_ids 0): tokens and ids for every text, and the same attention', async () => {
    const w = t5Weights(T5_V11, 30);
    const withJson = await writeT5(T5_V11, w);
    await writeFile(
      join(withJson, 'tokenizer.json'),
      JSON.stringify({ ...(t5TokenizerJson() as object), normalizer: SPM_NORMALIZER }),
    );
    const withModel = await writeT5(T5_V11, w);
    await rm(join(withModel, 'tokenizer.json'));
    await writeFile(join(withModel, 'spiece.model'), T5_MODEL);
    await writeFile(
      join(withModel, 'tokenizer_config.json'),
      JSON.stringify({ eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', extra_ids: 0 }),
    );
    const [a, b] = await Promise.all([loadTokenizer(withJson, 't5'), loadTokenizer(withModel, 't5')]);
    for (const text of TEXTS) {
      const [x, y] = [a.encode(text), b.encode(text)];
      expect(y.tokens, text).toEqual(x.tokens);
      expect(y.ids, text).toEqual(x.ids);
      expect(b.decode(y.ids)).toBe(a.decode(x.ids));
    }
    const [m1, m2] = await Promise.all([loadModel(withJson), loadModel(withModel)]);
    const [r1, r2] = [
      await m1.attention(TEXTS[0], { target: TEXTS[1] }),
      await m2.attention(TEXTS[0], { target: TEXTS[1] }),
    ];
    expect(maxAbsDiff(r1.attention.data, r2.attention.data)).toBe(0);
    await Promise.all([m1.release(), m2.release()]);
  });

  test('XLM-RoBERTa (sentencepiece.bpe.model): fairseq ids, <s> A </s></s> B </s>', async () => {
    // The .model: <unk> <s> </s> (SentencePiece's own ids 0–2), then T5's words and characters.
    const pieces: [string, number, number][] = [
      ['<unk>', 0, 2],
      ['<s>', 0, 3],
      ['</s>', 0, 3],
      ...PIECES.slice(3).map(([p, s]): [string, number, number] => [p, s, 1]),
    ];
    const fairseq: [string, number][] = [
      ['<s>', 0],
      ['<pad>', 0],
      ['</s>', 0],
      ['<unk>', 0],
      ...pieces.slice(3).map(([p, s]): [string, number] => [p, s]),
      ['<mask>', 0],
    ];
    const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true };
    const tokenizerJson = {
      version: '1.0',
      added_tokens: [
        addedToken(0, '<s>'),
        addedToken(1, '<pad>'),
        addedToken(2, '</s>'),
        addedToken(3, '<unk>'),
        addedToken(fairseq.length - 1, '<mask>'),
      ],
      normalizer: SPM_NORMALIZER,
      pre_tokenizer: metaspace,
      post_processor: {
        type: 'TemplateProcessing',
        single: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '</s>', type_id: 0 } },
        ],
        pair: [
          { SpecialToken: { id: '<s>', type_id: 0 } },
          { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: '</s>', type_id: 0 } },
          { SpecialToken: { id: '</s>', type_id: 0 } },
          { Sequence: { id: 'B', type_id: 0 } },
          { SpecialToken: { id: '</s>', type_id: 0 } },
        ],
        special_tokens: {
          '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] },
          '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
        },
      },
      decoder: metaspace,
      model: { type: 'Unigram', unk_id: 3, vocab: fairseq, byte_fallback: false },
    };
    const config = { model_type: 'xlm-roberta' };
    const w = new TinyWeights(new Rng(1));
    const withJson = await writeTinyModel(config, w, 'bert-tiny');
    const withModel = await writeTinyModel(config, w, 'bert-tiny');
    await rm(join(withModel, 'tokenizer.json'));
    await writeFile(join(withJson, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    await writeFile(join(withModel, 'sentencepiece.bpe.model'), modelProto(pieces, { unkId: 0 }));
    for (const dir of [withJson, withModel]) await writeFile(join(dir, 'tokenizer_config.json'), '{}');
    const [a, b] = await Promise.all([loadTokenizer(withJson, 'xlm-roberta'), loadTokenizer(withModel, 'xlm-roberta')]);
    for (const text of TEXTS) {
      expect(b.encode(text).tokens, text).toEqual(a.encode(text).tokens);
      expect(b.encode(text).ids, text).toEqual(a.encode(text).ids);
    }
    const pair = b.encode(TEXTS[0], TEXTS[1]);
    expect(pair.tokens[pair.sentenceBStart! - 2]).toBe('</s>');
    expect(pair).toEqual(a.encode(TEXTS[0], TEXTS[1]));
    expect(b.encode('The cat').ids.slice(0, 2)).toEqual([0, 4]); // <s>, then ▁The: SentencePiece id 3 + 1
  });

  test('errors naming them: a word-type model, a missing template piece, Marian without vocab.json', async () => {
    const dir = await writeTinyModel({ model_type: 't5' }, new TinyWeights(new Rng(2)), 'bert-tiny');
    await rm(join(dir, 'tokenizer.json'));
    await writeFile(
      join(dir, 'spiece.model'),
      modelProto(
        PIECES.map(([p, s]) => [p, s, TYPES[p] ?? 1]),
        { unkId: 2, modelType: 3 },
      ),
    );
    await expectBad(
      loadTokenizer(dir, 't5'),
      /spiece\.model: SentencePiece model type word is not supported \(only Unigram and BPE/,
    );
    await writeFile(
      join(dir, 'spiece.model'),
      modelProto(
        [
          ['<unk>', 0, 2],
          ['▁a', -1, 1],
        ],
        { unkId: 0 },
      ),
    );
    await expectBad(loadTokenizer(dir, 't5'), /spiece\.model has no piece <\/s>, which t5's template needs/);
    await writeFile(join(dir, 'source.spm'), T5_MODEL);
    await expectBad(
      loadTokenizer(dir, 'marian'),
      /found neither tokenizer\.json nor Marian's source\.spm \+ vocab\.json/,
    );
  });
});

/** A fairseq-trained .model (XLM-R, CamemBERT, mBART): <unk> <s> </s> (SentencePiece's ids 0–2), then T5's pieces. */
const FAIRSEQ_PIECES: [string, number, number][] = [
  ['<unk>', 0, 2],
  ['<s>', 0, 3],
  ['</s>', 0, 3],
  ...PIECES.slice(3).map(([p, s]): [string, number, number] => [p, s, 1]),
];
const N = FAIRSEQ_PIECES.length;

async function spmFolder(modelType: string, files: Record<string, Uint8Array | object>): Promise<string> {
  const dir = await writeTinyModel({ model_type: modelType }, new TinyWeights(new Rng(4)), 'bert-tiny');
  await rm(join(dir, 'tokenizer.json'));
  for (const [name, data] of Object.entries({ 'tokenizer_config.json': {}, ...files }))
    await writeFile(join(dir, name), data instanceof Uint8Array ? data : JSON.stringify(data));
  return dir;
}

describe('fairseq id layouts from the .model alone (CamemBERT, mBART, mBART-50)', () => {
  const model = modelProto(FAIRSEQ_PIECES, { unkId: 0 });
  // The SentencePiece ids of "The cat sat 東京": ▁The 3, ▁cat 4, ▁sat 5, then ▁ 17 and the unknown 東京.
  const text = 'The cat sat 東京';

  test("CamemBERT: five ids of its own, SentencePiece's + 4, <unk> 3, <mask> last, <s> A </s></s> B </s>", async () => {
    const t = await loadTokenizer(await spmFolder('camembert', { 'sentencepiece.bpe.model': model }), 'camembert');
    const e = t.encode(text);
    // The unknown characters keep their text as the token (as tokenizers' Unigram and the slow tokenizer's
    // tokenize() give it), with <unk>'s id.
    expect(e.tokens).toEqual(['<s>', '▁The', '▁cat', '▁sat', '▁', '東京', '</s>']);
    expect(e.ids).toEqual([5, 7, 8, 9, 21, 3, 6]);
    expect(e.special).toEqual([true, false, false, false, false, true, true]);
    expect(t.encode('The <mask>').ids).toEqual([5, 7, N + 4, 6]);
    const pair = t.encode('The cat', 'sat');
    expect(pair.tokens).toEqual(['<s>', '▁The', '▁cat', '</s>', '</s>', '▁sat', '</s>']);
    expect(pair.sentenceBStart).toBe(5);
  });

  test('mBART: A </s> src_lang, codes after the pieces; mBART-50: src_lang A </s> over its 52 codes', async () => {
    const codeId = (index: number) => 4 + (N - 3) + index;
    const t = await loadTokenizer(await spmFolder('mbart', { 'sentencepiece.bpe.model': model }), 'mbart');
    const e = t.encode(text);
    expect(e.tokens).toEqual(['▁The', '▁cat', '▁sat', '▁', '東京', '</s>', 'en_XX']);
    expect(e.ids).toEqual([4, 5, 6, 18, 3, 2, codeId(3)]);
    expect(t.encode('The <mask>').ids).toEqual([4, codeId(25), 2, codeId(3)]);
    const ro = await spmFolder('mbart', {
      'sentencepiece.bpe.model': model,
      'tokenizer_config.json': { src_lang: 'ro_RO' },
    });
    expect((await loadTokenizer(ro, 'mbart')).encode('The').ids).toEqual([4, 2, codeId(19)]);
    const fifty = await spmFolder('mbart', {
      'sentencepiece.bpe.model': model,
      'tokenizer_config.json': { tokenizer_class: 'MBart50Tokenizer', src_lang: 'sl_SI' },
    });
    const f = await loadTokenizer(fifty, 'mbart');
    expect(f.encode('The cat').tokens).toEqual(['sl_SI', '▁The', '▁cat', '</s>']);
    expect(f.encode('The <mask>').ids).toEqual([codeId(51), 4, codeId(52), 2]);
    const bad = await spmFolder('mbart', {
      'sentencepiece.bpe.model': model,
      'tokenizer_config.json': { src_lang: 'xx_XX' },
    });
    await expectBad(loadTokenizer(bad, 'mbart'), /src_lang xx_XX is not one of mBART's language codes/);
  });
});

describe('Marian (source.spm, target.spm, vocab.json)', () => {
  // vocab.json as OPUS-MT's: </s> 0, <unk> 1, the pieces in an order of its own, <pad> last; ▁dog left out.
  const words = PIECES.slice(3)
    .map(([p]) => p)
    .filter((p) => p !== '▁dog')
    .reverse();
  const vocab = Object.fromEntries(
    ['</s>', '<unk>', '>>fr<<', ...words, '<pad>'].map((token, id): [string, number] => [token, id]),
  );
  // target.spm knows whole French words only (and the characters): "chat" is one piece there, not in source.spm.
  const target = modelProto(
    [
      ['<unk>', 0, 2],
      ['<s>', 0, 3],
      ['</s>', 0, 3],
      ['▁Le', -2, 1],
      ['▁chat', -2, 1],
      ['▁', -4, 1],
      ...[...'abcdefghijklmnopqrstuvwxyzL'].map((ch): [string, number, number] => [ch, -6, 1]),
    ],
    { unkId: 0 },
  );
  const files = { 'source.spm': modelProto(FAIRSEQ_PIECES, { unkId: 0 }), 'target.spm': target, 'vocab.json': vocab };

  test('language code whole, vocab.json ids (<unk> when absent), </s> last; targets by target.spm', async () => {
    const t = await loadTokenizer(await spmFolder('marian', files), 'marian');
    const e = t.encode('>>fr<< The dog sat 東京.');
    expect(e.tokens).toEqual(['>>fr<<', '▁The', '<unk>', '▁sat', '▁', '<unk>', '.', '</s>']);
    expect(e.ids).toEqual([2, vocab['▁The'], 1, vocab['▁sat'], vocab['▁'], 1, vocab['.'], 0]);
    // transformers' special-tokens mask leaves <unk> out.
    expect(e.special).toEqual([false, false, false, false, false, false, false, true]);
    expect(t.encode('The </s> cat').tokens).toEqual(['▁The', '</s>', '▁cat', '</s>']);
    expect(t.encodeTarget!('Le chat').tokens).toEqual(['▁Le', '▁chat', '</s>']);
    expect(t.encode('Le chat').tokens).toEqual(['▁Le', '▁chat', '</s>']);
    expect(t.encodeTarget!('Le chats').tokens).toEqual(['▁Le', '▁chat', 's', '</s>']);
    expect(t.decode(t.encode('The cat sat.').ids)).toBe('The cat sat.</s>');
    expect(t.idToToken(vocab['<pad>'])).toBe('<pad>');
  });

  test.skipIf(!HAVE_SHARED)('a Marian model teacher-forced on a target tokenized by target.spm', async () => {
    // OPUS-MT's ids: </s> 0 (EOS), <pad> last (the decoder's start).
    const config = {
      ...bartConfig(MARIAN),
      eos_token_id: 0,
      pad_token_id: vocab['<pad>'],
      decoder_start_token_id: vocab['<pad>'],
    };
    const dir = await writeTinyModel(config, bartWeights(MARIAN, 5), 'roberta-tiny');
    for (const f of ['tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json'])
      await rm(join(dir, f), { force: true });
    for (const [name, data] of Object.entries(files))
      await writeFile(join(dir, name), data instanceof Uint8Array ? data : JSON.stringify(data));
    const m = await loadModel(dir);
    const r = await m.attention('>>fr<< The cat sat.', { target: 'Le chats' });
    expect(r.tokens).toEqual(['>>fr<<', '▁The', '▁cat', '▁sat', '.', '</s>']);
    expect(r.encoderDecoder!.decoderTokens).toEqual(['<pad>', '▁Le', '▁chat', 's']);
    await m.release();
  });
});

// ---- BPE models (Llama's tokenizer.model) against llama2.c's score-driven encoder (src/load/gguf-tokenizer.ts) ----

/** A GGUF file holding only a SentencePiece-style vocabulary: what ggufTokenizer reads. */
function ggufVocab(pieces: [string, number, number][]): GgufFile {
  const metadata = new Map<string, GgufValue>([
    ['tokenizer.ggml.model', 'llama'],
    ['tokenizer.ggml.tokens', pieces.map(([p]) => p)],
    ['tokenizer.ggml.scores', pieces.map(([, s]) => s)],
    ['tokenizer.ggml.token_type', pieces.map(([, , t]) => t)],
    ['tokenizer.ggml.bos_token_id', 1],
    ['tokenizer.ggml.eos_token_id', 2],
  ]);
  return { path: 'vocab.gguf', version: 3, metadata, tensors: new Map(), dataStart: 0, fileSize: 0 };
}

const BYTES: [string, number, number][] = Array.from({ length: 256 }, (_, b) => [
  `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
  0,
  6,
]);
const LLAMA_SPECIALS: [string, number, number][] = [
  ['<unk>', 0, 2],
  ['<s>', 0, 3],
  ['</s>', 0, 3],
];

async function llamaFolder(model: Uint8Array, tokenizerConfig: object = {}): Promise<string> {
  const dir = await writeTinyModel({ model_type: 'llama' }, new TinyWeights(new Rng(3)), 'bert-tiny');
  await rm(join(dir, 'tokenizer.json'));
  await writeFile(join(dir, 'tokenizer.model'), model);
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  return dir;
}

const LLAMA_TEXTS = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside.',
  '  two  spaces,   three   and trailing  ',
  'Digits 0123456789, 3.14159 and 1,000,000.',
  'Zürich, naïve, façade, Ærø — “quotes” … 東京 and 🙂🙂',
  'tabs\tand\nnew lines\r\n',
  'a',
  '▁literal▁underline',
];

describe('BPE SentencePiece models (tokenizer.model) tokenize as SentencePiece BPE', () => {
  test('random vocabularies: merges by piece score, not by id; byte fallback; tokens and ids as llama2.c', async () => {
    const rng = new Rng(11);
    for (let trial = 0; trial < 6; trial++) {
      // Pieces grown as BPE training does (each the concatenation of two earlier ones), their scores shuffled so
      // that the order of merges differs from the order of ids.
      const chars = [...'▁abcdeé'];
      const grown = [...chars];
      while (grown.length < 60) {
        const piece = grown[Math.floor(rng.uniform() * grown.length)] + grown[Math.floor(rng.uniform() * grown.length)];
        if (!grown.includes(piece) && [...piece].length <= 6) grown.push(piece);
      }
      const scores = grown.map((_, i) => -i - 1);
      for (let i = scores.length - 1; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1));
        [scores[i], scores[j]] = [scores[j], scores[i]];
      }
      const pieces: [string, number, number][] = [
        ...LLAMA_SPECIALS,
        ...BYTES,
        ...grown.map((p, i): [string, number, number] => [p, scores[i], 1]),
      ];
      const hf = await loadTokenizer(
        await llamaFolder(modelProto(pieces, { unkId: 0, modelType: 2, byteFallback: true, identity: true })),
        'llama',
      );
      const ref = ggufTokenizer(ggufVocab(pieces), 'vocab.gguf');
      for (let t = 0; t < 40; t++) {
        const alphabet = [...'abcdeé  zü'];
        const text = Array.from(
          { length: 1 + Math.floor(rng.uniform() * 24) },
          () => alphabet[Math.floor(rng.uniform() * alphabet.length)],
        ).join('');
        if (text.trim() === '') continue;
        const [a, b] = [hf.encode(text), ref.encode(text)];
        expect(a.tokens, JSON.stringify(text)).toEqual(b.tokens);
        expect(a.ids, JSON.stringify(text)).toEqual(b.ids);
        expect(hf.decode(a.ids.slice(1))).toBe(ref.decode(b.ids.slice(1)));
      }
    }
  });

  test.skipIf(!HAVE_SHARED)('stories260K (a real SentencePiece BPE vocabulary of 512, byte fallback)', async () => {
    const gguf = readGguf(join(SHARED, 'models/stories260K/stories260K.gguf'));
    const meta = gguf.metadata;
    const tokens = meta.get('tokenizer.ggml.tokens') as string[];
    const scores = meta.get('tokenizer.ggml.scores') as number[];
    const types = meta.get('tokenizer.ggml.token_type') as number[];
    const pieces = tokens.map((p, i): [string, number, number] => [p, scores[i], types[i]]);
    const hf = await loadTokenizer(
      await llamaFolder(modelProto(pieces, { unkId: 0, modelType: 2, byteFallback: true, identity: true })),
      'llama',
    );
    const ref = ggufTokenizer(gguf, 'stories260K.gguf');
    for (const text of LLAMA_TEXTS) {
      const [a, b] = [hf.encode(text), ref.encode(text)];
      expect(a.tokens, text).toEqual(b.tokens);
      expect(a.ids, text).toEqual(b.ids);
      expect(hf.decode(a.ids.slice(1)), text).toBe(ref.decode(b.ids.slice(1)));
    }
    // Byte fallback and runs of spaces really happened (the texts are not all covered by whole pieces).
    expect(hf.encode(LLAMA_TEXTS[3]).tokens).toContain('<0xE6>');
    expect(hf.encode(LLAMA_TEXTS[1]).tokens.slice(0, 3)).toEqual(['<s>', '▁', '▁']);
  });

  test('legacy (default) and legacy: false around special tokens, add_bos_token / add_eos_token, decode', async () => {
    const pieces: [string, number, number][] = [
      ...LLAMA_SPECIALS,
      ...BYTES,
      ['▁Hi', -1, 1],
      ['Hi', -2, 1],
      ['▁', -3, 1],
      ['H', -4, 1],
      ['i', -5, 1],
    ];
    const model = modelProto(pieces, { unkId: 0, modelType: 2, byteFallback: true, identity: true });
    const text = 'Hi </s> Hi';
    // Legacy: SentencePiece encodes each text between special tokens with its ▁ prefix (" Hi" → "▁▁Hi").
    const legacy = await loadTokenizer(await llamaFolder(model), 'llama');
    expect(legacy.encode(text).tokens).toEqual(['<s>', '▁Hi', '▁', '</s>', '▁', '▁Hi']);
    // legacy: false — the prefix only at the start (LlamaTokenizer's add_dummy_prefix off, "▁" prepended once).
    const modern = await loadTokenizer(await llamaFolder(model, { legacy: false }), 'llama');
    expect(modern.encode(text).tokens).toEqual(['<s>', '▁Hi', '▁', '</s>', '▁Hi']);
    const both = await loadTokenizer(await llamaFolder(model, { add_bos_token: false, add_eos_token: true }), 'llama');
    expect(both.encode('Hi').ids).toEqual([259, 2]);
    expect(legacy.decode(legacy.encode('Hi Hi é').ids.slice(1))).toBe('Hi Hi é');
    expect(legacy.encode('Hi é').special).toEqual([true, false, false, false, false]);
  });

  test('a BPE model with a normalizer, an unknown tokenizer class: errors naming them', async () => {
    const pieces = [...LLAMA_SPECIALS, ['▁', -1, 1] as [string, number, number]];
    await expectBad(
      loadTokenizer(await llamaFolder(modelProto(pieces, { unkId: 0, modelType: 2 })), 'llama'),
      /tokenizer\.model: a normalizer .* is not supported in a Llama-type tokenizer\.model/,
    );
    const dir = await llamaFolder(modelProto(pieces, { unkId: 0, modelType: 2, identity: true }), {
      tokenizer_class: 'GemmaTokenizer',
    });
    await expectBad(loadTokenizer(dir, 'llama'), /a GemmaTokenizer tokenizer\.model alone is not supported/);
  });
});
