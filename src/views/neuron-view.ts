/**
 * Neuron view (Vig 2019 §3.3; BertViz neuron_view): how one query token's attention comes about.
 *
 * Collapsed, it is a one-head head view: left tokens, lines with opacity = weight, right tokens. Hovering a
 * left token keeps its lines and puts a bar (opacity = weight) behind each right token; click pins the token.
 * The (+) button on the hovered or pinned token expands to five columns for that query token i:
 *
 *   Query q            q_r for every query row r (the selected row framed)
 *   Key k              k_j for every key j (framed with opacity tanh(1.8 · a_ij), joined to q_i by elbows)
 *   q × k (elementwise) q_i ⊙ k_j
 *   q · k              q_i · k_j / √d, one square per key
 *   Softmax            the attention weights a_ij from the data, as bars behind the key tokens
 *
 * Causal models (`data.causal`) show products and dots only for j ≤ i; masked rows say so. BertViz gets q and
 * k from a vendored fork of 2019 transformers for three model types; here they come with the Attention data,
 * so every family the engine runs works. A file without q/k gets the collapsed view and a note.
 *
 * Colour: theme.positive (blue) for v ≥ 0, theme.negative (orange) for v < 0, opacity tanh(|v| / s). BertViz
 * fixes s = 4 for every column. Here s = 3 × RMS of that column's values over the shown layer and head (q and
 * k share one s; products and dots over all unmasked pairs): for the golden models (q, k RMS ≈ 1.4) that is
 * s ≈ 4.3, BertViz's look, and models with much larger or smaller activations neither saturate nor fade out.
 * A value of one RMS gets opacity 0.32, two 0.58, three 0.76. The scales are printed under the controls.
 *
 * Consistency check: softmax over the unmasked keys of the displayed q_i·k_j/√d must reproduce the data's
 * attention row; the view computes it, prints the largest difference and warns when it exceeds what the
 * storage precision explains (q/k as float16 in pages, attention in 12 bits) — e.g. keys taken before RoPE.
 * Models that scale otherwise or add a position bias say so in the data (`scoreScale`, `positionBias`: T5
 * has softmax(q·k + bias)); the q · k column then shows q_i·k_j·scale and the check adds the bias.
 *
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts). For cross-attention
 * queries are decoder tokens (left) and keys encoder tokens (right), with no causal mask; only the decoder's
 * self-attention is causal.
 *
 * Everything is drawn on a canvas through painter.ts, so the SVG and PNG exports draw the same scene. The
 * vector cells (d × T rows × 3 columns: thousands) go as one raster per column, one pixel per value scaled
 * without smoothing (as Plot's raster), which keeps a hover redraw at a few milliseconds for d = 64 and
 * 128 tokens. Tokens and headings are DOM text, set through textContent only.
 *
 * Mounted through mount.ts, the root element carries the handle as `attnvizView` (no globals):
 *   document.querySelector('.attnviz-neuron-view').attnvizView.columns()
 * The root also has data-layer, data-head, data-filter, data-expanded, data-selected ('' when none).
 */
import { rgb } from 'd3-color';
import type { Attention, AttentionPart } from '../core/attention.js';
import {
  headScales,
  headVector,
  neuronColumns,
  scoreFormula,
  type NeuronColumns,
  type NeuronScales,
} from '../analysis/neuron.js';
import { button, download, el, select, sizeCanvas } from './dom.js';
import { filterIndices, layerMatrix, PAIR_FILTERS, type LayerMatrix, type PairFilter } from './matrix.js';
import type { ViewHandle } from './handle.js';
import { carryLayer, partsView, type PartOptions } from './parts.js';
import { CanvasPainter, sceneSvg, scenePng, type Painter } from './painter.js';
import { resolveTheme, type Theme, type ThemeName } from './palette.js';
import { css } from './styles.js';
import { prettifyToken } from './tokens.js';

export interface NeuronViewOptions extends PartOptions {
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
}

