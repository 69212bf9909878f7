/**
 * The head view's data: the rows and columns shown (pair filter, hidden special tokens) and each head's
 * `[R × C]` weights, cut from the layer in the page or fetched one head at a time with `loadHead`; the top-k
 * cut-offs of lines mode; the heatmap's matrix (one head, or the active heads' mean or max). Each is kept until
 * what it depends on changes; a fetch that completes calls `loaded` so the view renders again.
 */
import type { Attention } from '../core/attention.js';
import { kthLargest } from './head-lines.js';
import type { HeadLoader, HeadViewState } from './head-view.js';
import { activeHeads } from './head-view-state.js';
import { filterIndices, layerMatrix, selectCells } from './matrix.js';
import { accumulate, combineHeads } from './raster.js';

export class HeadWeights {
  /** Query (row) and key (column) token indices shown. */
  rows: number[] = [];
  cols: number[] = [];
  /** Per head, the shown weights (filled for the heads the current render needs). */
  heads: (Float32Array | undefined)[] = [];
  /** What rows, cols and heads are for: layer, filter, hideSpecial. */
  key = '';
  /** Top-k cut-offs per head and row, as last computed (null: no top-k). */
  kth: Float32Array[] | null = null;
  /** The heatmap's matrix as last computed, and its key. */
  combined: Float32Array | null = null;
  combinedKey = '';
  private kthKey = '';
  private loading: Promise<void> | null = null;
  private combining: string | null = null;
  readonly inMemory: boolean;

  constructor(
    private readonly data: Attention,
    private readonly loadHead: HeadLoader | undefined,
    private readonly state: () => HeadViewState,
    private readonly loaded: () => void,
  ) {
    this.inMemory = data.attention.data.length > 0;
    if (!this.inMemory && !loadHead) throw new Error('attention.data is empty and no loadHead was given');
  }

  /** Weight of head `h` from shown row `r` to shown column `c`. */
  at(h: number, r: number, c: number): number {
    return this.heads[h]![r * this.cols.length + c];
  }

  /** Rows/columns and, for in-memory data, every head's weights; with a loader, the heads loaded so far. */
  refresh(): void {
    const s = this.state();
    const key = `${s.layer}/${s.filter}/${s.hideSpecial}`;
    if (key === this.key) return;
    this.key = key;
    this.kthKey = '';
    const sel = { filter: s.filter, hideSpecial: s.hideSpecial };
    if (this.inMemory) {
      const m = layerMatrix(this.data, s.layer, sel);
      const n = m.rows.length * m.cols.length;
      ({ rows: this.rows, cols: this.cols } = m);
      this.heads = Array.from({ length: this.data.attention.dims[1] }, (_, h) => m.data.subarray(h * n, (h + 1) * n));
    } else {
      ({ rows: this.rows, cols: this.cols } = filterIndices(this.data, sel));
      this.heads = [];
    }
  }

  /** True when every active head is here; else starts loading the missing ones (lines mode with a loader). */
  loadActive(): boolean {
    const missing = activeHeads(this.state()).filter((h) => !this.heads[h]);
    if (!missing.length) return true;
    if (!this.loading) {
      const key = this.key;
      this.loading = (async () => {
        for (const h of missing) {
          const w = await this.loadHead!(this.state().layer, h);
          if (key === this.key) this.heads[h] = this.select(w);
        }
      })().finally(() => {
        this.loading = null;
        this.loaded();
      });
    }
    return false;
  }

  /** Top-k cut-offs, per active head and query row, for the current matrix. */
  refreshKth(): void {
    const s = this.state();
    const key = `${this.key}/${s.topK}/${activeHeads(s).join(',')}`;
    if (key === this.kthKey) return;
    this.kthKey = key;
    const k = s.topK;
    const [R, C] = [this.rows.length, this.cols.length];
    this.kth = k === null ? null : this.heads.map((m) => (m ? kthLargest(m, R, C, k) : new Float32Array()));
  }

  /** The heatmap's matrix: one head's weights, or the active heads' mean or max. Null while heads load. */
  heatmapValues(): Float32Array | null {
    const s = this.state();
    const key = `${this.key}/${activeHeads(s).join(',')}/${s.combine}`;
    if (key === this.combinedKey) return this.combined;
    const act = activeHeads(s);
    const n = this.rows.length * this.cols.length;
    if (this.inMemory) {
      const heads = act.map((h) => this.heads[h]!);
      this.combined = act.length === 1 ? heads[0] : combineHeads(heads, n, s.combine);
      this.combinedKey = key;
      return this.combined;
    }
    if (this.combining !== key) {
      this.combining = key;
      void this.foldHeads(key, act, n);
    }
    return null;
  }

  /** Heads arrive one at a time and are folded in, so a mean of 32 heads at 8k tokens holds two matrices. */
  private async foldHeads(key: string, act: number[], n: number): Promise<void> {
    const { layer, combine, hideSpecial } = this.state();
    const acc = new Float32Array(n);
    for (const [k, h] of act.entries()) {
      if (this.combining !== key) return;
      accumulate(acc, [this.select(await this.loadHead!(layer, h), hideSpecial)], combine, k === 0);
    }
    if (combine === 'mean') for (let i = 0; i < n; i++) acc[i] /= act.length;
    if (this.combining !== key) return;
    this.combining = null;
    this.combined = acc;
    this.combinedKey = key;
    this.loaded();
  }

  /** A loaded head's `[T × K]` weights cut to the shown rows and columns. */
  private select(w: Float32Array, hideSpecial = this.state().hideSpecial): Float32Array {
    return selectCells(w, this.data.attention.dims[3], this.rows, this.cols, hideSpecial);
  }
}
