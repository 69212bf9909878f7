/**
 * Issue 11 items 12–13: exports stay valid XML whatever the tokens hold; writes that cannot happen (--out under
 * a regular file) are one line and exit 2; a write killed midway
 * leaves a temporary file that the next write to the folder removes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { encodeAttentionFile } from '../src/core/attention-file.js';
import { writeFileAtomic } from '../src/core/files.js';
import { escapeXml } from '../src/views/painter.js';
import { HAVE_CHROMIUM, launch } from './browser.js';
import { cli, expectCliError, HAVE_CLI } from './cli-run.js';

const tmp = await mkdtemp(join(tmpdir(), 'attnviz-files-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** XML 1.0's Char production: anything else makes a document unreadable, escaped or not. */
const XML_CHARS = /^[\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]*$/u;
const HOSTILE = ['\u0000nul', 'a\u0001b', '\u001b[31mred', 'x\ufffe', 'lone\ud800', '\udc00', '<&>"\'', 'ok😀'];

/** An attention file of the hostile tokens, uniform causal attention, q and k. */
async function hostileFile(): Promise<string> {
  const T = HOSTILE.length;
  const attention = new Float32Array(T * T);
  for (let r = 0; r < T; r++) for (let c = 0; c <= r; c++) attention[r * T + c] = 1 / (r + 1);
  const path = join(tmp, 'hostile.safetensors');
  await writeFile(
    path,
    encodeAttentionFile({
      tokens: HOSTILE,
      text: HOSTILE.join(' '),
      pair: null,
      sentenceBStart: null,
      model: { source: 'test', modelType: 'gpt2' },
      causal: true,
      attention: { dims: [1, 1, T, T], data: attention },
      query: { dims: [1, 1, T, 2], data: new Float32Array(T * 2).fill(0.5) },
      key: { dims: [1, 1, T, 2], data: new Float32Array(T * 2).fill(0.5) },
    }),
  );
  return path;
}

describe('item 12: characters XML forbids', () => {
  test('escapeXml leaves only XML characters, keeps pairs and escapes markup', () => {
    for (const t of HOSTILE) expect(escapeXml(t), JSON.stringify(t)).toMatch(XML_CHARS);
    expect(escapeXml('\u0000nul')).toBe('\ufffdnul');
    expect(escapeXml('ok😀')).toBe('ok😀');
    expect(escapeXml('<&>"\'')).toBe('&lt;&amp;&gt;&quot;&#39;');
    expect(escapeXml('tab\there\nnew')).toBe('tab\there\nnew');
  });

  test.skipIf(!HAVE_CLI || !HAVE_CHROMIUM)(
    'head, model and neuron SVG exports of such tokens parse as XML',
    async () => {
      const from = await hostileFile();
      const browser = await launch();
      try {
        const page = await browser.newPage();
        for (const view of ['head', 'model', 'neuron']) {
          const out = join(tmp, `${view}.svg`);
          const r = await cli(['export', '--view', view, '--from', from, '-o', out]);
          expect(r.code, r.stderr).toBe(0);
          const svg = await readFile(out, 'utf8');
          expect(svg, view).toMatch(XML_CHARS);
          const error = await page.evaluate((text) => {
            const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
            return doc.querySelector('parsererror')?.textContent ?? null;
          }, svg);
          expect(error, view).toBeNull();
        }
      } finally {
        await browser.close();
      }
    },
  );
});

describe('item 13: writes that cannot happen', () => {
  test.skipIf(!HAVE_CLI)('--out under a regular file: exit 2, one line', async () => {
    const from = await hostileFile();
    const r = await cli(['export', '--view', 'head', '--from', from, '-o', join(from, 'x.html')]);
    expectCliError(r, /cannot write .*x\.html \(a part of the path is a file, not a folder\)/);
  });

  test('a killed write leaves name.<pid>.tmp; the next write to the folder removes it, not a live one', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = join(tmp, `a.safetensors.${dead}.tmp`);
    const live = join(tmp, `b.safetensors.${process.ppid}.tmp`);
    const other = join(tmp, 'notes.tmp');
    for (const f of [stale, live, other]) await writeFile(f, 'partial');
    await writeFileAtomic(join(tmp, 'c.html'), Buffer.from('ok'));
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(other)).toBe(true);
    expect(await readFile(join(tmp, 'c.html'), 'utf8')).toBe('ok');
  });
});
