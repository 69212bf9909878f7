/**
 * Extraction layer by layer (models/layer-stream.ts, graph/stages.ts): the stream equals one run of the whole
 * extracting graph on one onnxruntime session bit for bit; selections are slices of the full run; reused
 * buffers never carry one call's values into the next; F16 / BF16 attention files read back within their
 * rounding; `attnviz extract --dtype / --layers / --heads` and their bad values.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, test } from 'vitest';
import type { Attention, AttentionStream, Tensor } from '../src/core/attention.js';
import { decodeAttentionFile, encodeAttentionFile } from '../src/core/attention-file.js';
import { f32BitsToF16, HALF_WASM, toHalf } from '../src/core/half.js';
import { BLOCK, blockAligned, DirectWriter, openDirect } from '../src/core/direct.js';
import { readAttentionFile, readSafetensors, writeAttentionStream } from '../src/core/files.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { familyFor } from '../src/graph/families.js';
import { HIDDEN_LAST, INPUTS, outputNames } from '../src/graph/family.js';
import { readConfig } from '../src/load/config.js';
import { Weights } from '../src/load/weights.js';
import { extractionBytes, Model, sessionKindFor } from '../src/models/checkpoint-model.js';
import { Session, type Feed } from '../src/runtime/session.js';
import { runHeads } from '../src/models/split-session.js';
import {
  DirectSession,
  handOver,
  heldOutputs,
  lentArray,
  returnLent,
  spareBytes,
  sparesBack,
  trimHeapAbove,
} from '../src/runtime/ort-direct.js';
import { expectBad, goldenModel, HAVE_SHARED, loadedOnce, present } from './shared.js';

const MODELS = ['bert-tiny', 'gpt2-tiny', 'llama-tiny-mha'];
const TEXT = 'The cat sat on the mat, and the dog lay on the rug beside it.';
/** `name`, or `name staged`: extraction on one session per layer (the default for these small models: one session). */
const model = loadedOnce((key: string) => {
  const [name, staged] = key.split(' ');
  return Model.load(goldenModel(name), { staged: staged === 'staged' });
});
const KINDS = MODELS.flatMap((name) => [name, `${name} staged`]);
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-stream-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** Bit-for-bit equality of two float arrays (NaN-safe, -0 ≠ +0), as bytes. */
function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Layer `l`, heads `heads` of a stacked [L, H, rows, cols] tensor, as a fresh array. */
function slice(t: Tensor, l: number, heads: readonly number[]): Float32Array {
  const [, H, rows, cols] = t.dims;
  const size = rows * cols;
  const out = new Float32Array(heads.length * size);
  heads.forEach((h, i) => out.set(t.data.subarray((l * H + h) * size, (l * H + h + 1) * size), i * size));
  return out;
}

/** The whole extracting graph on a single session, as attnviz ran it before it ran layer by layer. */
async function oneSessionRun(name: string, a: Attention) {
  const dir = goldenModel(name);
  const config = await readConfig(dir);
  const family = familyFor(config);
  const dims = family.readConfig(config);
  const weights = await Weights.open(dir);
  const g = new GraphBuilder(weights);
  family.build(g, weights, dims, { extract: true });
  const session = await Session.create(g.toBytes(), weights.root);
  const ids = a.inputIds!;
  const T = ids.length;
  const all: Record<string, Feed> = {
    [INPUTS.inputIds]: { type: 'int64', data: BigInt64Array.from(ids, BigInt), dims: [T] },
    [INPUTS.positionIds]: { type: 'int64', data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)), dims: [T] },
    [INPUTS.tokenTypeIds]: { type: 'int64', data: new BigInt64Array(T), dims: [T] },
    [INPUTS.causalMask]: {
      type: 'float32',
      data: Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -Infinity : 0)),
      dims: [T, T],
    },
  };
  try {
    return { out: await session.run(Object.fromEntries(session.inputNames.map((n) => [n, all[n]]))), dims };
  } finally {
    await session.release();
  }
}

