/**
 * Drawing primitives with two back ends: a canvas (what the page shows, fast for thousands of lines) and an
 * SVG string (the SVG export). Views draw a scene once against this interface, as d3-shape's line() draws to
 * either a path string or a canvas context; the page's PNG button is the canvas back end on an offscreen canvas.
 * Node writes the SVG back end's output (export/image.ts), with its own PNG encoder for raster cells.
 */

/** RGBA pixels, row-major: ImageData has this shape, and Node builds it without a DOM. */
export interface Pixels {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8ClampedArray<ArrayBuffer>;
}

export interface TextStyle {
  color: string;
  size: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  /** Generated text's labels (generation.ts). */
  italic?: boolean;
  /** Degrees, about (x, y). */
  rotate?: number;
}

export interface Painter {
  rect(
    x: number,
    y: number,
    w: number,
    h: number,
    fill: string,
    opacity?: number,
    stroke?: { color: string; width: number },
  ): void;
  /** Many segments of one colour and opacity: `[x1, y1, x2, y2, …]`. */
  lines(segments: readonly number[], stroke: string, opacity: number, width: number): void;
  /** A polyline path through `points` `[x0, y0, x1, y1, …]`. */
  path(points: readonly number[], stroke: string, opacity: number, width: number): void;
  text(x: number, y: number, text: string, style: TextStyle): void;
  /** An RGBA raster (one pixel per cell) scaled to the rectangle without smoothing. */
  image(x: number, y: number, w: number, h: number, pixels: Pixels): void;
  /** The part (sx, sy, sw, sh) of a pre-rendered raster, scaled to the rectangle without smoothing. */
  raster(source: HTMLCanvasElement, sx: number, sy: number, sw: number, sh: number, rect: Rect): void;
}

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

export const FONT = "'Helvetica Neue', Helvetica, Arial, sans-serif";

export class CanvasPainter implements Painter {
  constructor(readonly ctx: CanvasRenderingContext2D) {}

  rect(
    x: number,
    y: number,
    w: number,
    h: number,
    fill: string,
    opacity = 1,
    stroke?: { color: string; width: number },
  ): void {
    const c = this.ctx;
    c.globalAlpha = opacity;
    if (fill !== 'none') {
      c.fillStyle = fill;
      c.fillRect(x, y, w, h);
    }
    if (stroke) {
      c.strokeStyle = stroke.color;
      c.lineWidth = stroke.width;
      c.strokeRect(x, y, w, h);
    }
    c.globalAlpha = 1;
  }

  lines(segments: readonly number[], stroke: string, opacity: number, width: number): void {
    if (segments.length === 0) return;
    const c = this.ctx;
    c.beginPath();
    for (let i = 0; i < segments.length; i += 4) {
      c.moveTo(segments[i], segments[i + 1]);
      c.lineTo(segments[i + 2], segments[i + 3]);
    }
    this.stroke(stroke, opacity, width);
  }

  path(points: readonly number[], stroke: string, opacity: number, width: number): void {
    const c = this.ctx;
    c.beginPath();
    c.moveTo(points[0], points[1]);
    for (let i = 2; i < points.length; i += 2) c.lineTo(points[i], points[i + 1]);
    this.stroke(stroke, opacity, width);
  }

  text(x: number, y: number, text: string, s: TextStyle): void {
    const c = this.ctx;
    c.save();
    c.fillStyle = s.color;
    c.font = `${s.italic ? 'italic ' : ''}${s.weight ?? 'normal'} ${s.size}px ${FONT}`;
    c.textAlign = s.anchor === 'middle' ? 'center' : s.anchor === 'end' ? 'right' : 'left';
    c.textBaseline = 'middle';
    c.translate(x, y);
    if (s.rotate) c.rotate((s.rotate * Math.PI) / 180);
    c.fillText(text, 0, 0);
    c.restore();
  }

  image(x: number, y: number, w: number, h: number, pixels: Pixels): void {
    const tile = canvasOf(pixels);
    this.raster(tile, 0, 0, tile.width, tile.height, { x, y, w, h });
  }

