/**
 * Model view (Vig 2019 §3.2; BertViz model_view): every layer × head as a thumbnail, rows = layers, columns =
 * heads. Clicking a thumbnail opens a detail panel for that head (tokens on both sides with lines, or a
 * zoomable heatmap); clicking it again closes the panel, clicking another moves it.
 *
 * BertViz draws one SVG <line> per weight, L·H·T² elements (38 s at 128 tokens). Here the whole grid is ONE
 * canvas. Up to `heatmapAbove` tokens a thumbnail holds lines (lines.ts: hairlines with a 2.2 px line's ink,
 * see LINE_INK); beyond, it is an image of the head max-pooled to the thumbnail's device pixels (raster.ts), so
 * one strong weight stays visible. Axis labels, thumbnail hit targets, the panel and its tokens are DOM; tokens
 * go in as text (textContent), never markup. All state lives in the returned object.
 *
 * Layers as they arrive (long inputs, 16–32 layers × 32 heads): pass an Attention whose `attention.data` is
 * empty (dims still `[L, H, T, K]`). The grid is drawn at once with empty thumbnails, and
 *
 *     view.addLayer(layer, weights, size?)
 *
 * paints that layer's row: `weights` is the layer's `[H, T, K]` attention, or `[H, n, m]` max-pooled with
 * `size = [n, m]` (n ≤ T, m ≤ K; cell (i, j) is the maximum over queries r with ⌊r·n/T⌋ = i and keys c with
 * ⌊c·m/K⌋ = j, as maxPool in raster.ts computes it). `view.pending()` lists the layers still missing. A
 * thumbnail's panel needs the head at full resolution: the layer's own weights when they came in full, else
 * `options.loadHead(layer, head)` (a Promise of `[T × K]`), else the pooled picture is shown as the heatmap.
 * Layers arriving in pooled form are drawn as heatmaps and are not cut by the pair filter or hidden tokens.
 *
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts): the grid then has the
 * shown part's layers, and cross-attention panels put decoder tokens left and encoder tokens right.
 *
 * Root data attributes, for tests and embedding pages: data-mode ("lines" | "heatmap"), data-thumbnails
 * (count), data-selected ("L,H" or ""), data-drawn (lines or cells drawn in the grid), data-layers (layers
 * painted). Each thumbnail has a transparent `<button class="av-thumb" data-layer data-head>` over it; the
 * panel is `.av-panel`.
 */
import type { Attention, AttentionPart } from '../core/attention.js';
import { check } from '../core/errors.js';
import { button, checkbox, download, el, select, sizeCanvas } from './dom.js';
import type { ViewHandle } from './handle.js';
import type { HeadLoader } from './head-view.js';
import { HeadPanel, type PanelContent } from './head-panel.js';
import { AXIS, GRID_WIDTH, gridLayout, MARGIN, P_PAD, P_ROW, P_TITLE, type GridLayout } from './layout.js';
import { LineBatch } from './lines.js';
import { filterIndices, PAIR_FILTERS, selectCells, type PairFilter } from './matrix.js';
import { carryLayer, withParts, type PartOptions } from './parts.js';
import { CanvasPainter, sceneSvg, scenePng, type Painter } from './painter.js';
import { categoricalColors, resolveTheme, type Theme, type ThemeName } from './palette.js';
import { COLOR_SCALES, maxPool, paint, scaleValues, type ColorScale } from './raster.js';
import { css } from './styles.js';
import { prettifyToken } from './tokens.js';
import { sameToken, Tooltip, type TokenRef } from './tooltip.js';

export { GRID_WIDTH } from './layout.js';

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
  /** Heatmap colour scale (raster.ts): 'linear' (default), 'sqrt', 'log', 'row'. */
  scale?: ColorScale;
  /** Thumbnail whose panel is open at start. Default none. */
  selected?: HeadRef | null;
  /** A head at full resolution for the panel when layers arrive pooled (see the header). */
  loadHead?: HeadLoader;
}

