/**
 * Head view (Vig 2019 §3.1; BertViz head_view): the attention of one layer as lines from each query token
 * (left) to each key token (right), one colour per head, opacity = weight / active heads. Hovering a token
 * keeps only its lines and shows, on the other side, one block per active head with opacity = that head's
 * weight. Click pins a token, shift-click adds to the pinned set. Past `allLinesUpTo` tokens only the lines of
 * hovered or pinned tokens are drawn (a 2k-token layer has millions of weights); past `heatmapAbove` tokens the
 * view starts as a heatmap: one head, or the active heads combined by mean or max, zoomable (heatmap.ts).
 *
 * Built from shared marks: lines (lines.ts), the heatmap (heatmap.ts, raster.ts), tokens as DOM text with the
 * hover lock and tooltip (tooltip.ts), geometry from layout.ts. The line area widens with the token count and
 * the token columns with the longest label; the view grows with its content and scrolls with the page (for
 * long inputs the lines canvas covers only the part of the view on screen). The page's parts: the opening state
 * and transitions (head-view-state.ts), the controls (head-view-controls.ts), the weights shown
 * (head-view-weights.ts), and the two modes (head-view-lines.ts, head-view-heatmap.ts).
 *
 * Long inputs whose attention is not in the page: pass an Attention whose `attention.data` is empty (dims
 * still `[L, H, T, K]`) and `loadHead(layer, head)` resolving to that head's `[T × K]` weights; heads are then
 * fetched as the view needs them (heatmap combinations accumulate one head at a time).
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts).
 */
import type { Attention, AttentionPart } from '../core/attention.js';
import { el } from './dom.js';
import type { ViewHandle } from './handle.js';
import type { Heatmap } from './heatmap.js';
import { drawHeader, HEAD_SQUARE, HEADER, linesScene, type Scene, tokenLabels } from './head-lines.js';
import { headControls, headSquares } from './head-view-controls.js';
import { HeadHeatmap } from './head-view-heatmap.js';
import { HeadLines } from './head-view-lines.js';
import { activeHeads, openingHeadState } from './head-view-state.js';
import { HeadWeights } from './head-view-weights.js';
import type { PairFilter } from './matrix.js';
import { carryLayer, withParts, type PartOptions } from './parts.js';
import { sceneSvg, scenePng } from './painter.js';
import { categoricalColors, resolveTheme, type Theme, type ThemeName } from './palette.js';
import type { ColorScale, Combine } from './raster.js';
import { css } from './styles.js';
import { Tooltip, type TokenRef } from './tooltip.js';

export type { Side, TokenRef } from './tooltip.js';

export type HeadViewMode = 'lines' | 'heatmap';

/** Resolves to one head's `[T × K]` weights (row-major, rows = queries). */
export type HeadLoader = (layer: number, head: number) => Promise<Float32Array>;

export interface HeadViewOptions extends PartOptions {
  /** Initially selected layer (an index into the model's layers); default the first of includeLayers. */
  layer?: number;
  /** Initially active heads; default all. */
  heads?: number[];
  /** Layers offered in the layer selector; default all. */
  includeLayers?: number[];
  /** Show `Ġthe` as `the` etc. (default true). */
  prettifyTokens?: boolean;
  theme?: ThemeName | 'auto';
  filter?: PairFilter;
  hideSpecial?: boolean;
  /** Hide lines whose weight is below this (default 0). */
  threshold?: number;
  /** Keep only each query token's k strongest lines per head (default all). */
  topK?: number | null;
  /** Default: lines up to `heatmapAbove` tokens (default 96), heatmap beyond. */
  mode?: HeadViewMode;
  heatmapAbove?: number;
  /** Lines mode: above this many tokens (default 256) only hovered or pinned tokens' lines are drawn. */
  allLinesUpTo?: number;
  /** Heatmap: how several active heads combine, 'mean' (default) or 'max'. */
  combine?: Combine;
  /** Heatmap colour scale (raster.ts): 'linear' (default), 'sqrt', 'log', 'row'. */
  scale?: ColorScale;
  /** Heatmap: key token indices left out of the colour scale's maximum, e.g. `[0]` for BOS. */
  exclude?: number[];
  /** Heads on demand when `attention.data` is empty (see the header). */
  loadHead?: HeadLoader;
  /** Called after every state change (pages that link views, e.g. the compare report, follow it). */
  onChange?: (state: Readonly<HeadViewState>) => void;
}

