/**
 * Issue 11, server items: model files that are symlinks out of the roots (item 2), the existence oracle
 * (item 2) and clients that hang up mid-body (item 4). Each test is named after the failure it guards.
 */
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { startServer, type RunningServer } from '../src/server/server.js';
import { goldenModel, HAVE_SHARED } from './shared.js';

let server: RunningServer;
let root: string;
let outside: string;
const SECRET = 'TOP-SECRET-CONTENT-0123456789';

async function post(path: string, body: unknown): Promise<{ status: number; message: string }> {
  const r = await fetch(`${server.url}${path.slice(1)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (r.status === 200) return { status: 200, message: '' };
  return { status: r.status, message: ((await r.json()) as { message: string }).message };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'attnviz-sec-root-'));
  outside = await mkdtemp(join(tmpdir(), 'attnviz-sec-outside-'));
  await writeFile(join(outside, 'secret.json'), `${SECRET}\n`);
  // A folder whose config.json is a link to an outside file: its content must never reach an answer.
  await mkdir(join(root, 'config-link'));
  await symlink(join(outside, 'secret.json'), join(root, 'config-link', 'config.json'));
  if (HAVE_SHARED) {
    // The same real model twice: copied (loads), and as links to a copy outside the roots (refused).
    await cp(goldenModel('gpt2-tiny'), join(root, 'copied'), { recursive: true });
    await cp(goldenModel('gpt2-tiny'), join(outside, 'gpt2'), { recursive: true });
    await mkdir(join(root, 'linked'));
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'])
      await symlink(join(outside, 'gpt2', f), join(root, 'linked', f));
    // Only the weights outside.
    await cp(goldenModel('gpt2-tiny'), join(root, 'weights-link'), { recursive: true });
    await rm(join(root, 'weights-link', 'model.safetensors'));
    await symlink(join(outside, 'gpt2', 'model.safetensors'), join(root, 'weights-link', 'model.safetensors'));
  }
  server = await startServer({ port: 0, modelRoots: [root], env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: outside } });
});

afterAll(async () => {
  await server?.close();
  for (const d of [root, outside]) if (d) await rm(d, { recursive: true, force: true });
});

describe('issue 11 item 2: model files are checked against the roots', () => {
  test('symlinked config.json to an outside file: 403, and the answer does not echo its content', async () => {
    const r = await post('/api/attention', { model: 'path:config-link', text: 'a' });
    expect(r.status).toBe(403);
    expect(r.message).toMatch(/config\.json links outside the model roots/);
    expect(r.message).not.toContain('TOP-SECRET');
  });

  test.skipIf(!HAVE_SHARED)(
    'a folder of links to an outside model does not load; the same files copied do',
    async () => {
      const ok = await post('/api/attention', { model: 'path:copied', text: 'The cat sat.' });
      expect(ok.status).toBe(200);
      for (const model of ['path:linked', 'path:weights-link', `path:${join(root, 'linked')}`]) {
        const r = await post('/api/attention', { model, text: 'The cat sat.' });
        expect(r.status, model).toBe(403);
        expect(r.message).toMatch(/links outside the model roots/);
      }
    },
  );

  test('existence oracle: an existing file outside the roots and a missing one get the same answer', async () => {
    const answers = await Promise.all(
      ['/etc/passwd', '/nonexistent', outside, join(outside, 'secret.json'), join(outside, 'nope')].map((p) =>
        post('/api/attention', { model: `path:${p}`, text: 'a' }),
      ),
    );
    for (const a of answers) expect(a.status).toBe(404);
    // Same message up to the path the request named.
    const shapes = new Set(answers.map((a) => a.message.replace(/"[^"]*"/, '"…"')));
    expect([...shapes]).toEqual(['no model "…" in the model roots']);
  });
});

describe('issue 11 item 4: a client hanging up mid-body', () => {
  test('logs one line, no stack, and the server keeps answering', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const warns = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(server.port, '127.0.0.1', () => {
          socket.write(
            `POST /api/attention HTTP/1.1\r\nhost: 127.0.0.1:${server.port}\r\ncontent-type: application/json\r\n` +
              'content-length: 1000\r\n\r\n{"text": "half a bo',
            () => setTimeout(() => socket.destroy(), 50),
          );
        });
        socket.on('close', () => resolve());
        socket.on('error', reject);
      });
      await vi.waitFor(() => expect(warns).toHaveBeenCalledTimes(1), { timeout: 2000 });
      const line = String(warns.mock.calls[0].join(' '));
      expect(line).toMatch(/^attnviz serve: POST \/api\/attention: the client hung up after 19 bytes of the body$/);
      expect(errors).not.toHaveBeenCalled();
      const after = await fetch(`${server.url}api/status`);
      expect(after.status).toBe(200);
    } finally {
      errors.mockRestore();
      warns.mockRestore();
    }
  });
});
