/**
 * Head view (Vig 2019 §3.1; BertViz head_view): the attention of one layer as lines from each query token
 * (left) to each key token (right), one colour per head, opacity = weight / active heads. Hovering a token
 * keeps only its lines and shows, on the other side, one block per active head with opacity = that head's
 * weight. Click pins a token, shift-click adds to the pinned set. Long inputs switch to a heatmap.
 *
 * Lines are drawn on a canvas (BertViz's one SVG <line> per weight stalls past ~100 tokens); tokens are DOM
 * elements holding plain text. All state lives in the returned object: several views on a page are independent.
 * Encoder-decoder data gets an "Attention: Encoder / Decoder / Cross" select (parts.ts); for cross-attention
 * the left tokens are the decoder's (queries) and the right ones the encoder's (keys).
 */
import { rgb } from 'd3-color';
import type { Attention, AttentionPart } from '../core/attention.js';
import type { ViewHandle } from './handle.js';
import { button, checkbox, download, el, numberInput, select, sizeCanvas } from './dom.js';
import { layerMatrix, PAIR_FILTERS, type LayerMatrix, type PairFilter } from './matrix.js';
import { carryLayer, partsView, type PartOptions } from './parts.js';
import { CanvasPainter, sceneSvg, scenePng, type Painter } from './painter.js';
import { categoricalColors, lighten, resolveTheme, type Theme, type ThemeName } from './palette.js';
import { css } from './styles.js';
import { prettifyToken } from './tokens.js';

export type HeadViewMode = 'lines' | 'heatmap';

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
  /** Default: lines up to `heatmapAbove` tokens, heatmap beyond. */
  mode?: HeadViewMode;
  heatmapAbove?: number;
  /** Called after every state change (pages that link views, e.g. the compare report, follow it). */
  onChange?: (state: Readonly<HeadViewState>) => void;
}

export type Side = 'left' | 'right';

export interface TokenRef {
  side: Side;
  /** Token index in the data (not the display row). */
  index: number;
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
  /** Encoder-decoder data: the attention shown. */
  part?: AttentionPart;
}

export interface HeadView extends ViewHandle<HeadViewState> {
  /** Number of lines (or heatmap cells) drawn in the last render. */
  drawn(): number;
}

/** BertViz's geometry (px). */
export const ROW = 22.5;
export const BOX = 110;
export const GAP = 115;
const PAD = 7;
const HEAD_SQUARE = 20;
/** Below this opacity a line is invisible at 8-bit colour depth; skipping it changes no pixel. */
const MIN_ALPHA = 1 / 255;
/** Line opacities are quantised to this many levels so each head strokes a handful of paths, not one per line. */
const ALPHA_LEVELS = 64;

