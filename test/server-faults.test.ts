/**
 * Issue 11, item 1: a loaded model's files changed under the server. The server runs as a child process
 * (`attnviz serve`), so that a crash shows as its exit (SIGBUS was exit 135) instead of taking the test runner
 * with it. Each case loads a real tiny BERT copied into a model root, changes its files, and asks again:
 * truncated (the server lives, the request gets one line, the restored file works again), overwritten in place
 * with the same size and replaced by a rename (the answer is the new weights'), a file swapped for a symlink
 * out of the roots (refused).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, cp, mkdtemp, open, readFile, rename, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeAttentionFile } from '../src/core/attention-file.js';
import { readHeader } from '../src/core/files.js';
import { loadModel } from '../src/models/load-model.js';
import { HAVE_CLI, MAIN } from './cli-run.js';
import { goldenModel, HAVE_SHARED } from './shared.js';

const TEXT = 'The cat sat on the mat.';
const QUERY = 'bert.encoder.layer.0.attention.self.query.weight';

let root: string;
let outside: string;
let model: string;
let child: ChildProcess;
let url: string;
let stderr = '';

/** POST /api/export as an attention file: the attention, or the error's status and message. */
async function attention(text = TEXT): Promise<{ status: number; message: string; data?: Float32Array }> {
  const r = await fetch(`${url}api/export`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'path:bert', text, format: 'attention' }),
  });
  if (r.status !== 200) return { status: r.status, message: ((await r.json()) as { message: string }).message };
  const a = decodeAttentionFile(new Uint8Array(await r.arrayBuffer()), 'answer');
  return { status: 200, message: '', data: a.attention.data };
}

/** The attention of TEXT computed in this process from the model folder as it is now. */
async function expected(): Promise<Float32Array> {
  const m = await loadModel(model);
  try {
    return (await m.attention(TEXT)).attention.data;
  } finally {
    await m.release();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** `bytes` of the weights with layer 0's query weight scaled by 4 (a different model of the same size). */
async function scaledQuery(): Promise<Buffer> {
  const weights = join(model, 'model.safetensors');
  const entry = (await readHeader(weights)).tensors.get(QUERY)!;
  const bytes = await readFile(weights);
  const q = new Float32Array(bytes.buffer, bytes.byteOffset + entry.offset, entry.byteLength / 4);
  for (let i = 0; i < q.length; i++) q[i] *= 4;
  return bytes;
}

async function restore(): Promise<void> {
  await rm(join(model, 'model.safetensors'), { force: true });
  await copyFile(join(goldenModel('bert-tiny'), 'model.safetensors'), join(model, 'model.safetensors'));
}

const ready = HAVE_SHARED && HAVE_CLI;

beforeAll(async () => {
  if (!ready) return;
  root = await mkdtemp(join(tmpdir(), 'attnviz-faults-root-'));
  outside = await mkdtemp(join(tmpdir(), 'attnviz-faults-outside-'));
  model = join(root, 'bert');
  await cp(goldenModel('bert-tiny'), model, { recursive: true });
  await restore();
  child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', '--models-dir', root], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /attnviz: serving the app at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}: ${stderr}`)));
  });
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  for (const d of [root, outside]) if (d) await rm(d, { recursive: true, force: true });
});

describe.skipIf(!ready)('issue 11 item 1: model files changed under a loaded model', () => {
  test('truncated while cached: the server lives, the request gets one line, the restored file works', async () => {
    const before = await attention();
    expect(before.status).toBe(200);
    await truncate(join(model, 'model.safetensors'), 4096);
    const broken = await attention('Another text, so nothing comes from the result cache.');
    expect(broken.status).toBe(400);
    expect(broken.message).toMatch(/model\.safetensors/);
    expect(broken.message).not.toContain('\n');
    expect(child.exitCode, stderr).toBeNull();
    await restore();
    const after = await attention('Another text, so nothing comes from the result cache.');
    expect(after.status).toBe(200);
    expect((await attention()).data).toEqual(before.data);
    expect(child.exitCode).toBeNull();
  });

  test('overwritten in place with the same size: the answer is the new weights’', async () => {
    const before = (await attention()).data!;
    const bytes = await scaledQuery();
    // Same file (inode), same size: only the bytes and the modification time change.
    const file = await open(join(model, 'model.safetensors'), 'r+');
    await file.write(bytes, 0, bytes.length, 0);
    await file.close();
    const now = await expected();
    expect(maxDiff(now, before)).toBeGreaterThan(1e-3);
    const after = await attention();
    expect(after.status).toBe(200);
    expect(maxDiff(after.data!, now)).toBeLessThan(1e-6);
    await restore();
    expect(maxDiff((await attention()).data!, before)).toBeLessThan(1e-6);
  });

  test('replaced by a rename: the answer is the new weights’', async () => {
    const before = (await attention()).data!;
    await writeFile(join(model, 'model.safetensors.new'), await scaledQuery());
    await rename(join(model, 'model.safetensors.new'), join(model, 'model.safetensors'));
    const now = await expected();
    expect(maxDiff(now, before)).toBeGreaterThan(1e-3);
    expect(maxDiff((await attention()).data!, now)).toBeLessThan(1e-6);
    await restore();
  });

  test('a file swapped for a symlink out of the roots after loading is refused; put back, it loads', async () => {
    expect((await attention()).status).toBe(200);
    const config = join(model, 'config.json');
    await copyFile(config, join(outside, 'config.json'));
    await rm(config);
    await symlink(join(outside, 'config.json'), config);
    const r = await attention();
    expect(r.status).toBe(403);
    expect(r.message).toMatch(/config\.json links outside the model roots/);
    await rm(config);
    await copyFile(join(outside, 'config.json'), config);
    expect((await attention()).status).toBe(200);
  });
});

describe.skipIf(!HAVE_SHARED)('issue 11 item 1: a loaded model runs on private copies of its weights', () => {
  test('truncated or overwritten after loading, the loaded model still gives its own attention', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attnviz-faults-lib-'));
    await cp(goldenModel('bert-tiny'), dir, { recursive: true });
    const weights = join(dir, 'model.safetensors');
    const m = await loadModel(dir, { weights: 'copy' });
    try {
      const before = (await m.attention(TEXT)).attention.data;
      // Mapped, this was SIGBUS (exit 135) at the next run.
      await truncate(weights, 4096);
      expect((await m.attention(TEXT)).attention.data).toEqual(before);
      await copyFile(join(goldenModel('bert-tiny'), 'model.safetensors'), weights);
      // Layer 0's query weight overwritten in place (mapped, the next run read it).
      const query = (await readHeader(weights)).tensors.get(QUERY)!;
      const file = await open(weights, 'r+');
      await file.write(Buffer.alloc(query.byteLength, 0x3f), 0, query.byteLength, query.offset);
      await file.close();
      expect((await m.attention(TEXT)).attention.data).toEqual(before);
    } finally {
      await m.release();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
