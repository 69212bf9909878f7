/**
 * The embedded default model (Universal Sentence Encoder lite, models/tfjs-model.ts): attention found in the
 * TF.js graph by walking it, the encoder run on onnxruntime (graph/use-lite.ts) with the values of the TF.js
 * graph on TF.js (recomputed here on TF.js's cpu backend, the runtime it had before), tokens from USE's own
 * tokenizer (the package's, compared id for id with the port the model uses), and the invariants every
 * Attention keeps — rows sum to 1 and softmax(q·kᵀ/√d) reproduces the attention.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Tokenizer } from '@tensorflow-models/universal-sentence-encoder';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { AttnvizError } from '../src/core/errors.js';
import { loadModel } from '../src/models/load-model.js';
import { findAttentionTaps, TfjsModel } from '../src/models/tfjs-model.js';
import { embeddedModelDir, isTfjsSource } from '../src/load/tfjs-source.js';
import { UseTokenizer } from '../src/load/use-tokenizer.js';

const dir = embeddedModelDir();
const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as [string, number][];
let model: TfjsModel;

beforeAll(async () => {
  const m = await loadModel();
  if (!(m instanceof TfjsModel)) throw new Error('loadModel() did not load the embedded TF.js model');
  model = m;
});
afterAll(async () => {
  await model?.release();
});

/** Largest |softmax(q·kᵀ/√d) − attention| and largest |row sum − 1| over every layer, head and row. */
function invariants(a: Attention): { softmaxError: number; rowError: number } {
  const [L, H, T] = a.attention.dims;
  const D = a.query!.dims[3];
  let softmaxError = 0,
    rowError = 0;
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const z: number[] = [];
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let n = 0; n < D; n++)
            s += a.query!.data[((l * H + h) * T + i) * D + n] * a.key!.data[((l * H + h) * T + j) * D + n];
          z.push(s / Math.sqrt(D));
        }
        const max = Math.max(...z),
          e = z.map((v) => Math.exp(v - max)),
          sum = e.reduce((x, y) => x + y);
        let row = 0;
        for (let j = 0; j < T; j++) {
          const p = a.attention.data[((l * H + h) * T + i) * T + j];
          row += p;
          softmaxError = Math.max(softmaxError, Math.abs(p - e[j] / sum));
        }
        rowError = Math.max(rowError, Math.abs(row - 1));
      }
  return { softmaxError, rowError };
}

