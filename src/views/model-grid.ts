/**
 * The model view's grid as a pure function of (data, state): the axis labels and every layer × head thumbnail,
 * drawn on any Painter, no DOM. The page (model-view.ts) draws it on its canvas and puts its axis labels in the
 * DOM where `gridAxes` says; Node's image export (export/image.ts) draws the same scene to SVG.
 *
 * Thumbnail lines run from x + 5 to x + width − 9 (BertViz: width − 14 long). BertViz strokes them 2.2 px
 * wide at opacity = weight; here they are 1 px hairlines on a 1× canvas, because Chromium's Skia rasterises
 * wider strokes of a many-segment path ~10× slower (144 thumbnails at 32 tokens: ~4 s against ~0.35 s). The
 * opacity 1 − (1 − w)^2.2 keeps the ink per unit length of a 2.2 px line at opacity w (equal for small w).
 */
import type { Attention } from '../core/attention.js';
import { AXIS, gridLayout, MARGIN, type GridLayout } from './layout.js';
import { LineBatch } from './lines.js';
import { filterIndices, selectCells, type PairFilter } from './matrix.js';
import type { Painter, Pixels } from './painter.js';
import { categoricalColors, type Theme } from './palette.js';
import { maxPool, paint, scaleValues, type ColorScale } from './raster.js';

export type ModelViewMode = 'lines' | 'heatmap';

/** A thumbnail: indices into the model's layers and heads. */
export interface HeadRef {
  layer: number;
  head: number;
}

/** A layer's weights as they came: `[H, n, m]`, full resolution when n = T and m = K. */
export interface LayerWeights {
  data: Float32Array;
  n: number;
  m: number;
}

const LINE_END = 9;
const LINE_INK = 2.2;
/** PNG exports are drawn at this scale; their thumbnail lines are 1 / PNG_SCALE px wide (one pixel again). */
export const PNG_SCALE = 2;

/** What the grid draws: fixed while the mode, filter, hidden tokens and colour scale stay the same. */
export interface ModelGrid {
  /** Query and key token counts of the data, and its heads. */
  T: number;
  K: number;
  H: number;
  /** Layers (grid rows) and heads (columns) shown, as model indices. */
  layers: number[];
  heads: number[];
  /** Token indices shown on the query and key sides. */
  rows: number[];
  cols: number[];
  g: GridLayout;
  /** One colour per layer of the model. */
  colors: string[];
  theme: Theme;
  mode: ModelViewMode;
  scale: ColorScale;
  hideSpecial: boolean;
  /** Layers that have arrived (all of them for data given in full). */
  arrived: ReadonlyMap<number, LayerWeights>;
  /** Device pixels per CSS px: thumbnail rasters are pooled to this resolution. */
  dpr: number;
}

export interface GridState {
  filter: PairFilter;
  hideSpecial: boolean;
  mode: ModelViewMode;
  scale: ColorScale;
}

/** The layers of data given in full, each as one `[H, T, K]` block. */
export function fullLayers(data: Attention, layers: readonly number[]): Map<number, LayerWeights> {
  const [, H, T, K] = data.attention.dims;
  const src = data.attention.data;
  return new Map(layers.map((l) => [l, { data: src.subarray(l * H * T * K, (l + 1) * H * T * K), n: T, m: K }]));
}

/** The grid's opening state for view options `o`: lines up to `heatmapAbove` tokens (48), heatmaps beyond. */
export function openingGrid(
  data: Attention,
  o: { filter?: PairFilter; hideSpecial?: boolean; mode?: ModelViewMode; heatmapAbove?: number; scale?: ColorScale },
  progressive: boolean,
): GridState {
  const [, , T, K] = data.attention.dims;
  return {
    filter: data.sentenceBStart === null ? 'all' : (o.filter ?? 'all'),
    hideSpecial: o.hideSpecial ?? false,
    mode: o.mode ?? (progressive || Math.max(T, K) > (o.heatmapAbove ?? 48) ? 'heatmap' : 'lines'),
    scale: o.scale ?? 'linear',
  };
}

export function modelGrid(
  data: Attention,
  shown: { layers: number[]; heads: number[]; arrived: ReadonlyMap<number, LayerWeights> },
  state: GridState,
  theme: Theme,
  dpr = 1,
): ModelGrid {
  const [L, H, T, K] = data.attention.dims;
  const { rows, cols } = filterIndices(data, state);
  const g = gridLayout(state.mode, Math.max(rows.length, cols.length), H, shown.layers.length);
  const { mode, scale, hideSpecial } = state;
  return { T, K, H, ...shown, rows, cols, g, colors: categoricalColors(L), theme, mode, scale, hideSpecial, dpr };
}

export const thumbX = (m: ModelGrid, hi: number) => AXIS + hi * m.g.tw;
export const thumbY = (m: ModelGrid, li: number) => AXIS + li * m.g.th;

/** One head's shown weights `[R × C]` at full resolution, if the grid has them. */
export function headWeights(m: ModelGrid, layer: number, head: number): Float32Array | null {
  const a = m.arrived.get(layer);
  if (!a || a.n !== m.T || a.m !== m.K) return null;
  const TK = m.T * m.K;
  return selectCells(a.data.subarray(head * TK, (head + 1) * TK), m.K, m.rows, m.cols, m.hideSpecial);
}

