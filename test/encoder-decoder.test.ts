/**
 * Encoder-decoder families — BART, mBART, Marian (bart.ts) and T5, mT5 (t5.ts) — on tiny random checkpoints
 * (test/tiny-seq2seq.ts; no golden data exists for them yet). Checked, for each of the three attentions
 * (encoder, decoder, cross):
 * - shapes, rows summing to 1, exact zeros above the diagonal of the decoder's self-attention;
 * - softmax(q·kᵀ·scale + position bias + mask) from the reported q, k (and T5's reported bias) reproducing
 *   every reported attention;
 * - a float64 forward pass (tiny-seq2seq.ts) from modeling_bart.py / modeling_mbart.py / modeling_marian.py /
 *   modeling_t5.py, sharing no code with src/graph, within 1e-5;
 * and T5's bucket function against values worked out by hand, teacher forcing (the decoder's input is the
 * start token, then the target without its EOS), greedy generation against the reference's argmax, the
 * attention file round trip, the CLI, and one-line errors on bad inputs.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { attentionPart, ATTENTION_PARTS, type Attention, type AttentionPart } from '../src/core/attention.js';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { readAttentionFile, writeAttentionFile } from '../src/core/files.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import { encodeSafetensors } from '../src/core/safetensors.js';
import { Model } from '../src/models/checkpoint-model.js';
import { relativePositionBucket } from '../src/graph/t5.js';
import { HAVE_CLI } from './cli-run.js';
import { goldenModel, HAVE_SHARED, maxAbs, maxAbsDiff } from './shared.js';
import { expectBad, removeTinyModels, type TinyWeights, writeTinyModel } from './tiny-models.js';
import {
  argmax,
  BART,
  bartConfig,
  bartReference,
  bartWeights,
  bucket64,
  MARIAN,
  MBART,
  MT5,
  SOURCE,
  T5_H,
  T5_V10,
  T5_V11,
  t5Config,
  t5Reference,
  t5Weights,
  TARGET,
  writeT5,
  type Reference,
} from './tiny-seq2seq.js';

const loaded: Model[] = [];
async function open(dir: string): Promise<Model> {
  const m = await Model.load(dir);
  loaded.push(m);
  return m;
}
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-seq2seq-'));
afterAll(async () => {
  await Promise.all(loaded.splice(0).map((m) => m.release()));
  await removeTinyModels();
  await rm(tmp, { recursive: true, force: true });
});

// ---- checks -----------------------------------------------------------------------------------------------

const flat = (x: unknown): number[] =>
  typeof x === 'number' ? [x] : x instanceof Float64Array ? [...x] : (x as unknown[]).flatMap(flat);

/** Every part within 1e-5 of the float64 reference (q, k and hidden states relative to their size). */
function expectMatchesReference(a: Attention, ref: Reference): void {
  const close = (ours: Float32Array | undefined, theirs: unknown, what: string) => {
    const expected = flat(theirs);
    expect(ours, what).toBeDefined();
    expect(maxAbsDiff(ours!, expected), what).toBeLessThan(1e-5 * Math.max(1, maxAbs(expected)));
  };
  for (const part of ATTENTION_PARTS) {
    const p = attentionPart(a, part),
      r = ref[part];
    close(p.attention.data, r.probs, `${part} attention`);
    close(p.query?.data, r.q, `${part} query`);
    close(p.key?.data, r.k, `${part} key`);
  }
  close(a.hiddenLast?.data, ref.encoderHidden, 'encoder hidden_last');
  close(a.encoderDecoder!.decoderHiddenLast?.data, ref.decoderHidden, 'decoder hidden_last');
  if (ref.encoderBias) close(a.positionBias?.data, ref.encoderBias, 'encoder position bias');
  if (ref.decoderBias) close(a.encoderDecoder!.decoderPositionBias?.data, ref.decoderBias, 'decoder position bias');
}

