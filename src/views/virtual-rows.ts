/**
 * Row virtualisation for views with one row per token: of a body `count` rows tall, only the rows on screen
 * (plus a margin) get drawn and get DOM elements, so opening and scrolling cost the same at 50 tokens as at
 * 8k. The body keeps its full height, so the page's scrollbar and anchors stay right; the canvas covers only
 * the window and moves with it.
 */

/** Rows `first` ≤ r < `last` are drawn; they span y0 ≤ y < y1 of the body (y0 = the canvas's top). */
export interface RowWindow {
  first: number;
  last: number;
  y0: number;
  y1: number;
}

export interface RowGeometry {
  /** y of row 0 in the body, and the row height. */
  top: number;
  row: number;
  count: number;
  /** The body's full height (rows plus what is drawn above and below them). */
  height: number;
}

/** Rows drawn beyond the visible ones, above and below, so a short scroll needs no redraw. */
export const OVERSCAN_ROWS = 16;

/**
 * The window of `g` to draw when the body's top is at `bodyTop` in a viewport `viewportHeight` tall (both in
 * CSS px, as getBoundingClientRect gives them). A body off screen gets an empty window at its nearer end.
 */
export function rowWindow(
  g: RowGeometry,
  bodyTop: number,
  viewportHeight: number,
  overscan = OVERSCAN_ROWS,
): RowWindow {
  const visible0 = Math.min(Math.max(0, -bodyTop), g.height),
    visible1 = Math.max(Math.min(g.height, viewportHeight - bodyTop), visible0);
  const clamp = (r: number) => Math.min(Math.max(r, 0), g.count);
  const first = clamp(Math.floor((visible0 - g.top) / g.row) - overscan),
    last = clamp(Math.ceil((visible1 - g.top) / g.row) + overscan);
  // The window takes in the band above row 0 (headings) and below the last row when they are near.
  const y0 = first === 0 ? 0 : g.top + first * g.row,
    y1 = last === g.count ? g.height : g.top + last * g.row;
  return { first, last, y0, y1: Math.max(y1, y0) };
}

/** True when the rows of `visible` (a window without overscan) are all within `drawn`. */
export function covers(drawn: RowWindow, visible: RowWindow): boolean {
  return visible.first >= drawn.first && visible.last <= drawn.last;
}

/**
 * Calls `onChange` at most once a frame after any scroll (the page's or any scrolling ancestor's: scroll
 * events do not bubble, so the listener captures) or resize. Returns the function that stops listening.
 */
export function watchViewport(onChange: () => void): () => void {
  let frame = 0;
  const schedule = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      onChange();
    });
  };
  document.addEventListener('scroll', schedule, { capture: true, passive: true });
  window.addEventListener('resize', schedule, { passive: true });
  return () => {
    cancelAnimationFrame(frame);
    document.removeEventListener('scroll', schedule, { capture: true });
    window.removeEventListener('resize', schedule);
  };
}