export interface HeadViewState {
  layer: number;
  active: boolean[];
  filter: PairFilter;
  hideSpecial: boolean;
  threshold: number;
  topK: number | null;
  mode: HeadViewMode;
  pinned: TokenRef[];
  hover: TokenRef | null;
  combine: Combine;
  scale: ColorScale;
  exclude: number[];
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export interface HeadView extends ViewHandle<HeadViewState> {
  /** Number of lines (or heatmap cells) drawn in the last render. */
  drawn(): number;
  /** The heatmap (heatmap mode), for zooming from code and reading its viewport. */
  heatmap(): Heatmap | null;
}

export const headView = withParts<HeadViewState, HeadView, HeadViewOptions>({
  create: singleHeadView,
  carry: (s, _from, to, o) => ({
    ...carryLayer(s.layer, o.includeLayers, to),
    heads: activeHeads(s),
    hideSpecial: s.hideSpecial,
    threshold: s.threshold,
    topK: s.topK,
    mode: s.mode,
    combine: s.combine,
    scale: s.scale,
  }),
  forward: (current) => ({ drawn: () => current().drawn(), heatmap: () => current().heatmap() }),
});

/** What the head view's parts (controls, weights, lines and heatmap modes) share. */
export interface HeadViewContext {
  readonly data: Attention;
  readonly options: HeadViewOptions;
  readonly theme: Theme;
  readonly colors: string[];
  label(i: number): string;
  keyLabel(j: number): string;
  readonly root: HTMLElement;
  readonly body: HTMLElement;
  readonly tooltip: Tooltip;
  readonly weights: HeadWeights;
  state(): HeadViewState;
  update(patch: Partial<HeadViewState>): void;
  showNote(text: string): void;
  /** Records the lines (or heatmap cells) just drawn. */
  countDrawn(n: number): void;
}

function singleHeadView(container: HTMLElement, data: Attention, options: HeadViewOptions = {}): HeadView {
  const [L, H] = data.attention.dims;
  const layers = options.includeLayers ?? Array.from({ length: L }, (_, i) => i);
  const weights = new HeadWeights(
    data,
    options.loadHead,
    () => state,
    () => render(),
  );
  const theme: Theme = resolveTheme(options.theme, window);
  const colors = categoricalColors(H);
  let state = openingHeadState(data, options);
  let drawnCount = 0;

  // ---- static DOM: root, controls, head squares, note, body, tooltip ------------------------------------
  const root = el('div', { class: 'attnviz attnviz-head-view', 'data-theme': theme.name });
  root.append(el('style', { text: css(theme) }));
  const { controls, heatmapControls } = headControls(data, state, layers, update, () => view);
  const heads = el('div', { class: 'av-heads', role: 'group', 'aria-label': 'heads' });
  const note = el('div', { class: 'av-note', hidden: true });
  const body = el('div', { class: 'av-body' });
  root.append(controls, heads, note, body);
  const tooltip = new Tooltip(root);
  container.append(root);
  const squares = headSquares(heads, colors, () => state, update);

  const v: HeadViewContext = {
    data,
    options,
    theme,
    colors,
    ...tokenLabels(data, options.prettifyTokens !== false),
    root,
    body,
    tooltip,
    weights,
    state: () => state,
    update,
    showNote: (text) => {
      note.textContent = text;
      note.hidden = text === '';
    },
    countDrawn: (n) => {
      drawnCount = n;
    },
  };
  const lines = new HeadLines(v);
  const heatmap = new HeadHeatmap(v);

  function render(): void {
    weights.refresh();
    root.dataset.mode = state.mode;
    root.dataset.layer = String(state.layer);
    heatmapControls.hidden = state.mode !== 'heatmap';
    squares.paint(state.active);
    if (state.mode === 'lines') {
      heatmap.clear();
      lines.render();
    } else {
      lines.clear();
      heatmap.render();
    }
    root.dataset.drawn = String(drawnCount);
  }

  // ---- export: the view as shown, header and tokens included ---------------------------------------
  function scene(): Scene {
    weights.refresh();
    if (state.mode === 'heatmap' && heatmap.heatmap) {
      const hm = heatmap.heatmap;
      const { width, height } = hm.size();
      return {
        width: Math.max(width, H * HEAD_SQUARE) + 10,
        height: HEADER + height + 10,
        draw: (p) => {
          drawHeader(p, { ...state, theme, colors });
          hm.paint(p, 0, HEADER);
        },
      };
    }
    return linesScene(lines.scene());
  }

  function update(patch: Partial<HeadViewState>): void {
    state = { ...state, ...patch };
    render();
    options.onChange?.(state);
  }

  const view: HeadView = {
    element: root,
    state: () => state,
    update,
    drawn: () => drawnCount,
    heatmap: () => heatmap.heatmap,
    toSVG: () => {
      const s = scene();
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene();
      return scenePng(s.width, s.height, theme.background, s.draw);
    },
    destroy: () => {
      lines.destroy();
      heatmap.clear();
      root.remove();
    },
  };
  render();
  return view;
}
