/**
 * The model view's detail panel (BertViz's pop-up) for one head: lines between a column of query tokens and
 * one of key tokens (token-columns.ts, lines.ts), or a zoomable heatmap (heatmap.ts) for long inputs and for
 * heads that arrived max-pooled (then rows and columns are blocks of tokens). Focus (hovered or pinned token)
 * belongs to the view: the panel reads it through `focus()` and reports hovers and clicks.
 */
import { el, sizeCanvas } from './dom.js';
import { Heatmap, LABEL_BAND } from './heatmap.js';
import { P_GAP, P_PAD, P_ROW, P_TITLE, P_TOKEN, panelLayout, type PanelLayout } from './layout.js';
import { LineBatch } from './lines.js';
import { CanvasPainter, type Painter } from './painter.js';
import type { Theme } from './palette.js';
import type { ColorScale } from './raster.js';
import { TokenColumns } from './token-columns.js';
import type { Side, TokenRef, Tooltip } from './tooltip.js';

/** Heatmap panels: the cells fit this many px. */
const P_HEATMAP = 480;

export interface PanelTokens {
  /** Query tokens (left), key tokens (right): display text and the token as written (title). */
  label(side: Side, i: number): string;
  title(side: Side, i: number): string;
  /** Generated text: the prompt's length, on both sides (self-attention). */
  promptLength?: number;
}

export interface PanelConfig extends PanelTokens {
  theme: Theme;
  tooltip: Tooltip;
  /** The view's focus: the pinned token, else the hovered one. */
  focus(): { hover: TokenRef | null; pinned: TokenRef | null };
  hover(t: TokenRef | null): void;
  /** A click on a token (or a heatmap row): the view pins or unpins it. */
  click(t: TokenRef): void;
}

export interface PanelContent {
  title: string;
  color: string;
  /** `[R × C]` weights, R = rows.length and C = cols.length, or pooled blocks (below). */
  weights: Float32Array;
  /** Token indices of the rows and columns; for pooled weights, `pooled` gives R, C and the token counts. */
  rows: readonly number[];
  cols: readonly number[];
  pooled: { R: number; C: number; T: number; K: number } | null;
  mode: 'lines' | 'heatmap';
  scale: ColorScale;
}

export class HeadPanel {
  readonly element = el('div', { class: 'av-panel', hidden: true, role: 'dialog' });
  private readonly title = el('div', { class: 'av-panel-title' });
  private readonly body = el('div', { class: 'av-panel-body' });
  private readonly inner = el('div', { class: 'av-panel-inner' });
  private readonly canvas = el('canvas');
  private content: PanelContent | null = null;
  private tokens: TokenColumns | null = null;
  private heatmap: Heatmap | null = null;
  /** Where the panel stands and its content box; null while hidden. */
  layout: PanelLayout | null = null;

  constructor(
    parent: HTMLElement,
    private readonly config: PanelConfig,
  ) {
    this.body.append(this.inner);
    this.element.append(this.title, this.body);
    parent.append(this.element);
  }

  /** A title only (the head is on its way). */
  loading(title: string): void {
    this.hide();
    this.element.hidden = false;
    this.title.textContent = `${title} (loading…)`;
  }

