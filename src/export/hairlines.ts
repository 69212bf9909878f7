/**
 * Anti-aliased hairlines (one device pixel wide) drawn straight into RGBA pixels: the model view's thumbnail
 * lines, ~147 k segments at 12 × 12 × 32 tokens, which resvg took ~1.2 s to stroke from SVG paths
 * (bench/RESULTS.md). Each segment is drawn as Skia draws an anti-aliased hairline (SkScan_Antihair, after
 * Xiaolin Wu): along its major axis, each pixel column (or row) it crosses gets the line's 1 px band split between
 * the two pixels it straddles at the column's centre, the end columns weighted by how much of them the segment
 * spans. Against resvg's strokes of the same segments, BERT-tiny's model view differs by at most 11 levels of 255.
 *
 * Segments of one colour are blended one after another (source-over), as a canvas strokes them. Blending colour
 * C at opacities a₁, a₂, … over a pixel d gives C + (d − C)·Π(1 − aᵢ), so a run of one colour is drawn by
 * multiplying one transmittance per pixel and blending C once at the end: a multiply per pixel touched rather
 * than three 8-bit blends (and no rounding between segments).
 *
 * Written here rather than taken from a library: @napi-rs/canvas (Skia) draws such lines, but its Linux binary
 * package is 22 MB beside resvg's 2 MB, and resvg would still set the text.
 */

/** Straight RGBA pixels, row-major (resvg's output). */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/** Segments `[x1, y1, x2, y2, …]` at one opacity. */
export interface HairlineBatch {
  segments: ArrayLike<number>;
  opacity: number;
}

let scratch = new Float32Array(0);

/**
 * Batches of segments in one colour `rgb` (0…255 each), in device px (pixel (i, j) spans [i, i + 1) ×
 * [j, j + 1)), scaled by `scale` first, blended into `image`. Parts outside the image are clipped.
 */
export function drawHairlines(
  image: RgbaImage,
  batches: readonly HairlineBatch[],
  rgb: readonly [number, number, number],
  scale = 1,
): void {
  // The pixels the run may touch: its segments' box, one pixel more each side, within the image.
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (const { segments: s } of batches)
    for (let i = 0; i + 1 < s.length; i += 2) {
      x0 = Math.min(x0, s[i]);
      x1 = Math.max(x1, s[i]);
      y0 = Math.min(y0, s[i + 1]);
      y1 = Math.max(y1, s[i + 1]);
    }
  const left = Math.max(0, Math.floor(x0 * scale) - 1),
    top = Math.max(0, Math.floor(y0 * scale) - 1);
  const w = Math.min(image.width, Math.ceil(x1 * scale) + 2) - left,
    h = Math.min(image.height, Math.ceil(y1 * scale) + 2) - top;
  if (!(w > 0 && h > 0)) return;
  if (scratch.length < w * h) scratch = new Float32Array(w * h);
  const t = scratch.subarray(0, w * h).fill(1);

  for (const { segments: s, opacity } of batches)
    for (let i = 0; i + 3 < s.length; i += 4) {
      const ax = s[i] * scale - left,
        ay = s[i + 1] * scale - top,
        bx = s[i + 2] * scale - left,
        by = s[i + 3] * scale - top;
      // Walk the major axis u upwards, v the minor one; du and dv are the index steps of u and v in `t`.
      const xMajor = Math.abs(bx - ax) >= Math.abs(by - ay);
      const pa = xMajor ? ax : ay,
        pb = xMajor ? bx : by,
        qa = xMajor ? ay : ax,
        qb = xMajor ? by : bx;
      if (pa === pb) continue;
      const u0 = Math.min(pa, pb),
        u1 = Math.max(pa, pb),
        v0 = pa < pb ? qa : qb,
        v1 = pa < pb ? qb : qa;
      const uN = xMajor ? w : h,
        vN = xMajor ? h : w,
        du = xMajor ? 1 : w,
        dv = xMajor ? w : 1;
      const slope = (v1 - v0) / (u1 - u0);
      const first = Math.max(0, Math.floor(u0)),
        last = Math.min(uN, Math.ceil(u1)) - 1;
      // The centre line's minor coordinate at column u's centre, less half a pixel: the band's top edge.
      let v = v0 + slope * (first + 0.5 - u0) - 0.5;
      for (let u = first; u <= last; u++, v += slope) {
        // How much of this column the segment spans: all of it but at its ends.
        const a = u === first || u === last ? opacity * (Math.min(u + 1, u1) - Math.max(u, u0)) : opacity;
        const k = Math.floor(v),
          f = v - k;
        // One unsigned comparison keeps both rows inside `t` (k = −1 wraps to a large number).
        if (k >>> 0 < vN) t[u * du + k * dv] *= 1 - a * (1 - f);
        if ((k + 1) >>> 0 < vN) t[u * du + (k + 1) * dv] *= 1 - a * f;
      }
    }

  const [r, g, b] = rgb;
  const d = image.data;
  for (let y = 0; y < h; y++)
    for (let x = 0, o = y * w, p = ((top + y) * image.width + left) * 4; x < w; x++, o++, p += 4) {
      const c = 1 - t[o];
      if (c === 0) continue;
      // Uint8ClampedArray rounds the stores.
      d[p] += (r - d[p]) * c;
      d[p + 1] += (g - d[p + 1]) * c;
      d[p + 2] += (b - d[p + 2]) * c;
    }
}
