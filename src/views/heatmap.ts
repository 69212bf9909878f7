/**
 * The heatmap mark: one `[R × C]` matrix (rows = query tokens, columns = key tokens) on a canvas that zooms
 * (wheel, about the pointer; double-click fits) and pans (drag), with a minimap while zoomed in, axis labels
 * (every n-th token, every token once cells are tall enough for text), a tooltip per cell and a click per cell.
 * Used by the head view's heatmap mode and the model view's detail panel.
 *
 * Frames cost the same at 100 and 8,000 tokens: the matrix is painted once, when its data or colour scale
 * changes, into a pyramid of canvases — level 0 one pixel per cell, level i max-pooled by 2^i (so a strong
 * weight survives zooming out) — and a frame copies the visible part of the level whose cells are at least a
 * device pixel with drawImage (no smoothing), then draws at most a screenful of labels. Levels over FINEST
 * pixels a side are not kept as canvases (8k × 8k would be 256 MB); when one of them is due, the cells on
 * screen (at most a screenful, since each is a device pixel or more) are painted from the colour positions.
 * Labels are cut once per token and kept until the data changes, so a frame allocates next to nothing (no
 * garbage to collect mid-gesture); wheel and drag events within a frame are drawn once, at the next animation
 * frame, and a direct draw() drops that pending one.
 *
 * The element carries, for tests and embedding pages, data-rows, data-cols, data-zoom (px per cell ÷ the
 * fitted px per cell), data-label-step (1: every token labelled) and data-level (the pyramid level shown).
 */
import { el, sizeCanvas } from './dom.js';
import { CanvasPainter, type Painter, type Rect } from './painter.js';
import type { Theme } from './palette.js';
import { halve, paint, scaleValues, type ScaleOptions } from './raster.js';
import type { Tooltip } from './tooltip.js';

export interface HeatmapConfig {
  theme: Theme;
  tooltip: Tooltip;
  rowLabel(r: number): string;
  colLabel(c: number): string;
  /** Tooltip text of a cell. */
  describe(r: number, c: number): string;
  /** Whether row or column `i` is a generated token: its label then in italics, as generation.ts marks labels. */
  generated?(axis: 'row' | 'col', i: number): boolean;
  click?(r: number, c: number, e: MouseEvent): void;
}

/** Label bands (px) left of and above the cells. */
export const LABEL_BAND = 110;
/** Cells never get larger than this on first show (a token row of the lines view), nor zoom beyond MAX_CELL. */
export const FIT_MAX_CELL = 22.5;
const MAX_CELL = 40;
/** Labels need this many px of cell per label line; below, every n-th token is labelled. */
const LABEL_PITCH = 12;
const LABEL_CHARS = 16;
/** Pyramid levels stop once the coarsest is at most this many pixels a side (the minimap's source). */
const COARSEST = 256;
const MINIMAP = 120;
/** Rows per putImageData when painting a level, so the RGBA copy stays small at 8k tokens. */
const PAINT_ROWS = 256;
/** Levels larger than this a side are painted per frame from the colour positions, not kept as canvases. */
const FINEST = 4096;
const STEPS = [1, 2, 5];

export class Heatmap {
  readonly element: HTMLDivElement;
  private readonly canvas = el('canvas', { class: 'av-heatmap-canvas' });
  private readonly minimap = el('canvas', { class: 'av-minimap' });
  /** Pyramid levels; null where a level is too large to keep (painted per frame from `positions`). */
  private levels: (HTMLCanvasElement | null)[] = [];
  /** Colour positions (0…255) of every cell, kept only while some level is null. */
  private positions: Uint8Array | null = null;
  private color = '';
  /** The cells painted into `window` last, as "col,row,cols,rows". */
  private readonly window = el('canvas');
  private windowKey = '';
  private rows = 0;
  private cols = 0;
  private width = 0;
  private height = 0;
  /** Fitted cell size, current cell size (px), cell coordinates at the plot's top-left corner. */
  private k0 = 1;
  private k = 1;
  private x0 = 0;
  private y0 = 0;
  private frames: { rows: number[]; cols: number[] } = { rows: [], cols: [] };
  /** Row and column labels as drawn (cut), filled in as they first come on screen. */
  private rowLabels: (string | undefined)[] = [];
  private colLabels: (string | undefined)[] = [];
  private pending = 0;
  private readonly cleanup: (() => void)[] = [];
  /** Duration of the last frame drawn on screen (ms). */
  lastFrameMs = 0;

