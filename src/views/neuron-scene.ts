/**
 * The neuron view's drawing as a pure function of (data, state): the token rows, the collapsed lines or the
 * expanded columns (q, k, q × k, q · k, softmax) and the contributions panel, on any Painter, no DOM. The page
 * (neuron-view.ts) draws the rows on screen on its canvas (tokens and headings are DOM there) and reads the
 * derived data (columns, contributions) from here; its exports and Node's image export (export/image.ts) draw
 * the whole scene with text.
 */
import {
  keyContributions,
  rowContributions,
  type KeyContributions,
  type RowContributions,
} from '../analysis/contributions.js';
import {
  attentionRow,
  headScales,
  headSize,
  headVector,
  isMasked,
  neuronColumns,
  scoreFormula,
  type NeuronColumns,
  type NeuronScales,
} from '../analysis/neuron.js';
import type { Attention } from '../core/attention.js';
import type { Scene } from './head-lines.js';
import { LineBatch, MIN_ALPHA } from './lines.js';
import { filterIndices, PAIR_FILTERS, type PairFilter } from './matrix.js';
import { contributionTables, drawPanel, PANEL_W, type PanelTable } from './neuron-panel.js';
import type { Painter, Pixels } from './painter.js';
import { resolveTheme, type Theme, type ThemeName } from './palette.js';
import { prettifyToken } from './tokens.js';
import { drawVectors, frame, type VectorColumn, vectorRaster } from './vectors.js';
import type { RowWindow } from './virtual-rows.js';

export const NO_QK_NOTE =
  'This file has no queries and keys (q/k): the neuron view needs them. Extract with attnviz to include them.';
export const HEADINGS = ['Query q', 'Key k', 'q × k (elementwise)', 'q · k', 'Softmax'] as const;

// ---- geometry (px), after BertViz: rows of 26 with 20-px vector cells under a 42-px heading band --------
export const ROW = 26;
export const CELL_H = 20;
export const TOP = 42;
export const TOKEN_W = 120;
export const PAD = 6;
/** Collapsed: lines span 170 px from the left tokens to the right tokens. */
export const LINE_X0 = TOKEN_W + 4,
  LINE_X1 = 291,
  RIGHT_X = 295,
  RIGHT_W = 120;
/** Expanded: left edges of the columns (integers, so 1-px frames at x − 0.5 are crisp). */
export const Q_X = 145,
  K_X = 383,
  P_X = 608,
  D_X = 833,
  S_X = 884;
export const VEC_W = 200,
  DOT = 22,
  S_W = 96;
export const COLLAPSED_W = RIGHT_X + RIGHT_W,
  EXPANDED_W = S_X + S_W;
/** The geometry, for tests that read pixels. */
export const NEURON_LAYOUT = { ROW, CELL_H, TOP, TOKEN_W, Q_X, K_X, P_X, D_X, S_X, VEC_W, DOT, S_W } as const;
/** Heading boxes (x, width), in HEADINGS order. */
export const HEADING_BOX: [number, number][] = [
  [Q_X, VEC_W],
  [K_X, VEC_W],
  [P_X, VEC_W],
  [D_X - 24, DOT + 48],
  [S_X, S_W],
];

/** BertViz: key frames and connectors at opacity tanh(LINK · a). */
const LINK = 1.8;
/** Above this many (query, key) pairs the collapsed view draws only the focused token's lines. */
export const ALL_LINES_MAX = 256 * 256;

/** What the drawing depends on: the view's state but for the theme setting, which comes resolved. */
export interface NeuronDrawState {
  layer: number;
  head: number;
  filter: PairFilter;
  /** The query token (index in the data) whose computation is shown, or null. */
  selected: number | null;
  expanded: boolean;
  /** The key the panel breaks down; null: the key `selected` attends to most. */
  key: number | null;
}

/** What the view opens with (NeuronViewOptions adds the page's callbacks). */
export interface NeuronSceneOptions {
  /** Initially selected layer; default 0. */
  layer?: number;
  /** Initially selected head; default 0. */
  head?: number;
  /** Sentence-pair filter (only with a pair); default 'all'. */
  filter?: PairFilter;
  /** Default 'dark', as BertViz's neuron view. */
  theme?: ThemeName | 'auto';
  /** Show `Ġthe` as `the` etc. (default true). */
  prettifyTokens?: boolean;
  /** Initially selected (and pinned) query token, e.g. 3; default none. */
  selected?: number | null;
  /** Start expanded (needs q/k and a selected token); default false. */
  expanded?: boolean;
  /** The key token whose score the panel breaks down, e.g. 2; default null (the key i attends to most). */
  key?: number | null;
}

