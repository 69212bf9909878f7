/**
 * GGUF, the model file of ggml / llama.cpp (versions 2 and 3), read and checked field by field:
 *
 *   "GGUF" · u32 version · u64 tensor count · u64 metadata count
 *   metadata: (string key, u32 value type, value)…     strings are u64 length + UTF-8 bytes
 *   tensor infos: (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)…
 *   padding to `general.alignment` (default 32), then the tensor data; offsets are relative to its start.
 *
 * Dimensions are ggml's `ne`, fastest-varying first: a PyTorch `[out, in]` matrix is stored with
 * ne = [in, out]. `shape` below is the PyTorch order (ne reversed). Quantized types pack `ne[0]` in blocks
 * (32 or 256 values); `dequantize` turns F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K data
 * into float32 with
 * ggml's own formulas (ggml-quants.c dequantize_row_*), rounding in float32 as the C code does. Every other
 * type is named in an error. Little-endian files only (big-endian GGUF exists but is rare).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { bf16ToF32, f16ToF32 } from '../core/half.js';
import { AttnvizError, check, systemReason } from '../core/errors.js';
import { readBytes } from './weights.js';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml's ne: fastest-varying dimension first. */
  ne: number[];
  /** PyTorch order: ne reversed. */
  shape: number[];
  type: number;
  /** Name of the ggml type (F32, Q4_K, …), or `type N` for an id this reader does not know. */
  typeName: string;
  /** Absolute offset of the first byte in the file. */
  offset: number;
  /** Bytes of data; null when the type's block size is unknown (the tensor cannot be read). */
  byteLength: number | null;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** Absolute offset of the tensor data section. */
  dataStart: number;
  fileSize: number;
}

// ---- ggml types -----------------------------------------------------------------------------------

interface TypeInfo {
  name: string;
  /** Values per block and bytes per block (1 and the element size for plain types). */
  block?: readonly [number, number];
}

/** ggml's type ids (ggml.h `enum ggml_type`), with block geometry for those that may be read or skipped. */
const GGML_TYPES: Record<number, TypeInfo> = {
  0: { name: 'F32', block: [1, 4] },
  1: { name: 'F16', block: [1, 2] },
  2: { name: 'Q4_0', block: [32, 18] },
  3: { name: 'Q4_1', block: [32, 20] },
  6: { name: 'Q5_0', block: [32, 22] },
  7: { name: 'Q5_1', block: [32, 24] },
  8: { name: 'Q8_0', block: [32, 34] },
  9: { name: 'Q8_1', block: [32, 36] },
  10: { name: 'Q2_K', block: [256, 84] },
  11: { name: 'Q3_K', block: [256, 110] },
  12: { name: 'Q4_K', block: [256, 144] },
  13: { name: 'Q5_K', block: [256, 176] },
  14: { name: 'Q6_K', block: [256, 210] },
  15: { name: 'Q8_K', block: [256, 292] },
  16: { name: 'IQ2_XXS' },
  17: { name: 'IQ2_XS' },
  18: { name: 'IQ3_XXS' },
  19: { name: 'IQ1_S' },
  20: { name: 'IQ4_NL', block: [32, 18] },
  21: { name: 'IQ3_S' },
  22: { name: 'IQ2_S' },
  23: { name: 'IQ4_XS' },
  24: { name: 'I8', block: [1, 1] },
  25: { name: 'I16', block: [1, 2] },
  26: { name: 'I32', block: [1, 4] },
  27: { name: 'I64', block: [1, 8] },
  28: { name: 'F64', block: [1, 8] },
  29: { name: 'IQ1_M' },
  30: { name: 'BF16', block: [1, 2] },
  34: { name: 'TQ1_0' },
  35: { name: 'TQ2_0' },
  39: { name: 'MXFP4', block: [32, 17] },
};

export const GGML = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q2_K: 10,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;

/** The types `dequantize` reads. */
export const READABLE_TYPES: readonly number[] = [
  GGML.F32,
  GGML.F16,
  GGML.BF16,
  GGML.Q8_0,
  GGML.Q4_0,
  GGML.Q4_1,
  GGML.Q5_0,
  GGML.Q5_1,
  GGML.Q4_K,
  GGML.Q5_K,
  GGML.Q6_K,
];

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

// ---- reading the header ---------------------------------------------------------------------------

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
/** Arrays of arrays: GGUF files in use nest at most one level; deeper is refused, not recursed into. */
const MAX_ARRAY_DEPTH = 8;

