/**
 * PNG and SVG export without a browser. A view's scene, drawn by the same pure functions the page draws with
 * (views/model-grid.ts, views/head-lines.ts, views/neuron-scene.ts), goes to the SVG painter; a PNG is that SVG
 * rasterised in-process by resvg (@resvg/resvg-js: prebuilt binaries in the npm registry, no install script).
 *
 * Text is set in Arimo, the font files shipped in @expo-google-fonts/arimo (SIL OFL 1.1): it has Arial's metrics,
 * as the Liberation Sans that Chromium picks for the views' Helvetica/Arial stack on Debian, and resvg loads
 * only it (system fonts off), so an image is the same on every machine. Characters Arimo lacks (CJK, most
 * symbols) are drawn as its missing-glyph box. The head view's token columns are sized by measuring labels
 * in the same font (opentype.js), as the page measures them on a canvas.
 *
 * Raster cells (the model view's heatmap thumbnails) are SVG <image>s with PNG data URIs (png-encode.ts): a rect per
 * cell would be 30 × larger at 12 × 12 thumbnails of 64² cells (bench/images.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Resvg } from '@resvg/resvg-js';
import opentype from 'opentype.js';
import type { HeadsReport, StepsReport } from '../analysis/report-data.js';
import { ATTENTION_PARTS, attentionPart, type Attention, type AttentionPart } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { type HeatmapOptions, openingHeatmap } from '../views/head-heatmap.js';
import { openingLines, type Scene } from '../views/head-lines.js';
import { headsScene, stepsScene } from '../views/reports/report-scenes.js';
import { GRID_WIDTH } from '../views/layout.js';
import { drawGrid, fullLayers, type GridState, modelGrid, openingGrid } from '../views/model-grid.js';
import type { ViewName } from '../views/mount.js';
import { neuronScene, type NeuronSceneOptions } from '../views/neuron-scene.js';
import { type Pixels, SvgPainter } from '../views/painter.js';
import { encodePng } from './png-encode.js';
import { PngPainter, type ResvgOptions } from './png-painter.js';
import { resolveTheme, type ThemeName } from '../views/palette.js';

const require = createRequire(import.meta.url);
/** Arimo regular and bold: the only fonts the rasteriser sees. */
export const FONT_FILES = ['400Regular/Arimo_400Regular.ttf', '700Bold/Arimo_700Bold.ttf'].map((f) =>
  require.resolve(`@expo-google-fonts/arimo/${f}`),
);

/**
 * PNG pixels per CSS px by default: 1, the view as a page shows it on a 1× screen. The page's PNG button draws at
 * 2 (sharp on HiDPI screens); --scale 2 does the same here, at about three times the bytes: a model view's
 * anti-aliased hairlines hardly compress (bench/RESULTS.md).
 */
export const DEFAULT_SCALE = 1;
/** The largest --scale: a 12-layer model view at 8 is already 7760 × 22 800 px. */
export const MAX_SCALE = 8;

export type ImageFormat = 'png' | 'svg';

/** View options the images honour (the views' own options; the CLI passes these). */
export interface ImageViewOptions extends HeatmapOptions, Omit<NeuronSceneOptions, 'theme'> {
  theme?: ThemeName;
  part?: AttentionPart;
  includeHeads?: number[];
  filter?: GridState['filter'];
  mode?: GridState['mode'];
  heatmapAbove?: number;
}

/** `scale` checked: a finite number in (0, MAX_SCALE]. */
export function checkScale(scale: number): number {
  if (!(Number.isFinite(scale) && scale > 0 && scale <= MAX_SCALE))
    throw new AttnvizError(`--scale must be a number above 0 and at most ${MAX_SCALE}, not "${scale}"`);
  return scale;
}

/** A view of `a` as an image: SVG text, or PNG bytes at `scale` PNG pixels per CSS px. */
export function viewImage(
  a: Attention,
  view: ViewName,
  options: ImageViewOptions,
  format: ImageFormat,
  scale = DEFAULT_SCALE,
): string | Uint8Array {
  if (format === 'svg') return viewSvg(a, view, options);
  checkScale(scale);
  const { scene: s, background } = viewScene(a, view, options, scale);
  const p = new PngPainter(s.width, s.height, background, scale, pngDataUri, measureText);
  s.draw(p);
  return encodePng(p.render(RESVG_OPTIONS));
}

/**
 * The view as SVG. `pixelScale` is the scale it will be rasterised at: the model view's thumbnail lines are one
 * device pixel wide, as on the page.
 */
export function viewSvg(a: Attention, view: ViewName, options: ImageViewOptions, pixelScale = 1): string {
  const { scene: s, background } = viewScene(a, view, options, pixelScale);
  const p = new SvgPainter(s.width, s.height, background, pngDataUri);
  s.draw(p);
  return p.toString();
}

/** The view's scene and its theme's background. */
function viewScene(a: Attention, view: ViewName, options: ImageViewOptions, pixelScale: number) {
  const part = options.part ?? 'encoder';
  if (!ATTENTION_PARTS.includes(part)) throw new AttnvizError(`part must be one of ${ATTENTION_PARTS.join(', ')}`);
  const data = a.encoderDecoder ? attentionPart(a, part) : a;
  const theme = resolveTheme(options.theme ?? (view === 'head' ? 'light' : 'dark'));
  return { scene: scene(data, view, options, pixelScale), background: theme.background };
}

