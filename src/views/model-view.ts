/**
 * Model view (Vig 2019 §3.2; BertViz model_view): every layer × head as a thumbnail, rows = layers, columns =
 * heads. Clicking a thumbnail opens a detail panel for that head (tokens on both sides, lines or a heatmap);
 * clicking it again closes the panel, clicking another moves it.
 *
 * BertViz draws one SVG <line> per weight, L·H·T² elements (38 s at 128 tokens). Here the whole grid is ONE
 * canvas (measured at 512 tokens × 144 thumbnails: ~80 ms to the frame, against ~200–290 ms for one canvas
 * per thumbnail). Up to `heatmapAbove` tokens a thumbnail holds lines (hairlines with a 2.2 px line's ink, see
 * LINE_INK), skipped below 1/255 opacity and stroked in batches of quantised opacity; beyond, it is an image
 * with one pixel per cell (CircuitsVis AttentionImage) scaled without smoothing, max-pooled when there are
 * more cells than device pixels, so one strong weight stays visible. Axis labels, thumbnail hit targets, the panel and its tokens are DOM; tokens go
 * in as text (textContent), never markup. All state lives in the returned object.
 *
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts): the grid then has the
 * shown part's layers, and cross-attention panels put decoder tokens left and encoder tokens right.
 *
 * Root data attributes, for tests and embedding pages: data-mode ("lines" | "heatmap"), data-thumbnails
 * (count), data-selected ("L,H" or ""), data-drawn (lines or cells drawn in the grid). Each thumbnail has a
 * transparent `<button class="av-thumb" data-layer data-head>` over it; the panel is `.av-panel`.
 */
import { rgb } from 'd3-color';
import type { Attention, AttentionPart } from '../core/attention.js';
import { check } from '../core/errors.js';
import { button, checkbox, download, el, select, sizeCanvas } from './dom.js';
import type { ViewHandle } from './handle.js';
import type { Side, TokenRef } from './head-view.js';
import { filterIndices, PAIR_FILTERS, type PairFilter } from './matrix.js';
import { carryLayer, partsView, type PartOptions } from './parts.js';
import { CanvasPainter, sceneSvg, scenePng, type Painter } from './painter.js';
import { categoricalColors, resolveTheme, type Theme, type ThemeName } from './palette.js';
import { css } from './styles.js';
import { prettifyToken } from './tokens.js';

export type ModelViewMode = 'lines' | 'heatmap';

/** A thumbnail: indices into the model's layers and heads. */
export interface HeadRef {
  layer: number;
  head: number;
}

export interface ModelViewOptions extends PartOptions {
  /** Layers shown as grid rows, in this order; labels keep the model's indices. Default all. Example `[0, 6, 11]`. */
  includeLayers?: number[];
  /** Heads shown as grid columns, likewise. Default all. */
  includeHeads?: number[];
  /** Default 'dark', as BertViz's model view; 'auto' follows prefers-color-scheme. */
  theme?: ThemeName | 'auto';
  /** Show `Ġthe` as `the` etc. (default true). */
  prettifyTokens?: boolean;
  /** Sentence-pair filter (only with a sentence pair). Default 'all'. */
  filter?: PairFilter;
  /** Hide special tokens and renormalise rows (default false). */
  hideSpecial?: boolean;
  /** Thumbnails as lines or heatmaps. Default: lines up to `heatmapAbove` tokens, heatmap beyond. */
  mode?: ModelViewMode;
  /** Default 48. */
  heatmapAbove?: number;
  /** Thumbnail whose panel is open at start. Default none. */
  selected?: HeadRef | null;
}

