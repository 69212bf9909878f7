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
 * long inputs the lines canvas covers only the part of the view on screen).
 *
 * Long inputs whose attention is not in the page: pass an Attention whose `attention.data` is empty (dims
 * still `[L, H, T, K]`) and `loadHead(layer, head)` resolving to that head's `[T × K]` weights; heads are then
 * fetched as the view needs them (heatmap combinations accumulate one head at a time).
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts).
 */
import type { Attention, AttentionPart } from '../core/attention.js';
import { button, checkbox, download, el, numberInput, select, sizeCanvas, textInput } from './dom.js';
import type { ViewHandle } from './handle.js';
import { Heatmap } from './heatmap.js';
import {
  at,
  drawHeader,
  drawLines,
  HEAD_SQUARE,
  HEADER,
  kthLargest,
  type LinesScene,
  linesScene,
  openingState,
  type Scene,
  tokenLabels,
} from './head-lines.js';
import { linesLayout, ROW, type LinesLayout } from './layout.js';
import { layerMatrix, PAIR_FILTERS, filterIndices, selectCells, type PairFilter } from './matrix.js';
import { carryLayer, withParts, type PartOptions } from './parts.js';
import { CanvasPainter, FONT, sceneSvg, scenePng } from './painter.js';
import { categoricalColors, lighten, resolveTheme, type Theme, type ThemeName } from './palette.js';
import { accumulate, COLOR_SCALES, combineHeads, type ColorScale, type Combine } from './raster.js';
import { css } from './styles.js';
import { TokenColumns } from './token-columns.js';
import { focusOf, togglePinned, Tooltip, type Side, type TokenRef } from './tooltip.js';

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

/** Lines canvases taller than this cover only the part of the view on screen (plus a margin). */
const WINDOW_ABOVE = 4096;
const WINDOW_MARGIN = 600;
/** The heatmap tooltip lists heads one by one up to this many. */
const TOOLTIP_HEADS = 16;

export const headView = withParts<HeadViewState, HeadView, HeadViewOptions>({
  create: singleHeadView,
  carry: (s, _from, to, o) => ({
    ...carryLayer(s.layer, o.includeLayers, to),
    heads: s.active.flatMap((a, h) => (a ? [h] : [])),
    hideSpecial: s.hideSpecial,
    threshold: s.threshold,
    topK: s.topK,
    mode: s.mode,
    combine: s.combine,
    scale: s.scale,
  }),
  forward: (current) => ({ drawn: () => current().drawn(), heatmap: () => current().heatmap() }),
});

