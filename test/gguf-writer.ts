/**
 * A small GGUF writer for the tests (test/gguf.test.ts, test/gguf-families.test.ts): metadata of each value
 * type, tensors at aligned offsets (or offsets given, to make bad files), as llama.cpp's gguf-py writes them.
 */
import { GGML, readGguf, readTensorF32 } from '../src/load/gguf.js';
import { f32ToF16Bits } from './checkpoints.js';

export type MetaValue =
  | { u32: number }
  | { i32: number }
  | { u64: number }
  | { f32: number }
  | { bool: boolean }
  | { str: string }
  | { strs: string[] }
  | { f32s: number[] }
  | { i32s: number[] }
  | { rawType: number; bytes: Uint8Array };

export interface TensorSpec {
  name: string;
  /** ggml order: ne[0] fastest. */
  ne: number[];
  type: number;
  data: Uint8Array;
}

export interface GgufSpec {
  version?: number;
  metadata: [string, MetaValue][];
  tensors: TensorSpec[];
  alignment?: number;
  /** Replaces the computed data offset of tensor i (relative to the data section). */
  offsets?: Record<number, number>;
}

const u32 = (n: number) => Buffer.from(new Uint32Array([n]).buffer);
const u64 = (n: number | bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);

function encodeValue(v: MetaValue): Buffer {
  if ('u32' in v) return Buffer.concat([u32(4), u32(v.u32)]);
  if ('i32' in v) return Buffer.concat([u32(5), Buffer.from(new Int32Array([v.i32]).buffer)]);
  if ('u64' in v) return Buffer.concat([u32(10), u64(v.u64)]);
  if ('f32' in v) return Buffer.concat([u32(6), Buffer.from(new Float32Array([v.f32]).buffer)]);
  if ('bool' in v) return Buffer.concat([u32(7), Buffer.from([v.bool ? 1 : 0])]);
  if ('str' in v) return Buffer.concat([u32(8), str(v.str)]);
  if ('strs' in v) return Buffer.concat([u32(9), u32(8), u64(v.strs.length), ...v.strs.map(str)]);
  if ('f32s' in v)
    return Buffer.concat([u32(9), u32(6), u64(v.f32s.length), Buffer.from(Float32Array.from(v.f32s).buffer)]);
  if ('i32s' in v)
    return Buffer.concat([u32(9), u32(5), u64(v.i32s.length), Buffer.from(Int32Array.from(v.i32s).buffer)]);
  return Buffer.concat([u32(v.rawType), Buffer.from(v.bytes)]);
}

export function gguf(spec: GgufSpec): Buffer {
  const alignment = spec.alignment ?? 32;
  const align = (n: number) => Math.ceil(n / alignment) * alignment;
  const parts: Buffer[] = [
    Buffer.from('GGUF'),
    u32(spec.version ?? 3),
    u64(spec.tensors.length),
    u64(spec.metadata.length),
  ];
  for (const [key, value] of spec.metadata) parts.push(str(key), encodeValue(value));
  let offset = 0;
  const offsets: number[] = [];
  spec.tensors.forEach((t, i) => {
    offsets.push(spec.offsets?.[i] ?? offset);
    parts.push(str(t.name), u32(t.ne.length), ...t.ne.map((n) => u64(n)), u32(t.type), u64(offsets[i]));
    offset = align(offset + t.data.length);
  });
  const head = Buffer.concat(parts);
  const out = Buffer.alloc(align(head.length) + offset);
  head.copy(out);
  spec.tensors.forEach((t, i) => out.set(t.data, align(head.length) + offsets[i]));
  return out;
}

export const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
export const f32Bytes = (values: ArrayLike<number>) => bytesOf(Float32Array.from(values));
export const f16Bytes = (values: ArrayLike<number>) => bytesOf(Uint16Array.from(Array.from(values, f32ToF16Bits)));

/** A metadata value read back (gguf.ts) as the writer's MetaValue. */
export function toMeta(v: unknown): MetaValue {
  if (typeof v === 'string') return { str: v };
  if (typeof v === 'boolean') return { bool: v };
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? { u32: v } : { f32: v };
  const list = v as unknown[];
  if (typeof list[0] === 'string') return { strs: list as string[] };
  return list.every((x) => Number.isInteger(x)) ? { i32s: list as number[] } : { f32s: list as number[] };
}

/** The same file with every tensor dequantized (gguf.ts `dequantize`, ggml's formulas) and stored as F32. */
export function dequantizedCopy(path: string): Buffer {
  const g = readGguf(path);
  return gguf({
    metadata: [...g.metadata].map(([k, v]) => [k, toMeta(v)] as [string, MetaValue]),
    tensors: [...g.tensors.values()].map((t) => ({
      name: t.name,
      ne: t.ne,
      type: GGML.F32,
      data: f32Bytes(readTensorF32(g, t)),
    })),
  });
}
