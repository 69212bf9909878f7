/**
 * POST /api/attention streamed as the model computes (src/server/handlers.ts): each layer's frame goes out as
 * soon as that layer is computed. The model is bert-tiny (3 layers × 4 heads) behind a gate: its stream()
 * waits after each layer until the test lets it go on, so the test knows which layers exist when a frame
 * arrives, a client hangs up, or a layer fails. The handler is served by a plain HTTP server over a model cache
 * that holds this model (the routing, Host and Origin checks are server.test.ts's).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention, AttentionStream, LayerAttention } from '../src/core/attention.js';
import { decodeAttention } from '../src/core/encode.js';
import { FrameError, FrameReader, OVERVIEW_CELLS } from '../src/core/protocol.js';
import { Model } from '../src/models/checkpoint-model.js';
import { type Context, DEFAULT_LIMITS, postAttention, ResultCache } from '../src/server/handlers.js';
import { sendError } from '../src/server/http-error.js';
import { ModelCache } from '../src/server/model-cache.js';
import { goldenModel, HAVE_SHARED } from './shared.js';

/** What the gated model has done: per stream() call, the layers computed; and its attention() calls. */
const runs: number[] = [];
let attentionCalls = 0;
/** Awaited after each layer: the test replaces it with a promise it resolves to let the model go on. */
let gate: Promise<void> = Promise.resolve();
let open: () => void = () => undefined;
/** When set, the stream fails after computing that many layers. */
let failAfter: number | null = null;

const close = () => {
  gate = new Promise((resolve) => (open = resolve));
};

/** `model` whose stream() yields each layer and then waits for the gate (and counts what it computed). */
function gated(model: Model): Model {
  const m = Object.create(model) as Model;
  m.stream = (text, options) => {
    const inner = model.stream(text, options);
    const run = runs.push(0) - 1;
    const stream: AttentionStream = {
      header: inner.header,
      get hiddenLast() {
        return inner.hiddenLast;
      },
      async *[Symbol.asyncIterator](): AsyncGenerator<LayerAttention> {
        for await (const layer of inner) {
          runs[run]++;
          if (runs[run] === failAfter) throw new Error('layer 1 of the gated model failed');
          yield layer;
          await gate;
        }
      },
    };
    return stream;
  };
  m.attention = (...args) => {
    attentionCalls++;
    return model.attention(...args);
  };
  return m;
}

let model: Model;
let server: Server;
/** Responses closed (ended, or their connection gone). */
let closes = 0;
let port: number;
// Past 1 000 values the overview, as the app asks for it (detail "auto"); a test shortens the time limit.
const limits = { ...DEFAULT_LIMITS, overviewAbove: 1000, streamAbove: 1000 };