  /** Shows `content` beside the thumbnail at `thumb`, kept inside a grid `gridHeight` tall. */
  show(content: PanelContent, thumb: { x: number; y: number; w: number }, gridHeight: number): PanelLayout {
    this.hide();
    this.content = content;
    this.element.hidden = false;
    this.title.textContent = content.title;
    const R = content.pooled?.R ?? content.rows.length,
      C = content.pooled?.C ?? content.cols.length;
    let size: { w: number; h: number };
    if (content.mode === 'lines') {
      size = { w: 2 * P_TOKEN + P_GAP, h: Math.max(R, C, 1) * P_ROW };
      this.inner.prepend(this.canvas);
      this.tokens = this.tokenColumns(content);
    } else {
      this.heatmap = new Heatmap(this.inner, {
        theme: this.config.theme,
        tooltip: this.config.tooltip,
        rowLabel: (r) => this.cellLabel('left', r),
        colLabel: (c) => this.cellLabel('right', c),
        describe: (r, c) => this.pairText(r, c),
        generated: (axis, i) => {
          const { promptLength } = this.config;
          const tokens = axis === 'row' ? content.rows : content.cols;
          return !content.pooled && promptLength !== undefined && tokens[i] >= promptLength;
        },
        click: (r) => {
          if (!content.pooled) this.config.click({ side: 'left', index: content.rows[r] });
        },
      });
      this.heatmap.setData(content.weights, R, C, content.color, { scale: content.scale }, P_HEATMAP + LABEL_BAND);
      size = { w: this.heatmap.size().width, h: this.heatmap.size().height };
    }
    const l = panelLayout(thumb, size, gridHeight);
    this.layout = l;
    Object.assign(this.element.style, {
      left: `${l.x}px`,
      top: `${l.y}px`,
      width: `${l.width}px`,
      borderColor: content.color,
    });
    this.body.style.height = `${l.bodyH}px`;
    Object.assign(this.inner.style, { width: `${l.contentW}px`, height: `${l.contentH}px` });
    this.element.dataset.mode = content.mode;
    return l;
  }

  hide(): void {
    this.element.hidden = true;
    this.content = null;
    this.layout = null;
    this.heatmap?.destroy();
    this.heatmap = null;
    this.tokens?.destroy();
    this.tokens = null;
    this.canvas.remove();
  }

  /** Redraws for the current focus; returns the lines (or cells) drawn. */
  render(): number {
    const content = this.content;
    if (!content || !this.layout) return 0;
    let drawn: number;
    if (content.mode === 'lines') {
      const ctx = sizeCanvas(this.canvas, this.layout.contentW, this.layout.contentH);
      drawn = this.lines(new CanvasPainter(ctx), 0, 0, false);
    } else {
      const f = this.focusAt();
      this.heatmap!.setFrames(f?.side === 'left' ? [f.at] : [], f?.side === 'right' ? [f.at] : []);
      drawn = (content.pooled?.R ?? content.rows.length) * (content.pooled?.C ?? content.cols.length);
    }
    this.element.dataset.drawn = String(drawn);
    const { hover, pinned } = this.config.focus();
    const f = pinned ?? hover;
    this.tokens?.mark(f ? [f] : [], pinned ? [pinned] : []);
    return drawn;
  }

  /** The panel with its whole content (not the scrolled window) at its place, for exports. */
  paint(p: Painter): void {
    const { layout: l, content } = this;
    if (!l || !content) return;
    const height = l.contentH + P_TITLE + 2 * P_PAD;
    p.rect(l.x, l.y, l.contentW + 2 * P_PAD, height, this.config.theme.background, 1, {
      color: content.color,
      width: 1.5,
    });
    p.text(l.x + P_PAD, l.y + P_PAD + P_TITLE / 2 - 2, content.title, {
      color: this.config.theme.text,
      size: 13,
      weight: 'bold',
    });
    const ox = l.x + P_PAD,
      oy = l.y + P_PAD + P_TITLE;
    if (this.heatmap) this.heatmap.paint(p, ox, oy);
    else this.lines(p, ox, oy, true);
  }

  /** Bottom edge of the panel's whole content (for exports' height). */
  fullHeight(): number {
    return this.layout ? this.layout.contentH + P_TITLE + 2 * P_PAD : 0;
  }

  destroy(): void {
    this.hide();
    this.element.remove();
  }

  /** Focused token: the pinned one, else the hovered one, as its row (or column) in the shown matrix. */
  private focusAt(): { side: Side; at: number } | null {
    const { hover, pinned } = this.config.focus();
    const f = pinned ?? hover;
    if (!f || !this.content || this.content.pooled) return null;
    const at = (f.side === 'left' ? this.content.rows : this.content.cols).indexOf(f.index);
    return at < 0 ? null : { side: f.side, at };
  }