describe.skipIf(!HAVE_SHARED)('the layer stream', () => {
  test.each(KINDS)('%s: stream = one run of the whole graph on one session, bit for bit', async (key) => {
    const m = await model(key);
    const stream = m.stream(TEXT);
    const a = await m.attention(TEXT);
    const { out, dims } = await oneSessionRun(key.split(' ')[0], a);
    let n = 0;
    for await (const layer of stream) {
      const o = outputNames(layer.layer);
      expect(layer.layer).toBe(n++);
      expect(layer.attention.dims).toEqual([dims.heads, a.tokens.length, a.tokens.length]);
      expect(sameBits(layer.attention.data, out[o.probs].data), `layer ${layer.layer} probs`).toBe(true);
      expect(sameBits(layer.query!.data, out[o.q].data), `layer ${layer.layer} q`).toBe(true);
      expect(sameBits(layer.key!.data, out[o.k].data), `layer ${layer.layer} k`).toBe(true);
    }
    expect(n).toBe(dims.layers);
    expect(sameBits(stream.hiddenLast!.data, out[HIDDEN_LAST].data)).toBe(true);
    // attention() stacks the same values.
    for (let l = 0; l < dims.layers; l++)
      expect(sameBits(slice(a.attention, l, [...Array(dims.heads).keys()]), out[outputNames(l).probs].data)).toBe(true);
  });

  test.each(KINDS)('%s: selected layers and heads are the slices of the full run', async (key) => {
    const m = await model(key);
    const full = await m.attention(TEXT);
    const [L, H] = full.attention.dims;
    const layers = [L - 1, 0];
    const heads = [H - 1, 1];
    const picked = await m.attention(TEXT, { layers, heads });
    // All layers or heads, in any order, is no selection.
    expect(picked.layers).toEqual(L > 2 ? [0, L - 1] : undefined);
    expect(picked.heads).toEqual(H > 2 ? [1, H - 1] : undefined);
    expect(picked.attention.dims).toEqual([2, 2, ...full.attention.dims.slice(2)]);
    [0, L - 1].forEach((l, i) => {
      expect(sameBits(slice(picked.attention, i, [0, 1]), slice(full.attention, l, [1, H - 1]))).toBe(true);
      expect(sameBits(slice(picked.query!, i, [0, 1]), slice(full.query!, l, [1, H - 1]))).toBe(true);
      expect(sameBits(slice(picked.key!, i, [0, 1]), slice(full.key!, l, [1, H - 1]))).toBe(true);
    });
    const noQk = await m.attention(TEXT, { layers: [1], qk: false });
    expect(noQk.query).toBeUndefined();
    expect(sameBits(noQk.attention.data, slice(full.attention, 1, [...Array(H).keys()]))).toBe(true);
  });

  // On onnxruntime's C API (Linux); the binding copies carried values as before.
  test.skipIf(!DirectSession.available).each(['gpt2-tiny staged', 'llama-tiny-mha staged'])(
    "%s: values carried between stages stay in onnxruntime's memory while needed, all released after",
    async (key) => {
      const m = await model(key);
      const during: number[] = [];
      for await (const _ of m.stream(TEXT)) during.push(heldOutputs());
      expect(Math.min(...during)).toBeGreaterThan(0);
      expect(heldOutputs()).toBe(0);
      // Broken off after the first layer: the rest is released too.
      for await (const layer of m.stream(TEXT)) if (layer.layer === 0) break;
      expect(heldOutputs()).toBe(0);
    },
  );

  test.each(['gpt2-tiny', 'gpt2-tiny staged'])(
    '%s: reused buffers: two texts of the same length, alternated, equal their fresh runs',
    async (key) => {
      const m = await model(key);
      const [x, y] = ['The cat sat on the mat.', 'A dog lay by the door.'];
      const length = (t: string) => m.tokenizer.encode(t, null).ids.length;
      expect(length(x)).toBe(length(y));
      const fresh = [await m.attention(x), await m.attention(y)];
      expect(sameBits(fresh[0].attention.data, fresh[1].attention.data)).toBe(false);
      for (const [i, text] of [x, y, x, y].entries()) {
        const reused = await m.attention(text, { reuse: true });
        const f = fresh[i % 2];
        expect(sameBits(reused.attention.data, f.attention.data), `call ${i}`).toBe(true);
        expect(sameBits(reused.query!.data, f.query!.data)).toBe(true);
        expect(sameBits(reused.key!.data, f.key!.data)).toBe(true);
        expect(sameBits(reused.hiddenLast!.data, f.hiddenLast!.data)).toBe(true);
        // The stream's per-layer buffers are reused too.
        const heads = [...Array(f.attention.dims[1]).keys()];
        for await (const layer of m.stream(text))
          expect(sameBits(layer.attention.data, slice(f.attention, layer.layer, heads))).toBe(true);
      }
      // A reused result is overwritten by the next reused call; a fresh one is not.
      const kept = await m.attention(x, { reuse: true });
      await m.attention(y, { reuse: true });
      expect(sameBits(kept.attention.data, fresh[1].attention.data)).toBe(true);
      expect(sameBits(fresh[0].attention.data, (await m.attention(x)).attention.data)).toBe(true);
    },
  );

  test.skipIf(!DirectSession.available)(
    "gpt2-tiny: a collected fresh result's memory serves the next one; a live one's never does",
    async () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const m = await model('gpt2-tiny');
      const [x, y] = ['The cat sat on the mat.', 'A dog lay by the door.'];
      const kept = await m.attention(x);
      const copy = kept.attention.data.slice();
      const expected = (await m.attention(y)).attention.data.slice();
      for (let i = 0; i < 3; i++) {
        let result: Attention | null = await m.attention(y);
        expect(sameBits(result.attention.data, expected), `call ${i}`).toBe(true);
        const bytes = [result.attention, result.query!, result.key!].reduce((n, t) => n + t.data.byteLength, 0);
        result = null;
        gc();
        await sparesBack();
        const held = spareBytes();
        expect(held).toBeGreaterThanOrEqual(bytes);
        // The next fresh result takes its memory from the spares (and is right: the loop's next turn checks).
        const next = await m.attention(y);
        expect(spareBytes()).toBeLessThanOrEqual(held - bytes);
        expect(sameBits(next.attention.data, expected)).toBe(true);
      }
      expect(sameBits(kept.attention.data, copy)).toBe(true);
    },
  );

  test.skipIf(!DirectSession.available)(
    "lent arrays: the caller's array is made after the write, over the same memory; the block keeps one view",
    async () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      // A length no other test asks for, so that the spare taken below is this test's block.
      const n = 3_000_017;
      const a = lentArray(n);
      const inner = a.buffer;
      for (let i = 0; i < n; i += 1000) a[i] = i;
      let mine: Float32Array | null = handOver(a);
      expect(mine.buffer).not.toBe(inner);
      expect(mine.length).toBe(n);
      expect(mine[0]).toBe(0);
      expect(mine[n - 17]).toBe(n - 17);
      // Not lent: returned as it is.
      const other = new Float32Array(4);
      expect(handOver(other)).toBe(other);
      // Collected, the caller's array's block is a spare again; lent once more through the same view (no new
      // ArrayBuffer, which V8 would count as new external memory), and written, not cleared.
      mine = null;
      gc();
      await sparesBack();
      const held = spareBytes();
      const b = lentArray(n);
      expect(b.buffer).toBe(inner);
      expect(spareBytes()).toBe(held - inner.byteLength);
      expect(b[n - 17]).toBe(n - 17);
      // A failed write gives the block back.
      returnLent(b);
      expect(spareBytes()).toBe(held);
      returnLent(b);
      expect(spareBytes()).toBe(held);
    },
  );

  test.skipIf(!DirectSession.available)(
    "trimHeapAbove: glibc's free heap pages go back to the system past the given bytes, not before",
    async () => {
      const koffi = (await import('koffi')).default;
      // 3000 blocks of 64 KB (under glibc's mmap threshold: from the heap), written, then all but the last freed:
      // ~190 MB free below a live block, which glibc keeps resident until malloc_trim.
      const rss = () => Number(readFileSync('/proc/self/statm', 'utf8').split(' ')[1]) * 4096;
      const blocks = Array.from({ length: 3000 }, () => {
        const p = koffi.alloc('uint8_t', 65536);
        new Uint8Array(koffi.view(p, 65536)).fill(1);
        return p;
      });
      for (const p of blocks.slice(0, -1)) koffi.free(p);
      try {
        const before = rss();
        trimHeapAbove(2 ** 40);
        expect(before - rss()).toBeLessThan(32e6);
        trimHeapAbove(2 ** 26);
        expect(before - rss()).toBeGreaterThan(150e6);
      } finally {
        koffi.free(blocks.at(-1));
      }
    },
  );

  test('NaN weights: a one-line error naming the first layer they reach, before anything is written', async () => {
    const dir = await mkdtemp(join(tmp, 'nan-'));
    const from = goldenModel('bert-tiny');
    for (const f of await readdir(from)) if (f !== 'model.safetensors') await copyFile(join(from, f), join(dir, f));
    const { header, bytes } = await readSafetensors(join(from, 'model.safetensors'));
    const e = [...header.tensors.values()].find((t) => t.name.endsWith('layer.1.attention.self.query.weight'))!;
    bytes.writeFloatLE(Number.NaN, e.offset);
    await writeFile(join(dir, 'model.safetensors'), bytes);
    const m = await Model.load(dir);
    try {
      await sparesBack();
      const spares = spareBytes();
      await expectBad(m.attention(TEXT), /^layer 1: the attention probabilities are not finite/);
      // The fresh result's memory, lent for the run, went back to the spares (none taken and lost).
      expect(spareBytes()).toBeGreaterThanOrEqual(spares);
      const out = join(dir, 'nan.safetensors');
      await expectBad(writeAttentionStream(out, m.stream(TEXT)), /^layer 1: /);
      expect((await readdir(dir)).filter((f) => f.startsWith('nan.'))).toEqual([]);
    } finally {
      await m.release();
    }
  });

  test('the file writer keeps each part as it was yielded, though the stream overwrites it right after', async () => {
    const m = await model('bert-tiny');
    const header = { ...m.stream(TEXT).header, qk: false };
    const [T, H] = [header.tokens.length, header.heads.length];
    // One buffer for every part, refilled as soon as the writer asks for the next (as the model's streams do).
    const shared = new Float32Array(H * T * T);
    const hidden = { dims: [T, header.hidden], data: new Float32Array(T * header.hidden) };
    const stream: AttentionStream = {
      header,
      hiddenLast: hidden,
      async *[Symbol.asyncIterator]() {
        for (const layer of header.layers) {
          // Each row all on key `layer` (rows of attention sum to 1; the reader checks).
          shared.fill(0);
          for (let row = 0; row < H * T; row++) shared[row * T + layer] = 1;
          yield { layer, heads: header.heads, attention: { dims: [H, T, T], data: shared } };
        }
        shared.fill(-1);
      },
    };
    const path = join(tmp, 'overwritten.safetensors');
    const perLayer = H * T * T;
    // A writer that wrote the stream's own buffer would race with its refilling: five files, to lose that race surely.
    for (let attempt = 0; attempt < 5; attempt++) {
      await writeAttentionStream(path, stream);
      const back = await readAttentionFile(path);
      header.layers.forEach((layer, i) => {
        const part = back.attention.data.subarray(i * perLayer, (i + 1) * perLayer);
        expect(part.every((x, j) => x === (j % T === layer ? 1 : 0))).toBe(true);
      });
    }
  });

  test('a stream is read once', async () => {
    const m = await model('bert-tiny');
    const stream = m.stream('hi');
    for await (const _ of stream);
    await expect(async () => {
      for await (const _ of stream);
    }).rejects.toThrow(/read only once/);
  });
});