const VALUE_TYPES = [
  'UINT8',
  'INT8',
  'UINT16',
  'INT16',
  'UINT32',
  'INT32',
  'FLOAT32',
  'BOOL',
  'STRING',
  'ARRAY',
  'UINT64',
  'INT64',
  'FLOAT64',
];
const FIXED_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Reads the header of a GGUF file (metadata and tensor infos); tensor data stays on disk. */
export function readGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new AttnvizError(`${path}: cannot open (${systemReason(e)})`);
  }
  try {
    return parse(new Cursor(fd, fstatSync(fd).size, basename(path)), path);
  } finally {
    closeSync(fd);
  }
}

function parse(c: Cursor, path: string): GgufFile {
  const what = c.what;
  check(c.size >= 24, `${what}: ${c.size} bytes is too short for a GGUF file`);
  const magic = c.u32();
  check(magic === MAGIC, `${what}: not a GGUF file (no "GGUF" magic)`);
  const version = c.u32();
  check(version !== 0x03000000 && version !== 0x02000000, `${what}: big-endian GGUF is not supported`);
  check(version === 2 || version === 3, `${what}: GGUF version ${version} is not supported (only 2 and 3)`);
  const tensorCount = c.count('tensor count');
  const kvCount = c.count('metadata count');

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string('metadata key');
    const type = c.u32();
    metadata.set(key, c.value(type, key));
  }

  const alignment = metadata.get('general.alignment') ?? 32;
  check(
    typeof alignment === 'number' &&
      Number.isInteger(alignment) &&
      alignment > 0 &&
      (alignment & (alignment - 1)) === 0,
    `${what}: general.alignment must be a power of two, got ${String(alignment)}`,
  );

  const infos: { name: string; ne: number[]; type: number; relative: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = c.string('tensor name');
    const nDims = c.u32();
    check(nDims >= 1 && nDims <= 4, `${what}: tensor "${name}" has ${nDims} dimensions (ggml allows 1 to 4)`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const n = c.u64();
      check(n > 0n && n <= BigInt(Number.MAX_SAFE_INTEGER), `${what}: tensor "${name}" has dimension ${n}`);
      ne.push(Number(n));
    }
    const type = c.u32();
    const offset = c.u64();
    check(
      offset <= BigInt(c.size),
      `${what}: tensor "${name}" starts at data offset ${offset}, past the end of the ${c.size}-byte file (truncated?)`,
    );
    check(
      Number(offset) % alignment === 0,
      `${what}: tensor "${name}" data offset ${offset} is not a multiple of the alignment ${alignment}`,
    );
    infos.push({ name, ne, type, relative: Number(offset) });
  }
  const dataStart = Math.ceil(c.position / alignment) * alignment;

  const tensors = new Map<string, GgufTensorInfo>();
  for (const { name, ne, type, relative } of infos) {
    check(!tensors.has(name), `${what}: tensor "${name}" appears twice`);
    const count = ne.reduce((a, b) => a * b, 1);
    const block = GGML_TYPES[type]?.block;
    let byteLength: number | null = null;
    if (block) {
      check(
        ne[0] % block[0] === 0,
        `${what}: tensor "${name}" (${ggmlTypeName(type)}) has a row of ${ne[0]} values, ` +
          `not a multiple of the block size ${block[0]}`,
      );
      byteLength = (count / block[0]) * block[1];
      const end = dataStart + relative + byteLength;
      check(
        end <= c.size,
        `${what}: tensor "${name}" runs to byte ${end} but the file has ${c.size} bytes (truncated?)`,
      );
    }
    tensors.set(name, {
      name,
      ne,
      shape: [...ne].reverse(),
      type,
      typeName: ggmlTypeName(type),
      offset: dataStart + relative,
      byteLength,
    });
  }
  // Tensors must not overlap (a corrupt header could make two names share bytes).
  const sorted = [...tensors.values()].filter((t) => t.byteLength).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    check(
      sorted[i - 1].offset + sorted[i - 1].byteLength! <= sorted[i].offset,
      `${what}: tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap`,
    );
  }
  return { path, version, metadata, tensors, dataStart, fileSize: c.size };
}