function singleHeadView(container: HTMLElement, data: Attention, options: HeadViewOptions = {}): HeadView {
  // T query tokens (left); the key tokens (right) are the same but for cross-attention.
  const [L, H, T, K] = data.attention.dims;
  const inMemory = data.attention.data.length > 0;
  if (!inMemory && !options.loadHead) throw new Error('attention.data is empty and no loadHead was given');
  const layers = options.includeLayers ?? Array.from({ length: L }, (_, i) => i);
  const theme: Theme = resolveTheme(options.theme, window);
  const colors = categoricalColors(H);
  const keyTokens = data.keyTokens ?? data.tokens;
  const { label, keyLabel } = tokenLabels(data, options.prettifyTokens !== false);
  let state: HeadViewState = {
    ...openingState(data, options),
    mode: options.mode ?? (Math.max(T, K) > (options.heatmapAbove ?? 96) ? 'heatmap' : 'lines'),
    pinned: [],
    hover: null,
    combine: options.combine ?? 'mean',
    scale: options.scale ?? 'linear',
    exclude: options.exclude ?? [],
  };
  let drawnCount = 0;

  // ---- static DOM: root, controls, head squares, body, tooltip ------------------------------------------
  const root = el('div', { class: 'attnviz attnviz-head-view', 'data-theme': theme.name });
  root.append(el('style', { text: css(theme) }));
  const controls = el('div', { class: 'av-controls' });
  const heatmapControls = el('span', { class: 'av-group' });
  const heads = el('div', { class: 'av-heads', role: 'group', 'aria-label': 'heads' });
  const note = el('div', { class: 'av-note', hidden: true });
  const body = el('div', { class: 'av-body' });
  const canvas = el('canvas');
  root.append(controls, heads, note, body);
  const tooltip = new Tooltip(root);
  container.append(root);

  controls.append(
    select(
      'Layer:',
      layers.map((l) => ({ value: l, label: String(l) })),
      state.layer,
      (layer) => update({ layer }),
    ),
  );
  if (data.sentenceBStart !== null) {
    controls.append(
      select(
        'Attention:',
        (Object.keys(PAIR_FILTERS) as PairFilter[]).map((f) => ({ value: f, label: PAIR_FILTERS[f] })),
        state.filter,
        (filter) => update({ filter, pinned: [], hover: null }),
      ),
    );
  }
  heatmapControls.append(
    select(
      'Heads:',
      [
        { value: 'mean' as const, label: 'Mean' },
        { value: 'max' as const, label: 'Max' },
      ],
      state.combine,
      (combine) => update({ combine }),
    ),
    select(
      'Colour:',
      (Object.keys(COLOR_SCALES) as ColorScale[]).map((s) => ({ value: s, label: COLOR_SCALES[s] })),
      state.scale,
      (scale) => update({ scale }),
    ),
    textInput(
      'Leave out of scale:',
      state.exclude.join(', '),
      { class: 'av-exclude', size: 8, placeholder: 'e.g. 0' },
      (v) => update({ exclude: [...new Set(v.match(/\d+/g)?.map(Number) ?? [])].filter((j) => j < K) }),
    ),
  );
  controls.append(
    select(
      'Show:',
      [
        { value: 'lines' as const, label: 'Lines' },
        { value: 'heatmap' as const, label: 'Heatmap' },
      ],
      state.mode,
      (mode) => update({ mode }),
    ),
    heatmapControls,
    numberInput('Min weight:', state.threshold || null, { min: 0, max: 1, step: 0.01, class: 'av-threshold' }, (v) =>
      update({ threshold: v ?? 0 }),
    ),
    numberInput('Top-k:', state.topK, { min: 1, step: 1, class: 'av-topk' }, (v) =>
      update({ topK: v && v > 0 ? Math.floor(v) : null }),
    ),
    checkbox('Hide special tokens', state.hideSpecial, (hideSpecial) =>
      update({ hideSpecial, pinned: [], hover: null }),
    ),
    button('PNG', async () => download(await view.toPNG(), 'attention-head-view.png')),
    button('SVG', () => download(new Blob([view.toSVG()], { type: 'image/svg+xml' }), 'attention-head-view.svg')),
  );

  const squares = colors.map((_, h) => {
    const b = el('button', {
      type: 'button',
      class: 'av-head',
      'data-head': h,
      title: `Head ${h}`,
      'aria-label': `Head ${h}`,
    });
    b.addEventListener('click', () => {
      // BertViz: a click toggles the head, but the last active head stays on.
      const active = [...state.active];
      active[h] = !active[h];
      if (active.some(Boolean)) update({ active });
    });
    b.addEventListener('dblclick', () => {
      // Double-click solos the head; double-clicking the only active head turns all back on.
      const solo = state.active.every((a, k) => a === (k === h));
      update({ active: state.active.map((_, k) => solo || k === h) });
    });
    heads.append(b);
    return b;
  });

  // ---- data: the shown rows/columns and each head's [R × C] weights -------------------------------------
  let rows: number[] = [];
  let cols: number[] = [];
  /** Per head, the shown weights (filled for the heads the current render needs). */
  let weights: (Float32Array | undefined)[] = [];
  let weightsKey = '';
  let kth: Float32Array[] | null = null;
  let kthKey = '';
  const activeHeads = () => state.active.flatMap((a, h) => (a ? [h] : []));

  /** Rows/columns and, for in-memory data, every head's weights; with a loader, the heads loaded so far. */
  function refreshMatrix(): void {
    const key = `${state.layer}/${state.filter}/${state.hideSpecial}`;
    if (key === weightsKey) return;
    weightsKey = key;
    kthKey = '';
    const sel = { filter: state.filter, hideSpecial: state.hideSpecial };
    if (inMemory) {
      const m = layerMatrix(data, state.layer, sel);
      const n = m.rows.length * m.cols.length;
      ({ rows, cols } = m);
      weights = Array.from({ length: H }, (_, h) => m.data.subarray(h * n, (h + 1) * n));
    } else {
      ({ rows, cols } = filterIndices(data, sel));
      weights = [];
    }
  }

  /** Loads the active heads missing from `weights` (lines mode with a loader), then renders again. */
  let loading: Promise<void> | null = null;
  function loadActive(): boolean {
    const missing = activeHeads().filter((h) => !weights[h]);
    if (!missing.length) return true;
    if (!loading) {
      const key = weightsKey;
      loading = (async () => {
        for (const h of missing) {
          const w = await options.loadHead!(state.layer, h);
          if (key === weightsKey) weights[h] = selectCells(w, K, rows, cols, state.hideSpecial);
        }
      })().finally(() => {
        loading = null;
        render();
      });
    }
    return false;
  }

  const w = (h: number, r: number, c: number) => weights[h]![r * cols.length + c];

  // ---- lines mode -------------------------------------------------------------------------------------
  let geo: LinesLayout = linesLayout(0, 0);
  const allLines = () => Math.max(rows.length, cols.length) <= (options.allLinesUpTo ?? 256);
  /** The lines mode's scene for the current state (head-lines.ts draws it). */
  const lines = (): LinesScene => ({
    ...state,
    rows,
    cols,
    weights,
    kth,
    focus: focusOf(state.pinned, state.hover),
    geo,
    allLines: allLines(),
    theme,
    colors,
    label,
    keyLabel,
  });

  /** Top-k cut-offs, per active head and query row, for the current matrix. */
  function refreshKth(): void {
    const key = `${weightsKey}/${state.topK}/${activeHeads().join(',')}`;
    if (key === kthKey) return;
    kthKey = key;
    const k = state.topK;
    kth = k === null ? null : weights.map((m) => (m ? kthLargest(m, rows.length, cols.length, k) : new Float32Array()));
  }

  function renderLines(): void {
    if (!inMemory && !loadActive()) {
      showNote('Loading heads…');
      return;
    }
    refreshKth();
    const n = Math.max(rows.length, cols.length);
    geo = linesLayout(n, labelWidth());
    body.style.height = `${geo.height}px`;
    body.style.width = `${geo.width}px`;
    if (canvas.parentNode !== body) body.prepend(canvas);
    drawWindow();
    renderTokens();
    showNote(
      allLines() || state.pinned.length || state.hover
        ? ''
        : `${n} tokens: hover or click a token to draw its lines (all lines up to ${options.allLinesUpTo ?? 256}).`,
    );
    root.dataset.lines = allLines() ? 'all' : 'focus';
  }

  /** The lines canvas over the whole view, or over the part on screen when the view is very tall. */
  let windowTop = 0,
    windowBottom = 0;
  function drawWindow(): void {
    let top = 0,
      bottom = geo.height;
    if (geo.height > WINDOW_ABOVE) {
      const box = body.getBoundingClientRect();
      top = Math.max(0, Math.floor(-box.top - WINDOW_MARGIN));
      bottom = Math.min(geo.height, Math.ceil(window.innerHeight - box.top + WINDOW_MARGIN));
      if (bottom <= top) bottom = Math.min(geo.height, top + 1);
    }
    windowTop = top;
    windowBottom = bottom;
    canvas.style.top = `${top}px`;
    const ctx = sizeCanvas(canvas, geo.width, bottom - top);
    drawnCount = drawLines(new CanvasPainter(ctx), lines(), -top, top, bottom);
  }
  const onScroll = () => {
    if (state.mode !== 'lines' || geo.height <= WINDOW_ABOVE) return;
    const box = body.getBoundingClientRect();
    if (-box.top < windowTop || window.innerHeight - box.top > windowBottom) requestAnimationFrame(drawWindow);
  };
  window.addEventListener('scroll', onScroll, { passive: true, capture: true });

  /** The widest label at the token font (15 px), measured once per set of rows and columns. */
  let widthKey = '';
  let widest = 0;
  function labelWidth(): number {
    const key = `${rows.length}/${cols.length}/${weightsKey}`;
    if (key !== widthKey) {
      widthKey = key;
      const ctx = document.createElement('canvas').getContext('2d')!;
      ctx.font = `15px ${FONT}`;
      widest = 0;
      for (const i of rows) widest = Math.max(widest, ctx.measureText(label(i)).width);
      for (const j of cols) widest = Math.max(widest, ctx.measureText(keyLabel(j)).width);
    }
    return widest;
  }

  /** Token elements (lines mode): rebuilt only when the rows/columns change; classes mark the focus. */
  let tokenColumns: TokenColumns | null = null;
  let tokensKey = '';
  function renderTokens(): void {
    const key = `${weightsKey}/${geo.box}/${geo.gap}`;
    if (key !== tokensKey) {
      tokensKey = key;
      tokenColumns?.destroy();
      const column = (tokens: number[], x: number, list: string[], show: (i: number) => string) => ({
        tokens,
        x,
        width: geo.box,
        label: show,
        title: (i: number) => list[i],
        promptLength: list === data.tokens ? data.promptLength : undefined,
      });
      tokenColumns = new TokenColumns(
        body,
        ROW,
        { left: column(rows, 0, data.tokens, label), right: column(cols, geo.box + geo.gap, keyTokens, keyLabel) },
        {
          enter: (t, element) => {
            if (!state.pinned.length) update({ hover: t });
            tokenTooltip(t.side, t.index, element);
          },
          leave: () => {
            tooltip.hide();
            if (!state.pinned.length) update({ hover: null });
          },
          click: (t, e) => pin(t, e.shiftKey),
        },
      );
    }
    tokenColumns!.mark(focusOf(state.pinned, state.hover), state.pinned);
  }

  function pin(t: TokenRef, add: boolean): void {
    const pinned = togglePinned(state.pinned, t, add);
    update({ pinned, hover: pinned.length ? null : t });
  }

  /** Tooltip on a token of the side opposite to the focus: the exact weights between them. */
  function tokenTooltip(side: Side, i: number, target: HTMLElement): void {
    const other = focusOf(state.pinned, state.hover).filter((f) => f.side !== side);
    if (other.length !== 1) return;
    const q = side === 'right' ? other[0].index : i,
      k = side === 'right' ? i : other[0].index;
    const r = rows.indexOf(q),
      c = cols.indexOf(k);
    if (r < 0 || c < 0) return;
    const box = target.getBoundingClientRect();
    const each = activeHeads().map((h) => `head ${h}: ${w(h, r, c).toFixed(4)}`);
    tooltip.show(`${label(q)} → ${keyLabel(k)}\n${each.join('\n')}`, box.right, box.top);
  }

  // ---- heatmap mode: rows = queries, columns = keys; one head or the active heads combined ----------------
  let heatmap: Heatmap | null = null;
  let combined: Float32Array | null = null;
  let combinedKey = '';
  let combining: string | null = null;
  /** What the heatmap was last given: the combination, colour scale and excluded columns. */
  let heatmapLook = '';

  const combination = () => `${weightsKey}/${activeHeads().join(',')}/${state.combine}`;

  /** The shown matrix: one head's weights, or the active heads' mean or max. Null while heads load. */
  function heatmapValues(): Float32Array | null {
    const key = combination();
    if (key === combinedKey) return combined;
    const act = activeHeads();
    const n = rows.length * cols.length;
    if (inMemory) {
      combined =
        act.length === 1
          ? weights[act[0]]!
          : combineHeads(
              act.map((h) => weights[h]!),
              n,
              state.combine,
            );
      combinedKey = key;
      return combined;
    }
    if (combining !== key) {
      // Heads arrive one at a time and are folded in, so a mean of 32 heads at 8k tokens holds two matrices.
      combining = key;
      const { layer, combine, hideSpecial } = state;
      void (async () => {
        const acc = new Float32Array(n);
        for (const [k, h] of act.entries()) {
          if (combining !== key) return;
          accumulate(
            acc,
            [selectCells(await options.loadHead!(layer, h), K, rows, cols, hideSpecial)],
            combine,
            k === 0,
          );
        }
        if (combine === 'mean') for (let i = 0; i < n; i++) acc[i] /= act.length;
        if (combining !== key) return;
        combining = null;
        combined = acc;
        combinedKey = key;
        render();
      })();
    }
    return null;
  }

  function describeCell(r: number, c: number): string {
    const act = activeHeads();
    const head = `${label(rows[r])} → ${keyLabel(cols[c])}`;
    const value = combined ? combined[r * cols.length + c].toFixed(4) : '';
    if (act.length === 1) return `${head}\nhead ${act[0]}: ${value}`;
    const each =
      inMemory && act.length <= TOOLTIP_HEADS ? act.map((h) => `\nhead ${h}: ${w(h, r, c).toFixed(4)}`).join('') : '';
    return `${head}\n${state.combine} of ${act.length} heads: ${value}${each}`;
  }

  function renderHeatmap(): void {
    canvas.remove();
    tokenColumns?.destroy();
    tokenColumns = null;
    tokensKey = '';
    body.style.height = '';
    body.style.width = '';
    if (!heatmap) {
      heatmap = new Heatmap(body, {
        theme,
        tooltip,
        rowLabel: (r) => label(rows[r]),
        colLabel: (c) => keyLabel(cols[c]),
        describe: describeCell,
        generated: (axis, i) => {
          const { promptLength } = data;
          return promptLength !== undefined && (axis === 'row' ? rows : cols)[i] >= promptLength;
        },
        click: (r, _c, e) => pin({ side: 'left', index: rows[r] }, e.shiftKey),
      });
    }
    const values = heatmapValues();
    if (!values) {
      showNote('Loading heads…');
      return;
    }
    const act = activeHeads();
    const look = `${combinedKey}/${state.scale}/${state.exclude.join(',')}`;
    if (look !== heatmapLook) {
      heatmapLook = look;
      const exclude = new Set(state.exclude.flatMap((j) => at(cols, j)));
      // One head in its colour; a combination in the text colour, so no blend of hues washes out.
      const color = act.length === 1 ? colors[act[0]] : theme.text;
      heatmap.setData(values, rows.length, cols.length, color, { scale: state.scale, exclude }, availableWidth());
    }
    const f = focusOf(state.pinned, state.hover);
    heatmap.setFrames(
      f.filter((t) => t.side === 'left').flatMap((t) => at(rows, t.index)),
      f.filter((t) => t.side === 'right').flatMap((t) => at(cols, t.index)),
    );
    showNote('');
    drawnCount = rows.length * cols.length;
  }
  const availableWidth = () => (root.clientWidth || 900) - 16;

  // ---- render -----------------------------------------------------------------------------------------
  function showNote(text: string): void {
    note.textContent = text;
    note.hidden = text === '';
  }

  function render(): void {
    refreshMatrix();
    root.dataset.mode = state.mode;
    root.dataset.layer = String(state.layer);
    heatmapControls.hidden = state.mode !== 'heatmap';
    squares.forEach((b, h) => {
      b.style.background = state.active[h] ? colors[h] : lighten(colors[h]);
      b.setAttribute('aria-pressed', String(state.active[h]));
    });
    if (state.mode === 'lines') {
      heatmap?.destroy();
      heatmap = null;
      heatmapLook = '';
      renderLines();
    } else renderHeatmap();
    root.dataset.drawn = String(drawnCount);
  }

  // ---- export: the view as shown, header and tokens included ---------------------------------------
  function scene(): Scene {
    refreshMatrix();
    if (state.mode === 'heatmap' && heatmap) {
      const hm = heatmap;
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
    return linesScene(lines());
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
    heatmap: () => heatmap,
    toSVG: () => {
      const s = scene();
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene();
      return scenePng(s.width, s.height, theme.background, s.draw);
    },
    destroy: () => {
      window.removeEventListener('scroll', onScroll, { capture: true });
      heatmap?.destroy();
      root.remove();
    },
  };
  render();
  return view;
}