  constructor(
    parent: HTMLElement,
    private readonly config: HeatmapConfig,
  ) {
    this.element = el('div', { class: 'av-heatmap' }, this.canvas, this.minimap);
    this.minimap.hidden = true;
    parent.append(this.element);
    this.listen();
  }

  /**
   * New data: `w` is `[R × C]`, painted in `color` under `scale`. The view is kept when the shape is the
   * same (a new head or colour scale) and fitted otherwise. `available` is the width the heatmap may take.
   */
  setData(w: Float32Array, R: number, C: number, color: string, scale: ScaleOptions, available: number): void {
    const same = R === this.rows && C === this.cols;
    this.rows = R;
    this.cols = C;
    this.rowLabels = new Array(R);
    this.colLabels = new Array(C);
    // User Timing measures let benchmarks split a first paint into scaling and painting the pyramid.
    performance.mark('attnviz:heatmap-start');
    const t = scaleValues(w, R, C, scale);
    performance.measure('attnviz:heatmap-scale', 'attnviz:heatmap-start');
    performance.mark('attnviz:heatmap-scaled');
    this.buildLevels(t, color);
    performance.measure('attnviz:heatmap-levels', 'attnviz:heatmap-scaled');
    this.k0 = fittedCell(R, C, available);
    this.width = LABEL_BAND + C * this.k0;
    this.height = LABEL_BAND + R * this.k0;
    if (!same || this.k < this.k0) this.fit();
    else this.clampView();
    sizeCanvas(this.canvas, this.width, this.height);
    this.element.style.width = `${this.width}px`;
    this.element.style.height = `${this.height}px`;
    this.element.dataset.rows = String(R);
    this.element.dataset.cols = String(C);
    this.draw();
  }

  /** Rows and columns framed (pinned or hovered tokens). */
  setFrames(rows: number[], cols: number[]): void {
    this.frames = { rows, cols };
    this.requestDraw();
  }

  /** Zoom by `factor` about the plot point (px, py) in CSS px from the plot's top-left corner. */
  zoom(factor: number, px: number, py: number): void {
    const k = Math.min(Math.max(this.k * factor, this.k0), Math.max(this.k0, MAX_CELL));
    this.x0 += px / this.k - px / k;
    this.y0 += py / this.k - py / k;
    this.k = k;
    this.clampView();
    this.requestDraw();
  }

  /** Pan by (dx, dy) CSS px. */
  pan(dx: number, dy: number): void {
    this.x0 -= dx / this.k;
    this.y0 -= dy / this.k;
    this.clampView();
    this.requestDraw();
  }

  fit(): void {
    this.k = this.k0;
    this.x0 = 0;
    this.y0 = 0;
    this.requestDraw();
  }

  /** The visible cells: first row and column, how many of each, px per cell, labelling step. */
  viewport(): { row: number; col: number; rows: number; cols: number; cell: number; labelStep: number } {
    const { plotW, plotH } = this.plot();
    return {
      row: this.y0,
      col: this.x0,
      rows: plotH / this.k,
      cols: plotW / this.k,
      cell: this.k,
      labelStep: this.labelStep(),
    };
  }

  /** The cell under a client point, or null. */
  cellAt(clientX: number, clientY: number): { r: number; c: number } | null {
    const box = this.canvas.getBoundingClientRect();
    const x = clientX - box.left - LABEL_BAND,
      y = clientY - box.top - LABEL_BAND;
    const { plotW, plotH } = this.plot();
    if (x < 0 || y < 0 || x >= plotW || y >= plotH) return null;
    const c = Math.floor(this.x0 + x / this.k),
      r = Math.floor(this.y0 + y / this.k);
    return r >= 0 && c >= 0 && r < this.rows && c < this.cols ? { r, c } : null;
  }

