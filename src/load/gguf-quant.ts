/**
 * GGUF block-quantized matrices repacked, exactly, for onnxruntime's `com.microsoft` MatMulNBits (CPU kernel
 * of onnxruntime 1.30: 2-, 4- or 8-bit codes; block_size a power of two ≥ 16; scales of A's type, float32;
 * zero points uint8 packed like the codes, or absent: then 2^(bits−1)). It computes x·Wᵀ with W[n, k] =
 * (code − zero point) · scale of k's block, accumulating in float32 (accuracy_level left at its default, so
 * the activations are not quantized).
 *
 * Every ggml type here is d·q (+ a per-block offset), so it maps to codes, scales and an optional offset per
 * block: W = MatMulNBits part + offset[n, block] (added in the graph as blocksum(x)·offsetᵀ, exact):
 *
 * | ggml | block | bits | code | zero point | scale | offset |
 * |---|---|---|---|---|---|---|
 * | Q8_0 | 32 | 8 | int8 q + 128 | (128) | d | – |
 * | Q4_0 | 32 | 4 | q (0..15) | (8) | d | – |
 * | Q4_1 | 32 | 4 | q | 0 | d | m |
 * | Q5_0 | 32 | 8 | q + 112 (q 0..31) | (128) | d | – |
 * | Q5_1 | 32 | 8 | q + 128 | (128) | d | m |
 * | Q4_K | 32 | 4 | q | 0 | d·sc | −dmin·m |
 * | Q5_K | 32 | 8 | q + 128 | (128) | d·sc | −dmin·m |
 * | Q6_K | 16 | 8 | q + 96 (q 0..63) | (128) | d·sc | – |
 *
 * 5- and 6-bit codes sit in 8-bit containers (the kernel has no 5- or 6-bit path). Scales and offsets are
 * ggml's own float32 products (ggml-quants.c dequantize_row_*), so each weight is the value ggml computes. The
 * K types keep them as ggml does, a small integer per block under one float per super-block (`Factored`:
 * sc and m as uint8, Q6_K's sc as int8, d and −dmin as float32), and the graph multiplies them out when it
 * runs (MatMulNBits reads its scales at run time): a float32 scale and offset per 32 values would be 2 bytes
 * more per 18 of Q4_K.
 */
import { f16ToF32 } from '../core/half.js';
import { AttnvizError } from '../core/errors.js';
import { GGML, ggmlTypeName, minK4, scaleK4 } from './gguf.js';

/**
 * Per-block values as integer codes under one float32 factor per `group` consecutive blocks (a super-block):
 * value of block b = fround(factors[⌊b / group⌋] · codes[b]), the float32 product ggml computes.
 */
export interface Factored {
  /** `[rows · blocks]`. */
  codes: Uint8Array | Int8Array;
  /** `[rows · blocks / group]`. */
  factors: Float32Array;
  group: number;
}

/** Per-block values `[rows, cols / blockSize]`: float32, or factored (the K types). */
export type BlockValues = Float32Array | Factored;

/** A matrix `[rows, cols]` (nn.Linear `[out, in]`) in MatMulNBits' layout, blocks along `cols`. */
export interface PackedMatrix {
  bits: 4 | 8;
  blockSize: number;
  rows: number;
  cols: number;
  /** `[rows, cols / blockSize, blockSize · bits / 8]`; 4-bit: value 2i in the low nibble of byte i. */
  codes: Uint8Array;
  scales: BlockValues;
  /** 4-bit types with an offset: zero points 0 (so all alike for one geometry: not in `packedBytes`). */
  zeroPoints?: boolean;
  /** Added to every weight of the block. */
  offsets?: BlockValues;
}

/**
 * Block geometry of each packable ggml type: values and bytes per ggml block, MatMulNBits bits and block,
 * whether it has an offset, and `group`: the MatMulNBits blocks per super-block whose scales (and offsets)
 * are kept factored (0: float32 per block).
 */
const LAYOUT: Record<
  number,
  { values: number; bytes: number; bits: 4 | 8; block: number; offset: boolean; group: number }