/** The thumbnail image: the head max-pooled to the thumbnail's device pixels. */
export function thumbPixels(m: ModelGrid, l: number, h: number): Pixels | null {
  const a = m.arrived.get(l);
  if (!a) return null;
  const full = a.n === m.T && a.m === m.K;
  const w = full ? headWeights(m, l, h)! : a.data.subarray(h * a.n * a.m, (h + 1) * a.n * a.m);
  const R = full ? m.rows.length : a.n,
    C = full ? m.cols.length : a.m;
  const side = Math.max(1, Math.round((m.g.tw - 2 * MARGIN) * m.dpr));
  const k = Math.min(1, side / Math.max(R, C, 1));
  const pr = Math.max(1, Math.ceil(R * k)),
    pc = Math.max(1, Math.ceil(C * k));
  const pooled = k === 1 ? w : maxPool(w, R, C, pr, pc, new Float32Array(pr * pc));
  const t = scaleValues(pooled, pr, pc, { scale: m.scale });
  return { width: pc, height: pr, data: paint(t, m.colors[l], m.theme.background) };
}

/**
 * Lines from query row r (left) to key row c (right), `width` px wide, with the ink of a 2.2 px line at opacity =
 * weight.
 */
function thumbLines(p: Painter, m: ModelGrid, x: number, y: number, w: Float32Array, color: string, width: number) {
  const ink = LINE_INK / width;
  const R = m.rows.length,
    C = m.cols.length;
  const x1 = x + MARGIN,
    x2 = x + m.g.tw - LINE_END,
    y0 = y + MARGIN + m.g.rh / 2;
  const batch = new LineBatch();
  for (let r = 0; r < R; r++)
    for (let c = 0; c < C; c++)
      batch.add(x1, y0 + r * m.g.rh, x2, y0 + c * m.g.rh, 1 - (1 - Math.min(w[r * C + c], 1)) ** ink);
  batch.draw(p, color, width);
  return batch.count;
}

/** Thumbnail (li, hi) of the grid; `image` gives its raster (the page caches them). Returns what it drew. */
export function drawThumb(
  p: Painter,
  m: ModelGrid,
  li: number,
  hi: number,
  selected: HeadRef | null,
  lineWidth = 1,
  image: (l: number, h: number) => Pixels | null = (l, h) => thumbPixels(m, l, h),
): number {
  const l = m.layers[li],
    h = m.heads[hi];
  const x = thumbX(m, hi),
    y = thumbY(m, li);
  const isSelected = selected !== null && selected.layer === l && selected.head === h;
  const { g, theme } = m;
  p.rect(x, y, g.tw, g.th, isSelected ? theme.highlight : theme.background);
  let count = 0;
  const R = m.rows.length,
    C = m.cols.length;
  if (R && C && m.arrived.has(l)) {
    const full = m.mode === 'lines' ? headWeights(m, l, h) : null;
    if (full) count = thumbLines(p, m, x, y, full, m.colors[l], lineWidth);
    else {
      const img = image(l, h)!;
      const side = g.tw - 2 * MARGIN,
        n = Math.max(img.width, img.height);
      p.image(x + MARGIN, y + MARGIN, (side * img.width) / n, (side * img.height) / n, img);
      count = R * C;
    }
  }
  // Inset by half the stroke so the frame never paints over a neighbour.
  if (isSelected) p.rect(x + 1, y + 1, g.tw - 2, g.th - 2, 'none', 0.8, { color: m.colors[l], width: 2 });
  return count;
}

export interface GridAxis {
  cls: string;
  text: string;
  x: number;
  y: number;
  attrs: Record<string, number>;
  style: { size: number; weight?: 'bold'; anchor: 'middle' | 'end'; rotate?: number };
}

/** Axis titles and indices: drawn into exports, DOM on the page, at the same places. */
export function gridAxes(m: ModelGrid): GridAxis[] {
  const { g, heads, layers } = m;
  const gridW = AXIS + heads.length * g.tw;
  const title = { size: 15, weight: 'bold' as const, anchor: 'middle' as const };
  return [
    {
      cls: 'av-axis-title av-axis-heads',
      text: 'Heads',
      x: AXIS + (gridW - AXIS) / 2,
      y: 7.5,
      attrs: {},
      style: title,
    },
    ...heads.map((h, hi) => ({
      cls: 'av-axis-index',
      text: String(h),
      x: thumbX(m, hi) + g.tw / 2,
      y: 26.5,
      attrs: { 'data-head': h },
      style: { size: 13, anchor: 'middle' as const },
    })),
    {
      cls: 'av-axis-title av-axis-layers',
      text: 'Layers',
      x: 7.5,
      y: AXIS + (g.height - AXIS) / 2,
      attrs: {},
      style: { ...title, rotate: -90 },
    },
    ...layers.map((l, li) => ({
      cls: 'av-axis-index av-axis-layer',
      text: String(l),
      x: AXIS - 5,
      y: thumbY(m, li) + g.th / 2,
      attrs: { 'data-layer': l },
      style: { size: 13, anchor: 'end' as const },
    })),
  ];
}

/** Axes and every thumbnail: the grid as the page shows it. */
export function drawGrid(
  p: Painter,
  m: ModelGrid,
  selected: HeadRef | null,
  lineWidth = 1,
  image?: (l: number, h: number) => Pixels | null,
): void {
  for (const a of gridAxes(m)) p.text(a.x, a.y, a.text, { color: m.theme.text, ...a.style });
  m.layers.forEach((_, li) => m.heads.forEach((__, hi) => drawThumb(p, m, li, hi, selected, lineWidth, image)));
}
