/** `attnviz extract` end to end: the built CLI reproduces every BERT and GPT-2 golden case. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { readAttentionFile } from '../src/core/files.js';
import { expectMatchesGolden, goldenCases, goldenModel, HAVE_SHARED, readGoldenCase } from './shared.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-cli-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

test('npx attnviz runs the package bin', async () => {
  const { stdout } = await run('npx', ['--no-install', 'attnviz', '--help'], { cwd: ROOT });
  expect(stdout).toMatch(/^usage: attnviz <command>/);
  expect(stdout).toContain('extract --model');
});

describe.skipIf(!HAVE_SHARED)('attnviz extract reproduces the golden cases', () => {
  test.each(goldenCases(['bert-tiny', 'gpt2-tiny']).map((f) => [f.split('/').pop()!, f]))('%s', async (name, file) => {
    const golden = await readGoldenCase(file);
    const out = join(tmp, name);
    const args = [
      'dist/src/cli/main.js',
      'extract',
      '--model',
      goldenModel(golden.model),
      '--text',
      golden.text,
      '--out',
      out,
    ];
    if (golden.textPair !== null) args.push('--pair', golden.textPair);
    const { stderr } = await run(process.execPath, args, { cwd: ROOT });
    expect(stderr).toMatch(/^wrote .* layers × \d+ heads × \d+ tokens\n$/);
    const a = await readAttentionFile(out);
    expectMatchesGolden(a, golden);
    expect(a.text).toBe(golden.text);
    expect(a.pair).toBe(golden.textPair);
    expect(a.model.modelType).toBe(golden.model.split('-')[0]);
    expect(a.causal).toBe(golden.model.startsWith('gpt2'));
  });
});
