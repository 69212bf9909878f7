/**
 * The notes above the neuron view: the colour scales of the shown head, the check that the score formula
 * reproduces the data's attention row, and the hint that a long input draws only the focused token's lines.
 * The first two keep their lines when empty (visibility, not display), so showing them never moves the tokens.
 */
import type { Attention } from '../core/attention.js';
import { scoreFormula, type NeuronColumns, type NeuronScales } from '../analysis/neuron.js';
import { el } from './dom.js';
import { NO_QK_NOTE } from './neuron-scene.js';

export class NeuronNotes {
  private readonly scale = el('div', { class: 'av-note av-scale' });
  private readonly check = el('div', { class: 'av-note av-check' });
  private readonly lines = el('div', { class: 'av-note av-lines' });
  /** In page order. */
  readonly elements: HTMLElement[];

  constructor(
    private readonly data: Attention,
    hasQK: boolean,
  ) {
    const notes = hasQK
      ? [this.scale, this.check]
      : [el('div', { class: 'av-note av-no-qk', role: 'note', text: NO_QK_NOTE })];
    this.elements = [...notes, this.lines];
  }

  /**
   * `manyLines`: the hint is shown; `scales` (expanded) with `size()`, the head size; `check`: the drawn rows'
   * columns, with `label` for the query token.
   */
  render(
    manyLines: boolean,
    scales: NeuronScales | null,
    size: () => number,
    check: NeuronColumns | null,
    label: (i: number) => string,
  ): void {
    this.lines.textContent = manyLines ? 'Long input: hover or click a token to see its lines.' : '';
    this.lines.hidden = !manyLines;
    show(this.scale, scales !== null);
    if (scales) {
      this.scale.textContent = scaleText(this.data, scales, size());
      this.scale.title = this.scale.textContent;
    }
    show(this.check, check !== null);
    if (!check) return;
    const ok = check.maxDiff <= check.tolerance;
    this.check.classList.toggle('av-warn', !ok);
    this.check.dataset.ok = String(ok);
    this.check.textContent = checkText(this.data, check, label);
    this.check.title = this.check.textContent;
  }
}

const show = (e: HTMLElement, on: boolean) => {
  e.style.visibility = on ? 'visible' : 'hidden';
};

/** The colour scales of the shown head, its size `d` and how q and k are stored. */
function scaleText(data: Attention, s: NeuronScales, d: number): string {
  const stored = data.query!.dims[3];
  return (
    'Colour: blue ≥ 0, orange < 0, opacity tanh(|v| / s), s = 3 × RMS in this head: ' +
    `${s.vector.toFixed(2)} (q, k), ` +
    `${s.product.toFixed(2)} (q × k), ${s.dot.toFixed(2)} (q · k). Head size ${d}` +
    `${d < stored ? ` (q/k stored zero-padded to ${stored})` : ''}.${data.rotary ? ' q, k after RoPE.' : ''}`
  );
}

/** Whether softmax of the scores reproduces the attention row of the columns' query, and by how much. */
function checkText(data: Attention, cs: NeuronColumns, label: (i: number) => string): string {
  const formula = scoreFormula(data);
  return cs.maxDiff <= cs.tolerance
    ? `✓ ${formula} reproduces the attention row of “${label(cs.query)}” (max |Δ| ${cs.maxDiff.toExponential(1)})`
    : `⚠ ${formula} differs from the attention row of “${label(cs.query)}” ` +
        `by up to ${cs.maxDiff.toFixed(4)}: ` +
        'these q/k may not be the vectors that produced this attention (e.g. keys before RoPE, a missing bias or ' +
        'causal mask).';
}