describe.skipIf(!HAVE_SHARED)('the session kind follows the input (LoadOptions.staged unset)', () => {
  const LONG = `${TEXT} ${TEXT}`;
  /** A model whose budget fits TEXT's outputs on one session and not LONG's. */
  async function sized(name: string, lazy = false) {
    const forced = await model(name);
    const T = forced.tokenize(TEXT).ids.length;
    const m = await Model.load(goldenModel(name), { oneSessionBytes: extractionBytes(forced.dims, T), lazy });
    expect(sessionKindFor(forced.dims, forced.tokenize(LONG).ids.length, extractionBytes(forced.dims, T))).toBe(
      'staged',
    );
    return m;
  }
  const same = (a: Attention, b: Attention) =>
    sameBits(a.attention.data, b.attention.data) &&
    sameBits(a.query!.data, b.query!.data) &&
    sameBits(a.key!.data, b.key!.data) &&
    sameBits(a.hiddenLast!.data, b.hiddenLast!.data);

  test.each(MODELS)('%s: short on one session, long per layer, in turn and at once, bit for bit', async (name) => {
    const [one, staged] = [await model(name), await model(`${name} staged`)];
    expect([one.sessionKind, staged.sessionKind]).toEqual(['one', 'staged']);
    const m = await sized(name);
    try {
      expect(m.sessionKind).toBe('one');
      const want = { short: await one.attention(TEXT), long: await staged.attention(LONG) };
      // A long input's result on one session is the same: the kind changes memory, not values.
      expect(same(await one.attention(LONG), want.long)).toBe(true);
      expect(same(await m.attention(LONG), want.long)).toBe(true);
      expect(m.sessionKind).toBe('staged');
      expect(same(await m.attention(TEXT), want.short)).toBe(true);
      expect(m.sessionKind).toBe('one');
      // Calls of both kinds at once wait for each other: none runs on a session released under it.
      const mixed = await Promise.all([m.attention(LONG), m.attention(TEXT), m.attention(LONG), m.attention(TEXT)]);
      mixed.forEach((a, i) => expect(same(a, i % 2 === 0 ? want.long : want.short), `call ${i}`).toBe(true));
      // A stream of the long input holds the per-layer sessions until it is read through.
      const stream = m.stream(LONG);
      let layers = 0;
      for await (const layer of stream) {
        expect(m.sessionKind).toBe('staged');
        const all = [...Array(m.dims.heads).keys()];
        expect(sameBits(layer.attention.data, slice(want.long.attention, layer.layer, all))).toBe(true);
        layers++;
      }
      expect(layers).toBe(m.dims.layers);
      expect((await m.forward(TEXT)).data).toEqual(want.short.hiddenLast!.data);
      expect(m.sessionKind).toBe('one');
    } finally {
      await m.release();
    }
    expect(m.sessionKind).toBeUndefined();
    await expect(m.attention(TEXT)).rejects.toThrow('this model was released');
  });

  test.each(MODELS)('%s, lazy: the first call creates only the kind its input needs, bit for bit', async (name) => {
    const [one, staged] = [await model(name), await model(`${name} staged`)];
    const want = { short: await one.attention(TEXT), long: await staged.attention(LONG) };
    // Loaded at once, a long first input creates a second session (the short kind's was created at load).
    const eager = await sized(name);
    try {
      expect([eager.sessionKind, eager.sessionsCreated]).toEqual(['one', 1]);
      expect(same(await eager.attention(LONG), want.long)).toBe(true);
      expect([eager.sessionKind, eager.sessionsCreated]).toEqual(['staged', 2]);
    } finally {
      await eager.release();
    }
    const long = await sized(name, true);
    try {
      expect([long.sessionKind, long.sessionsCreated]).toEqual([undefined, 0]);
      // A stream creates the staged kind before its first layer; no one-session kind was ever made.
      let layers = 0;
      for await (const layer of long.stream(LONG)) {
        expect([long.sessionKind, long.sessionsCreated]).toEqual(['staged', 1]);
        const all = [...Array(long.dims.heads).keys()];
        expect(sameBits(layer.attention.data, slice(want.long.attention, layer.layer, all))).toBe(true);
        layers++;
      }
      expect(layers).toBe(long.dims.layers);
      expect(same(await long.attention(LONG), want.long)).toBe(true);
      expect(long.sessionsCreated).toBe(1);
      // Later inputs change kind as a model loaded at once does.
      expect(same(await long.attention(TEXT), want.short)).toBe(true);
      expect([long.sessionKind, long.sessionsCreated]).toEqual(['one', 2]);
    } finally {
      await long.release();
    }
    // A short first input gets the one session, made from the graph the load built.
    const short = await sized(name, true);
    try {
      expect(same(await short.attention(TEXT), want.short)).toBe(true);
      expect([short.sessionKind, short.sessionsCreated]).toEqual(['one', 1]);
    } finally {
      await short.release();
    }
    expect(short.sessionKind).toBeUndefined();
    await expect(short.attention(TEXT)).rejects.toThrow('this model was released');
  });

  test('lazy, released before any call: nothing is created, calls are refused', async () => {
    const m = await sized('gpt2-tiny', true);
    await m.release();
    await expect(m.attention(TEXT)).rejects.toThrow('this model was released');
    expect([m.sessionKind, m.sessionsCreated]).toEqual([undefined, 0]);
  });
});

