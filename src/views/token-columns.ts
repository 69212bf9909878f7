/**
 * The token mark of the lines views: a column of query tokens (left) and one of key tokens (right) as DOM
 * text (textContent, so a token never becomes markup), absolutely placed over the canvas that holds the lines,
 * with the full token in the title. Hover and click go to the view (its hover lock); `mark` sets the focus and
 * pinned classes. Used by the head view and the model view's panel.
 */
import { el } from './dom.js';
import type { Side, TokenRef } from './tooltip.js';

export interface TokenColumn {
  /** Token indices shown, top to bottom. */
  tokens: readonly number[];
  x: number;
  width: number;
  label(i: number): string;
  /** The token as the tokenizer wrote it (the title). */
  title(i: number): string;
}

export interface TokenEvents {
  enter(t: TokenRef, element: HTMLElement): void;
  leave(t: TokenRef): void;
  click(t: TokenRef, e: MouseEvent): void;
}

export class TokenColumns {
  readonly elements: HTMLElement[];

  constructor(parent: HTMLElement, row: number, columns: Record<Side, TokenColumn>, on: TokenEvents) {
    const make = (side: Side, column: TokenColumn, i: number, r: number) => {
      const t = el('div', {
        class: 'av-token',
        'data-side': side,
        'data-index': i,
        title: column.title(i),
        text: column.label(i),
      });
      Object.assign(t.style, {
        top: `${r * row}px`,
        left: `${column.x}px`,
        width: `${column.width}px`,
        textAlign: side === 'left' ? 'right' : 'left',
      });
      const ref = { side, index: i };
      t.addEventListener('mouseenter', () => on.enter(ref, t));
      t.addEventListener('mouseleave', () => on.leave(ref));
      t.addEventListener('click', (e) => on.click(ref, e));
      return t;
    };
    this.elements = (['left', 'right'] as const).flatMap((side) =>
      columns[side].tokens.map((i, r) => make(side, columns[side], i, r)),
    );
    parent.append(...this.elements);
  }

  /** Classes for the tokens in focus (`av-focus`) and the pinned ones (`av-pinned`). */
  mark(focus: readonly TokenRef[], pinned: readonly TokenRef[]): void {
    const has = (list: readonly TokenRef[], t: HTMLElement) =>
      list.some((x) => x.side === t.dataset.side && x.index === Number(t.dataset.index));
    for (const t of this.elements) {
      t.classList.toggle('av-focus', has(focus, t));
      t.classList.toggle('av-pinned', has(pinned, t));
    }
  }

  destroy(): void {
    for (const t of this.elements) t.remove();
  }
}
