/**
 * The neuron view's controls as DOM: layer, head, the pair filter (with a pair), theme and the downloads, kept in
 * step with the state by `sync` (update() from code changes them too); and the panel's JSON button.
 */
import type { Attention } from '../core/attention.js';
import { neuronReport } from '../analysis/neuron-report.js';
import { exportButtons, pairFilterSelect, syncSelect } from './controls.js';
import { button, download, el, select } from './dom.js';
import type { MountedView } from './handle.js';
import type { NeuronViewState } from './neuron-view.js';
import type { ThemeName } from './palette.js';

type Update = (patch: Partial<NeuronViewState>) => void;

const THEMES: { value: ThemeName | 'auto'; label: string }[] = [
  { value: 'dark', label: 'Dark' },
  { value: 'light', label: 'Light' },
  { value: 'auto', label: 'Auto' },
];

export function neuronControls(
  data: Attention,
  state: NeuronViewState,
  update: Update,
  view: () => MountedView,
): { controls: HTMLElement; sync(s: NeuronViewState): void } {
  const [L, H] = data.attention.dims;
  const controls = el('div', { class: 'av-controls' });
  const range = (n: number) => Array.from({ length: n }, (_, i) => ({ value: i, label: String(i) }));
  const layerSelect = select('Layer:', range(L), state.layer, (layer) => update({ layer }));
  const headSelect = select('Head:', range(H), state.head, (head) => update({ head }));
  controls.append(layerSelect, headSelect);
  let filterSelect: HTMLLabelElement | null = null;
  if (data.sentenceBStart !== null) {
    filterSelect = pairFilterSelect(state.filter, (filter) => update({ filter }));
    controls.append(filterSelect);
  }
  const themeSelect = select('Theme:', THEMES, state.theme, (t) => update({ theme: t }));
  controls.append(themeSelect, ...exportButtons('neuron-view', view));
  return {
    controls,
    sync: (s) => {
      syncSelect(layerSelect, s.layer);
      syncSelect(headSelect, s.head);
      syncSelect(filterSelect, s.filter);
      syncSelect(themeSelect, s.theme);
    },
  };
}

/** The panel's numbers as JSON (analysis/neuron-report.ts, as `attnviz neurons -o x.json` writes them). */
export function contributionsButton(
  data: Attention,
  state: () => NeuronViewState,
  panelKey: () => number | null,
): HTMLButtonElement {
  const b = button('JSON', () => {
    const s = state();
    const report = neuronReport(data, s.layer, s.head, s.selected!, panelKey() ?? undefined);
    const name = `neuron-contributions-l${s.layer}-h${s.head}-t${s.selected}.json`;
    download(new Blob([JSON.stringify(report, null, 1)], { type: 'application/json' }), name);
  });
  b.classList.add('av-json');
  return b;
}