describe('the embedded model', () => {
  test(
    'loadModel() with no source loads it: USE lite, 2 layers × ' + '4 heads, 8k vocabulary, from the npm package',
    () => {
      expect(model).toBeInstanceOf(TfjsModel);
      expect(model.source).toBe('embedded');
      expect(model.modelType).toBe('use-lite');
      expect(model.causal).toBe(false);
      expect(model.dims).toMatchObject({ layers: 2, heads: 4, headDim: 128, maxPositions: 128 });
      expect(vocab).toHaveLength(8000);
      expect(dir).toMatch(/@energetic-ai[\\/]model-embeddings-en[\\/]dist$/);
      expect(model.weightBytes).toBeGreaterThan(20e6);
    },
  );

  test("the graph walk finds each layer's Softmax and the q and k entering its matmul", () => {
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const taps = findAttentionTaps(json.modelTopology.node, () => 0.5);
    expect(taps).toHaveLength(2);
    taps.forEach((t, l) => {
      const prefix =
        `module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/Layer_${l}/` +
        'TransformerLayer/MultiheadAttention/';
      expect(t.probs).toBe(`${prefix}DotProductAttention/BaseDotProductAttention/Softmax`);
      expect(t.query).toBe(`${prefix}split_heads/transpose`);
      expect(t.key).toBe(`${prefix}split_heads_1/transpose`);
      // The matmul has adj_y: k arrives as [.., T, d]; the scale is a Mul on q before it.
      expect(t.keyTransposed).toBe(false);
      expect(t.queryTransposed).toBe(false);
      expect(t.scale).toBe(0.5);
    });
  });

  test('the scale is 1/√d of each layer (head sizes 64 and 128)', () => {
    expect(model.headDims).toEqual([64, 128]);
    model.scales.forEach((s, l) => expect(s).toBeCloseTo(1 / Math.sqrt(model.headDims[l]), 7));
  });

  test(
    'tokens are those of the USE tokenizer with the package vocab.json; rows ' +
      'sum to 1; softmax(q·kᵀ/√d) reproduces the attention',
    async () => {
      const text = 'The cat sat on the mat because it was tired.';
      const a = await model.attention(text);
      const ids = new Tokenizer(vocab).encode(text);
      expect(a.inputIds).toEqual(ids);
      expect(a.tokens).toEqual(ids.map((id) => vocab[id][0]));
      expect(a.tokens.slice(0, 3)).toEqual(['▁The', '▁cat', '▁sat']);
      const T = ids.length;
      expect(a.attention.dims).toEqual([2, 4, T, T]);
      expect(a.query!.dims).toEqual([2, 4, T, 128]);
      expect(a.key!.dims).toEqual([2, 4, T, 128]);
      expect(a.model).toEqual({ source: 'embedded', modelType: 'use-lite' });
      expect(a.causal).toBe(false);
      const { softmaxError, rowError } = invariants(a);
      expect(rowError).toBeLessThan(1e-5);
      expect(softmaxError).toBeLessThan(1e-5);
      // Layer 0's 64-dim heads are zero-padded to 128.
      const D = 128;
      for (let n = 64; n < D; n++) expect(a.query!.data[n]).toBe(0);
      expect(a.attention.data.some((v) => v > 0.2 && v < 0.99)).toBe(true);
    },
  );

  test('the same text gives the same attention; heads differ from one another', async () => {
    const a = await model.attention('Attention is all you need.');
    const b = await model.attention('Attention is all you need.');
    expect(b.attention.data).toEqual(a.attention.data);
    const T = a.tokens.length,
      head = (h: number) => a.attention.data.subarray(h * T * T, (h + 1) * T * T);
    expect(head(0)).not.toEqual(head(1));
  });

  test('a sentence pair is the two token sequences one after the other, B marked', async () => {
    const a = await model.attention('The cat sat.', { pair: 'It was tired.' });
    const tokA = new Tokenizer(vocab).encode('The cat sat.'),
      tokB = new Tokenizer(vocab).encode('It was tired.');
    expect(a.inputIds).toEqual([...tokA, ...tokB]);
    expect(a.sentenceBStart).toBe(tokA.length);
    expect(a.pair).toBe('It was tired.');
    expect(invariants(a).softmaxError).toBeLessThan(1e-5);
  });

  test('inputs past 128 tokens are refused, or cut with truncate; empty text is refused', async () => {
    const long = 'word '.repeat(200);
    await expect(model.attention(long)).rejects.toThrow(/takes at most 128 positions/);
    const cut = await model.attention(long, { truncate: true });
    expect(cut.tokens).toHaveLength(128);
    expect(invariants(cut).rowError).toBeLessThan(1e-5);
    await expect(model.attention('')).rejects.toBeInstanceOf(AttnvizError);
  });

  test('the attention file round-trips', async () => {
    const a = await model.attention('Round trip.');
    const b = decodeAttentionFile(encodeAttentionFile(a), 'memory');
    expect(b.tokens).toEqual(a.tokens);
    expect(b.model.modelType).toBe('use-lite');
    expect(b.attention.data).toEqual(a.attention.data);
    expect(b.query!.data).toEqual(a.query!.data);
  });

  test('"embedded" and the package folder name the same model; Hugging Face sources are not TF.js', async () => {
    expect(isTfjsSource(undefined)).toBe(true);
    expect(isTfjsSource('embedded')).toBe(true);
    expect(isTfjsSource(dir)).toBe(true);
    expect(isTfjsSource('openai-community/gpt2')).toBe(false);
    const byDir = await loadModel(dir);
    try {
      const [a, b] = await Promise.all([byDir.attention('Same model.'), model.attention('Same model.')]);
      expect(a.attention.data).toEqual(b.attention.data);
    } finally {
      await byDir.release();
    }
  });

  test('no TF.js engine: neither importing the engine nor running the embedded model starts one', async () => {
    const engine = new URL('../dist/src/models/load-model.js', import.meta.url).href;
    const script = `const e = await import(${JSON.stringify(engine)});
      const before = typeof globalThis._tfengine; const m = await e.loadModel(); await m.attention('Hi there.');
      await m.release(); console.log(before, typeof globalThis._tfengine, m.runtime);`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    expect(stdout.trim()).toBe('undefined undefined onnxruntime');
  });
});