/**
 * One part's invariants: shapes, rows summing to 1, exact zeros above the diagonal of causal attention (and
 * some weight there otherwise), and softmax(q·kᵀ·scale + bias + mask) from the part's own q, k and bias
 * reproducing its attention.
 */
function expectPartInvariants(p: Attention, layers: number, heads: number, headDim: number, part: AttentionPart): void {
  const R = p.tokens.length,
    C = (p.keyTokens ?? p.tokens).length;
  expect(p.attention.dims, `${part} attention`).toEqual([layers, heads, R, C]);
  expect(p.query!.dims, `${part} query`).toEqual([layers, heads, R, headDim]);
  expect(p.key!.dims, `${part} key`).toEqual([layers, heads, C, headDim]);
  if (p.positionBias) expect(p.positionBias.dims).toEqual([heads, R, C]);
  const scale = p.scoreScale ?? 1 / Math.sqrt(headDim);
  const a = p.attention.data,
    q = p.query!.data,
    k = p.key!.data,
    b = p.positionBias?.data;
  let rowSum = 0,
    above = 0,
    softmax = 0;
  for (let lh = 0; lh < layers * heads; lh++) {
    const h = lh % heads;
    for (let i = 0; i < R; i++) {
      const row = a.subarray((lh * R + i) * C, (lh * R + i + 1) * C);
      rowSum = Math.max(rowSum, Math.abs(row.reduce((s, x) => s + x, 0) - 1));
      for (let j = i + 1; j < C; j++) above = Math.max(above, row[j]);
      const scores = Array.from({ length: C }, (_, j) => {
        if (p.causal && j > i) return -Infinity;
        let dot = 0;
        for (let c = 0; c < headDim; c++) dot += q[(lh * R + i) * headDim + c] * k[(lh * C + j) * headDim + c];
        return dot * scale + (b ? b[(h * R + i) * C + j] : 0);
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((x, y) => x + y, 0);
      for (let j = 0; j < C; j++) softmax = Math.max(softmax, Math.abs(e[j] / sum - row[j]));
    }
  }
  expect(rowSum, `${part}: rows sum to 1`).toBeLessThan(1e-5);
  if (p.causal) expect(above, `${part}: exact zeros above the diagonal`).toBe(0);
  else expect(above, `${part}: attends ahead`).toBeGreaterThan(0);
  expect(softmax, `${part}: softmax(q·kᵀ·scale + bias + mask) = attention`).toBeLessThan(1e-5);
}

function expectInvariants(a: Attention, m: Model): void {
  const dims = m.dims as typeof m.dims & { decoderLayers: number };
  expect(a.encoderDecoder).toBeDefined();
  for (const part of ATTENTION_PARTS) {
    expectPartInvariants(
      attentionPart(a, part),
      part === 'encoder' ? dims.layers : dims.decoderLayers,
      dims.heads,
      dims.headDim,
      part,
    );
  }
}

// ---- tests -----------------------------------------------------------------------------------------------

describe.each([BART, MBART, MARIAN, { ...MARIAN, storedPositions: true }])(
  '$variant (stored positions: $storedPositions): tiny random checkpoint',
  (spec) => {
    let w: TinyWeights;
    let m: Model;
    beforeAll(async () => {
      w = bartWeights(spec, 11);
      m = await open(await writeTinyModel(bartConfig(spec), w, 'roberta-tiny'));
    });

    test('teacher forcing: invariants of all three attentions, and the float64 forward pass', async () => {
      const a = await m.attention(SOURCE, { target: TARGET });
      expect(a.model.modelType).toBe(spec.variant);
      expect(a.causal).toBe(false);
      expect(a.tokens).toEqual(m.tokenizer.encode(SOURCE).tokens);
      // The decoder reads the start token, then the target's tokens without their final </s>.
      const target = m.tokenizer.encode(TARGET);
      const start = spec.variant === 'marian' ? '<pad>' : '</s>';
      expect(a.encoderDecoder!.decoderTokens).toEqual([start, ...target.tokens.slice(0, -1)]);
      expect(a.encoderDecoder!.decoderTokens.slice(0, 3)).toEqual([start, '<s>', 'Le']);
      expect(a.encoderDecoder!.target).toBe(TARGET);
      expect(a.scoreScale).toBeUndefined();
      expect(a.positionBias).toBeUndefined();
      expectInvariants(a, m);
      expectMatchesReference(a, bartReference(w, spec, a.inputIds!, a.encoderDecoder!.decoderInputIds!));
    });

    test('greedy generation without a target follows the reference argmax, token by token', async () => {
      const a = await m.attention(SOURCE, { maxNewTokens: 3 });
      const ids = a.encoderDecoder!.decoderInputIds!;
      expect(ids.length).toBeGreaterThan(1);
      expect(ids.length).toBeLessThanOrEqual(4);
      for (let n = 1; n < ids.length; n++)
        expect(ids[n], `token ${n}`).toBe(argmax(bartReference(w, spec, a.inputIds!, ids.slice(0, n)).logits));
      expectInvariants(a, m);
    });
  },
);

describe.skipIf(!HAVE_SHARED)('mBART teacher forcing: shift_tokens_right of the target', () => {
  test('a tokenizer that closes texts with </s> en_XX: the decoder reads en_XX, the target, </s>', async () => {
    const w = bartWeights(MBART, 12);
    const dir = await writeTinyModel(bartConfig(MBART), w, 'roberta-tiny');
    // mBART-cc25's template, on roberta-tiny's vocabulary with <mask> (id 50260) renamed to a language code.
    const file = join(dir, 'tokenizer.json');
    const json = JSON.parse(await readFile(file, 'utf8'));
    const code = 'en_XX';
    delete json.model.vocab['<mask>'];
    json.model.vocab[code] = 50260;
    json.added_tokens = json.added_tokens.map((t: { content: string }) =>
      t.content === '<mask>' ? { ...t, content: code, lstrip: false } : t,
    );
    const special = (id: string) => ({ SpecialToken: { id, type_id: 0 } });
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, special('</s>'), special(code)],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        special('</s>'),
        special(code),
      ],
      special_tokens: {
        '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] },
        [code]: { id: code, ids: [50260], tokens: [code] },
      },
    };
    await writeFile(file, JSON.stringify(json));
    const m = await open(dir);
    const labels = m.tokenizer.encode(TARGET).tokens;
    expect(labels.slice(-2)).toEqual(['</s>', code]);
    const a = await m.attention(SOURCE, { target: TARGET });
    expect(a.encoderDecoder!.decoderTokens).toEqual([code, ...labels.slice(0, -1)]);
    expect(a.encoderDecoder!.decoderTokens.slice(0, 2)).toEqual([code, 'Le']);
    expect(a.encoderDecoder!.decoderTokens.at(-1)).toBe('</s>');
    expectInvariants(a, m);
    expectMatchesReference(a, bartReference(w, MBART, a.inputIds!, a.encoderDecoder!.decoderInputIds!));
  });
});