export interface ModelViewState {
  selected: HeadRef | null;
  filter: PairFilter;
  hideSpecial: boolean;
  mode: ModelViewMode;
  /** Panel token under the mouse (a preview) and clicked (locked, as CircuitsVis's useHoverLock). */
  hover: TokenRef | null;
  pinned: TokenRef | null;
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export interface ModelView extends ViewHandle<ModelViewState> {
  /** Lines (or heatmap cells) drawn in the grid by the last render. */
  drawn(): number;
}

/** BertViz's geometry (px): fixed grid width, axis band (15 title + 5 + 13 indices + 5), thumbnail padding. */
export const GRID_WIDTH = 970;
const AXIS = 38;
const MARGIN = 5;
/**
 * Thumbnail lines run from x + 5 to x + width − 9 (BertViz: width − 14 long). BertViz strokes them 2.2 px
 * wide at opacity = weight; here they are 1 px hairlines on a 1× canvas, because Chromium's Skia rasterises
 * wider strokes of a many-segment path ~10× slower (144 thumbnails at 32 tokens: ~4 s against ~0.35 s). The
 * opacity 1 − (1 − w)^2.2 keeps the ink per unit length of a 2.2 px line at opacity w (equal for small w).
 */
const LINE_END = 9;
const LINE_INK = 2.2;
/** PNG exports are drawn at this scale; their thumbnail lines are 1 / PNG_SCALE px wide (one pixel again). */
const PNG_SCALE = 2;
/** Row height × total heads: 7 px per token row at 12 heads, 5.25 at 16 (BertViz). */
const ROW_BUDGET = 7 * 12;
/** Line thumbnails of long inputs are squeezed to this height rather than growing without bound. */
const MAX_LINES_HEIGHT = 600;
/** Panel: 80 px token columns either side of 140 px of lines, 18 px rows (BertViz). */
const P_ROW = 18;
const P_TOKEN = 80;
const P_GAP = 140;
const P_PAD = 8;
const P_TITLE = 24;
/** The panel body scrolls beyond this height. */
const P_MAX_BODY = 600;
/** Heatmap panel: cells fit this many px, between 1 and P_ROW; token labels from LABEL_MIN px. */
const P_HEATMAP = 480;
const LABEL_MIN = 9;
const SCROLLBAR = 16;
/** Below this opacity a line is invisible at 8-bit colour depth; skipping it changes no pixel. */
const MIN_ALPHA = 1 / 255;
/** Line opacities are quantised to this many levels so a thumbnail strokes a few paths, not one per line. */
const ALPHA_LEVELS = 64;

/** Grid geometry for the current filter and mode. */
interface Layout {
  rows: number[];
  cols: number[];
  /** Thumbnail width and height, token row height (lines mode). */
  tw: number;
  th: number;
  rh: number;
  height: number;
}

/** Panel geometry: position in the grid, content box, heatmap cell size and label band. */
interface PanelLayout {
  x: number;
  y: number;
  width: number;
  height: number;
  contentW: number;
  contentH: number;
  bodyH: number;
  cell: number;
  band: number;
}

export function modelView(container: HTMLElement, data: Attention, options: ModelViewOptions = {}): ModelView {
  if (data.encoderDecoder) {
    return partsView<ModelViewState, ModelView, ModelViewOptions>(
      container,
      data,
      options,
      modelView,
      (s, _from, to, o) => {
        const { includeLayers } = carryLayer(0, o.includeLayers, to);
        const L = to.attention.dims[0];
        const selected =
          s.selected && s.selected.layer < L && (!includeLayers || includeLayers.includes(s.selected.layer))
            ? s.selected
            : null;
        return { includeLayers, selected, hideSpecial: s.hideSpecial, mode: s.mode };
      },
    );
  }
  const started = performance.now();
  // T query tokens (rows, left); K key tokens (columns, right): K = T but for cross-attention.
  const [L, H, T, K] = data.attention.dims;
  const keyTokens = data.keyTokens ?? data.tokens;
  const keyLabel = (j: number) => (options.prettifyTokens === false ? keyTokens[j] : prettifyToken(keyTokens[j]));
  const layers = indexList('includeLayers', options.includeLayers, L, 'layer');
  const heads = indexList('includeHeads', options.includeHeads, H, 'head');
  const theme: Theme = resolveTheme(options.theme ?? 'dark', window);
  const colors = categoricalColors(L);
  const label = (i: number) => (options.prettifyTokens === false ? data.tokens[i] : prettifyToken(data.tokens[i]));
  const src = data.attention.data;
  const mode = options.mode ?? (Math.max(T, K) > (options.heatmapAbove ?? 48) ? 'heatmap' : 'lines');
  check(mode === 'lines' || mode === 'heatmap', `mode must be "lines" or "heatmap", not ${JSON.stringify(mode)}`);
  const filter = data.sentenceBStart === null ? 'all' : (options.filter ?? 'all');
  check(
    filter in PAIR_FILTERS,
    `filter must be one of ${Object.keys(PAIR_FILTERS).join(', ')}, not ${JSON.stringify(filter)}`,
  );
  const sel0 = options.selected;
  let state: ModelViewState = {
    selected:
      sel0 && layers.includes(sel0.layer) && heads.includes(sel0.head) ? { layer: sel0.layer, head: sel0.head } : null,
    filter,
    hideSpecial: options.hideSpecial ?? false,
    mode,
    hover: null,
    pinned: null,
  };

  // ---- static DOM: root, controls, grid (canvas, axis labels, hit targets, panel), tooltip -------------
  const root = el('div', { class: 'attnviz attnviz-model-view', 'data-theme': theme.name, tabindex: -1 });
  root.append(el('style', { text: css(theme) + modelCss(theme) }));
  const controls = el('div', { class: 'av-controls' });
  const body = el('div', { class: 'av-body' });
  const grid = el('div', { class: 'av-grid' });
  const canvas = el('canvas');
  const axis = el('div', { class: 'av-axes' });
  const targets = el('div', { class: 'av-thumbs' });
  const panel = el('div', { class: 'av-panel', hidden: true, role: 'dialog' });
  const panelTitle = el('div', { class: 'av-panel-title' });
  const panelBody = el('div', { class: 'av-panel-body' });
  const panelInner = el('div', { class: 'av-panel-inner' });
  const panelCanvas = el('canvas');
  const tooltip = el('div', { class: 'av-tooltip', hidden: true });
  panelInner.append(panelCanvas);
  panelBody.append(panelInner);
  panel.append(panelTitle, panelBody);
  grid.append(canvas, axis, targets, panel);
  body.append(grid);
  root.append(controls, body, tooltip);
  container.append(root);

  if (data.sentenceBStart !== null) {
    controls.append(
      select(
        'Attention:',
        (Object.keys(PAIR_FILTERS) as PairFilter[]).map((f) => ({ value: f, label: PAIR_FILTERS[f] })),
        state.filter,
        (f) => update({ filter: f, hover: null, pinned: null }),
      ),
    );
  }
  controls.append(
    select(
      'Show:',
      [
        { value: 'lines' as const, label: 'Lines' },
        { value: 'heatmap' as const, label: 'Heatmap' },
      ],
      state.mode,
      (m) => update({ mode: m, hover: null, pinned: null }),
    ),
    checkbox('Hide special tokens', state.hideSpecial, (hideSpecial) =>
      update({ hideSpecial, hover: null, pinned: null }),
    ),
    button('PNG', async () => download(await view.toPNG(), 'attention-model-view.png')),
    button('SVG', () => download(new Blob([view.toSVG()], { type: 'image/svg+xml' }), 'attention-model-view.svg')),
  );
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected) update({ selected: null });
  });

  // ---- geometry -----------------------------------------------------------------------------------------
  let g: Layout;
  /** True when the shown matrix is the stored one (no filter, nothing hidden): thumbnails read it in place. */
  let identity = true;

  function computeLayout(): Layout {
    const { rows, cols } = filterIndices(data.tokens, data.sentenceBStart, state, data.keyTokens);
    const n = Math.max(rows.length, cols.length, 1);
    // Sizes follow the model's head count even when includeHeads filters, as in BertViz.
    const tw = (GRID_WIDTH - AXIS) / H;
    const rh = state.mode === 'lines' ? Math.min(ROW_BUDGET / H, MAX_LINES_HEIGHT / n) : 0;
    const th = state.mode === 'lines' ? n * rh + 2 * MARGIN : tw;
    identity = rows.length === T && cols.length === K;
    return { rows, cols, tw, th, rh, height: AXIS + layers.length * th };
  }
  const thumbX = (hi: number) => AXIS + hi * g.tw;
  const thumbY = (li: number) => AXIS + li * g.th;

  // ---- data: one head's [rows × cols] weights for the current filter ------------------------------------
  let scratch = new Float32Array(0);

  /** One head's weights, row-major `[R × C]`; rows renormalised when tokens are hidden. Valid until the next call. */
  function weights(layer: number, head: number): Float32Array {
    const base = (layer * H + head) * T * K;
    if (identity) return src.subarray(base, base + T * K);
    const { rows, cols } = g;
    const R = rows.length,
      C = cols.length;
    if (scratch.length < R * C) scratch = new Float32Array(R * C);
    for (let r = 0; r < R; r++) {
      const rowBase = base + rows[r] * K;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += scratch[r * C + c] = src[rowBase + cols[c]];
      // Renormalise only when tokens were hidden; the pair filter shows raw weights, as BertViz does.
      if (state.hideSpecial && sum > 0) for (let c = 0; c < C; c++) scratch[r * C + c] /= sum;
    }
    return scratch;
  }

  // ---- thumbnails -----------------------------------------------------------------------------------------
  const isSelected = (l: number, h: number) =>
    state.selected !== null && state.selected.layer === l && state.selected.head === h;
  let images = new Map<number, ImageData>();

  /** Lines from query row r (left) to key row c (right), `width` px wide, with the ink of a 2.2 px line at opacity = weight. */
  function thumbLines(p: Painter, x: number, y: number, w: Float32Array, color: string, width: number): number {
    const ink = LINE_INK / width;
    const R = g.rows.length,
      C = g.cols.length;
    const x1 = x + MARGIN,
      x2 = x + g.tw - LINE_END,
      y0 = y + MARGIN + g.rh / 2;
    const buckets: number[][] = Array.from({ length: ALPHA_LEVELS + 1 }, () => []);
    let count = 0;
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < C; c++) {
        const a = 1 - (1 - Math.min(w[r * C + c], 1)) ** ink;
        if (a < MIN_ALPHA) continue;
        buckets[Math.round(a * ALPHA_LEVELS)].push(x1, y0 + r * g.rh, x2, y0 + c * g.rh);
        count++;
      }
    }
    buckets.forEach((segments, level) => p.lines(segments, color, Math.max(level, 0.5) / ALPHA_LEVELS, width));
    return count;
  }

  /** The thumbnail image: one pixel per cell, or per device pixel (max-pooled) when cells outnumber pixels. */
  function thumbImage(l: number, h: number): ImageData {
    const key = l * H + h;
    let img = images.get(key);
    if (!img) {
      const side = Math.max(1, Math.round((g.tw - 2 * MARGIN) * (window.devicePixelRatio || 1)));
      img = heatmapPixels(weights(l, h), g.rows.length, g.cols.length, side, colors[l], theme.background);
      images.set(key, img);
    }
    return img;
  }

  function drawThumb(p: Painter, li: number, hi: number, lineWidth = 1): number {
    const l = layers[li],
      h = heads[hi];
    const x = thumbX(hi),
      y = thumbY(li);
    const selected = isSelected(l, h);
    p.rect(x, y, g.tw, g.th, selected ? theme.highlight : theme.background);
    let count = 0;
    const R = g.rows.length,
      C = g.cols.length;
    if (R && C) {
      if (state.mode === 'lines') count = thumbLines(p, x, y, weights(l, h), colors[l], lineWidth);
      else {
        const side = g.tw - 2 * MARGIN,
          n = Math.max(R, C);
        p.image(x + MARGIN, y + MARGIN, (side * C) / n, (side * R) / n, thumbImage(l, h));
        count = R * C;
      }
    }
    // Inset by half the stroke so the frame never paints over a neighbour.
    if (selected) p.rect(x + 1, y + 1, g.tw - 2, g.th - 2, 'none', 0.8, { color: colors[l], width: 2 });
    return count;
  }

  function drawAxes(p: Painter): void {
    const gridW = AXIS + heads.length * g.tw;
    p.text(AXIS + (gridW - AXIS) / 2, 7.5, 'Heads', { color: theme.text, size: 15, weight: 'bold', anchor: 'middle' });
    heads.forEach((h, hi) =>
      p.text(thumbX(hi) + g.tw / 2, 26.5, String(h), { color: theme.text, size: 13, anchor: 'middle' }),
    );
    p.text(7.5, AXIS + (g.height - AXIS) / 2, 'Layers', {
      color: theme.text,
      size: 15,
      weight: 'bold',
      anchor: 'middle',
      rotate: -90,
    });
    layers.forEach((l, li) =>
      p.text(AXIS - 5, thumbY(li) + g.th / 2, String(l), { color: theme.text, size: 13, anchor: 'end' }),
    );
  }

  /** Axis labels and hit targets as DOM, at the positions drawAxes uses for exports. */
  function renderAxesAndTargets(): void {
    axis.replaceChildren();
    const at = (cls: string, text: string, x: number, y: number, attrs: Record<string, string | number> = {}) => {
      const d = el('div', { class: `av-axis ${cls}`, text, ...attrs });
      d.style.left = `${x}px`;
      d.style.top = `${y}px`;
      axis.append(d);
    };
    const gridW = AXIS + heads.length * g.tw;
    at('av-axis-title av-axis-heads', 'Heads', AXIS + (gridW - AXIS) / 2, 7.5);
    heads.forEach((h, hi) => at('av-axis-index', String(h), thumbX(hi) + g.tw / 2, 26.5, { 'data-head': h }));
    at('av-axis-title av-axis-layers', 'Layers', 7.5, AXIS + (g.height - AXIS) / 2);
    layers.forEach((l, li) =>
      at('av-axis-index av-axis-layer', String(l), AXIS - 5, thumbY(li) + g.th / 2, { 'data-layer': l }),
    );

    if (!targets.childElementCount) {
      layers.forEach((l) =>
        heads.forEach((h) => {
          const b = el('button', {
            type: 'button',
            class: 'av-thumb',
            'data-layer': l,
            'data-head': h,
            title: `Layer ${l}, Head ${h}`,
            'aria-label': `Layer ${l}, Head ${h}`,
          });
          b.addEventListener('click', () =>
            update({ selected: isSelected(l, h) ? null : { layer: l, head: h }, hover: null, pinned: null }),
          );
          targets.append(b);
        }),
      );
    }
    let k = 0;
    layers.forEach((_, li) =>
      heads.forEach((__, hi) => {
        const s = (targets.children[k++] as HTMLElement).style;
        s.left = `${thumbX(hi)}px`;
        s.top = `${thumbY(li)}px`;
        s.width = `${g.tw}px`;
        s.height = `${g.th}px`;
      }),
    );
  }

  // ---- grid render: full on layout change, two thumbnails on a selection change ------------------------
  let gridKey = '';
  let gridPainter: CanvasPainter;
  let counts: number[] = [];
  let drawnSelection: HeadRef | null = null;

  function renderGrid(): void {
    const key = `${state.mode}/${state.filter}/${state.hideSpecial}`;
    if (key !== gridKey) {
      gridKey = key;
      g = computeLayout();
      images = new Map();
      renderAxesAndTargets();
      // Lines: a 1× backing store, so hairlines stay 1 device pixel (the fast path) on HiDPI screens too.
      gridPainter = new CanvasPainter(sizeCanvas(canvas, GRID_WIDTH, g.height, state.mode === 'lines' ? 1 : undefined));
      counts = [];
      layers.forEach((_, li) => heads.forEach((__, hi) => counts.push(drawThumb(gridPainter, li, hi))));
    } else if (!sameHead(drawnSelection, state.selected)) {
      for (const s of [drawnSelection, state.selected]) {
        if (!s) continue;
        const li = layers.indexOf(s.layer),
          hi = heads.indexOf(s.head);
        counts[li * heads.length + hi] = drawThumb(gridPainter, li, hi);
      }
    }
    drawnSelection = state.selected;
    for (const b of targets.children) {
      const t = b as HTMLElement;
      t.setAttribute('aria-pressed', String(isSelected(Number(t.dataset.layer), Number(t.dataset.head))));
    }
  }

  // ---- panel ----------------------------------------------------------------------------------------------
  /** The selected head's weights, copied when the panel opens or the filter changes. */
  let pw = new Float32Array(0);
  let panelKey = '';
  let pl: PanelLayout | null = null;
  let panelDrawn = 0;
  let tokenEls: HTMLElement[] = [];

  function panelLayout(s: HeadRef): PanelLayout {
    const R = g.rows.length,
      C = g.cols.length,
      n = Math.max(R, C, 1);
    let contentW: number,
      contentH: number,
      cell = 0,
      band = 0;
    if (state.mode === 'lines') {
      contentW = 2 * P_TOKEN + P_GAP;
      contentH = n * P_ROW;
    } else {
      cell = Math.max(1, Math.min(P_ROW, Math.floor(P_HEATMAP / n)));
      band = cell >= LABEL_MIN ? P_TOKEN : 0;
      contentW = band + C * cell;
      contentH = band + R * cell;
    }
    const bodyH = Math.min(contentH, P_MAX_BODY);
    const width = contentW + 2 * P_PAD + (contentH > bodyH ? SCROLLBAR : 0);
    const height = bodyH + P_TITLE + 2 * P_PAD;
    // Right of the thumbnail (x + 0.8 × width), flipped to its left if it would leave the grid (BertViz).
    const li = layers.indexOf(s.layer),
      hi = heads.indexOf(s.head);
    let x = thumbX(hi) + 0.8 * g.tw;
    if (x + width > GRID_WIDTH) x = Math.max(0, thumbX(hi) + 0.2 * g.tw - width);
    // Vertically: level with the thumbnail, moved up to stay in the grid but never over the heads axis.
    const y = Math.max(AXIS, Math.min(thumbY(li), g.height - height));
    return { x, y, width, height, contentW, contentH, bodyH, cell, band };
  }

  /** Focused token: the pinned one, else the hovered one. Its row (or column) index in the shown matrix. */
  function focusAt(): { side: Side; at: number } | null {
    const f = state.pinned ?? state.hover;
    if (!f) return null;
    const at = (f.side === 'left' ? g.rows : g.cols).indexOf(f.index);
    return at < 0 ? null : { side: f.side, at };
  }

  /** Panel lines (at ox, oy); with `text`, also the token highlight and labels (exports; the page uses DOM). */
  function panelLines(p: Painter, ox: number, oy: number, color: string, text: boolean): number {
    const R = g.rows.length,
      C = g.cols.length;
    const f = focusAt();
    if (text) {
      if (f) p.rect(ox + (f.side === 'left' ? 0 : P_TOKEN + P_GAP), oy + f.at * P_ROW, P_TOKEN, P_ROW, theme.highlight);
      g.rows.forEach((i, r) =>
        p.text(ox + P_TOKEN - 4, oy + r * P_ROW + P_ROW / 2, label(i), { color: theme.text, size: 13, anchor: 'end' }),
      );
      g.cols.forEach((j, c) =>
        p.text(ox + P_TOKEN + P_GAP + 4, oy + c * P_ROW + P_ROW / 2, keyLabel(j), { color: theme.text, size: 13 }),
      );
    }
    const x1 = ox + P_TOKEN + 2,
      x2 = ox + P_TOKEN + P_GAP - 2,
      y0 = oy + P_ROW / 2;
    const buckets: number[][] = Array.from({ length: ALPHA_LEVELS + 1 }, () => []);
    let count = 0;
    const add = (r: number, c: number) => {
      const a = pw[r * C + c];
      if (a < MIN_ALPHA) return;
      buckets[Math.round(Math.min(a, 1) * ALPHA_LEVELS)].push(x1, y0 + r * P_ROW, x2, y0 + c * P_ROW);
      count++;
    };
    if (!f) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) add(r, c);
    else if (f.side === 'left') for (let c = 0; c < C; c++) add(f.at, c);
    else for (let r = 0; r < R; r++) add(r, f.at);
    buckets.forEach((segments, level) => p.lines(segments, color, Math.max(level, 0.5) / ALPHA_LEVELS, 2));
    return count;
  }

  /** Panel heatmap: rows = queries, columns = keys, one cell per weight; the focused row/column framed. */
  function panelHeatmap(p: Painter, ox: number, oy: number, color: string, text: boolean): number {
    const R = g.rows.length,
      C = g.cols.length,
      { cell, band } = pl!;
    p.image(ox + band, oy + band, C * cell, R * cell, heatmapPixels(pw, R, C, Math.max(R, C), color, theme.background));
    if (text && band) {
      const size = Math.min(13, cell * 0.75);
      g.rows.forEach((i, r) =>
        p.text(ox + band - 4, oy + band + r * cell + cell / 2, label(i), { color: theme.text, size, anchor: 'end' }),
      );
      g.cols.forEach((j, c) =>
        p.text(ox + band + c * cell + cell / 2, oy + band - 4, keyLabel(j), { color: theme.text, size, rotate: -90 }),
      );
    }
    const f = focusAt();
    if (f?.side === 'left')
      p.rect(ox + band, oy + band + f.at * cell, C * cell, cell, 'none', 1, { color: theme.text, width: 1 });
    if (f?.side === 'right')
      p.rect(ox + band + f.at * cell, oy + band, cell, R * cell, 'none', 1, { color: theme.text, width: 1 });
    return R * C;
  }

  function drawPanelContent(p: Painter, ox: number, oy: number, text: boolean): number {
    const color = colors[state.selected!.layer];
    return state.mode === 'lines' ? panelLines(p, ox, oy, color, text) : panelHeatmap(p, ox, oy, color, text);
  }

  function renderPanel(): void {
    const s = state.selected;
    panel.hidden = s === null;
    tooltip.hidden = true;
    if (!s) {
      panelKey = '';
      pl = null;
      grid.style.height = `${g.height}px`;
      return;
    }
    const key = `${s.layer},${s.head}/${gridKey}`;
    if (key !== panelKey) {
      panelKey = key;
      pw = weights(s.layer, s.head).slice(0, g.rows.length * g.cols.length);
      pl = panelLayout(s);
      Object.assign(panel.style, {
        left: `${pl.x}px`,
        top: `${pl.y}px`,
        width: `${pl.width}px`,
        borderColor: colors[s.layer],
      });
      panelBody.style.height = `${pl.bodyH}px`;
      Object.assign(panelInner.style, { width: `${pl.contentW}px`, height: `${pl.contentH}px` });
      panel.dataset.layer = String(s.layer);
      panel.dataset.head = String(s.head);
      panel.dataset.mode = state.mode;
      panelTitle.textContent = `Layer ${s.layer}, Head ${s.head}`;
      grid.style.height = `${Math.max(g.height, pl.y + pl.height)}px`;
      renderPanelTokens();
    }
    const ctx = sizeCanvas(panelCanvas, pl!.contentW, pl!.contentH);
    panelDrawn = drawPanelContent(new CanvasPainter(ctx), 0, 0, false);
    panel.dataset.drawn = String(panelDrawn);
    const f = state.pinned ?? state.hover;
    for (const t of tokenEls) {
      const same = f !== null && t.dataset.side === f.side && Number(t.dataset.index) === f.index;
      t.classList.toggle('av-focus', same);
      t.classList.toggle('av-pinned', same && state.pinned !== null);
    }
  }

  /** Panel tokens as DOM text: both columns (lines), or row labels and rotated column labels (heatmap). */
  function renderPanelTokens(): void {
    for (const t of tokenEls) t.remove();
    tokenEls = [];
    heatmapHandlers?.();
    const { cell, band } = pl!;
    const make = (side: Side, i: number, style: Partial<CSSStyleDeclaration>, cls = '') => {
      const t = el('div', {
        class: `av-token ${cls}`,
        'data-side': side,
        'data-index': i,
        title: side === 'left' ? data.tokens[i] : keyTokens[i],
        text: side === 'left' ? label(i) : keyLabel(i),
      });
      Object.assign(t.style, style);
      t.addEventListener('mouseenter', () => {
        if (!state.pinned) update({ hover: { side, index: i } });
        showTooltip(side, i, t);
      });
      t.addEventListener('mouseleave', () => {
        tooltip.hidden = true;
        if (!state.pinned) update({ hover: null });
      });
      t.addEventListener('click', () => {
        const same = state.pinned?.side === side && state.pinned.index === i;
        update({ pinned: same ? null : { side, index: i }, hover: same ? { side, index: i } : null });
      });
      panelInner.append(t);
      tokenEls.push(t);
    };
    if (state.mode === 'lines') {
      g.rows.forEach((i, r) =>
        make('left', i, { top: `${r * P_ROW}px`, left: '0', width: `${P_TOKEN}px`, textAlign: 'right' }),
      );
      g.cols.forEach((j, c) =>
        make('right', j, { top: `${c * P_ROW}px`, left: `${P_TOKEN + P_GAP}px`, width: `${P_TOKEN}px` }),
      );
      return;
    }
    if (band) {
      const font = `${Math.min(13, cell * 0.75)}px`;
      const box = { height: `${cell}px`, lineHeight: `${cell}px`, fontSize: font };
      g.rows.forEach((i, r) =>
        make('left', i, { ...box, top: `${band + r * cell}px`, left: '0', width: `${band}px`, textAlign: 'right' }),
      );
      g.cols.forEach((j, c) =>
        make(
          'right',
          j,
          { ...box, top: '0', left: `${band + c * cell}px`, width: `${cell}px`, height: `${band}px` },
          'av-vertical',
        ),
      );
    }
    heatmapTargets(cell, band);
  }

  /** Heatmap panel: hovering a cell shows its weight; clicking pins its query row. */
  let heatmapHandlers: (() => void) | null = null;
  function heatmapTargets(cell: number, band: number): void {
    const at = (e: MouseEvent) => {
      const rect = panelCanvas.getBoundingClientRect();
      const c = Math.floor((e.clientX - rect.left - band) / cell),
        r = Math.floor((e.clientY - rect.top - band) / cell);
      return r >= 0 && c >= 0 && r < g.rows.length && c < g.cols.length ? { r, c } : null;
    };
    const move = (e: MouseEvent) => {
      const hit = at(e);
      if (!hit) {
        tooltip.hidden = true;
        return;
      }
      setTooltip(pairText(hit.r, hit.c), e.clientX, e.clientY);
    };
    const leave = () => {
      tooltip.hidden = true;
    };
    const click = (e: MouseEvent) => {
      const hit = at(e);
      if (!hit) return;
      const i = g.rows[hit.r];
      const same = state.pinned?.side === 'left' && state.pinned.index === i;
      update({ pinned: same ? null : { side: 'left', index: i }, hover: null });
    };
    panelCanvas.addEventListener('mousemove', move);
    panelCanvas.addEventListener('mouseleave', leave);
    panelCanvas.addEventListener('click', click);
    heatmapHandlers = () => {
      panelCanvas.removeEventListener('mousemove', move);
      panelCanvas.removeEventListener('mouseleave', leave);
      panelCanvas.removeEventListener('click', click);
      heatmapHandlers = null;
    };
  }

  const pairText = (r: number, c: number) =>
    `${label(g.rows[r])} → ${keyLabel(g.cols[c])}\n${pw[r * g.cols.length + c].toFixed(4)}`;

  /** Tooltip on a panel token opposite to the pinned (or hovered) one: the exact weight between them. */
  function showTooltip(side: Side, i: number, target: HTMLElement): void {
    const other = state.pinned ?? state.hover;
    if (!other || other.side === side) return;
    const q = side === 'right' ? other.index : i,
      k = side === 'right' ? i : other.index;
    const r = g.rows.indexOf(q),
      c = g.cols.indexOf(k);
    if (r < 0 || c < 0) return;
    const box = target.getBoundingClientRect();
    setTooltip(pairText(r, c), box.right, box.top);
  }

  function setTooltip(text: string, clientX: number, clientY: number): void {
    const base = root.getBoundingClientRect();
    tooltip.textContent = text;
    tooltip.style.left = `${clientX - base.left + 12}px`;
    tooltip.style.top = `${clientY - base.top + 12}px`;
    tooltip.hidden = false;
  }

  // ---- render, export, handle -------------------------------------------------------------------------
  let drawnCount = 0;
  function render(): void {
    renderGrid();
    renderPanel();
    drawnCount = counts.reduce((a, b) => a + b, 0);
    root.dataset.mode = state.mode;
    root.dataset.thumbnails = String(layers.length * heads.length);
    root.dataset.selected = state.selected ? `${state.selected.layer},${state.selected.head}` : '';
    root.dataset.drawn = String(drawnCount);
  }

  /** The grid as shown and, when open, the panel with its full content (not the scrolled window). */
  function scene(lineWidth: number): { width: number; height: number; draw: (p: Painter) => void } {
    const full = pl ? pl.contentH + P_TITLE + 2 * P_PAD : 0;
    const panelW = pl ? pl.contentW + 2 * P_PAD : 0;
    return {
      width: Math.max(GRID_WIDTH, pl ? pl.x + panelW : 0),
      height: Math.max(g.height, pl ? pl.y + full : 0),
      draw: (p) => {
        drawAxes(p);
        layers.forEach((_, li) => heads.forEach((__, hi) => drawThumb(p, li, hi, lineWidth)));
        if (!pl || !state.selected) return;
        const { layer, head } = state.selected;
        p.rect(pl.x, pl.y, panelW, full, theme.background, 1, { color: colors[layer], width: 1.5 });
        p.text(pl.x + P_PAD, pl.y + P_PAD + P_TITLE / 2 - 2, `Layer ${layer}, Head ${head}`, {
          color: theme.text,
          size: 13,
          weight: 'bold',
        });
        drawPanelContent(p, pl.x + P_PAD, pl.y + P_PAD + P_TITLE, true);
      },
    };
  }

  function update(patch: Partial<ModelViewState>): void {
    const s = patch.selected;
    check(
      !s || (layers.includes(s.layer) && heads.includes(s.head)),
      () => `selected: layer ${s!.layer}, head ${s!.head} is not in the grid`,
    );
    state = { ...state, ...patch };
    render();
  }

  const view: ModelView = {
    element: root,
    state: () => state,
    update,
    drawn: () => drawnCount,
    toSVG: () => {
      const s = scene(1);
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene(1 / PNG_SCALE);
      return scenePng(s.width, s.height, theme.background, s.draw, PNG_SCALE);
    },
    destroy: () => {
      heatmapHandlers?.();
      root.remove();
    },
  };
  render();
  try {
    performance.measure('attnviz:model-view', { start: started });
  } catch {
    // User Timing is optional.
  }
  return view;
}

