/**
 * Neuron view (Vig 2019 §3.3; BertViz neuron_view): how one query token's attention comes about.
 *
 * Collapsed, it is a one-head head view: left tokens, lines with opacity = weight, right tokens. Hovering a
 * left token keeps its lines and puts a bar (opacity = weight) behind each right token. Clicking a token
 * expands it (and pins it: hovering no longer moves the selection); clicking it again collapses. The (+)/(−)
 * button on the token does the same without pinning. Expanded, five columns show query token i:
 *
 *   Query q            q_r for every query row r (the selected row framed)
 *   Key k              k_j for every key j (framed with opacity tanh(1.8 · a_ij), joined to q_i by elbows)
 *   q × k (elementwise) q_i ⊙ k_j
 *   q · k              q_i · k_j / √d, one square per key
 *   Softmax            the attention weights a_ij from the data, as bars behind the key tokens
 *
 * and a panel beside them breaks the score down by dimension (analysis/contributions.ts): for one key (click
 * a key row or token; by default the key i attends to most) the terms q_n k_n by size and their share of q·k,
 * the top ones framed in the q, k and q × k rows; for the whole row, the dimensions that drive the pattern
 * (marked ▲ above the q column). Rotary models say that q/k are after RoPE; a position bias and a score
 * scale are named in the score. Hovering a cell gives its exact value.
 *
 * The maths (products, scores, softmax, causal mask, the check that softmax(q·k·scale + bias) reproduces the
 * data's attention row, colour scales) is analysis/neuron.ts. Causal models show products and dots only for
 * j ≤ i. A file without q/k gets the collapsed view and a note. Layers with a smaller head size than the
 * stored q/k (zero-padded: the embedded model's 64 and 128) draw only their own dimensions across the column.
 *
 * Colour: theme.positive (blue) for v ≥ 0, theme.negative (orange) for v < 0, opacity tanh(|v| / s), with
 * s = 3 × RMS of that column's values in the shown layer and head (BertViz fixes s = 4; for the golden models
 * 3 × RMS ≈ 4.3). The scales are printed under the controls.
 *
 * Long inputs: only the rows on screen (plus a margin) are drawn and have token elements (virtual-rows.ts),
 * so the view opens in the same time at 50 and at 8k tokens; past ALL_LINES_MAX line pairs the collapsed view
 * draws only the hovered or pinned token's lines. Exports (toSVG, toPNG) draw every row.
 *
 * Everything is drawn on a canvas through painter.ts, so the SVG and PNG exports draw the same scene; the
 * vector cells go as one raster per column (one pixel per value, scaled without smoothing, as Plot's raster).
 * Tokens and headings are DOM text, set through textContent only. The root carries the handle as
 * `attnvizView` (mount.ts) and data-layer, data-head, data-filter, data-expanded, data-selected, data-key
 * ('' when none) and data-rows (the drawn rows, "first-last").
 *
 * The page's parts: the opening state and transitions (neuron-view-state.ts), the controls
 * (neuron-view-controls.ts), the token elements (neuron-view-tokens.ts), the notes (neuron-view-notes.ts) and the
 * expanded cells' tooltips (neuron-view-cells.ts).
 */
import type { KeyContributions, RowContributions } from '../analysis/contributions.js';
import type { NeuronColumns, NeuronScales } from '../analysis/neuron.js';
import type { Attention, AttentionPart } from '../core/attention.js';
import { el, sizeCanvas } from './dom.js';
import type { ViewHandle } from './handle.js';
import type { PairFilter } from './matrix.js';
import { PANEL_W, renderPanel } from './neuron-panel.js';
import {
  ALL_LINES_MAX,
  COLLAPSED_W,
  EXPANDED_W,
  HEADING_BOX,
  HEADINGS,
  neuronDrawing,
  PAD,
  ROW,
  TOP,
  type NeuronSceneOptions,
} from './neuron-scene.js';
import { cellTooltips } from './neuron-view-cells.js';
import { contributionsButton, neuronControls } from './neuron-view-controls.js';
import { NeuronNotes } from './neuron-view-notes.js';
import { neuronDataset, neuronStateChanged, openingNeuronViewState, validNeuronState } from './neuron-view-state.js';
import { NeuronTokens } from './neuron-view-tokens.js';
import { CanvasPainter, scenePng, sceneSvg } from './painter.js';
import { resolveTheme, type Theme, type ThemeName } from './palette.js';
import { carryLayer, type PartOptions, withParts } from './parts.js';
import { css } from './styles.js';
import { Tooltip } from './tooltip.js';
import { covers, type RowWindow, rowWindow, watchViewport } from './virtual-rows.js';