/** Sequential reads through a file descriptor, in chunks; every length is checked against the file size. */
class Cursor {
  position = 0;
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    readonly what: string,
  ) {}

  private take(n: number, what: string): Buffer {
    check(
      this.position + n <= this.size,
      () =>
        `${this.what}: truncated: the ${what} at byte ${this.position} runs past the end of the ${this.size}-byte file`,
    );
    const at = this.position - this.bufferStart;
    if (at < 0 || at + n > this.buffer.length) {
      this.buffer = Buffer.alloc(Math.min(Math.max(n, 1 << 20), this.size - this.position));
      readSync(this.fd, this.buffer, 0, this.buffer.length, this.position);
      this.bufferStart = this.position;
    }
    const start = this.position - this.bufferStart;
    this.position += n;
    return this.buffer.subarray(start, start + n);
  }

  u32(): number {
    return this.take(4, 'u32').readUInt32LE(0);
  }

  u64(): bigint {
    return this.take(8, 'u64').readBigUInt64LE(0);
  }

  /** A u64 count, bounded by the file size (each item takes at least one byte). */
  count(what: string): number {
    const n = this.u64();
    check(
      n <= BigInt(this.size),
      `${this.what}: ${what} ${n} is impossible in a ${this.size}-byte file (corrupt header)`,
    );
    return Number(n);
  }

  string(what: string): string {
    const n = this.count(`${what} length`);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n, what));
    } catch (e) {
      if (e instanceof AttnvizError) throw e;
      throw new AttnvizError(`${this.what}: a ${what} at byte ${this.position - n} is not valid UTF-8`);
    }
  }

  /** A metadata value of `type`; arrays nest at most MAX_ARRAY_DEPTH deep (recursion bounded, no stack overflow). */
  value(type: number, key: string, depth = 0): GgufValue {
    switch (type) {
      case 0:
        return this.take(1, key).readUInt8(0);
      case 1:
        return this.take(1, key).readInt8(0);
      case 2:
        return this.take(2, key).readUInt16LE(0);
      case 3:
        return this.take(2, key).readInt16LE(0);
      case 4:
        return this.take(4, key).readUInt32LE(0);
      case 5:
        return this.take(4, key).readInt32LE(0);
      case 6:
        return this.take(4, key).readFloatLE(0);
      case 7:
        return this.take(1, key).readUInt8(0) !== 0;
      case 8:
        return this.string(`value of ${key}`);
      case 9: {
        check(depth < MAX_ARRAY_DEPTH, () => `${this.what}: metadata ${key} nests arrays over ${MAX_ARRAY_DEPTH} deep`);
        const itemType = this.u32();
        const n = this.count(`length of ${key}`);
        // Strings take at least their 8-byte length, arrays their 12-byte type and length.
        const least = FIXED_SIZES[itemType] ?? 8;
        check(
          this.position + n * least <= this.size,
          () => `${this.what}: truncated: array ${key} runs past the end of the file`,
        );
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(itemType, key, depth + 1);
        return out;
      }
      case 10:
        return asNumber(this.take(8, key).readBigUInt64LE(0));
      case 11:
        return asNumber(this.take(8, key).readBigInt64LE(0));
      case 12:
        return this.take(8, key).readDoubleLE(0);
      default:
        throw new AttnvizError(
          `${this.what}: metadata ${key} has value type ${type}, ` +
            `which GGUF does not define (${VALUE_TYPES.join(', ')})`,
        );
    }
  }
}

