/**
 * Test helper for families without golden data (DistilBERT, ALBERT, ELECTRA, GPT-NeoX): tiny random-init
 * checkpoints in Hugging Face layout written under os.tmpdir() (with a small generated tokenizer),
 * a plain float64 forward pass in JavaScript to compare the graph against (written from the published
 * definitions in transformers' modeling_*.py, sharing no code with src/graph), and the invariants every
 * extraction must satisfy (rows sum to 1, causal zeros, softmax(q·kᵀ/√d + mask) reproduces the attention).
 *
 * The JS forward is a second reading of the same modeling files, not an independent reference: it catches
 * wiring mistakes in a graph (a missed bias, a residual in the wrong place, a wrong qkv layout), not a
 * misreading shared by both.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { expect } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { encodeSafetensors, type TensorToWrite } from '../src/core/safetensors.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { familyFor } from '../src/graph/families.js';
import { readConfig } from '../src/load/config.js';
import { Weights } from '../src/load/weights.js';
import { goldenModel, maxAbs, maxAbsDiff } from './shared.js';
import { tinyTokenizerFiles, type TinyTokenizer } from './tiny-tokenizers.js';

// ---- random tensors ---------------------------------------------------------------------------------------

/** mulberry32 with Box–Muller normals: the same weights on every run. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
}

export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

/** A checkpoint being made: named float32 tensors, random unless given. */
export class TinyWeights {
  readonly tensors = new Map<string, Tensor32>();
  constructor(private readonly rng: Rng) {}

  /** N(mean, std²) tensor of `shape` under `name`; returns its values. */
  add(name: string, shape: number[], std: number, mean = 0): Float32Array {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => mean + std * this.rng.normal());
    this.tensors.set(name, { shape, data });
    return data;
  }

  set(name: string, shape: number[], data: Float32Array): void {
    expect(data.length).toBe(shape.reduce((a, b) => a * b, 1));
    this.tensors.set(name, { shape, data });
  }

  get(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`TinyWeights: no ${name}`);
    return t.data;
  }

  /** LayerNorm weight ≈ 1 and bias ≈ 0, with noise so that a swapped or missed one shows. */
  layerNorm(prefix: string, width: number): void {
    this.add(`${prefix}.weight`, [width], 0.05, 1);
    this.add(`${prefix}.bias`, [width], 0.05);
  }

  /** nn.Linear `[out, in]` + bias; `std` for the weight (biases N(0, 0.05)). */
  linear(prefix: string, nIn: number, nOut: number, std: number, bias = true): void {
    this.add(`${prefix}.weight`, [nOut, nIn], std);
    if (bias) this.add(`${prefix}.bias`, [nOut], 0.05);
  }
}

// ---- model folders ----------------------------------------------------------------------------------------

const made: string[] = [];

/**
 * Writes config.json, model.safetensors (F32) and a tokenizer in the layout of golden model `tokenizerFrom`
 * into a fresh folder under os.tmpdir(): a small generated one (tiny-tokenizers.ts; no ../shared needed), or
 * with `golden` the golden model's own files. `rename` may rename or drop tensors.
 */
export async function writeTinyModel(
  config: Record<string, unknown>,
  weights: TinyWeights,
  tokenizerFrom: TinyTokenizer | 'llama-tiny-mha',
  options: {
    rename?: (name: string) => string | null;
    /** The golden model's own tokenizer instead: its tokenizer.json, or ('legacy') only its slow files. */
    golden?: 'json' | 'legacy';
    extra?: Record<string, TensorToWrite>;
  } = {},
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-tiny-'));
  made.push(dir);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  if (options.golden) {
    // Golden files, to check the conversion of slow files against the real tokenizer.json (needs ../shared).
    const src = goldenModel(tokenizerFrom);
    const files =
      options.golden === 'legacy'
        ? ['tokenizer_config.json', 'vocab.txt', 'vocab.json', 'merges.txt']
        : ['tokenizer.json', 'tokenizer_config.json'];
    for (const f of files) if (existsSync(join(src, f))) await copyFile(join(src, f), join(dir, f));
  } else {
    if (tokenizerFrom === 'llama-tiny-mha')
      throw new Error('writeTinyModel: llama-tiny-mha has no generated tokenizer (golden only)');
    const vocabSize = typeof config.vocab_size === 'number' ? config.vocab_size : 0;
    for (const [f, text] of Object.entries(tinyTokenizerFiles(tokenizerFrom, vocabSize)))
      await writeFile(join(dir, f), text);
  }
  const out: Record<string, TensorToWrite> = {};
  for (const [name, t] of weights.tensors) {
    const target = options.rename ? options.rename(name) : name;
    if (target !== null) out[target] = { dtype: 'F32', shape: t.shape, data: t.data };
  }
  Object.assign(out, options.extra);
  await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(out, { format: 'pt' }));
  return dir;
}

