/**
 * The layout rule (README "How it works"): data flows one way, so a file under src/ imports only from its own
 * layer or from layers below it. Checked on the import graph, read from the sources.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, test } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

/** Each layer and the layers it may import from (besides itself). */
const MAY_IMPORT: Record<string, string[]> = {
  core: [],
  load: ['core'],
  graph: ['core', 'load'],
  runtime: ['core'],
  models: ['core', 'load', 'graph', 'runtime'],
  analysis: ['core'],
  views: ['core', 'analysis'],
  export: ['core', 'analysis', 'views'],
  server: ['core', 'load', 'models', 'analysis', 'views', 'export'],
  // The app runs in the browser: it shares only the browser-safe layers with the server.
  app: ['core', 'analysis', 'views'],
  cli: ['core', 'load', 'graph', 'runtime', 'models', 'analysis', 'views', 'export', 'server'],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Layer of a file under src/ ('' for the top-level entry points such as index.ts). */
const layerOf = (file: string) => {
  const parts = relative(SRC, file).split('/');
  return parts.length > 1 ? parts[0] : '';
};

const importsOf = (file: string) =>
  [...readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) =>
    resolve(dirname(file), m[1]),
  );

describe('layout', () => {
  test('every layer under src/ is known', () => {
    const layers = new Set(sources(SRC).map(layerOf).filter(Boolean));
    expect([...layers].filter((l) => !(l in MAY_IMPORT))).toEqual([]);
  });

  test('imports only point down', () => {
    const wrong: string[] = [];
    for (const file of sources(SRC)) {
      const from = layerOf(file);
      if (!from) continue;
      for (const target of importsOf(file)) {
        const to = layerOf(target);
        if (to !== from && !MAY_IMPORT[from].includes(to))
          wrong.push(`${relative(SRC, file)} → ${relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('above models/, the model kinds are types at most: callers read capabilities, not instanceof or casts', () => {
    // Every kind implements models/model.ts's AttentionModel; load-model.ts picks one. src/server may not even name
    // a kind's types (no casts between kinds there); elsewhere a kind's types may be named (cli: LoadOptions),
    // never its values (a class to test instanceof against).
    const KINDS = ['checkpoint-model', 'seq2seq', 'onnx-tap', 'tfjs-model'].map((k) => join(SRC, 'models', `${k}.js`));
    const above = ['server', 'cli', 'app', 'export', 'views', 'analysis'];
    const wrong: string[] = [];
    for (const file of sources(SRC).filter((f) => above.includes(layerOf(f)))) {
      const text = readFileSync(file, 'utf8');
      const statements =
        /\b(?:import|export)\s+(type\s+)?[^;']*?from\s*'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'/g;
      for (const m of text.matchAll(statements)) {
        const target = resolve(dirname(file), m[2] ?? m[3]);
        if (KINDS.includes(target) && (!m[1] || layerOf(file) === 'server'))
          wrong.push(`${relative(SRC, file)} → ${relative(SRC, target)}${m[1] ? ' (types)' : ''}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('lines are at most 120 characters (strings and comments included)', () => {
    const root = resolve(SRC, '..');
    const files = ['src', 'test', 'bench'].flatMap((d) => sources(join(root, d)));
    const long = files.flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => ([...line].length > 120 ? [`${relative(root, file)}:${i + 1}`] : [])),
    );
    expect(long).toEqual([]);
  });
});