describe.each([T5_V11, T5_V10, MT5])('$modelType ($proj, $buckets buckets): tiny random checkpoint', (spec) => {
  let w: TinyWeights;
  let m: Model;
  beforeAll(async () => {
    w = t5Weights(spec, 21);
    m = await open(await writeT5(spec, w));
  });

  test('teacher forcing: invariants with the reported bias and no scaling, and the float64 forward pass', async () => {
    const a = await m.attention(SOURCE, { target: TARGET });
    expect(a.tokens).toEqual(['▁The', '▁cat', '▁sat', '▁on', '▁the', '▁mat', '.', '</s>']);
    expect(a.encoderDecoder!.decoderTokens).toEqual([
      '<pad>',
      '▁Le',
      '▁chat',
      '▁est',
      '▁assis',
      '▁sur',
      '▁le',
      '▁tapis',
      '.',
    ]);
    expect(a.scoreScale).toBe(1);
    expect(a.positionBias!.dims).toEqual([T5_H, 8, 8]);
    expect(a.encoderDecoder!.decoderPositionBias!.dims).toEqual([T5_H, 9, 9]);
    expect(m.dims.headDim).toBe(spec.dKv);
    expectInvariants(a, m);
    expectMatchesReference(a, t5Reference(w, spec, a.inputIds!, a.encoderDecoder!.decoderInputIds!));
  });

  test('greedy generation follows the reference argmax', async () => {
    const a = await m.attention(SOURCE, { maxNewTokens: 3 });
    const ids = a.encoderDecoder!.decoderInputIds!;
    expect(ids[0]).toBe(0);
    for (let n = 1; n < ids.length; n++)
      expect(ids[n], `token ${n}`).toBe(argmax(t5Reference(w, spec, a.inputIds!, ids.slice(0, n)).logits));
  });
});

