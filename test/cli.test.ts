/**
 * The built CLI end to end: `attnviz extract` reproduces every BERT and GPT-2 golden case and imports only the
 * engine; help, version, conflicting options, unsupported capabilities and file errors each give one line (exit 2).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, test } from 'vitest';
import { readAttentionFile, writeAttentionFile } from '../src/core/files.js';
import { cli, expectCliError, HAVE_CLI, ROOT } from './cli-run.js';
import { expectMatchesGolden, goldenCases, goldenModel, HAVE_SHARED, readGoldenCase } from './shared.js';

const run = promisify(execFile);
/** Whether onnxruntime's C API runs the sessions here (runtime/ort-direct.ts: Linux, x64 or arm64). */
const C_API = process.platform === 'linux' && ['x64', 'arm64'].includes(process.arch);
const tmp = await mkdtemp(join(tmpdir(), 'attnviz-cli-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

test.skipIf(!HAVE_CLI)('npx attnviz runs the package bin', async () => {
  const { stdout } = await run('npx', ['--no-install', 'attnviz', '--help'], { cwd: ROOT });
  expect(stdout).toMatch(/^usage: attnviz <command>/);
  expect(stdout).toContain('extract --model');
});

describe.skipIf(!HAVE_SHARED || !HAVE_CLI)('attnviz extract reproduces the golden cases', () => {
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

describe.skipIf(!HAVE_SHARED || !HAVE_CLI)('start-up', () => {
  test('extract loads only the bundle and, in it, the engine (no views, exports, server, protobuf)', async () => {
    // Every module the run imports, printed by a loader hook (module.register) as the loader resolves it.
    const dir = await mkdtemp(join(tmp, 'imports-'));
    await writeFile(
      join(dir, 'hooks.mjs'),
      'export async function resolve(s, c, next) {\n' +
        "  const r = await next(s, c); console.log('import ' + r.url); return r;\n}\n",
    );
    await writeFile(
      join(dir, 'register.mjs'),
      "import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);",
    );
    const out = join(dir, 'cat.safetensors');
    const r = await cli(['extract', '--model', goldenModel('bert-tiny'), '--text', 'The cat sat.', '--out', out], {
      NODE_OPTIONS: `--import=${join(dir, 'register.mjs')}`,
    });
    expect(r.code, r.stderr).toBe(0);
    const loaded = r.stdout.split('\n').flatMap((l) => (l.startsWith('import ') ? [l.slice(7)] : []));
    // The CLI is one bundle (vite.cli.config.ts): the only files of ours it loads are its chunks (one module each
    // for Node to resolve and compile: 12 today, against ~65 modules before), and each chunk's source map names
    // the sources it holds.
    const ours = [...new Set(loaded)].filter(
      (u) => u.startsWith(pathToFileURL(ROOT).href) && !u.includes('/node_modules/'),
    );
    const bundle = `${pathToFileURL(join(ROOT, 'dist', 'src', 'cli')).href}/`;
    expect(ours.filter((u) => !u.startsWith(bundle))).toEqual([]);
    expect(ours.length).toBeLessThan(20);
    const sources = await Promise.all(
      ours.map(async (u) => {
        const file = fileURLToPath(u);
        // A chunk without a map is a facade, re-exporting another chunk's names (what a command imports).
        if (!existsSync(`${file}.map`)) {
          expect(await readFile(file, 'utf8')).toMatch(/^(export \{[^}]*\} from "[^"]+";\s*)+$/);
          return [];
        }
        const map = JSON.parse(await readFile(`${file}.map`, 'utf8')) as { sources: string[] };
        return map.sources.map((s) => resolve(dirname(file), s));
      }),
    );
    expect(sources.flat()).toContain(join(ROOT, 'src', 'models', 'checkpoint-model.ts'));
    const packages = [
      'onnx-proto',
      'protobufjs',
      '@resvg',
      'opentype.js',
      'playwright-core',
      '@tensorflow',
      '@huggingface/hub',
      // Where onnxruntime's C API runs every session (runtime/ort-direct.ts), the binding is never imported.
      ...(C_API ? ['onnxruntime-node', 'onnxruntime-common'] : []),
    ];
    const heavy = (u: string) =>
      /\/src\/(views|export|server|app)\//.test(u) || packages.some((p) => u.includes(`/node_modules/${p}/`));
    expect([...sources.flat(), ...loaded].filter(heavy)).toEqual([]);
  });

  test("onnxruntime's telemetry stays off: nothing written under the home folder", async () => {
    // onnxruntime ≥ 1.29 keeps an SQLite store in ~/.cache/Microsoft/DeveloperTools/.onnxruntime unless told not to.
    const home = await mkdtemp(join(tmp, 'home-'));
    const out = join(home, 'cat.safetensors');
    const args = ['extract', '--model', goldenModel('bert-tiny'), '--text', 'The cat sat.', '--out', out];
    const r = await cli(args, { HOME: home, ORT_DISABLE_TELEMETRY: undefined });
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(home)).toEqual(['cat.safetensors']);
  });

  test("--debug prints the stack with the sources' lines (the bundle's source maps)", async () => {
    const r = await cli([
      'extract',
      '--model',
      join(tmp, 'no-such-model'),
      '--text',
      'a',
      '--out',
      join(tmp, 'x'),
      '--debug',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^attnviz: AttnvizError: .*no-such-model: no such file or folder/);
    expect(r.stderr).toContain(`at resolveSource (${join(ROOT, 'src', 'load', 'sources.ts')}:`);
  });
});

describe.skipIf(!HAVE_CLI)('help, version and bad invocations', () => {
  test('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  const COMMANDS = ['extract', 'export', 'neurons', 'generate', 'compare', 'heads', 'serve'];
  test.each(COMMANDS)('%s: --help, -h and help <command> describe that command alone', async (name) => {
    for (const args of [
      [name, '--help'],
      [name, '-h'],
      ['help', name],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.startsWith(`usage: attnviz ${name} `)).toBe(true);
      const others = COMMANDS.filter((c) => c !== name);
      for (const other of others) expect(r.stdout).not.toMatch(new RegExp(`^\\s*${other} --`, 'm'));
    }
    const all = await cli(['--help']);
    expect(all.stdout).toContain(`  ${name} `);
    expect(all.stdout).toContain('--version');
  });

  test('--from with --model or --text is an error, not a silent choice', async () => {
    const from = join(tmp, 'from.safetensors');
    await writeAttentionFile(from, {
      tokens: ['a', 'b'],
      text: 'a b',
      pair: null,
      sentenceBStart: null,
      model: { source: 'test', modelType: 'test' },
      causal: false,
      attention: { dims: [1, 1, 2, 2], data: new Float32Array([1, 0, 0.5, 0.5]) },
    });
    const out = join(tmp, 'conflict.html');
    for (const extra of [
      ['--model', 'embedded'],
      ['--text', 'hi'],
      ['--model', 'embedded', '--text', 'hi'],
    ]) {
      const r = await cli(['export', '--view', 'head', '--from', from, ...extra, '-o', out]);
      expectCliError(r, /--from reads a saved attention file: it cannot be combined with --(model|text)/);
    }
    expect((await readdir(tmp)).includes('conflict.html')).toBe(false);
    const ok = await cli(['export', '--view', 'head', '--from', from, '-o', out]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  test('an unsupported capability is one line: generate and --target on the embedded encoder', async () => {
    expectCliError(
      await cli(['generate', '--model', 'embedded', '--max-new-tokens', '2']),
      'attnviz: embedded: model_type use-lite cannot generate in attnviz (it generates with the decoders llama, ' +
        'mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, olmo2, falcon: their checkpoints and GGUF files)',
    );
    const out = join(tmp, 'target.safetensors');
    expectCliError(
      await cli(['extract', '--model', 'embedded', '--text', 'The cat sat.', '--target', 'Die Katze.', '--out', out]),
      /^attnviz: embedded: model_type use-lite is not an encoder-decoder model: it takes no target text$/,
    );
    expectCliError(
      await cli(['extract', '--model', 'embedded', '--text', 'The cat.', '--max-new-tokens', '3', '--out', out]),
      /not an encoder-decoder model/,
    );
    expect((await readdir(tmp)).includes('target.safetensors')).toBe(false);
  });

  test('file errors are phrased for people, without errno codes', async () => {
    const missing = await cli(['export', '--view', 'head', '--from', join(tmp, 'nope.safetensors'), '-o', 'x.html']);
    expectCliError(missing, /nope\.safetensors: cannot read \(no such file or folder\)$/);
    const noFolder = await cli([
      'extract',
      '--model',
      'embedded',
      '--text',
      'hi',
      '--out',
      join(tmp, 'no', 'such', 'folder', 'o.safetensors'),
    ]);
    expectCliError(noFolder, /cannot write .*o\.safetensors \(no such folder .*folder\)$/);
    for (const r of [missing, noFolder]) expect(r.stderr).not.toMatch(/\bE[A-Z]{3,}\b/);
  });

  test('a .bin or another unknown file names the kinds of model attnviz reads', async () => {
    for (const name of ['pytorch_model.bin', 'notes.txt']) {
      const file = join(tmp, name);
      await writeFile(file, 'not a model');
      const r = await cli(['extract', '--model', file, '--text', 'hi', '--out', join(tmp, 'o.safetensors')]);
      expectCliError(
        r,
        new RegExp(
          /not a model attnviz reads \(a model is a Hugging Face folder with config\.json, /.source +
            /a hub id \(org\/name\), a \.gguf file, an \.onnx file or a TF\.js graph model folder/.source,
        ),
      );
      if (name.endsWith('.bin')) expect(r.stderr).toContain('PyTorch weights are not read');
    }
  });
});
