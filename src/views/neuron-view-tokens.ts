/**
 * The neuron view's tokens as DOM text (textContent only): only those of the rows drawn exist. A query token
 * (left) previews on hover, expands and pins on click or Enter / Space (neuron-view-state.ts), and holds the
 * (+)/(−) button while in focus; a key token (right) picks the key the panel breaks down.
 */
import { el } from './dom.js';
import { generationClass } from './generation.js';
import type { NeuronViewContext } from './neuron-view.js';
import { clickToken } from './neuron-view-state.js';
import { RIGHT_W, RIGHT_X, ROW, S_W, S_X, TOKEN_W, TOP } from './neuron-scene.js';
import type { RowWindow } from './virtual-rows.js';

type Side = 'left' | 'right';

export class NeuronTokens {
  private readonly elements = { left: new Map<number, HTMLElement>(), right: new Map<number, HTMLElement>() };
  /** The rows and columns the elements are for. */
  private key = '';
  /** (+) / (−): one button, moved into the focused token so reaching it does not leave the token. */
  private readonly toggle = el('button', { type: 'button', class: 'av-toggle' });

  constructor(private readonly v: NeuronViewContext) {
    this.toggle.addEventListener('click', (e) => {
      e.stopPropagation();
      v.update({ expanded: !v.state().expanded });
    });
  }

  /** The token elements of the rows in `w`, placed for the collapsed or expanded view, focus marked. */
  render(w: RowWindow): void {
    const { v } = this;
    const { rows, cols, key } = v.shown();
    if (key !== this.key) {
      this.key = key;
      for (const m of Object.values(this.elements)) {
        for (const t of m.values()) t.remove();
        m.clear();
      }
    }
    const expanded = v.drawing.expandedNow();
    for (const [side, list] of [
      ['left', rows],
      ['right', cols],
    ] as const) {
      const m = this.elements[side];
      for (const [n, t] of m)
        if (!(n >= w.first && n < w.last)) {
          t.remove();
          m.delete(n);
        }
      for (let n = w.first; n < Math.min(w.last, list.length); n++) if (!m.has(n)) m.set(n, this.make(side, n));
    }
    const panelKey = expanded ? v.drawing.panelKey() : null;
    for (const t of this.elements.right.values()) {
      Object.assign(t.style, { left: `${expanded ? S_X : RIGHT_X}px`, width: `${expanded ? S_W : RIGHT_W}px` });
      t.classList.toggle('av-key', Number(t.dataset.index) === panelKey);
    }
    this.markFocus(expanded);
  }

  /** The selected query token's classes and the (+)/(−) button in it. */
  private markFocus(expanded: boolean): void {
    const s = this.v.state();
    let focused: HTMLElement | null = null;
    for (const t of this.elements.left.values()) {
      const on = Number(t.dataset.index) === s.selected;
      t.classList.toggle('av-focus', on);
      t.classList.toggle('av-pinned', on && s.pinned);
      t.setAttribute('aria-expanded', String(on && expanded));
      if (on) focused = t;
    }
    const { toggle } = this;
    if (focused && this.v.drawing.hasQK) {
      toggle.dataset.action = expanded ? 'collapse' : 'expand';
      toggle.setAttribute('aria-label', expanded ? 'collapse' : 'expand');
      toggle.title = expanded ? 'Collapse' : 'Show q, k, q × k, q · k and softmax';
      if (toggle.parentElement !== focused) focused.append(toggle);
    } else toggle.remove();
  }

  /** The element of shown row `n` on `side`. */
  private make(side: Side, n: number): HTMLElement {
    const { v } = this;
    const { data, drawing } = v;
    const { rows, cols } = v.shown();
    const i = side === 'left' ? rows[n] : cols[n];
    const generated = generationClass(side === 'left' || !data.keyTokens ? data.promptLength : undefined, i);
    const t = el(
      'div',
      {
        class: `av-token av-${side}${generated}`,
        'data-side': side,
        'data-index': i,
        title: side === 'left' ? data.tokens[i] : (data.keyTokens ?? data.tokens)[i],
      },
      el('span', { class: 'av-label', text: side === 'left' ? drawing.label(i) : drawing.keyLabel(i) }),
    );
    t.style.top = `${TOP + n * ROW}px`;
    if (side === 'left') this.query(t, i);
    else t.addEventListener('click', () => v.update({ key: i }));
    v.body.append(t);
    return t;
  }

  /** A query token's place and its hover, click and keyboard handling. */
  private query(t: HTMLElement, i: number): void {
    const { v } = this;
    Object.assign(t.style, { left: '0', width: `${TOKEN_W}px`, textAlign: 'right' });
    t.tabIndex = 0;
    t.setAttribute('role', 'button');
    t.addEventListener('mouseenter', () => {
      if (!v.state().pinned) v.update({ selected: i });
    });
    t.addEventListener('mouseleave', () => {
      const s = v.state();
      if (!s.pinned && !s.expanded) v.update({ selected: null });
    });
    const click = () => v.update(clickToken(v.state(), i, v.drawing.hasQK));
    t.addEventListener('click', click);
    t.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
      click();
    });
  }
}