describe.skipIf(!HAVE_SHARED)('layers computed in runs of heads (headChunk)', () => {
  const whole = () => model('llama-tiny-mha');
  const chunked = loadedOnce((chunk: number) => Model.load(goldenModel('llama-tiny-mha'), { headChunk: chunk }));

  test.each([1, 3])('runs of %i heads: attention, q, k and hidden state equal whole layers bit for bit', async (n) => {
    const [a, b] = [await (await whole()).attention(TEXT), await (await chunked(n)).attention(TEXT)];
    for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
      expect(sameBits(b[key]!.data, a[key]!.data), key).toBe(true);
  });

  test('the stream yields each layer in runs of heads, q and k with the first; the file is the same', async () => {
    const m = await chunked(3);
    const a = await (await whole()).attention(TEXT);
    const T = a.tokens.length;
    const seen: [number, readonly number[], boolean][] = [];
    for await (const part of m.stream(TEXT)) {
      seen.push([part.layer, part.heads, part.query !== undefined]);
      expect(part.attention.dims).toEqual([part.heads.length, T, T]);
      expect(sameBits(part.attention.data, slice(a.attention, part.layer, part.heads))).toBe(true);
    }
    const L = a.attention.dims[0];
    expect(seen).toEqual(
      Array.from({ length: L }, (_, l) => [
        [l, [0, 1, 2], true],
        [l, [3], false],
      ]).flat(),
    );
    const path = join(tmp, 'chunked.safetensors');
    await writeAttentionStream(path, m.stream(TEXT));
    const back = await readAttentionFile(path);
    for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
      expect(sameBits(back[key]!.data, a[key]!.data), key).toBe(true);
  });

  test('a selection across runs of one head: the slices of the full run', async () => {
    const m = await chunked(1);
    const full = await (await whole()).attention(TEXT);
    const picked = await m.attention(TEXT, { layers: [1], heads: [3, 1] });
    expect(picked.heads).toEqual([1, 3]);
    expect(sameBits(slice(picked.attention, 0, [0, 1]), slice(full.attention, 1, [1, 3]))).toBe(true);
    expect(sameBits(slice(picked.query!, 0, [0, 1]), slice(full.query!, 1, [1, 3]))).toBe(true);
    const parts: (readonly number[])[] = [];
    for await (const part of m.stream(TEXT, { layers: [1], heads: [3, 1] })) parts.push(part.heads);
    // The first run (head 0) brings q and k with no selected head; heads 1 and 3 follow, head 2 is skipped.
    expect(parts).toEqual([[], [1], [3]]);
  });

  test('by default, as many heads per run as keep its float32 scores within 64 MB, dividing the heads', () => {
    expect(runHeads(32, 512)).toBe(32); // Llama-3.2-1B: 33.5 MB
    expect(runHeads(32, 2048)).toBe(4);
    expect(runHeads(32, 4096)).toBe(1);
    expect(runHeads(32, 8192)).toBe(1); // 268 MB: one head is the least
    expect(runHeads(14, 2048)).toBe(2); // Qwen2-0.5B: 4 fit, 2 divides 14
    expect(runHeads(7, 1024)).toBe(7);
  });
});