describe('forward() and logits() of an encoder-decoder model', () => {
  test('forward gives the decoder’s last hidden state (extract: false), logits the LM head’s scores', async () => {
    const w = t5Weights(T5_V11, 22);
    const dir = await writeT5(T5_V11, w);
    const [plain, withLogits] = [await Model.load(dir, { extract: false }), await Model.load(dir, { logits: 'all' })];
    loaded.push(plain, withLogits);
    const a = await withLogits.attention(SOURCE, { target: TARGET });
    const ref = t5Reference(w, T5_V11, a.inputIds!, a.encoderDecoder!.decoderInputIds!);
    const hidden = await plain.forward(SOURCE, { target: TARGET });
    expect(hidden.dims).toEqual(a.encoderDecoder!.decoderHiddenLast!.dims);
    expect(maxAbsDiff(hidden.data, a.encoderDecoder!.decoderHiddenLast!.data)).toBeLessThan(1e-6);
    const logits = await withLogits.logits(SOURCE, { target: TARGET });
    const T = a.encoderDecoder!.decoderTokens.length;
    expect(logits.dims).toEqual([T, ref.logits.length]);
    expect(maxAbsDiff(logits.data.subarray((T - 1) * ref.logits.length), ref.logits)).toBeLessThan(1e-4);
    await expectBad(plain.attention(SOURCE, { target: TARGET }), /loaded with extract: false/);
  });
});

describe('T5 relative position buckets', () => {
  /*
   * Worked by hand from modeling_t5.py with T5's defaults, 32 buckets and max distance 128 (r = j − i, key
   * minus query; n = |r|).
   *
   * Bidirectional (encoder): 16 buckets per direction, r > 0 (keys after the query) adds 16. max_exact = 8:
   * n < 8 is its own bucket. Otherwise 8 + ⌊log(n/8) / log(128/8) · 8⌋ = 8 + ⌊2·log₂(n/8)⌋, capped at 15:
   *   n = 8: 8 + ⌊0⌋ = 8;       n = 11: 2·log₂ 1.375 = 0.919 → 8;   n = 12: 2·log₂ 1.5 = 1.170 → 9;
   *   n = 16: 2·log₂ 2 = 2 → 10; n = 22: 2·log₂ 2.75 = 2.919 → 10;  n = 23: 2·log₂ 2.875 = 3.047 → 11;
   *   n = 32: 4 → 12;           n = 64: 6 → 14;   n = 127: 2·log₂ 15.875 = 7.977 → 15;   n = 128: 8 → 16,
   *   capped 15. Unidirectional (decoder self-attention): n = max(−r, 0) (keys after the query all land in bucket 0),
   *   all 32 buckets, max_exact = 16: n < 16 its own; else 16 + ⌊log(n/16) / log(128/16) · 16⌋ = 16 +
   *   ⌊16·log₈(n/16)⌋:
   *   n = 16: 16;   n = 20: 16·log₈ 1.25 = 1.717 → 17;   n = 32: 16/3 = 5.333 → 21;   n = 64: 32/3 = 10.667 →
   *   26;
   *   n = 127: 16·log₈ 7.9375 = 15.94 → 31;   n = 128: 16 → 32, capped 31.
   */
  test.each([
    [0, 0],
    [-1, 1],
    [1, 17],
    [-7, 7],
    [7, 23],
    [-8, 8],
    [-11, 8],
    [-12, 9],
    [-16, 10],
    [16, 26],
    [-22, 10],
    [-23, 11],
    [-32, 12],
    [-64, 14],
    [-127, 15],
    [-128, 15],
    [-1000, 15],
    [128, 31],
    [1000, 31],
  ])('bidirectional, 32 buckets, max distance 128: r = %i → bucket %i', (r, bucket) => {
    expect(relativePositionBucket(r, true, 32, 128)).toBe(bucket);
  });

  test.each([
    [5, 0],
    [0, 0],
    [-1, 1],
    [-15, 15],
    [-16, 16],
    [-20, 17],
    [-32, 21],
    [-64, 26],
    [-127, 31],
    [-128, 31],
    [-5000, 31],
  ])('unidirectional, 32 buckets, max distance 128: r = %i → bucket %i', (r, bucket) => {
    expect(relativePositionBucket(r, false, 32, 128)).toBe(bucket);
  });

  test('float32 (as torch) and plain float64 agree for every distance up to 300, several configurations', () => {
    for (const [buckets, maxDistance] of [
      [32, 128],
      [8, 8],
      [16, 64],
      [64, 256],
    ]) {
      for (const bidirectional of [true, false]) {
        for (let r = -300; r <= 300; r++)
          expect(relativePositionBucket(r, bidirectional, buckets, maxDistance)).toBe(
            bucket64(r, bidirectional, buckets, maxDistance),
          );
      }
    }
  });
});

