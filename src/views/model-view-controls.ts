/** The model view's controls as DOM; each calls `update` with the patch it makes (a new grid clears the focus). */
import type { Attention } from '../core/attention.js';
import { colorScaleSelect, exportButtons, modeSelect, pairFilterSelect } from './controls.js';
import { checkbox, el } from './dom.js';
import type { MountedView } from './handle.js';
import type { ModelViewState } from './model-view.js';

export function modelControls(
  data: Attention,
  state: ModelViewState,
  update: (patch: Partial<ModelViewState>) => void,
  view: () => MountedView,
): HTMLElement {
  const controls = el('div', { class: 'av-controls' });
  if (data.sentenceBStart !== null)
    controls.append(pairFilterSelect(state.filter, (f) => update({ filter: f, hover: null, pinned: null })));
  controls.append(
    modeSelect(state.mode, (m) => update({ mode: m, hover: null, pinned: null })),
    colorScaleSelect(state.scale, (scale) => update({ scale })),
    checkbox('Hide special tokens', state.hideSpecial, (hideSpecial) =>
      update({ hideSpecial, hover: null, pinned: null }),
    ),
    ...exportButtons('model-view', view),
  );
  return controls;
}