> = {
  [GGML.Q8_0]: { values: 32, bytes: 34, bits: 8, block: 32, offset: false, group: 0 },
  [GGML.Q4_0]: { values: 32, bytes: 18, bits: 4, block: 32, offset: false, group: 0 },
  [GGML.Q4_1]: { values: 32, bytes: 20, bits: 4, block: 32, offset: true, group: 0 },
  [GGML.Q5_0]: { values: 32, bytes: 22, bits: 8, block: 32, offset: false, group: 0 },
  [GGML.Q5_1]: { values: 32, bytes: 24, bits: 8, block: 32, offset: true, group: 0 },
  [GGML.Q4_K]: { values: 256, bytes: 144, bits: 4, block: 32, offset: true, group: 8 },
  [GGML.Q5_K]: { values: 256, bytes: 176, bits: 8, block: 32, offset: true, group: 8 },
  [GGML.Q6_K]: { values: 256, bytes: 210, bits: 8, block: 16, offset: false, group: 16 },
};

/** The ggml types `packMatrix` takes. */
export const PACKED_TYPES: readonly number[] = Object.keys(LAYOUT).map(Number);

/**
 * Bytes `packMatrix` gives for a `[rows, cols]` matrix of `type` (what the session holds; the zero points, one
 * array per geometry shared by every matrix of it, left out).
 */
export function packedBytes(type: number, rows: number, cols: number): number {
  const l = LAYOUT[type];
  const blocks = rows * (cols / l.block);
  const perBlock = l.group ? 1 + 4 / l.group : 4; // a code and a share of its factor, or a float32
  return (blocks * l.block * l.bits) / 8 + blocks * perBlock * (l.offset ? 2 : 1);
}

/** Where packMatrix puts its arrays: `bytes` fresh zeroed bytes, 4-byte aligned. */
export type Allocate = (bytes: number) => Uint8Array;

/**
 * Repacks the ggml data of a `[rows, cols]` matrix (`cols` = ne[0]) of one of PACKED_TYPES, into memory from
 * `allocate` (default: a new array each).
 */
