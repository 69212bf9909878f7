/**
 * The PNG back end in Node: a scene goes to resvg as SVG, except its hairlines — strokes at most one device pixel
 * wide, the model view's thumbnail lines — which are blended straight into resvg's pixels (hairlines.ts): drawn
 * after everything else, so only when nothing drawn after a hairline may cover it (bounding boxes); otherwise the
 * scene goes to resvg whole, in order. png-encode.ts writes the pixels as a PNG.
 *
 * resvg's time grows with the pixels it renders, drawn or not (~90 ms for the 970 × 2846 px of a 12-layer model
 * view on a loaded machine, an empty SVG as much). Once the hairlines are out, such a scene is mostly background:
 * its thumbnails' own background rectangles, over nothing, change no pixel and are left out, and when what is
 * left covers a small part of the picture, resvg renders only the boxes around it (its axis labels) onto pixels
 * filled with the background here.
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

/** Clusters of drawn boxes are rendered apart up to this many, and while they cover at most this share. */
const MAX_CLUSTERS = 64;
const MAX_SHARE = 0.5;

export class PngPainter implements Painter {
  /** Calls in order: a hairline, or an SVG element with its box (CSS px); `noop` changes no pixel. */
  private readonly calls: { call: Call; hairline?: Hairline; box?: Rect; noop?: boolean }[] = [];
  /** Boxes of the SVG elements that paint (not no-ops). */
  private readonly painted: Rect[] = [];
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
    /** Width in px of a text at a size, bold or not, in the font resvg sets it in. */
    private readonly measure: (text: string, size: number, bold: boolean) => number,
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
    const box = grow({ x, y, w, h }, (stroke?.width ?? 0) / 2);
    // A background-coloured rectangle over nothing drawn yet: what is under it is background already.
    const under = (b: Rect) => overlaps(b, box);
    const noop =
      fill === this.background && opacity === 1 && !stroke && !this.painted.some(under) && !this.hairBoxes.some(under);
    this.add((p) => p.rect(x, y, w, h, fill, opacity, stroke), box, noop);
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
    // The text's box: its measured width, from the anchor, and a font size and a half of height about the
    // central baseline (room for accents and descenders), rotated about (x, y); 2 px more each side.
    const w = this.measure(text, style.size, style.weight === 'bold'),
      s = style.size;
    const left = style.anchor === 'middle' ? -w / 2 : style.anchor === 'end' ? -w : 0;
    const a = ((style.rotate ?? 0) * Math.PI) / 180;
    const corners = [left, left + w].flatMap((dx) =>
      [-0.75 * s, 0.75 * s].flatMap((dy) => [
        x + dx * Math.cos(a) - dy * Math.sin(a),
        y + dx * Math.sin(a) + dy * Math.cos(a),
      ]),
    );
    this.add((p) => p.text(x, y, text, style), grow(bounds(corners), 2));
  }

  image(x: number, y: number, w: number, h: number, pixels: Pixels): void {
    this.add((p) => p.image(x, y, w, h, pixels), { x, y, w, h });
  }

  raster(source: HTMLCanvasElement, sx: number, sy: number, sw: number, sh: number, rect: Rect): void {
    this.add((p) => p.raster(source, sx, sy, sw, sh, rect), rect);
  }

  /** The scene's SVG: with the hairlines when `hairlines`, else without them (and without no-ops); `view`: a part. */
  svg(hairlines: boolean, view?: Rect): string {
    const p = new SvgPainter(this.width, this.height, this.background, this.pngUri);
    for (const c of this.calls) if (hairlines || !(c.hairline || c.noop)) c.call(p);
    return p.toString(view);
  }

  /** The scene as straight RGBA pixels at `scale`, opaque (the background fills it). */
  render(options: ResvgOptions): RgbaImage {
    if (this.covered) return resvg(this.svg(true), this.scale, options);
    const k = this.scale;
    const parts = this.clusters();
    let image: RgbaImage;
    if (!parts) image = resvg(this.svg(false), k, options);
    else {
      const width = Math.ceil(this.width * k),
        height = Math.ceil(this.height * k);
      const c = rgb(this.background);
      const data = new Uint8ClampedArray(width * height * 4);
      new Uint32Array(data.buffer).fill(new Uint32Array(Uint8ClampedArray.of(c.r, c.g, c.b, 255).buffer)[0]);
      image = { width, height, data };
      for (const b of parts) {
        const part = resvg(this.svg(false, { x: b.x / k, y: b.y / k, w: b.w / k, h: b.h / k }), k, options);
        // Whole device pixels: the part lands on the picture's pixel grid.
        const w = Math.min(b.w, part.width, width - b.x);
        for (let y = 0; y < Math.min(b.h, part.height, height - b.y); y++)
          data.set(part.data.subarray(y * part.width * 4, (y * part.width + w) * 4), ((b.y + y) * width + b.x) * 4);
      }
    }
    // Consecutive hairlines of one colour (a thumbnail's opacity levels) are drawn as one run.
    let run: Hairline[] = [];
    const flush = () => {
      if (!run.length) return;
      const c = rgb(run[0].color);
      drawHairlines(image, run, [c.r, c.g, c.b], k);
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

  /**
   * The device-pixel boxes that hold every painting SVG element, merged where they overlap or lie close, or
   * null when rendering the whole picture is as good (many elements, or most of the picture covered).
   */
  private clusters(): Rect[] | null {
    const k = this.scale,
      W = Math.ceil(this.width * k),
      H = Math.ceil(this.height * k);
    let boxes: Rect[] = [];
    for (const { box, hairline, noop } of this.calls) {
      if (hairline || noop || !box) continue;
      // Whole pixels, one more each side for anti-aliasing, within the picture.
      const x0 = Math.max(0, Math.floor(box.x * k) - 1),
        y0 = Math.max(0, Math.floor(box.y * k) - 1);
      const x1 = Math.min(W, Math.ceil((box.x + box.w) * k) + 1),
        y1 = Math.min(H, Math.ceil((box.y + box.h) * k) + 1);
      if (x1 > x0 && y1 > y0) boxes.push({ x: x0, y: y0, w: x1 - x0, h: y1 - y0 });
      if (boxes.length > 4 * MAX_CLUSTERS) return null;
    }
    // Merge two boxes when their union is at most twice their areas plus 64² px: labels along an axis become one.
    const area = (b: Rect) => b.w * b.h;
    for (let merged = true; merged; ) {
      merged = false;
      const out: Rect[] = [];
      for (const b of boxes) {
        const i = out.findIndex((o) => area(union(o, b)) <= 2 * (area(o) + area(b)) + 4096);
        if (i < 0) out.push(b);
        else {
          out[i] = union(out[i], b);
          merged = true;
        }
      }
      boxes = out;
    }
    const covered = boxes.reduce((sum, b) => sum + area(b), 0);
    return boxes.length <= MAX_CLUSTERS && covered <= MAX_SHARE * W * H ? boxes : null;
  }

  private add(call: Call, box: Rect, noop = false): void {
    this.calls.push({ call, box, noop });
    if (!noop) this.painted.push(box);
    this.lastWasHairline = false;
    if (!this.covered && this.hairBoxes.some((b) => overlaps(b, box))) this.covered = true;
  }
}

/** An SVG rasterised by resvg at `scale` as straight RGBA pixels (opaque: every scene fills its background). */
function resvg(svg: string, scale: number, options: ResvgOptions): RgbaImage {
  const out = new Resvg(svg, { ...options, fitTo: { mode: 'zoom', value: scale } }).render();
  const px = out.pixels;
  return { width: out.width, height: out.height, data: new Uint8ClampedArray(px.buffer, px.byteOffset, px.length) };
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
