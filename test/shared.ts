/** Access to ../shared (golden data, real models): present in CI, possibly absent in a user's clone. */
import { existsSync } from 'node:fs';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { AttnvizError } from '../src/core/errors.js';
import { readSafetensors } from '../src/core/files.js';

/**
 * Whether something tests need is present. In CI (CI=true) it must be: a missing one throws, which fails the
 * test file instead of skipping its tests. Elsewhere the tests that need it are skipped, and `skipping` says
 * why once.
 */
export function present(have: boolean, what: string, skipping: string): boolean {
  if (have) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true: ${what} is missing, so ${skipping} cannot run`);
  console.warn(`skipping ${skipping}: ${what} is missing`);
  return false;
}

export const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));
export const HAVE_SHARED = present(
  existsSync(join(SHARED, 'golden', 'README.md')),
  `${SHARED} (golden data and models)`,
  'the tests that need golden data',
);

export const goldenModel = (name: string) => join(SHARED, 'golden', 'models', name);

export interface GoldenCase {
  file: string;
  model: string;
  input: string;
  text: string;
  textPair: string | null;
  tokens: string[];
  inputIds: number[];
  f32(name: string): Float32Array;
  dims(name: string): number[];
}

/** Golden case files for the given models, e.g. ['bert-tiny', 'gpt2-tiny']. */
export function goldenCases(models: readonly string[]): string[] {
  if (!HAVE_SHARED) return [];
  const dir = join(SHARED, 'golden', 'cases');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors') && models.includes(f.split('__')[0]))
    .sort()
    .map((f) => join(dir, f));
}

export async function readGoldenCase(file: string): Promise<GoldenCase> {
  const { header, bytes } = await readSafetensors(file);
  const meta = Object.fromEntries(Object.entries(header.metadata).map(([k, v]) => [k, JSON.parse(v)]));
  const entry = (name: string) => {
    const e = header.tensors.get(name);
    if (!e) throw new Error(`${file}: no tensor ${name}`);
    return e;
  };
  return {
    file,
    model: meta.model,
    input: meta.input_key,
    text: meta.text,
    textPair: meta.text_pair,
    tokens: meta.tokens,
    inputIds: meta.input_ids,
    f32(name) {
      const e = entry(name);
      const out = new Float32Array(e.byteLength / 4);
      new Uint8Array(out.buffer).set(bytes.subarray(e.offset, e.offset + e.byteLength));
      return out;
    },
    dims: (name) => entry(name).shape,
  };
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * The golden README's acceptance: tokens and ids exact, attention within 1e-4, q/k/hidden within 1e-4 × max(1, max
 * |golden|).
 */
export function expectMatchesGolden(a: Attention, golden: GoldenCase): void {
  expect(a.tokens).toEqual(golden.tokens);
  expect(a.inputIds).toEqual(golden.inputIds);
  expect(a.attention.dims).toEqual(golden.dims('attention'));
  expect(maxAbsDiff(a.attention.data, golden.f32('attention'))).toBeLessThan(1e-4);
  for (const [name, ours] of [
    ['query', a.query],
    ['key', a.key],
    ['hidden_last', a.hiddenLast],
  ] as const) {
    const ref = golden.f32(name);
    expect(ours?.dims, name).toEqual(golden.dims(name));
    expect(maxAbsDiff(ours!.data, ref), name).toBeLessThan(1e-4 * Math.max(1, maxAbs(ref)));
  }
}

/**
 * Awaits `p`, which must reject with a one-line AttnvizError matching every key (a model that loads is released);
 * returns the message.
 */
export async function expectBad(p: Promise<unknown>, ...keys: (string | RegExp)[]): Promise<string> {
  const outcome = await p.then(
    async (value) => {
      if (value && typeof value === 'object' && 'release' in value)
        await (value as { release(): Promise<void> }).release();
      return { ok: true as const };
    },
    (error: unknown) => ({ ok: false as const, error }),
  );
  if (outcome.ok) throw new Error(`expected an AttnvizError matching ${keys.join(', ')}, but it succeeded`);
  const e = outcome.error as Error;
  expect(e, `${e?.name}: ${e?.message}`).toBeInstanceOf(AttnvizError);
  expect(e.message, 'one line').not.toMatch(/[\r\n]/);
  for (const key of keys) expect(e.message).toMatch(key);
  return e.message;
}

/**
 * Loads each model once per test file (keyed by name) and releases them all after the file's tests:
 * `const model = loadedOnce((name) => loadModel(goldenModel(name)))`.
 */
export function loadedOnce<K, M extends { release(): Promise<void> }>(
  load: (key: K) => Promise<M>,
): (key: K) => Promise<M> {
  const models = new Map<K, Promise<M>>();
  afterAll(async () => {
    for (const m of models.values()) await (await m).release();
  });
  return (key) => {
    if (!models.has(key)) models.set(key, load(key));
    return models.get(key)!;
  };
}