export interface NeuronViewState {
  layer: number;
  head: number;
  filter: PairFilter;
  theme: ThemeName | 'auto';
  /** The query token (index in the data) whose computation is shown, or null. */
  selected: number | null;
  /** True when a click locked `selected`; hovering then changes nothing. */
  pinned: boolean;
  expanded: boolean;
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export type { NeuronColumns, NeuronScales };

export interface NeuronView extends ViewHandle<NeuronViewState> {
  /** Column values for the selected token (computed whether or not expanded); null without selection or q/k. */
  columns(): NeuronColumns | null;
  /** Null without q/k. */
  scales(): NeuronScales | null;
}

export const NO_QK_NOTE =
  'This file has no queries and keys (q/k): the neuron view needs them. Extract with attnviz to include them.';
export const HEADINGS = ['Query q', 'Key k', 'q × k (elementwise)', 'q · k', 'Softmax'] as const;

// ---- geometry (px), after BertViz: rows of 26 with 20-px vector cells under a 42-px heading band --------
export const ROW = 26;
const CELL_H = 20;
const TOP = 42;
const TOKEN_W = 120;
const PAD = 6;
/** Collapsed: lines span 170 px from the left tokens to the right tokens. */
const LINE_X0 = TOKEN_W + 4,
  LINE_X1 = 291,
  RIGHT_X = 295,
  RIGHT_W = 120;
/** Expanded: left edges of the columns (integers, so 1-px frames at x − 0.5 are crisp). */
const Q_X = 145,
  K_X = 383,
  P_X = 608,
  D_X = 833,
  S_X = 884;
const VEC_W = 200,
  DOT = 22,
  S_W = 96;
const COLLAPSED_W = RIGHT_X + RIGHT_W,
  EXPANDED_W = S_X + S_W;
/** The geometry, for tests that read pixels. */
export const NEURON_LAYOUT = { ROW, CELL_H, TOP, TOKEN_W, Q_X, K_X, P_X, D_X, S_X, VEC_W, DOT, S_W } as const;
/** Heading boxes (x, width), in HEADINGS order. */
const HEADING_BOX: [number, number][] = [
  [Q_X, VEC_W],
  [K_X, VEC_W],
  [P_X, VEC_W],
  [D_X - 24, DOT + 48],
  [S_X, S_W],
];

/** BertViz: key frames and connectors at opacity tanh(LINK · a). */
const LINK = 1.8;
/** Below this opacity nothing shows at 8-bit colour depth. */
const MIN_ALPHA = 1 / 255;
/** Collapsed lines are grouped into this many opacity levels (one stroke per level, not per line). */
const ALPHA_LEVELS = 64;

export function neuronView(container: HTMLElement, data: Attention, options: NeuronViewOptions = {}): NeuronView {
  if (data.encoderDecoder) {
    return partsView<NeuronViewState, NeuronView, NeuronViewOptions>(
      container,
      data,
      options,
      neuronView,
      (s, from, to) => {
        // Decoder and cross-attention share their query tokens (the decoder's): the selected token stays.
        const same = from.tokens === to.tokens;
        return {
          layer: carryLayer(s.layer, undefined, to).layer,
          head: s.head,
          theme: s.theme,
          selected: same ? s.selected : null,
          expanded: same && s.selected !== null && s.expanded,
        };
      },
    );
  }
  const [L, H] = data.attention.dims;
  const hasQK = data.query !== undefined && data.key !== undefined;
  const keyTokens = data.keyTokens ?? data.tokens;
  const label = (i: number) => (options.prettifyTokens === false ? data.tokens[i] : prettifyToken(data.tokens[i]));
  const keyLabel = (j: number) => (options.prettifyTokens === false ? keyTokens[j] : prettifyToken(keyTokens[j]));
  const index = (name: string, v: number | undefined, n: number, fallback: number) => {
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || v < 0 || v >= n)
      throw new RangeError(`neuron view: ${name} ${v} is out of range (0–${n - 1})`);
    return v;
  };
  let state: NeuronViewState = {
    layer: index('layer', options.layer, L, 0),
    head: index('head', options.head, H, 0),
    filter: data.sentenceBStart === null ? 'all' : (options.filter ?? 'all'),
    theme: options.theme ?? 'dark',
    selected: options.selected ?? null,
    pinned: options.selected != null,
    expanded: options.expanded ?? false,
  };
  let theme: Theme = resolveTheme(state.theme, window);

