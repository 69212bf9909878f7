/**
 * Issue 11: a disk that fills while an attention file or an export is written → exit 2 with one line, and no
 * file left behind (neither the output nor its temporary). Simulated two ways:
 * - a file-size limit (`ulimit -f` in the shell that starts the CLI): a write past it fails with EFBIG, as a
 *   full disk fails with ENOSPC, at the same place in the same code; no privileges needed, so it always runs;
 * - a real full file system: a 1 MB tmpfs, when this process may mount one (root); otherwise skipped, saying so.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type CliResult, cli, expectCliError, HAVE_CLI, MAIN, runProgram } from './cli-run.js';
import { HAVE_SHARED, SHARED } from './shared.js';

/** 2 layers × 8 heads: 500 tokens make a 16 MB attention file, from 2.6 MB of weights. */
const MODEL = join(SHARED, 'models', 'tinystories-656k');
const LONG = 'Once upon a time there was a little girl named Lily. '.repeat(70);

let dir: string;

/** `attnviz …args` under `ulimit -f kb` (the shell's limit in KiB). */
function limited(kb: number, args: string[]): Promise<CliResult> {
  return runProgram('bash', ['-c', `ulimit -f ${kb}; exec "$@"`, 'bash', process.execPath, MAIN, ...args]);
}

const ready = HAVE_CLI && HAVE_SHARED;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attnviz-disk-full-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!ready)('issue 11: a full disk while writing', () => {
  test('extract past the file-size limit: exit 2, one line, no output and no temporary file', async () => {
    const out = join(dir, 'limited', 'long.safetensors');
    await mkdir(join(dir, 'limited'));
    const r = await limited(8192, ['extract', '--model', MODEL, '--text', LONG, '--truncate', '--out', out]);
    expectCliError(r, /cannot write .*long\.safetensors \(the file would be larger than this process may write/);
    expect(await readdir(join(dir, 'limited'))).toEqual([]);
  });

  test('an HTML export past the limit: exit 2, one line, nothing left', async () => {
    const from = join(dir, 'small.safetensors');
    const made = await cli(['extract', '--model', MODEL, '--text', 'Once upon a time.', '--out', from]);
    expect(made.code, made.stderr).toBe(0);
    await mkdir(join(dir, 'html'));
    const out = join(dir, 'html', 'view.html');
    const r = await limited(64, ['export', '--view', 'head', '--from', from, '-o', out]);
    expectCliError(r, /cannot write .*view\.html \(the file would be larger/);
    expect(await readdir(join(dir, 'html'))).toEqual([]);
  });

  // A real full disk needs a file system of our own: a tmpfs, which only root (or CAP_SYS_ADMIN) may mount.
  const disk = join(tmpdir(), `attnviz-full-disk-${process.pid}`);
  let mounted = false;
  test('extract onto a full 1 MB tmpfs: exit 2 "the disk is full", nothing left', async (ctx) => {
    await mkdir(disk, { recursive: true });
    mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', disk]).status === 0;
    if (!mounted) {
      console.warn('skipping the tmpfs case: this process may not mount a tmpfs (not root); ulimit -f covers it');
      ctx.skip();
    }
    try {
      const r = await cli([
        'extract',
        '--model',
        MODEL,
        '--text',
        LONG,
        '--truncate',
        '--out',
        join(disk, 'long.safetensors'),
      ]);
      expectCliError(r, /cannot write .*long\.safetensors \(the disk is full\)/);
      expect(await readdir(disk)).toEqual([]);
    } finally {
      spawnSync('umount', [disk]);
    }
  });

  afterAll(async () => {
    if (mounted) spawnSync('umount', [disk]);
    await rm(disk, { recursive: true, force: true });
  });
});
