/**
 * The token mark of the lines views: a column of query tokens (left) and one of key tokens (right) as DOM
 * text (textContent, so a token never becomes markup), absolutely placed over the canvas that holds the lines,
 * with the full token in the title. Hover and click go to the view (its hover lock); `mark` sets the focus and
 * pinned classes. Used by the head view and the model view's panel.
 */
import { el } from './dom.js';
import { generationClass } from './generation.js';
import type { Side, TokenRef } from './tooltip.js';

export interface TokenColumn {
  /** Token indices shown, top to bottom. */
  tokens: readonly number[];
  x: number;
  width: number;
  label(i: number): string;
  /** The token as the tokenizer wrote it (the title). */
  title(i: number): string;
  /** Generated text: tokens from here on are marked as generated (generation.ts). */
  promptLength?: number;
}

export interface TokenEvents {
  enter(t: TokenRef, element: HTMLElement): void;
  leave(t: TokenRef): void;
  click(t: TokenRef, e: MouseEvent): void;
}

export class TokenColumns {
  readonly elements: HTMLElement[];
  private readonly bySide: Record<Side, Map<number, HTMLElement>> = { left: new Map(), right: new Map() };
  private marked: HTMLElement[] = [];

  constructor(parent: HTMLElement, row: number, columns: Record<Side, TokenColumn>, on: TokenEvents) {
    const make = (side: Side, column: TokenColumn, i: number, r: number) => {
      const t = el('div', {
        class: `av-token${generationClass(column.promptLength, i)}`,
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
      this.bySide[side].set(i, t);
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

  /** Classes for the tokens in focus (`av-focus`) and the pinned ones (`av-pinned`); touches only those. */
  mark(focus: readonly TokenRef[], pinned: readonly TokenRef[]): void {
    for (const t of this.marked) t.classList.remove('av-focus', 'av-pinned');
    this.marked = [];
    const at = (x: TokenRef) => this.bySide[x.side].get(x.index);
    for (const [list, cls] of [
      [focus, 'av-focus'],
      [pinned, 'av-pinned'],
    ] as const)
      for (const x of list) {
        const t = at(x);
        if (!t) continue;
        t.classList.add(cls);
        this.marked.push(t);
      }
  }

  destroy(): void {
    for (const t of this.elements) t.remove();
  }
}