  /** Client coordinates of a cell's centre (tests and benchmarks point at cells with it). */
  cellCenter(r: number, c: number): { x: number; y: number } {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: box.left + LABEL_BAND + (c + 0.5 - this.x0) * this.k,
      y: box.top + LABEL_BAND + (r + 0.5 - this.y0) * this.k,
    };
  }

  size(): { width: number; height: number } {
    return { width: this.width, height: this.height };
  }

  /** The heatmap as shown (cells, labels, frames) at (ox, oy) of any painter: the screen and the exports. */
  paint(p: Painter, ox: number, oy: number): void {
    const { plotW, plotH } = this.plot();
    const plot: Rect = { x: ox + LABEL_BAND, y: oy + LABEL_BAND, w: plotW, h: plotH };
    const level = this.levelFor(window.devicePixelRatio || 1);
    setData(this.element, 'level', String(level));
    const f = 2 ** level;
    const source = this.levels[level];
    if (source) p.raster(source, this.x0 / f, this.y0 / f, plotW / this.k / f, plotH / this.k / f, plot);
    else if (this.positions) {
      const c0 = Math.floor(this.x0),
        r0 = Math.floor(this.y0);
      this.paintWindow(c0, r0, Math.ceil(this.x0 + plotW / this.k) - c0, Math.ceil(this.y0 + plotH / this.k) - r0);
      p.raster(this.window, this.x0 - c0, this.y0 - r0, plotW / this.k, plotH / this.k, plot);
    }

    const view = { x0: this.x0, y0: this.y0, k: this.k, rows: this.rows, cols: this.cols };
    drawAxes(p, plot, view, this.config, this.frames, {
      row: (r) => (this.rowLabels[r] ??= cut(this.config.rowLabel(r))),
      col: (c) => (this.colLabels[c] ??= cut(this.config.colLabel(c))),
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.pending);
    for (const f of this.cleanup) f();
    this.element.remove();
    this.levels = [];
    this.positions = null;
  }

  // ---- drawing --------------------------------------------------------------------------------------------

  requestDraw(): void {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.draw();
    });
  }

  draw(): void {
    const t0 = performance.now();
    // Drawn now: a frame already requested would draw the same picture again.
    if (this.pending) {
      cancelAnimationFrame(this.pending);
      this.pending = 0;
    }
    const dpr = window.devicePixelRatio || 1;
    const ctx = this.canvas.getContext('2d')!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = this.config.theme.background;
    ctx.fillRect(0, 0, this.width, this.height);
    this.paint(new CanvasPainter(ctx), 0, 0);
    this.drawMinimap();
    setData(this.element, 'zoom', (this.k / this.k0).toFixed(2));
    setData(this.element, 'labelStep', String(this.labelStep()));
    this.lastFrameMs = performance.now() - t0;
  }

  /** The cells [c0, c0 + w) × [r0, r0 + h) painted one pixel each into `window` (unless already there). */
  private paintWindow(c0: number, r0: number, w: number, h: number): void {
    const key = `${c0},${r0},${w},${h}`;
    if (key === this.windowKey) return;
    this.windowKey = key;
    const t = this.positions!;
    const cells = new Uint8Array(w * h);
    for (let r = 0; r < h; r++) cells.set(t.subarray((r0 + r) * this.cols + c0, (r0 + r) * this.cols + c0 + w), r * w);
    this.window.width = w;
    this.window.height = h;
    const pixels = paint(cells, this.color, this.config.theme.background);
    this.window.getContext('2d')!.putImageData(new ImageData(pixels, w, h), 0, 0);
  }

  private drawMinimap(): void {
    const zoomed = this.k > this.k0 * 1.001;
    this.minimap.hidden = !zoomed;
    if (!zoomed || !this.levels.length) return;
    const s = MINIMAP / Math.max(this.rows, this.cols);
    const w = this.cols * s,
      h = this.rows * s;
    // Resized only when its size changes: resizing reallocates the canvas, every frame otherwise.
    const dpr = window.devicePixelRatio || 1;
    const ctx =
      this.minimap.width === Math.ceil(w * dpr) && this.minimap.height === Math.ceil(h * dpr)
        ? this.minimap.getContext('2d')!
        : sizeCanvas(this.minimap, w, h);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.levels[this.levels.length - 1]!, 0, 0, w, h);
    const { plotW, plotH } = this.plot();
    ctx.strokeStyle = this.config.theme.text;
    ctx.lineWidth = 1.5;
    ctx.strokeRect(this.x0 * s, this.y0 * s, (plotW / this.k) * s, (plotH / this.k) * s);
    Object.assign(this.minimap.style, { left: `${this.width - w - 6}px`, top: `${LABEL_BAND + 6}px` });
  }

  private buildLevels(t: Uint8Array, color: string): void {
    const { theme } = this.config;
    const canvasFor = (pixels: Uint8Array, w: number, h: number) => {
      if (Math.max(w, h) > FINEST) return null;
      const c = el('canvas', { width: w, height: h });
      const ctx = c.getContext('2d')!;
      for (let y = 0; y < h; y += PAINT_ROWS) {
        const rows = Math.min(PAINT_ROWS, h - y);
        ctx.putImageData(new ImageData(paint(pixels, color, theme.background, y * w, (y + rows) * w), w, rows), 0, y);
      }
      return c;
    };
    this.color = color;
    this.windowKey = '';
    this.levels = [canvasFor(t, this.cols, this.rows)];
    this.positions = this.levels[0] ? null : t;
    let level = t,
      w = this.cols,
      h = this.rows;
    while (Math.max(w, h) > COARSEST) {
      level = halve(level, h, w);
      w = Math.ceil(w / 2);
      h = Math.ceil(h / 2);
      this.levels.push(canvasFor(level, w, h));
    }
  }

  /** The coarsest level whose pixels still cover at least one device pixel each (no cell dropped). */
  private levelFor(dpr: number): number {
    const cellsPerPx = 1 / (this.k * dpr);
    const level = cellsPerPx <= 1 ? 0 : Math.ceil(Math.log2(cellsPerPx));
    return Math.min(level, this.levels.length - 1);
  }

  private labelStep(): number {
    return labelStep(this.k);
  }

  private plot(): { plotW: number; plotH: number } {
    return {
      plotW: Math.min(this.width - LABEL_BAND, (this.cols - this.x0) * this.k),
      plotH: Math.min(this.height - LABEL_BAND, (this.rows - this.y0) * this.k),
    };
  }

  private clampView(): void {
    const cw = (this.width - LABEL_BAND) / this.k,
      ch = (this.height - LABEL_BAND) / this.k;
    this.x0 = Math.min(Math.max(0, this.x0), Math.max(0, this.cols - cw));
    this.y0 = Math.min(Math.max(0, this.y0), Math.max(0, this.rows - ch));
  }

  // ---- interaction ----------------------------------------------------------------------------------------

  private listen(): void {
    const on = <K extends keyof HTMLElementEventMap>(
      target: HTMLElement | Window,
      type: K,
      f: (e: HTMLElementEventMap[K]) => void,
      opts?: AddEventListenerOptions,
    ) => {
      target.addEventListener(type, f as EventListener, opts);
      this.cleanup.push(() => target.removeEventListener(type, f as EventListener, opts));
    };
    const { tooltip } = this.config;
    let drag: { x: number; y: number; moved: boolean } | null = null;
    const local = (e: MouseEvent) => {
      const box = this.canvas.getBoundingClientRect();
      return { x: e.clientX - box.left - LABEL_BAND, y: e.clientY - box.top - LABEL_BAND };
    };
    on(
      this.canvas,
      'wheel',
      (e) => {
        const { x, y } = local(e);
        if (x < 0 || y < 0) return;
        e.preventDefault();
        // deltaMode 1 is lines (Firefox); about 16 px each.
        const dy = e.deltaY * (e.deltaMode === 1 ? 16 : 1);
        this.zoom(Math.exp(-dy * 0.002), x, y);
      },
      { passive: false },
    );
    on(this.canvas, 'mousedown', (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, moved: false };
      e.preventDefault();
    });
    on(window, 'mousemove', (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x,
        dy = e.clientY - drag.y;
      if (!drag.moved && Math.hypot(dx, dy) < 3) return;
      drag.moved = true;
      this.pan(dx, dy);
      drag.x = e.clientX;
      drag.y = e.clientY;
      tooltip.hide();
    });
    on(window, 'mouseup', (e) => {
      const was = drag;
      drag = null;
      if (!was || was.moved) return;
      const hit = this.cellAt(e.clientX, e.clientY);
      if (hit) this.config.click?.(hit.r, hit.c, e);
    });
    on(this.canvas, 'mousemove', (e) => {
      if (drag?.moved) return;
      const hit = this.cellAt(e.clientX, e.clientY);
      if (hit) tooltip.show(this.config.describe(hit.r, hit.c), e.clientX, e.clientY);
      else tooltip.hide();
    });
    on(this.canvas, 'mouseleave', () => tooltip.hide());
    on(this.canvas, 'dblclick', () => this.fit());
    // The minimap: press or drag to centre the view there.
    const centre = (e: MouseEvent) => {
      const box = this.minimap.getBoundingClientRect();
      const s = MINIMAP / Math.max(this.rows, this.cols);
      const { plotW, plotH } = this.plot();
      this.x0 = (e.clientX - box.left) / s - plotW / this.k / 2;
      this.y0 = (e.clientY - box.top) / s - plotH / this.k / 2;
      this.clampView();
      this.requestDraw();
    };
    on(this.minimap, 'mousedown', (e) => {
      e.preventDefault();
      centre(e);
    });
    on(this.minimap, 'mousemove', (e) => {
      if (e.buttons & 1) centre(e);
    });
  }
}