/**
 * A stream of L layers of H heads over T tokens (q, k of width D), none of it from a model: layer l's head h puts
 * each row's weight on key (row + l + h) mod T, its q, k are l + 0.25 and −l − 0.125. One buffer per tensor,
 * refilled for each layer (as the models' streams do).
 */
function madeUpStream(T: number, H: number, L: number, D: number): AttentionStream {
  const header = {
    model: { source: 'made up', modelType: 'llama' },
    tokens: Array.from({ length: T }, (_, i) => `t${i}`),
    text: '',
    pair: null,
    sentenceBStart: null,
    causal: false,
    inputIds: [...Array(T).keys()],
    layers: [...Array(L).keys()],
    heads: [...Array(H).keys()],
    qk: true,
    headDim: D,
    hidden: 5,
  };
  const [probs, q, k] = [new Float32Array(H * T * T), new Float32Array(H * T * D), new Float32Array(H * T * D)];
  return {
    header,
    hiddenLast: { dims: [T, 5], data: new Float32Array(T * 5).fill(0.5) },
    async *[Symbol.asyncIterator]() {
      for (const l of header.layers) {
        probs.fill(0);
        for (let h = 0; h < H; h++)
          for (let row = 0; row < T; row++) probs[(h * T + row) * T + ((row + l + h) % T)] = 1;
        q.fill(l + 0.25);
        k.fill(-l - 0.125);
        const part = (data: Float32Array, cols: number) => ({ dims: [H, T, cols], data });
        yield { layer: l, heads: header.heads, attention: part(probs, T), query: part(q, D), key: part(k, D) };
      }
    },
  };
}

