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
 */
import type { KeyContributions, RowContributions } from '../analysis/contributions.js';
import { headVector, scoreFormula, scoreScale, type NeuronColumns, type NeuronScales } from '../analysis/neuron.js';
import { neuronReport } from '../analysis/neuron-report.js';
import type { Attention, AttentionPart } from '../core/attention.js';
import { button, download, el, select, sizeCanvas } from './dom.js';
import type { ViewHandle } from './handle.js';
import { filterIndices, PAIR_FILTERS, type PairFilter } from './matrix.js';
import { PANEL_W, renderPanel } from './neuron-panel.js';
import { CanvasPainter, scenePng, sceneSvg } from './painter.js';
import { resolveTheme, type Theme, type ThemeName } from './palette.js';
import { carryLayer, type PartOptions, withParts } from './parts.js';
import { css } from './styles.js';
import { Tooltip } from './tooltip.js';
import {
  ALL_LINES_MAX,
  COLLAPSED_W,
  D_X,
  DOT,
  EXPANDED_W,
  HEADING_BOX,
  HEADINGS,
  K_X,
  neuronDrawing,
  neuronIndex,
  NO_QK_NOTE,
  openingNeuronState,
  P_X,
  PAD,
  Q_X,
  RIGHT_W,
  RIGHT_X,
  ROW,
  S_W,
  S_X,
  TOKEN_W,
  TOP,
  VEC_W,
  type NeuronSceneOptions,
} from './neuron-scene.js';
import { generationClass } from './generation.js';
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