describe('encoder-decoder results in attention files and pages', () => {
  let bart: Attention, t5: Attention;
  beforeAll(async () => {
    bart = await (await open(await writeTinyModel(bartConfig(BART), bartWeights(BART, 7), 'roberta-tiny'))).attention(
      SOURCE,
      { target: TARGET },
    );
    t5 = await (await open(await writeT5(T5_V11, t5Weights(T5_V11, 8)))).attention(SOURCE, { target: TARGET });
  });

  test('the attention file round-trips every field (BART; T5 with its position biases and score scale)', async () => {
    for (const [name, a] of [
      ['bart', bart],
      ['t5', t5],
    ] as const) {
      const path = join(tmp, `${name}.safetensors`);
      await writeAttentionFile(path, a);
      expect(await readAttentionFile(path)).toEqual(a);
    }
  });

  test(
    'the documented layout: encoder in the plain tensors, decoder and ' +
      'cross tensors, encoder/decoder tokens in the metadata',
    () => {
      const bytes = encodeAttentionFile(t5);
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8'));
      const [S, T, Le, Ld] = [
        t5.tokens.length,
        t5.encoderDecoder!.decoderTokens.length,
        T5_V11.layers,
        T5_V11.decoderLayers,
      ];
      const shapes = Object.fromEntries(
        Object.entries(header)
          .filter(([k]) => k !== '__metadata__')
          .map(([k, v]) => [k, (v as { shape: number[] }).shape]),
      );
      expect(shapes).toEqual({
        attention: [Le, T5_H, S, S],
        query: [Le, T5_H, S, 6],
        key: [Le, T5_H, S, 6],
        hidden_last: [S, 16],
        input_ids: [S],
        position_bias: [T5_H, S, S],
        decoder_attention: [Ld, T5_H, T, T],
        cross_attention: [Ld, T5_H, T, S],
        decoder_query: [Ld, T5_H, T, 6],
        decoder_key: [Ld, T5_H, T, 6],
        cross_query: [Ld, T5_H, T, 6],
        cross_key: [Ld, T5_H, S, 6],
        decoder_hidden_last: [T, 16],
        decoder_position_bias: [T5_H, T, T],
        decoder_input_ids: [T],
      });
      const meta = JSON.parse(header.__metadata__.attnviz);
      expect(meta).toMatchObject({
        version: 1,
        tokens: t5.tokens,
        encoder_tokens: t5.tokens,
        decoder_tokens: t5.encoderDecoder!.decoderTokens,
        target: TARGET,
        score_scale: 1,
        causal: false,
      });
    },
  );

  test('a file written with BertViz-style names (encoder_attention, encoder_tokens) and no q/k reads', () => {
    const [L, H, S, T] = [1, 2, 3, 2];
    const bytes = encodeSafetensors(
      {
        encoder_attention: { dtype: 'F32', shape: [L, H, S, S], data: new Float32Array(L * H * S * S).fill(1 / S) },
        decoder_attention: { dtype: 'F32', shape: [L, H, T, T], data: Float32Array.of(1, 0, 0.5, 0.5, 1, 0, 0.5, 0.5) },
        cross_attention: { dtype: 'F32', shape: [L, H, T, S], data: new Float32Array(L * H * T * S).fill(1 / S) },
      },
      { attnviz: JSON.stringify({ encoder_tokens: ['a', 'b', '</s>'], decoder_tokens: ['<pad>', 'x'] }) },
    );
    const a = decodeAttentionFile(bytes, 'bertviz.safetensors');
    expect(a.tokens).toEqual(['a', 'b', '</s>']);
    expect(a.encoderDecoder!.decoderTokens).toEqual(['<pad>', 'x']);
    expect(attentionPart(a, 'cross').keyTokens).toEqual(['a', 'b', '</s>']);
    expect(a.encoderDecoder!.crossQuery).toBeUndefined();
  });

  test('malformed encoder-decoder files are rejected by name', () => {
    const good = (extra: Record<string, unknown>, tensors: Record<string, number[]>) =>
      encodeSafetensors(
        Object.fromEntries(
          Object.entries({ attention: [1, 1, 2, 2], ...tensors }).map(([k, shape]) => [
            k,
            { dtype: 'F32' as const, shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)) },
          ]),
        ),
        { attnviz: JSON.stringify({ tokens: ['a', 'b'], ...extra }) },
      );
    expect(() => decodeAttentionFile(good({}, { decoder_attention: [1, 1, 3, 3] }), 'x')).toThrow(
      'metadata "decoder_tokens" must be a list of strings',
    );
    expect(() => decodeAttentionFile(good({ decoder_tokens: ['p', 'q', 'r'] }, {}), 'x')).toThrow(
      'no "decoder_attention" tensor',
    );
    expect(() =>
      decodeAttentionFile(good({ decoder_tokens: ['p', 'q', 'r'] }, { decoder_attention: [1, 1, 3, 3] }), 'x'),
    ).toThrow('no "cross_attention" tensor');
    expect(() =>
      decodeAttentionFile(
        good({ decoder_tokens: ['p', 'q', 'r'] }, { decoder_attention: [1, 1, 3, 3], cross_attention: [1, 1, 2, 3] }),
        'x',
      ),
    ).toThrow(
      'tensor "cross_attention" has shape [1, 1, 2, 3], which does not fit 3 decoder tokens and 2 encoder tokens',
    );
    expect(() =>
      decodeAttentionFile(
        good(
          { decoder_tokens: ['p'] },
          { decoder_attention: [1, 1, 1, 1], cross_attention: [1, 1, 1, 2], cross_query: [1, 1, 1, 4] },
        ),
        'x',
      ),
    ).toThrow('"cross_query" and "cross_key" must both be present');
  });

  test('the page encoding carries all three attentions, q/k and biases (12-bit attention, f16 q/k, f32 bias)', () => {
    const back = decodeAttention(encodeAttention(t5));
    expect(back.encoderDecoder!.decoderTokens).toEqual(t5.encoderDecoder!.decoderTokens);
    expect(back.encoderDecoder!.target).toBe(TARGET);
    expect(back.scoreScale).toBe(1);
    expect(back.positionBias!.data).toEqual(t5.positionBias!.data);
    expect(back.encoderDecoder!.decoderPositionBias!.data).toEqual(t5.encoderDecoder!.decoderPositionBias!.data);
    for (const part of ATTENTION_PARTS) {
      const [x, y] = [attentionPart(back, part), attentionPart(t5, part)];
      expect(x.attention.dims).toEqual(y.attention.dims);
      expect(maxAbsDiff(x.attention.data, y.attention.data)).toBeLessThan(3e-4);
      expect(maxAbsDiff(x.key!.data, y.key!.data)).toBeLessThan(1e-2 * maxAbs(y.key!.data));
    }
    const lean = decodeAttention(encodeAttention(t5, { queryKey: false }));
    expect(lean.positionBias).toBeUndefined();
    expect(lean.encoderDecoder!.crossQuery).toBeUndefined();
    expect(lean.encoderDecoder!.cross.dims).toEqual(t5.encoderDecoder!.cross.dims);
  });
});

