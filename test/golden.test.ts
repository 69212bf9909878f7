/**
 * The engine against independent references (../shared/golden): every BERT and GPT-2 case, tokens and ids
 * exactly, attention within 1e-4, q/k/hidden_last within 1e-4 × max(1, max |golden|) (golden README).
 */
import { describe, expect, test } from 'vitest';
import { loadModel } from '../src/models/load-model.js';
import { expectMatchesGolden, goldenCases, goldenModel, HAVE_SHARED, loadedOnce, readGoldenCase } from './shared.js';

const model = loadedOnce((name: string) => loadModel(goldenModel(name)));

describe.skipIf(!HAVE_SHARED)('golden cases: BERT and GPT-2', () => {
  const files = goldenCases(['bert-tiny', 'gpt2-tiny']);
  test('there are cases for both families', () => {
    expect(files.filter((f) => f.includes('bert-tiny__')).length).toBeGreaterThanOrEqual(9);
    expect(files.filter((f) => f.includes('gpt2-tiny__')).length).toBeGreaterThanOrEqual(9);
  });

  test.each(files.map((f) => [f.split('/').pop()!, f]))('%s', async (_, file) => {
    const golden = await readGoldenCase(file);
    const m = await model(golden.model);
    // GPT-2 has no pair template: the golden pair case is the two texts joined by one space.
    const a = await m.attention(golden.text, { pair: golden.textPair });
    expectMatchesGolden(a, golden);
  });
});