/** The neuron view of one attention (an encoder-decoder's part, or plain data). */
function singleNeuronView(container: HTMLElement, data: Attention, options: NeuronViewOptions = {}): NeuronView {
  const [L, H] = data.attention.dims;
  const keyTokens = data.keyTokens ?? data.tokens;
  let state: NeuronViewState = {
    ...openingNeuronState(data, options),
    theme: options.theme ?? 'dark',
    pinned: options.selected != null,
  };
  let theme: Theme = resolveTheme(state.theme, window);
  /** What the drawing reads: the state and the resolved theme, kept current by update() and render(). */
  const live = { state, theme };
  const drawing = neuronDrawing(data, options.prettifyTokens !== false, live);
  const { hasQK, label, keyLabel } = drawing;

  // ---- static DOM: root, controls, notes, body (canvas, headings, token columns) beside the panel ---------
  const root = el('div', { class: 'attnviz attnviz-neuron-view' });
  const style = el('style');
  const controls = el('div', { class: 'av-controls' });
  // The notes keep their lines when empty (visibility, not display), so showing them never moves the tokens.
  const scaleNote = el('div', { class: 'av-note av-scale' });
  const checkNote = el('div', { class: 'av-note av-check' });
  const linesNote = el('div', { class: 'av-note av-lines' });
  const show = (e: HTMLElement, on: boolean) => {
    e.style.visibility = on ? 'visible' : 'hidden';
  };
  const main = el('div', { class: 'av-main' });
  const body = el('div', { class: 'av-body' });
  const canvas = el('canvas');
  const panel = el('div', { class: 'av-contrib', hidden: true });
  body.append(canvas);
  main.append(body, panel);
  const notes = hasQK
    ? [scaleNote, checkNote]
    : [el('div', { class: 'av-note av-no-qk', role: 'note', text: NO_QK_NOTE })];
  root.append(style, controls, ...notes, linesNote, main);
  const tooltip = new Tooltip(root);
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

  /** The panel's numbers (analysis/neuron-report.ts, as `attnviz neurons -o x.json` writes them). */
  const jsonButton = button('JSON', () => {
    const report = neuronReport(data, state.layer, state.head, state.selected!, panelKey() ?? undefined);
    const name = `neuron-contributions-l${state.layer}-h${state.head}-t${state.selected}.json`;
    download(new Blob([JSON.stringify(report, null, 1)], { type: 'application/json' }), name);
  });
  jsonButton.classList.add('av-json');

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

  // ---- derived data and drawing (neuron-scene.ts); the rows and columns shown, as it last computed them -------
  let rows: number[] = [],
    cols: number[] = [],
    indicesKey = '';
  const refreshIndices = () => {
    ({ rows, cols, key: indicesKey } = drawing.indices());
  };
  const {
    size,
    scales,
    columns,
    windowColumns,
    panelKey,
    contributions,
    panelTables,
    expandedNow,
    bodyHeight,
    geometry,
    focusColors,
    drawBody,
    scene,
  } = drawing;
  /**
   * The rows on screen. Until the first frame the view is taken to start at the viewport's top or below (it was
   * just added, and reading its position would force the page's layout now); the first frame checks.
   */
  let laidOut = false;
  const screenWindow = (overscan?: number) =>
    rowWindow(geometry(), laidOut ? body.getBoundingClientRect().top : 0, window.innerHeight, overscan);
  const inWindow = (n: number, w: RowWindow) => n >= w.first && n < w.last;
  // ---- DOM tokens: only those of the drawn rows exist ---------------------------------------------------
  const tokenEls = { left: new Map<number, HTMLElement>(), right: new Map<number, HTMLElement>() };
  let tokensKey = '';
  function makeToken(side: 'left' | 'right', n: number): HTMLElement {
    const i = side === 'left' ? rows[n] : cols[n];
    const generated = generationClass(side === 'left' || !data.keyTokens ? data.promptLength : undefined, i);
    const t = el(
      'div',
      {
        class: `av-token av-${side}${generated}`,
        'data-side': side,
        'data-index': i,
        title: side === 'left' ? data.tokens[i] : keyTokens[i],
      },
      el('span', { class: 'av-label', text: side === 'left' ? label(i) : keyLabel(i) }),
    );
    t.style.top = `${TOP + n * ROW}px`;
    if (side === 'left') {
      Object.assign(t.style, { left: '0', width: `${TOKEN_W}px`, textAlign: 'right' });
      t.tabIndex = 0;
      t.setAttribute('role', 'button');
      t.addEventListener('mouseenter', () => {
        if (!state.pinned) update({ selected: i });
      });
      t.addEventListener('mouseleave', () => {
        if (!state.pinned && !state.expanded) update({ selected: null });
      });
      t.addEventListener('click', () => clickToken(i));
      t.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter' && e.key !== ' ') return;
        e.preventDefault();
        clickToken(i);
      });
    } else t.addEventListener('click', () => update({ key: i }));
    body.append(t);
    return t;
  }

  /** A click expands the token and pins it; on the pinned, expanded token it collapses and unpins. */
  function clickToken(i: number): void {
    if (!hasQK) update(state.pinned && state.selected === i ? { pinned: false } : { selected: i, pinned: true });
    else if (state.pinned && state.selected === i && state.expanded) update({ expanded: false, pinned: false });
    else update({ selected: i, pinned: true, expanded: true });
  }

  function renderTokens(w: RowWindow): void {
    const key = `${indicesKey}`;
    if (key !== tokensKey) {
      tokensKey = key;
      for (const m of Object.values(tokenEls)) {
        for (const t of m.values()) t.remove();
        m.clear();
      }
    }
    const expanded = expandedNow();
    for (const [side, list] of [
      ['left', rows],
      ['right', cols],
    ] as const) {
      const m = tokenEls[side];
      for (const [n, t] of m)
        if (!inWindow(n, w)) {
          t.remove();
          m.delete(n);
        }
      for (let n = w.first; n < Math.min(w.last, list.length); n++) if (!m.has(n)) m.set(n, makeToken(side, n));
    }
    const panelKeyNow = expanded ? panelKey() : null;
    for (const t of tokenEls.right.values()) {
      Object.assign(t.style, { left: `${expanded ? S_X : RIGHT_X}px`, width: `${expanded ? S_W : RIGHT_W}px` });
      t.classList.toggle('av-key', Number(t.dataset.index) === panelKeyNow);
    }
    let focused: HTMLElement | null = null;
    for (const t of tokenEls.left.values()) {
      const on = Number(t.dataset.index) === state.selected;
      t.classList.toggle('av-focus', on);
      t.classList.toggle('av-pinned', on && state.pinned);
      t.setAttribute('aria-expanded', String(on && expanded));
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
  let drawn: RowWindow | null = null;
  function render(): void {
    theme = resolveTheme(state.theme, window);
    live.theme = theme;
    const cssText = css(theme) + neuronCss(theme, focusColors());
    if (style.textContent !== cssText) style.textContent = cssText; // unchanged CSS would still restyle the page
    refreshIndices();
    // Read the layout before writing to the DOM: reading after would force a synchronous layout.
    body.style.height = `${bodyHeight()}px`;
    const w = screenWindow();
    const expanded = expandedNow();
    const key = panelKey();
    Object.assign(root.dataset, {
      theme: theme.name,
      layer: String(state.layer),
      head: String(state.head),
      filter: state.filter,
      expanded: String(expanded),
      selected: state.selected === null ? '' : String(state.selected),
      pinned: String(state.pinned),
      key: key === null ? '' : String(key),
    });
    syncSelect(layerSelect, state.layer);
    syncSelect(headSelect, state.head);
    syncSelect(filterSelect, state.filter);
    syncSelect(themeSelect, state.theme);
    body.style.width = `${expanded ? EXPANDED_W : COLLAPSED_W}px`;
    headings.forEach((h) => {
      h.hidden = !expanded;
    });
    drawWindow(w);
    renderNotes(expanded);
    const tables = expanded ? panelTables() : [];
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
    drawBody(new CanvasPainter(ctx), -w.y0, w, false);
    renderTokens(w);
    root.dataset.rows = `${w.first}-${w.last}`;
  }

  /** On scroll (and in the first frame): redraw only when rows outside the drawn window came on screen. */
  const checkWindow = () => {
    laidOut = true;
    if (!drawn || !covers(drawn, screenWindow(0))) drawWindow(screenWindow());
  };
  const stopWatching = watchViewport(checkWindow);
  const firstFrame = requestAnimationFrame(checkWindow);

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
    const manyLines = !expanded && state.selected === null && rows.length * cols.length > ALL_LINES_MAX;
    linesNote.textContent = manyLines ? 'Long input: hover or click a token to see its lines.' : '';
    linesNote.hidden = !manyLines;
    const s = expanded ? scales() : null;
    show(scaleNote, s !== null);
    if (s) {
      const d = size(),
        stored = data.query!.dims[3];
      scaleNote.textContent =
        'Colour: blue ≥ 0, orange < 0, opacity tanh(|v| / s), s = 3 × RMS in this head: ' +
        `${s.vector.toFixed(2)} (q, k), ` +
        `${s.product.toFixed(2)} (q × k), ${s.dot.toFixed(2)} (q · k). Head size ${d}` +
        `${d < stored ? ` (q/k stored zero-padded to ${stored})` : ''}.${data.rotary ? ' q, k after RoPE.' : ''}`;
      scaleNote.title = scaleNote.textContent;
    }
    const cs = drawn && windowColumns(drawn);
    show(checkNote, cs !== null);
    if (!cs) return;
    const ok = cs.maxDiff <= cs.tolerance;
    checkNote.classList.toggle('av-warn', !ok);
    checkNote.dataset.ok = String(ok);
    const formula = scoreFormula(data);
    checkNote.textContent = ok
      ? `✓ ${formula} reproduces the attention row of “${label(cs.query)}” ` +
        `(max |Δ| ${cs.maxDiff.toExponential(1)})`
      : `⚠ ${formula} differs from the attention row of “${label(cs.query)}” ` +
        `by up to ${cs.maxDiff.toFixed(4)}: ` +
        'these q/k may not be the vectors that produced this attention (e.g. keys before RoPE, a missing bias or ' +
        'causal mask).';
    checkNote.title = checkNote.textContent;
  }

  // ---- tooltips on the expanded columns -------------------------------------------------------------------
  /** The exact value under (x, y) of the body, as tooltip text, and the key row it is on; null off the cells. */
  function hit(x: number, y: number): { text: string; key: number | null } | null {
    if (!expandedNow() || !drawn) return null;
    const n = Math.floor((y - TOP) / ROW);
    const d = size(),
      cell = Math.floor(((x - (x >= P_X ? P_X : x >= K_X ? K_X : Q_X)) / VEC_W) * d);
    const vec = (t: typeof data.query, i: number) => headVector(t!, state.layer, state.head, i);
    if (x >= Q_X && x < Q_X + VEC_W && n >= 0 && n < rows.length) {
      const i = rows[n];
      return { text: `“${label(i)}” (${i}) q[${cell}] = ${vec(data.query, i)[cell]}`, key: null };
    }
    if (n < 0 || n >= cols.length) return null;
    const j = cols[n];
    if (x >= K_X && x < K_X + VEC_W)
      return { text: `“${keyLabel(j)}” (${j}) k[${cell}] = ${vec(data.key, j)[cell]}`, key: j };
    // The pointer is over a drawn row, so its key is in the drawn window's columns.
    const cs = windowColumns(drawn),
      c = n - drawn.first;
    if (!cs || c < 0 || c >= cs.keys.length || cs.masked[c]) return null;
    if (x >= P_X && x < P_X + VEC_W) {
      const t = cs.products[c]![cell],
        share = (t / (cs.dots[c]! / scoreScale(data))) * 100;
      return { text: `q[${cell}] × k[${cell}] = ${t} (${share.toFixed(1)} % of q · k)`, key: j };
    }
    if (x >= D_X && x < D_X + DOT)
      return {
        text:
          `“${label(cs.query)}” → “${keyLabel(j)}”\nscore ${cs.dots[c]}\n` +
          `softmax ${cs.computed[c]}\nattention ${cs.softmax[c]}`,
        key: j,
      };
    return null;
  }
  const bodyPoint = (e: MouseEvent) => {
    const box = canvas.getBoundingClientRect();
    return { x: e.clientX - box.left, y: e.clientY - box.top + (drawn?.y0 ?? 0) };
  };
  canvas.addEventListener('mousemove', (e) => {
    const { x, y } = bodyPoint(e);
    const h = hit(x, y);
    if (h) tooltip.show(h.text, e.clientX, e.clientY);
    else tooltip.hide();
  });
  canvas.addEventListener('mouseleave', () => tooltip.hide());
  canvas.addEventListener('click', (e) => {
    const { x, y } = bodyPoint(e);
    const h = hit(x, y);
    if (h?.key !== null && h?.key !== undefined) update({ key: h.key });
  });

  // ---- export: the view as shown (header line, every row, tokens as text, the panel) ----------------------
  let notifying = false;
  function update(patch: Partial<NeuronViewState>): void {
    const next = { ...state, ...patch };
    next.layer = neuronIndex('layer', next.layer, L, 0)!;
    next.head = neuronIndex('head', next.head, H, 0)!;
    if (data.sentenceBStart === null) next.filter = 'all';
    const allowed = filterIndices(data, { filter: next.filter, hideSpecial: false });
    if (next.selected !== null && !allowed.rows.includes(next.selected)) next.selected = null;
    if (next.key !== null && !allowed.cols.includes(next.key)) next.key = null;
    if (next.selected === null) next.pinned = false;
    if (!hasQK) next.expanded = false;
    const changed = (Object.keys(next) as (keyof NeuronViewState)[]).some((k) => next[k] !== state[k]);
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
