/**
 * What must hold for any model, checked on the golden models with texts of our own: rows sum to 1, causal
 * models attend to nothing ahead, and softmax(q·kᵀ/√d + mask) computed here from the returned q and k
 * reproduces the returned attention (so q and k are exactly the vectors that made it).
 */
import { afterAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { decodeAttention, encodeAttention } from '../src/core/encode.js';
import type { AttentionModel } from '../src/models/model.js';
import { loadModel } from '../src/models/load-model.js';
import { softmaxError } from './reference.js';
import { goldenModel, HAVE_SHARED } from './shared.js';

const TEXT = 'Attention is all you need, said the paper; the cat, unimpressed, sat on the mat.';
const loaded: AttentionModel[] = [];
afterAll(async () => Promise.all(loaded.map((m) => m.release())));

describe.skipIf(!HAVE_SHARED).each(['bert-tiny', 'gpt2-tiny'])('%s', (name) => {
  let a: Attention;
  test('extracts', async () => {
    const m = await loadModel(goldenModel(name));
    loaded.push(m);
    a = await m.attention(TEXT, { pair: 'A second sentence.' });
    expect(a.attention.dims.slice(2)).toEqual([a.tokens.length, a.tokens.length]);
  });

  test("the special-token mask is the tokenizer's: [CLS] and [SEP] for BERT, none for GPT-2", () => {
    const expected = a.tokens.map((t) => t === '[CLS]' || t === '[SEP]');
    expect(a.special).toEqual(expected);
    expect(expected.filter(Boolean).length).toBe(name === 'bert-tiny' ? 3 : 0);
    expect(decodeAttention(encodeAttention(a)).special, 'the page encoding carries it').toEqual(expected);
  });

  test('every attention row sums to 1', () => {
    const [L, H, T] = a.attention.dims;
    let worst = 0;
    for (let row = 0; row < L * H * T; row++) {
      let sum = 0;
      for (let j = 0; j < T; j++) sum += a.attention.data[row * T + j];
      worst = Math.max(worst, Math.abs(sum - 1));
    }
    expect(worst).toBeLessThan(1e-5);
  });

  test('causal models have exact zeros above the diagonal, others do not', () => {
    const [L, H, T] = a.attention.dims;
    let above = 0;
    for (let lh = 0; lh < L * H; lh++)
      for (let i = 0; i < T; i++)
        for (let j = i + 1; j < T; j++) above = Math.max(above, a.attention.data[(lh * T + i) * T + j]);
    if (a.causal) expect(above).toBe(0);
    else expect(above).toBeGreaterThan(0);
  });

  test('softmax(q·kᵀ/√d + mask) reproduces the attention', () => {
    expect(softmaxError(a)).toBeLessThan(1e-5);
  });
});
