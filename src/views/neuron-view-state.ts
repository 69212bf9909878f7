/**
 * The neuron view's state as it opens and its transitions, as pure functions: a patch made consistent with the
 * data (indices in range, a token the filter shows, nothing expanded without q/k), and a click on a query token.
 */
import type { Attention } from '../core/attention.js';
import { filterIndices } from './matrix.js';
import type { NeuronViewOptions, NeuronViewState } from './neuron-view.js';
import { neuronIndex, openingNeuronState } from './neuron-scene.js';

/** The state before any interaction: a token given in the options opens pinned. */
export function openingNeuronViewState(data: Attention, options: NeuronViewOptions): NeuronViewState {
  return { ...openingNeuronState(data, options), theme: options.theme ?? 'dark', pinned: options.selected != null };
}

/** `next` made valid for `data`: what the filter hides is unselected, and what needs q/k is off without them. */
export function validNeuronState(data: Attention, next: NeuronViewState, hasQK: boolean): NeuronViewState {
  const [L, H] = data.attention.dims;
  const s = { ...next };
  s.layer = neuronIndex('layer', s.layer, L, 0)!;
  s.head = neuronIndex('head', s.head, H, 0)!;
  if (data.sentenceBStart === null) s.filter = 'all';
  const allowed = filterIndices(data, { filter: s.filter, hideSpecial: false });
  if (s.selected !== null && !allowed.rows.includes(s.selected)) s.selected = null;
  if (s.key !== null && !allowed.cols.includes(s.key)) s.key = null;
  if (s.selected === null) s.pinned = false;
  if (!hasQK) s.expanded = false;
  return s;
}

/** A click expands query token `i` and pins it; on the pinned, expanded token it collapses and unpins. */
export function clickToken(s: NeuronViewState, i: number, hasQK: boolean): Partial<NeuronViewState> {
  if (!hasQK) return s.pinned && s.selected === i ? { pinned: false } : { selected: i, pinned: true };
  if (s.pinned && s.selected === i && s.expanded) return { expanded: false, pinned: false };
  return { selected: i, pinned: true, expanded: true };
}

/** True when some field differs. */
export const neuronStateChanged = (a: NeuronViewState, b: NeuronViewState): boolean =>
  (Object.keys(b) as (keyof NeuronViewState)[]).some((k) => b[k] !== a[k]);

/** The root's data attributes (see neuron-view.ts): the state, the theme shown and the panel's key. */
export function neuronDataset(
  s: NeuronViewState,
  theme: string,
  expanded: boolean,
  key: number | null,
): Record<string, string> {
  return {
    theme,
    layer: String(s.layer),
    head: String(s.head),
    filter: s.filter,
    expanded: String(expanded),
    selected: s.selected === null ? '' : String(s.selected),
    pinned: String(s.pinned),
    key: key === null ? '' : String(key),
  };
}
