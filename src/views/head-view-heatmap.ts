/**
 * The head view's heatmap mode in the page: rows = queries, columns = keys, one head in its colour or the active
 * heads combined (head-view-weights.ts) in the text colour, in the zoomable heatmap mark (heatmap.ts) with its
 * tooltip; a click on a row pins that query token.
 */
import { at } from './head-lines.js';
import type { HeadViewContext } from './head-view.js';
import { activeHeads, pinToken } from './head-view-state.js';
import { Heatmap } from './heatmap.js';
import { focusOf } from './tooltip.js';

/** The heatmap tooltip lists heads one by one up to this many. */
const TOOLTIP_HEADS = 16;

export class HeadHeatmap {
  heatmap: Heatmap | null = null;
  /** What the heatmap was last given: the combination, colour scale and excluded columns. */
  private look = '';

  constructor(private readonly v: HeadViewContext) {}

  render(): void {
    const { v } = this;
    const { rows, cols } = v.weights;
    if (!this.heatmap) this.heatmap = this.create();
    const values = v.weights.heatmapValues();
    if (!values) {
      v.showNote('Loading heads…');
      return;
    }
    const s = v.state();
    const act = activeHeads(s);
    const look = `${v.weights.combinedKey}/${s.scale}/${s.exclude.join(',')}`;
    if (look !== this.look) {
      this.look = look;
      const exclude = new Set(s.exclude.flatMap((j) => at(cols, j)));
      // One head in its colour; a combination in the text colour, so no blend of hues washes out.
      const color = act.length === 1 ? v.colors[act[0]] : v.theme.text;
      const width = (v.root.clientWidth || 900) - 16;
      this.heatmap.setData(values, rows.length, cols.length, color, { scale: s.scale, exclude }, width);
    }
    const f = focusOf(s.pinned, s.hover);
    this.heatmap.setFrames(
      f.filter((t) => t.side === 'left').flatMap((t) => at(rows, t.index)),
      f.filter((t) => t.side === 'right').flatMap((t) => at(cols, t.index)),
    );
    v.showNote('');
    v.countDrawn(rows.length * cols.length);
  }

  /** Leaving heatmap mode. */
  clear(): void {
    this.heatmap?.destroy();
    this.heatmap = null;
    this.look = '';
  }

  private create(): Heatmap {
    const { v } = this;
    const w = v.weights;
    return new Heatmap(v.body, {
      theme: v.theme,
      tooltip: v.tooltip,
      rowLabel: (r) => v.label(w.rows[r]),
      colLabel: (c) => v.keyLabel(w.cols[c]),
      describe: (r, c) => this.describe(r, c),
      generated: (axis, i) => {
        const { promptLength } = v.data;
        return promptLength !== undefined && (axis === 'row' ? w.rows : w.cols)[i] >= promptLength;
      },
      click: (r, _c, e) => v.update(pinToken(v.state().pinned, { side: 'left', index: w.rows[r] }, e.shiftKey)),
    });
  }

  /** Tooltip of cell (r, c): its value and, for up to TOOLTIP_HEADS heads in the page, each head's. */
  private describe(r: number, c: number): string {
    const { v } = this;
    const { rows, cols, combined } = v.weights;
    const s = v.state();
    const act = activeHeads(s);
    const head = `${v.label(rows[r])} → ${v.keyLabel(cols[c])}`;
    const value = combined ? combined[r * cols.length + c].toFixed(4) : '';
    if (act.length === 1) return `${head}\nhead ${act[0]}: ${value}`;
    const each =
      v.weights.inMemory && act.length <= TOOLTIP_HEADS
        ? act.map((h) => `\nhead ${h}: ${v.weights.at(h, r, c).toFixed(4)}`).join('')
        : '';
    return `${head}\n${s.combine} of ${act.length} heads: ${value}${each}`;
  }
}