/** Whether `dir`'s file system takes a direct write of one block from block-aligned memory, at `misaligned` bytes. */
async function takesDirect(dir: string, misaligned = 0): Promise<boolean> {
  const path = join(dir, `probe-${misaligned}`);
  await writeFile(path, '');
  const direct = await openDirect(path);
  try {
    await direct?.write(new Uint8Array(blockAligned(2 * BLOCK), misaligned, BLOCK), 0, BLOCK, 0);
    return direct !== undefined;
  } catch {
    return false;
  } finally {
    await direct?.close();
    await rm(path);
  }
}

const DIRECT = present(await takesDirect(tmp), `O_DIRECT in ${tmp}`, 'the checks that writes went around the cache');

describe('large attention files are written around the page cache (core/direct.ts)', () => {
  test.each(['F32', 'F16', 'BF16'] as const)(
    '%s: the same bytes as through the cache, every part at a place that is not a block boundary',
    async (dtype) => {
      // 301 tokens, 3 heads: parts of 1.09 MB (F32) that start and end inside 64 KiB blocks, q and k between them.
      const [around, through] = [join(tmp, `around.${dtype}`), join(tmp, `through.${dtype}`)];
      const written = await writeAttentionStream(around, madeUpStream(301, 3, 4, 7), { dtype, direct: true });
      const cached = await writeAttentionStream(through, madeUpStream(301, 3, 4, 7), { dtype, direct: false });
      expect((await readFile(around)).equals(await readFile(through))).toBe(true);
      expect(cached.directBytes).toBe(0);
      // Whole blocks only: all but the file's ends and the blocks a part boundary falls in.
      if (DIRECT) expect(written.directBytes).toBeGreaterThan(0.75 * written.bytes);
      expect(written.directBytes % BLOCK).toBe(0);
      const back = await readAttentionFile(around);
      expect(back.attention.data[((3 * 3 + 2) * 301 + 100) * 301 + 105]).toBe(1); // layer 3, head 2, row 100
      expect([back.query!.data.at(-1), back.key!.data.at(-1), back.hiddenLast!.data.at(-1)]).toEqual([
        3.25, -3.125, 0.5,
      ]);
      // Small files go through the cache unless asked.
      expect((await writeAttentionStream(through, madeUpStream(301, 3, 4, 7), { dtype })).directBytes).toBe(0);
    },
  );

  test('a direct write the system refuses is written through the cache, and so is every one after it', async (t) => {
    if (!DIRECT || (await takesDirect(tmp, 16)))
      return t.skip(`${tmp} takes direct writes from memory that is not block-aligned: none is refused`);
    const path = join(tmp, 'refused');
    const file = await open(path, 'w');
    const direct = await openDirect(path);
    const writer = new DirectWriter(file, direct);
    const counting = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) % 251);
    try {
      const memory = new Uint8Array(blockAligned(4 * BLOCK));
      memory.set(counting(0, memory.length));
      // Bytes whose whole blocks lie off block boundaries in memory: refused (EINVAL), then cached.
      await writer.write(memory.subarray(16, 16 + 2 * BLOCK + 100), BLOCK - 50);
      // Aligned ones after it: through the cache too.
      await writer.write(memory.subarray(0, 2 * BLOCK), 4 * BLOCK);
      expect(writer.directBytes).toBe(0);
    } finally {
      await direct?.close();
      await file.close();
    }
    const bytes = await readFile(path);
    expect(bytes.subarray(BLOCK - 50, 3 * BLOCK + 50).equals(counting(16, 2 * BLOCK + 100))).toBe(true);
    expect(bytes.subarray(4 * BLOCK).equals(counting(0, 2 * BLOCK))).toBe(true);
  });
});

