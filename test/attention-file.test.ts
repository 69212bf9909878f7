/** The attention file: round trip, reading minimal PyTorch-style files, rejecting malformed ones. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { attentionPart, type Attention } from '../src/core/attention.js';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { readAttentionFile, writeAttentionFile } from '../src/core/files.js';
import { AttnvizError } from '../src/core/errors.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import { decodeHeader, encodeSafetensors } from '../src/core/safetensors.js';
import { layerMatrix } from '../src/views/matrix.js';
import { HAVE_SHARED, SHARED } from './shared.js';

const tmp = await mkdtemp(join(tmpdir(), 'attnviz-file-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** `x` made into rows of `n` probabilities: |x| normalised per row. */
function rows(x: Float32Array, n: number): Float32Array {
  for (let r = 0; r < x.length; r += n) {
    const row = x.subarray(r, r + n);
    const sum = row.reduce((s, v) => s + Math.abs(v), 0);
    row.forEach((v, i) => (row[i] = Math.abs(v) / sum));
  }
  return x;
}

/** A small, fully populated Attention with distinct values everywhere. */
function sample(): Attention {
  const [L, H, T, d, D] = [2, 3, 4, 5, 6];
  const seq = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k));
  return {
    tokens: ['[CLS]', '<script>alert(1)</script>', '" onmouseover="x', '[SEP]'],
    text: 'a',
    pair: 'b',
    sentenceBStart: 2,
    model: { source: 'somewhere/bert', modelType: 'bert' },
    causal: false,
    // Distinct probabilities: each row of |sin| values normalised to sum to 1 (files are checked for that).
    attention: { dims: [L, H, T, T], data: rows(seq(L * H * T * T, 1), T) },
    query: { dims: [L, H, T, d], data: seq(L * H * T * d, 2) },
    key: { dims: [L, H, T, d], data: seq(L * H * T * d, 3) },
    hiddenLast: { dims: [T, D], data: seq(T * D, 4) },
    inputIds: [101, 7, 99999, 102],
    special: [true, false, false, true],
  };
}

