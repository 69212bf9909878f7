/**
 * The npm package as a user gets it: `npm pack`, the tarball installed into an empty folder from the npm cache
 * alone (`--offline`: what `npm ci` of this repository put there), then the CLI, the Node API and the views
 * bundled by Vite into a page that renders in Chromium. Also: what the tarball holds (no tests, fixtures or
 * benchmarks; types included).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HAVE_CHROMIUM, launch } from './browser.js';
import { HAVE_SHARED, goldenModel } from './shared.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const HAVE_DIST = existsSync(join(ROOT, 'dist/src/cli/main.js'));
if (!HAVE_DIST) {
  if (process.env.CI === 'true') throw new Error('package tests need dist/: run `npm run build`');
  console.warn('skipping package tests: dist/ is missing (npm run build)');
}

let dir: string;
let project: string;
let files: string[];
let tarballBytes: number;

beforeAll(async () => {
  if (!HAVE_DIST) return;
  dir = await mkdtemp(join(tmpdir(), 'attnviz-package-'));
  // dist/ is already built (pretest): skip `prepare` so packing does not rebuild it.
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
    cwd: ROOT,
    maxBuffer: 1 << 26,
  });
  const [packed] = JSON.parse(stdout) as { filename: string; size: number; files: { path: string }[] }[];
  files = packed.files.map((f) => f.path);
  tarballBytes = packed.size;
  project = join(dir, 'user');
  await mkdir(project);
  await writeOfflineProject(project, `file:../${packed.filename}`);
  // onnxruntime-node's postinstall would download CUDA libraries; a user without network skips it this way
  // (README).
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], {
    cwd: project,
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    maxBuffer: 1 << 26,
  });
}, 300_000);
afterAll(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));

/**
 * A project depending on the tarball, with a lockfile made of this repository's own entries for the
 * package's runtime dependencies, so `npm ci --offline` finds every tarball in the npm cache (it holds
 * tarballs from `npm ci`, not the registry documents a plain `npm install` would need to resolve versions).
 */
async function writeOfflineProject(project: string, tarball: string): Promise<void> {
  type Entry = { version?: string; dev?: boolean; dependencies?: Record<string, string> };
  const ours = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Entry & { name: string };
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, Entry>;
  };
  const runtime = Object.entries(lock.packages).filter(([path, e]) => path !== '' && !e.dev);
  const manifest = { name: 'user', private: true, type: 'module', dependencies: { attnviz: tarball } };
  await writeFile(join(project, 'package.json'), JSON.stringify(manifest));
  const packages = {
    '': { name: 'user', dependencies: manifest.dependencies },
    'node_modules/attnviz': {
      version: ours.version,
      resolved: tarball,
      dependencies: ours.dependencies,
      bin: { attnviz: 'dist/src/cli/main.js' },
    },
    ...Object.fromEntries(runtime),
  };
  const userLock = { name: 'user', lockfileVersion: 3, requires: true, packages };
  await writeFile(join(project, 'package-lock.json'), JSON.stringify(userLock, null, 2));
}

describe.skipIf(!HAVE_DIST)('the npm package', () => {
  test('holds the build, types, docs and the Python module; no tests, fixtures or benchmarks', () => {
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files).toContain('dist/src/views/index.d.ts');
    expect(files).toContain('dist/views/attnviz-views.js');
    expect(files).toContain('dist/app/index.html');
    expect(files).toContain('python/attnviz_file.py');
    expect(files).toContain('docs/attention-file.md');
    expect(
      files.filter((f) => /^(test|bench|dist\/bench|dist\/test)\/|\.safetensors$|\.gguf$|\.onnx$/.test(f)),
    ).toEqual([]);
    // README states the size (about 0.35 MB packed); a doubling means something unintended got in.
    expect(tarballBytes).toBeLessThan(0.7e6);
  });

  test('`npx attnviz --version` and `extract` work from the installed package', async () => {
    const { stdout } = await run('npx', ['--offline', 'attnviz', '--version'], { cwd: project });
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(stdout.trim()).toBe(version);
    if (!HAVE_SHARED) return;
    const out = join(dir, 'cat.safetensors');
    await run(
      'npx',
      ['--offline', 'attnviz', 'extract', '--model', goldenModel('bert-tiny'), '--text', 'The cat sat.', '--out', out],
      {
        cwd: project,
      },
    );
    const check = `import { readAttentionFile } from 'attnviz'; const a = await readAttentionFile(${JSON.stringify(out)});
      console.log(JSON.stringify({ tokens: a.tokens, dims: a.attention.dims }));`;
    const read = await run(process.execPath, ['--input-type=module', '-e', check], { cwd: project });
    expect(JSON.parse(read.stdout)).toEqual({
      tokens: ['[CLS]', 'the', 'cat', 'sat', '.', '[SEP]'],
      dims: [3, 4, 6, 6],
    });
  }, 120_000);

  test('`import { loadModel } from "attnviz"` runs a model in Node', async () => {
    if (!HAVE_SHARED) return;
    const script = `import { loadModel } from 'attnviz';
      const m = await loadModel(${JSON.stringify(goldenModel('gpt2-tiny'))});
      const a = await m.attention('Hello world'); await m.release();
      let sum = 0; for (let j = 0; j < a.tokens.length; j++) sum += a.attention.data[j];
      console.log(JSON.stringify({ n: a.tokens.length, dims: a.attention.dims, row0: sum }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project });
    const r = JSON.parse(stdout) as { n: number; dims: number[]; row0: number };
    expect(r.dims).toEqual([2, 4, r.n, r.n]);
    expect(r.row0).toBeCloseTo(1, 5);
  }, 60_000);

  test.skipIf(!HAVE_CHROMIUM)(
    "`import { headView } from 'attnviz/views'` bundles with Vite and renders",
    async () => {
      const page = join(project, 'page');
      await mkdir(page);
      await writeFile(
        join(page, 'index.html'),
        '<!doctype html><html><body><div id="here"></div><script type="module" src="./main.js"></script></body></html>',
      );
      await writeFile(
        join(page, 'main.js'),
        `import { headView } from 'attnviz/views';
      const T = 3, data = new Float32Array(2 * T * T);
      for (let h = 0; h < 2; h++) for (let i = 0; i < T; i++) data[(h * T + i) * T + (i + h) % T] = 1;
      const attention = { tokens: ['a', 'b', 'c'], text: 'a b c', pair: null, sentenceBStart: null,
        model: { source: 'page', modelType: 'test' }, causal: false, attention: { dims: [1, 2, T, T], data } };
      headView(document.querySelector('#here'), attention, {});`,
      );
      const { build } = await import('vite');
      await build({ root: page, logLevel: 'silent', build: { outDir: join(page, 'dist'), emptyOutDir: true } });
      const browser = await launch();
      try {
        const tab = await browser.newPage();
        const errors: string[] = [];
        tab.on('pageerror', (e) => errors.push(e.message));
        // Served by Vite's preview server: module scripts do not run from file://.
        const { preview } = await import('vite');
        const server = await preview({
          root: page,
          build: { outDir: join(page, 'dist') },
          preview: { port: 0 },
          logLevel: 'silent',
        });
        try {
          await tab.goto(server.resolvedUrls!.local[0]);
          await tab.waitForSelector('.attnviz-head-view');
          expect(errors).toEqual([]);
          expect(await tab.locator('.attnviz-head-view canvas').count()).toBeGreaterThan(0);
        } finally {
          await server.close();
        }
      } finally {
        await browser.close();
      }
    },
    120_000,
  );
});