/** 64-bit integers as numbers when exact (ids, counts), else as bigint. */
function asNumber(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

// ---- tensor data ----------------------------------------------------------------------------------

/** The raw bytes of one tensor. */
export function readTensorBytes(file: GgufFile, t: GgufTensorInfo): Buffer {
  check(t.byteLength !== null, () => unreadable(file, t));
  return readBytes(file.path, t.offset, t.byteLength, `tensor "${t.name}"`);
}

function unreadable(file: GgufFile, t: GgufTensorInfo): string {
  return (
    `${basename(file.path)}: tensor "${t.name}" has type ${t.typeName}, which attnviz cannot read ` +
    `(supported: ${READABLE_TYPES.map(ggmlTypeName).join(', ')})`
  );
}

/** A tensor's values in float32 (row-major in PyTorch order, i.e. ggml's memory order). */
export function readTensorF32(file: GgufFile, t: GgufTensorInfo): Float32Array {
  check(READABLE_TYPES.includes(t.type), () => unreadable(file, t));
  return dequantize(
    t.type,
    readTensorBytes(file, t),
    t.ne.reduce((a, b) => a * b, 1),
  );
}

/** `count` values of ggml type `type` from `bytes`, as float32. */
export function dequantize(type: number, bytes: Uint8Array, count: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const y = new Float32Array(count);
  const f16 = (at: number) => f16ToF32(view.getUint16(at, true));
  switch (type) {
    case GGML.F32:
      for (let i = 0; i < count; i++) y[i] = view.getFloat32(i * 4, true);
      return y;
    case GGML.F16:
      for (let i = 0; i < count; i++) y[i] = f16(i * 2);
      return y;
    case GGML.BF16:
      for (let i = 0; i < count; i++) y[i] = bf16ToF32(view.getUint16(i * 2, true));
      return y;
    case GGML.Q8_0: // { f16 d; i8 qs[32] }: x = qs·d
      for (let b = 0; b < count / 32; b++) {
        const at = b * 34,
          d = f16(at);
        for (let j = 0; j < 32; j++) y[b * 32 + j] = view.getInt8(at + 2 + j) * d;
      }
      return y;
    case GGML.Q4_0: // { f16 d; u8 qs[16] }: low nibbles are values 0..15, high nibbles 16..31, each (q − 8)·d
      for (let b = 0; b < count / 32; b++) {
        const at = b * 18,
          d = f16(at);
        for (let j = 0; j < 16; j++) {
          const q = bytes[at + 2 + j];
          y[b * 32 + j] = ((q & 0xf) - 8) * d;
          y[b * 32 + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      return y;
    case GGML.Q4_1: // { f16 d, m; u8 qs[16] }: nibbles as Q4_0, x = q·d + m
      for (let b = 0; b < count / 32; b++) {
        const at = b * 20,
          d = f16(at),
          m = f16(at + 2);
        for (let j = 0; j < 16; j++) {
          const q = bytes[at + 4 + j];
          y[b * 32 + j] = Math.fround((q & 0xf) * d) + m;
          y[b * 32 + j + 16] = Math.fround((q >> 4) * d) + m;
        }
      }
      return y;
    // { f16 d; u8 qh[4]; u8 qs[16] }: Q4_0's nibbles plus a fifth bit (value j: bit j of qh), x = (q − 16)·d
    case GGML.Q5_0:
    case GGML.Q5_1: {
      // { f16 d, m; u8 qh[4]; u8 qs[16] }: q·d + m
      const one = type === GGML.Q5_1,
        size = one ? 24 : 22;
      for (let b = 0; b < count / 32; b++) {
        const at = b * size,
          d = f16(at),
          m = one ? f16(at + 2) : 0;
        const qh = view.getUint32(at + (one ? 4 : 2), true),
          qs = at + (one ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const q0 = (bytes[qs + j] & 0xf) | (((qh >>> j) & 1) << 4),
            q1 = (bytes[qs + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          y[b * 32 + j] = one ? Math.fround(q0 * d) + m : (q0 - 16) * d;
          y[b * 32 + j + 16] = one ? Math.fround(q1 * d) + m : (q1 - 16) * d;
        }
      }
      return y;
    }
    case GGML.Q4_K: // { f16 d, dmin; u8 scales[12]; u8 qs[128] }: 8 sub-blocks of 32, x = d·sc·q − dmin·m
    case GGML.Q5_K: {
      // { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: Q4_K plus a fifth bit (sub-block s: bit s of qh[l])
      const five = type === GGML.Q5_K,
        size = five ? 176 : 144;
      for (let b = 0; b < count / 256; b++) {
        const at = b * size,
          d = f16(at),
          dmin = f16(at + 2);
        const scales = bytes.subarray(at + 4, at + 16);
        let out = b * 256;
        for (let s = 0; s < 8; s++) {
          // Two sub-blocks share 32 bytes of quants: low nibbles, then high nibbles.
          const sc = scaleK4(s, scales),
            m = minK4(s, scales);
          const d1 = Math.fround(d * sc),
            m1 = Math.fround(dmin * m);
          const ql = at + (five ? 48 : 16) + (s >> 1) * 32;
          for (let l = 0; l < 32; l++) {
            const nibble = s & 1 ? bytes[ql + l] >> 4 : bytes[ql + l] & 0xf;
            const q = five ? nibble + (((bytes[at + 16 + l] >> s) & 1) << 4) : nibble;
            y[out++] = Math.fround(d1 * q) - m1;
          }
        }
      }
      return y;
    }
    case GGML.Q6_K: // { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: 16 groups of 16, x = d·sc·(q − 32), q 6 bits
      for (let b = 0; b < count / 256; b++) {
        const at = b * 210,
          d = f16(at + 208);
        for (let half = 0; half < 2; half++) {
          const ql = at + half * 64,
            qh = at + 128 + half * 32,
            sc = at + 192 + half * 8,
            out = b * 256 + half * 128;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4,
              h = bytes[qh + l];
            const q1 = ((bytes[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
            const q2 = ((bytes[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
            y[out + l] = Math.fround(d * view.getInt8(sc + is)) * q1;
            y[out + l + 32] = Math.fround(d * view.getInt8(sc + is + 2)) * q2;
            y[out + l + 64] = Math.fround(d * view.getInt8(sc + is + 4)) * q3;
            y[out + l + 96] = Math.fround(d * view.getInt8(sc + is + 6)) * q4;
          }
        }
      }
      return y;
    default:
      throw new AttnvizError(
        `cannot dequantize ggml type ${ggmlTypeName(type)} (supported: ${READABLE_TYPES.map(ggmlTypeName).join(', ')})`,
      );
  }
}

/** Q4_K's 6-bit scale of sub-block j, packed in 12 bytes with the mins (ggml-quants.c get_scale_min_k4). */
export function scaleK4(j: number, q: Uint8Array): number {
  return j < 4 ? q[j] & 63 : (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
}

/** Q4_K's 6-bit min of sub-block j (get_scale_min_k4). */
export function minK4(j: number, q: Uint8Array): number {
  return j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
}