/**
 * RGBA pixels of an [R × C] weight matrix: the colour over the background with opacity = weight. With more
 * cells than `side` pixels along the longer edge, each pixel holds the maximum of the cells it covers.
 */
function heatmapPixels(
  w: Float32Array,
  R: number,
  C: number,
  side: number,
  color: string,
  background: string,
): ImageData {
  const n = Math.max(R, C, 1);
  const k = Math.min(1, side / n);
  const pwid = Math.max(1, Math.ceil(C * k)),
    phgt = Math.max(1, Math.ceil(R * k));
  let a: Float32Array;
  if (k === 1) a = w;
  else {
    a = new Float32Array(pwid * phgt);
    const colPx = new Int32Array(C);
    for (let c = 0; c < C; c++) colPx[c] = Math.floor(c * k);
    for (let r = 0; r < R; r++) {
      const py = Math.floor(r * k) * pwid,
        o = r * C;
      for (let c = 0; c < C; c++) {
        const v = w[o + c],
          i = py + colPx[c];
        if (v > a[i]) a[i] = v;
      }
    }
  }
  const fg = rgb(color),
    bg = rgb(background);
  const img = new ImageData(pwid, phgt);
  const d = img.data;
  for (let i = 0; i < pwid * phgt; i++) {
    const v = Math.min(1, Math.max(0, a[i]));
    d[i * 4] = bg.r + (fg.r - bg.r) * v;
    d[i * 4 + 1] = bg.g + (fg.g - bg.g) * v;
    d[i * 4 + 2] = bg.b + (fg.b - bg.b) * v;
    d[i * 4 + 3] = 255;
  }
  return img;
}