export function headView(container: HTMLElement, data: Attention, options: HeadViewOptions = {}): HeadView {
  if (data.encoderDecoder) {
    return partsView<HeadViewState, HeadView, HeadViewOptions>(
      container,
      data,
      options,
      headView,
      (s, _from, to, o) => ({
        ...carryLayer(s.layer, o.includeLayers, to),
        heads: s.active.flatMap((a, h) => (a ? [h] : [])),
        hideSpecial: s.hideSpecial,
        threshold: s.threshold,
        topK: s.topK,
        mode: s.mode,
      }),
    );
  }
  // T query tokens (left); the key tokens (right) are the same but for cross-attention.
  const [L, H, T, K] = data.attention.dims;
  const layers = options.includeLayers ?? Array.from({ length: L }, (_, i) => i);
  const theme: Theme = resolveTheme(options.theme, window);
  const colors = categoricalColors(H);
  const keyTokens = data.keyTokens ?? data.tokens;
  const label = (i: number) => (options.prettifyTokens === false ? data.tokens[i] : prettifyToken(data.tokens[i]));
  const keyLabel = (j: number) => (options.prettifyTokens === false ? keyTokens[j] : prettifyToken(keyTokens[j]));
  const sideLabel = (side: Side, i: number) => (side === 'left' ? label(i) : keyLabel(i));
  const activeInit = options.heads
    ? Array.from({ length: H }, (_, h) => options.heads!.includes(h))
    : Array(H).fill(true);
  let state: HeadViewState = {
    layer: options.layer ?? layers[0],
    active: activeInit.some(Boolean) ? activeInit : Array(H).fill(true),
    filter: data.sentenceBStart === null ? 'all' : (options.filter ?? 'all'),
    hideSpecial: options.hideSpecial ?? false,
    threshold: options.threshold ?? 0,
    topK: options.topK ?? null,
    mode: options.mode ?? (Math.max(T, K) > (options.heatmapAbove ?? 96) ? 'heatmap' : 'lines'),
    pinned: [],
    hover: null,
  };
  let matrix: LayerMatrix;
  let kth: Float32Array | null = null;
  let drawnCount = 0;

  // ---- static DOM: root, controls, head squares, body (canvas + token columns), tooltip ----------------
  const root = el('div', { class: 'attnviz attnviz-head-view', 'data-theme': theme.name });
  root.append(el('style', { text: css(theme) }));
  const controls = el('div', { class: 'av-controls' });
  const heads = el('div', { class: 'av-heads', role: 'group', 'aria-label': 'heads' });
  const body = el('div', { class: 'av-body' });
  const canvas = el('canvas');
  const tooltip = el('div', { class: 'av-tooltip', hidden: true });
  body.append(canvas);
  root.append(controls, heads, body, tooltip);
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

  const squares = colors.map((_color, h) => {
    const b = el('button', {
      class: 'av-head',
      type: 'button',
      title: `head ${h}`,
      'data-head': h,
      'aria-label': `head ${h}`,
    });
    b.addEventListener('click', () => {
      const active = [...state.active];
      active[h] = !active[h];
      if (active.some(Boolean)) update({ active }); // the last active head cannot be switched off
    });
    b.addEventListener('dblclick', () => {
      const only = state.active.filter(Boolean).length === 1 && state.active[h];
      update({ active: state.active.map((_, i) => only || i === h) });
    });
    heads.append(b);
    return b;
  });

  // ---- derived data ---------------------------------------------------------------------------------
  let matrixKey = '';
  function refreshMatrix(): void {
    const key = `${state.layer}/${state.filter}/${state.hideSpecial}/${state.topK}`;
    if (key === matrixKey) return;
    matrixKey = key;
    matrix = layerMatrix(data, state.layer, state);
    kth = state.topK === null ? null : kthLargest(matrix, state.topK);
  }

  /** Focused tokens: the pinned set, else the hovered token (hover previews, a click locks). */
  const focus = (): TokenRef[] => (state.pinned.length ? state.pinned : state.hover ? [state.hover] : []);
  const activeHeads = () => state.active.flatMap((a, h) => (a ? [h] : []));
  const kept = (h: number, r: number, w: number) =>
    w >= state.threshold && (kth === null || w >= kth[h * matrix.rows.length + r]) && w > 0;

  // ---- lines mode -------------------------------------------------------------------------------------
  const leftX = BOX,
    rightX = BOX + GAP;
  const rowY = (r: number, top: number) => top + r * ROW + ROW / 2;

  /** Lines and attention blocks; `top` offsets the rows (0 on the page, below the header in exports). */
  function drawLines(p: Painter, top: number): number {
    const { rows, cols, data: w } = matrix;
    const R = rows.length,
      C = cols.length;
    const act = activeHeads();
    const f = focus();
    const rowSel = new Set(
      f
        .filter((t) => t.side === 'left')
        .map((t) => rows.indexOf(t.index))
        .filter((r) => r >= 0),
    );
    const colSel = new Set(
      f
        .filter((t) => t.side === 'right')
        .map((t) => cols.indexOf(t.index))
        .filter((c) => c >= 0),
    );
    const focused = rowSel.size + colSel.size > 0;

    // Focus background, then per-head blocks on the opposite side (opacity = weight, not divided).
    for (const r of rowSel) p.rect(0, top + r * ROW, BOX, ROW, theme.highlight);
    for (const c of colSel) p.rect(rightX, top + c * ROW, BOX, ROW, theme.highlight);
    const blockW = BOX / act.length;
    if (rowSel.size) {
      act.forEach((h, k) => {
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (const r of rowSel) s += w[(h * R + r) * C + c];
          if (s > 0) p.rect(rightX + k * blockW, top + c * ROW, blockW, ROW, colors[h], Math.min(1, s));
        }
      });
    }
    if (colSel.size) {
      act.forEach((h, k) => {
        for (let r = 0; r < R; r++) {
          let s = 0;
          for (const c of colSel) s += w[(h * R + r) * C + c];
          if (s > 0) p.rect(k * blockW, top + r * ROW, blockW, ROW, colors[h], Math.min(1, s));
        }
      });
    }

    let count = 0;
    for (const h of act) {
      const buckets: number[][] = Array.from({ length: ALPHA_LEVELS + 1 }, () => []);
      const add = (r: number, c: number) => {
        const weight = w[(h * R + r) * C + c];
        const alpha = weight / act.length;
        if (alpha < MIN_ALPHA || !kept(h, r, weight)) return;
        buckets[Math.round(alpha * ALPHA_LEVELS)].push(leftX, rowY(r, top), rightX, rowY(c, top));
        count++;
      };
      if (!focused) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) add(r, c);
      for (const r of rowSel) for (let c = 0; c < C; c++) add(r, c);
      for (const c of colSel) for (let r = 0; r < R; r++) if (!rowSel.has(r)) add(r, c);
      buckets.forEach((segments, level) => p.lines(segments, colors[h], Math.max(level, 0.5) / ALPHA_LEVELS, 2));
    }
    return count;
  }

  // ---- heatmap mode: rows = queries, columns = keys; colour = mix of active heads' colours -------------
  function heatmapPixels(): ImageData {
    const { rows, cols, data: w } = matrix;
    const R = rows.length,
      C = cols.length;
    const act = activeHeads();
    const rgb = act.map((h) => hexRgb(colors[h]));
    const bg = hexRgb(theme.background);
    const img = new ImageData(C, R);
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < C; c++) {
        // Each head contributes weight / active heads of its colour over the background (sums to ≤ 1).
        let a = 0,
          red = 0,
          green = 0,
          blue = 0;
        act.forEach((h, k) => {
          const v = w[(h * R + r) * C + c];
          if (!kept(h, r, v)) return;
          const x = v / act.length;
          a += x;
          red += x * rgb[k][0];
          green += x * rgb[k][1];
          blue += x * rgb[k][2];
        });
        const o = (r * C + c) * 4;
        img.data[o] = red + (1 - a) * bg[0];
        img.data[o + 1] = green + (1 - a) * bg[1];
        img.data[o + 2] = blue + (1 - a) * bg[2];
        img.data[o + 3] = 255;
      }
    }
    return img;
  }

  /** Heatmap cell size: fit the columns in the available width, between 2 and the row height. */
  function cellSize(): number {
    const width = (root.clientWidth || 900) - BOX - 30;
    return Math.max(2, Math.min(ROW, Math.floor((width / matrix.cols.length) * 4) / 4));
  }
  const LABEL_MIN = 8;

  function drawHeatmap(p: Painter, top: number, cell: number): number {
    const { rows, cols } = matrix;
    const labelH = cell >= LABEL_MIN ? BOX : 0;
    p.image(BOX, top + labelH, cols.length * cell, rows.length * cell, heatmapPixels());
    if (cell >= LABEL_MIN) {
      const size = Math.min(15, cell * 0.75);
      rows.forEach((i, r) =>
        p.text(BOX - PAD, top + labelH + r * cell + cell / 2, label(i), { color: theme.text, size, anchor: 'end' }),
      );
      cols.forEach((j, c) =>
        p.text(BOX + c * cell + cell / 2, top + labelH - PAD, keyLabel(j), {
          color: theme.text,
          size,
          anchor: 'start',
          rotate: -90,
        }),
      );
    }
    for (const t of focus()) {
      const r = (t.side === 'left' ? rows : cols).indexOf(t.index);
      if (r < 0) continue;
      if (t.side === 'left')
        p.rect(BOX, top + labelH + r * cell, cols.length * cell, cell, 'none', 1, { color: theme.text, width: 1 });
      else p.rect(BOX + r * cell, top + labelH, cell, rows.length * cell, 'none', 1, { color: theme.text, width: 1 });
    }
    return rows.length * cols.length;
  }

  // ---- render -----------------------------------------------------------------------------------------
  let tokenEls: { left: HTMLElement[]; right: HTMLElement[] } = { left: [], right: [] };

  function render(): void {
    refreshMatrix();
    root.dataset.mode = state.mode;
    root.dataset.layer = String(state.layer);
    squares.forEach((b, h) => {
      b.style.background = state.active[h] ? colors[h] : lighten(colors[h]);
      b.setAttribute('aria-pressed', String(state.active[h]));
    });
    const { rows, cols } = matrix;
    if (state.mode === 'lines') {
      const height = Math.max(rows.length, cols.length) * ROW;
      body.style.height = `${Math.min(height, 900) + 2}px`;
      const ctx = sizeCanvas(canvas, BOX * 2 + GAP, height);
      drawnCount = drawLines(new CanvasPainter(ctx), 0);
      renderTokens();
    } else {
      const cell = cellSize();
      const labelH = cell >= LABEL_MIN ? BOX : 0;
      const height = labelH + rows.length * cell;
      body.style.height = `${Math.min(height, 900) + 2}px`;
      const ctx = sizeCanvas(canvas, BOX + cols.length * cell, height);
      drawnCount = drawHeatmap(new CanvasPainter(ctx), 0, cell);
      renderHeatmapTargets(cell, labelH);
    }
    root.dataset.drawn = String(drawnCount);
  }

  /** Token elements (lines mode): rebuilt only when the rows/columns change; classes mark the focus. */
  let tokensKey = '';
  function renderTokens(): void {
    const key = `lines/${matrix.rows.join(',')}/${matrix.cols.join(',')}`;
    if (key !== tokensKey) {
      tokensKey = key;
      body.querySelectorAll('.av-token, .av-hit').forEach((n) => n.remove());
      const make = (side: Side, i: number, r: number) => {
        const t = el('div', {
          class: 'av-token',
          'data-side': side,
          'data-index': i,
          title: side === 'left' ? data.tokens[i] : keyTokens[i],
          text: sideLabel(side, i),
        });
        Object.assign(
          t.style,
          side === 'left'
            ? { top: `${r * ROW}px`, left: '0', width: `${BOX}px`, textAlign: 'right' }
            : { top: `${r * ROW}px`, left: `${rightX}px`, width: `${BOX}px`, background: 'transparent' },
        );
        t.addEventListener('mouseenter', () => {
          if (!state.pinned.length) update({ hover: { side, index: i } });
          showTooltip(side, i, t);
        });
        t.addEventListener('mouseleave', () => {
          tooltip.hidden = true;
          if (!state.pinned.length) update({ hover: null });
        });
        t.addEventListener('click', (e) => togglePin({ side, index: i }, e.shiftKey));
        body.append(t);
        return t;
      };
      tokenEls = {
        left: matrix.rows.map((i, r) => make('left', i, r)),
        right: matrix.cols.map((j, c) => make('right', j, c)),
      };
    }
    const f = focus();
    for (const side of ['left', 'right'] as const) {
      for (const t of tokenEls[side]) {
        const i = Number(t.dataset.index);
        t.classList.toggle(
          'av-focus',
          f.some((x) => x.side === side && x.index === i),
        );
        t.classList.toggle(
          'av-pinned',
          state.pinned.some((x) => x.side === side && x.index === i),
        );
        // Right-side tokens sit over the blocks: keep their background see-through.
        if (side === 'right' || f.some((x) => x.side === 'right')) t.style.background = 'transparent';
      }
    }
  }

  /** Heatmap mode: the canvas itself takes hover (tooltip per cell) and clicks (pin a query row). */
  let heatmapHandlers: (() => void) | null = null;
  function renderHeatmapTargets(cell: number, labelH: number): void {
    body.querySelectorAll('.av-token').forEach((n) => n.remove());
    tokensKey = '';
    heatmapHandlers?.();
    const at = (e: MouseEvent) => {
      const rect = canvas.getBoundingClientRect();
      const c = Math.floor((e.clientX - rect.left - BOX) / cell);
      const r = Math.floor((e.clientY - rect.top - labelH) / cell);
      return r >= 0 && c >= 0 && r < matrix.rows.length && c < matrix.cols.length ? { r, c } : null;
    };
    const move = (e: MouseEvent) => {
      const hit = at(e);
      if (!hit) {
        tooltip.hidden = true;
        return;
      }
      const i = matrix.rows[hit.r],
        j = matrix.cols[hit.c];
      setTooltip(`${label(i)} → ${keyLabel(j)}\n${weightsText(hit.r, hit.c)}`, e.clientX, e.clientY);
    };
    const leave = () => {
      tooltip.hidden = true;
    };
    const click = (e: MouseEvent) => {
      const hit = at(e);
      if (hit) togglePin({ side: 'left', index: matrix.rows[hit.r] }, e.shiftKey);
    };
    canvas.addEventListener('mousemove', move);
    canvas.addEventListener('mouseleave', leave);
    canvas.addEventListener('click', click);
    heatmapHandlers = () => {
      canvas.removeEventListener('mousemove', move);
      canvas.removeEventListener('mouseleave', leave);
      canvas.removeEventListener('click', click);
      heatmapHandlers = null;
    };
  }

  function togglePin(t: TokenRef, add: boolean): void {
    const same = (x: TokenRef) => x.side === t.side && x.index === t.index;
    const was = state.pinned.some(same);
    let pinned: TokenRef[];
    if (add && state.pinned.every((x) => x.side === t.side))
      pinned = was ? state.pinned.filter((x) => !same(x)) : [...state.pinned, t];
    else pinned = was && state.pinned.length === 1 ? [] : [t];
    update({ pinned, hover: pinned.length ? null : t });
  }

  /** Exact per-head weights for one cell, as tooltip text. */
  function weightsText(r: number, c: number): string {
    const R = matrix.rows.length,
      C = matrix.cols.length;
    return activeHeads()
      .map((h) => `head ${h}: ${matrix.data[(h * R + r) * C + c].toFixed(4)}`)
      .join('\n');
  }

  /** Tooltip on a token of the side opposite to the focus: the exact weights between them. */
  function showTooltip(side: Side, i: number, target: HTMLElement): void {
    const other = focus().filter((f) => f.side !== side);
    if (other.length !== 1) return;
    const q = side === 'right' ? other[0].index : i,
      k = side === 'right' ? i : other[0].index;
    const r = matrix.rows.indexOf(q),
      c = matrix.cols.indexOf(k);
    if (r < 0 || c < 0) return;
    const box = target.getBoundingClientRect();
    setTooltip(`${label(q)} → ${keyLabel(k)}\n${weightsText(r, c)}`, box.right, box.top);
  }

  function setTooltip(text: string, clientX: number, clientY: number): void {
    const base = root.getBoundingClientRect();
    tooltip.textContent = text;
    tooltip.style.left = `${clientX - base.left + 12}px`;
    tooltip.style.top = `${clientY - base.top + 12}px`;
    tooltip.hidden = false;
  }

  // ---- export: the view as shown, header and tokens included ---------------------------------------
  function scene(): { width: number; height: number; draw: (p: Painter) => void } {
    refreshMatrix();
    const header = 30 + HEAD_SQUARE + 10;
    const drawHeader = (p: Painter) => {
      p.text(0, 12, `Layer ${state.layer}${state.filter !== 'all' ? ` · ${PAIR_FILTERS[state.filter]}` : ''}`, {
        color: theme.text,
        size: 13,
        weight: 'bold',
      });
      state.active.forEach((a, h) =>
        p.rect(h * HEAD_SQUARE, 30, HEAD_SQUARE, HEAD_SQUARE, a ? colors[h] : lighten(colors[h])),
      );
    };
    if (state.mode === 'heatmap') {
      const cell = cellSize();
      const labelH = cell >= LABEL_MIN ? BOX : 0;
      return {
        width: Math.max(BOX + matrix.cols.length * cell, H * HEAD_SQUARE) + 10,
        height: header + labelH + matrix.rows.length * cell + 10,
        draw: (p) => {
          drawHeader(p);
          drawHeatmap(p, header, cell);
        },
      };
    }
    const rowsN = Math.max(matrix.rows.length, matrix.cols.length);
    return {
      width: Math.max(BOX * 2 + GAP + 10, H * HEAD_SQUARE) + 10,
      height: header + rowsN * ROW + 10,
      draw: (p) => {
        drawHeader(p);
        drawLines(p, header);
        const style = { color: theme.text, size: 15 };
        matrix.rows.forEach((i, r) => p.text(BOX - PAD, rowY(r, header), label(i), { ...style, anchor: 'end' }));
        matrix.cols.forEach((j, c) => p.text(rightX + PAD, rowY(c, header), keyLabel(j), style));
      },
    };
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
    toSVG: () => {
      const s = scene();
      return sceneSvg(s.width, s.height, theme.background, s.draw);
    },
    toPNG: () => {
      const s = scene();
      return scenePng(s.width, s.height, theme.background, s.draw);
    },
    destroy: () => {
      heatmapHandlers?.();
      root.remove();
    },
  };
  render();
  return view;
}

/** Per head and query row, the k-th largest weight: the top-k cut-off. */
function kthLargest(m: LayerMatrix, k: number): Float32Array {
  const R = m.rows.length,
    C = m.cols.length;
  const out = new Float32Array(m.heads * R);
  for (let hr = 0; hr < m.heads * R; hr++) {
    const row = m.data.slice(hr * C, (hr + 1) * C).sort();
    out[hr] = k >= C ? -Infinity : row[C - k];
  }
  return out;
}

function hexRgb(color: string): [number, number, number] {
  const c = rgb(color);
  return [c.r, c.g, c.b];
}