/** Labels every n-th token, n the first of 1, 2, 5, 10, 20, … whose labels are LABEL_PITCH px apart at cell size k. */
function labelStep(k: number): number {
  for (let m = 1; ; m *= 10) for (const s of STEPS) if (s * m * k >= LABEL_PITCH) return s * m;
}

/**
 * The labels (every `labelStep`-th token on screen, generated tokens' in italics) and the frames of framed rows
 * and columns, around the cells drawn in `plot`, for a heatmap showing cell (x0, y0) at the plot's top-left
 * corner at k px a cell.
 */
function drawAxes(
  p: Painter,
  plot: Rect,
  v: { x0: number; y0: number; k: number; rows: number; cols: number },
  config: Pick<HeatmapConfig, 'theme' | 'generated'>,
  frames: { rows: readonly number[]; cols: readonly number[] },
  labels: { row(r: number): string; col(c: number): string },
): void {
  const { theme } = config;
  const { x0, y0, k } = v;
  const step = labelStep(k);
  const size = Math.min(13, Math.max(9, k * 0.75));
  const rowStyle = { color: theme.text, size, anchor: 'end' as const };
  const colStyle = { color: theme.text, size, rotate: -90 };
  const ticks = (from: number, count: number) => {
    const out: number[] = [];
    for (let i = Math.ceil(from / step) * step; i < from + count; i += step) out.push(i);
    return out;
  };
  for (const r of ticks(Math.floor(y0), Math.ceil(plot.h / k) + 1)) {
    const y = plot.y + (r + 0.5 - y0) * k;
    if (r < v.rows && y >= plot.y && y <= plot.y + plot.h)
      p.text(plot.x - 4, y, labels.row(r), { ...rowStyle, italic: config.generated?.('row', r) });
  }
  for (const c of ticks(Math.floor(x0), Math.ceil(plot.w / k) + 1)) {
    const x = plot.x + (c + 0.5 - x0) * k;
    if (c < v.cols && x >= plot.x && x <= plot.x + plot.w)
      p.text(x, plot.y - 4, labels.col(c), { ...colStyle, italic: config.generated?.('col', c) });
  }
  const frame = { color: theme.text, width: 1 };
  for (const r of frames.rows) {
    const y = plot.y + (r - y0) * k;
    if (y + k >= plot.y && y <= plot.y + plot.h) p.rect(plot.x, y, plot.w, k, 'none', 1, frame);
  }
  for (const c of frames.cols) {
    const x = plot.x + (c - x0) * k;
    if (x + k >= plot.x && x <= plot.x + plot.w) p.rect(x, plot.y, k, plot.h, 'none', 1, frame);
  }
}