/** Validates includeLayers / includeHeads: distinct integer indices of the model, in the given order. */
function indexList(option: string, given: number[] | undefined, n: number, what: string): number[] {
  if (given === undefined || given === null) return Array.from({ length: n }, (_, i) => i);
  check(Array.isArray(given) && given.length > 0, `${option} must be a non-empty list of ${what} indices`);
  const out = [...new Set(given)];
  for (const i of out)
    check(
      Number.isInteger(i) && i >= 0 && i < n,
      `${option}: ${JSON.stringify(i)} is not a ${what} of this model (0–${n - 1})`,
    );
  return out;
}

const sameHead = (a: HeadRef | null, b: HeadRef | null) =>
  a === null || b === null ? a === b : a.layer === b.layer && a.head === b.head;

/** The model view's own rules, scoped under its root class (the shared ones are in styles.ts). */
function modelCss(t: Theme): string {
  return `
.attnviz-model-view .av-grid{position:relative;width:${GRID_WIDTH}px}
.attnviz-model-view .av-axis{position:absolute;transform:translate(-50%,-50%);white-space:nowrap;line-height:1;pointer-events:none;user-select:none;color:${t.text}}
.attnviz-model-view .av-axis-title{font-size:15px;font-weight:bold}
.attnviz-model-view .av-axis-index{font-size:13px}
.attnviz-model-view .av-axis-layer{transform:translate(-100%,-50%)}
.attnviz-model-view .av-axis-layers{transform:translate(-50%,-50%) rotate(-90deg)}
.attnviz-model-view .av-thumb{position:absolute;margin:0;padding:0;border:0;background:transparent;cursor:pointer}
.attnviz-model-view .av-thumb:focus-visible{outline:2px solid ${t.text};outline-offset:-2px}
.attnviz-model-view .av-panel{position:absolute;z-index:5;background:${t.background};color:${t.text};border:1.5px solid ${t.border};padding:${P_PAD - 1.5}px;box-shadow:0 2px 8px rgba(0,0,0,.35)}
.attnviz-model-view .av-panel-title{height:${P_TITLE}px;font-size:13px;font-weight:bold;white-space:nowrap}
.attnviz-model-view .av-panel-body{position:relative;overflow:auto}
.attnviz-model-view .av-panel-inner{position:relative}
.attnviz-model-view .av-panel .av-token{height:${P_ROW}px;line-height:${P_ROW}px;font-size:13px;padding:0 4px}
.attnviz-model-view .av-panel .av-token.av-vertical{writing-mode:vertical-rl;transform:rotate(180deg);text-align:start;padding:4px 0;line-height:normal}
`;
}
