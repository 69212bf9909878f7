/**
 * The head view's heatmap mode as it opens (fitted, nothing pinned), as a pure function of (data, options): the
 * header, then one head's weights — or the active heads' mean or max — as the heatmap mark draws them, on any
 * Painter, no DOM. Node's image export (export/image.ts) draws it for inputs past `heatmapAbove` tokens; the page
 * (head-view.ts) exports its live, zoomable heatmap instead.
 */
import type { Attention } from '../core/attention.js';
import {
  at,
  drawHeader,
  HEAD_SQUARE,
  HEADER,
  type LinesOptions,
  openingState,
  type Scene,
  tokenLabels,
} from './head-lines.js';
import { drawFittedHeatmap, fittedSize } from './heatmap.js';
import { layerMatrix } from './matrix.js';
import type { Painter } from './painter.js';
import { categoricalColors, type Theme } from './palette.js';
import { type ColorScale, type Combine, combineHeads } from './raster.js';

export interface HeatmapOptions extends LinesOptions {
  /** How several active heads combine, 'mean' (default) or 'max'. */
  combine?: Combine;
  /** Colour scale (raster.ts), 'linear' by default. */
  scale?: ColorScale;
  /** Key token indices left out of the colour scale's maximum. */
  exclude?: number[];
}

/** The heatmap scene of in-memory data at `dpr` device pixels per CSS px. */
export function openingHeatmap(data: Attention, o: HeatmapOptions, theme: Theme, dpr: number): Scene {
  const H = data.attention.dims[1];
  const s = openingState(data, o);
  const m = layerMatrix(data, s.layer, s);
  const R = m.rows.length,
    C = m.cols.length;
  const head = (h: number) => m.data.subarray(h * R * C, (h + 1) * R * C);
  const act = s.active.flatMap((a, h) => (a ? [h] : []));
  const w = act.length === 1 ? head(act[0]) : combineHeads(act.map(head), R * C, o.combine ?? 'mean');
  const colors = categoricalColors(H);
  const { label, keyLabel } = tokenLabels(data, o.prettifyTokens !== false);
  const { promptLength } = data;
  const exclude = new Set((o.exclude ?? []).flatMap((j) => at(m.cols, j)));
  const size = fittedSize(R, C);
  const draw = (p: Painter) => {
    drawHeader(p, { ...s, theme, colors });
    drawFittedHeatmap(
      p,
      0,
      HEADER,
      // One head in its colour; a combination in the text colour, as the page shows them.
      {
        w,
        R,
        C,
        color: act.length === 1 ? colors[act[0]] : theme.text,
        scale: { scale: o.scale ?? 'linear', exclude },
      },
      {
        theme,
        rowLabel: (r) => label(m.rows[r]),
        colLabel: (c) => keyLabel(m.cols[c]),
        generated: (axis, i) => promptLength !== undefined && (axis === 'row' ? m.rows : m.cols)[i] >= promptLength,
      },
      dpr,
    );
  };
  return { width: Math.max(size.width, H * HEAD_SQUARE) + 10, height: HEADER + size.height + 10, draw };
}