  // ---- static DOM: root, controls, notes, body (canvas, headings, token columns) -----------------------
  const root = el('div', { class: 'attnviz attnviz-neuron-view' });
  const style = el('style');
  const controls = el('div', { class: 'av-controls' });
  // The notes keep their lines when empty (visibility, not display), so showing them never moves the tokens.
  const scaleNote = el('div', { class: 'av-note av-scale' });
  const checkNote = el('div', { class: 'av-note av-check' });
  const show = (e: HTMLElement, on: boolean) => {
    e.style.visibility = on ? 'visible' : 'hidden';
  };
  const body = el('div', { class: 'av-body' });
  const canvas = el('canvas');
  body.append(canvas);
  const notes = hasQK
    ? [scaleNote, checkNote]
    : [el('div', { class: 'av-note av-no-qk', role: 'note', text: NO_QK_NOTE })];
  root.append(style, controls, ...notes, body);
  container.append(root);

  const range = (n: number) => Array.from({ length: n }, (_, i) => ({ value: i, label: String(i) }));
  const layerSelect = select('Layer:', range(L), state.layer, (layer) => update({ layer }));
  const headSelect = select('Head:', range(H), state.head, (head) => update({ head }));
  controls.append(layerSelect, headSelect);
  let filterSelect: HTMLLabelElement | null = null;
  if (data.sentenceBStart !== null) {
    filterSelect = select(
      'Attention:',
      (Object.keys(PAIR_FILTERS) as PairFilter[]).map((f) => ({ value: f, label: PAIR_FILTERS[f] })),
      state.filter,
      (filter) => update({ filter }),
    );
    controls.append(filterSelect);
  }
  const themes: { value: ThemeName | 'auto'; label: string }[] = [
    { value: 'dark', label: 'Dark' },
    { value: 'light', label: 'Light' },
    { value: 'auto', label: 'Auto' },
  ];
  const themeSelect = select('Theme:', themes, state.theme, (t) => update({ theme: t }));
  controls.append(
    themeSelect,
    button('PNG', async () => download(await view.toPNG(), 'attention-neuron-view.png')),
    button('SVG', () => download(new Blob([view.toSVG()], { type: 'image/svg+xml' }), 'attention-neuron-view.svg')),
  );
  const syncSelect = (l: HTMLLabelElement | null, v: string | number) => {
    const s = l?.querySelector('select');
    if (s) s.value = String(v);
  };

  const headings = HEADINGS.map((text, k) => {
    const [x, w] = HEADING_BOX[k];
    const h = el('div', { class: 'av-heading', text, hidden: true });
    Object.assign(h.style, { left: `${x}px`, width: `${w}px` });
    body.append(h);
    return h;
  });

  /** (+) / (−): one button, moved into the focused token so reaching it does not leave the token. */
  const toggle = el('button', { type: 'button', class: 'av-toggle' });
  toggle.addEventListener('click', (e) => {
    e.stopPropagation();
    update({ expanded: !state.expanded });
  });

  // 'auto' follows the page's colour scheme as it changes.
  const media = window.matchMedia?.('(prefers-color-scheme: dark)');
  const onScheme = () => {
    if (state.theme === 'auto') render();
  };
  media?.addEventListener?.('change', onScheme);

