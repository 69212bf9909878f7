/**
 * Pseudo-layers in the head and model views: a "Layers:" select above the view switches between the model's
 * heads and the aggregates of analysis/aggregate.ts (mean or max over heads, attention rollout), remounting
 * the view on the aggregated Attention (one pseudo-head per layer) and keeping the head view's layer.
 */
import { AGGREGATE_LABELS, AGGREGATES, aggregate, type Aggregate } from '../analysis/aggregate.js';
import type { Attention } from '../core/attention.js';
import { el, select } from './dom.js';
import type { MountedView } from './handle.js';
import { mountView } from './mount.js';

export type LayersShown = 'heads' | Aggregate;

export function aggregatesView(
  host: HTMLElement,
  name: 'head' | 'model',
  data: Attention,
  options: Record<string, unknown> = {},
  initial: LayersShown = 'heads',
): MountedView {
  const root = el('div', { class: 'av-aggregates' });
  const holder = el('div');
  let shown = initial;
  let view: MountedView | null = null;
  const mount = () => {
    // The head view's layer carries over; an aggregate has one pseudo-head, so head choices do not.
    const state = (view as { state?: () => { layer?: number } } | null)?.state?.();
    const layer = state?.layer ?? options.layer;
    const { heads: _heads, ...rest } = options;
    view?.destroy();
    view = mountView(holder, name, shown === 'heads' ? data : aggregate(data, shown), {
      ...(shown === 'heads' ? options : rest),
      ...(layer !== undefined ? { layer } : {}),
    });
    root.dataset.layers = shown;
  };
  const choices: { value: LayersShown; label: string }[] = [
    { value: 'heads', label: "the model's heads" },
    ...AGGREGATES.map((a) => ({ value: a, label: AGGREGATE_LABELS[a] })),
  ];
  const control = select('Layers:', choices, shown, (v) => {
    shown = v;
    mount();
  });
  control.classList.add('av-layers-select');
  control.style.cssText = "font:13px 'Helvetica Neue',Helvetica,Arial,sans-serif;display:inline-block;margin:8px";
  root.append(control, holder);
  host.append(root);
  mount();
  return {
    element: root,
    toSVG: () => view!.toSVG(),
    toPNG: () => view!.toPNG(),
    destroy: () => {
      view?.destroy();
      root.remove();
    },
  };
}
