/**
 * Test helper for families without golden data (DistilBERT, ALBERT, ELECTRA, GPT-NeoX): tiny random-init
 * checkpoints in Hugging Face layout written under os.tmpdir() (with a small generated tokenizer), the
 * comparison with the float64 forward pass a test computes from reference.ts, and the invariants every
 * extraction must satisfy (rows sum to 1, causal zeros, softmax(q·kᵀ/√d + mask) reproduces the attention).
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
import { softmaxError, type Rows } from './reference.js';
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

// ---- comparing with the float64 reference (reference.ts) --------------------------------------------------

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
  const p = a.attention.data;
  let rowSum = 0,
    above = 0;
  for (let lh = 0; lh < dims.layers * dims.heads; lh++) {
    for (let i = 0; i < T; i++) {
      const row = p.subarray((lh * T + i) * T, (lh * T + i + 1) * T);
      rowSum = Math.max(rowSum, Math.abs(row.reduce((s, x) => s + x, 0) - 1));
      for (let j = i + 1; j < T; j++) above = Math.max(above, row[j]);
    }
  }
  expect(rowSum, 'rows sum to 1').toBeLessThan(1e-5);
  if (a.causal) expect(above, 'causal: exact zeros above the diagonal').toBe(0);
  else expect(above, 'encoder: attends ahead').toBeGreaterThan(0);
  expect(softmaxError(a), 'softmax(q·kᵀ/√d + mask) = attention').toBeLessThan(1e-5);
}

// ---- bad inputs -------------------------------------------------------------------------------------------

export { expectBad } from './shared.js';
