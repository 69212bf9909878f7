/**
 * README's examples as a new user runs them from a clone with ../shared beside it: every `npx attnviz` command
 * (with the shell lines that prepare their inputs) and the Library block, in README order, each exiting 0 and
 * writing only into the scratch folder (/tmp/attnviz, here a fresh temporary folder in its place), none into the
 * repository. Left out: commands that download from the Hugging Face Hub (no network in tests), `serve` / `npm`
 * (long-running; test/server.test.ts runs `serve` with a relative --models-dir) and the browser and notebook
 * blocks (test/package.test.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { HAVE_CLI, MAIN, ROOT, runProgram } from './cli-run.js';
import { HAVE_SHARED } from './shared.js';

const SCRATCH = '/tmp/attnviz';
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The fenced blocks of README in one language, in order. */
const blocks = (lang: string) => [...README.matchAll(new RegExp(`^\`\`\`${lang}\\n([\\s\\S]*?)^\`\`\`$`, 'gm'))];

/** The shell blocks' commands: continuation lines joined, comment lines dropped. */
const commands = blocks('sh').flatMap((m) =>
  m[1]
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#')),
);
const needsHub = (c: string) => /--model (?![./])\S+/.test(c);
const examples = commands.filter(
  (c) => /^(npx attnviz (?!serve)|mkdir |printf )/.test(c) && !needsHub(c) && !/--help|--version/.test(c),
);
/** Where a command writes: -o, --out, --report and shell redirections. */
const outputs = (c: string) => [...c.matchAll(/(?:-o|--out|--report|>) (\S+)/g)].map((m) => m[1]);

/** Files git does not track nor ignore: what an example would leave in the repository. */
const untracked = () =>
  existsSync(join(ROOT, '.git'))
    ? promisify(execFile)('git', ['ls-files', '--others', '--exclude-standard'], { cwd: ROOT }).then((r) => r.stdout)
    : Promise.resolve('');

describe.skipIf(!HAVE_CLI || !HAVE_SHARED)('README examples, as written', () => {
  const scratch = mkdtemp(join(tmpdir(), 'attnviz-readme-'));
  const before = untracked();
  afterAll(async () => rm(await scratch, { recursive: true, force: true }));

  const run = async (file: string, args: string[], stdin?: string) =>
    runProgram(file, args, { input: stdin?.replaceAll(SCRATCH, await scratch) });

  test('the examples write only into the scratch folder', () => {
    expect(examples.length).toBeGreaterThanOrEqual(14);
    const written = examples.flatMap(outputs);
    expect(written.length).toBeGreaterThanOrEqual(13);
    expect(written.filter((f) => !f.startsWith(`${SCRATCH}/`))).toEqual([]);
    // The hub examples are the two README says download; any other would be left out silently.
    expect(commands.filter(needsHub).map((c) => /--model (\S+)/.exec(c)![1])).toEqual([
      'openai-community/gpt2',
      'google-t5/t5-small',
    ]);
  });

  test.each(examples.map((c) => [c.length > 100 ? `${c.slice(0, 97)}...` : c, c]))('%s', async (_, command) => {
    // `npx attnviz` is the package bin (test/cli.test.ts runs it through npx); node runs it without npx's start-up.
    const r = await run('bash', ['-euo', 'pipefail', '-s'], command.replace(/^npx attnviz /, `"${MAIN}" `));
    expect(r.code, r.stderr).toBe(0);
    const dir = await scratch;
    for (const file of outputs(command)) expect(statSync(file.replace(SCRATCH, dir)).size, file).toBeGreaterThan(0);
  });

  test('the Library block runs as an ES module importing "attnviz"', async () => {
    const [library] = blocks('ts').filter((m) => m[1].includes("from 'attnviz'") && m[1].includes('Model.load'));
    expect(library).toBeDefined();
    const r = await run(process.execPath, ['--input-type=module'], library[1]);
    expect(r.code, r.stderr).toBe(0);
    // The stream of layers 0 and 1, head 3 only, of the 211-token text.
    expect(r.stdout).toBe('0 [ 1, 211, 211 ]\n1 [ 1, 211, 211 ]\n');
    const dir = await scratch;
    for (const name of ['gpt2-cat.safetensors', 'long.safetensors'])
      expect(statSync(join(dir, name)).size).toBeGreaterThan(0);
  });

  test('nothing was written into the repository', async () => {
    expect(await untracked()).toBe(await before);
  });
});
