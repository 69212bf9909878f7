/**
 * Controls more than one view shows, built from dom.ts's labelled inputs: the sentence-pair filter, lines or
 * heatmap, the heatmap colour scale, and the PNG / SVG download buttons.
 */
import { button, download, select } from './dom.js';
import type { MountedView } from './handle.js';
import { PAIR_FILTERS, type PairFilter } from './matrix.js';
import { COLOR_SCALES, type ColorScale } from './raster.js';

/** "Attention: All / A → A / …" (only for a sentence pair). */
export function pairFilterSelect(value: PairFilter, onChange: (f: PairFilter) => void): HTMLLabelElement {
  const filters = (Object.keys(PAIR_FILTERS) as PairFilter[]).map((f) => ({ value: f, label: PAIR_FILTERS[f] }));
  return select('Attention:', filters, value, onChange);
}

/** "Show: Lines / Heatmap". */
export function modeSelect<M extends 'lines' | 'heatmap'>(value: M, onChange: (m: M) => void): HTMLLabelElement {
  const modes = [
    { value: 'lines', label: 'Lines' },
    { value: 'heatmap', label: 'Heatmap' },
  ] as { value: M; label: string }[];
  return select('Show:', modes, value, onChange);
}

/** "Colour:" the heatmap colour scales of raster.ts. */
export function colorScaleSelect(value: ColorScale, onChange: (s: ColorScale) => void): HTMLLabelElement {
  const scales = (Object.keys(COLOR_SCALES) as ColorScale[]).map((s) => ({ value: s, label: COLOR_SCALES[s] }));
  return select('Colour:', scales, value, onChange);
}

/** PNG and SVG buttons downloading `attention-<name>.png` / `.svg` from the view (looked up when clicked). */
export function exportButtons(name: string, view: () => Pick<MountedView, 'toPNG' | 'toSVG'>): HTMLButtonElement[] {
  return [
    button('PNG', async () => download(await view().toPNG(), `attention-${name}.png`)),
    button('SVG', () => download(new Blob([view().toSVG()], { type: 'image/svg+xml' }), `attention-${name}.svg`)),
  ];
}

/** Sets the <select> inside a labelled control to `v` (after a change from code, not from the control). */
export function syncSelect(label: HTMLLabelElement | null, v: string | number): void {
  const s = label?.querySelector('select');
  if (s) s.value = String(v);
}