export interface ModelViewState {
  selected: HeadRef | null;
  filter: PairFilter;
  hideSpecial: boolean;
  mode: ModelViewMode;
  scale: ColorScale;
  /** Panel token under the mouse (a preview) and clicked (locked, as CircuitsVis's useHoverLock). */
  hover: TokenRef | null;
  pinned: TokenRef | null;
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export interface ModelView extends ViewHandle<ModelViewState> {
  /** Lines (or heatmap cells) drawn in the grid by the last render. */
  drawn(): number;
  /** Paints one layer as it arrives (see the header). */
  addLayer(layer: number, weights: Float32Array, size?: [number, number]): void;
  /** Layers of the grid not yet added (empty for data given in full). */
  pending(): number[];
}

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

/** A layer's weights as they came: `[H, n, m]`, full resolution when n = T and m = K. */
interface LayerWeights {
  data: Float32Array;
  n: number;
  m: number;
}

export const modelView = withParts<ModelViewState, ModelView, ModelViewOptions>({
  create: singleModelView,
  carry: (s, _from, to, o) => {
    const { includeLayers } = carryLayer(0, o.includeLayers, to);
    const L = to.attention.dims[0];
    const selected =
      s.selected && s.selected.layer < L && (!includeLayers || includeLayers.includes(s.selected.layer))
        ? s.selected
        : null;
    return { includeLayers, selected, hideSpecial: s.hideSpecial, mode: s.mode, scale: s.scale };
  },
  forward: (current) => ({
    drawn: () => current().drawn(),
    addLayer: (layer, weights, size) => current().addLayer(layer, weights, size),
    pending: () => current().pending(),
  }),
});

function singleModelView(container: HTMLElement, data: Attention, options: ModelViewOptions = {}): ModelView {
  const started = performance.now();
  // T query tokens (rows, left); K key tokens (columns, right): K = T but for cross-attention.
  const [L, H, T, K] = data.attention.dims;
  const keyTokens = data.keyTokens ?? data.tokens;
  const pretty = options.prettifyTokens !== false;
  const label = (i: number) => (pretty ? prettifyToken(data.tokens[i]) : data.tokens[i]);
  const keyLabel = (j: number) => (pretty ? prettifyToken(keyTokens[j]) : keyTokens[j]);
  const layers = indexList('includeLayers', options.includeLayers, L, 'layer');
  const heads = indexList('includeHeads', options.includeHeads, H, 'head');
  const theme: Theme = resolveTheme(options.theme ?? 'dark', window);
  const colors = categoricalColors(L);
  const src = data.attention.data;
  const progressive = src.length === 0;
  /** Layers that have arrived (all at once for data given in full). */
  const arrived = new Map<number, LayerWeights>();
  if (!progressive)
    for (const l of layers) arrived.set(l, { data: src.subarray(l * H * T * K, (l + 1) * H * T * K), n: T, m: K });
  const mode = options.mode ?? (progressive || Math.max(T, K) > (options.heatmapAbove ?? 48) ? 'heatmap' : 'lines');
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
    scale: options.scale ?? 'linear',
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
  grid.append(canvas, axis, targets);
  body.append(grid);
  root.append(controls, body);
  const tooltip = new Tooltip(root);
  const panel = new HeadPanel(grid, {
    theme,
    tooltip,
    label: (side, i) => (side === 'left' ? label(i) : keyLabel(i)),
    title: (side, i) => (side === 'left' ? data.tokens[i] : keyTokens[i]),
    promptLength: data.keyTokens ? undefined : data.promptLength,
    focus: () => state,
    hover: (hover) => update({ hover }),
    click: (t) => {
      const same = sameToken(state.pinned, t);
      update({ pinned: same ? null : t, hover: same ? t : null });
    },
  });
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
    select(
      'Colour:',
      (Object.keys(COLOR_SCALES) as ColorScale[]).map((s) => ({ value: s, label: COLOR_SCALES[s] })),
      state.scale,
      (scale) => update({ scale }),
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

  // ---- geometry and data ----------------------------------------------------------------------------------
  let g: GridLayout;
  let rows: number[] = [];
  let cols: number[] = [];
  const thumbX = (hi: number) => AXIS + hi * g.tw;
  const thumbY = (li: number) => AXIS + li * g.th;

  function computeLayout(): void {
    ({ rows, cols } = filterIndices(data.tokens, data.sentenceBStart, state, data.keyTokens, data.special));
    g = gridLayout(state.mode, Math.max(rows.length, cols.length), H, layers.length);
  }

  /** One head's shown weights `[R × C]` at full resolution, if the page has them. */
  function headWeights(layer: number, head: number): Float32Array | null {
    const a = arrived.get(layer);
    if (!a || a.n !== T || a.m !== K) return null;
    return selectCells(a.data.subarray(head * T * K, (head + 1) * T * K), K, rows, cols, state.hideSpecial);
  }

  // ---- thumbnails -----------------------------------------------------------------------------------------
  const isSelected = (l: number, h: number) =>
    state.selected !== null && state.selected.layer === l && state.selected.head === h;
  let images = new Map<number, ImageData>();

  /**
   * Lines from query row r (left) to key row c (right), `width` px wide, with the ink of a 2.2 px line at opacity =
   * weight.
   */
  function thumbLines(p: Painter, x: number, y: number, w: Float32Array, color: string, width: number): number {
    const ink = LINE_INK / width;
    const R = rows.length,
      C = cols.length;
    const x1 = x + MARGIN,
      x2 = x + g.tw - LINE_END,
      y0 = y + MARGIN + g.rh / 2;
    const batch = new LineBatch();
    for (let r = 0; r < R; r++)
      for (let c = 0; c < C; c++)
        batch.add(x1, y0 + r * g.rh, x2, y0 + c * g.rh, 1 - (1 - Math.min(w[r * C + c], 1)) ** ink);
    batch.draw(p, color, width);
    return batch.count;
  }

  /** The thumbnail image: the head max-pooled to the thumbnail's device pixels. */
  function thumbImage(l: number, h: number): ImageData | null {
    const key = l * H + h;
    let img = images.get(key);
    if (img) return img;
    const a = arrived.get(l);
    if (!a) return null;
    const full = a.n === T && a.m === K;
    const w = full ? headWeights(l, h)! : a.data.subarray(h * a.n * a.m, (h + 1) * a.n * a.m);
    const R = full ? rows.length : a.n,
      C = full ? cols.length : a.m;
    const side = Math.max(1, Math.round((g.tw - 2 * MARGIN) * (window.devicePixelRatio || 1)));
    const k = Math.min(1, side / Math.max(R, C, 1));
    const pr = Math.max(1, Math.ceil(R * k)),
      pc = Math.max(1, Math.ceil(C * k));
    const pooled = k === 1 ? w : maxPool(w, R, C, pr, pc, new Float32Array(pr * pc));
    const t = scaleValues(pooled, pr, pc, { scale: state.scale });
    img = new ImageData(paint(t, colors[l], theme.background), pc, pr);
    images.set(key, img);
    return img;
  }

  function drawThumb(p: Painter, li: number, hi: number, lineWidth = 1): number {
    const l = layers[li],
      h = heads[hi];
    const x = thumbX(hi),
      y = thumbY(li);
    p.rect(x, y, g.tw, g.th, isSelected(l, h) ? theme.highlight : theme.background);
    let count = 0;
    const R = rows.length,
      C = cols.length;
    if (R && C && arrived.has(l)) {
      if (state.mode === 'lines' && headWeights(l, h))
        count = thumbLines(p, x, y, headWeights(l, h)!, colors[l], lineWidth);
      else {
        const img = thumbImage(l, h)!;
        const side = g.tw - 2 * MARGIN,
          n = Math.max(img.width, img.height);
        p.image(x + MARGIN, y + MARGIN, (side * img.width) / n, (side * img.height) / n, img);
        count = R * C;
      }
    }
    // Inset by half the stroke so the frame never paints over a neighbour.
    if (isSelected(l, h)) p.rect(x + 1, y + 1, g.tw - 2, g.th - 2, 'none', 0.8, { color: colors[l], width: 2 });
    return count;
  }

  function drawAxes(p: Painter): void {
    for (const a of axes()) p.text(a.x, a.y, a.text, { color: theme.text, ...a.style });
  }

  /** Axis titles and indices: drawn into exports, DOM on the page, at the same places. */
  function axes(): {
    cls: string;
    text: string;
    x: number;
    y: number;
    attrs: Record<string, number>;
    style: { size: number; weight?: 'bold'; anchor: 'middle' | 'end'; rotate?: number };
  }[] {
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
        x: thumbX(hi) + g.tw / 2,
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
        y: thumbY(li) + g.th / 2,
        attrs: { 'data-layer': l },
        style: { size: 13, anchor: 'end' as const },
      })),
    ];
  }

  /** Axis labels and hit targets as DOM, at the positions drawAxes uses for exports. */
  function renderAxesAndTargets(): void {
    axis.replaceChildren(
      ...axes().map((a) => {
        const d = el('div', { class: `av-axis ${a.cls}`, text: a.text, ...a.attrs });
        d.style.left = `${a.x}px`;
        d.style.top = `${a.y}px`;
        return d;
      }),
    );
    if (!targets.childElementCount) {
      for (const l of layers)
        for (const h of heads) {
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
        }
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

  // ---- grid render: full on layout change, a layer as it arrives, two thumbnails on a selection change ----
  let gridKey = '';
  let gridPainter: CanvasPainter;
  let counts: number[] = [];
  let drawnSelection: HeadRef | null = null;

  function drawLayer(l: number): void {
    const li = layers.indexOf(l);
    if (li < 0) return;
    heads.forEach((_, hi) => {
      counts[li * heads.length + hi] = drawThumb(gridPainter, li, hi);
    });
  }

  function renderGrid(): void {
    const key = `${state.mode}/${state.filter}/${state.hideSpecial}/${state.scale}`;
    if (key !== gridKey) {
      gridKey = key;
      computeLayout();
      images = new Map();
      renderAxesAndTargets();
      // Lines: a 1× backing store, so hairlines stay 1 device pixel (the fast path) on HiDPI screens too.
      gridPainter = new CanvasPainter(sizeCanvas(canvas, GRID_WIDTH, g.height, state.mode === 'lines' ? 1 : undefined));
      counts = new Array(layers.length * heads.length).fill(0);
      for (const l of layers) drawLayer(l);
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
  let panelKey = '';
  let loadingHead = '';
  /** Heads fetched with loadHead for the panel (the last few). */
  const loadedHeads = new Map<string, Float32Array>();

  /** The selected head's weights: in the page, from loadHead, or pooled; null while loading. */
  function panelWeights(s: HeadRef): Pick<PanelContent, 'weights' | 'pooled'> | null {
    const full = headWeights(s.layer, s.head);
    if (full) return { weights: full, pooled: null };
    const key = `${s.layer},${s.head}/${gridKey}`;
    if (options.loadHead) {
      const got = loadedHeads.get(key);
      if (got) return { weights: got, pooled: null };
      if (loadingHead !== key) {
        loadingHead = key;
        void options.loadHead(s.layer, s.head).then((w) => {
          if (loadingHead !== key) return;
          loadedHeads.set(key, selectCells(w, K, rows, cols, state.hideSpecial));
          if (loadedHeads.size > 4) loadedHeads.delete(loadedHeads.keys().next().value!);
          panelKey = '';
          render();
        });
      }
      return null;
    }
    const a = arrived.get(s.layer);
    if (!a) return null;
    return { weights: a.data.subarray(s.head * a.n * a.m, (s.head + 1) * a.n * a.m), pooled: { R: a.n, C: a.m, T, K } };
  }

  function renderPanel(): void {
    const s = state.selected;
    tooltip.hide();
    const key = s ? `${s.layer},${s.head}/${gridKey}` : '';
    if (key !== panelKey) {
      panelKey = '';
      panel.hide();
      if (s) {
        const title = `Layer ${s.layer}, Head ${s.head}`;
        const got = panelWeights(s);
        if (!got) panel.loading(title);
        else {
          panelKey = key;
          const li = layers.indexOf(s.layer),
            hi = heads.indexOf(s.head);
          panel.show(
            {
              title,
              color: colors[s.layer],
              ...got,
              rows,
              cols,
              mode: state.mode === 'lines' && !got.pooled ? 'lines' : 'heatmap',
              scale: state.scale,
            },
            { x: thumbX(hi), y: thumbY(li), w: g.tw },
            g.height,
          );
          panel.element.dataset.layer = String(s.layer);
          panel.element.dataset.head = String(s.head);
        }
      }
    }
    panel.render();
    const l = panel.layout;
    grid.style.height = `${Math.max(g.height, l ? l.y + l.height : 0)}px`;
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
    root.dataset.layers = String(layers.filter((l) => arrived.has(l)).length);
    root.dataset.drawn = String(drawnCount);
  }

  /** The grid as shown and, when open, the panel with its full content (not the scrolled window). */
  function scene(lineWidth: number): { width: number; height: number; draw: (p: Painter) => void } {
    const l = panel.layout;
    return {
      width: Math.max(GRID_WIDTH, l ? l.x + l.contentW + 2 * P_PAD : 0),
      height: Math.max(g.height, l ? l.y + panel.fullHeight() : 0),
      draw: (p) => {
        drawAxes(p);
        layers.forEach((_, li) => heads.forEach((__, hi) => drawThumb(p, li, hi, lineWidth)));
        panel.paint(p);
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
    addLayer: (layer, weights, size) => {
      const [n, m] = size ?? [T, K];
      check(Number.isInteger(layer) && layer >= 0 && layer < L, () => `addLayer: no layer ${layer} (0–${L - 1})`);
      check(
        Number.isInteger(n) && Number.isInteger(m) && n >= 1 && m >= 1 && n <= T && m <= K,
        () => `addLayer: size [${n}, ${m}] must be within [${T}, ${K}]`,
      );
      check(
        weights.length === H * n * m,
        () => `addLayer: layer ${layer} has ${weights.length} weights, expected ${H} × ${n} × ${m}`,
      );
      arrived.set(layer, { data: weights, n, m });
      for (let h = 0; h < H; h++) images.delete(layer * H + h);
      drawLayer(layer);
      if (state.selected?.layer === layer) panelKey = '';
      render();
    },
    pending: () => layers.filter((l) => !arrived.has(l)),
    toSVG: () => {
      const s = scene(1);
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene(1 / PNG_SCALE);
      return scenePng(s.width, s.height, theme.background, s.draw, PNG_SCALE);
    },
    destroy: () => {
      panel.destroy();
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
.attnviz-model-view .av-body{overflow-x:auto}
.attnviz-model-view .av-grid{position:relative;width:${GRID_WIDTH}px}
.attnviz-model-view .av-axis{position:absolute;transform:translate(-50%,-50%);white-space:nowrap;line-height:1;\
pointer-events:none;user-select:none;color:${t.text}}
.attnviz-model-view .av-axis-title{font-size:15px;font-weight:bold}
.attnviz-model-view .av-axis-index{font-size:13px}
.attnviz-model-view .av-axis-layer{transform:translate(-100%,-50%)}
.attnviz-model-view .av-axis-layers{transform:translate(-50%,-50%) rotate(-90deg)}
.attnviz-model-view .av-thumb{position:absolute;margin:0;padding:0;border:0;background:transparent;cursor:pointer}
.attnviz-model-view .av-thumb:focus-visible{outline:2px solid ${t.text};outline-offset:-2px}
.attnviz-model-view .av-panel{position:absolute;z-index:5;background:${t.background};color:${t.text};\
border:1.5px solid ${t.border};padding:${P_PAD - 1.5}px;box-shadow:0 2px 8px rgba(0,0,0,.35)}
.attnviz-model-view .av-panel-title{height:${P_TITLE}px;font-size:13px;font-weight:bold;white-space:nowrap}
.attnviz-model-view .av-panel-body{position:relative;overflow:auto}
.attnviz-model-view .av-panel-inner{position:relative}
.attnviz-model-view .av-panel .av-token{height:${P_ROW}px;line-height:${P_ROW}px;font-size:13px;padding:0 4px}
`;
}