  raster(source: HTMLCanvasElement, sx: number, sy: number, sw: number, sh: number, r: Rect): void {
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(source, sx, sy, sw, sh, r.x, r.y, r.w, r.h);
  }

  private stroke(color: string, opacity: number, width: number): void {
    const c = this.ctx;
    c.globalAlpha = opacity;
    c.strokeStyle = color;
    c.lineWidth = width;
    c.stroke();
    c.globalAlpha = 1;
  }
}

/** Collects the scene as SVG elements; numbers rounded to 2 decimals so output is stable and small. */
export class SvgPainter implements Painter {
  private readonly parts: string[] = [];
  /**
   * Coordinates as written, by value: a scene repeats a few (a thumbnail's lines share their ends' x and
   * rows' y), and formatting a number costs more than finding it. Paths are built by joining arrays, not +=:
   * 147 k segments at 12 × 12 × 32 tokens took 5× less time so (bench/images.ts).
   */
  private readonly numbers = new Map<number, string>();

  /** `pngUri` encodes a raster as a data: URI; by default through a canvas (the page), Node passes its own. */
  constructor(
    readonly width: number,
    readonly height: number,
    readonly background: string,
    private readonly pngUri: (pixels: Pixels) => string = (pixels) => canvasOf(pixels).toDataURL('image/png'),
  ) {}

  rect(
    x: number,
    y: number,
    w: number,
    h: number,
    fill: string,
    opacity = 1,
    stroke?: { color: string; width: number },
  ): void {
    this.parts.push(
      `<rect x="${r(x)}" y="${r(y)}" width="${r(w)}" height="${r(h)}" fill="${fill}"` +
        `${opacity !== 1 ? ` fill-opacity="${r(opacity, 3)}"` : ''}` +
        `${stroke ? ` stroke="${stroke.color}" stroke-width="${stroke.width}"` : ''}/>`,
    );
  }

  lines(segments: readonly number[], stroke: string, opacity: number, width: number): void {
    if (segments.length === 0) return;
    const d = new Array<string>(segments.length >> 2);
    for (let i = 0; i < segments.length; i += 4)
      d[i >> 2] =
        `M${this.n(segments[i])} ${this.n(segments[i + 1])}L${this.n(segments[i + 2])} ${this.n(segments[i + 3])}`;
    this.stroked(d.join(''), stroke, opacity, width);
  }

  path(points: readonly number[], stroke: string, opacity: number, width: number): void {
    const d = new Array<string>(points.length >> 1);
    for (let i = 0; i < points.length; i += 2)
      d[i >> 1] = `${i ? 'L' : 'M'}${this.n(points[i])} ${this.n(points[i + 1])}`;
    this.stroked(d.join(''), stroke, opacity, width);
  }

  private stroked(d: string, stroke: string, opacity: number, width: number): void {
    this.parts.push(
      `<path d="${d}" stroke="${stroke}" stroke-opacity="${r(opacity, 3)}" stroke-width="${width}" fill="none"/>`,
    );
  }

  text(x: number, y: number, text: string, s: TextStyle): void {
    const anchor = s.anchor && s.anchor !== 'start' ? ` text-anchor="${s.anchor}"` : '';
    const rotate = s.rotate ? ` transform="rotate(${s.rotate} ${r(x)} ${r(y)})"` : '';
    const weight = s.weight === 'bold' ? ' font-weight="bold"' : '';
    const italic = s.italic ? ' font-style="italic"' : '';
    this.parts.push(
      `<text x="${r(x)}" y="${r(y)}" fill="${s.color}" font-size="${s.size}" dominant-baseline="central"` +
        `${anchor}${weight}${italic}${rotate}>${escapeXml(text)}</text>`,
    );
  }

  image(x: number, y: number, w: number, h: number, pixels: Pixels): void {
    this.parts.push(
      `<image x="${r(x)}" y="${r(y)}" width="${r(w)}" height="${r(h)}" preserveAspectRatio="none" ` +
        `style="image-rendering:pixelated" href="${this.pngUri(pixels)}"/>`,
    );
  }