export async function removeTinyModels(): Promise<void> {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** The ONNX graph the engine would build for the model folder `dir` (to inspect inputs and initializers). */
export async function graphOf(dir: string): Promise<onnxProto.onnx.ModelProto> {
  const config = await readConfig(dir);
  const family = familyFor(config);
  const weights = await Weights.open(dir);
  const g = new GraphBuilder(weights);
  family.build(g, weights, family.readConfig(config), { extract: true });
  return onnxProto.onnx.ModelProto.decode(g.toBytes());
}

// ---- a float64 forward pass -------------------------------------------------------------------------------

/** Rows of a `[T, n]` activation. */
export type Rows = Float64Array[];

export function gather(table: Float32Array, width: number, ids: readonly number[]): Rows {
  return ids.map((id) => Float64Array.from(table.subarray(id * width, (id + 1) * width)));
}

export function addRows(...xs: Rows[]): Rows {
  return xs[0].map((row, t) => row.map((v, j) => xs.slice(1).reduce((s, x) => s + x[t][j], v)));
}

/** x·Wᵀ + b with W `[out, in]`. */
export function linear(x: Rows, w: Float32Array, b: Float32Array | null, nOut: number): Rows {
  return x.map((row) => {
    const y = new Float64Array(nOut);
    for (let o = 0; o < nOut; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < row.length; i++) s += w[o * row.length + i] * row[i];
      y[o] = s;
    }
    return y;
  });
}

export function layerNorm(x: Rows, g: Float32Array, b: Float32Array, eps: number): Rows {
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
    return row.map((v, j) => ((v - mean) / Math.sqrt(variance + eps)) * g[j] + b[j]);
  });
}

/** erf to ~1e-7 relative (Numerical Recipes' erfc, Chebyshev fit): plenty for a 1e-4 comparison. */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

export function activation(x: Rows, name: string): Rows {
  const f: Record<string, (v: number) => number> = {
    gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
    gelu_new: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    relu: (v) => Math.max(0, v),
  };
  return x.map((row) => row.map(f[name]));
}

/** `[T, H·d]` → per head `[H][T]` vectors of d. */
export function splitHeads(x: Rows, heads: number, d: number): Rows[] {
  return Array.from({ length: heads }, (_, h) => x.map((row) => row.slice(h * d, (h + 1) * d)));
}

/** softmax(q·kᵀ·scale (+ causal mask))·v per head; the context merged back to `[T, H·d]`. */
export function attend(
  q: Rows[],
  k: Rows[],
  v: Rows[],
  scale: number,
  causal: boolean,
): { probs: Rows[]; context: Rows } {
  const T = q[0].length,
    d = q[0][0].length,
    H = q.length;
  const probs = q.map((qh, h) =>
    qh.map((qi, i) => {
      const s = k[h].map((kj, j) => (causal && j > i ? -Infinity : qi.reduce((a, x, c) => a + x * kj[c], 0) * scale));
      const max = Math.max(...s);
      const e = s.map((x) => Math.exp(x - max));
      const sum = e.reduce((a, b) => a + b, 0);
      return Float64Array.from(e, (x) => x / sum);
    }),
  );
  const context = Array.from({ length: T }, (_, t) => {
    const row = new Float64Array(H * d);
    for (let h = 0; h < H; h++)
      for (let j = 0; j < T; j++) for (let c = 0; c < d; c++) row[h * d + c] += probs[h][t][j] * v[h][j][c];
    return row;
  });
  return { probs, context };
}