describe.skipIf(!HAVE_SHARED)('encoder-decoder tokenizers', () => {
  test('a BART folder with only the slow vocab.json + merges.txt tokenizes as with tokenizer.json', async () => {
    const w = bartWeights(BART, 9);
    const [fast, slow] = [
      await open(await writeTinyModel(bartConfig(BART), w, 'roberta-tiny', { golden: 'json' })),
      await open(await writeTinyModel(bartConfig(BART), w, 'roberta-tiny', { golden: 'legacy' })),
    ];
    const [a, b] = [await fast.attention(SOURCE, { target: TARGET }), await slow.attention(SOURCE, { target: TARGET })];
    expect(b.tokens).toEqual(a.tokens);
    expect(b.encoderDecoder!.decoderTokens).toEqual(a.encoderDecoder!.decoderTokens);
    expect(maxAbsDiff(a.encoderDecoder!.cross.data, b.encoderDecoder!.cross.data)).toBe(0);
  });

  test('a T5 folder with neither tokenizer.json nor spiece.model is refused by name', async () => {
    const dir = await writeT5(T5_V11, t5Weights(T5_V11, 10));
    await rm(join(dir, 'tokenizer.json'));
    await expectBad(
      Model.load(dir),
      /no tokenizer in .*: found neither tokenizer\.json nor spiece\.model or sentencepiece\.bpe\.model or spm\.model/,
    );
  });
});

