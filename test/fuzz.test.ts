/**
 * Issue 11's fuzz suite: seeded, structure-aware mutations of a valid input for every reader (attention file,
 * safetensors weights, GGUF, config.json, tokenizer.json, vocab.txt, vocab.json + merges.txt, ONNX). The only
 * acceptable outcomes are a result or a one-line AttnvizError (≤ 300 characters); anything else (another
 * error, a case over CASE_MS, a mutation that must fail but reads) fails the test with its seed. Replay one
 * case with FUZZ_SEED=<seed> npx vitest run test/fuzz.test.ts. The counts go to bench/RESULTS.md.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { AttnvizError, MAX_MESSAGE_CHARS } from '../src/core/errors.js';
import { familyFor } from '../src/graph/families.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { ModelConfig } from '../src/load/config.js';
import { readGguf } from '../src/load/gguf.js';
import { ggufTokenizer } from '../src/load/gguf-tokenizer.js';
import { loadTokenizer } from '../src/load/tokenizer.js';
import { Weights } from '../src/load/weights.js';
import { findOnnxAttention } from '../src/models/onnx-tap.js';
import { decodeHeader } from '../src/core/safetensors.js';
import { goldenModel, HAVE_SHARED, SHARED } from './shared.js';
import { Rng } from './tiny-models.js';
import { tinyTokenizerFiles } from './tiny-tokenizers.js';

/** A case taking longer than this counts as a hang. */
const CASE_MS = 3000;
/** Heap growth over one case beyond this counts as unbounded memory. */
const CASE_BYTES = 512 * 2 ** 20;
const REPLAY = process.env.FUZZ_SEED === undefined ? null : Number(process.env.FUZZ_SEED);

const tmp = await mkdtemp(join(tmpdir(), 'attnviz-fuzz-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

type Outcome = 'ok' | 'clean';
interface Tally {
  cases: number;
  ok: number;
  clean: number;
  failures: string[];
}
const tallies: Record<string, Tally> = {};

/**
 * Runs `count` cases of `reader`: case i has seed `base + i`; `make(rng)` gives the mutated input and whether
 * the mutation must be refused; `read` reads it.
 */
async function fuzz<T>(
  reader: string,
  base: number,
  count: number,
  make: (rng: Rng, seed: number) => Promise<{ input: T; mustFail: boolean }>,
  read: (input: T) => Promise<unknown>,
): Promise<void> {
  const tally: Tally = (tallies[reader] = { cases: 0, ok: 0, clean: 0, failures: [] });
  for (let i = 0; i < count; i++) {
    const seed = base + i;
    if (REPLAY !== null && REPLAY !== seed) continue;
    const { input, mustFail } = await make(new Rng(seed), seed);
    const heap = process.memoryUsage().heapUsed;
    const start = performance.now();
    let outcome: Outcome | string;
    try {
      await read(input);
      outcome = mustFail ? 'silent wrong result: a mutation that must be refused was read' : 'ok';
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      outcome =
        e instanceof AttnvizError && !/[\r\n]/.test(message) && message.length <= MAX_MESSAGE_CHARS
          ? 'clean'
          : `crash: ${(e as Error)?.name}: ${message.slice(0, 200)}`;
    }
    const ms = performance.now() - start;
    if (ms > CASE_MS) outcome = `hang: ${ms.toFixed(0)} ms`;
    const grown = process.memoryUsage().heapUsed - heap;
    if (grown > CASE_BYTES) outcome = `memory: heap grew ${(grown / 2 ** 20).toFixed(0)} MB`;
    tally.cases++;
    if (outcome === 'ok') tally.ok++;
    else if (outcome === 'clean') tally.clean++;
    else tally.failures.push(`${reader} seed ${seed}: ${outcome}`);
  }
  expect(tally.failures, tally.failures.join('\n')).toEqual([]);
}

// ---- mutations ------------------------------------------------------------------------------------------------

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.uniform() * xs.length)];

/** Values that break readers: sizes past every bound, wrong types, deep nesting, long strings. */
function hostileValue(rng: Rng): unknown {
  let deep: unknown = 0;
  const depth = pick(rng, [10, 1000, 3000]);
  for (let i = 0; i < depth; i++) deep = [deep];
  return pick(rng, [
    0,
    -1,
    1,
    2,
    3.5,
    2e9,
    2 ** 32,
    9007199254740990,
    1e308,
    -1e308,
    null,
    true,
    '',
    'x',
    'F32',
    'x'.repeat(100_000),
    '\u0000\ufffe',
    [],
    {},
    [0, 0],
    [1e18, 1e18],
    [-1, 5],
    { type: 'Sequence', normalizers: [7] },
    deep,
    Array.from({ length: 100_000 }, () => 0),
  ]);
}