  raster(source: HTMLCanvasElement, sx: number, sy: number, sw: number, sh: number, rect: Rect): void {
    // Whole source pixels around the part, placed so the part lands on the rectangle; clipped to it.
    const x0 = Math.max(0, Math.floor(sx)),
      y0 = Math.max(0, Math.floor(sy));
    const x1 = Math.min(source.width, Math.ceil(sx + sw)),
      y1 = Math.min(source.height, Math.ceil(sy + sh));
    if (x1 <= x0 || y1 <= y0) return;
    const tile = document.createElement('canvas');
    tile.width = x1 - x0;
    tile.height = y1 - y0;
    tile.getContext('2d')!.drawImage(source, x0, y0, tile.width, tile.height, 0, 0, tile.width, tile.height);
    const kx = rect.w / sw,
      ky = rect.h / sh;
    const id = `av-clip-${this.parts.length}`;
    this.parts.push(
      `<clipPath id="${id}"><rect x="${r(rect.x)}" y="${r(rect.y)}" ` +
        `width="${r(rect.w)}" height="${r(rect.h)}"/></clipPath>` +
        `<image clip-path="url(#${id})" x="${r(rect.x + (x0 - sx) * kx)}" y="${r(rect.y + (y0 - sy) * ky)}" ` +
        `width="${r(tile.width * kx)}" height="${r(tile.height * ky)}" preserveAspectRatio="none" ` +
        `style="image-rendering:pixelated" href="${tile.toDataURL('image/png')}"/>`,
    );
  }

  /** `v` rounded to 2 decimals, as text. */
  private n(v: number): string {
    let t = this.numbers.get(v);
    if (t === undefined) {
      t = String(r(v));
      this.numbers.set(v, t);
    }
    return t;
  }

  /** The SVG document; `view` (CSS px) shows only that part of the scene, at its size. */
  toString(view: Rect = { x: 0, y: 0, w: this.width, h: this.height }): string {
    const { x, y, w, h } = view;
    return (
      `<svg xmlns="http://www.w3.org/2000/svg" width="${r(w)}" height="${r(h)}" ` +
      `viewBox="${r(x)} ${r(y)} ${r(w)} ${r(h)}" font-family="${FONT.replace(/'/g, '&apos;')}">` +
      `<rect${x || y ? ` x="${r(x)}" y="${r(y)}"` : ''} width="100%" height="100%" fill="${this.background}"/>` +
      `${this.parts.join('')}</svg>`
    );
  }
}

/**
 * Characters XML 1.0 forbids even escaped (C0 controls but tab/LF/CR, U+FFFE/U+FFFF, lone surrogates): a
 * token holding one would make the SVG unreadable, so each becomes U+FFFD.
 */
const NOT_XML = new RegExp(
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters replaced
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|/.source +
    /(?<![\ud800-\udbff])[\udc00-\udfff]/.source,
  'g',
);

/** Escapes text for XML/HTML content and attribute values (tokens may contain `<script>` or quotes). */
export function escapeXml(s: string): string {
  return s
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
    .replace(NOT_XML, '\ufffd');
}

function canvasOf(pixels: Pixels): HTMLCanvasElement {
  const tile = document.createElement('canvas');
  tile.width = pixels.width;
  tile.height = pixels.height;
  const image = pixels instanceof ImageData ? pixels : new ImageData(pixels.data, pixels.width, pixels.height);
  tile.getContext('2d')!.putImageData(image, 0, 0);
  return tile;
}

function r(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Renders a scene to a PNG blob at `scale` × (device pixel ratio for crisp output). */
export async function scenePng(
  width: number,
  height: number,
  background: string,
  draw: (p: Painter) => void,
  scale = 2,
): Promise<Blob> {
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(width * scale);
  canvas.height = Math.ceil(height * scale);
  const ctx = canvas.getContext('2d')!;
  ctx.scale(scale, scale);
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, width, height);
  draw(new CanvasPainter(ctx));
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'),
  );
}

export function sceneSvg(width: number, height: number, background: string, draw: (p: Painter) => void): string {
  const p = new SvgPainter(width, height, background);
  draw(p);
  return p.toString();
}