describe('encoder-decoder: bad inputs', () => {
  test('a missing target, a pair, generate()', async () => {
    const m = await open(await writeTinyModel(bartConfig(BART), bartWeights(BART, 3), 'roberta-tiny'));
    await expectBad(
      m.attention(SOURCE),
      /is an encoder-decoder model: give a target text \(--target \/ \{ target \}\) or a number of tokens to generate/,
    );
    await expectBad(m.attention(SOURCE, { target: '  ' }), /target text is empty/);
    await expectBad(m.attention(SOURCE, { target: TARGET, pair: 'B' }), /takes a target text, not a sentence pair/);
    await expectBad(m.attention(SOURCE, { maxNewTokens: 0 }), /max new tokens must be a positive integer/);
    await expectBad(
      m.generate(SOURCE, { maxNewTokens: 2 }),
      /is an encoder-decoder model: attention\(text, \{ maxNewTokens \}\) generates its target/,
    );
  });

  test.skipIf(!HAVE_SHARED)('a target for a model that has no decoder', async () => {
    const bert = await open(goldenModel('bert-tiny'));
    await expectBad(
      bert.attention(SOURCE, { target: TARGET }),
      /model_type bert is not an encoder-decoder model: it takes no target text/,
    );
  });

  test('config fields missing or unsupported, tensors missing or of the wrong shape', async () => {
    const w = bartWeights(BART, 4);
    const write = (config: Record<string, unknown>, rename?: (n: string) => string | null) =>
      writeTinyModel(config, w, 'roberta-tiny', { rename });
    await expectBad(
      // Absent: BartConfig's 12 decoder layers; the checkpoint has 3.
      Model.load(await write({ ...bartConfig(BART), decoder_layers: undefined })),
      /checkpoint is missing tensor "model\.decoder\.layers\.3\./,
    );
    await expectBad(
      Model.load(await write({ ...bartConfig(BART), decoder_attention_heads: 2 })),
      /encoder_attention_heads 4 and decoder_attention_heads 2 differ/,
    );
    await expectBad(
      Model.load(await write({ ...bartConfig(BART), activation_function: 'tanh' })),
      /"activation_function" is "tanh"; supported: gelu, gelu_new, gelu_pytorch_tanh, relu, swish, silu/,
    );
    await expectBad(
      Model.load(
        await write(bartConfig(BART), (n) => (n === 'model.decoder.layers.1.encoder_attn.k_proj.weight' ? null : n)),
      ),
      /checkpoint is missing tensor "model\.decoder\.layers\.1\.encoder_attn\.k_proj\.weight"/,
    );
    await expectBad(
      Model.load(await write({ ...bartConfig(BART), decoder_ffn_dim: 48 })),
      /tensor "model\.decoder\.layers\.0\.fc1\.weight" has shape \[40, 16\]; the config implies \[48, 16\]/,
    );
    await expectBad(
      Model.load(await write(bartConfig(MBART))),
      /checkpoint is missing tensor "model\.encoder\.layer_norm\.weight"/,
    );

    const t5w = t5Weights(T5_V11, 5);
    await expectBad(
      // Absent: T5Config's d_kv 64, which the checkpoint's projections contradict.
      Model.load(await writeT5(T5_V11, t5w, undefined, { ...t5Config(T5_V11), d_kv: undefined })),
      /SelfAttention\.[qkvo]\.weight" has shape \[\d+, \d+\]; the config implies/,
    );
    await expectBad(
      Model.load(await writeT5(T5_V11, t5w, undefined, { ...t5Config(T5_V11), feed_forward_proj: 'gated-tanh' })),
      /feed_forward_proj "gated-tanh": activation "tanh" is not supported/,
    );
    await expectBad(
      Model.load(await writeT5(T5_V11, t5w, undefined, { ...t5Config(T5_V11), feed_forward_proj: 'very-gated-gelu' })),
      /feed_forward_proj "very-gated-gelu" is not "\{activation\}" or "gated-\{activation\}"/,
    );
    await expectBad(
      Model.load(
        await writeT5(T5_V11, t5w, (n) => (n.startsWith('decoder.block.0.layer.0.SelfAttention.relative') ? null : n)),
      ),
      /missing tensor "decoder\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight"/,
    );
    await expectBad(
      Model.load(await writeT5(T5_V11, t5w, undefined, { ...t5Config(T5_V11), relative_attention_num_buckets: 16 })),
      /relative_attention_bias\.weight" has shape \[8, 4\]; the config implies \[16, 4\]/,
    );
  });
});

describe.skipIf(!HAVE_CLI)('attnviz extract --target', () => {
  test('writes all three attentions; without --target it fails in one line', async () => {
    const run = promisify(execFile);
    const root = fileURLToPath(new URL('..', import.meta.url));
    const dir = await writeTinyModel(bartConfig(BART), bartWeights(BART, 6), 'roberta-tiny');
    const out = join(tmp, 'bart.safetensors');
    const { stderr } = await run(
      process.execPath,
      ['dist/src/cli/main.js', 'extract', '--model', dir, '--text', SOURCE, '--target', TARGET, '--out', out],
      { cwd: root },
    );
    expect(stderr).toMatch(
      /^wrote .*: 2 encoder layers, 3 decoder layers × 4 heads × \d+ source and \d+ target tokens\n$/,
    );
    const failed = await run(
      process.execPath,
      ['dist/src/cli/main.js', 'extract', '--model', dir, '--text', SOURCE, '--out', out],
      { cwd: root },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(2);
    expect((failed as { stderr: string }).stderr).toMatch(
      /^attnviz: .* is an encoder-decoder model: give a target text \(--target/,
    );
  });
});