describe('attention file', () => {
  test('round-trips every field through a file', async () => {
    const a = sample();
    const path = join(tmp, 'a.safetensors');
    await writeAttentionFile(path, a);
    expect(await readAttentionFile(path)).toEqual(a);
  });

  test('stores the documented layout: F32 tensors and JSON metadata under "attnviz"', () => {
    const bytes = encodeAttentionFile(sample());
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header.attention).toMatchObject({ dtype: 'F32', shape: [2, 3, 4, 4] });
    expect(header.input_ids).toMatchObject({ dtype: 'I64', shape: [4] });
    const meta = JSON.parse(header.__metadata__.attnviz);
    expect(meta).toEqual({
      version: 1,
      tokens: sample().tokens,
      text: 'a',
      pair: 'b',
      sentence_b_start: 2,
      model: { source: 'somewhere/bert', model_type: 'bert' },
      causal: false,
      special_tokens_mask: [1, 0, 0, 1],
    });
  });

  test('reads special_tokens_mask as 0/1 or booleans, and rejects one of the wrong length', () => {
    const file = (mask: unknown) =>
      encodeSafetensors(
        { attention: { dtype: 'F32', shape: [1, 1, 3, 3], data: new Float32Array(9).fill(1 / 3) } },
        { attnviz: JSON.stringify({ tokens: ['<s>', 'a', '</s>'], special_tokens_mask: mask }) },
      );
    expect(decodeAttentionFile(file([1, 0, 1]), 'm').special).toEqual([true, false, true]);
    expect(decodeAttentionFile(file([false, true, false]), 'm').special).toEqual([false, true, false]);
    expect(() => decodeAttentionFile(file([1, 0]), 'm')).toThrow(
      'metadata "special_tokens_mask" must be 3 values, 0/1 or true/false',
    );
    expect(() => decodeAttentionFile(file([1, 2, 0]), 'm')).toThrow(AttnvizError);
  });

  test("cross attention's keys keep the encoder's special mask: part, file, page encoding, views", () => {
    // mBART-style: the language code is special, and no token-text guess knows it.
    const [T, S] = [2, 3];
    const cross = Float32Array.of(0.5, 0.25, 0.25, 0.2, 0.6, 0.2);
    const a: Attention = {
      tokens: ['en_XX', 'Hi', '</s>'],
      text: 'Hi',
      pair: null,
      sentenceBStart: null,
      model: { source: 'm', modelType: 'mbart' },
      causal: false,
      special: [true, false, true],
      attention: { dims: [1, 1, S, S], data: new Float32Array(S * S).fill(1 / S) },
      encoderDecoder: {
        decoderTokens: ['</s>', 'Hallo'],
        target: 'Hallo',
        decoderSpecial: [true, false],
        decoder: { dims: [1, 1, T, T], data: Float32Array.of(1, 0, 0.5, 0.5) },
        cross: { dims: [1, 1, T, S], data: cross },
      },
    };
    const part = attentionPart(a, 'cross');
    expect(part.keyTokens).toEqual(a.tokens);
    expect(part.keySpecial).toEqual([true, false, true]);
    const file = decodeAttentionFile(encodeAttentionFile(part), 'cross.safetensors');
    const meta = JSON.parse(decodeHeader(encodeAttentionFile(part), 'cross').metadata.attnviz);
    expect(meta.key_special_tokens_mask).toEqual([1, 0, 1]);
    for (const b of [part, file, decodeAttention(encodeAttention(part))]) {
      expect(b.keySpecial).toEqual([true, false, true]);
      const hidden = layerMatrix(b, 0, { filter: 'all', hideSpecial: true });
      // Rows: both decoder tokens but the start token; columns: "Hi" alone, each row renormalised to 1.
      expect([hidden.rows, hidden.cols, [...hidden.data]]).toEqual([[1], [1], [1]]);
    }
  });

  test('reads a file with only attention and tokens (as written from PyTorch output_attentions), I32 ids', () => {
    const attention = Float32Array.from({ length: 12 * 4 }, () => 0.25);
    const bytes = encodeSafetensors(
      {
        attention: { dtype: 'F32', shape: [3, 1, 4, 4], data: attention },
        input_ids: { dtype: 'I32', shape: [4], data: Int32Array.of(1, 2, 3, 4) },
      },
      { attnviz: JSON.stringify({ tokens: ['a', 'b', 'c', 'd'] }) },
    );
    const a = decodeAttentionFile(bytes, 'min.safetensors');
    expect(a.tokens).toEqual(['a', 'b', 'c', 'd']);
    expect(a.attention.dims).toEqual([3, 1, 4, 4]);
    expect(a.query).toBeUndefined();
    expect(a.inputIds).toEqual([1, 2, 3, 4]);
    expect(a.sentenceBStart).toBeNull();
    expect(a.special).toBeUndefined();
  });

  test.each([
    ['no attnviz metadata', {}, 'no "attnviz" entry'],
    ['tokens missing', { attnviz: '{}' }, '"tokens" must be a list'],
    ['metadata not JSON', { attnviz: '{' }, 'not valid JSON'],
    ['tokens of the wrong count', { attnviz: JSON.stringify({ tokens: ['a'] }) }, 'does not fit 1 tokens'],
  ])('rejects %s', (_, metadata, message) => {
    const bytes = encodeSafetensors(
      { attention: { dtype: 'F32', shape: [1, 1, 2, 2], data: new Float32Array(4) } },
      metadata,
    );
    expect(() => decodeAttentionFile(bytes, 'bad.safetensors')).toThrow(AttnvizError);
    expect(() => decodeAttentionFile(bytes, 'bad.safetensors')).toThrow(message);
  });

  test('rejects q without k', () => {
    const bytes = encodeSafetensors(
      {
        attention: { dtype: 'F32', shape: [1, 1, 2, 2], data: new Float32Array(4) },
        query: { dtype: 'F32', shape: [1, 1, 2, 3], data: new Float32Array(6) },
      },
      { attnviz: JSON.stringify({ tokens: ['a', 'b'] }) },
    );
    expect(() => decodeAttentionFile(bytes, 'q.safetensors')).toThrow('"query" and "key" must both be present');
  });

  test('a failed write leaves no file behind', async () => {
    const path = join(tmp, 'missing-dir', 'x.safetensors');
    await expect(writeAttentionFile(path, sample())).rejects.toThrow();
    await expect(readFile(path)).rejects.toThrow();
  });
});

describe.skipIf(!HAVE_SHARED)('golden case files', () => {
  test('read as attention files (one JSON string per metadata field)', async () => {
    const a = await readAttentionFile(join(SHARED, 'golden/cases/bert-tiny__cat_pair.safetensors'));
    expect(a.tokens.slice(0, 3)).toEqual(['[CLS]', 'the', 'cat']);
    expect(a.pair).toBe('The cat lay on the rug.');
    expect(a.attention.dims).toEqual([3, 4, 17, 17]);
    expect(a.query!.dims).toEqual([3, 4, 17, 10]);
    expect(a.inputIds![0]).toBe(101);
  });
});