export interface NeuronViewOptions extends PartOptions, NeuronSceneOptions {
  /**
   * Called after every change of the state (the user's or update()'s), e.g. to keep it in a URL. The root also
   * dispatches an `attnviz-change` event (bubbling; `detail` = the state) for pages that did not create the view.
   */
  onChange?: (state: Readonly<NeuronViewState>) => void;
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
  /** The expanded token is `selected`. */
  expanded: boolean;
  /** The key token the panel breaks down (index in the data); null: the key `selected` attends to most. */
  key: number | null;
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export type { NeuronColumns, NeuronScales };

export interface NeuronView extends ViewHandle<NeuronViewState> {
  /** Column values for the selected token (computed whether or not expanded); null without selection or q/k. */
  columns(): NeuronColumns | null;
  /** Null without q/k. */
  scales(): NeuronScales | null;
  /** The panel's numbers for the selected token and key (key null when masked or none); null without q/k. */
  contributions(): { key: KeyContributions | null; row: RowContributions } | null;
}

export { ALL_LINES_MAX, HEADINGS, NEURON_LAYOUT, NO_QK_NOTE, ROW } from './neuron-scene.js';

export const neuronView = withParts<NeuronViewState, NeuronView, NeuronViewOptions>({
  create: singleNeuronView,
  carry: (s, from, to) => {
    // Decoder and cross-attention share their query tokens (the decoder's): the selected token stays.
    const same = from.tokens === to.tokens;
    return {
      layer: carryLayer(s.layer, undefined, to).layer,
      head: s.head,
      theme: s.theme,
      selected: same ? s.selected : null,
      expanded: same && s.selected !== null && s.expanded,
      key: null,
    };
  },
  forward: (current) => ({
    columns: () => current().columns(),
    scales: () => current().scales(),
    contributions: () => current().contributions(),
  }),
});

/** What the neuron view's parts (tokens, notes, cell tooltips) share. */
export interface NeuronViewContext {
  readonly data: Attention;
  readonly drawing: NeuronDrawing;
  readonly body: HTMLElement;
  state(): NeuronViewState;
  update(patch: Partial<NeuronViewState>): void;
  /** The rows and columns shown (and their key), as the last render computed them. */
  shown(): { rows: number[]; cols: number[]; key: string };
}

type NeuronDrawing = ReturnType<typeof neuronDrawing>;

/** The neuron view of one attention (an encoder-decoder's part, or plain data). */
function singleNeuronView(container: HTMLElement, data: Attention, options: NeuronViewOptions = {}): NeuronView {
  let state = openingNeuronViewState(data, options);
  let theme: Theme = resolveTheme(state.theme, window);
  /** What the drawing reads: the state and the resolved theme, kept current by update() and render(). */
  const live = { state, theme };
  const drawing = neuronDrawing(data, options.prettifyTokens !== false, live);
  const { hasQK, scales, columns, panelKey, contributions, expandedNow, scene } = drawing;
  let shown = { rows: [] as number[], cols: [] as number[], key: '' };
  /** The rows drawn on the canvas (and having token elements). */
  let drawn: RowWindow | null = null;

  // ---- static DOM: root, controls, notes, body (canvas, headings, token columns) beside the panel ---------
  const root = el('div', { class: 'attnviz attnviz-neuron-view' });
  const style = el('style');
  const { controls, sync } = neuronControls(data, state, update, () => view);
  const notes = new NeuronNotes(data, hasQK);
  const main = el('div', { class: 'av-main' });
  const body = el('div', { class: 'av-body' });
  const canvas = el('canvas');
  const panel = el('div', { class: 'av-contrib', hidden: true });
  body.append(canvas);
  main.append(body, panel);
  root.append(style, controls, ...notes.elements, main);
  const tooltip = new Tooltip(root);
  container.append(root);
  const headings = neuronHeadings(body);
  const jsonButton = contributionsButton(data, () => state, panelKey);
  const v: NeuronViewContext = { data, drawing, body, state: () => state, update, shown: () => shown };
  const tokens = new NeuronTokens(v);
  const canvasContext = canvasContexts(canvas);

  // 'auto' follows the page's colour scheme as it changes.
  const media = window.matchMedia?.('(prefers-color-scheme: dark)');
  const onScheme = () => {
    if (state.theme === 'auto') render();
  };
  media?.addEventListener?.('change', onScheme);

  /**
   * The rows on screen. Until the first frame the view is taken to start at the viewport's top or below (it was
   * just added, and reading its position would force the page's layout now); the first frame checks.
   */
  let laidOut = false;
  const screenWindow = (overscan?: number) =>
    rowWindow(drawing.geometry(), laidOut ? body.getBoundingClientRect().top : 0, window.innerHeight, overscan);

  function render(): void {
    theme = resolveTheme(state.theme, window);
    live.theme = theme;
    const cssText = css(theme) + neuronCss(theme, drawing.focusColors());
    if (style.textContent !== cssText) style.textContent = cssText; // unchanged CSS would still restyle the page
    shown = drawing.indices();
    // Read the layout before writing to the DOM: reading after would force a synchronous layout.
    body.style.height = `${drawing.bodyHeight()}px`;
    const w = screenWindow();
    const expanded = expandedNow();
    const key = panelKey();
    Object.assign(root.dataset, neuronDataset(state, theme.name, expanded, key));
    sync(state);
    body.style.width = `${expanded ? EXPANDED_W : COLLAPSED_W}px`;
    headings.forEach((h) => {
      h.hidden = !expanded;
    });
    drawWindow(w);
    const manyLines = !expanded && state.selected === null && shown.rows.length * shown.cols.length > ALL_LINES_MAX;
    notes.render(
      manyLines,
      expanded ? scales() : null,
      drawing.size,
      drawn && drawing.windowColumns(drawn),
      drawing.label,
    );
    const tables = expanded ? drawing.panelTables() : [];
    panel.hidden = tables.length === 0;
    renderPanel(panel, tables);
    if (tables.length) panel.prepend(jsonButton);
  }

  /** Draws the canvas and the token elements for rows in `w`. */
  function drawWindow(w: RowWindow): void {
    drawn = w;
    const width = expandedNow() ? EXPANDED_W : COLLAPSED_W;
    canvas.style.top = `${w.y0}px`;
    const ctx = canvasContext(width, Math.max(1, w.y1 - w.y0));
    drawing.drawBody(new CanvasPainter(ctx), -w.y0, w, false);
    tokens.render(w);
    root.dataset.rows = `${w.first}-${w.last}`;
  }

  /** On scroll (and in the first frame): redraw only when rows outside the drawn window came on screen. */
  const checkWindow = () => {
    laidOut = true;
    if (!drawn || !covers(drawn, screenWindow(0))) drawWindow(screenWindow());
  };
  const stopWatching = watchViewport(checkWindow);
  const firstFrame = requestAnimationFrame(checkWindow);
  cellTooltips(canvas, v, tooltip, () => drawn);

  let notifying = false;
  function update(patch: Partial<NeuronViewState>): void {
    const next = validNeuronState(data, { ...state, ...patch }, hasQK);
    const changed = neuronStateChanged(state, next);
    state = next;
    live.state = state;
    render();
    if (!changed || notifying) return;
    // A listener that calls update() again does not recurse into itself.
    notifying = true;
    try {
      options.onChange?.(state);
      root.dispatchEvent(new CustomEvent('attnviz-change', { detail: state, bubbles: true }));
    } finally {
      notifying = false;
    }
  }

  // ---- handle and export: the view as shown (header line, every row, tokens as text, the panel) -----------
  const view: NeuronView = {
    element: root,
    state: () => state,
    update,
    columns,
    scales,
    contributions,
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
      stopWatching();
      cancelAnimationFrame(firstFrame);
      root.remove();
    },
  };
  render();
  return view;
}

