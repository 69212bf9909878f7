/**
 * The model view's grid in the page: one canvas of thumbnails (model-grid.ts draws them), axis labels and a
 * transparent button over each thumbnail as DOM. Drawn whole when the layout changes (mode, filter, hidden
 * tokens, scale), a layer's row as it arrives, and only the two thumbnails concerned when the selection moves.
 */
import { el, sizeCanvas } from './dom.js';
import { GRID_WIDTH, type GridLayout } from './layout.js';
import {
  drawGrid,
  drawThumb,
  gridAxes,
  headWeights,
  type HeadRef,
  type ModelGrid,
  modelGrid,
  thumbPixels,
  thumbX as gridThumbX,
  thumbY as gridThumbY,
} from './model-grid.js';
import type { ModelViewContext } from './model-view.js';
import { clickThumb, isSelected, sameHead } from './model-view-state.js';
import { CanvasPainter, type Painter, type Pixels } from './painter.js';

export class ModelThumbnails {
  /** The grid as last laid out, and what it was laid out for. */
  shown!: ModelGrid;
  key = '';
  private readonly canvas = el('canvas');
  private readonly axis = el('div', { class: 'av-axes' });
  private readonly targets = el('div', { class: 'av-thumbs' });
  private images = new Map<number, Pixels>();
  private painter!: CanvasPainter;
  /** Lines or cells drawn per thumbnail. */
  private counts: number[] = [];
  private drawnSelection: HeadRef | null = null;

  constructor(
    grid: HTMLElement,
    private readonly v: ModelViewContext,
  ) {
    grid.append(this.canvas, this.axis, this.targets);
  }

  get g(): GridLayout {
    return this.shown.g;
  }

  readonly thumbX = (hi: number) => gridThumbX(this.shown, hi);
  readonly thumbY = (li: number) => gridThumbY(this.shown, li);

  /** One head's shown weights `[R × C]` at full resolution, if the page has them. */
  headWeights(layer: number, head: number): Float32Array | null {
    return headWeights(this.shown, layer, head);
  }

  /** Lines (or heatmap cells) drawn in the grid. */
  drawn(): number {
    return this.counts.reduce((a, b) => a + b, 0);
  }

  /** Thumbnail rasters, painted once per layout (the selection redraws two thumbnails). */
  readonly thumbImage = (l: number, h: number): Pixels | null => {
    const key = l * this.v.data.attention.dims[1] + h;
    const img = this.images.get(key) ?? thumbPixels(this.shown, l, h);
    if (img) this.images.set(key, img);
    return img;
  };

  render(): void {
    const { v } = this;
    const s = v.state();
    const key = `${s.mode}/${s.filter}/${s.hideSpecial}/${s.scale}`;
    if (key !== this.key) {
      this.key = key;
      const { layers, heads, arrived } = v;
      this.shown = modelGrid(v.data, { layers, heads, arrived }, s, v.theme, window.devicePixelRatio || 1);
      this.images = new Map();
      this.axesAndTargets();
      // Lines: a 1× backing store, so hairlines stay 1 device pixel (the fast path) on HiDPI screens too.
      const ctx = sizeCanvas(this.canvas, GRID_WIDTH, this.g.height, s.mode === 'lines' ? 1 : undefined);
      this.painter = new CanvasPainter(ctx);
      this.counts = new Array(v.layers.length * v.heads.length).fill(0);
      for (const l of v.layers) this.drawLayer(l);
    } else if (!sameHead(this.drawnSelection, s.selected)) {
      for (const t of [this.drawnSelection, s.selected])
        if (t) this.drawThumb(v.layers.indexOf(t.layer), v.heads.indexOf(t.head));
    }
    this.drawnSelection = s.selected;
    for (const b of this.targets.children) {
      const t = b as HTMLElement;
      t.setAttribute('aria-pressed', String(isSelected(s, Number(t.dataset.layer), Number(t.dataset.head))));
    }
  }

  /** Layer `l` (re)arrived: its thumbnails are painted again. */
  addLayer(l: number): void {
    const H = this.v.data.attention.dims[1];
    for (let h = 0; h < H; h++) this.images.delete(l * H + h);
    this.drawLayer(l);
  }

  /** The grid as shown, for exports. */
  paint(p: Painter, lineWidth: number): void {
    drawGrid(p, this.shown, this.v.state().selected, lineWidth, this.thumbImage);
  }

  private drawLayer(l: number): void {
    const li = this.v.layers.indexOf(l);
    if (li < 0) return;
    this.v.heads.forEach((_, hi) => this.drawThumb(li, hi));
  }

  private drawThumb(li: number, hi: number): void {
    const { v } = this;
    const n = drawThumb(this.painter, this.shown, li, hi, v.state().selected, 1, this.thumbImage);
    this.counts[li * v.heads.length + hi] = n;
  }

  /** Axis labels and hit targets as DOM, at the positions drawGrid uses for exports. */
  private axesAndTargets(): void {
    const { v, targets } = this;
    this.axis.replaceChildren(
      ...gridAxes(this.shown).map((a) => {
        const d = el('div', { class: `av-axis ${a.cls}`, text: a.text, ...a.attrs });
        d.style.left = `${a.x}px`;
        d.style.top = `${a.y}px`;
        return d;
      }),
    );
    if (!targets.childElementCount) {
      for (const l of v.layers)
        for (const h of v.heads) {
          const b = el('button', {
            type: 'button',
            class: 'av-thumb',
            'data-layer': l,
            'data-head': h,
            title: `Layer ${l}, Head ${h}`,
            'aria-label': `Layer ${l}, Head ${h}`,
          });
          b.addEventListener('click', () => v.update(clickThumb(v.state(), l, h)));
          targets.append(b);
        }
    }
    let k = 0;
    v.layers.forEach((_, li) =>
      v.heads.forEach((__, hi) => {
        const s = (targets.children[k++] as HTMLElement).style;
        s.left = `${this.thumbX(hi)}px`;
        s.top = `${this.thumbY(li)}px`;
        s.width = `${this.g.tw}px`;
        s.height = `${this.g.th}px`;
      }),
    );
  }
}
