/**
 * A hub id typed into the app, end to end through the server: downloaded into the Hugging Face cache with
 * progress events, then run. The Hub is a local HTTP server on loopback (HF_ENDPOINT) with just enough of its
 * API for @huggingface/hub, serving the real bert-tiny checkpoint from ../shared.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeAttention } from '../src/core/encode.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { goldenModel, HAVE_SHARED } from './shared.js';

const REPO = 'org/tiny-bert';
const COMMIT = 'c'.repeat(40);
const sha256 = (d: Uint8Array) => createHash('sha256').update(d).digest('hex');
const gitBlobId = (d: Uint8Array) => createHash('sha1').update(`blob ${d.length}\0`).update(d).digest('hex');

let hub: Server;
let server: RunningServer;
let cache: string;
let downloads = 0;

/** modelInfo (revision → sha), paths-info, and resolve (a Range probe, then the whole file, in 64 KB chunks). */
function fakeHub(files: Map<string, Buffer>): Server {
  return createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const json = (body: unknown, status = 200) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const api = `/api/models/${REPO}/`;
    if (req.method === 'GET' && url.pathname.startsWith(`${api}revision/`)) {
      return json({
        _id: '1',
        id: REPO,
        sha: COMMIT,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: '2024-01-01T00:00:00.000Z',
      });
    }
    if (req.method === 'POST' && url.pathname === `${api}paths-info/${COMMIT}`) {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const paths = new URLSearchParams(body).getAll('paths').concat(
          (() => {
            try {
              return (JSON.parse(body) as { paths: string[] }).paths;
            } catch {
              return [];
            }
          })(),
        );
        json(
          paths.flatMap((path) => {
            const data = files.get(path);
            if (!data) return [];
            const lfs = path.endsWith('.safetensors');
            return [
              {
                type: 'file',
                path,
                size: data.length,
                oid: gitBlobId(data),
                ...(lfs ? { lfs: { oid: sha256(data), size: data.length, pointerSize: 134 } } : {}),
              },
            ];
          }),
        );
      });
      return;
    }
    const resolve = `/${REPO}/resolve/${COMMIT}/`;
    if (req.method === 'GET' && url.pathname.startsWith(resolve)) {
      const name = decodeURIComponent(url.pathname.slice(resolve.length));
      const data = files.get(name);
      if (!data) {
        res.writeHead(404, { 'x-error-code': 'EntryNotFound' });
        return res.end('Entry not found');
      }
      const common = {
        etag: `"${gitBlobId(data)}"`,
        'x-repo-commit': COMMIT,
        ...(name.endsWith('.safetensors') ? { 'x-linked-etag': `"${sha256(data)}"` } : {}),
      };
      if (req.headers.range === 'bytes=0-0') {
        res.writeHead(206, { ...common, 'content-range': `bytes 0-0/${data.length}`, 'content-length': '1' });
        return res.end(data.subarray(0, 1));
      }
      downloads++;
      res.writeHead(200, { ...common, 'content-length': String(data.length) });
      // In pieces, with pauses, so progress has something to report.
      let at = 0;
      const next = () => {
        if (at >= data.length) return res.end();
        res.write(data.subarray(at, at + 65536));
        at += 65536;
        setTimeout(next, 2);
      };
      return next();
    }
    json({ error: 'Repository not found' }, 404);
  });
}

beforeAll(async () => {
  if (!HAVE_SHARED) return;
  const dir = goldenModel('bert-tiny');
  const files = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
  hub = fakeHub(files);
  await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
  cache = await mkdtemp(join(tmpdir(), 'attnviz-hub-dl-'));
  server = await startServer({
    port: 0,
    env: { HF_HUB_CACHE: cache, HF_ENDPOINT: `http://127.0.0.1:${(hub.address() as AddressInfo).port}` },
  });
});

afterAll(async () => {
  await server?.close();
  hub?.close();
  if (cache) await rm(cache, { recursive: true, force: true });
});

describe.runIf(HAVE_SHARED)('a hub id', () => {
  test('is downloaded with progress events, then runs; afterwards it is listed from the cache', async () => {
    const res = await fetch(`${server.url}api/models/load`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ model: REPO }),
    });
    const events = (await res.text())
      .trim()
      .split('\n\n')
      .map((block) => ({
        event: /^event: (.*)$/m.exec(block)![1],
        data: JSON.parse(/^data: (.*)$/m.exec(block)![1]),
      }));
    expect(events[0]).toEqual({ event: 'progress', data: { phase: 'resolve', message: `looking up ${REPO}` } });
    const weights = events.filter((e) => e.event === 'progress' && e.data.file === 'model.safetensors');
    expect(weights.length).toBeGreaterThan(1);
    expect(weights.at(-1)!.data).toMatchObject({ phase: 'download', loaded: 5264544, total: 5264544 });
    expect(weights.every((e, i) => i === 0 || e.data.loaded >= weights[i - 1].data.loaded)).toBe(true);
    expect(events.some((e) => e.event === 'progress' && e.data.phase === 'load')).toBe(true);
    expect(events.at(-1)).toMatchObject({
      event: 'ready',
      data: { model: { id: `hub:${REPO}@main`, modelType: 'bert', layers: 3, heads: 4 } },
    });

    const a = await fetch(`${server.url}api/attention`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: REPO, text: 'Hello there.' }),
    });
    expect(a.status).toBe(200);
    expect(decodeAttention(new Uint8Array(await a.arrayBuffer())).tokens[0]).toBe('[CLS]');
    const list = (await (await fetch(`${server.url}api/models`)).json()) as { models: { id: string }[] };
    expect(list.models.map((m) => m.id)).toContain(`hub:${REPO}`);
    const before = downloads;
    // Named the other way (hub: prefix), it is the same, already loaded model: nothing downloaded again.
    const again = await fetch(`${server.url}api/models/load`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: `hub:${REPO}` }),
    });
    expect((await again.json()).model.id).toBe(`hub:${REPO}@main`);
    expect(downloads).toBe(before);
  });
});
