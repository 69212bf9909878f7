/**
 * The raster mark's arithmetic, pure and DOM-free: combining heads, max-pooling a matrix to fewer cells,
 * colour scales, and painting values as RGBA (one pixel per cell, as Plot's raster and CircuitsVis's
 * AttentionImage; the browser scales the image without smoothing).
 *
 * Colour scales map a weight to [0, 1] (0 = background, 1 = full colour) against the largest weight shown, so
 * a faint head is not a near-empty picture. One column that takes most of the weight (BOS, the attention
 * sink) flattens everything else under a linear scale; sqrt and log lift small weights, 'row' divides each row
 * by its own maximum, and `exclude` leaves chosen columns out of the maximum (they saturate instead).
 */
import { rgb } from 'd3-color';

export type ColorScale = 'linear' | 'sqrt' | 'log' | 'row';
export const COLOR_SCALES: Record<ColorScale, string> = {
  linear: 'Linear',
  sqrt: 'Square root',
  log: 'Log',
  row: 'Row maximum',
};
export type Combine = 'mean' | 'max';
/** The log scale spans this many decades below the maximum; smaller weights are background. */
export const LOG_DECADES = 4;

/** Heads' `[R × C]` matrices combined cell by cell: their mean or their maximum (a new array). */
export function combineHeads(matrices: readonly Float32Array[], n: number, how: Combine): Float32Array {
  const out = new Float32Array(n);
  accumulate(out, matrices, how, true);
  if (how === 'mean' && matrices.length > 1) for (let i = 0; i < n; i++) out[i] /= matrices.length;
  return out;
}

/**
 * Adds `matrices` into `acc` (sum for 'mean', maximum for 'max'), so heads that arrive one at a time combine
 * without all being held; `first` says `acc` holds nothing yet. Divide a sum by the head count at the end.
 */
export function accumulate(acc: Float32Array, matrices: readonly Float32Array[], how: Combine, first = false): void {
  matrices.forEach((m, k) => {
    if (first && k === 0) acc.set(m.subarray(0, acc.length));
    else if (how === 'max') {
      for (let i = 0; i < acc.length; i++) if (m[i] > acc[i]) acc[i] = m[i];
    } else for (let i = 0; i < acc.length; i++) acc[i] += m[i];
  });
}

/**
 * `[R × C]` max-pooled to `[outR × outC]` (outR ≤ R, outC ≤ C) into `out`: each output cell holds the largest
 * value of the cells it covers, so one strong weight stays visible however small the picture.
 */
export function maxPool<A extends Float32Array | Uint8Array>(
  w: A,
  R: number,
  C: number,
  outR: number,
  outC: number,
  out: A,
): A {
  const colAt = new Int32Array(C);
  for (let c = 0; c < C; c++) colAt[c] = Math.floor((c * outC) / C);
  for (let r = 0; r < R; r++) {
    const o = Math.floor((r * outR) / R) * outC,
      i = r * C;
    for (let c = 0; c < C; c++) {
      const v = w[i + c],
        k = o + colAt[c];
      if (v > out[k]) out[k] = v;
    }
  }
  return out;
}

/** `count` consecutive `[R × C]` matrices (a layer's heads) each max-pooled to `[outR × outC]`, in one new array. */
export function maxPoolHeads(
  w: Float32Array,
  count: number,
  R: number,
  C: number,
  outR: number,
  outC: number,
): Float32Array {
  const out = new Float32Array(count * outR * outC);
  for (let h = 0; h < count; h++)
    maxPool(
      w.subarray(h * R * C, (h + 1) * R * C),
      R,
      C,
      outR,
      outC,
      out.subarray(h * outR * outC, (h + 1) * outR * outC),
    );
  return out;
}

export interface ScaleOptions {
  scale: ColorScale;
  /** Column indices left out of the maximum (they saturate). */
  exclude?: ReadonlySet<number>;
}