/** An index option checked against its count (`fallback` when not given). */
export function neuronIndex(name: string, v: number | null | undefined, n: number, fallback: number | null) {
  if (v === undefined || v === null) return fallback;
  if (!Number.isInteger(v) || v < 0 || v >= n)
    throw new RangeError(`neuron view: ${name} ${v} is out of range (0–${n - 1})`);
  return v;
}

/** The state a neuron view opens in, from its options. */
export function openingNeuronState(data: Attention, o: NeuronSceneOptions): NeuronDrawState {
  const [L, H, T, K] = data.attention.dims;
  return {
    layer: neuronIndex('layer', o.layer, L, 0)!,
    head: neuronIndex('head', o.head, H, 0)!,
    filter: data.sentenceBStart === null ? 'all' : (o.filter ?? 'all'),
    selected: neuronIndex('token', o.selected, T, null),
    expanded: o.expanded ?? false,
    key: neuronIndex('key', o.key, K, null),
  };
}

/**
 * The neuron view's derived data and drawing for `data`, reading the state and resolved theme from `v` (the
 * view updates them in place), with what they compute cached by what it depends on.
 */
export function neuronDrawing(data: Attention, prettify: boolean, v: { state: NeuronDrawState; theme: Theme }) {
  const [, H, T, K] = data.attention.dims;
  const hasQK = data.query !== undefined && data.key !== undefined;
  const keyTokens = data.keyTokens ?? data.tokens;
  const label = (i: number) => (prettify ? prettifyToken(data.tokens[i]) : data.tokens[i]);
  const keyLabel = (j: number) => (prettify ? prettifyToken(keyTokens[j]) : keyTokens[j]);
  // ---- derived data, cached by what they depend on ------------------------------------------------------
  let rows: number[] = [],
    cols: number[] = [];
  let indicesKey = '';
  const refreshIndices = () => {
    const key = v.state.filter;
    if (key === indicesKey) return;
    indicesKey = key;
    ({ rows, cols } = filterIndices(data, { filter: v.state.filter, hideSpecial: false }));
  };
  const cached = <V>(compute: () => V): ((key: string) => V) => {
    let last: { key: string; value: V } | null = null;
    return (key) => {
      if (last?.key !== key) last = { key, value: compute() };
      return last.value;
    };
  };
  const sizes = new Map<number, number>();
  /** The head size drawn in the current layer (headSize: the stored q/k may be zero-padded past it). */
  const size = () => {
    if (!sizes.has(v.state.layer)) sizes.set(v.state.layer, headSize(data, v.state.layer));
    return sizes.get(v.state.layer)!;
  };
  const scaleOf = cached(() => headScales(data, v.state.layer, v.state.head, size()));
  const scales = (): NeuronScales | null => (hasQK ? scaleOf(`${v.state.layer}/${v.state.head}`) : null);
  const shown = () => hasQK && v.state.selected !== null && rows.includes(v.state.selected);
  const columns = (): NeuronColumns | null => {
    refreshIndices();
    return shown() ? neuronColumns(data, v.state.layer, v.state.head, v.state.selected!, cols, size()) : null;
  };
  let windowCols: RowWindow = { first: 0, last: 0, y0: 0, y1: 0 };
  const windowColumnsOf = cached(() =>
    neuronColumns(
      data,
      v.state.layer,
      v.state.head,
      v.state.selected!,
      cols.slice(windowCols.first, windowCols.last),
      size(),
    ),
  );
  /** The columns of the keys in window `w` only (what is drawn; the check still covers the whole row). */
  const windowColumns = (w: RowWindow): NeuronColumns | null => {
    refreshIndices();
    windowCols = w;
    const key = `${v.state.layer}/${v.state.head}/${v.state.filter}/${v.state.selected}/${w.first}-${w.last}`;
    return shown() ? windowColumnsOf(key) : null;
  };
  /** The key the panel breaks down: v.state.key when shown and unmasked, else the shown key i attends to most. */
  const panelKey = (): number | null => {
    refreshIndices();
    if (!shown()) return null;
    const i = v.state.selected!;
    if (v.state.key !== null && cols.includes(v.state.key) && !isMasked(data, v.state.layer, i, v.state.key))
      return v.state.key;
    const row = attentionRow(data, v.state.layer, v.state.head, i);
    let best: number | null = null;
    for (const j of cols) if (!isMasked(data, v.state.layer, i, j) && (best === null || row[j] > row[best])) best = j;
    return best;
  };
  const rowContribOf = cached(() => rowContributions(data, v.state.layer, v.state.head, v.state.selected!, size()));
  let contribKey: number | null = null;
  const keyContribOf = cached(() =>
    contribKey === null
      ? null
      : keyContributions(data, v.state.layer, v.state.head, v.state.selected!, contribKey, size()),
  );
  const contributions = (): { key: KeyContributions | null; row: RowContributions } | null => {
    if (!shown()) return null;
    contribKey = panelKey();
    return {
      key: keyContribOf(`${v.state.layer}/${v.state.head}/${v.state.selected}/${contribKey}`),
      row: rowContribOf(`${v.state.layer}/${v.state.head}/${v.state.selected}`),
    };
  };
  const rotaryNote = () =>
    data.rotary
      ? 'q and k are after rotary position embedding (RoPE: ' +
        `${data.rotary === 'half' ? 'dims n and n + d/2' : 'dims 2n and 2n + 1'} rotate together).`
      : null;
  const panelTables = (): PanelTable[] => {
    const c = contributions();
    if (!c) return [];
    return contributionTables(
      c.key,
      c.row,
      { query: label(c.row.query), key: keyLabel },
      { rotary: rotaryNote(), formula: `Score: ${scoreFormula(data)}.` },
    );
  };
  /** Attention weight of display row r, column c in the current layer and head. */
  const weight = (r: number, c: number) =>
    data.attention.data[((v.state.layer * H + v.state.head) * T + rows[r]) * K + cols[c]];
  const expandedNow = () => v.state.expanded && hasQK;
  const bodyHeight = () => TOP + Math.max(rows.length, cols.length) * ROW + 4;
  const geometry = () => ({ top: TOP, row: ROW, count: Math.max(rows.length, cols.length), height: bodyHeight() });
  const everything = (): RowWindow => {
    const count = Math.max(rows.length, cols.length);
    return { first: 0, last: count, y0: 0, y1: bodyHeight() };
  };

  // ---- drawing: one scene for the canvas and the exports ------------------------------------------------
  const rowTop = (r: number, top: number) => top + TOP + r * ROW;
  const rowMid = (r: number, top: number) => rowTop(r, top) + ROW / 2;
  const cellTop = (r: number, top: number) => rowTop(r, top) + (ROW - CELL_H) / 2;
  const signColor = (x: number) => (x >= 0 ? v.theme.positive : v.theme.negative);
  const focusColors = () =>
    v.theme.name === 'dark' ? { bg: v.theme.positive, text: '#ffffff' } : { bg: v.theme.highlight, text: v.theme.text };

  /** A column of vectors at x for display rows `first`…, the raster cached by `key` when given. */
  const rasters = new Map<string, Pixels>();
  function vectorColumn(
    p: Painter,
    x: number,
    top: number,
    first: number,
    vectors: readonly (ArrayLike<number> | null)[],
    scale: number,
    key?: string,
  ): void {
    const column: VectorColumn = {
      x,
      width: VEC_W,
      y: rowTop(first, top),
      row: ROW,
      cell: CELL_H,
      size: size(),
      scale,
      colors: { positive: v.theme.positive, negative: v.theme.negative, frame: v.theme.border },
    };
    let img = key ? rasters.get(key) : undefined;
    if (!img) {
      const made = vectorRaster(vectors, column);
      if (key) {
        if (rasters.size > 16) rasters.clear();
        rasters.set(key, made);
      }
      img = made;
    }
    drawVectors(p, vectors, column, img);
  }

  /** The body's rows in window `w`: tokens (text only in exports, where there is no DOM), lines or columns. */
  function drawBody(p: Painter, top: number, w: RowWindow, text: boolean): void {
    refreshIndices();
    const r = v.state.selected === null ? -1 : rows.indexOf(v.state.selected);
    const focus = focusColors();
    if (r >= 0) p.rect(0, rowTop(r, top), TOKEN_W, ROW, focus.bg);
    if (expandedNow()) drawExpanded(p, top, w, r);
    else drawCollapsed(p, top, r);
    if (!text) return;
    const style = { color: v.theme.text, size: 15 };
    for (let n = w.first; n < Math.min(w.last, rows.length); n++)
      p.text(TOKEN_W - PAD, rowMid(n, top), label(rows[n]), {
        ...style,
        color: n === r ? focus.text : v.theme.text,
        anchor: 'end',
      });
    const rightX = (expandedNow() ? S_X : RIGHT_X) + PAD;
    for (let n = w.first; n < Math.min(w.last, cols.length); n++)
      p.text(rightX, rowMid(n, top), keyLabel(cols[n]), style);
    if (expandedNow())
      HEADINGS.forEach((h, k) =>
        p.text(HEADING_BOX[k][0] + HEADING_BOX[k][1] / 2, top + TOP / 2, h, {
          color: v.theme.text,
          size: 16,
          anchor: 'middle',
        }),
      );
  }

  /** Lines from every row (or the focused row r) to every key, clipped by the painter to what is shown. */
  function drawCollapsed(p: Painter, top: number, r: number): void {
    const R = rows.length,
      C = cols.length;
    if (r >= 0)
      for (let c = 0; c < C; c++) {
        const w = weight(r, c);
        if (w >= MIN_ALPHA) p.rect(RIGHT_X, rowTop(c, top), RIGHT_W, ROW, v.theme.positive, w);
      }
    if (r < 0 && R * C > ALL_LINES_MAX) return;
    const from = Math.max(r, 0),
      to = r >= 0 ? r + 1 : R;
    const lines = new LineBatch();
    for (let k = from; k < to; k++)
      for (let c = 0; c < C; c++) lines.add(LINE_X0, rowMid(k, top), LINE_X1, rowMid(c, top), weight(k, c));
    lines.draw(p, v.theme.positive, 2);
  }

  function drawExpanded(p: Painter, top: number, w: RowWindow, r: number): void {
    const s = scales()!;
    const d = size();
    const cs = windowColumns(w);
    const vector = (t: typeof data.query, i: number) => headVector(t!, v.state.layer, v.state.head, i).subarray(0, d);
    const shownRows = rows.slice(w.first, w.last),
      shownCols = cols.slice(w.first, w.last);
    // Query and key vectors: every row in the window, whatever the selection.
    const key = `${v.state.layer}/${v.state.head}/${v.state.filter}/${v.theme.name}/${w.first}-${w.last}`;
    vectorColumn(
      p,
      Q_X,
      top,
      w.first,
      shownRows.map((i) => vector(data.query, i)),
      s.vector,
      `q/${key}`,
    );
    vectorColumn(
      p,
      K_X,
      top,
      w.first,
      shownCols.map((j) => vector(data.key, j)),
      s.vector,
      `k/${key}`,
    );
    // Softmax: the data's weights as bars behind the key tokens.
    if (r >= 0)
      shownCols.forEach((_, n) => {
        const a = weight(r, w.first + n);
        if (a >= MIN_ALPHA) p.rect(S_X, rowTop(w.first + n, top), S_W, ROW, v.theme.positive, a);
      });
    if (!cs || r < 0) {
      p.text(P_X + VEC_W / 2, rowMid(0, top), 'No token selected', {
        color: v.theme.mutedText,
        size: 18,
        anchor: 'middle',
      });
      return;
    }
    frame(p, Q_X, cellTop(r, top), VEC_W, CELL_H, v.theme.positive, 2, 1);
    vectorColumn(p, P_X, top, w.first, cs.products, s.product);
    const elbow = (Q_X + VEC_W + K_X) / 2;
    for (let c = w.first; c < Math.min(w.last, cols.length); c++) {
      const y = cellTop(c, top),
        mid = rowMid(c, top);
      if (cs.masked[c - w.first]) {
        frame(p, P_X, y, VEC_W, CELL_H, v.theme.border, 1, 1);
        p.text(P_X + VEC_W / 2, mid, 'masked (j > i)', { color: v.theme.mutedText, size: 11, anchor: 'middle' });
        frame(p, D_X, y - 1, DOT, DOT, v.theme.border, 1, 1);
        continue;
      }
      const dot = cs.dots[c - w.first]!;
      const a = Math.tanh(Math.abs(dot) / s.dot);
      if (a >= MIN_ALPHA) p.rect(D_X, y - 1, DOT, DOT, signColor(dot), a);
      frame(p, D_X, y - 1, DOT, DOT, v.theme.border, 1, 1);
      // Key frame, elbow from q_i to k_j, and the k → q×k → q·k → softmax connectors, all at tanh(1.8 a).
      const link = Math.tanh(LINK * weight(r, c));
      if (link < MIN_ALPHA) continue;
      frame(p, K_X, y, VEC_W, CELL_H, v.theme.positive, 2, link);
      p.path(
        [Q_X + VEC_W + 1, rowMid(r, top), elbow, rowMid(r, top), elbow, mid, K_X - 1, mid],
        v.theme.positive,
        link,
        2,
      );
      p.lines(
        [K_X + VEC_W + 1, mid, P_X - 1, mid, P_X + VEC_W + 1, mid, D_X - 1, mid, D_X + DOT + 1, mid, S_X, mid],
        v.theme.positive,
        link,
        2,
      );
    }
    drawTopDimensions(p, top, r);
  }

  /**
   * The panel's top dimensions on the vectors: for the key broken down, a frame (text colour) around each top
   * cell in q_i, k_j and q_i ⊙ k_j; for the whole row, a ▲ above each top dimension of the q column.
   */
  function drawTopDimensions(p: Painter, top: number, r: number): void {
    const c = contributions();
    if (!c) return;
    const cell = VEC_W / size();
    const j = c.key ? cols.indexOf(c.key.key) : -1;
    if (c.key && j >= 0)
      for (const n of c.key.top)
        for (const [x, row] of [
          [Q_X, r],
          [K_X, j],
          [P_X, j],
        ] as const)
          frame(p, x + n * cell, cellTop(row, top), cell, CELL_H, v.theme.text, 1.5, 1);
    for (const n of c.row.top) {
      const x = Q_X + (n + 0.5) * cell;
      p.path(
        [x - 4, top + TOP - 2, x, top + TOP - 8, x + 4, top + TOP - 2, x - 4, top + TOP - 2],
        v.theme.text,
        1,
        1.5,
      );
    }
  }

  function scene(): Scene {
    refreshIndices();
    const header = hasQK ? 24 : 44;
    const tables = expandedNow() ? panelTables() : [];
    const panelX = EXPANDED_W + 24;
    const width = (expandedNow() ? EXPANDED_W : COLLAPSED_W) + 10 + (tables.length ? PANEL_W + 24 : 0);
    // Measure the panel by drawing it to a painter that only counts.
    const panelHeight = tables.length ? drawPanel(countingPainter, 0, 0, tables, v.theme) : 0;
    return {
      width: Math.max(width, hasQK ? 0 : 780),
      height: header + Math.max(bodyHeight(), TOP + panelHeight) + 10,
      draw: (p) => {
        p.text(
          0,
          10,
          `Layer ${v.state.layer} · Head ${v.state.head}` +
            (v.state.filter !== 'all' ? ` · ${PAIR_FILTERS[v.state.filter]}` : ''),
          { color: v.theme.text, size: 13, weight: 'bold' },
        );
        if (!hasQK) p.text(0, 30, NO_QK_NOTE, { color: v.theme.mutedText, size: 12 });
        drawBody(p, header, everything(), true);
        if (tables.length) drawPanel(p, panelX, header + TOP, tables, v.theme);
      },
    };
  }

  return {
    hasQK,
    label,
    keyLabel,
    indices: () => {
      refreshIndices();
      return { rows, cols, key: indicesKey };
    },
    size,
    scales,
    columns,
    windowColumns,
    panelKey,
    contributions,
    rotaryNote,
    panelTables,
    expandedNow,
    bodyHeight,
    geometry,
    everything,
    focusColors,
    drawBody,
    scene,
  };
}

/** The neuron view as it opens with options `o` (every row, text included): Node's image export. */
export function neuronScene(data: Attention, o: NeuronSceneOptions): Scene {
  const state = openingNeuronState(data, o);
  const hasQK = data.query !== undefined && data.key !== undefined;
  if (state.selected === null || !hasQK) state.expanded = false;
  return neuronDrawing(data, o.prettifyTokens !== false, { state, theme: resolveTheme(o.theme ?? 'dark') }).scene();
}

/** A painter that draws nothing (measuring the panel's height). */
const countingPainter: Painter = {
  rect: () => undefined,
  lines: () => undefined,
  path: () => undefined,
  text: () => undefined,
  image: () => undefined,
  raster: () => undefined,
};