  // ---- derived data, cached by what they depend on ------------------------------------------------------
  let matrix!: LayerMatrix;
  let matrixKey = '';
  const refreshMatrix = () => {
    const key = `${state.layer}/${state.filter}`;
    if (key !== matrixKey) {
      matrixKey = key;
      matrix = layerMatrix(data, state.layer, { filter: state.filter, hideSpecial: false });
    }
  };
  let scaleCache: { key: string; value: NeuronScales } | null = null;
  const scales = (): NeuronScales | null => {
    if (!hasQK) return null;
    const key = `${state.layer}/${state.head}`;
    if (scaleCache?.key !== key) scaleCache = { key, value: headScales(data, state.layer, state.head) };
    return scaleCache.value;
  };
  let colCache: { key: string; value: NeuronColumns | null } | null = null;
  const columns = (): NeuronColumns | null => {
    refreshMatrix();
    const key = `${state.layer}/${state.head}/${state.filter}/${state.selected}`;
    if (colCache?.key !== key) {
      colCache = {
        key,
        value:
          hasQK && state.selected !== null && matrix.rows.includes(state.selected)
            ? neuronColumns(data, state.layer, state.head, state.selected, matrix.cols)
            : null,
      };
    }
    return colCache.value;
  };
  /** Attention weight for matrix row r, column c of the current head. */
  const weight = (r: number, c: number) => matrix.data[(state.head * matrix.rows.length + r) * matrix.cols.length + c];

  // ---- drawing: one scene for the canvas and the exports ------------------------------------------------
  const rowTop = (r: number, top: number) => top + TOP + r * ROW;
  const rowMid = (r: number, top: number) => rowTop(r, top) + ROW / 2;
  const cellTop = (r: number, top: number) => rowTop(r, top) + (ROW - CELL_H) / 2;
  const signColor = (v: number) => (v >= 0 ? theme.positive : theme.negative);
  const focusColors = () =>
    theme.name === 'dark' ? { bg: theme.positive, text: '#ffffff' } : { bg: theme.highlight, text: theme.text };

  /**
   * A column of vectors (one per row, null = empty row) as one RGBA raster: d pixels wide, ROW pixels per row
   * with the cells CELL_H tall in the middle. Drawn scaled to VEC_W without smoothing, it is the same picture
   * as d × rows rectangles, at the cost of one image (a hover redraws in milliseconds, the SVG stays small).
   */
  function vectorRaster(vectors: readonly (ArrayLike<number> | null)[], d: number, s: number): ImageData {
    const img = new ImageData(d, Math.max(1, vectors.length * ROW));
    const pos = rgbOf(theme.positive),
      neg = rgbOf(theme.negative);
    const y0 = (ROW - CELL_H) / 2;
    vectors.forEach((v, r) => {
      if (!v) return;
      for (let k = 0; k < d; k++) {
        const [red, green, blue] = v[k] >= 0 ? pos : neg;
        const alpha = Math.round(Math.tanh(Math.abs(v[k]) / s) * 255);
        for (let y = 0, o = ((r * ROW + y0) * d + k) * 4; y < CELL_H; y++, o += d * 4) {
          img.data[o] = red;
          img.data[o + 1] = green;
          img.data[o + 2] = blue;
          img.data[o + 3] = alpha;
        }
      }
    });
    return img;
  }

  /** A column of vectors at x: the raster (cached by `key` when given), then a 1-px frame around each row's cells. */
  const rasters = new Map<string, ImageData>();
  function drawVectors(
    p: Painter,
    x: number,
    top: number,
    vectors: readonly (ArrayLike<number> | null)[],
    s: number,
    key?: string,
  ): void {
    if (vectors.length === 0) return;
    const make = () => vectorRaster(vectors, vectors.find((v) => v)?.length ?? 1, s);
    let img = key ? rasters.get(key) : undefined;
    if (!img) {
      img = make();
      if (key) {
        if (rasters.size > 16) rasters.clear();
        rasters.set(key, img);
      }
    }
    p.image(x, rowTop(0, top), VEC_W, vectors.length * ROW, img);
    // All frames as one path: horizontal edges run half a line width past the corners so these are filled.
    const segments: number[] = [];
    vectors.forEach((v, r) => {
      if (!v) return;
      const y = cellTop(r, top),
        x0 = x - 0.5,
        x1 = x + VEC_W + 0.5,
        y0 = y - 0.5,
        y1 = y + CELL_H + 0.5;
      segments.push(x0 - 0.5, y0, x1 + 0.5, y0, x0 - 0.5, y1, x1 + 0.5, y1, x0, y0, x0, y1, x1, y0, x1, y1);
    });
    p.lines(segments, theme.border, 1, 1);
  }