  /** Lines (at ox, oy); with `text`, also the focus highlight and token labels (exports; the page uses DOM). */
  private lines(p: Painter, ox: number, oy: number, text: boolean): number {
    const { rows, cols, weights: w, color } = this.content!;
    const { theme, label } = this.config;
    const R = rows.length,
      C = cols.length;
    const f = this.focusAt();
    if (text) {
      if (f) p.rect(ox + (f.side === 'left' ? 0 : P_TOKEN + P_GAP), oy + f.at * P_ROW, P_TOKEN, P_ROW, theme.highlight);
      rows.forEach((i, r) =>
        p.text(ox + P_TOKEN - 4, oy + (r + 0.5) * P_ROW, label('left', i), {
          color: theme.text,
          size: 13,
          anchor: 'end',
        }),
      );
      cols.forEach((j, c) =>
        p.text(ox + P_TOKEN + P_GAP + 4, oy + (c + 0.5) * P_ROW, label('right', j), { color: theme.text, size: 13 }),
      );
    }
    const x1 = ox + P_TOKEN + 2,
      x2 = ox + P_TOKEN + P_GAP - 2,
      y0 = oy + P_ROW / 2;
    const batch = new LineBatch();
    const add = (r: number, c: number) => batch.add(x1, y0 + r * P_ROW, x2, y0 + c * P_ROW, w[r * C + c]);
    if (!f) for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) add(r, c);
    else if (f.side === 'left') for (let c = 0; c < C; c++) add(f.at, c);
    else for (let r = 0; r < R; r++) add(r, f.at);
    batch.draw(p, color, 2);
    return batch.count;
  }

  private tokenColumns(content: PanelContent): TokenColumns {
    const { label, title, tooltip } = this.config;
    const column = (side: Side, tokens: readonly number[], x: number) => ({
      tokens,
      x,
      width: P_TOKEN,
      label: (i: number) => label(side, i),
      title: (i: number) => title(side, i),
      promptLength: this.config.promptLength,
    });
    return new TokenColumns(
      this.inner,
      P_ROW,
      { left: column('left', content.rows, 0), right: column('right', content.cols, P_TOKEN + P_GAP) },
      {
        enter: (t, element) => {
          if (!this.config.focus().pinned) this.config.hover(t);
          this.tokenTooltip(t, element);
        },
        leave: () => {
          tooltip.hide();
          if (!this.config.focus().pinned) this.config.hover(null);
        },
        click: (t) => this.config.click(t),
      },
    );
  }

  /** Tooltip on a token opposite to the pinned (or hovered) one: the exact weight between them. */
  private tokenTooltip(t: TokenRef, target: HTMLElement): void {
    const { hover, pinned } = this.config.focus();
    const other = pinned ?? hover;
    if (!other || other.side === t.side) return;
    const { rows, cols } = this.content!;
    const q = t.side === 'right' ? other.index : t.index,
      k = t.side === 'right' ? t.index : other.index;
    const r = rows.indexOf(q),
      c = cols.indexOf(k);
    if (r < 0 || c < 0) return;
    const box = target.getBoundingClientRect();
    this.config.tooltip.show(this.pairText(r, c), box.right, box.top);
  }

  /** A row's or column's label: its token, or for pooled weights its block of tokens ("tokens 64–127"). */
  private cellLabel(side: Side, i: number): string {
    const { pooled, rows, cols } = this.content!;
    if (!pooled) return this.config.label(side, (side === 'left' ? rows : cols)[i]);
    const [n, total] = side === 'left' ? [pooled.R, pooled.T] : [pooled.C, pooled.K];
    const from = Math.ceil((i * total) / n),
      to = Math.ceil(((i + 1) * total) / n) - 1;
    return from === to ? `token ${from}` : `tokens ${from}–${to}`;
  }

  private pairText(r: number, c: number): string {
    const { pooled, weights, cols } = this.content!;
    const C = pooled?.C ?? cols.length;
    const value = weights[r * C + c].toFixed(4);
    return `${this.cellLabel('left', r)} → ${this.cellLabel('right', c)}\n${pooled ? `max ${value}` : value}`;
  }
}