/** The paths of `value`'s nested fields (objects and arrays), at most `limit`. */
function paths(value: unknown, limit = 2000): (string | number)[][] {
  const out: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    if (out.length >= limit || v === null || typeof v !== 'object') return;
    const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
    for (const [k, x] of entries.slice(0, 50)) {
      out.push([...path, k]);
      walk(x, [...path, k]);
    }
  };
  walk(value, []);
  return out;
}

/** 1–3 structure-aware edits of a JSON value: a field replaced by a hostile value, deleted, or a number scaled. */
function mutateJson<T>(value: T, rng: Rng): T {
  const copy = structuredClone(value);
  const all = paths(copy);
  for (let n = 1 + Math.floor(rng.uniform() * 3); n > 0 && all.length; n--) {
    const path = pick(rng, all);
    // An earlier edit may have replaced an ancestor: then the path leads nowhere and is skipped.
    let parent: unknown = copy;
    for (const k of path.slice(0, -1))
      parent = parent !== null && typeof parent === 'object' ? (parent as Record<string, unknown>)[k] : undefined;
    if (parent === null || typeof parent !== 'object') continue;
    const key = path[path.length - 1];
    const old = (parent as Record<string | number, unknown>)[key];
    const r = rng.uniform();
    const p = parent as Record<string | number, unknown>;
    if (r < 0.15 && !Array.isArray(p)) delete p[key];
    else if (r < 0.35 && typeof old === 'number') p[key] = pick(rng, [0, -old, old * 1e9, old + 1, old - 1]);
    else p[key] = hostileValue(rng);
  }
  return copy;
}

/** Byte edits of a binary image: interesting u32/u64 values at `offsets`, bit flips, truncation. */
function mutateBytes(bytes: Buffer, rng: Rng, region: number): { bytes: Buffer; truncated: boolean } {
  const out = Buffer.from(bytes);
  const r = rng.uniform();
  if (r < 0.2) return { bytes: out.subarray(0, Math.floor(rng.uniform() * out.length)), truncated: true };
  const at = Math.floor(rng.uniform() * Math.min(region, out.length - 8));
  if (r < 0.6) out.writeBigUInt64LE(pick(rng, [0n, 1n, 0xffffffffn, 2n ** 62n, 2n ** 64n - 1n, 10_000n]), at);
  else if (r < 0.8) out.writeUInt32LE(pick(rng, [0, 1, 9, 13, 0xffffffff, 100_000]), at);
  else for (let i = 0; i < 8; i++) out[at + i] ^= 1 << Math.floor(rng.uniform() * 8);
  return { bytes: out, truncated: false };
}

