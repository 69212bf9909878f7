/**
 * The head view's controls as DOM: the selects and fields above the view (the heatmap's own group shown only in
 * heatmap mode), and one colour square per head. Each control calls `update` with the patch it makes.
 */
import type { Attention } from '../core/attention.js';
import { checkbox, el, numberInput, select, textInput } from './dom.js';
import { colorScaleSelect, exportButtons, modeSelect, pairFilterSelect } from './controls.js';
import type { HeadViewState } from './head-view.js';
import { parseExclude, parseTopK, soloHead, toggleHead } from './head-view-state.js';
import type { MountedView } from './handle.js';
import { lighten } from './palette.js';

type Update = (patch: Partial<HeadViewState>) => void;

/** The controls' row; `heatmapControls` is the group to hide outside heatmap mode. */
export function headControls(
  data: Attention,
  state: HeadViewState,
  layers: readonly number[],
  update: Update,
  view: () => MountedView,
): { controls: HTMLElement; heatmapControls: HTMLElement } {
  const K = data.attention.dims[3];
  const controls = el('div', { class: 'av-controls' });
  const heatmapControls = el('span', { class: 'av-group' });
  const layerOptions = layers.map((l) => ({ value: l, label: String(l) }));
  controls.append(select('Layer:', layerOptions, state.layer, (layer) => update({ layer })));
  if (data.sentenceBStart !== null)
    controls.append(pairFilterSelect(state.filter, (filter) => update({ filter, pinned: [], hover: null })));
  const combines = [
    { value: 'mean' as const, label: 'Mean' },
    { value: 'max' as const, label: 'Max' },
  ];
  heatmapControls.append(
    select('Heads:', combines, state.combine, (combine) => update({ combine })),
    colorScaleSelect(state.scale, (scale) => update({ scale })),
    textInput(
      'Leave out of scale:',
      state.exclude.join(', '),
      { class: 'av-exclude', size: 8, placeholder: 'e.g. 0' },
      (v) => update({ exclude: parseExclude(v, K) }),
    ),
  );
  controls.append(
    modeSelect(state.mode, (mode) => update({ mode })),
    heatmapControls,
    numberInput('Min weight:', state.threshold || null, { min: 0, max: 1, step: 0.01, class: 'av-threshold' }, (v) =>
      update({ threshold: v ?? 0 }),
    ),
    numberInput('Top-k:', state.topK, { min: 1, step: 1, class: 'av-topk' }, (v) => update({ topK: parseTopK(v) })),
    checkbox('Hide special tokens', state.hideSpecial, (hideSpecial) =>
      update({ hideSpecial, pinned: [], hover: null }),
    ),
    ...exportButtons('head-view', view),
  );
  return { controls, heatmapControls };
}

/** One square per head in its colour: click toggles the head, double-click solos it; `paint` shows which are on. */
export function headSquares(
  parent: HTMLElement,
  colors: readonly string[],
  state: () => HeadViewState,
  update: Update,
): { paint(active: readonly boolean[]): void } {
  const squares = colors.map((_, h) => {
    const b = el('button', {
      type: 'button',
      class: 'av-head',
      'data-head': h,
      title: `Head ${h}`,
      'aria-label': `Head ${h}`,
    });
    b.addEventListener('click', () => {
      const active = toggleHead(state().active, h);
      if (active) update({ active });
    });
    b.addEventListener('dblclick', () => update({ active: soloHead(state().active, h) }));
    parent.append(b);
    return b;
  });
  return {
    paint: (active) =>
      squares.forEach((b, h) => {
        b.style.background = active[h] ? colors[h] : lighten(colors[h]);
        b.setAttribute('aria-pressed', String(active[h]));
      }),
  };
}
