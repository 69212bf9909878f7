/**
 * The model view's options checked and its state as it opens, and its transitions, as pure functions: which
 * thumbnails the grid has, opening and closing a head's panel, pinning a panel token, a layer arriving.
 */
import type { Attention } from '../core/attention.js';
import { check } from '../core/errors.js';
import { PAIR_FILTERS } from './matrix.js';
import type { HeadRef } from './model-grid.js';
import { openingGrid } from './model-grid.js';
import type { ModelViewOptions, ModelViewState } from './model-view.js';
import { sameToken, type TokenRef } from './tooltip.js';

/** Validates includeLayers / includeHeads: distinct integer indices of the model, in the given order. */
export function indexList(option: string, given: number[] | undefined, n: number, what: string): number[] {
  if (given === undefined || given === null) return Array.from({ length: n }, (_, i) => i);
  check(Array.isArray(given) && given.length > 0, `${option} must be a non-empty list of ${what} indices`);
  const out = [...new Set(given)];
  for (const i of out)
    check(
      Number.isInteger(i) && i >= 0 && i < n,
      `${option}: ${JSON.stringify(i)} is not a ${what} of this model (0–${n - 1})`,
    );
  return out;
}

/** The state before any interaction, on the grid of `layers` × `heads`; bad mode or filter options throw. */
export function openingModelState(
  data: Attention,
  options: ModelViewOptions,
  layers: readonly number[],
  heads: readonly number[],
  progressive: boolean,
): ModelViewState {
  const opening = openingGrid(data, options, progressive);
  const { mode, filter } = opening;
  check(mode === 'lines' || mode === 'heatmap', `mode must be "lines" or "heatmap", not ${JSON.stringify(mode)}`);
  check(
    filter in PAIR_FILTERS,
    `filter must be one of ${Object.keys(PAIR_FILTERS).join(', ')}, not ${JSON.stringify(filter)}`,
  );
  const sel0 = options.selected;
  return {
    ...opening,
    selected:
      sel0 && layers.includes(sel0.layer) && heads.includes(sel0.head) ? { layer: sel0.layer, head: sel0.head } : null,
    hover: null,
    pinned: null,
  };
}

export const sameHead = (a: HeadRef | null, b: HeadRef | null) =>
  a === null || b === null ? a === b : a.layer === b.layer && a.head === b.head;

export const isSelected = (s: Pick<ModelViewState, 'selected'>, l: number, h: number) =>
  s.selected !== null && s.selected.layer === l && s.selected.head === h;

/** A click on thumbnail (l, h): opens its panel, or closes it when open; the panel's focus is cleared. */
export const clickThumb = (s: ModelViewState, l: number, h: number): Partial<ModelViewState> => ({
  selected: isSelected(s, l, h) ? null : { layer: l, head: h },
  hover: null,
  pinned: null,
});

/** A click on panel token `t` pins it, or unpins it (leaving it hovered) when it was pinned. */
export function clickPanelToken(pinned: TokenRef | null, t: TokenRef): Partial<ModelViewState> {
  const same = sameToken(pinned, t);
  return { pinned: same ? null : t, hover: same ? t : null };
}

/** Checks `selected` names a thumbnail of the grid. */
export function checkSelected(s: HeadRef | null | undefined, layers: readonly number[], heads: readonly number[]) {
  check(
    !s || (layers.includes(s.layer) && heads.includes(s.head)),
    () => `selected: layer ${s!.layer}, head ${s!.head} is not in the grid`,
  );
}

/** Checks addLayer's arguments against dims `[L, H, T, K]`; returns the weights' `[n, m]`. */
export function checkLayer(
  dims: readonly number[],
  layer: number,
  weights: Float32Array,
  size: [number, number] | undefined,
): [number, number] {
  const [L, H, T, K] = dims;
  const [n, m] = size ?? [T, K];
  check(Number.isInteger(layer) && layer >= 0 && layer < L, () => `addLayer: no layer ${layer} (0–${L - 1})`);
  check(
    Number.isInteger(n) && Number.isInteger(m) && n >= 1 && m >= 1 && n <= T && m <= K,
    () => `addLayer: size [${n}, ${m}] must be within [${T}, ${K}]`,
  );
  check(
    weights.length === H * n * m,
    () => `addLayer: layer ${layer} has ${weights.length} weights, expected ${H} × ${n} × ${m}`,
  );
  return [n, m];
}
