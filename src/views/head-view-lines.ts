/**
 * The head view's lines mode in the page: the lines canvas (head-lines.ts draws the frame from the scene) and
 * the token columns over it with their hover lock and tooltips. A very tall view's canvas covers only the part
 * on screen (plus a margin) and is redrawn as the page scrolls.
 */
import { el, sizeCanvas } from './dom.js';
import { drawLines, type LinesScene } from './head-lines.js';
import type { HeadViewContext } from './head-view.js';
import { activeHeads, pinToken } from './head-view-state.js';
import { linesLayout, ROW, type LinesLayout } from './layout.js';
import { CanvasPainter, FONT } from './painter.js';
import { TokenColumns } from './token-columns.js';
import { focusOf, type Side, type TokenRef } from './tooltip.js';

/** Lines canvases taller than this cover only the part of the view on screen (plus a margin). */
const WINDOW_ABOVE = 4096;
const WINDOW_MARGIN = 600;

export class HeadLines {
  private readonly canvas = el('canvas');
  private geo: LinesLayout = linesLayout(0, 0);
  /** The part of the view the canvas covers. */
  private windowTop = 0;
  private windowBottom = 0;
  private widthKey = '';
  private widest = 0;
  private tokenColumns: TokenColumns | null = null;
  private tokensKey = '';

  constructor(private readonly v: HeadViewContext) {
    window.addEventListener('scroll', this.onScroll, { passive: true, capture: true });
  }

  /** All lines, or only those of hovered or pinned tokens (past `allLinesUpTo` tokens, default 256). */
  private allLines(): boolean {
    const { rows, cols } = this.v.weights;
    return Math.max(rows.length, cols.length) <= (this.v.options.allLinesUpTo ?? 256);
  }

  /** The lines mode's scene for the current state (head-lines.ts draws it). */
  scene(): LinesScene {
    const { v } = this;
    const state = v.state();
    const { rows, cols, heads: weights, kth } = v.weights;
    const { theme, colors, label, keyLabel } = v;
    const focus = focusOf(state.pinned, state.hover);
    return {
      ...state,
      rows,
      cols,
      weights,
      kth,
      focus,
      geo: this.geo,
      allLines: this.allLines(),
      theme,
      colors,
      label,
      keyLabel,
    };
  }

  render(): void {
    const { v } = this;
    if (!v.weights.inMemory && !v.weights.loadActive()) {
      v.showNote('Loading heads…');
      return;
    }
    v.weights.refreshKth();
    const n = Math.max(v.weights.rows.length, v.weights.cols.length);
    this.geo = linesLayout(n, this.labelWidth());
    v.body.style.height = `${this.geo.height}px`;
    v.body.style.width = `${this.geo.width}px`;
    if (this.canvas.parentNode !== v.body) v.body.prepend(this.canvas);
    this.drawWindow();
    this.renderTokens();
    const s = v.state();
    v.showNote(
      this.allLines() || s.pinned.length || s.hover
        ? ''
        : `${n} tokens: hover or click a token to draw its lines (all lines up to ${v.options.allLinesUpTo ?? 256}).`,
    );
    v.root.dataset.lines = this.allLines() ? 'all' : 'focus';
  }

  /** Leaving lines mode: the canvas and token elements go, the body takes its content's size again. */
  clear(): void {
    this.canvas.remove();
    this.tokenColumns?.destroy();
    this.tokenColumns = null;
    this.tokensKey = '';
    this.v.body.style.height = '';
    this.v.body.style.width = '';
  }

  destroy(): void {
    window.removeEventListener('scroll', this.onScroll, { capture: true });
  }

