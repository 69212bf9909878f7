/** One entry for all views by name: used by the standalone page and the app. */
import type { Attention } from '../core/attention.js';
import type { MountedView } from './handle.js';
import { headView, type HeadViewOptions } from './head-view.js';
import { modelView, type ModelViewOptions } from './model-view.js';
import { neuronView, type NeuronViewOptions } from './neuron-view.js';

export const VIEWS = ['head', 'model', 'neuron'] as const;
export type ViewName = (typeof VIEWS)[number];

/**
 * Renders view `name` into `host`. The handle is also reachable from its root element as the non-enumerable
 * property `attnvizView` (no global), so code driving a standalone page (image export, tests) can call it.
 */
export function mountView(
  host: HTMLElement,
  name: ViewName,
  data: Attention,
  options: Record<string, unknown> = {},
): MountedView {
  const view = create(host, name, data, options);
  Object.defineProperty(view.element, 'attnvizView', { value: view });
  return view;
}

function create(host: HTMLElement, name: ViewName, data: Attention, options: Record<string, unknown>): MountedView {
  switch (name) {
    case 'head':
      return headView(host, data, options as HeadViewOptions);
    case 'model':
      return modelView(host, data, options as ModelViewOptions);
    case 'neuron':
      return neuronView(host, data, options as NeuronViewOptions);
    default:
      throw new Error(`unknown view "${String(name)}" (views: ${VIEWS.join(', ')})`);
  }
}
