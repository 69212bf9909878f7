/**
 * The generation report: the prompt and generated tokens (marked), a step slider and, for the chosen step,
 * the token produced with its probability and the top alternatives, and the attention of the position that
 * produced it over its context (analysis/steps.ts) for a layer and a head or the mean over heads.
 */
import { stepAttention, stepQuery } from '../../analysis/steps.js';
import type { Attention } from '../../core/attention.js';
import { prettifyToken } from '../../core/tokens.js';
import { el, select } from '../dom.js';
import type { StepsReport } from '../../analysis/report-data.js';
import { fmt } from './widgets.js';

export const STEPS_CSS = `
.av-strip{line-height:2;margin:6px 0}
.av-strip .av-tok{padding:1px 2px;margin:0 1px;border-radius:2px;white-space:pre}
.av-strip .av-prompt{border-bottom:2px solid #888}
.av-strip .av-generated{border-bottom:2px solid #2a7}
.av-strip .av-current{outline:2px solid #c33}
.av-strip .av-query{outline:2px dashed #36c}
.av-steps-controls{display:flex;gap:14px;align-items:center;flex-wrap:wrap}
.av-steps-controls input[type=range]{width:320px}
`;

export function stepsPage(root: HTMLElement, r: StepsReport, data: Map<string, Attention>): void {
  const a = data.get('a')!;
  const [L, H] = a.attention.dims;
  root.append(
    el('style', { text: STEPS_CSS }),
    el('h1', { text: 'Generation step by step' }),
    el('p', {
      class: 'av-meta',
      text:
        `${r.model} — ${r.promptLength} prompt tokens, ${r.steps.length} generated ` +
        `(${r.temperature === 0 ? 'greedy' : `temperature ${r.temperature}`}; stopped: ${r.stopped})`,
    }),
  );
  if (!r.steps.length) {
    root.append(el('p', { class: 'av-message', text: 'No token was generated.' }));
    return;
  }
  let step = r.steps.length - 1,
    layer = L - 1,
    head = -1; // −1: mean over heads
  const slider = el('input', {
    type: 'range',
    class: 'av-step',
    min: 0,
    max: r.steps.length - 1,
    value: step,
    'aria-label': 'step',
  });
  slider.addEventListener('input', () => {
    step = Number(slider.value);
    render();
  });
  const stepLabel = el('span', { class: 'av-step-label' });
  root.append(
    el(
      'div',
      { class: 'av-steps-controls' },
      el('label', {}, 'Step: ', slider),
      stepLabel,
      select(
        'Layer:',
        Array.from({ length: L }, (_, l) => ({ value: l, label: String(l) })),
        layer,
        (l) => {
          layer = l;
          render();
        },
      ),
      select(
        'Head:',
        [
          { value: -1, label: 'mean over heads' },
          ...Array.from({ length: H }, (_, h) => ({ value: h, label: String(h) })),
        ],
        head,
        (h) => {
          head = h;
          render();
        },
      ),
    ),
  );

  const strip = el('div', { class: 'av-strip' });
  const tokens = r.tokens.map((t, i) => {
    const span = el('span', {
      class: `av-tok ${i < r.promptLength ? 'av-prompt' : 'av-generated'}`,
      'data-index': i,
      text: prettifyToken(t),
    });
    if (i >= r.promptLength) span.addEventListener('click', () => setStep(i - r.promptLength));
    strip.append(span);
    return span;
  });
  const chosen = el('p', { class: 'av-chosen' });
  const alternatives = el('table', { class: 'av-table av-alternatives' });
  root.append(
    el('h2', { text: 'Tokens (grey underline: prompt, green: generated; click one to go to its step)' }),
    strip,
    el('h2', { text: 'The step' }),
    chosen,
    alternatives,
    el('h2', { text: 'Attention over the context when it was produced' }),
  );
  const context = el('div', { class: 'av-strip av-context' });
  root.append(context);

  function setStep(n: number): void {
    step = n;
    slider.value = String(n);
    render();
  }

  function render(): void {
    const s = r.steps[step];
    const position = r.promptLength + step;
    const q = stepQuery(r.promptLength, step);
    stepLabel.textContent = `${step + 1} / ${r.steps.length}`;
    tokens.forEach((t, i) => {
      t.classList.toggle('av-current', i === position);
      t.classList.toggle('av-query', i === q);
    });
    chosen.textContent =
      `Token ${position}: “${prettifyToken(s.token)}” with probability ${fmt(s.probability)}, ` +
      `chosen by the output at position ${q} (“${prettifyToken(r.tokens[q])}”).`;
    alternatives.replaceChildren(
      el('thead', {}, el('tr', {}, el('th', { text: 'alternative' }), el('th', { text: 'probability' }))),
      el(
        'tbody',
        {},
        ...s.top.map((t) =>
          el(
            'tr',
            { class: t.id === s.id ? 'av-chosen-row' : '', 'data-id': t.id },
            el('td', { text: `${t.id === s.id ? '▶ ' : ''}${prettifyToken(t.token)}` }),
            el('td', { text: fmt(t.probability) }),
          ),
        ),
      ),
    );
    const att = stepAttention(a, r.promptLength, step);
    const n = att.dims[2];
    const weights = Array.from({ length: n }, (_, j) => {
      if (head >= 0) return att.data[(layer * H + head) * n + j];
      let sum = 0;
      for (let h = 0; h < H; h++) sum += att.data[(layer * H + h) * n + j];
      return sum / H;
    });
    const max = Math.max(...weights, 1e-12);
    context.replaceChildren(
      ...weights.map((w, j) => {
        const span = el('span', {
          class: `av-tok ${j < r.promptLength ? 'av-prompt' : 'av-generated'}`,
          'data-index': j,
          'data-weight': String(w),
          title: `${prettifyToken(r.tokens[j])}: ${fmt(w)}`,
          text: prettifyToken(r.tokens[j]),
        });
        span.style.background = `rgba(220, 60, 40, ${(w / max).toFixed(3)})`;
        return span;
      }),
    );
    context.dataset.layer = String(layer);
    context.dataset.head = String(head);
    context.dataset.step = String(step);
  }
  render();
}