beforeAll(async () => {
  if (!HAVE_SHARED) return;
  model = await Model.load(goldenModel('bert-tiny'));
  const m = gated(model);
  const cache = new ModelCache({
    capBytes: 2 ** 30,
    maxQueue: 16,
    open: async () => ({ model: m, state: 'same', files: async () => 'same' }),
  });
  const ctx: Context = {
    cache,
    roots: [],
    env: {},
    limits,
    defaultModel: 'embedded',
    results: new ResultCache(2 ** 26),
  };
  server = createServer((req, res) => {
    res.once('close', () => closes++);
    void postAttention(ctx, req, res).catch((e: unknown) => sendError(res, e));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await model?.release();
});

/** An attention request, answered as its response (not yet read). */
function post(body: Record<string, unknown>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/attention',
        headers: { 'content-type': 'application/json' },
      },
      resolve,
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * Reads frames off `res` until `n` have come (then pauses it, the connection kept) or the stream ends: the
 * decoded frames. An error frame rejects with its FrameError.
 */
function frames(res: IncomingMessage, reader: FrameReader, n = Number.POSITIVE_INFINITY): Promise<Attention[]> {
  return new Promise((resolve, reject) => {
    const out: Attention[] = [];
    const done = (f: () => void) => {
      res.off('data', onData).off('end', onEnd).off('error', reject);
      f();
    };
    const onData = (chunk: Buffer) => {
      try {
        out.push(...reader.push(new Uint8Array(chunk)).map((f) => decodeAttention(f)));
      } catch (e) {
        return done(() => reject(e));
      }
      if (out.length < n) return;
      res.pause();
      done(() => resolve(out));
    };
    const onEnd = () => done(() => resolve(out));
    res.on('data', onData).once('end', onEnd).once('error', reject);
    res.resume();
  });
}

/** A whole answer, decoded. */
async function whole(res: IncomingMessage): Promise<Attention> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  expect(res.statusCode).toBe(200);
  return decodeAttention(new Uint8Array(Buffer.concat(chunks)));
}

/** Head `h` of layer `l` of `a`, max-pooled to n × n in float64: cell (i, j) the largest weight over its block. */
function pooled(a: Attention, l: number, h: number, n: number): Float64Array {
  const [, H, T] = a.attention.dims;
  const w = a.attention.data.subarray((l * H + h) * T * T, (l * H + h + 1) * T * T);
  const out = new Float64Array(n * n);
  for (let q = 0; q < T; q++)
    for (let k = 0; k < T; k++) {
      const cell = Math.floor((q * n) / T) * n + Math.floor((k * n) / T);
      out[cell] = Math.max(out[cell], w[q * T + k]);
    }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

// "the" is one token of bert-tiny's vocabulary: 200 of them and [CLS], [SEP] make 202 > OVERVIEW_CELLS tokens.
const textOf = (word: string) => Array.from({ length: 200 }, (_, i) => (i % 9 === 4 ? word : 'the')).join(' ');

describe.runIf(HAVE_SHARED)('POST /api/attention streamed as the model computes', () => {
  test('each layer is sent once computed; the overview is attention() pooled, layer by layer', async () => {
    const text = textOf('cat');
    const want = await model.attention(text);
    const [L, H, T] = want.attention.dims;
    expect([L, H, T]).toEqual([3, 4, 202]);
    close();
    const before = runs.length;
    const res = await post({ model: 'embedded', text, detail: 'auto', stream: 'auto' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-attnviz-format']).toBe('avz1-overview');
    expect(res.headers['x-attnviz-layers']).toBe('3');
    expect(res.headers['x-attnviz-tokens']).toBe('202');
    const reader = new FrameReader();
    const got = await frames(res, reader, 1);
    // Layer 0 is on the wire while the model waits before layer 1.
    expect(runs.length).toBe(before + 1);
    expect(runs[before]).toBe(1);
    // A head asked for now (a click mid-stream) waits for this run instead of running the model again.
    const head = post({ model: 'embedded', text, layers: [2], heads: [1], queryKey: false, stream: 'none' });
    open();
    got.push(...(await frames(res, reader)));
    expect(reader.empty).toBe(true);
    expect(got).toHaveLength(L);
    const n = OVERVIEW_CELLS;
    got.forEach((frame, l) => {
      expect(frame.attention.dims).toEqual([1, H, n, n]);
      expect(frame.tokens).toEqual(want.tokens);
      expect(frame.model.source).toBe('embedded');
      expect(frame.query).toBeUndefined();
      // 12-bit √ quantisation on the wire: at most 2.5e-4 off.
      for (let h = 0; h < H; h++)
        expect(maxDiff(frame.attention.data.subarray(h * n * n, (h + 1) * n * n), pooled(want, l, h, n))).toBeLessThan(
          3e-4,
        );
    });
    const one = await whole(await head);
    expect(one.attention.dims).toEqual([1, 1, T, T]);
    const at = (2 * H + 1) * T * T;
    expect(maxDiff(one.attention.data, want.attention.data.subarray(at, at + T * T))).toBeLessThan(3e-4);
    // Then heads at full resolution come from the kept result: no run at all.
    const again = await whole(await post({ model: 'embedded', text, layers: [0], heads: [3], stream: 'none' }));
    expect(maxDiff(again.attention.data, want.attention.data.subarray(3 * T * T, 4 * T * T))).toBeLessThan(3e-4);
    expect(again.query!.dims).toEqual([1, 1, T, model.dims.headDim]);
    expect(runs.length).toBe(before + 1);
    expect(runs[before]).toBe(L);
    expect(attentionCalls).toBe(0);
  });

  test('full layers ("detail": "full") stream the same way, q and k included', async () => {
    const text = textOf('dog');
    const want = await model.attention(text);
    const [, H, T] = want.attention.dims;
    const res = await post({ model: 'embedded', text, detail: 'full', stream: 'layers' });
    expect(res.headers['x-attnviz-format']).toBe('avz1-layers');
    const got = await frames(res, new FrameReader());
    expect(got.map((f) => f.attention.dims)).toEqual([0, 1, 2].map(() => [1, H, T, T]));
    got.forEach((f, l) => {
      expect(maxDiff(f.attention.data, want.attention.data.subarray(l * H * T * T, (l + 1) * H * T * T))).toBeLessThan(
        3e-4,
      );
      const d = model.dims.headDim;
      // float16 on the wire.
      const q = want.query!.data.subarray(l * H * T * d, (l + 1) * H * T * d);
      expect(maxDiff(f.query!.data, q)).toBeLessThan(2e-3 * Math.max(...Array.from(q, Math.abs)));
    });
  });

  test('a client that hangs up mid-stream stops the run; nothing half-done is kept; the server serves on', async () => {
    const text = textOf('mat');
    close();
    const before = runs.length;
    const res = await post({ model: 'embedded', text, detail: 'overview' });
    expect(await frames(res, new FrameReader(), 1)).toHaveLength(1);
    const closed = closes;
    res.destroy();
    // The server sees the connection close before the model goes on.
    while (closes === closed) await new Promise((resolve) => setTimeout(resolve, 10));
    open();
    // The same text again: a complete answer (the cut run's result was not kept), from a run of its own, which
    // starts only after the cut run has ended (one run at a time per model).
    const again = await frames(await post({ model: 'embedded', text, detail: 'overview' }), new FrameReader());
    expect(again).toHaveLength(3);
    expect(runs.slice(before)).toEqual([2, 3]);
    const want = await model.attention(text);
    const n = OVERVIEW_CELLS;
    expect(maxDiff(again[2].attention.data.subarray(0, n * n), pooled(want, 2, 0, n))).toBeLessThan(3e-4);
  });

  test('an error after the first frame comes as an error frame; the next request is answered', async () => {
    failAfter = 2;
    const text = textOf('rug');
    const res = await post({ model: 'embedded', text, detail: 'overview' });
    expect(res.statusCode).toBe(200);
    const reader = new FrameReader();
    const error = await frames(res, reader).then(
      () => null,
      (e: unknown) => e,
    );
    failAfter = null;
    expect(error).toBeInstanceOf(FrameError);
    expect(error).toMatchObject({ status: 500, message: 'layer 1 of the gated model failed' });
    const again = await frames(await post({ model: 'embedded', text, detail: 'overview' }), new FrameReader());
    expect(again).toHaveLength(3);
  });

  test('a run past the time limit ends its stream with a 503 error frame, and stops', async () => {
    limits.requestTimeoutMs = 300;
    close();
    const before = runs.length;
    const res = await post({ model: 'embedded', text: textOf('hat'), detail: 'overview' });
    const reader = new FrameReader();
    expect(await frames(res, reader, 1)).toHaveLength(1);
    const error = await frames(res, reader).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      status: 503,
      message: "computing attention took longer than this server's limit of 0.3 s",
    });
    limits.requestTimeoutMs = DEFAULT_LIMITS.requestTimeoutMs;
    open();
    expect(
      await frames(await post({ model: 'embedded', text: textOf('hat'), detail: 'overview' }), new FrameReader()),
    ).toHaveLength(3);
    expect(runs.slice(before)).toEqual([2, 3]);
  });
});
