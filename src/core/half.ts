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
  const simd = type === 'F16' ? simdF16() : null;
  // WebAssembly takes whole runs of eight; the rest, and everything where it does not load, goes through the loop.
  const done = simd ? simd(values, out) : 0;
  if (type === 'F16')
    for (let i = done; i < u.length; i++) {
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

/**
 * half.wat assembled (test/stream.test.ts checks these are its bytes): the F16 conversion four lanes at a time,
 * twice the loop's speed (bench/RESULTS.md, seventh session), which matters for long inputs' F16 files (1B Llama
 * shapes at 2048 tokens: 2.2 G values per file).
 */
export const HALF_WASM =
  'AGFzbQEAAAABDAJgAXsBe2ADf39/AAMDAgABBQMBAAEHEAIGbWVtb3J5AgADZjE2AAEKgwICkwEBBHsgAEH/////B/0R/U4hASABQYHg' +
  '/78D/RH9sQEgAUEN/a0BQQH9Ef1O/a4BQQ39rQEhAiABQwAAAD/9E/3kAUGAgID4A/0R/bEBIQNBgPwB/RFBgPgB/REgAUGAgID8B/0R' +
  '/Tz9UiEEIABBEP2tAUGAgAL9Ef1OIAMgAiAE/bcBIAFBgICAxAP9Ef06/VL9UAtsAgF/AnsgACACQQJ0aiEDAkADQCAAIANPDQEgAP0A' +
  'BAAhBCAA/QAEECEFIAEgBCAF/VD9UwR7IAQQACAFEAD9hgEF/QwAAAAAAAAAAAAAAAAAAAAAC/0LBAAgAEEgaiEAIAFBEGohAQwACwsL';

/** Values per pass through the module's memory (384 KB of it: the chunk and its halves stay in cache). */
const SIMD_CHUNK = 1 << 16;

type SimdF16 = (values: Float32Array, out: Uint16Array) => number;
let simd: SimdF16 | null | undefined;

/**
 * The WebAssembly F16 converter: converts the values' longest prefix of whole eights into `out` and returns its
 * length; null where WebAssembly SIMD is not available (the loop does everything then).
 */
function simdF16(): SimdF16 | null {
  if (simd !== undefined) return simd;
  try {
    const bytes = Uint8Array.from(atob(HALF_WASM), (c) => c.charCodeAt(0));
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    const memory = exports.memory as WebAssembly.Memory;
    const f16 = exports.f16 as (src: number, dst: number, n: number) => void;
    memory.grow(Math.ceil((SIMD_CHUNK * 6) / 65536));
    const src = new Float32Array(memory.buffer, 0, SIMD_CHUNK);
    const dst = new Uint16Array(memory.buffer, SIMD_CHUNK * 4, SIMD_CHUNK);
    simd = (values, out) => {
      const whole = values.length & ~7;
      for (let at = 0; at < whole; at += SIMD_CHUNK) {
        const n = Math.min(SIMD_CHUNK, whole - at);
        src.set(values.subarray(at, at + n));
        f16(0, src.byteLength, n);
        out.set(dst.subarray(0, n), at);
      }
      return whole;
    };
  } catch {
    simd = null;
  }
  return simd;
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