describe('the embedded model on onnxruntime against the TF.js graph on TF.js', () => {
  let reference: TfjsModel;
  beforeAll(async () => {
    reference = await TfjsModel.load('embedded', { runtime: 'tfjs' });
  });
  afterAll(async () => {
    await reference?.release();
  });

  /** Largest |a − b| over `a`, and the largest |a|. */
  const compare = (a: Float32Array, b: Float32Array) => {
    expect(b.length).toBe(a.length);
    let diff = 0,
      max = 0;
    a.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - b[i]));
      max = Math.max(max, Math.abs(v));
    });
    return { diff, max };
  };

  test.each([
    ['8 tokens', 'The cat sat on the mat today', null],
    ['a pair', 'The cat sat.', 'It was tired.'],
    ['128 tokens (cut)', 'the quick brown fox jumps over the lazy dog. '.repeat(20), null],
  ])('%s: attention within 1e-5, q and k within 1e-5 of their largest value', async (_, text, pair) => {
    expect(model.runtime).toBe('onnxruntime');
    expect(reference.runtime).toBe('tfjs');
    const options = { pair, truncate: true };
    const [a, b] = [await reference.attention(text, options), await model.attention(text, options)];
    expect(b.tokens).toEqual(a.tokens);
    expect(b.query!.dims).toEqual(a.query!.dims);
    // Both are float32 with sums in different orders (onnxruntime's GEMM, TF.js's loops): at 128 tokens layer
    // 1's q and k (|q| up to ~13) differ by ~1e-5, as TF.js's own WebAssembly backend differs from its cpu one.
    expect(compare(a.attention.data, b.attention.data).diff).toBeLessThan(1e-5);
    for (const [x, y] of [
      [a.query!.data, b.query!.data],
      [a.key!.data, b.key!.data],
    ]) {
      const { diff, max } = compare(x, y);
      expect(max).toBeGreaterThan(1);
      expect(diff).toBeLessThan(1e-5 * max);
    }
  });

  test("the tokenizer is USE's, id for id, on every line of the README and docs and on odd text", () => {
    const docs = readdirSync(new URL('../docs/', import.meta.url)).map((f) => new URL(`../docs/${f}`, import.meta.url));
    const lines = [new URL('../README.md', import.meta.url), ...docs].flatMap((f) =>
      readFileSync(f, 'utf8').split('\n'),
    );
    const odd = [
      '',
      ' ',
      '  double  spaces ',
      '😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ☃ ﬁ',
      '日本語のテキスト。한국어',
      'ﾊﾝｶｸ ｶﾀｶﾅ',
      '::: ://',
      '\u0000\t tab',
    ];
    const theirs = new Tokenizer(vocab),
      ours = new UseTokenizer(vocab);
    const texts = [...lines, ...odd];
    expect(texts.length).toBeGreaterThan(500);
    for (const text of texts) expect(ours.encode(text), text).toEqual(theirs.encode(text));
  });
});
