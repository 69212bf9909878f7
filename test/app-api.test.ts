/**
 * The app's API client (src/app/api.ts) against scripted responses: layer-by-layer answers are drawn as
 * their layers arrive, an error frame mid-stream and a cut stream become readable errors, and server errors
 * keep their status and message.
 */
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { encodeAttention } from '../src/core/encode.js';
import { ApiError, type AttentionQuery, countTokens, fetchAttention, fetchHeads, loadModel } from '../src/app/api.js';
import { errorFrame, frame, layerOf } from '../src/core/protocol.js';

const L = 3,
  H = 2,
  T = 3,
  D = 4;

function sample(): Attention {
  const attention = new Float32Array(L * H * T * T).fill(1 / T);
  const query = Float32Array.from({ length: L * H * T * D }, (_, i) => (i % 7) / 8);
  return {
    tokens: ['a', 'b', 'c'],
    text: 'a b c',
    pair: null,
    sentenceBStart: null,
    model: { source: 'test', modelType: 'test' },
    causal: false,
    attention: { dims: [L, H, T, T], data: attention },
    query: { dims: [L, H, T, D], data: query },
    key: { dims: [L, H, T, D], data: query },
  };
}

/** A response whose body sends `chunks` one at a time, each after the previous one was read. */
function streamed(chunks: Uint8Array[], headers: Record<string, string>): Response {
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.close();
    },
  });
  return new Response(body, { status: 200, headers });
}

const layered = { 'x-attnviz-format': 'avz1-layers', 'x-attnviz-layers': String(L) };

afterEach(() => vi.unstubAllGlobals());

/** fetchAttention of an answer that is a whole Attention (not an overview). */
async function whole(query: AttentionQuery, partial?: (a: Attention, total: number) => void): Promise<Attention> {
  const a = await fetchAttention(query, { partial });
  if ('shell' in a) throw new Error('an overview');
  return a;
}

describe('fetchAttention', () => {
  test('layer-by-layer: onPartial sees 1, then 2 layers; the result is all 3', async () => {
    const a = sample();
    const frames = Array.from({ length: L }, (_, l) => frame(encodeAttention(layerOf(a, l))));
    vi.stubGlobal('fetch', async () => streamed(frames, layered));
    const partial: number[] = [];
    const result = await whole({ model: 'm', text: 'a b c' }, (p, total) => {
      partial.push(p.attention.dims[0]);
      expect(total).toBe(L);
    });
    expect(partial).toEqual([1, 2]);
    expect(result.attention.dims).toEqual([L, H, T, T]);
    expect(result.query!.dims).toEqual([L, H, T, D]);
    expect(result.tokens).toEqual(['a', 'b', 'c']);
  });

  test('a frame split across chunks is put back together', async () => {
    const a = sample();
    const bytes = frame(encodeAttention(layerOf(a, 0)));
    const all = [
      bytes.subarray(0, 3),
      bytes.subarray(3, 50),
      bytes.subarray(50),
      frame(encodeAttention(layerOf(a, 1))),
      frame(encodeAttention(layerOf(a, 2))),
    ];
    vi.stubGlobal('fetch', async () => streamed(all, layered));
    expect((await whole({ model: 'm', text: 'x' })).attention.dims[0]).toBe(L);
  });

  test('an error frame and a cut stream are errors with a message', async () => {
    const a = sample();
    vi.stubGlobal('fetch', async () =>
      streamed([frame(encodeAttention(layerOf(a, 0))), errorFrame(500, 'encoding failed')], layered),
    );
    await expect(whole({ model: 'm', text: 'x' })).rejects.toMatchObject({
      status: 500,
      message: 'encoding failed',
    });
    vi.stubGlobal('fetch', async () => streamed([frame(encodeAttention(layerOf(a, 0)))], layered));
    await expect(whole({ model: 'm', text: 'x' })).rejects.toThrow(/ended after 1 of 3 layers/);
  });

  test('server errors keep their status and message; an unreachable server says so', async () => {
    vi.stubGlobal(
      'fetch',
      async () => new Response(JSON.stringify({ status: 413, message: '"text" is too long' }), { status: 413 }),
    );
    await expect(whole({ model: 'm', text: 'x' })).rejects.toEqual(
      new ApiError(413, '"text" is too long', { status: 413, message: '"text" is too long' }),
    );
    vi.stubGlobal('fetch', async () => {
      throw new TypeError('fetch failed');
    });
    await expect(whole({ model: 'm', text: 'x' })).rejects.toThrow(/cannot reach the attnviz server/);
  });
});