/** The fitted cell size (px) of an `[R × C]` heatmap given `available` px of width. */
function fittedCell(R: number, C: number, available: number): number {
  const side = Math.max(120, Math.min(available - LABEL_BAND, 900));
  return Math.min(FIT_MAX_CELL, side / Math.max(R, C, 1));
}

/** Width the exports give a heatmap: as a 1200 px wide page does (the cells then take their largest side). */
const EXPORT_WIDTH = 1200;

/** The size (CSS px, labels included) of an `[R × C]` heatmap as it first shows in `available` px. */
export function fittedSize(R: number, C: number, available = EXPORT_WIDTH): { width: number; height: number } {
  const k = fittedCell(R, C, available);
  return { width: LABEL_BAND + C * k, height: LABEL_BAND + R * k };
}

/**
 * A heatmap as it first shows (fitted, not zoomed, nothing framed), drawn at (ox, oy) of any painter with no
 * DOM: Node's image export. Cells are painted one pixel each, max-pooled by 2 until a cell is at least a device
 * pixel at `dpr` (the level the page would show), and scaled without smoothing; its size is `fittedSize`.
 */
export function drawFittedHeatmap(
  p: Painter,
  ox: number,
  oy: number,
  m: { w: Float32Array; R: number; C: number; color: string; scale: ScaleOptions },
  config: Pick<HeatmapConfig, 'theme' | 'rowLabel' | 'colLabel' | 'generated'>,
  dpr: number,
  available = EXPORT_WIDTH,
): void {
  const { R, C } = m;
  const k = fittedCell(R, C, available);
  let t = scaleValues(m.w, R, C, m.scale),
    w = C,
    h = R;
  for (let cellsPerPx = 1 / (k * dpr); cellsPerPx > 1 && Math.max(w, h) > 1; cellsPerPx /= 2) {
    t = halve(t, h, w);
    w = Math.ceil(w / 2);
    h = Math.ceil(h / 2);
  }
  const plot: Rect = { x: ox + LABEL_BAND, y: oy + LABEL_BAND, w: C * k, h: R * k };
  // A pooled level's last pixel may cover fewer cells than the others: stretched over the plot, the picture
  // moves by less than a device pixel.
  p.image(plot.x, plot.y, plot.w, plot.h, { width: w, height: h, data: paint(t, m.color, config.theme.background) });
  drawAxes(
    p,
    plot,
    { x0: 0, y0: 0, k, rows: R, cols: C },
    config,
    { rows: [], cols: [] },
    {
      row: (r) => cut(config.rowLabel(r)),
      col: (c) => cut(config.colLabel(c)),
    },
  );
}

/** Sets a data attribute only when it changes: a write with the same value still makes mutation records. */
function setData(e: HTMLElement, key: string, value: string): void {
  if (e.dataset[key] !== value) e.dataset[key] = value;
}

/** Labels past LABEL_CHARS characters end in an ellipsis (the tooltip has the whole token). */
function cut(s: string): string {
  return s.length > LABEL_CHARS ? `${s.slice(0, LABEL_CHARS - 1)}…` : s;
}