  function frame(
    p: Painter,
    x: number,
    y: number,
    w: number,
    h: number,
    color: string,
    width: number,
    opacity: number,
  ): void {
    const o = width / 2;
    p.rect(x - o, y - o, w + width, h + width, 'none', opacity, { color, width });
  }

  /** The body: tokens (text only in exports, where there is no DOM), lines or the five columns. */
  function drawBody(p: Painter, top: number, text: boolean): void {
    refreshMatrix();
    const { rows, cols } = matrix;
    const r = state.selected === null ? -1 : rows.indexOf(state.selected);
    const focus = focusColors();
    if (r >= 0) p.rect(0, rowTop(r, top), TOKEN_W, ROW, focus.bg);
    if (state.expanded && hasQK) drawExpanded(p, top, r);
    else drawCollapsed(p, top, r);
    if (!text) return;
    const style = { color: theme.text, size: 15 };
    rows.forEach((i, k) =>
      p.text(TOKEN_W - PAD, rowMid(k, top), label(i), {
        ...style,
        color: k === r ? focus.text : theme.text,
        anchor: 'end',
      }),
    );
    const rightX = (state.expanded && hasQK ? S_X : RIGHT_X) + PAD;
    cols.forEach((j, c) => p.text(rightX, rowMid(c, top), keyLabel(j), style));
    if (state.expanded && hasQK) {
      HEADINGS.forEach((h, k) =>
        p.text(HEADING_BOX[k][0] + HEADING_BOX[k][1] / 2, top + TOP / 2, h, {
          color: theme.text,
          size: 16,
          anchor: 'middle',
        }),
      );
    }
  }

  function drawCollapsed(p: Painter, top: number, r: number): void {
    const R = matrix.rows.length,
      C = matrix.cols.length;
    if (r >= 0)
      for (let c = 0; c < C; c++) {
        const w = weight(r, c);
        if (w >= MIN_ALPHA) p.rect(RIGHT_X, rowTop(c, top), RIGHT_W, ROW, theme.positive, w);
      }
    // All rows' lines, or only the focused row's.
    const from = Math.max(r, 0),
      to = r >= 0 ? r + 1 : R;
    const buckets: number[][] = Array.from({ length: ALPHA_LEVELS + 1 }, () => []);
    for (let k = from; k < to; k++) {
      for (let c = 0; c < C; c++) {
        const w = weight(k, c);
        if (w >= MIN_ALPHA)
          buckets[Math.round(w * ALPHA_LEVELS)].push(LINE_X0, rowMid(k, top), LINE_X1, rowMid(c, top));
      }
    }
    buckets.forEach((segments, level) => p.lines(segments, theme.positive, Math.max(level, 0.5) / ALPHA_LEVELS, 2));
  }

