/** Half-precision floats (IEEE binary16 and bfloat16) to and from float32, for weights, constants and payloads. */

/** float32 bits → float16 bits, round to nearest even; overflow → ±Infinity. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >> shift;
    const rem = m & ((1 << shift) - 1),
      mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** float16 bits → its value. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const FLOAT = new Float32Array(1);
const BITS = new Uint32Array(FLOAT.buffer);

/** bfloat16 bits (the top half of a float32's bits) → its value. */
export function bf16ToF32(h: number): number {
  BITS[0] = h << 16;
  return FLOAT[0];
}

/** The 16-bit float formats: IEEE half, and bfloat16 (float32's top 16 bits). */
export type HalfType = 'F16' | 'BF16';

/** float32 values → float16 or bfloat16 bits, rounded to nearest even, written into `out`. */
export function toHalf(values: Float32Array, type: HalfType, out = new Uint16Array(values.length)): Uint16Array {
  const u = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (type === 'F16')
    for (let i = 0; i < u.length; i++) {
      const x = u[i];
      const a = x & 0x7fffffff;
      // Most values (attention probabilities from ~6e-5 up, and every exact 0 of a causal mask) take a short path:
      // a normal half (2^-14 ≤ |x| < 2^16) is the exponent rebiased and the mantissa rounded to nearest even in one
      // add (round bit + sticky bits + the kept lsb carry into the exponent as rounding should; 65520 and up
      // become Infinity). The rest (subnormals, NaN, Infinity) go through f32BitsToF16; every one of the 2³² inputs
      // gives its bits (checked once, bench/RESULTS.md; test/stream.test.ts checks the boundaries).
      out[i] =
        (a - 0x38800000) >>> 0 < 0x0f000000
          ? ((x >>> 16) & 0x8000) | ((a - 0x37fff001 + ((a >>> 13) & 1)) >>> 13)
          : a === 0
            ? x >>> 16
            : f32BitsToF16(x);
    }
  else
    for (let i = 0; i < u.length; i++) {
      const x = u[i];
      // NaN stays NaN (rounding could carry its mantissa into the exponent and make it infinite).
      out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  return out;
}

/** float16 or bfloat16 bits → float32 values (exact: every 16-bit float is a float32). */
export function fromHalf(bits: Uint16Array, type: HalfType): Float32Array {
  const out = new Float32Array(bits.length);
  if (type === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  } else {
    const table = (f16Table ??= Float32Array.from({ length: 65536 }, (_, h) => f16ToF32(h)));
    for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  }
  return out;
}

let f16Table: Float32Array | undefined;
