/**
 * The head view's lines mode as a pure function of (data, state): the header (layer, head squares), the lines
 * from each token to each token and the attention blocks of a focused token, and the token labels, drawn on any
 * Painter, no DOM. The page (head-view.ts) draws the lines on its canvas (labels are DOM there); its exports and
 * Node's image export (export/image.ts) draw the whole scene.
 */
import type { Attention } from '../core/attention.js';
import { linesLayout, PAD, ROW, type LinesLayout } from './layout.js';
import { LineBatch } from './lines.js';
import { layerMatrix, PAIR_FILTERS, type PairFilter } from './matrix.js';
import type { Painter } from './painter.js';
import { categoricalColors, lighten, type Theme } from './palette.js';
import { prettifyToken } from './tokens.js';
import type { TokenRef } from './tooltip.js';

export const HEAD_SQUARE = 20;
/** Height of the header (layer title and head squares) above the rows in exports. */
export const HEADER = 30 + HEAD_SQUARE + 10;

/** A scene to draw: its size in CSS px and the drawing. */
export interface Scene {
  width: number;
  height: number;
  draw: (p: Painter) => void;
}

export interface LinesScene {
  layer: number;
  filter: PairFilter;
  /** Token indices shown on the query (left) and key (right) sides. */
  rows: readonly number[];
  cols: readonly number[];
  /** Per head, its shown weights `[rows × cols]` (at least the active heads'). */
  weights: readonly (Float32Array | undefined)[];
  active: readonly boolean[];
  threshold: number;
  /** Per head and query row, the top-k cut-off; null keeps every line. */
  kth: readonly Float32Array[] | null;
  /** Pinned tokens, else the hovered one: only their lines, and blocks on the other side. */
  focus: readonly TokenRef[];
  geo: LinesLayout;
  /** False past `allLinesUpTo` tokens: only focused tokens' lines are drawn. */
  allLines: boolean;
  theme: Theme;
  /** One colour per head. */
  colors: readonly string[];
  label(i: number): string;
  keyLabel(j: number): string;
}

const rowY = (r: number, top: number) => top + r * ROW + ROW / 2;

/**
 * Lines and attention blocks; `top` offsets the rows (0 on the page, below the header in exports). Rows
 * outside [from, to) (px from the first row) are not drawn: a 2k-token view is drawn only where it is seen.
 */
export function drawLines(p: Painter, s: LinesScene, top: number, from = -Infinity, to = Infinity): number {
  const seen = (r: number) => r * ROW + ROW > from && r * ROW < to;
  const { box, gap } = s.geo;
  const { rows, cols, theme, colors } = s;
  const rightX = box + gap;
  const R = rows.length,
    C = cols.length;
  const w = (h: number, r: number, c: number) => s.weights[h]![r * C + c];
  const kept = (h: number, r: number, weight: number) =>
    weight >= s.threshold && (s.kth === null || weight >= s.kth[h][r]) && weight > 0;
  const act = s.active.flatMap((a, h) => (a ? [h] : []));
  const rowSel = new Set(s.focus.filter((t) => t.side === 'left').flatMap((t) => at(rows, t.index)));
  const colSel = new Set(s.focus.filter((t) => t.side === 'right').flatMap((t) => at(cols, t.index)));
  const focused = rowSel.size + colSel.size > 0;

  // Focus background, then per-head blocks on the opposite side (opacity = weight, not divided).
  for (const r of rowSel) p.rect(0, top + r * ROW, box, ROW, theme.highlight);
  for (const c of colSel) p.rect(rightX, top + c * ROW, box, ROW, theme.highlight);
  const blockW = box / act.length;
  act.forEach((h, k) => {
    if (rowSel.size)
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (const r of rowSel) sum += w(h, r, c);
        if (sum > 0 && seen(c)) p.rect(rightX + k * blockW, top + c * ROW, blockW, ROW, colors[h], Math.min(1, sum));
      }
    if (colSel.size)
      for (let r = 0; r < R; r++) {
        let sum = 0;
        for (const c of colSel) sum += w(h, r, c);
        if (sum > 0 && seen(r)) p.rect(k * blockW, top + r * ROW, blockW, ROW, colors[h], Math.min(1, sum));
      }
  });

  let count = 0;
  for (const h of act) {
    const batch = new LineBatch();
    const add = (r: number, c: number) => {
      const weight = w(h, r, c);
      // A segment between two rows on the same side of the window never crosses it.
      if ((r + 1) * ROW <= from && (c + 1) * ROW <= from) return;
      if (r * ROW >= to && c * ROW >= to) return;
      if (kept(h, r, weight)) batch.add(box, rowY(r, top), rightX, rowY(c, top), weight / act.length);
    };
    if (!focused && s.allLines) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) add(r, c);
    for (const r of rowSel) for (let c = 0; c < C; c++) add(r, c);
    for (const c of colSel) for (let r = 0; r < R; r++) if (!rowSel.has(r)) add(r, c);
    batch.draw(p, colors[h], 2);
    count += batch.count;
  }
  return count;
}

