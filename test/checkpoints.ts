/**
 * Test helper: derives a new Hugging Face model folder from an existing one (e.g. a golden model) with its
 * weights rewritten — tensors renamed, dropped or added, floats converted to F16/BF16 (or rounded through
 * them and stored back as F32), split into shards with a `model.safetensors.index.json`, config.json fields
 * patched, tokenizer.json dropped. The folder is made under os.tmpdir(); remove it with `removeCheckpoint`.
 *
 * The f32 → f16 / bf16 conversions are written here (Node 20 has no Float16Array): round to nearest, ties to
 * even, overflow to ±Infinity, f16 subnormals kept, NaN stays NaN.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, type DType, type TensorToWrite } from '../src/core/safetensors.js';
import { readSafetensors } from '../src/core/files.js';

/** Tokenizer files copied when the source has them (tokenizer.json unless `dropTokenizerJson`). */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.txt',
  'vocab.json',
  'merges.txt',
];

export interface DeriveOptions {
  /** New name for each tensor of the source, or null to drop it (default: keep every name). */
  rename?: (name: string) => string | null;
  /** Tensors added after the (renamed) source tensors; a name already present is replaced. */
  extra?: Record<string, TensorToWrite>;
  /**
   * Float tensors (F32 in the source) are converted to `dtype`; with `storeAs: 'F32'` they are rounded to
   * `dtype`'s precision but written back as F32 (the same values, for exact comparisons).
   */
  floats?: { dtype: 'F16' | 'BF16'; storeAs?: 'native' | 'F32' };
  /** Split the weights into this many shards + index (1 or undefined: a single model.safetensors). */
  shards?: number;
  /** Fields to set in config.json; a value of `undefined` deletes the field. */
  config?: Record<string, unknown>;
  /** Leave out tokenizer.json (so the loader must fall back to vocab.txt / vocab.json + merges.txt). */
  dropTokenizerJson?: boolean;
  /** Files not to write at all (e.g. 'config.json', 'vocab.txt', 'model.safetensors'). */
  omit?: string[];
  /** Folder prefix under os.tmpdir(). */
  prefix?: string;
}