  function drawExpanded(p: Painter, top: number, r: number): void {
    const { rows, cols } = matrix;
    const s = scales()!;
    const q = data.query!,
      k = data.key!;
    const cs = columns();
    // Query and key vectors: every row, whatever the selection.
    const key = `${state.layer}/${state.head}/${state.filter}/${theme.name}`;
    drawVectors(
      p,
      Q_X,
      top,
      rows.map((i) => headVector(q, state.layer, state.head, i)),
      s.vector,
      `q/${key}`,
    );
    drawVectors(
      p,
      K_X,
      top,
      cols.map((j) => headVector(k, state.layer, state.head, j)),
      s.vector,
      `k/${key}`,
    );
    // Softmax: the data's weights as bars behind the key tokens.
    if (r >= 0)
      cols.forEach((_, c) => {
        const w = weight(r, c);
        if (w >= MIN_ALPHA) p.rect(S_X, rowTop(c, top), S_W, ROW, theme.positive, w);
      });
    if (!cs || r < 0) {
      p.text(P_X + VEC_W / 2, rowMid(0, top), 'No token selected', {
        color: theme.mutedText,
        size: 18,
        anchor: 'middle',
      });
      return;
    }
    frame(p, Q_X, cellTop(r, top), VEC_W, CELL_H, theme.positive, 2, 1);
    drawVectors(p, P_X, top, cs.products, s.product);
    const elbow = (Q_X + VEC_W + K_X) / 2;
    cols.forEach((_, c) => {
      const y = cellTop(c, top),
        mid = rowMid(c, top);
      if (cs.masked[c]) {
        frame(p, P_X, y, VEC_W, CELL_H, theme.border, 1, 1);
        p.text(P_X + VEC_W / 2, mid, 'masked (j > i)', { color: theme.mutedText, size: 11, anchor: 'middle' });
        frame(p, D_X, y - 1, DOT, DOT, theme.border, 1, 1);
        return;
      }
      const dot = cs.dots[c]!;
      const a = Math.tanh(Math.abs(dot) / s.dot);
      if (a >= MIN_ALPHA) p.rect(D_X, y - 1, DOT, DOT, signColor(dot), a);
      frame(p, D_X, y - 1, DOT, DOT, theme.border, 1, 1);
      // Key frame, elbow from q_i to k_j, and the k → q×k → q·k → softmax connectors, all at tanh(1.8 a).
      const link = Math.tanh(LINK * weight(r, c));
      if (link < MIN_ALPHA) return;
      frame(p, K_X, y, VEC_W, CELL_H, theme.positive, 2, link);
      p.path(
        [Q_X + VEC_W + 1, rowMid(r, top), elbow, rowMid(r, top), elbow, mid, K_X - 1, mid],
        theme.positive,
        link,
        2,
      );
      p.lines(
        [K_X + VEC_W + 1, mid, P_X - 1, mid, P_X + VEC_W + 1, mid, D_X - 1, mid, D_X + DOT + 1, mid, S_X, mid],
        theme.positive,
        link,
        2,
      );
    });
  }

  // ---- DOM tokens -------------------------------------------------------------------------------------
  let tokenEls: { left: HTMLElement[]; right: HTMLElement[] } = { left: [], right: [] };
  let tokensKey = '';
  function renderTokens(): void {
    const key = `${matrix.rows.join(',')}/${matrix.cols.join(',')}`;
    if (key !== tokensKey) {
      tokensKey = key;
      body.querySelectorAll('.av-token').forEach((n) => n.remove());
      const make = (side: 'left' | 'right', i: number, n: number) => {
        const t = el(
          'div',
          {
            class: `av-token av-${side}`,
            'data-side': side,
            'data-index': i,
            title: side === 'left' ? data.tokens[i] : keyTokens[i],
          },
          el('span', { class: 'av-label', text: side === 'left' ? label(i) : keyLabel(i) }),
        );
        t.style.top = `${TOP + n * ROW}px`;
        if (side === 'left') {
          Object.assign(t.style, { left: '0', width: `${TOKEN_W}px`, textAlign: 'right' });
          t.addEventListener('mouseenter', () => {
            if (!state.pinned) update({ selected: i });
          });
          t.addEventListener('mouseleave', () => {
            if (!state.pinned && !state.expanded) update({ selected: null });
          });
          t.addEventListener('click', () =>
            update(state.pinned && state.selected === i ? { pinned: false } : { selected: i, pinned: true }),
          );
        }
        body.append(t);
        return t;
      };
      tokenEls = {
        left: matrix.rows.map((i, n) => make('left', i, n)),
        right: matrix.cols.map((j, c) => make('right', j, c)),
      };
    }
    const expanded = state.expanded && hasQK;
    for (const t of tokenEls.right)
      Object.assign(t.style, { left: `${expanded ? S_X : RIGHT_X}px`, width: `${expanded ? S_W : RIGHT_W}px` });
    let focused: HTMLElement | null = null;
    for (const t of tokenEls.left) {
      const on = Number(t.dataset.index) === state.selected;
      t.classList.toggle('av-focus', on);
      t.classList.toggle('av-pinned', on && state.pinned);
      if (on) focused = t;
    }
    if (focused && hasQK) {
      toggle.dataset.action = expanded ? 'collapse' : 'expand';
      toggle.setAttribute('aria-label', expanded ? 'collapse' : 'expand');
      toggle.title = expanded ? 'Collapse' : 'Show q, k, q × k, q · k and softmax';
      if (toggle.parentElement !== focused) focused.append(toggle);
    } else toggle.remove();
  }