/** The layer title and the head squares (inactive heads lightened), above the rows of an export. */
export function drawHeader(p: Painter, s: Pick<LinesScene, 'layer' | 'filter' | 'active' | 'theme' | 'colors'>): void {
  p.text(0, 12, `Layer ${s.layer}${s.filter !== 'all' ? ` · ${PAIR_FILTERS[s.filter]}` : ''}`, {
    color: s.theme.text,
    size: 13,
    weight: 'bold',
  });
  s.active.forEach((a, h) =>
    p.rect(h * HEAD_SQUARE, 30, HEAD_SQUARE, HEAD_SQUARE, a ? s.colors[h] : lighten(s.colors[h])),
  );
}

/** The lines mode as exported: header, lines and blocks, and the token labels. */
export function linesScene(s: LinesScene): Scene {
  const { geo } = s;
  return {
    width: Math.max(geo.width + 10, s.active.length * HEAD_SQUARE) + 10,
    height: HEADER + Math.max(s.rows.length, s.cols.length) * ROW + 10,
    draw: (p) => {
      drawHeader(p, s);
      drawLines(p, s, HEADER);
      const style = { color: s.theme.text, size: 15 };
      s.rows.forEach((i, r) => p.text(geo.box - PAD, rowY(r, HEADER), s.label(i), { ...style, anchor: 'end' }));
      s.cols.forEach((j, c) => p.text(geo.box + geo.gap + PAD, rowY(c, HEADER), s.keyLabel(j), style));
    },
  };
}

/** What a head view shows at start, from its options (head-view.ts starts from the same). */
export interface LinesOptions {
  layer?: number;
  heads?: number[];
  includeLayers?: number[];
  prettifyTokens?: boolean;
  filter?: PairFilter;
  hideSpecial?: boolean;
  threshold?: number;
  topK?: number | null;
  allLinesUpTo?: number;
}

/** The opening layer, active heads, filter and line cuts of a head view with options `o`. */
export function openingState(data: Attention, o: LinesOptions) {
  const H = data.attention.dims[1];
  const chosen = Array.from({ length: H }, (_, h) => o.heads?.includes(h) ?? true);
  return {
    layer: o.layer ?? o.includeLayers?.[0] ?? 0,
    active: chosen.some(Boolean) ? chosen : Array<boolean>(H).fill(true),
    filter: data.sentenceBStart === null ? 'all' : (o.filter ?? 'all'),
    hideSpecial: o.hideSpecial ?? false,
    threshold: o.threshold ?? 0,
    topK: o.topK ?? null,
  };
}

/** Token labels as the head view shows them (`Ġthe` as `the` unless prettifyTokens is false). */
export function tokenLabels(data: Attention, pretty = true) {
  const keyTokens = data.keyTokens ?? data.tokens;
  return {
    label: (i: number) => (pretty ? prettifyToken(data.tokens[i]) : data.tokens[i]),
    keyLabel: (j: number) => (pretty ? prettifyToken(keyTokens[j]) : keyTokens[j]),
  };
}

/**
 * The lines scene of in-memory data as a head view opens on it (no hover or pin), with token widths from
 * `measure` (px of a label at the 15 px token font): Node's image export, which has no canvas to measure on.
 */
export function openingLines(data: Attention, o: LinesOptions, theme: Theme, measure: (text: string) => number): Scene {
  const H = data.attention.dims[1];
  const s = openingState(data, o);
  const m = layerMatrix(data, s.layer, s);
  const n = m.rows.length * m.cols.length;
  const weights = Array.from({ length: H }, (_, h) => m.data.subarray(h * n, (h + 1) * n));
  const { label, keyLabel } = tokenLabels(data, o.prettifyTokens !== false);
  let widest = 0;
  for (const i of m.rows) widest = Math.max(widest, measure(label(i)));
  for (const j of m.cols) widest = Math.max(widest, measure(keyLabel(j)));
  const count = Math.max(m.rows.length, m.cols.length);
  const { topK } = s;
  return linesScene({
    ...s,
    rows: m.rows,
    cols: m.cols,
    weights,
    kth: topK === null ? null : weights.map((w) => kthLargest(w, m.rows.length, m.cols.length, topK)),
    focus: [],
    geo: linesLayout(count, widest),
    allLines: count <= (o.allLinesUpTo ?? 256),
    theme,
    colors: categoricalColors(H),
    label,
    keyLabel,
  });
}

/** The position of token `index` in a list of shown tokens, as a 0- or 1-element list. */
export function at(list: readonly number[], index: number): number[] {
  const i = list.indexOf(index);
  return i < 0 ? [] : [i];
}

/** Per query row of an `[R × C]` matrix, the k-th largest weight: the top-k cut-off. */
export function kthLargest(m: Float32Array, R: number, C: number, k: number): Float32Array {
  const out = new Float32Array(R);
  for (let r = 0; r < R; r++) out[r] = k >= C ? -Infinity : m.slice(r * C, (r + 1) * C).sort()[C - k];
  return out;
}
