/**
 * The server API (docs/server-api.md): every endpoint, every limit, the security checks (Host, Origin, model
 * roots with `..` and symlinks), malformed requests — and that the server keeps serving after each. Runs on
 * the embedded model with the Hugging Face cache pointed at an empty folder and HF_HUB_OFFLINE set: no
 * network.
 */
import { execFile, spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { decodeAttentionFile } from '../src/core/attention-file.js';
import { decodeAttention } from '../src/core/encode.js';
import { loadModel } from '../src/models/load-model.js';
import { ModelCache, type OpenedModel } from '../src/server/model-cache.js';
import type { AttentionModel } from '../src/models/model.js';
import { FrameReader, joinLayers, OVERVIEW_CELLS } from '../src/core/protocol.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { HAVE_CLI, MAIN, ROOT } from './cli-run.js';
import { goldenModel, HAVE_SHARED, SHARED } from './shared.js';
import { removeTinyModels, writeTinyModel } from './tiny-models.js';
import { BART, bartConfig, bartWeights, SOURCE, TARGET } from './tiny-seq2seq.js';

let server: RunningServer;
let root: string;
let outside: string;
let hubCache: string;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): { status: number; message: string } & Record<string, unknown>;
}

/** One HTTP request with full control over the headers (fetch does not let Host be set). */
function call(
  method: string,
  path: string,
  options: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const raw = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = {
    host: `127.0.0.1:${server.port}`,
    ...(raw !== undefined ? { 'content-type': 'application/json' } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(raw);
  });
}

/** Raw bytes over a socket; resolves with everything the server sent once it closes the connection. */
const raw = (bytes: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1');
    let out = '';
    socket.on('data', (d) => (out += d.toString()));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.write(bytes);
  });

const attention = (body: Record<string, unknown>) => call('POST', '/api/attention', { body });

/** Decodes either payload format of /api/attention. */
function decodePayload(r: Reply): Attention {
  if (r.headers['x-attnviz-format'] === 'avz1') return decodeAttention(new Uint8Array(r.body));
  const reader = new FrameReader();
  const layers = reader.push(new Uint8Array(r.body)).map((f) => decodeAttention(f));
  expect(reader.empty).toBe(true);
  return joinLayers(layers);
}

async function expectError(r: Reply | Promise<Reply>, status: number, message: RegExp): Promise<void> {
  const reply = await r;
  expect(reply.status).toBe(status);
  expect(reply.headers['content-type']).toMatch(/^application\/json/);
  const body = reply.json();
  expect(body.status).toBe(status);
  expect(body.message).toMatch(message);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attnviz-root-'));
  outside = await mkdtemp(join(tmpdir(), 'attnviz-outside-'));
  hubCache = await mkdtemp(join(tmpdir(), 'attnviz-hub-'));
  // A listed (not loaded) Hugging Face folder, a nested one, a folder outside the root and a symlink to it.
  await mkdir(join(root, 'my-bert'), { recursive: true });
  await writeFile(join(root, 'my-bert', 'config.json'), '{"model_type":"bert"}');
  await mkdir(join(root, 'group', 'gpt'), { recursive: true });
  await writeFile(join(root, 'group', 'gpt', 'config.json'), '{"model_type":"gpt2"}');
  await writeFile(join(outside, 'config.json'), '{"model_type":"bert"}');
  await symlink(outside, join(root, 'escape'));
  // A complete snapshot in the (offline) hub cache.
  const snap = join(hubCache, 'models--org--cached-model', 'snapshots', 'a'.repeat(40));
  await mkdir(snap, { recursive: true });
  await writeFile(join(snap, 'config.json'), '{}');
  await mkdir(join(hubCache, 'models--org--cached-model', 'refs'), { recursive: true });
  await writeFile(join(hubCache, 'models--org--cached-model', 'refs', 'main'), 'a'.repeat(40));
  server = await startServer({
    port: 0,
    modelRoots: HAVE_SHARED ? [root, join(SHARED, 'golden', 'models')] : [root],
    env: { HF_HUB_CACHE: hubCache, HF_HUB_OFFLINE: '1' },
    limits: { maxTextChars: 300, maxBodyBytes: 4096, streamAbove: 1e9 },
    preload: true,
  });
});

afterAll(async () => {
  await server?.close();
  await removeTinyModels();
  for (const d of [root, outside, hubCache]) if (d) await rm(d, { recursive: true, force: true });
});

