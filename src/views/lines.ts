/**
 * The lines mark: straight segments of one colour whose opacity encodes a weight. Segments are bucketed by
 * opacity quantised to ALPHA_LEVELS levels, so a colour strokes a handful of paths rather than one per weight
 * (canvas state changes, not segments, are what cost), and segments below 1/255 opacity, invisible at 8-bit
 * colour depth, are skipped. Used by the head view, the model view's thumbnails and its panel.
 */
import type { Painter } from './painter.js';

/** Below this opacity a line changes no pixel at 8-bit colour depth. */
export const MIN_ALPHA = 1 / 255;
export const ALPHA_LEVELS = 64;

export class LineBatch {
  private readonly buckets: number[][] = Array.from({ length: ALPHA_LEVELS + 1 }, () => []);
  /** Segments added and not skipped. */
  count = 0;

  /** A segment from (x1, y1) to (x2, y2) at opacity `alpha` (clamped to 1). */
  add(x1: number, y1: number, x2: number, y2: number, alpha: number): void {
    if (!(alpha >= MIN_ALPHA)) return;
    this.buckets[Math.round(Math.min(alpha, 1) * ALPHA_LEVELS)].push(x1, y1, x2, y2);
    this.count++;
  }

  draw(p: Painter, color: string, width: number): void {
    // Level 0 holds opacities in [1/255, 1/128): drawn at half a level rather than not at all.
    this.buckets.forEach((segments, level) => p.lines(segments, color, Math.max(level, 0.5) / ALPHA_LEVELS, width));
  }
}
