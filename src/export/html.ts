/**
 * Standalone HTML: one file holding the views bundle and the data once, in the compact binary encoding
 * (core/encode.ts, deflate-raw compressed when that pays, as base 85 text: core/base85.ts). It loads no external
 * resource, so it works from file:// with the network off. `renderHtml` is the programmatic API (notebooks, other
 * apps).
 *
 * A large model view is sent in two parts, because Chromium parses a data block at ~60 MB/s (71 MB at 512 tokens,
 * 12 × 12: 1.2 s before anything could show): first each head max-pooled to at most OVERVIEW_CELLS per side (a few
 * MB, what the thumbnails show), then the views bundle, then the full data, which the page decodes after its first
 * frame (views/standalone.ts) while the thumbnails are already on screen.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import type { Attention } from '../core/attention.js';
import { OVERVIEW_CELLS } from '../core/protocol.js';
import { encodeBase85 } from '../core/base85.js';
import { encodeAttention } from '../core/encode.js';
import { AttnvizError } from '../core/errors.js';
import { escapeXml } from '../views/painter.js';
import { maxPoolHeads } from '../views/raster.js';
import { VIEWS, type ViewName } from '../views/mount.js';

export interface HtmlOptions {
  view: ViewName;
  /** View options (layer, heads, theme, …), passed to the view as JSON. */
  options?: Record<string, unknown>;
  title?: string;
  /** A problem with the data shown anyway (an invalid attention file read with --allow-invalid): a banner. */
  warning?: string;
  /** Shown in an iframe (notebooks): the page posts its height to the parent, tagged with this id. */
  frameId?: string;
  /**
   * Model view: past this many attention values, the pooled overview first and the full data after the bundle
   * (see the header). Default 2^22 (12 × 12 heads past ~170 tokens); Infinity keeps one block.
   */
  overviewAbove?: number;
}

/** The id of a split model view's full data block, named by its overview block's `data-full`. */
const FULL_ID = 'attnviz-full-data';

export function renderHtml(
  a: Attention,
  { view, options = {}, title, warning, frameId, overviewAbove = 2 ** 22 }: HtmlOptions,
): string {
  if (!VIEWS.includes(view)) throw new AttnvizError(`unknown view "${view}" (views: ${VIEWS.join(', ')})`);
  const heading = title ?? `${a.model.source || 'attention'} — ${view} view`;
  const attrs = { 'data-view': view, 'data-options': JSON.stringify(options) };
  const banner = warning
    ? `<p role="alert" style="margin:0;padding:8px;background:#fde68a;color:#000">warning: ${escapeXml(warning)}</p>\n`
    : '';
  const [, , T, K] = a.attention.dims;
  const split =
    view === 'model' &&
    !a.encoderDecoder &&
    options.aggregates !== true &&
    a.attention.data.length > overviewAbove &&
    Math.max(T, K) > OVERVIEW_CELLS;
  if (split) {
    const overview = dataScript(pooledOverview(a), { attrs: { ...attrs, 'data-full': FULL_ID } });
    const full = dataScript(a, { type: 'application/x-attnviz-full', attrs: { id: FULL_ID } });
    return page(heading, banner + overview, 'views/attnviz-views.js', frameId, full);
  }
  // Only the neuron view reads q and k; leaving them out halves the head and model views' files.
  const block = dataScript(a, { queryKey: view === 'neuron', attrs });
  return page(heading, banner + block, 'views/attnviz-views.js', frameId);
}

/** `a` without q/k, its heads max-pooled to at most OVERVIEW_CELLS per side: attention dims `[L, H, n, m]`. */
function pooledOverview(a: Attention): Attention {
  const [L, H, T, K] = a.attention.dims;
  const n = Math.min(T, OVERVIEW_CELLS),
    m = Math.min(K, OVERVIEW_CELLS);
  const data = maxPoolHeads(a.attention.data, L * H, T, K, n, m);
  const { query: _q, key: _k, positionBias: _p, layerPositionBias: _lp, ...rest } = a;
  return { ...rest, attention: { dims: [L, H, n, m], data } };
}

/**
 * A `<script type="application/x-attnviz">` data block holding `a` (read back by core/page-data.ts), with
 * extra attributes (escaped). `type` names other kinds of block (reports use their own).
 */
export function dataScript(
  a: Attention,
  {
    queryKey = false,
    attrs = {},
    type = 'application/x-attnviz',
  }: {
    queryKey?: boolean;
    attrs?: Record<string, string>;
    type?: string;
  } = {},
): string {
  const raw = encodeAttention(a, { queryKey });
  // Decompressing in the page runs at tens of MB/s, so deflate only when it pays: real attention (peaked,
  // many near-zero weights) often shrinks by half; random-like data by ~15 %, not worth seconds at 512 tokens.
  const deflated = deflateRawSync(raw, { level: 6 });
  const compressed = deflated.length < raw.length * 0.8;
  const bytes = compressed ? deflated : raw;
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
  const compression = compressed ? ' data-compression="deflate-raw"' : '';
  return `<script type="${type}"${extra} data-bytes="${bytes.length}"${compression}>${encodeBase85(bytes)}</script>`;
}

/** The page's Content-Security-Policy: no network, inline script and style, images from data: and blob: URLs. */
const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:";

/**
 * A standalone page: `body` (data blocks, markup) then the built bundle `bundlePath` (under dist/) inlined, then
 * `after` (data the page reads once parsed); with `frameId`, it posts its height to the parent window (notebook
 * iframes).
 */
export function page(title: string, body: string, bundlePath: string, frameId?: string, after = ''): string {
  const bundle = builtBundle(bundlePath).replace(/<\/script/gi, '<\\/script');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>${escapeXml(title)}</title>
<style>body{margin:0;font-family:'Helvetica Neue',Helvetica,Arial,sans-serif}</style></head>
<body>
${body}
<script>${bundle}</script>${frameId ? reportHeight(frameId) : ''}${after}
</body></html>
`;
}

const bundles = new Map<string, string>();

/** A Vite-built bundle under dist/ (dist/views/attnviz-views.js, dist/reports/attnviz-reports.js), read once. */
function builtBundle(path: string): string {
  const cached = bundles.get(path);
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('attnviz package root not found');
    dir = up;
  }
  const file = join(dir, 'dist', path);
  if (!existsSync(file)) throw new AttnvizError(`${file} is missing: run \`npm run build\``);
  const text = readFileSync(file, 'utf8');
  bundles.set(path, text);
  return text;
}

/** A script that tells the parent window the page's height whenever it changes (notebook iframes). */
function reportHeight(frameId: string): string {
  const post =
    `parent.postMessage({ attnvizFrame: ${JSON.stringify(frameId)}, ` +
    `height: document.body.scrollHeight + 8 }, '*')`;
  return `\n<script>new ResizeObserver(() => ${post}).observe(document.body);</script>`;
}
