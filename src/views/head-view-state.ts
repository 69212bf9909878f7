/**
 * The head view's state as it opens and its transitions, as pure functions of (data, options) and (state,
 * event): what a click on a head square, a token or the "Leave out of scale" field changes.
 */
import type { Attention } from '../core/attention.js';
import type { HeadViewOptions, HeadViewState } from './head-view.js';
import { openingState } from './head-lines.js';
import { togglePinned, type TokenRef } from './tooltip.js';

/** The state before any interaction: lines up to `heatmapAbove` tokens (default 96), heatmap beyond. */
export function openingHeadState(data: Attention, options: HeadViewOptions): HeadViewState {
  const [, , T, K] = data.attention.dims;
  return {
    ...openingState(data, options),
    mode: options.mode ?? (Math.max(T, K) > (options.heatmapAbove ?? 96) ? 'heatmap' : 'lines'),
    pinned: [],
    hover: null,
    combine: options.combine ?? 'mean',
    scale: options.scale ?? 'linear',
    exclude: options.exclude ?? [],
  };
}

/** The indices of the active heads. */
export const activeHeads = (s: Pick<HeadViewState, 'active'>): number[] => s.active.flatMap((a, h) => (a ? [h] : []));

/** BertViz: a click toggles head `h`, but the last active head stays on (null: nothing changes). */
export function toggleHead(active: readonly boolean[], h: number): boolean[] | null {
  const next = [...active];
  next[h] = !next[h];
  return next.some(Boolean) ? next : null;
}

/** Double-click solos head `h`; double-clicking the only active head turns all back on. */
export function soloHead(active: readonly boolean[], h: number): boolean[] {
  const solo = active.every((a, k) => a === (k === h));
  return active.map((_, k) => solo || k === h);
}

/** Click (or shift-click, `add`) on token `t`: the pinned set, and `t` as the hover once nothing is pinned. */
export function pinToken(pinned: readonly TokenRef[], t: TokenRef, add: boolean): Partial<HeadViewState> {
  const next = togglePinned(pinned, t, add);
  return { pinned: next, hover: next.length ? null : t };
}

/** The key indices typed in "Leave out of scale" (any separators), distinct and below K. */
export const parseExclude = (text: string, K: number): number[] =>
  [...new Set(text.match(/\d+/g)?.map(Number) ?? [])].filter((j) => j < K);

/** Top-k as typed: a positive integer, else null (all lines). */
export const parseTopK = (v: number | null): number | null => (v && v > 0 ? Math.floor(v) : null);