  /** The lines canvas over the whole view, or over the part on screen when the view is very tall. */
  private readonly drawWindow = (): void => {
    const { geo } = this;
    let top = 0,
      bottom = geo.height;
    if (geo.height > WINDOW_ABOVE) {
      const box = this.v.body.getBoundingClientRect();
      top = Math.max(0, Math.floor(-box.top - WINDOW_MARGIN));
      bottom = Math.min(geo.height, Math.ceil(window.innerHeight - box.top + WINDOW_MARGIN));
      if (bottom <= top) bottom = Math.min(geo.height, top + 1);
    }
    this.windowTop = top;
    this.windowBottom = bottom;
    this.canvas.style.top = `${top}px`;
    const ctx = sizeCanvas(this.canvas, geo.width, bottom - top);
    this.v.countDrawn(drawLines(new CanvasPainter(ctx), this.scene(), -top, top, bottom));
  };

  private readonly onScroll = (): void => {
    if (this.v.state().mode !== 'lines' || this.geo.height <= WINDOW_ABOVE) return;
    const box = this.v.body.getBoundingClientRect();
    if (-box.top < this.windowTop || window.innerHeight - box.top > this.windowBottom)
      requestAnimationFrame(this.drawWindow);
  };

  /** The widest label at the token font (15 px), measured once per set of rows and columns. */
  private labelWidth(): number {
    const { rows, cols, key: weightsKey } = this.v.weights;
    const key = `${rows.length}/${cols.length}/${weightsKey}`;
    if (key !== this.widthKey) {
      this.widthKey = key;
      const ctx = document.createElement('canvas').getContext('2d')!;
      ctx.font = `15px ${FONT}`;
      this.widest = 0;
      for (const i of rows) this.widest = Math.max(this.widest, ctx.measureText(this.v.label(i)).width);
      for (const j of cols) this.widest = Math.max(this.widest, ctx.measureText(this.v.keyLabel(j)).width);
    }
    return this.widest;
  }

  /** Token elements: rebuilt only when the rows/columns change; classes mark the focus. */
  private renderTokens(): void {
    const { v, geo } = this;
    const key = `${v.weights.key}/${geo.box}/${geo.gap}`;
    if (key !== this.tokensKey) {
      this.tokensKey = key;
      this.tokenColumns?.destroy();
      const { data, label, keyLabel } = v;
      const column = (tokens: number[], x: number, list: string[], show: (i: number) => string) => ({
        tokens,
        x,
        width: geo.box,
        label: show,
        title: (i: number) => list[i],
        promptLength: list === data.tokens ? data.promptLength : undefined,
      });
      const keyTokens = data.keyTokens ?? data.tokens;
      this.tokenColumns = new TokenColumns(
        v.body,
        ROW,
        {
          left: column(v.weights.rows, 0, data.tokens, label),
          right: column(v.weights.cols, geo.box + geo.gap, keyTokens, keyLabel),
        },
        {
          enter: (t, element) => {
            if (!v.state().pinned.length) v.update({ hover: t });
            this.tokenTooltip(t.side, t.index, element);
          },
          leave: () => {
            v.tooltip.hide();
            if (!v.state().pinned.length) v.update({ hover: null });
          },
          click: (t, e) => v.update(pinToken(v.state().pinned, t, e.shiftKey)),
        },
      );
    }
    const s = v.state();
    this.tokenColumns!.mark(focusOf(s.pinned, s.hover), s.pinned);
  }

  /** Tooltip on a token of the side opposite to the focus: the exact weights between them. */
  private tokenTooltip(side: Side, i: number, target: HTMLElement): void {
    const { v } = this;
    const s = v.state();
    const other: TokenRef[] = focusOf(s.pinned, s.hover).filter((f) => f.side !== side);
    if (other.length !== 1) return;
    const q = side === 'right' ? other[0].index : i,
      k = side === 'right' ? i : other[0].index;
    const r = v.weights.rows.indexOf(q),
      c = v.weights.cols.indexOf(k);
    if (r < 0 || c < 0) return;
    const box = target.getBoundingClientRect();
    const each = activeHeads(s).map((h) => `head ${h}: ${v.weights.at(h, r, c).toFixed(4)}`);
    v.tooltip.show(`${v.label(q)} → ${v.keyLabel(k)}\n${each.join('\n')}`, box.right, box.top);
  }
}