describe('endpoints', () => {
  test('GET /api/models: the embedded model, folders under the roots, the hub cache; limits', async () => {
    const r = await call('GET', '/api/models');
    expect(r.status).toBe(200);
    const body = r.json() as unknown as {
      models: { id: string; label: string; kind: string; format: string }[];
      defaultModel: string;
      limits: Record<string, number>;
      loaded: { id: string }[];
    };
    expect(body.defaultModel).toBe('embedded');
    expect(body.models[0]).toEqual({
      id: 'embedded',
      label: expect.stringContaining('Universal Sentence Encoder lite'),
      kind: 'embedded',
      format: 'tfjs',
    });
    const ids = body.models.map((m) => m.id);
    expect(ids).toContain(`path:${join(root, 'my-bert')}`);
    expect(ids).toContain(`path:${join(root, 'group', 'gpt')}`);
    expect(ids).toContain('hub:org/cached-model');
    expect(body.limits).toEqual({ maxTextChars: 300, maxBodyBytes: 4096 });
    expect(body.loaded.map((l) => l.id)).toEqual(['embedded']);
  });

  test('POST /api/models/load: JSON, and Server-Sent Events with progress then ready', async () => {
    const r = await call('POST', '/api/models/load', { body: { model: 'embedded' } });
    expect(r.status).toBe(200);
    expect(r.json().model).toMatchObject({
      id: 'embedded',
      modelType: 'use-lite',
      layers: 2,
      heads: 4,
      causal: false,
      encoderDecoder: false,
    });
    const sse = await call('POST', '/api/models/load', {
      body: { model: 'embedded' },
      headers: { accept: 'text/event-stream' },
    });
    expect(sse.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(sse.body.toString()).toMatch(/^event: ready\ndata: \{"model":\{"id":"embedded"/m);
  });

  test('POST /api/attention: the compact binary payload, whole or layer by layer, with or without q/k', async () => {
    const whole = await attention({ text: 'The cat sat on the mat.' });
    expect(whole.status).toBe(200);
    expect(whole.headers['content-type']).toBe('application/octet-stream');
    expect(whole.headers['x-attnviz-format']).toBe('avz1');
    expect(whole.headers['x-attnviz-layers']).toBe('2');
    const a = decodePayload(whole);
    expect(a.tokens.slice(0, 2)).toEqual(['▁The', '▁cat']);
    expect(a.model).toEqual({ source: 'embedded', modelType: 'use-lite' });
    const T = a.tokens.length;
    expect(a.attention.dims).toEqual([2, 4, T, T]);
    expect(a.query!.dims).toEqual([2, 4, T, 128]);
    for (let r = 0; r < 2 * 4 * T; r++) {
      const sum = a.attention.data.subarray(r * T, (r + 1) * T).reduce((x, y) => x + y, 0);
      expect(Math.abs(sum - 1)).toBeLessThan(0.01);
    }
    const layered = await attention({ text: 'The cat sat on the mat.', stream: 'layers' });
    expect(layered.headers['x-attnviz-format']).toBe('avz1-layers');
    expect(layered.headers['transfer-encoding']).toBe('chunked');
    const b = decodePayload(layered);
    expect(b.attention.dims).toEqual(a.attention.dims);
    expect(b.attention.data).toEqual(a.attention.data);
    expect(b.query!.data).toEqual(a.query!.data);
    const noQk = decodePayload(await attention({ text: 'The cat sat on the mat.', queryKey: false }));
    expect(noQk.query).toBeUndefined();
    expect(whole.body.length).toBeGreaterThan(
      2 * (await attention({ text: 'The cat sat on the mat.', queryKey: false })).body.length,
    );
  });

  test('POST /api/attention with a pair marks sentence B', async () => {
    const a = decodePayload(await attention({ model: 'embedded', text: 'The cat sat.', pair: 'It was tired.' }));
    expect(a.pair).toBe('It was tired.');
    expect(a.sentenceBStart).toBeGreaterThan(0);
  });

  test('POST /api/export: the standalone HTML of a view and the attention file', async () => {
    const html = await call('POST', '/api/export', {
      body: { text: 'Export me.', format: 'html', view: 'model', options: { theme: 'light' } },
    });
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-disposition']).toBe('attachment; filename="attnviz-model-view.html"');
    expect(html.body.toString()).toMatch(/^<!doctype html>[\s\S]*data-view="model"/);
    const file = await call('POST', '/api/export', { body: { text: 'Export me.', format: 'attention' } });
    expect(file.headers['content-disposition']).toBe('attachment; filename="attention.safetensors"');
    const a = decodeAttentionFile(file.body, 'response');
    expect(a.model.modelType).toBe('use-lite');
    expect(a.attention.dims.slice(0, 2)).toEqual([2, 4]);
  });

  test('GET /api/status: memory and loaded models', async () => {
    const r = await call('GET', '/api/status');
    expect(r.status).toBe(200);
    const body = r.json() as unknown as { memory: { rss: number }; models: { key: string; bytes: number }[] };
    expect(body.memory.rss).toBeGreaterThan(0);
    expect(body.models[0]).toMatchObject({ key: 'embedded', bytes: expect.any(Number) });
  });

  test('GET / serves the app with a strict Content-Security-Policy; unknown files are 404 JSON', async () => {
    const page = await call('GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(page.body.toString())![1];
    expect((await call('GET', script)).status).toBe(200);
    await expectError(call('GET', '/assets/../../package.json'), 404, /no file/);
    await expectError(call('GET', '/%2e%2e/package.json'), 404, /no file/);
    await expectError(call('GET', '/nope.js'), 404, /no file/);
  });

  test.runIf(HAVE_SHARED)('a Hugging Face folder in a model root runs through the ONNX engine', async () => {
    const a = decodePayload(await attention({ model: 'path:bert-tiny', text: 'The cat sat.', pair: 'It slept.' }));
    // Roots are resolved through symlinks (a root may be one), so the source names the real folder.
    expect(a.model.source).toBe(`path:${realpathSync(goldenModel('bert-tiny'))}`);
    expect(a.tokens[0]).toBe('[CLS]');
    expect(a.sentenceBStart).toBeGreaterThan(0);
  });
});

describe('token counts, truncation, the pooled overview and heads on demand', () => {
  test('POST /api/tokens counts as the model does, against its positions', async () => {
    const text = 'The cat sat on the mat.';
    const count = await call('POST', '/api/tokens', { body: { model: 'embedded', text } });
    expect(count.status).toBe(200);
    const a = decodePayload(await attention({ text }));
    expect(count.json()).toEqual({ tokens: a.tokens.length, maxTokens: 128 });
    const withPair = decodePayload(await attention({ text, pair: 'It was tired.' }));
    expect((await call('POST', '/api/tokens', { body: { text, pair: 'It was tired.' } })).json()).toEqual({
      tokens: withPair.tokens.length,
      maxTokens: 128,
    });
    // Past the positions too (that is what the counter is for), and an empty text is 0.
    const long = 'a '.repeat(150);
    expect((await call('POST', '/api/tokens', { body: { text: long } })).json().tokens).toBeGreaterThan(128);
    expect((await call('POST', '/api/tokens', { body: { text: '' } })).json()).toEqual({ tokens: 0, maxTokens: 128 });
    // Malformed: a one-line error, and the server answers the next request.
    await expectError(call('POST', '/api/tokens', { raw: '{"text":' }), 400, /malformed JSON body/);
    await expectError(call('POST', '/api/tokens', { body: { text: 3 } }), 400, /"text" must be a string/);
    await expectError(call('POST', '/api/tokens', { body: { text: 'a', truncate: true } }), 400, /unknown field/);
    await expectError(call('POST', '/api/tokens', { body: { text: 'x'.repeat(301) } }), 413, /301 characters/);
    await expectError(call('POST', '/api/tokens', { body: { text: 'a', model: '???' } }), 400, /is not a model/);
    await expectError(call('GET', '/api/tokens'), 405, /use POST/);
    expect((await call('POST', '/api/tokens', { body: { text: 'still here' } })).status).toBe(200);
  });

  test(
    'a text longer than the positions: a 400 naming "truncate" ' + '(not a CLI flag) with the figures; truncate cuts',
    async () => {
      const text = 'a '.repeat(150);
      const r = await attention({ text });
      await expectError(
        r,
        400,
        /^"text" is \d+ tokens; embedded takes at most 128 \(send "truncate": true to cut it\)$/,
      );
      const body = r.json();
      expect(body).toMatchObject({ code: 'too-many-tokens', field: 'text', maxTokens: 128 });
      expect(body.tokens).toBe((await call('POST', '/api/tokens', { body: { text } })).json().tokens);
      expect(body.message).not.toMatch(/--/);
      const cut = decodePayload(await attention({ text, truncate: true }));
      expect(cut.tokens.length).toBe(128);
    },
  );

  test('"layers" and "heads" send those heads at full resolution, with their q and k', async () => {
    const text = 'The quick brown fox jumps.';
    const all = decodePayload(await attention({ text }));
    const [, H, T] = all.attention.dims;
    const d = all.query!.dims[3];
    const r = await attention({ text, layers: [1], heads: [3, 0] });
    expect(r.headers['x-attnviz-format']).toBe('avz1');
    expect(r.headers['x-attnviz-layers']).toBe('1');
    const one = decodePayload(r);
    expect(one.attention.dims).toEqual([1, 2, T, T]);
    expect(one.query!.dims).toEqual([1, 2, T, d]);
    const head = (x: Float32Array, l: number, h: number, n: number) => x.subarray((l * H + h) * n, (l * H + h + 1) * n);
    expect(one.attention.data.subarray(0, T * T)).toEqual(head(all.attention.data, 1, 3, T * T));
    expect(one.attention.data.subarray(T * T)).toEqual(head(all.attention.data, 1, 0, T * T));
    expect(one.key!.data.subarray(T * d)).toEqual(head(all.key!.data, 1, 0, T * d));
    expect(decodePayload(await attention({ text, heads: [2] })).attention.dims).toEqual([2, 1, T, T]);

    await expectError(attention({ text, layers: [2] }), 400, /"layers" holds an index past this model's 2 layers/);
    await expectError(attention({ text, heads: [4] }), 400, /"heads" holds an index past this model's 4 heads/);
    for (const bad of [[], [0, 0], [-1], [0.5], '0', [null]])
      await expectError(attention({ text, layers: bad }), 400, /"layers" must be a non-empty list of distinct indices/);
    await expectError(attention({ text, heads: [0], detail: 'overview' }), 400, /take no "detail"/);
    await expectError(attention({ text, detail: 'coarse' }), 400, /"detail" must be "full", "overview", "auto"/);
    expect((await attention({ text, layers: [0] })).status).toBe(200);
  });

  test(
    'detail "overview": every layer as a frame, each head ' + 'max-pooled; "auto" below its threshold is whole',
    async () => {
      const text = 'Short enough to stay exact.';
      const all = decodePayload(await attention({ text }));
      const r = await attention({ text, detail: 'overview' });
      expect(r.headers['x-attnviz-format']).toBe('avz1-overview');
      const frames = new FrameReader().push(new Uint8Array(r.body)).map((f) => decodeAttention(f));
      expect(frames).toHaveLength(2);
      const [, H, T] = all.attention.dims;
      // Fewer tokens than OVERVIEW_CELLS: the overview is the attention itself.
      expect(frames[1].attention.dims).toEqual([1, H, T, T]);
      expect(frames[1].attention.data).toEqual(all.attention.data.subarray(H * T * T));
      expect(frames[1].tokens).toEqual(all.tokens);
      expect(frames[1].query).toBeUndefined();
      expect((await attention({ text, detail: 'auto' })).headers['x-attnviz-format']).toBe('avz1');
    },
  );

  test.runIf(HAVE_SHARED)('the overview of a long input is each head max-pooled to 128 × 128', async () => {
    // 140 tokens within the test server's 300 characters.
    const text = 'a '.repeat(140);
    const model = 'path:gpt2-tiny';
    const all = decodePayload(await attention({ model, text }));
    const [L, H, T] = all.attention.dims;
    expect(T).toBeGreaterThan(OVERVIEW_CELLS);
    const r = await attention({ model, text, detail: 'overview' });
    const frames = new FrameReader().push(new Uint8Array(r.body)).map((f) => decodeAttention(f));
    expect(frames).toHaveLength(L);
    const n = OVERVIEW_CELLS;
    for (let l = 0; l < L; l++) {
      expect(frames[l].attention.dims).toEqual([1, H, n, n]);
      expect(frames[l].tokens).toHaveLength(T);
      for (let h = 0; h < H; h++) {
        // Cell (i, j) = the largest weight of queries r with ⌊r·n/T⌋ = i over keys c with ⌊c·n/T⌋ = j.
        const w = all.attention.data.subarray((l * H + h) * T * T, (l * H + h + 1) * T * T);
        const want = new Float64Array(n * n);
        for (let q = 0; q < T; q++)
          for (let k = 0; k < T; k++) {
            const cell = Math.floor((q * n) / T) * n + Math.floor((k * n) / T);
            want[cell] = Math.max(want[cell], w[q * T + k]);
          }
        const got = frames[l].attention.data.subarray(h * n * n, (h + 1) * n * n);
        // 12-bit √ quantisation on the wire: at most 2.5e-4 off.
        expect(Math.max(...got.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(3e-4);
      }
    }
    // The pooled bytes: 2 layers × 4 heads × 128² cells, not × T².
    expect(r.body.length).toBeLessThan(L * H * n * n * 1.5 + 10_000);
  });
});

describe('encoder-decoder models (a tiny random BART in the model root)', () => {
  test(
    'load reports encoderDecoder; attention and export take a ' + 'target, sent whole; target and pair are checked',
    async () => {
      const dir = await writeTinyModel(bartConfig(BART), bartWeights(BART, 41), 'roberta-tiny');
      await cp(dir, join(root, 'tiny-bart'), { recursive: true });
      const reference = await loadModel(dir);
      const expected = await reference.attention(SOURCE, { target: TARGET }).finally(() => reference.release());
      const ed0 = expected.encoderDecoder!;
      const model = 'path:tiny-bart';

      const load = await call('POST', '/api/models/load', { body: { model } });
      expect(load.status).toBe(200);
      expect(load.json().model).toMatchObject({
        id: `path:${realpathSync(join(root, 'tiny-bart'))}`,
        modelType: 'bart',
        layers: BART.encoderLayers,
        encoderDecoder: true,
      });

      // stream: "layers" is ignored: the per-layer frames carry self-attention only.
      const r = await attention({ model, text: SOURCE, target: TARGET, stream: 'layers' });
      expect(r.status).toBe(200);
      expect(r.headers['x-attnviz-format']).toBe('avz1');
      const a = decodePayload(r);
      const S = expected.tokens.length,
        T = ed0.decoderTokens.length;
      expect(a.tokens).toEqual(expected.tokens);
      expect(a.encoderDecoder).toBeDefined();
      const ed = a.encoderDecoder!;
      expect(ed.decoderTokens).toEqual(ed0.decoderTokens);
      expect(ed.decoderTokens.length).toBeGreaterThan(2);
      expect(ed.target).toBe(TARGET);
      expect(ed.decoder.dims).toEqual([BART.decoderLayers, 4, T, T]);
      expect(ed.cross.dims).toEqual([BART.decoderLayers, 4, T, S]);
      expect(ed.crossQuery!.dims).toEqual(ed0.crossQuery!.dims);
      for (const [got, want] of [
        [ed.decoder, ed0.decoder],
        [ed.cross, ed0.cross],
      ] as const) {
        expect(Math.max(...got.data.map((v, i) => Math.abs(v - want.data[i])))).toBeLessThan(1e-3);
      }
      // The target is part of the result cache's key: another target is another result.
      const other = decodePayload(await attention({ model, text: SOURCE, target: 'Hello.' }));
      expect(other.encoderDecoder!.target).toBe('Hello.');
      expect(other.encoderDecoder!.decoderTokens).not.toEqual(ed.decoderTokens);

      const file = await call('POST', '/api/export', {
        body: { model, text: SOURCE, target: TARGET, format: 'attention' },
      });
      expect(file.status).toBe(200);
      expect(decodeAttentionFile(file.body, 'response').encoderDecoder!.decoderTokens).toEqual(ed0.decoderTokens);
      const html = await call('POST', '/api/export', {
        body: { model, text: SOURCE, target: TARGET, format: 'html', view: 'head' },
      });
      expect(html.status).toBe(200);

      await expectError(
        attention({ model, text: SOURCE }),
        400,
        /is an encoder-decoder model: give the decoder's text as "target"/,
      );
      await expectError(attention({ model, text: SOURCE, target: '  ' }), 400, /give the decoder's text as "target"/);
      await expectError(
        attention({ model, text: SOURCE, target: TARGET, pair: 'A pair.' }),
        400,
        /takes a "target" text, not a "pair"/,
      );
      await expectError(
        call('POST', '/api/export', { body: { model, text: SOURCE, format: 'attention' } }),
        400,
        /give the decoder's text as "target"/,
      );
      await expectError(
        attention({ model, text: SOURCE, target: TARGET, detail: 'overview' }),
        400,
        /encoder-decoder results are sent whole/,
      );
      expect(
        (await attention({ model, text: SOURCE, target: TARGET, detail: 'auto' })).headers['x-attnviz-format'],
      ).toBe('avz1');
      await expectError(
        attention({ model: 'embedded', text: SOURCE, target: TARGET }),
        400,
        /^embedded is not an encoder-decoder model: it takes no target text/,
      );
      await expectError(
        call('POST', '/api/export', { body: { text: SOURCE, target: TARGET, format: 'html' } }),
        400,
        /not an encoder-decoder model/,
      );
    },
  );
});

describe('limits and errors: a JSON body with the right status, and the server serves on', () => {
  test('text length, body size, empty text, request time', async () => {
    await expectError(
      attention({ text: 'x'.repeat(301) }),
      413,
      /"text" is 301 characters; this server takes at most 300/,
    );
    await expectError(attention({ text: 'ok', pair: 'y'.repeat(301) }), 413, /"pair" is 301 characters/);
    await expectError(
      call('POST', '/api/attention', { raw: JSON.stringify({ text: 'a', pad: 'p'.repeat(5000) }) }),
      413,
      /over this server's limit of 4096 bytes/,
    );
    await expectError(attention({ text: '   ' }), 400, /"text" is missing or empty/);
    await expectError(attention({}), 400, /"text" is missing or empty/);
    // A tight time limit: the answer is 503 in time, the run itself finishes in the background.
    const quick = await startServer({ port: 0, limits: { requestTimeoutMs: 1 } });
    try {
      const r = await fetch(`${quick.url}api/attention`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'too slow' }),
      });
      expect(r.status).toBe(503);
      expect((await r.json()).message).toMatch(/took longer than this server's limit/);
    } finally {
      await quick.close();
    }
  });

  test('malformed bodies: bad JSON, not an object, wrong types, unknown fields, wrong content type', async () => {
    await expectError(call('POST', '/api/attention', { raw: '{"text": "unterminated' }), 400, /malformed JSON body/);
    await expectError(call('POST', '/api/attention', { raw: '[1, 2]' }), 400, /must be a JSON object/);
    await expectError(call('POST', '/api/attention', { raw: 'null' }), 400, /must be a JSON object/);
    await expectError(attention({ text: 42 }), 400, /"text" must be a string/);
    await expectError(attention({ text: 'a', pair: ['b'] }), 400, /"pair" must be a string/);
    await expectError(attention({ text: 'a', truncate: 'yes' }), 400, /"truncate" must be true or false/);
    await expectError(attention({ text: 'a', stream: 'sometimes' }), 400, /"stream" must be/);
    await expectError(attention({ text: 'a', layer: 3 }), 400, /unknown field "layer"/);
    await expectError(attention({ text: 'a', model: 7 }), 400, /"model" must be a string/);
    await expectError(attention({ text: 'a', model: '???' }), 400, /is not a model/);
    await expectError(attention({ text: 'a', target: 'b' }), 400, /not an encoder-decoder model/);
    await expectError(
      call('POST', '/api/attention', {
        raw: 'text=a',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      /application\/json/,
    );
    await expectError(call('POST', '/api/export', { body: { text: 'a', format: 'pdf' } }), 400, /"format" must be/);
    await expectError(
      call('POST', '/api/export', { body: { text: 'a', format: 'html', view: 'graph' } }),
      400,
      /"view" must be one of head, model, neuron/,
    );
    await expectError(
      call('POST', '/api/models/load', { body: { model: 'embedded', extra: 1 } }),
      400,
      /unknown field "extra"/,
    );
  });

  test('wrong methods and unknown endpoints', async () => {
    await expectError(call('GET', '/api/attention'), 405, /GET is not allowed on \/api\/attention \(use POST\)/);
    await expectError(call('DELETE', '/api/models'), 405, /not allowed/);
    await expectError(call('GET', '/api/nothing'), 404, /no API endpoint/);
    await expectError(call('POST', '/index.html', { body: {} }), 405, /not allowed/);
  });

  test('a hub id that is neither cached nor downloadable (offline) is a readable 404', async () => {
    await expectError(
      attention({ model: 'nobody/unknown-model', text: 'a' }),
      404,
      /nobody\/unknown-model.*not in the Hugging Face cache.*HF_HUB_OFFLINE/,
    );
    const sse = await call('POST', '/api/models/load', {
      body: { model: 'hub:nobody/unknown-model' },
      headers: { accept: 'text/event-stream' },
    });
    expect(sse.status).toBe(200);
    expect(sse.body.toString()).toMatch(
      new RegExp(
        /event: progress\ndata: \{"phase":"resolve"[\s\S]*/.source +
          /event: error\ndata: \{"status":404,/.source +
          /"message":"model \\"nobody\/unknown-model\\" is not in the Hugging Face cache/.source,
      ),
    );
  });

  test(
    'malformed HTTP and oversized headers get a JSON error; ' + 'the connection closes, the server does not',
    async () => {
      const garbage = await raw('THIS IS NOT HTTP\r\n\r\n');
      expect(garbage).toMatch(/^HTTP\/1\.1 400 Bad Request/);
      expect(garbage).toMatch(/\{"status":400,"message":"malformed HTTP request"\}$/);
      const huge = await raw(
        `GET /api/models HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      );
      expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    },
  );
});

describe('security', () => {
  test('a foreign Host header is refused (DNS rebinding); the loopback names are accepted', async () => {
    await expectError(
      call('GET', '/api/models', { headers: { host: 'evil.example' } }),
      403,
      /Host "evil.example" is not this server.*DNS rebinding/,
    );
    await expectError(call('GET', '/', { headers: { host: `evil.example:${server.port}` } }), 403, /not this server/);
    await expectError(call('GET', '/api/models', { headers: { host: '127.0.0.1:1' } }), 403, /not this server/);
    // No Host at all (HTTP/1.0): refused too.
    expect(await raw('GET /api/models HTTP/1.0\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 403 [\s\S]*"message":"Host \\"\\" is not this server/,
    );
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, `[::1]:${server.port}`]) {
      expect((await call('GET', '/api/models', { headers: { host } })).status).toBe(200);
    }
  });

  test("a foreign Origin is refused; the server's own is accepted", async () => {
    await expectError(
      attention({ text: 'a' }).then(() =>
        call('POST', '/api/attention', { body: { text: 'a' }, headers: { origin: 'http://evil.example' } }),
      ),
      403,
      /Origin "http:\/\/evil.example" is not this server/,
    );
    await expectError(
      call('POST', '/api/attention', { body: { text: 'a' }, headers: { origin: 'null' } }),
      403,
      /Origin "null"/,
    );
    await expectError(
      call('POST', '/api/attention', { body: { text: 'a' }, headers: { origin: `https://127.0.0.1:${server.port}` } }),
      403,
      /not this server/,
    );
    expect(
      (
        await call('POST', '/api/attention', {
          body: { text: 'a' },
          headers: { origin: `http://localhost:${server.port}` },
        })
      ).status,
    ).toBe(200);
  });

  test('model paths: only inside the roots — no "..", no absolute path elsewhere, no symlink escape', async () => {
    await expectError(attention({ model: 'path:../etc', text: 'a' }), 403, /contains "\.\."/);
    await expectError(attention({ model: `path:${root}/my-bert/../../`, text: 'a' }), 403, /contains "\.\."/);
    // Outside the roots and missing get one answer (no existence oracle; test/server-security.test.ts).
    for (const model of ['path:/etc', `path:${outside}`, 'path:escape', `path:${join(root, 'escape')}`])
      await expectError(attention({ model, text: 'a' }), 404, /^no model ".*" in the model roots$/);
    await expectError(attention({ model: 'path:does-not-exist', text: 'a' }), 404, /no model "does-not-exist"/);
    await expectError(attention({ model: 'path:my\0bert', text: 'a' }), 400, /NUL/);
    // Inside the root, but not a real model: its own error (config.json lacks sizes), not a security one.
    const inside = await attention({ model: 'path:my-bert', text: 'a' });
    expect(inside.status).toBe(400);
  });

  test('binding another address needs allowRemote, and warns', async () => {
    await expect(startServer({ port: 0, host: '0.0.0.0' })).rejects.toThrow(
      /refusing to bind 0\.0\.0\.0.*--allow-remote/,
    );
    const warnings: string[] = [];
    const open = await startServer({ port: 0, host: '0.0.0.0', allowRemote: true, warn: (m) => warnings.push(m) });
    await open.close();
    expect(warnings.join()).toMatch(/warning: listening on 0\.0\.0\.0/);
  });

  test('after all of the above, the server still answers', async () => {
    expect((await call('GET', '/api/models')).status).toBe(200);
    expect(decodePayload(await attention({ text: 'Still here.' })).tokens.length).toBeGreaterThan(1);
  });
});

describe('the model cache', () => {
  /** A model whose files never change. */
  const unchanging = (model: AttentionModel): OpenedModel => ({ model, state: '', files: async () => '' });

  /** A fake model whose attention() takes `ms` and records overlapping runs. */
  function fakeModel(bytes: number, log: string[], name: string): AttentionModel {
    let running = 0;
    return {
      weightBytes: bytes,
      attention: async () => {
        running++;
        if (running > 1) log.push(`${name}: overlap`);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        return {} as Attention;
      },
      release: async () => {
        log.push(`${name}: released`);
      },
    } as unknown as AttentionModel;
  }

  test('concurrent requests load a model once and run one at a time', async () => {
    const log: string[] = [];
    let opened = 0;
    const cache = new ModelCache({
      capBytes: 100,
      maxQueue: 50,
      open: async (key) => {
        opened++;
        await new Promise((r) => setTimeout(r, 20));
        return unchanging(fakeModel(10, log, key));
      },
    });
    await Promise.all(Array.from({ length: 8 }, () => cache.run('a', (m) => m.attention('x'))));
    expect(opened).toBe(1);
    expect(log).toEqual([]);
    await cache.close();
    expect(log).toEqual(['a: released']);
  });

  test('past the memory cap the least recently used idle model is released', async () => {
    const log: string[] = [];
    const cache = new ModelCache({
      capBytes: 25,
      maxQueue: 50,
      open: async (key) => unchanging(fakeModel(10, log, key)),
    });
    await cache.run('a', async () => undefined);
    await cache.run('b', async () => undefined);
    await cache.run('a', async () => undefined); // a is now more recent than b
    await cache.run('c', async () => undefined); // 30 > 25: b goes
    expect(log).toEqual(['b: released']);
    expect(
      cache
        .status()
        .map((s) => s.key)
        .sort(),
    ).toEqual(['a', 'c']);
    // A model in use is never released, even when it is the oldest.
    const slow = cache.run('a', () => new Promise((r) => setTimeout(r, 50)));
    await cache.run('d', async () => undefined);
    expect(log).toEqual(['b: released', 'c: released']);
    await slow;
    await cache.close();
  });

  test('a failed load is not cached; a full queue answers 503', async () => {
    let attempts = 0;
    const cache = new ModelCache({
      capBytes: 100,
      maxQueue: 1,
      open: async (key) => {
        if (++attempts === 1) throw new Error('first load fails');
        return unchanging(fakeModel(1, [], key));
      },
    });
    await expect(cache.run('a', async () => 1)).rejects.toThrow('first load fails');
    expect(await cache.run('a', async () => 2)).toBe(2);
    const first = cache.run('a', () => new Promise((r) => setTimeout(() => r(3), 30)));
    await expect(cache.run('a', async () => 4)).rejects.toThrow(/busy/);
    expect(await first).toBe(3);
    await cache.close();
  });
});

describe.skipIf(!HAVE_CLI)('attnviz serve (npm start)', () => {
  const cli = MAIN;

  /** Runs `attnviz serve --port 0 …args` in `cwd` until `use` is done, then stops it with SIGTERM (exit 0). */
  async function serving(args: string[], cwd: string, use: (url: string) => Promise<void>): Promise<void> {
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /^attnviz: serving the app at (http:\/\/127\.0\.0\.1:\d+\/)/m.exec(out);
          if (m) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
      });
      await use(url);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  }

  test('prints the URL once the embedded model is loaded, serves the app and the API, stops on SIGTERM', async () => {
    await serving(['--models-dir', root], ROOT, async (url) => {
      expect((await fetch(url)).headers.get('content-type')).toMatch(/^text\/html/);
      const models = (await (await fetch(`${url}api/models`)).json()) as {
        models: { id: string }[];
        loaded: { id: string }[];
      };
      expect(models.models.map((m) => m.id)).toContain(`path:${join(root, 'my-bert')}`);
      expect(models.loaded.map((m) => m.id)).toEqual(['embedded']);
    });
  });

  test(
    'a relative --models-dir (with "..") is taken from the ' + 'working directory: its models list and open',
    async () => {
      await serving(['--models-dir', '..'], join(root, 'group'), async (url) => {
        const models = (await (await fetch(`${url}api/models`)).json()) as { models: { id: string }[] };
        const ids = models.models.map((m) => m.id);
        expect(ids).toContain(`path:${join(root, 'my-bert')}`);
        expect(ids).toContain(`path:${join(root, 'group', 'gpt')}`);
        // Past the security checks to the model itself: my-bert has a config.json and no weights (400, not 403/404).
        const r = await fetch(`${url}api/attention`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: `path:${join(root, 'my-bert')}`, text: 'a' }),
        });
        expect(r.status).toBe(400);
        expect(((await r.json()) as { message: string }).message).toMatch(/my-bert: no weights/);
      });
    },
  );

  test('refuses another address without --allow-remote, and a missing model root, with exit code 2', async () => {
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, [cli, 'serve', ...args]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
    const remote = await run(['--port', '0', '--host', '0.0.0.0']);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/^attnviz: refusing to bind 0\.0\.0\.0.*--allow-remote/);
    const missing = await run(['--port', '0', '--models-dir', join(root, 'no-such-folder')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/model root .*no-such-folder does not exist/);
  });
});
