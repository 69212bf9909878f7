/**
 * Pure layout functions of the views: sizes and positions in CSS px from counts and measured label widths,
 * nothing drawn, no DOM. Each view renders from these; tests can check them without a browser.
 */

/** Head view, lines mode: BertViz's 22.5-px token rows. */
export const ROW = 22.5;
/** Token boxes are at least BertViz's 110 px and grow to fit labels up to this; longer labels are cut. */
export const BOX_MIN = 110;
export const BOX_MAX = 240;
/** Padding between a token's text and its box edge. */
export const PAD = 7;
/** The line area: at least this wide, more for many tokens, at most GAP_MAX. */
export const GAP_MIN = 185;
export const GAP_MAX = 480;

export interface LinesLayout {
  /** Width of each token column (left tokens end at `box`, right tokens start at `box + gap`). */
  box: number;
  /** Width of the line area between the columns. */
  gap: number;
  /** Height of all rows. */
  height: number;
  width: number;
}

/**
 * Head view geometry for `n` rows (the longer side) and the widest label (px). The line area widens with the
 * row count so lines keep a readable slope: it is a quarter of the rows' height (185 px, BertViz's look, up to
 * 33 tokens; 480 px from 85), and never narrower than 1.5 token columns.
 */
export function linesLayout(n: number, labelWidth: number): LinesLayout {
  const box = Math.min(BOX_MAX, Math.max(BOX_MIN, Math.ceil(labelWidth) + 2 * PAD));
  const gap = Math.min(GAP_MAX, Math.max(GAP_MIN, 1.5 * box, Math.round((n * ROW) / 4)));
  return { box, gap, height: n * ROW, width: 2 * box + gap };
}

/** BertViz's model-view grid: fixed width, axis band (15 title + 5 + 13 indices + 5), thumbnail padding. */
export const GRID_WIDTH = 970;
export const AXIS = 38;
export const MARGIN = 5;
/** Row height × total heads: 7 px per token row at 12 heads, 5.25 at 16 (BertViz). */
const ROW_BUDGET = 7 * 12;
/** Line thumbnails of long inputs are squeezed to this height rather than growing without bound. */
const MAX_LINES_HEIGHT = 600;

export interface GridLayout {
  /** Thumbnail width and height, token row height inside a lines thumbnail. */
  tw: number;
  th: number;
  rh: number;
  height: number;
}

/**
 * Model view grid for `n` tokens (the longer side), `totalHeads` of the model (sizes follow the model's head
 * count even when only some heads are shown, as in BertViz) and `layers` grid rows.
 */
export function gridLayout(mode: 'lines' | 'heatmap', n: number, totalHeads: number, layers: number): GridLayout {
  const tw = (GRID_WIDTH - AXIS) / totalHeads;
  const rh = mode === 'lines' ? Math.min(ROW_BUDGET / totalHeads, MAX_LINES_HEIGHT / Math.max(n, 1)) : 0;
  const th = mode === 'lines' ? Math.max(n, 1) * rh + 2 * MARGIN : tw;
  return { tw, th, rh, height: AXIS + layers * th };
}

/** Model view panel (BertViz's pop-up): 80 px token columns either side of 140 px of lines, 18 px rows. */
export const P_ROW = 18;
export const P_TOKEN = 80;
export const P_GAP = 140;
export const P_PAD = 8;
export const P_TITLE = 24;
/** The panel's lines body scrolls beyond this height. */
const P_MAX_BODY = 600;
const SCROLLBAR = 16;

export interface PanelLayout {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Content box (lines or heatmap) and the visible body height. */
  contentW: number;
  contentH: number;
  bodyH: number;
}

/**
 * Where the panel of a thumbnail at (tx, ty) of size tw × th goes, for content of contentW × contentH: right
 * of the thumbnail (x + 0.8 × width), flipped to its left when it would leave the grid (BertViz); level with
 * it, moved up to stay in the grid but never over the heads axis.
 */
export function panelLayout(
  thumb: { x: number; y: number; w: number },
  content: { w: number; h: number },
  gridHeight: number,
): PanelLayout {
  const bodyH = Math.min(content.h, P_MAX_BODY);
  const width = content.w + 2 * P_PAD + (content.h > bodyH ? SCROLLBAR : 0);
  const height = bodyH + P_TITLE + 2 * P_PAD;
  let x = thumb.x + 0.8 * thumb.w;
  if (x + width > GRID_WIDTH) x = Math.max(0, thumb.x + 0.2 * thumb.w - width);
  const y = Math.max(AXIS, Math.min(thumb.y, gridHeight - height));
  return { x, y, width, height, contentW: content.w, contentH: content.h, bodyH };
}
