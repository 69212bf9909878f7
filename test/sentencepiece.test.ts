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
import { readSentencePiece } from '../src/load/sentencepiece.js';
import { loadModel } from '../src/models/load-model.js';
import { expectBad, HAVE_SHARED, maxAbsDiff } from './shared.js';
import { removeTinyModels, writeTinyModel, TinyWeights, Rng } from './tiny-models.js';
import { PIECES, t5TokenizerJson, t5Weights, T5_V11, writeT5 } from './tiny-seq2seq.js';
import { addedToken } from './tiny-tokenizers.js';

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
 * A ModelProto: pieces (1: piece, 2: score, 3: type), trainer_spec (3: model_type, 40: unk_id), normalizer_spec (3:
 * add_dummy_prefix).
 */
function modelProto(pieces: [string, number, number][], options: { modelType?: number; unkId: number }): Uint8Array {
  const out: number[] = [];
  for (const [piece, score, type] of pieces)
    out.push(...bytesField(1, [...stringField(1, piece), ...floatField(2, score), ...intField(3, type)]));
  out.push(
    ...bytesField(2, [
      ...intField(3, options.modelType ?? 1),
      ...intField(4, pieces.length),
      ...intField(40, options.unkId),
    ]),
  );
  out.push(...bytesField(3, [...stringField(1, 'identity'), ...intField(3, 1), ...intField(4, 1)]));
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

  test('a BPE-type model, an unsupported family, a model missing a template piece: errors naming them', async () => {
    const dir = await writeTinyModel({ model_type: 't5' }, new TinyWeights(new Rng(2)), 'bert-tiny');
    await rm(join(dir, 'tokenizer.json'));
    await writeFile(
      join(dir, 'spiece.model'),
      modelProto(
        PIECES.map(([p, s]) => [p, s, TYPES[p] ?? 1]),
        { unkId: 2, modelType: 2 },
      ),
    );
    await expectBad(
      loadTokenizer(dir, 't5'),
      /spiece\.model: SentencePiece model type BPE is not supported \(only Unigram/,
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
    await writeFile(join(dir, 'sentencepiece.bpe.model'), T5_MODEL);
    await expectBad(loadTokenizer(dir, 'marian'), /marian's SentencePiece model files alone are not supported/);
  });
});