describe("toHalf's F16 conversion (the stream writer's)", () => {
  test('gives f32BitsToF16 bits at every exponent, at the rounding boundaries and ties, for both signs', () => {
    // Mantissas at the edges of the 13 bits F16 drops: exact, just under / at / over half an ulp, ties with an even
    // and an odd kept bit, all ones (carries into the exponent), plus pseudo-random ones.
    const mantissas = [
      0, 1, 0xfff, 0x1000, 0x1001, 0x2fff, 0x3000, 0x3001, 0x1fff, 0x2000, 0x7fefff, 0x7ff000, 0x7fffff,
    ];
    let seed = 1;
    for (let i = 0; i < 64; i++) mantissas.push((seed = (seed * 1103515245 + 12345) >>> 0) & 0x7fffff);
    const bits: number[] = [];
    for (const sign of [0, 0x80000000])
      for (let exp = 0; exp < 256; exp++) for (const m of mantissas) bits.push((sign | (exp << 23) | m) >>> 0);
    const u = Uint32Array.from(bits);
    const values = new Float32Array(u.buffer);
    // Whole: runs of eight go through WebAssembly (half.wat); in sevens: all through the JavaScript loop.
    const whole = toHalf(values, 'F16');
    const sevens = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i += 7) toHalf(values.subarray(i, i + 7), 'F16', sevens.subarray(i, i + 7));
    for (const [how, out] of [
      ['whole', whole],
      ['sevens', sevens],
    ] as const) {
      const wrong = bits.filter((x, i) => out[i] !== f32BitsToF16(x)).map((x) => x.toString(16));
      expect(wrong, how).toEqual([]);
    }
    // NaN stays NaN with its sign in both paths (its payload is not kept).
    const nans = new Float32Array(new Uint32Array([0x7fc00000, 0xffc00001, 0x7f800001, 0x7fffffff]).buffer);
    for (const n of [4, 8]) {
      const eight = new Float32Array(8);
      eight.set(nans);
      expect([...toHalf(eight.subarray(0, n), 'F16').subarray(0, 4)]).toEqual([0x7e00, 0xfe00, 0x7e00, 0x7e00]);
    }
    // The largest value below the overflow tie stays finite; the tie (65520) and above round to Infinity.
    expect([...toHalf(Float32Array.of(65519, 65520, -65520, 6.1035156e-5, 2 ** -25), 'F16')]).toEqual([
      0x7bff, 0x7c00, 0xfc00, 0x0400, 0,
    ]);
  });

  test('the WebAssembly converter is half.wat assembled', async () => {
    const wabt = await (await import('wabt')).default();
    const wat = await readFile(new URL('../src/core/half.wat', import.meta.url), 'utf8');
    const { buffer } = wabt.parseWat('half.wat', wat, { simd: true }).toBinary({});
    expect(Buffer.from(buffer).toString('base64')).toBe(HALF_WASM);
  });
});