export function packMatrix(
  type: number,
  bytes: Uint8Array,
  rows: number,
  cols: number,
  allocate: Allocate = (n) => new Uint8Array(n),
): PackedMatrix {
  const l = LAYOUT[type];
  if (!l) throw new AttnvizError(`ggml type ${ggmlTypeName(type)} has no MatMulNBits layout`);
  const blocks = (rows * cols) / l.block;
  const floats = (n: number) => {
    const b = allocate(4 * n);
    return new Float32Array(b.buffer, b.byteOffset, n);
  };
  const count = (rows * cols) / l.values;
  // A scale and offset per block: float32, or (factored) a code per block and a factor per super-block.
  const perBlock = (signed: boolean) => {
    if (!l.group) return floats(blocks);
    const b = allocate(blocks);
    return signed ? new Int8Array(b.buffer, b.byteOffset, blocks) : b;
  };
  const codes = allocate((blocks * l.block * l.bits) / 8);
  const scaleOf = perBlock(type === GGML.Q6_K),
    offsetOf = l.offset ? perBlock(false) : undefined;
  const d = floats(l.group ? count : 0),
    dmin = floats(l.group && l.offset ? count : 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f16 = (at: number) => f16ToF32(view.getUint16(at, true));
  // q: the block's values in order as codes (already shifted for the zero point); written by `put`.
  const q = new Uint8Array(l.block);
  const values = new Uint8Array(256); // Q6_K: one super-block's 6-bit codes
  let b = 0; // MatMulNBits block index (row-major: row n, block j → n·blocks per row + j)
  // put: the block's codes, and its scale and offset (float32, or their codes when factored).
  const put = (scale: number, offset = 0) => {
    scaleOf[b] = scale;
    if (offsetOf) offsetOf[b] = offset;
    if (l.bits === 8) codes.set(q, b * l.block);
    else for (let i = 0; i < l.block / 2; i++) codes[b * (l.block / 2) + i] = q[2 * i] | (q[2 * i + 1] << 4);
    b++;
  };
  for (let g = 0; g < count; g++) {
    const at = g * l.bytes;
    switch (type) {
      case GGML.Q8_0: // { f16 d; i8 qs[32] }
        for (let j = 0; j < 32; j++) q[j] = (bytes[at + 2 + j] ^ 0x80) & 0xff;
        put(f16(at));
        break;
      case GGML.Q4_0: // { f16 d; u8 qs[16] }: values 0..15 low nibbles, 16..31 high nibbles
      case GGML.Q4_1: {
        // Q4_1: { f16 d; f16 m; u8 qs[16] }: x = d·q + m
        const qs = at + (type === GGML.Q4_1 ? 4 : 2);
        for (let j = 0; j < 16; j++) {
          q[j] = bytes[qs + j] & 0xf;
          q[j + 16] = bytes[qs + j] >> 4;
        }
        if (type === GGML.Q4_1) put(f16(at), f16(at + 2));
        else put(f16(at));
        break;
      }
      case GGML.Q5_0: // { f16 d; u8 qh[4]; u8 qs[16] }: x = d·(q − 16), q's fifth bit j in qh
      case GGML.Q5_1: {
        // Q5_1: { f16 d; f16 m; u8 qh[4]; u8 qs[16] }: x = d·q + m
        const one = type === GGML.Q5_1;
        const qh = view.getUint32(at + (one ? 4 : 2), true),
          qs = at + (one ? 8 : 6);
        const shift = one ? 128 : 112;
        for (let j = 0; j < 16; j++) {
          q[j] = ((bytes[qs + j] & 0xf) | (((qh >>> j) & 1) << 4)) + shift;
          q[j + 16] = ((bytes[qs + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4)) + shift;
        }
        if (one) put(f16(at), f16(at + 2));
        else put(f16(at));
        break;
      }
      case GGML.Q4_K: // { f16 d, dmin; u8 scales[12]; u8 qs[128] }: 8 sub-blocks of 32, x = d·sc·q − dmin·m
      case GGML.Q5_K: {
        // Q5_K: { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: the fifth bit of value l of sub-block s in qh[l]
        const five = type === GGML.Q5_K;
        const sc = bytes.subarray(at + 4, at + 16);
        // Factors d and −dmin (negation is exact: each offset is −fround(dmin·m), as ggml subtracts it).
        d[g] = f16(at);
        dmin[g] = -f16(at + 2);
        const qh = at + 16,
          qs = at + (five ? 48 : 16);
        for (let s = 0; s < 8; s++) {
          const ql = qs + (s >> 1) * 32,
            shift = (s & 1) * 4;
          if (five)
            for (let l2 = 0; l2 < 32; l2++)
              q[l2] = ((bytes[ql + l2] >> shift) & 0xf) + (((bytes[qh + l2] >> s) & 1) << 4) + 128;
          else for (let l2 = 0; l2 < 32; l2++) q[l2] = (bytes[ql + l2] >> shift) & 0xf;
          put(scaleK4(s, sc), minK4(s, sc));
        }
        break;
      }
      case GGML.Q6_K: {
        // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: 16 groups of 16, x = d·sc·(q − 32)
        d[g] = f16(at + 208);
        for (let half = 0; half < 2; half++) {
          const ql = at + half * 64,
            qh = at + 128 + half * 32,
            out = half * 128;
          for (let l2 = 0; l2 < 32; l2++) {
            const h = bytes[qh + l2];
            values[out + l2] = (bytes[ql + l2] & 0xf) | ((h & 3) << 4);
            values[out + l2 + 32] = (bytes[ql + l2 + 32] & 0xf) | (((h >> 2) & 3) << 4);
            values[out + l2 + 64] = (bytes[ql + l2] >> 4) | (((h >> 4) & 3) << 4);
            values[out + l2 + 96] = (bytes[ql + l2 + 32] >> 4) | (((h >> 6) & 3) << 4);
          }
        }
        for (let s = 0; s < 16; s++) {
          for (let j = 0; j < 16; j++) q[j] = values[s * 16 + j] + 96;
          put(view.getInt8(at + 192 + s));
        }
        break;
      }
    }
  }
  const factor = (v: Float32Array | Uint8Array | Int8Array, factors: Float32Array): BlockValues =>
    v instanceof Float32Array ? v : { codes: v, factors, group: l.group };
  const packed: PackedMatrix = { bits: l.bits, blockSize: l.block, rows, cols, codes, scales: factor(scaleOf, d) };
  if (!offsetOf) return packed;
  const offsets = factor(offsetOf, dmin);
  // With an offset the codes are the plain q: zero point 0 (8-bit: q + 128 against the default 128).
  return { ...packed, offsets, ...(l.bits === 4 ? { zeroPoints: true } : {}) };
}