/**
 * `[R × C]` weights → colour positions 0…255 under a colour scale (see the header); one byte per cell, since
 * that is all a colour channel resolves and a 8k × 8k matrix must not be copied at 4 bytes a cell.
 */
export function scaleValues(w: Float32Array, R: number, C: number, o: ScaleOptions): Uint8Array {
  const t = new Uint8Array(R * C);
  const ex = [...(o.exclude ?? [])].filter((c) => c >= 0 && c < C);
  const rowMax = (r: number) => {
    let m = 0;
    for (let i = r * C, end = i + C; i < end; i++) if (w[i] > m) m = w[i];
    if (ex.length === 0 || !(m > 0)) return m;
    // Excluded columns are few: recompute without them only when one of them is the maximum.
    if (!ex.some((c) => w[r * C + c] === m)) return m;
    const out = new Set(ex);
    m = 0;
    for (let c = 0, i = r * C; c < C; c++, i++) if (w[i] > m && !out.has(c)) m = w[i];
    return m;
  };
  let max = 0;
  if (o.scale !== 'row') for (let r = 0; r < R; r++) max = Math.max(max, rowMax(r));
  const f = positions(o.scale);
  for (let r = 0; r < R; r++) {
    const m = o.scale === 'row' ? rowMax(r) : max;
    if (m > 0) f(w, t, r * C, (r + 1) * C, 1 / m);
  }
  return t;
}

/**
 * The colour scale's inner loop over cells [from, to), one per scale so the hot loop has no branch on it:
 * t = 255 × (x, √x or 1 + log10(x) / LOG_DECADES) for x = w × inv, rounded (Uint8Array stores truncate, hence the +
 * 0.5; clamped to 0…255).
 */
function positions(scale: ColorScale): (w: Float32Array, t: Uint8Array, from: number, to: number, inv: number) => void {
  const store = (x: number) => (x >= 1 ? 255 : x > 0 ? 255 * x + 0.5 : 0);
  switch (scale) {
    case 'sqrt':
      return (w, t, from, to, inv) => {
        for (let i = from; i < to; i++) t[i] = store(Math.sqrt(w[i] * inv));
      };
    case 'log':
      return (w, t, from, to, inv) => {
        for (let i = from; i < to; i++) {
          const x = w[i] * inv;
          t[i] = x > 0 ? store(1 + Math.log10(x) / LOG_DECADES) : 0;
        }
      };
    default:
      return (w, t, from, to, inv) => {
        for (let i = from; i < to; i++) t[i] = store(w[i] * inv);
      };
  }
}

/** 2 × 2 max-pooling of a `[h × w]` byte image into `[⌈h/2⌉ × ⌈w/2⌉]` (the heatmap's pyramid levels). */
export function halve(t: Uint8Array, h: number, w: number): Uint8Array {
  const nw = Math.ceil(w / 2),
    nh = Math.ceil(h / 2);
  const out = new Uint8Array(nw * nh);
  for (let y = 0; y < h; y++) {
    const o = (y >> 1) * nw,
      i = y * w;
    for (let x = 0; x < w; x++) {
      const v = t[i + x],
        k = o + (x >> 1);
      if (v > out[k]) out[k] = v;
    }
  }
  return out;
}

/** Colour positions (0…255) painted as `color` over `background`: RGBA bytes, one pixel per cell. */
export function paint(
  t: Uint8Array,
  color: string,
  background: string,
  from = 0,
  to = t.length,
): Uint8ClampedArray<ArrayBuffer> {
  const fg = rgb(color),
    bg = rgb(background);
  const lut = new Uint32Array(256);
  const bytes = new Uint8Array(lut.buffer);
  for (let v = 0; v < 256; v++) {
    const x = v / 255;
    const mix = (b: number, f: number) => Math.round(b + (f - b) * x);
    bytes.set([mix(bg.r, fg.r), mix(bg.g, fg.g), mix(bg.b, fg.b), 255], v * 4);
  }
  const out = new Uint32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = lut[t[i]];
  return new Uint8ClampedArray(out.buffer);
}