/** Derives a checkpoint from the model folder `srcDir`; returns the new folder. */
export async function deriveCheckpoint(srcDir: string, options: DeriveOptions = {}): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), options.prefix ?? 'attnviz-ckpt-'));
  try {
    const omit = new Set(options.omit ?? []);

    // config.json, patched
    if (!omit.has('config.json')) {
      const config = JSON.parse(await readFile(join(srcDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      for (const [key, value] of Object.entries(options.config ?? {})) {
        if (value === undefined) delete config[key];
        else config[key] = value;
      }
      await writeFile(join(out, 'config.json'), JSON.stringify(config, null, 2));
    }

    // tokenizer files
    for (const name of TOKENIZER_FILES) {
      if (omit.has(name) || (name === 'tokenizer.json' && options.dropTokenizerJson)) continue;
      if (existsSync(join(srcDir, name))) await copyFile(join(srcDir, name), join(out, name));
    }

    // weights
    const { tensors, metadata } = await readWeights(srcDir);
    const rewritten: Record<string, TensorToWrite> = {};
    for (const [name, t] of tensors) {
      const target = options.rename ? options.rename(name) : name;
      if (target === null) continue;
      if (Object.hasOwn(rewritten, target)) throw new Error(`deriveCheckpoint: two tensors renamed to ${target}`);
      rewritten[target] = options.floats
        ? convertFloats(t, options.floats.dtype, options.floats.storeAs ?? 'native')
        : t;
    }
    for (const [name, t] of Object.entries(options.extra ?? {})) rewritten[name] = t;
    await writeWeights(out, rewritten, metadata, options.shards ?? 1, omit);
    return out;
  } catch (e) {
    await rm(out, { recursive: true, force: true });
    throw e;
  }
}

export async function removeCheckpoint(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Every tensor of a model folder (single file or shards), as copies of its bytes, in file order. */
export async function readWeights(
  dir: string,
): Promise<{ tensors: Map<string, TensorToWrite>; metadata: Record<string, string> }> {
  const single = join(dir, 'model.safetensors');
  let files: string[];
  if (existsSync(single)) files = [single];
  else {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    files = [...new Set(Object.values(index.weight_map))].map((f) => join(dir, f));
  }
  const tensors = new Map<string, TensorToWrite>();
  let metadata: Record<string, string> = {};
  for (const file of files) {
    const { header, bytes } = await readSafetensors(file);
    metadata = { ...metadata, ...header.metadata };
    for (const e of [...header.tensors.values()].sort((a, b) => a.offset - b.offset)) {
      tensors.set(e.name, {
        dtype: e.dtype,
        shape: e.shape,
        data: Uint8Array.from(bytes.subarray(e.offset, e.offset + e.byteLength)),
      });
    }
  }
  return { tensors, metadata };
}

/** A tensor's values as float32 (F32, F16 or BF16 tensors). */
export function tensorToF32(t: TensorToWrite): Float32Array {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (t.dtype === 'F32') return Float32Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
  if (t.dtype === 'F16')
    return Float32Array.from({ length: bytes.length / 2 }, (_, i) => f16BitsToF32(view.getUint16(i * 2, true)));
  if (t.dtype === 'BF16')
    return Float32Array.from({ length: bytes.length / 2 }, (_, i) => bf16BitsToF32(view.getUint16(i * 2, true)));
  throw new Error(`tensorToF32: ${t.dtype} is not a float dtype`);
}

function convertFloats(t: TensorToWrite, dtype: 'F16' | 'BF16', storeAs: 'native' | 'F32'): TensorToWrite {
  if (t.dtype !== 'F32') return t;
  const values = tensorToF32(t);
  const encode = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  const decode = dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
  if (storeAs === 'F32') return { dtype: 'F32', shape: t.shape, data: values.map((x) => decode(encode(x))) };
  const bits = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) bits[i] = encode(values[i]);
  return { dtype, shape: t.shape, data: littleEndian16(bits) };
}

/** Uint16Array bytes in little-endian order whatever the host (safetensors is little-endian). */
function littleEndian16(bits: Uint16Array): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const view = new DataView(out.buffer);
  bits.forEach((b, i) => view.setUint16(i * 2, b, true));
  return out;
}

async function writeWeights(
  dir: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string>,
  shards: number,
  omit: Set<string>,
): Promise<void> {
  const names = Object.keys(tensors);
  if (shards <= 1) {
    if (!omit.has('model.safetensors'))
      await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors, metadata));
    return;
  }
  if (shards > names.length) throw new Error(`deriveCheckpoint: ${shards} shards for ${names.length} tensors`);
  // Contiguous runs of tensors, balanced by count.
  const pad = (n: number) => String(n).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${pad(s + 1)}-of-${pad(shards)}.safetensors`;
    const part: Record<string, TensorToWrite> = {};
    for (const name of names.slice(
      Math.floor((s * names.length) / shards),
      Math.floor(((s + 1) * names.length) / shards),
    )) {
      part[name] = tensors[name];
      weightMap[name] = file;
      totalSize += tensors[name].data.byteLength;
    }
    if (!omit.has(file)) await writeFile(join(dir, file), encodeSafetensors(part, metadata));
  }
  if (!omit.has('model.safetensors.index.json')) {
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2),
    );
  }
}

// ---- float conversions ----------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** IEEE binary16 bits of the float32 nearest to `x`, rounded to nearest even. */
export function f32ToF16Bits(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // Inf, NaN (kept quiet)
  const e = exp - 127 + 15; // biased f16 exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // f16 subnormal (or zero): value = m·2^-24 with m = (1.mant)·2^(e-14+23) = full >> (14 - e)
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (m & 1) === 1)) m++; // may carry into the smallest normal, correctly
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach 0x7c00 = Infinity, correctly
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits (the top half of a float32), rounded to nearest even. */
export function f32ToBf16Bits(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff; // NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff; // bits < 0xffff8000 here, so no 32-bit wrap
}

export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

export type { DType };
