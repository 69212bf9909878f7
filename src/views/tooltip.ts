/**
 * The tooltip mark and the hover lock shared by the views. The tooltip is one absolutely placed element in the
 * view's root holding plain text (textContent: tokens never become markup). The hover lock is CircuitsVis's
 * useHoverLock for tokens: hovering previews a token, clicking pins it (shift-click adds to the pinned set
 * where a view allows several), and while something is pinned hovering changes nothing.
 */
import { el } from './dom.js';

export class Tooltip {
  readonly element = el('div', { class: 'av-tooltip', hidden: true });

  constructor(private readonly root: HTMLElement) {
    root.append(this.element);
  }

  /** Shows `text` just below-right of the client point (clientX, clientY). */
  show(text: string, clientX: number, clientY: number): void {
    const base = this.root.getBoundingClientRect();
    this.element.textContent = text;
    this.element.style.left = `${clientX - base.left + 12}px`;
    this.element.style.top = `${clientY - base.top + 12}px`;
    this.element.hidden = false;
  }

  hide(): void {
    this.element.hidden = true;
  }
}

export type Side = 'left' | 'right';

/** A token on one side of a view: `index` into the data's tokens (left, queries) or key tokens (right). */
export interface TokenRef {
  side: Side;
  index: number;
}

export const sameToken = (a: TokenRef | null, b: TokenRef | null): boolean =>
  a === null || b === null ? a === b : a.side === b.side && a.index === b.index;

/** The tokens in focus: the pinned ones, else the hovered one. */
export function focusOf(pinned: readonly TokenRef[], hover: TokenRef | null): TokenRef[] {
  return pinned.length ? [...pinned] : hover ? [hover] : [];
}

/**
 * The pinned set after clicking `t`: a plain click pins `t` alone (or unpins it when it was the only one);
 * with `add` (shift-click) it joins or leaves the set, as long as the set stays on one side.
 */
export function togglePinned(pinned: readonly TokenRef[], t: TokenRef, add: boolean): TokenRef[] {
  const was = pinned.some((x) => sameToken(x, t));
  if (add && pinned.every((x) => x.side === t.side))
    return was ? pinned.filter((x) => !sameToken(x, t)) : [...pinned, t];
  return was && pinned.length === 1 ? [] : [t];
}