  // ---- render -----------------------------------------------------------------------------------------
  function render(): void {
    theme = resolveTheme(state.theme, window);
    const cssText = css(theme) + neuronCss(theme, focusColors());
    if (style.textContent !== cssText) style.textContent = cssText; // unchanged CSS would still restyle the page
    refreshMatrix();
    const expanded = state.expanded && hasQK;
    Object.assign(root.dataset, {
      theme: theme.name,
      layer: String(state.layer),
      head: String(state.head),
      filter: state.filter,
      expanded: String(expanded),
      selected: state.selected === null ? '' : String(state.selected),
      pinned: String(state.pinned),
    });
    syncSelect(layerSelect, state.layer);
    syncSelect(headSelect, state.head);
    syncSelect(filterSelect, state.filter);
    syncSelect(themeSelect, state.theme);
    const width = expanded ? EXPANDED_W : COLLAPSED_W;
    const height = TOP + Math.max(matrix.rows.length, matrix.cols.length) * ROW + 4;
    body.style.height = `${height}px`;
    const ctx = canvasContext(width, height);
    drawBody(new CanvasPainter(ctx), 0, false);
    headings.forEach((h) => {
      h.hidden = !expanded;
    });
    renderTokens();
    renderNotes(expanded);
  }

  /** The canvas context, resized only when the size changes (resizing reallocates), else cleared. */
  let canvasKey = '';
  function canvasContext(width: number, height: number): CanvasRenderingContext2D {
    const key = `${width}×${height}@${window.devicePixelRatio || 1}`;
    if (key !== canvasKey) {
      canvasKey = key;
      return sizeCanvas(canvas, width, height);
    }
    const ctx = canvas.getContext('2d')!;
    const transform = ctx.getTransform();
    ctx.resetTransform();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(transform);
    return ctx;
  }

  function renderNotes(expanded: boolean): void {
    const s = scales();
    show(scaleNote, expanded && s !== null);
    if (s)
      scaleNote.textContent = `Colour: blue ≥ 0, orange < 0, opacity tanh(|v| / s) with s = 3 × RMS in this head: ${s.vector.toFixed(2)} (q, k), ${s.product.toFixed(2)} (q × k), ${s.dot.toFixed(2)} (q · k)`;
    const cs = columns();
    show(checkNote, cs !== null);
    if (!cs) return;
    const ok = cs.maxDiff <= cs.tolerance;
    checkNote.classList.toggle('av-warn', !ok);
    checkNote.dataset.ok = String(ok);
    const formula = scoreFormula(data);
    checkNote.textContent = ok
      ? `✓ ${formula} reproduces the attention row of “${label(cs.query)}” (max |Δ| ${cs.maxDiff.toExponential(1)})`
      : `⚠ ${formula} differs from the attention row of “${label(cs.query)}” by up to ${cs.maxDiff.toFixed(4)}: these q/k may not be the vectors that produced this attention (e.g. keys before RoPE, a missing bias or causal mask).`;
    checkNote.title = checkNote.textContent;
  }