function scene(data: Attention, view: ViewName, o: ImageViewOptions, pixelScale: number): Scene {
  switch (view) {
    case 'head':
      return headScene(data, o, pixelScale);
    case 'model':
      return modelScene(data, o, pixelScale);
    case 'neuron':
      return neuronScene(data, { ...o, theme: o.theme ?? 'dark' });
    default:
      throw new AttnvizError(`unknown view "${String(view)}"`);
  }
}

function headScene(data: Attention, o: ImageViewOptions, pixelScale: number): Scene {
  const [, , T, K] = data.attention.dims;
  const mode = o.mode ?? (Math.max(T, K) > (o.heatmapAbove ?? 96) ? 'heatmap' : 'lines');
  const theme = resolveTheme(o.theme ?? 'light');
  if (mode === 'heatmap') return openingHeatmap(data, o, theme, pixelScale);
  return openingLines(data, o, theme, measureLabel);
}

function modelScene(data: Attention, o: ImageViewOptions, pixelScale: number): Scene {
  const [L, H] = data.attention.dims;
  const layers = o.includeLayers ?? Array.from({ length: L }, (_, l) => l);
  const heads = o.includeHeads ?? Array.from({ length: H }, (_, h) => h);
  const grid = modelGrid(
    data,
    { layers, heads, arrived: fullLayers(data, layers) },
    openingGrid(data, o, false),
    resolveTheme(o.theme ?? 'dark'),
    pixelScale,
  );
  return { width: GRID_WIDTH, height: grid.g.height, draw: (p) => drawGrid(p, grid, null, 1 / pixelScale) };
}

/** How resvg renders: Arimo only (see the header). */
const RESVG_OPTIONS: ResvgOptions = {
  // The views' font stack (painter.ts FONT) names fonts not loaded here: it falls through to sans-serif, Arimo.
  font: { loadSystemFonts: false, fontFiles: FONT_FILES, defaultFontFamily: 'Arimo', sansSerifFamily: 'Arimo' },
  // Raster cells scaled without smoothing, as the page draws them (resvg reads no image-rendering: pixelated).
  imageRendering: 1,
};

/** An SVG rasterised by resvg at `scale`, with Arimo only (see the header). */
export function svgToPng(svg: string, scale = DEFAULT_SCALE): Uint8Array {
  const out = new Resvg(svg, { ...RESVG_OPTIONS, fitTo: { mode: 'zoom', value: scale } }).render();
  return encodePng({ width: out.width, height: out.height, data: new Uint8ClampedArray(out.pixels) });
}

/** RGBA pixels as a PNG data: URI. */
export function pngDataUri(pixels: Pixels): string {
  return `data:image/png;base64,${Buffer.from(encodePng(pixels)).toString('base64')}`;
}

const fonts: (opentype.Font | undefined)[] = [];

/** Width in px of `text` at `size` px in Arimo (bold when `bold`), as resvg will set it. */
export function measureText(text: string, size: number, bold = false): number {
  const i = bold ? 1 : 0;
  if (!fonts[i]) {
    const bytes = readFileSync(FONT_FILES[i]);
    fonts[i] = opentype.parse(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }
  return fonts[i].getAdvanceWidth(text, size);
}

/** Width in px of `text` at the head view's 15 px token font. */
export const measureLabel = (text: string) => measureText(text, 15);

/**
 * The head finder or generation report as it opens (views/reports/report-scenes.ts), as a PNG at `scale`;
 * `attentions` are the report's data blocks (the generation's is `a`).
 */
export function reportPng(
  data: HeadsReport | StepsReport,
  attentions: Record<string, Attention>,
  scale = DEFAULT_SCALE,
): Uint8Array {
  checkScale(scale);
  const s = data.kind === 'heads' ? headsScene(data, measureText) : stepsScene(data, attentions.a, measureText);
  const p = new PngPainter(s.width, s.height, '#ffffff', scale, pngDataUri, measureText);
  s.draw(p);
  return encodePng(p.render(RESVG_OPTIONS));
}

/** SVG documents placed left to right in one SVG (each nested as an <svg> at its x offset). */
export function sideBySide(svgs: string[], gap = 20): string {
  let x = 0,
    height = 0;
  const parts = svgs.map((svg) => {
    const size = (name: string) => Number(new RegExp(`<svg[^>]*\\s${name}="([\\d.]+)"`).exec(svg)?.[1] ?? 0);
    const [w, h] = [size('width'), size('height')];
    const body = svg.replace(/^<\?xml[^>]*>\s*/, '').replace(/^<svg/, `<svg x="${x}"`);
    x += w + gap;
    height = Math.max(height, h);
    return body;
  });
  const width = Math.max(0, x - gap);
  const size = `width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"`;
  const open = `<svg xmlns="http://www.w3.org/2000/svg" ${size}>`;
  return `${open}\n${parts.join('\n')}\n</svg>\n`;
}