describe('long inputs: the overview, heads on demand, token counts', () => {
  test('an overview answer: the shell has every layer and no values; each layer arrives pooled, in order', async () => {
    const a = sample();
    // Layers pooled to 2 × 2 per head, as the server sends them.
    const pooled = Array.from({ length: L }, (_, l) => {
      const data = Float32Array.from({ length: H * 4 }, (_, i) => (l * 100 + i) / 1000);
      return frame(
        encodeAttention({
          ...layerOf(a, l),
          query: undefined,
          key: undefined,
          attention: { dims: [1, H, 2, 2], data },
        }),
      );
    });
    const requests: unknown[] = [];
    vi.stubGlobal('fetch', async (_url: string, init: RequestInit) => {
      requests.push(JSON.parse(String(init.body)));
      return streamed(pooled, { 'x-attnviz-format': 'avz1-overview', 'x-attnviz-layers': String(L) });
    });
    const seen: number[] = [];
    const o = await fetchAttention(
      { model: 'm', text: 'a b c', truncate: true },
      { overview: (x) => seen.push(x.layers.length) },
    );
    expect(requests).toEqual([{ model: 'm', text: 'a b c', truncate: true, stream: 'auto', detail: 'auto' }]);
    if (!('shell' in o)) throw new Error('not an overview');
    expect(seen).toEqual([1, 2, 3]);
    expect(o.shell.attention.dims).toEqual([L, H, T, T]);
    expect(o.shell.attention.data).toHaveLength(0);
    expect(o.shell.tokens).toEqual(['a', 'b', 'c']);
    expect(o.layers.map((x) => x.size)).toEqual([
      [2, 2],
      [2, 2],
      [2, 2],
    ]);
    expect(o.layers[2].weights[5]).toBeCloseTo(0.205, 3);
  });

  test("fetchHeads asks for one layer's heads, whole; countTokens for the counts", async () => {
    const a = sample();
    const bodies: unknown[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit) => {
      bodies.push([url, JSON.parse(String(init.body))]);
      return url === '/api/tokens'
        ? new Response(JSON.stringify({ tokens: 3, maxTokens: 128 }))
        : new Response(new Blob([encodeAttention(layerOf(a, 1)).slice()]), { headers: { 'x-attnviz-format': 'avz1' } });
    });
    const one = await fetchHeads({ model: 'm', text: 'a b c' }, 1, [0], false);
    expect(one.attention.dims).toEqual([1, H, T, T]);
    expect(await countTokens({ model: 'm', text: 'a b c', pair: null })).toEqual({ tokens: 3, maxTokens: 128 });
    expect(bodies).toEqual([
      ['/api/attention', { model: 'm', text: 'a b c', layers: [1], heads: [0], queryKey: false, stream: 'none' }],
      ['/api/tokens', { model: 'm', text: 'a b c', pair: null }],
    ]);
  });

  test("a too-many-tokens answer keeps its figures for the page's own message", async () => {
    const body = { status: 400, message: 'm', code: 'too-many-tokens', field: 'text', tokens: 300, maxTokens: 128 };
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify(body), { status: 400 }));
    await expect(whole({ model: 'm', text: 'x' })).rejects.toMatchObject({ status: 400, body });
  });
});

describe('loadModel', () => {
  test('reads progress events, then the model; an error event is an ApiError', async () => {
    const sse = (text: string) => async () =>
      streamed([new TextEncoder().encode(text)], { 'content-type': 'text/event-stream' });
    vi.stubGlobal(
      'fetch',
      sse(
        'event: progress\ndata: ' +
          '{"phase":"download","message":"downloading","loaded":5,"total":10}\n\nevent: ' +
          'ready\ndata: {"model":{"id":"m","layers":2}}\n\n',
      ),
    );
    const seen: unknown[] = [];
    expect(await loadModel('m', (p) => seen.push(p))).toEqual({ id: 'm', layers: 2 });
    expect(seen).toEqual([{ phase: 'download', message: 'downloading', loaded: 5, total: 10 }]);
    vi.stubGlobal('fetch', sse('event: error\ndata: {"status":404,"message":"no such model"}\n\n'));
    await expect(loadModel('m', () => undefined)).rejects.toEqual(new ApiError(404, 'no such model'));
  });
});

describe('the app bundle', () => {
  test('imports no Node built-in, directly or through core, analysis or views', () => {
    const seen = new Set<string>();
    const node: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        else if (spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]))
          node.push(`${relative(process.cwd(), file)}: ${spec}`);
      }
    };
    visit(resolve(import.meta.dirname, '../src/app/main.ts'));
    // The attention file reader is among them (the page opens attention files).
    expect([...seen].map((f) => relative(process.cwd(), f))).toContain('src/core/attention-file.ts');
    expect(node).toEqual([]);
  });
});