/** A safetensors image with its header JSON mutated (and the length field set to the new header's length). */
function withHeader(bytes: Buffer, edit: (header: Record<string, unknown>) => Record<string, unknown>): Buffer {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = Buffer.from(JSON.stringify(edit(JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')))));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([length, header, bytes.subarray(8 + n)]);
}

/** Mutations of a safetensors image: header fields, the length field, data values (NaN/Inf), truncation. */
function mutateSafetensors(bytes: Buffer, rng: Rng): { bytes: Buffer; mustFail: boolean } {
  const r = rng.uniform();
  const n = Number(bytes.readBigUInt64LE(0));
  if (r < 0.5) return { bytes: withHeader(bytes, (h) => mutateJson(h, rng)), mustFail: false };
  if (r < 0.65) {
    const out = Buffer.from(bytes);
    const delta = pick(rng, [-3, -2, -1, 1, 2, 3, 8, -8]);
    out.writeBigUInt64LE(BigInt(Math.max(0, n + delta)), 0);
    return { bytes: out, mustFail: true };
  }
  if (r < 0.8) {
    const out = Buffer.from(bytes);
    const at = 8 + n + 4 * Math.floor((rng.uniform() * (out.length - 8 - n)) / 4);
    out.writeFloatLE(pick(rng, [Number.NaN, Number.POSITIVE_INFINITY, -1e32, -0.5]), at);
    return { bytes: out, mustFail: false };
  }
  const m = mutateBytes(bytes, rng, 8 + n);
  return { bytes: m.bytes, mustFail: m.truncated };
}

// ---- seeds ----------------------------------------------------------------------------------------------------

function seedAttentionFile(): Buffer {
  const [L, H, T, d] = [2, 2, 4, 3];
  const attention = new Float32Array(L * H * T * T);
  for (let m = 0; m < L * H; m++)
    for (let r = 0; r < T; r++) for (let c = 0; c <= r; c++) attention[(m * T + r) * T + c] = 1 / (r + 1);
  return encodeAttentionFile({
    tokens: ['<s>', 'a', 'b', 'c'],
    text: 'a b c',
    pair: null,
    sentenceBStart: null,
    model: { source: 'fuzz', modelType: 'gpt2' },
    causal: true,
    attention: { dims: [L, H, T, T], data: attention },
    query: { dims: [L, H, T, d], data: new Float32Array(L * H * T * d).fill(0.5) },
    key: { dims: [L, H, T, d], data: new Float32Array(L * H * T * d).fill(-0.5) },
    inputIds: [0, 1, 2, 3],
    special: [true, false, false, false],
  });
}

let caseDir = 0;
async function folder(files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = join(tmp, `c${caseDir++}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

// ---- the readers ----------------------------------------------------------------------------------------------

describe('fuzz: every reader gives a result or a one-line AttnvizError', () => {
  test('attention file (500 cases)', async () => {
    const seed = seedAttentionFile();
    await fuzz(
      'attention file',
      1_000_000,
      500,
      async (rng) => {
        const m = mutateSafetensors(seed, rng);
        // The metadata JSON inside the header is mutated as JSON too, half the time.
        if (rng.uniform() < 0.5 && !m.mustFail)
          return {
            input: withHeader(seed, (h) => {
              const meta = h.__metadata__ as { attnviz: string };
              return { ...h, __metadata__: { attnviz: JSON.stringify(mutateJson(JSON.parse(meta.attnviz), rng)) } };
            }),
            mustFail: false,
          };
        return { input: m.bytes, mustFail: m.mustFail };
      },
      async (bytes) => decodeAttentionFile(bytes, 'fuzz.safetensors'),
    );
  }, 120_000);

  test.skipIf(!HAVE_SHARED)(
    'safetensors weights (300 cases)',
    async () => {
      const seed = await readFile(join(goldenModel('gpt2-tiny'), 'model.safetensors'));
      const shapes = [...decodeHeader(seed, 'seed').tensors.values()].map((t) => [t.name, t.shape] as const);
      await fuzz(
        'safetensors weights',
        2_000_000,
        300,
        async (rng) => {
          const m = mutateSafetensors(seed, rng);
          return { input: await folder({ 'model.safetensors': m.bytes }), mustFail: m.mustFail };
        },
        async (dir) => {
          const w = await Weights.open(dir);
          for (const [name, shape] of shapes) w.get(name, shape);
        },
      );
    },
    120_000,
  );

  test.skipIf(!HAVE_SHARED)(
    'GGUF (300 cases)',
    async () => {
      const seed = await readFile(join(SHARED, 'models', 'stories260K', 'stories260K.gguf'));
      await fuzz(
        'GGUF',
        3_000_000,
        300,
        async (rng) => {
          // The metadata and tensor infos sit in the first ~20 KB (the vocabulary's strings among them).
          const m = mutateBytes(seed, rng, 24_000);
          const dir = await folder({ 'm.gguf': m.bytes });
          return { input: join(dir, 'm.gguf'), mustFail: m.truncated };
        },
        async (path) => {
          const file = readGguf(path);
          ggufTokenizer(file, 'm.gguf').encode('Once upon a time', null);
        },
      );
    },
    120_000,
  );

  test.skipIf(!HAVE_SHARED)(
    'config.json (400 cases)',
    async () => {
      const configs = await Promise.all(
        ['bert-tiny', 'gpt2-tiny', 'llama-tiny-mha', 'roberta-tiny'].map(async (m) =>
          JSON.parse(await readFile(join(goldenModel(m), 'config.json'), 'utf8')),
        ),
      );
      await fuzz(
        'config.json',
        4_000_000,
        400,
        async (rng) => ({ input: mutateJson(pick(rng, configs), rng), mustFail: false }),
        async (raw) => {
          const config = new ModelConfig(raw as Record<string, unknown>, 'config.json');
          familyFor(config).readConfig(config);
        },
      );
    },
    120_000,
  );

  const tokenizerCase =
    (files: Record<string, string>, mutate: (files: Record<string, string>, rng: Rng) => Record<string, string>) =>
    async (rng: Rng) => ({ input: await folder(mutate(files, rng)), mustFail: false });
  const encodeWith = (modelType: string) => async (dir: string) => {
    const t = await loadTokenizer(dir, modelType);
    t.encode('The cat sat on the mat. Ünïcode 😀', 'A second text.');
  };

  test('tokenizer.json (200 cases)', async () => {
    await fuzz(
      'tokenizer.json',
      5_000_000,
      200,
      tokenizerCase(tinyTokenizerFiles('bert-tiny'), (f, rng) => ({
        ...f,
        'tokenizer.json': JSON.stringify(mutateJson(JSON.parse(f['tokenizer.json']), rng)),
      })),
      encodeWith('bert'),
    );
  }, 120_000);

  test.skipIf(!HAVE_SHARED)(
    'vocab.txt (150 cases)',
    async () => {
      const vocab = await readFile(join(goldenModel('bert-tiny'), 'vocab.txt'), 'utf8');
      await fuzz(
        'vocab.txt',
        6_000_000,
        150,
        tokenizerCase({ 'vocab.txt': vocab }, (f, rng) => {
          const lines = f['vocab.txt'].split('\n');
          for (let n = 1 + Math.floor(rng.uniform() * 20); n > 0; n--) {
            const at = Math.floor(rng.uniform() * lines.length);
            lines[at] = pick(rng, ['', '[UNK]', '[CLS]', 'x'.repeat(10_000), '\u0000', lines[0], '##', ' ']);
          }
          return {
            'vocab.txt':
              rng.uniform() < 0.2 ? lines.slice(0, Math.floor(rng.uniform() * 5)).join('\n') : lines.join('\n'),
          };
        }),
        encodeWith('bert'),
      );
    },
    120_000,
  );

  test.skipIf(!HAVE_SHARED)(
    'vocab.json + merges.txt (150 cases)',
    async () => {
      const vocab = JSON.parse(await readFile(join(goldenModel('gpt2-tiny'), 'vocab.json'), 'utf8'));
      const merges = (await readFile(join(goldenModel('gpt2-tiny'), 'merges.txt'), 'utf8')).split('\n').slice(0, 3000);
      await fuzz(
        'vocab.json + merges.txt',
        7_000_000,
        150,
        async (rng) => {
          const m = [...merges];
          for (let n = 1 + Math.floor(rng.uniform() * 20); n > 0; n--)
            m[Math.floor(rng.uniform() * m.length)] = pick(rng, [
              '',
              'a',
              'a b c',
              '#version: 0.2',
              'Ġ t',
              'x'.repeat(10_000),
            ]);
          const v = rng.uniform() < 0.5 ? mutateJson(vocab, rng) : vocab;
          return {
            input: await folder({ 'vocab.json': JSON.stringify(v), 'merges.txt': m.join('\n') }),
            mustFail: false,
          };
        },
        encodeWith('gpt2'),
      );
    },
    120_000,
  );

  test.skipIf(!HAVE_SHARED)(
    'ONNX (150 cases)',
    async () => {
      const weights = await Weights.open(goldenModel('gpt2-tiny'));
      const config = new ModelConfig(
        JSON.parse(await readFile(join(goldenModel('gpt2-tiny'), 'config.json'), 'utf8')),
        'config.json',
      );
      const family = familyFor(config);
      const g = new GraphBuilder(weights);
      family.build(g, weights, family.readConfig(config), { extract: true });
      const seed = Buffer.from(g.toBytes());
      await fuzz(
        'ONNX',
        8_000_000,
        150,
        async (rng) => ({ input: mutateBytes(seed, rng, seed.length).bytes, mustFail: false }),
        async (bytes) => {
          // As OnnxModel.load reads a graph before onnxruntime sees it.
          let model: onnxProto.onnx.ModelProto;
          try {
            model = onnxProto.onnx.ModelProto.decode(bytes);
          } catch (e) {
            throw new AttnvizError(`not an ONNX model (${(e as Error).message})`);
          }
          findOnnxAttention(model, 'fuzz.onnx');
        },
      );
    },
    120_000,
  );

  afterAll(() => {
    const rows = Object.entries(tallies).map(
      ([reader, t]) => `| ${reader} | ${t.cases} | ${t.ok} | ${t.clean} | ${t.failures.length} |`,
    );
    console.log(
      ['| reader | cases | results | clean errors | failures |', '|---|---|---|---|---|', ...rows].join('\n'),
    );
  });
});