  // ---- export: the view as shown (header line, columns and tokens as text) --------------------------------
  function scene(): { width: number; height: number; draw: (p: Painter) => void } {
    refreshMatrix();
    const header = hasQK ? 24 : 44;
    const width = (state.expanded && hasQK ? EXPANDED_W : COLLAPSED_W) + 10;
    return {
      width: Math.max(width, hasQK ? 0 : 780),
      height: header + TOP + Math.max(matrix.rows.length, matrix.cols.length) * ROW + 10,
      draw: (p) => {
        p.text(
          0,
          10,
          `Layer ${state.layer} · Head ${state.head}${state.filter !== 'all' ? ` · ${PAIR_FILTERS[state.filter]}` : ''}`,
          { color: theme.text, size: 13, weight: 'bold' },
        );
        if (!hasQK) p.text(0, 30, NO_QK_NOTE, { color: theme.mutedText, size: 12 });
        drawBody(p, header, true);
      },
    };
  }

  function update(patch: Partial<NeuronViewState>): void {
    const next = { ...state, ...patch };
    next.layer = index('layer', next.layer, L, 0);
    next.head = index('head', next.head, H, 0);
    if (data.sentenceBStart === null) next.filter = 'all';
    const { rows } = filterIndices(
      data.tokens,
      data.sentenceBStart,
      { filter: next.filter, hideSpecial: false },
      data.keyTokens,
    );
    if (next.selected !== null && !rows.includes(next.selected)) next.selected = null;
    if (next.selected === null) next.pinned = false;
    if (!hasQK) next.expanded = false;
    state = next;
    render();
  }

  const view: NeuronView = {
    element: root,
    state: () => state,
    update,
    columns,
    scales,
    toSVG: () => {
      const s = scene();
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene();
      return scenePng(s.width, s.height, theme.background, s.draw);
    },
    destroy: () => {
      media?.removeEventListener?.('change', onScheme);
      root.remove();
    },
  };
  update({});
  return view;
}

function rgbOf(color: string): [number, number, number] {
  const c = rgb(color);
  return [c.r, c.g, c.b];
}

// ---- styles -------------------------------------------------------------------------------------------

/** The neuron view's additions to styles.ts: 26-px rows, BertViz's focus colours, the (+)/(−) button. */
function neuronCss(t: Theme, focus: { bg: string; text: string }): string {
  return `
.attnviz.attnviz-neuron-view .av-body{overflow-x:auto;overflow-y:hidden}
.attnviz.attnviz-neuron-view .av-heading{position:absolute;top:0;height:${TOP}px;line-height:${TOP}px;font-size:16px;text-align:center;white-space:nowrap;pointer-events:none}
.attnviz.attnviz-neuron-view .av-token{height:${ROW}px;line-height:${ROW}px;padding:0 ${PAD}px;background:transparent}
.attnviz.attnviz-neuron-view .av-token.av-right{cursor:default}
.attnviz.attnviz-neuron-view .av-token.av-focus{background:transparent;color:${focus.text}}
.attnviz.attnviz-neuron-view .av-toggle{position:absolute;left:4px;top:${(ROW - 16) / 2}px;width:16px;height:16px;border:0;border-radius:50%;padding:0;margin:0;cursor:pointer;background:${focus.text};color:${focus.bg};font:bold 14px/16px sans-serif;text-align:center}
.attnviz.attnviz-neuron-view .av-toggle[data-action=expand]::before{content:'+'}
.attnviz.attnviz-neuron-view .av-toggle[data-action=collapse]::before{content:'\\2212'}
.attnviz.attnviz-neuron-view .av-scale,.attnviz.attnviz-neuron-view .av-check{min-height:1.3em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.attnviz.attnviz-neuron-view .av-check.av-warn{color:${t.negative}}
`;
}