/** HF rotate_half RoPE on the first `dims` of each head vector; position of row t is t. */
export function rope(x: Rows[], dims: number, base: number): Rows[] {
  const half = dims / 2;
  return x.map((head) =>
    head.map((row, t) => {
      const y = Float64Array.from(row);
      for (let j = 0; j < half; j++) {
        const angle = t / base ** ((2 * j) / dims);
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        y[j] = row[j] * c - row[j + half] * s;
        y[j + half] = row[j + half] * c + row[j] * s;
      }
      return y;
    }),
  );
}

/** What a reference forward returns, per layer `[H][T]` rows. */
export interface Reference {
  q: Rows[][];
  k: Rows[][];
  probs: Rows[][];
  hidden: Rows;
}

const flat = (x: unknown): number[] =>
  typeof x === 'number' ? [x] : x instanceof Float64Array ? [...x] : (x as unknown[]).flatMap(flat);

/**
 * Ten times tighter than the golden README's tolerances (attention 1e-5 absolute, q/k/hidden 1e-5 ×
 * max(1, max |reference|)): these tiny models land around 1e-6 in float32, while a wrong detail the golden
 * tolerance would barely catch (GELU erf for tanh in ALBERT) moves them by 2e-4 or more.
 */
export function expectMatchesReference(a: Attention, ref: Reference): void {
  expect(maxAbsDiff(a.attention.data, flat(ref.probs)), 'attention').toBeLessThan(1e-5);
  for (const [name, ours, theirs] of [
    ['query', a.query, ref.q],
    ['key', a.key, ref.k],
    ['hidden_last', a.hiddenLast, ref.hidden],
  ] as const) {
    const expected = flat(theirs);
    expect(maxAbsDiff(ours!.data, expected), name).toBeLessThan(1e-5 * Math.max(1, maxAbs(expected)));
  }
}

// ---- invariants -------------------------------------------------------------------------------------------

/**
 * Shapes, rows summing to 1, exact zeros above the diagonal for causal models (and none for the others),
 * and softmax(q·kᵀ/√d + mask) from the returned q, k reproducing the returned attention.
 */
export function expectInvariants(
  a: Attention,
  dims: { layers: number; heads: number; headDim: number; hidden: number },
): void {
  const T = a.tokens.length;
  expect(a.attention.dims).toEqual([dims.layers, dims.heads, T, T]);
  expect(a.query!.dims).toEqual([dims.layers, dims.heads, T, dims.headDim]);
  expect(a.key!.dims).toEqual([dims.layers, dims.heads, T, dims.headDim]);
  expect(a.hiddenLast!.dims).toEqual([T, dims.hidden]);
  const p = a.attention.data,
    q = a.query!.data,
    k = a.key!.data,
    d = dims.headDim;
  let rowSum = 0,
    above = 0,
    softmax = 0;
  for (let lh = 0; lh < dims.layers * dims.heads; lh++) {
    for (let i = 0; i < T; i++) {
      const row = p.subarray((lh * T + i) * T, (lh * T + i + 1) * T);
      rowSum = Math.max(rowSum, Math.abs(row.reduce((s, x) => s + x, 0) - 1));
      for (let j = i + 1; j < T; j++) above = Math.max(above, row[j]);
      const scores = Array.from({ length: T }, (_, j) => {
        if (a.causal && j > i) return -Infinity;
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(lh * T + i) * d + c] * k[(lh * T + j) * d + c];
        return dot / Math.sqrt(d);
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const sum = e.reduce((x, y) => x + y, 0);
      for (let j = 0; j < T; j++) softmax = Math.max(softmax, Math.abs(e[j] / sum - row[j]));
    }
  }
  expect(rowSum, 'rows sum to 1').toBeLessThan(1e-5);
  if (a.causal) expect(above, 'causal: exact zeros above the diagonal').toBe(0);
  else expect(above, 'encoder: attends ahead').toBeGreaterThan(0);
  expect(softmax, 'softmax(q·kᵀ/√d + mask) = attention').toBeLessThan(1e-5);
}

// ---- bad inputs -------------------------------------------------------------------------------------------

export { expectBad } from './shared.js';
