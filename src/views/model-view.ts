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
 *
 * The page's parts: the checked options, opening state and transitions (model-view-state.ts), the controls
 * (model-view-controls.ts), the thumbnail grid (model-view-grid.ts) and the detail panel (model-view-panel.ts).
 */
import type { Attention, AttentionPart } from '../core/attention.js';
import { el } from './dom.js';
import type { ViewHandle } from './handle.js';
import type { HeadLoader } from './head-view.js';
import { tokenLabels } from './head-lines.js';
import { HeadPanel } from './head-panel.js';
import { GRID_WIDTH, P_PAD, P_ROW, P_TITLE } from './layout.js';
import type { PairFilter } from './matrix.js';
import { fullLayers, type HeadRef, type LayerWeights, type ModelViewMode, PNG_SCALE } from './model-grid.js';
import { modelControls } from './model-view-controls.js';
import { ModelThumbnails } from './model-view-grid.js';
import { ModelPanel } from './model-view-panel.js';
import { checkLayer, checkSelected, clickPanelToken, indexList, openingModelState } from './model-view-state.js';
import { carryLayer, withParts, type PartOptions } from './parts.js';
import { sceneSvg, scenePng, type Painter } from './painter.js';
import { categoricalColors, resolveTheme, type Theme, type ThemeName } from './palette.js';
import type { ColorScale } from './raster.js';
import { css } from './styles.js';
import { Tooltip, type TokenRef } from './tooltip.js';

export { GRID_WIDTH } from './layout.js';
export type { HeadRef, ModelViewMode } from './model-grid.js';

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

/** What the model view's parts (grid, panel) share. */
export interface ModelViewContext {
  readonly data: Attention;
  readonly options: ModelViewOptions;
  /** The grid's rows and columns: model layer and head indices. */
  readonly layers: number[];
  readonly heads: number[];
  readonly theme: Theme;
  /** One colour per model layer. */
  readonly colors: string[];
  /** Layers that have arrived (all at once for data given in full). */
  readonly arrived: Map<number, LayerWeights>;
  readonly tooltip: Tooltip;
  state(): ModelViewState;
  update(patch: Partial<ModelViewState>): void;
  render(): void;
}

function singleModelView(container: HTMLElement, data: Attention, options: ModelViewOptions = {}): ModelView {
  const started = performance.now();
  // T query tokens (rows, left); K key tokens (columns, right): K = T but for cross-attention.
  const [L, H] = data.attention.dims;
  const keyTokens = data.keyTokens ?? data.tokens;
  const { label, keyLabel } = tokenLabels(data, options.prettifyTokens !== false);
  const layers = indexList('includeLayers', options.includeLayers, L, 'layer');
  const heads = indexList('includeHeads', options.includeHeads, H, 'head');
  const theme: Theme = resolveTheme(options.theme ?? 'dark', window);
  const colors = categoricalColors(L);
  const progressive = data.attention.data.length === 0;
  const arrived: Map<number, LayerWeights> = progressive ? new Map() : fullLayers(data, layers);
  let state = openingModelState(data, options, layers, heads, progressive);

  // ---- static DOM: root, controls, grid (canvas, axis labels, hit targets, panel), tooltip -------------
  const root = el('div', { class: 'attnviz attnviz-model-view', 'data-theme': theme.name, tabindex: -1 });
  root.append(el('style', { text: css(theme) + modelCss(theme) }));
  const controls = modelControls(data, state, update, () => view);
  const body = el('div', { class: 'av-body' });
  const grid = el('div', { class: 'av-grid' });
  body.append(grid);
  root.append(controls, body);
  const tooltip = new Tooltip(root);
  const v: ModelViewContext = {
    data,
    options,
    layers,
    heads,
    theme,
    colors,
    arrived,
    tooltip,
    state: () => state,
    update,
    render,
  };
  const thumbs = new ModelThumbnails(grid, v);
  const headPanel = new HeadPanel(grid, {
    theme,
    tooltip,
    label: (side, i) => (side === 'left' ? label(i) : keyLabel(i)),
    title: (side, i) => (side === 'left' ? data.tokens[i] : keyTokens[i]),
    promptLength: data.keyTokens ? undefined : data.promptLength,
    focus: () => state,
    hover: (hover) => update({ hover }),
    click: (t) => update(clickPanelToken(state.pinned, t)),
  });
  const panel = new ModelPanel(headPanel, grid, thumbs, v);
  container.append(root);
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.selected) update({ selected: null });
  });

  // ---- render, export, handle -------------------------------------------------------------------------
  let drawnCount = 0;
  function render(): void {
    thumbs.render();
    panel.render();
    drawnCount = thumbs.drawn();
    root.dataset.mode = state.mode;
    root.dataset.thumbnails = String(layers.length * heads.length);
    root.dataset.selected = state.selected ? `${state.selected.layer},${state.selected.head}` : '';
    root.dataset.layers = String(layers.filter((l) => arrived.has(l)).length);
    root.dataset.drawn = String(drawnCount);
  }

  /** The grid as shown and, when open, the panel with its full content (not the scrolled window). */
  function scene(lineWidth: number): { width: number; height: number; draw: (p: Painter) => void } {
    const l = headPanel.layout;
    return {
      width: Math.max(GRID_WIDTH, l ? l.x + l.contentW + 2 * P_PAD : 0),
      height: Math.max(thumbs.g.height, l ? l.y + headPanel.fullHeight() : 0),
      draw: (p) => {
        thumbs.paint(p, lineWidth);
        headPanel.paint(p);
      },
    };
  }

  function update(patch: Partial<ModelViewState>): void {
    checkSelected(patch.selected, layers, heads);
    state = { ...state, ...patch };
    render();
  }

  const view: ModelView = {
    element: root,
    state: () => state,
    update,
    drawn: () => drawnCount,
    addLayer: (layer, weights, size) => {
      const [n, m] = checkLayer(data.attention.dims, layer, weights, size);
      arrived.set(layer, { data: weights, n, m });
      thumbs.addLayer(layer);
      if (state.selected?.layer === layer) panel.key = '';
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
      headPanel.destroy();
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
