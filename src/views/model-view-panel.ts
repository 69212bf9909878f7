/**
 * The model view's detail panel for the selected thumbnail (head-panel.ts): that head's tokens and lines, or its
 * heatmap, beside the thumbnail. Its weights come from the page, else from `loadHead` (the last few kept), else
 * the pooled picture the grid has.
 */
import type { HeadPanel, PanelContent } from './head-panel.js';
import type { HeadRef } from './model-grid.js';
import type { ModelViewContext } from './model-view.js';
import type { ModelThumbnails } from './model-view-grid.js';
import { selectCells } from './matrix.js';

export class ModelPanel {
  /** The head and grid layout shown; '' to show again. */
  key = '';
  private loadingHead = '';
  /** Heads fetched with loadHead for the panel (the last few). */
  private readonly loadedHeads = new Map<string, Float32Array>();

  constructor(
    readonly panel: HeadPanel,
    private readonly grid: HTMLElement,
    private readonly thumbs: ModelThumbnails,
    private readonly v: ModelViewContext,
  ) {}

  render(): void {
    const { v, panel, thumbs } = this;
    const s = v.state().selected;
    v.tooltip.hide();
    const key = s ? `${s.layer},${s.head}/${thumbs.key}` : '';
    if (key !== this.key) {
      this.key = '';
      panel.hide();
      if (s) this.show(s, key);
    }
    panel.render();
    const l = panel.layout;
    this.grid.style.height = `${Math.max(thumbs.g.height, l ? l.y + l.height : 0)}px`;
  }

  /** Opens the panel on head `s` (or says it is loading). */
  private show(s: HeadRef, key: string): void {
    const { v, panel, thumbs } = this;
    const title = `Layer ${s.layer}, Head ${s.head}`;
    const got = this.weights(s);
    if (!got) {
      panel.loading(title);
      return;
    }
    this.key = key;
    const state = v.state();
    const li = v.layers.indexOf(s.layer),
      hi = v.heads.indexOf(s.head);
    const { rows, cols } = thumbs.shown;
    panel.show(
      {
        title,
        color: v.colors[s.layer],
        ...got,
        rows,
        cols,
        mode: state.mode === 'lines' && !got.pooled ? 'lines' : 'heatmap',
        scale: state.scale,
      },
      { x: thumbs.thumbX(hi), y: thumbs.thumbY(li), w: thumbs.g.tw },
      thumbs.g.height,
    );
    panel.element.dataset.layer = String(s.layer);
    panel.element.dataset.head = String(s.head);
  }

  /** The selected head's weights: in the page, from loadHead, or pooled; null while loading. */
  private weights(s: HeadRef): Pick<PanelContent, 'weights' | 'pooled'> | null {
    const { v, thumbs } = this;
    const full = thumbs.headWeights(s.layer, s.head);
    if (full) return { weights: full, pooled: null };
    const key = `${s.layer},${s.head}/${thumbs.key}`;
    if (v.options.loadHead) {
      const got = this.loadedHeads.get(key);
      if (got) return { weights: got, pooled: null };
      if (this.loadingHead !== key) {
        this.loadingHead = key;
        void v.options.loadHead(s.layer, s.head).then((w) => {
          if (this.loadingHead !== key) return;
          const { rows, cols } = thumbs.shown;
          this.loadedHeads.set(key, selectCells(w, v.data.attention.dims[3], rows, cols, v.state().hideSpecial));
          if (this.loadedHeads.size > 4) this.loadedHeads.delete(this.loadedHeads.keys().next().value!);
          this.key = '';
          v.render();
        });
      }
      return null;
    }
    const a = v.arrived.get(s.layer);
    if (!a) return null;
    const [, , T, K] = v.data.attention.dims;
    return { weights: a.data.subarray(s.head * a.n * a.m, (s.head + 1) * a.n * a.m), pooled: { R: a.n, C: a.m, T, K } };
  }
}
