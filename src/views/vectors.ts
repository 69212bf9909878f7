/**
 * The vector mark: a column of vectors, one per row, each a strip of cells coloured by sign (positive /
 * negative colour) with opacity tanh(|v| / s), framed. Drawn as one RGBA raster (one pixel per value, `row`
 * pixels per row with the cells `cell` tall in the middle) scaled to the column width without smoothing, as
 * Plot's raster: the same picture as d × rows rectangles at the cost of one image, so a redraw takes
 * milliseconds and the SVG stays small. Used by the neuron view's q, k and q × k columns.
 */
import { rgb } from 'd3-color';
import type { Painter, Pixels } from './painter.js';

export interface VectorColumn {
  /** Left edge and width of the column; y of the first row's top. */
  x: number;
  width: number;
  y: number;
  /** Row pitch and cell height (cells are centred in their row). */
  row: number;
  cell: number;
  /** Values per vector (the cells across the column). */
  size: number;
  /** s in opacity = tanh(|v| / s). */
  scale: number;
  colors: { positive: string; negative: string; frame: string };
}

/** The vectors (null: an empty row) as an RGBA raster `size` wide, `row` pixels per row. */
export function vectorRaster(vectors: readonly (ArrayLike<number> | null)[], c: VectorColumn): Pixels {
  const d = c.size;
  const height = Math.max(1, vectors.length * c.row);
  const img = { width: d, height, data: new Uint8ClampedArray(d * height * 4) };
  const pos = rgbOf(c.colors.positive),
    neg = rgbOf(c.colors.negative);
  const y0 = Math.floor((c.row - c.cell) / 2);
  vectors.forEach((v, r) => {
    if (!v) return;
    for (let k = 0; k < d; k++) {
      const [red, green, blue] = v[k] >= 0 ? pos : neg;
      const alpha = Math.round(Math.tanh(Math.abs(v[k]) / c.scale) * 255);
      for (let y = 0, o = ((r * c.row + y0) * d + k) * 4; y < c.cell; y++, o += d * 4) {
        img.data[o] = red;
        img.data[o + 1] = green;
        img.data[o + 2] = blue;
        img.data[o + 3] = alpha;
      }
    }
  });
  return img;
}

/** Draws the column: the raster (`img`, or one made here), then a 1-px frame around each row's cells. */
export function drawVectors(
  p: Painter,
  vectors: readonly (ArrayLike<number> | null)[],
  c: VectorColumn,
  img: Pixels = vectorRaster(vectors, c),
): void {
  if (vectors.length === 0) return;
  p.image(c.x, c.y, c.width, vectors.length * c.row, img);
  // All frames as one path: horizontal edges run half a line width past the corners so these are filled.
  const segments: number[] = [];
  vectors.forEach((v, n) => {
    if (!v) return;
    const y = c.y + n * c.row + (c.row - c.cell) / 2,
      x0 = c.x - 0.5,
      x1 = c.x + c.width + 0.5,
      y0 = y - 0.5,
      y1 = y + c.cell + 0.5;
    segments.push(x0 - 0.5, y0, x1 + 0.5, y0, x0 - 0.5, y1, x1 + 0.5, y1, x0, y0, x0, y1, x1, y0, x1, y1);
  });
  p.lines(segments, c.colors.frame, 1, 1);
}

/** A rectangle's outline `width` thick, drawn outside (x, y, w, h). */
export function frame(
  p: Painter,
  x: number,
  y: number,
  w: number,
  h: number,
  color: string,
  width: number,
  opacity: number,
): void {
  const o = width / 2;
  p.rect(x - o, y - o, w + width, h + width, 'none', opacity, { color, width });
}

function rgbOf(color: string): [number, number, number] {
  const c = rgb(color);
  return [c.r, c.g, c.b];
}
