/**
 * The PNG back end in Node: a scene goes to resvg as SVG, except its hairlines — strokes at most one device pixel
 * wide, the model view's thumbnail lines — which are blended straight into resvg's pixels (hairlines.ts): drawn
 * after everything else, so only when nothing drawn after a hairline may cover it (bounding boxes); otherwise the
 * scene goes to resvg whole, in order. png-encode.ts writes the pixels as a PNG.
 */
import { Resvg } from '@resvg/resvg-js';
import { rgb } from 'd3-color';
import type { Painter, Pixels, Rect, TextStyle } from '../views/painter.js';
import { SvgPainter } from '../views/painter.js';
import { drawHairlines, type RgbaImage } from './hairlines.js';

/** A drawing call, replayed on the SVG painter. */
type Call = (p: Painter) => void;

interface Hairline {
  segments: readonly number[];
  color: string;
  opacity: number;
}

/** Options resvg renders with (fonts): export/image.ts's. */
export type ResvgOptions = ConstructorParameters<typeof Resvg>[1];

export class PngPainter implements Painter {
  private readonly calls: { call: Call; hairline?: Hairline }[] = [];
  /** Bounding boxes of the hairlines drawn so far (CSS px), one per run of consecutive hairline calls. */
  private readonly hairBoxes: Rect[] = [];
  private lastWasHairline = false;
  /** Something was drawn over a hairline's box after it: the hairlines then keep their place in the SVG. */
  private covered = false;

  constructor(
    readonly width: number,
    readonly height: number,
    readonly background: string,
    /** Device pixels per CSS px. */
    readonly scale: number,
    private readonly pngUri: (pixels: Pixels) => string,
  ) {}

  rect(
    x: number,
    y: number,
    w: number,
    h: number,
    fill: string,
    opacity = 1,
    stroke?: { color: string; width: number },
  ) {
    this.add((p) => p.rect(x, y, w, h, fill, opacity, stroke), grow({ x, y, w, h }, (stroke?.width ?? 0) / 2));
  }

  lines(segments: readonly number[], stroke: string, opacity: number, width: number): void {
    if (segments.length === 0) return;
    const box = grow(bounds(segments), width / 2 + 1);
    if (width * this.scale <= 1) {
      this.calls.push({
        call: (p) => p.lines(segments, stroke, opacity, width),
        hairline: { segments, color: stroke, opacity },
      });
      const last = this.hairBoxes.length - 1;
      if (this.lastWasHairline) this.hairBoxes[last] = union(this.hairBoxes[last], box);
      else this.hairBoxes.push(box);
      this.lastWasHairline = true;
    } else this.add((p) => p.lines(segments, stroke, opacity, width), box);
  }

  path(points: readonly number[], stroke: string, opacity: number, width: number): void {
    this.add((p) => p.path(points, stroke, opacity, width), grow(bounds(points), width / 2 + 1));
  }

  text(x: number, y: number, text: string, style: TextStyle): void {
    // Any glyph fits in a square of the font size: a box around (x, y) that holds the text however anchored
    // or rotated.
    const reach = (text.length + 1) * style.size;
    this.add((p) => p.text(x, y, text, style), { x: x - reach, y: y - reach, w: 2 * reach, h: 2 * reach });
  }

  image(x: number, y: number, w: number, h: number, pixels: Pixels): void {
    this.add((p) => p.image(x, y, w, h, pixels), { x, y, w, h });
  }

  raster(source: HTMLCanvasElement, sx: number, sy: number, sw: number, sh: number, rect: Rect): void {
    this.add((p) => p.raster(source, sx, sy, sw, sh, rect), rect);
  }

  /** The scene's SVG: with the hairlines when `hairlines`, else without them. */
  svg(hairlines: boolean): string {
    const p = new SvgPainter(this.width, this.height, this.background, this.pngUri);
    for (const c of this.calls) if (hairlines || !c.hairline) c.call(p);
    return p.toString();
  }

  /** The scene as straight RGBA pixels at `scale`, opaque (the background fills it). */
  render(options: ResvgOptions): RgbaImage {
    const direct = !this.covered;
    const out = new Resvg(this.svg(!direct), { ...options, fitTo: { mode: 'zoom', value: this.scale } }).render();
    const px = out.pixels;
    const image = {
      width: out.width,
      height: out.height,
      data: new Uint8ClampedArray(px.buffer, px.byteOffset, px.length),
    };
    if (!direct) return image;
    // Consecutive hairlines of one colour (a thumbnail's opacity levels) are drawn as one run.
    let run: Hairline[] = [];
    const flush = () => {
      if (!run.length) return;
      const c = rgb(run[0].color);
      drawHairlines(image, run, [c.r, c.g, c.b], this.scale);
      run = [];
    };
    for (const { hairline: h } of this.calls) {
      if (!h) continue;
      if (run.length && run[0].color !== h.color) flush();
      run.push(h);
    }
    flush();
    return image;
  }

  private add(call: Call, box: Rect): void {
    this.calls.push({ call });
    this.lastWasHairline = false;
    if (!this.covered && this.hairBoxes.some((b) => overlaps(b, box))) this.covered = true;
  }
}

function bounds(points: readonly number[]): Rect {
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (let i = 0; i + 1 < points.length; i += 2) {
    x0 = Math.min(x0, points[i]);
    x1 = Math.max(x1, points[i]);
    y0 = Math.min(y0, points[i + 1]);
    y1 = Math.max(y1, points[i + 1]);
  }
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

function union(a: Rect, b: Rect): Rect {
  const x = Math.min(a.x, b.x),
    y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

const grow = (r: Rect, d: number): Rect => ({ x: r.x - d, y: r.y - d, w: r.w + 2 * d, h: r.h + 2 * d });

const overlaps = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
