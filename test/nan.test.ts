/**
 * Issue 11 item 5 (silent NaN) and item 11 (empty dimensions): results and attention files are checked for
 * non-finite values and rows that do not sum to 1, with a one-line error naming layer and head.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { type Attention, attentionProblem, probabilityProblem } from '../src/core/attention.js';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { decodeHeader, encodeSafetensors } from '../src/core/safetensors.js';
import { loadModel } from '../src/models/load-model.js';
import { expectBad, goldenModel, HAVE_SHARED } from './shared.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A copy of a golden model, editable. */
async function copyOf(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-nan-'));
  dirs.push(dir);
  await cp(goldenModel(name), dir, { recursive: true });
  return dir;
}

/** 2 layers × 2 heads × 3 tokens of valid causal attention, q and k. */
function small(): Attention {
  const T = 3;
  const attention = new Float32Array(2 * 2 * T * T);
  for (let m = 0; m < 4; m++)
    for (let r = 0; r < T; r++) for (let c = 0; c <= r; c++) attention[(m * T + r) * T + c] = 1 / (r + 1);
  return {
    tokens: ['a', 'b', 'c'],
    text: 'a b c',
    pair: null,
    sentenceBStart: null,
    model: { source: 'test', modelType: 'gpt2' },
    causal: true,
    attention: { dims: [2, 2, T, T], data: attention },
    query: { dims: [2, 2, T, 4], data: new Float32Array(48).fill(0.5) },
    key: { dims: [2, 2, T, 4], data: new Float32Array(48).fill(0.25) },
  };
}

describe('issue 11 item 5: probabilities are checked', () => {
  test('probabilityProblem names layer, head and row of NaN, Inf, negative values and bad sums', () => {
    const a = small();
    expect(attentionProblem(a)).toBeNull();
    const at = (l: number, h: number, r: number, c: number) => ((l * 2 + h) * 3 + r) * 3 + c;
    const cases: [number, number, RegExp][] = [
      [Number.NaN, at(1, 0, 2, 1), /^attention layer 1 head 0: row 2 holds NaN \(column 1\)/],
      [Number.POSITIVE_INFINITY, at(0, 1, 1, 0), /^attention layer 0 head 1: row 1 holds Infinity/],
      [-0.5, at(1, 1, 0, 0), /^attention layer 1 head 1: row 0 holds -0\.5000/],
      [0.9, at(0, 1, 0, 0), /^attention layer 0 head 1: row 0 sums to 0\.9000, not 1$/],
      [-1.5e32, at(1, 1, 2, 2), /^attention layer 1 head 1: row 2 holds -1\.500e\+32/],
    ];
    for (const [value, index, message] of cases) {
      const b = small();
      b.attention.data[index] = value;
      expect(attentionProblem(b)).toMatch(message);
    }
    const q = small();
    q.query!.data[20] = Number.NaN; // layer 0 (24 per layer), head 1 (12 per head)
    expect(attentionProblem(q)).toBe('query layer 0 head 1 holds NaN');
    // Within tolerance: float rounding is not a problem.
    const r = small();
    r.attention.data[at(0, 0, 0, 0)] = 1 + 1e-4;
    expect(probabilityProblem(r.attention, 'attention')).toBeNull();
  });

  test('an attention file with NaN is a one-line error naming layer and head; onInvalid reads it anyway', async () => {
    const a = small();
    a.attention.data[(3 * 3 + 1) * 3] = Number.NaN; // layer 1 head 1 row 1
    const bytes = encodeAttentionFile(a);
    await expectBad(
      Promise.resolve().then(() => decodeAttentionFile(bytes, 'nan.safetensors')),
      /^nan\.safetensors: attention layer 1 head 1: row 1 holds NaN/,
    );
    const warnings: string[] = [];
    const read = decodeAttentionFile(bytes, 'nan.safetensors', { onInvalid: (w) => warnings.push(w) });
    expect(Number.isNaN(read.attention.data[(3 * 3 + 1) * 3])).toBe(true);
    expect(warnings).toEqual([
      'nan.safetensors: attention layer 1 head 1: row 1 holds NaN (column 0), not a probability',
    ]);
  });

  test.skipIf(!HAVE_SHARED)('one NaN in a q_proj weight: the model run fails naming layer and head', async () => {
    const dir = await copyOf('llama-tiny-mha');
    const file = join(dir, 'model.safetensors');
    const bytes = await readFile(file);
    const q = decodeHeader(bytes, 'model.safetensors').tensors.get('model.layers.1.self_attn.q_proj.weight')!;
    // Row 13 of q_proj is head 1's output (head_dim 12); its first input column.
    bytes.writeFloatLE(Number.NaN, q.offset + 13 * 48 * 4);
    await writeFile(file, bytes);
    const m = await loadModel(dir);
    try {
      // The streaming extraction's own check (models/layer-stream.ts) or loadModel's: either names layer 1.
      await expectBad(m.attention('The cat sat.'), /(invalid attention: attention )?layer 1\b/);
    } finally {
      await m.release();
    }
  });

  test.skipIf(!HAVE_SHARED)('rope_theta -1: an error, not all-NaN attention', async () => {
    const dir = await copyOf('llama-tiny-mha');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, rope_theta: -1 }));
    await expectBad(
      loadModel(dir).then(async (m) => {
        try {
          return await m.attention('The cat sat.');
        } finally {
          await m.release();
        }
      }),
      /rope_theta|layer 0 head 0/,
    );
  });
});

describe('issue 11 items 9 and 11: metadata and dimensions', () => {
  test('zero layers, heads or tokens are refused at read time', async () => {
    for (const dims of [
      [0, 2, 3, 3],
      [2, 0, 3, 3],
    ]) {
      const bytes = encodeSafetensors(
        { attention: { dtype: 'F32', shape: dims, data: new Float32Array(0) } },
        { attnviz: JSON.stringify({ version: 1, tokens: ['a', 'b', 'c'], text: '', causal: false }) },
      );
      await expectBad(
        Promise.resolve().then(() => decodeAttentionFile(bytes, 'zero')),
        /none may be 0/,
      );
    }
    const none = encodeSafetensors(
      { attention: { dtype: 'F32', shape: [2, 2, 0, 0], data: new Float32Array(0) } },
      { attnviz: JSON.stringify({ version: 1, tokens: [], text: '', causal: false }) },
    );
    await expectBad(
      Promise.resolve().then(() => decodeAttentionFile(none, 'zero')),
      /0 tokens: none may be 0/,
    );
  });

  test('metadata "null" (or any non-object) is a one-line error, not a TypeError', async () => {
    for (const meta of ['null', '[]', '3', '"x"']) {
      const bytes = encodeSafetensors(
        { attention: { dtype: 'F32', shape: [1, 1, 1, 1], data: new Float32Array([1]) } },
        { attnviz: meta },
      );
      await expectBad(
        Promise.resolve().then(() => decodeAttentionFile(bytes, 'meta')),
        /must be a JSON object/,
      );
    }
  });
});