/** The column headings of the expanded view, hidden until it expands. */
function neuronHeadings(body: HTMLElement): HTMLElement[] {
  return HEADINGS.map((text, k) => {
    const [x, w] = HEADING_BOX[k];
    const h = el('div', { class: 'av-heading', text, hidden: true });
    Object.assign(h.style, { left: `${x}px`, width: `${w}px` });
    body.append(h);
    return h;
  });
}

/**
 * A canvas context for `canvas` at a size: resized only when the size (or the device pixel ratio) changes, as
 * resizing reallocates; else cleared.
 */
function canvasContexts(canvas: HTMLCanvasElement): (width: number, height: number) => CanvasRenderingContext2D {
  let sizeKey = '';
  return (width, height) => {
    const key = `${width}×${height}@${window.devicePixelRatio || 1}`;
    if (key !== sizeKey) {
      sizeKey = key;
      return sizeCanvas(canvas, width, height);
    }
    const ctx = canvas.getContext('2d')!;
    const transform = ctx.getTransform();
    ctx.resetTransform();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.setTransform(transform);
    return ctx;
  };
}

// ---- styles -------------------------------------------------------------------------------------------

/** The neuron view's additions to styles.ts: 26-px rows, BertViz's focus colours, the (+)/(−) button, panel. */
function neuronCss(t: Theme, focus: { bg: string; text: string }): string {
  const v = '.attnviz.attnviz-neuron-view';
  return `
${v} .av-main{display:flex;flex-wrap:wrap;gap:12px 24px;align-items:flex-start}
${v} .av-body{overflow:visible;flex:none}
${v} .av-heading{position:absolute;top:0;height:${TOP}px;line-height:${TOP}px;font-size:16px;text-align:center;
  white-space:nowrap;pointer-events:none}
${v} .av-token{height:${ROW}px;line-height:${ROW}px;padding:0 ${PAD}px;background:transparent}
${v} .av-token.av-right{cursor:pointer}
${v} .av-token.av-right.av-key{outline:1px solid ${t.text}}
${v} .av-token.av-focus{background:transparent;color:${focus.text}}
${v} .av-toggle{position:absolute;left:4px;top:${(ROW - 16) / 2}px;width:16px;height:16px;border:0;border-radius:50%;
  padding:0;margin:0;cursor:pointer;background:${focus.text};color:${focus.bg};font:bold 14px/16px sans-serif;
  text-align:center}
${v} .av-toggle[data-action=expand]::before{content:'+'}
${v} .av-toggle[data-action=collapse]::before{content:'\\2212'}
${v} .av-scale,${v} .av-check{min-height:1.3em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
${v} .av-check.av-warn{color:${t.negative}}
${v} .av-contrib{position:sticky;top:0;max-height:100vh;overflow:auto;width:${PANEL_W + 40}px;font-size:12px}
${v} .av-contrib h4{margin:4px 0;font-size:13px}
${v} .av-contrib .av-json{float:right}
${v} .av-contrib p{margin:2px 0;color:${t.mutedText}}
${v} .av-terms{border-collapse:collapse;margin:4px 0 10px}
${v} .av-terms th,${v} .av-terms td{padding:1px 6px;text-align:right;font-variant-numeric:tabular-nums}
${v} .av-terms tr.av-top td{background:${t.highlight}}
`;
}