describe.skipIf(!HAVE_SHARED)('attention files in F16 and BF16, written layer by layer', () => {
  test.each(MODELS)(
    '%s: the streamed F32 file is the attention() result; F16 and BF16 within rounding',
    async (name) => {
      const m = await model(name);
      const a = await m.attention(TEXT);
      const f32 = join(tmp, `${name}.f32.safetensors`);
      await writeAttentionStream(f32, m.stream(TEXT));
      const back = await readAttentionFile(f32);
      for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
        expect(sameBits(back[key]!.data, a[key]!.data), key).toBe(true);
      expect(back.tokens).toEqual(a.tokens);
      expect(back.inputIds).toEqual(a.inputIds);
      // Same bytes as the whole-Attention writer, but for the layers/heads lists the stream always records.
      expect(back.layers).toEqual([...Array(a.attention.dims[0]).keys()]);

      // Round to nearest: |x − half(x)| ≤ half an ulp, 2^-11 |x| for F16 (2^-25 in its subnormal range), 2^-8 |x|
      // for BF16.
      for (const [dtype, rel, abs] of [
        ['F16', 2 ** -11, 2 ** -25],
        ['BF16', 2 ** -8, 0],
      ] as const) {
        const path = join(tmp, `${name}.${dtype}.safetensors`);
        await writeAttentionStream(path, m.stream(TEXT), { dtype });
        const half = await readAttentionFile(path);
        for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const) {
          const [x, y] = [a[key]!.data, half[key]!.data];
          let worst = 0;
          for (let i = 0; i < x.length; i++)
            worst = Math.max(worst, Math.abs(x[i] - y[i]) - rel * Math.abs(x[i]) - abs);
          expect(worst, `${dtype} ${key}`).toBeLessThanOrEqual(0);
          expect(sameBits(x, y), `${dtype} ${key} is rounded`).toBe(false);
        }
        // The whole-Attention writer rounds the same way.
        const whole = decodeAttentionFile(encodeAttentionFile(a, { dtype }), 'whole');
        for (const key of ['attention', 'query', 'key', 'hiddenLast'] as const)
          expect(sameBits(whole[key]!.data, half[key]!.data), `${dtype} ${key}`).toBe(true);
      }
    },
  );
});

describe.skipIf(!HAVE_SHARED)('attnviz extract --dtype --layers --heads', () => {
  const run = promisify(execFile);
  const ROOT = fileURLToPath(new URL('..', import.meta.url));
  const extract = (out: string, ...extra: string[]) =>
    run(
      process.execPath,
      ['dist/src/cli/main.js', 'extract', '--model', goldenModel('bert-tiny'), '--text', TEXT, '--out', out, ...extra],
      { cwd: ROOT },
    );

  test('a selection in F16 reads back as those slices of the full run', async () => {
    const out = join(tmp, 'cli-f16.safetensors');
    const { stderr } = await extract(out, '--dtype', 'f16', '--layers', '0,2', '--heads', '1-2');
    expect(stderr).toBe(`wrote ${out}: 2 layers × 2 heads × 19 tokens\n`);
    const a = await readAttentionFile(out);
    const full = await (await model('bert-tiny')).attention(TEXT);
    expect(a.layers).toEqual([0, 2]);
    expect(a.heads).toEqual([1, 2]);
    [0, 2].forEach((l, i) => {
      const [x, y] = [slice(full.attention, l, [1, 2]), slice(a.attention, i, [0, 1])];
      for (let j = 0; j < x.length; j++) expect(Math.abs(x[j] - y[j])).toBeLessThanOrEqual(2 ** -11 * x[j] + 2 ** -25);
    });
  });

  test.each([
    [['--dtype', 'f64'], /^attnviz: --dtype must be one of f32, f16, bf16, not "f64"$/],
    [['--layers', '0,x'], /^attnviz: --layers must be indices and ranges such as 0,5-7, not "0,x"$/],
    [['--heads', '3-1'], /^attnviz: --heads must be indices and ranges such as 0,5-7, not "3-1"$/],
    [['--layers', ''], /^attnviz: --layers must be indices and ranges/],
    [['--layers', '0,7'], /^attnviz: layer 7 is out of range: the model has 3 layers \(0–2\)$/],
  ])('%j: exit 2, one line, nothing written', async (extra, message) => {
    const dir = await mkdtemp(join(tmp, 'bad-'));
    const error = await extract(join(dir, 'x.safetensors'), ...extra).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).toBe(2);
    expect(error?.stderr.trimEnd()).toMatch(message);
    expect(error?.stderr.trimEnd()).not.toMatch(/\n/);
    expect(await readdir(dir)).toEqual([]);
  });
});
