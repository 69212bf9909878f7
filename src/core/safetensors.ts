/**
 * safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the tensor bytes,
 * offsets relative to the end of the header. Hand-written (the format is this small and no maintained JS
 * reader exists that bounds-checks hostile headers); every field is checked before anything is trusted.
 *
 * Decoding is browser-safe (the app reads attention files in the page); reading and writing files is in
 * files.ts (Node).
 */
import { AttnvizError, check, shorten } from './errors.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Where one tensor's bytes lie in a file; `offset` is absolute (from the start of the file). */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Absolute offset of the first tensor byte (8 + header length). */
  dataStart: number;
}

/** Headers beyond this are refused before being read: real ones are well under 1 MB per thousand tensors. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Tensors a header may list: the largest checkpoints have a few thousand per file. */
export const MAX_TENSORS = 100_000;

/** Parses and validates a header against the size of the file that holds it. */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, what: string): SafetensorsHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new AttnvizError(`${what}: safetensors header is not valid JSON (${(e as Error).message})`);
  }
  check(
    json !== null && typeof json === 'object' && !Array.isArray(json),
    `${what}: safetensors header is not a JSON object`,
  );
  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  const entries = Object.entries(json as Record<string, unknown>);
  check(
    entries.length <= MAX_TENSORS + 1,
    `${what}: safetensors header lists ${entries.length} entries, over the limit of ${MAX_TENSORS} tensors`,
  );
  for (const [name, value] of entries) {
    if (name === '__metadata__') {
      check(isStringRecord(value), `${what}: __metadata__ must map strings to strings`);
      metadata = value;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    const where = `${what}: tensor ${shorten(name)}`;
    check(v !== null && typeof v === 'object', `${where} has no description`);
    check(
      typeof v.dtype === 'string' && v.dtype in DTYPE_BYTES,
      () => `${where} has unsupported dtype ${shorten(v.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`,
    );
    check(Array.isArray(v.shape) && v.shape.every(isIndex), `${where} has an invalid shape ${shorten(v.shape)}`);
    check(
      Array.isArray(v.data_offsets) && v.data_offsets.length === 2 && v.data_offsets.every(isIndex),
      `${where} has invalid data_offsets ${shorten(v.data_offsets)}`,
    );
    const dtype = v.dtype as DType;
    const shape = v.shape as number[];
    const [begin, end] = v.data_offsets as [number, number];
    check(
      begin <= end && end <= dataSize,
      `${where} has data_offsets [${begin}, ${end}] outside the file's ${dataSize} data bytes ` +
        `(truncated or corrupt file)`,
    );
    const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    check(
      end - begin === expected,
      `${where}: dtype ${dtype} and shape [${shape.join(', ')}] need ${expected} bytes ` +
        `but data_offsets span ${end - begin}`,
    );
    tensors.set(name, { name, dtype, shape, offset: dataStart + begin, byteLength: end - begin });
  }
  // The format's rule: the tensors tile the data section exactly, without gaps or overlaps. A header-length
  // field a few bytes short still parses (trailing spaces) but shifts every tensor; this catches it.
  const sorted = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  let at = dataStart;
  for (const t of sorted) {
    check(
      t.offset === at,
      `${what}: tensor ${shorten(t.name)} starts at data byte ${t.offset - dataStart}, not ${at - dataStart}: ` +
        (t.offset < at ? 'tensors overlap' : 'a gap in the data (wrong header length or offsets)'),
    );
    at += t.byteLength;
  }
  check(
    at === fileSize,
    `${what}: the tensors cover ${at - dataStart} of the ${dataSize} data bytes (wrong header length or offsets)`,
  );
  return { tensors, metadata, dataStart };
}

/** Parses the header of a safetensors file image held in memory. */
export function decodeHeader(bytes: Uint8Array, what: string): SafetensorsHeader {
  const length = headerLength(bytes.subarray(0, 8), bytes.length, what);
  return parseHeader(bytes.subarray(8, 8 + length), bytes.length, what);
}

/** The header length stored in the first 8 bytes, checked against the file size and MAX_HEADER_BYTES. */
export function headerLength(first8: Uint8Array, fileSize: number, what: string): number {
  check(fileSize >= 8, `${what}: ${fileSize} bytes is too short for a safetensors file`);
  const length = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  check(
    length <= BigInt(fileSize - 8),
    `${what}: safetensors header length ${length} runs past the end of the ${fileSize}-byte file ` +
      `(truncated or not safetensors)`,
  );
  check(
    length <= BigInt(MAX_HEADER_BYTES),
    `${what}: safetensors header of ${length} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`,
  );
  return Number(length);
}

export interface TensorToWrite {
  dtype: DType;
  shape: readonly number[];
  data: ArrayBufferView;
}

/**
 * The start of a safetensors file holding `tensors` in this order: the u64 header length, then the JSON header
 * padded with spaces to a multiple of 8 bytes (like the Python writer). The tensors' bytes follow it,
 * `dataBytes` in all: writers that stream large files write this first, then each tensor.
 */
export function safetensorsHeader(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata: Record<string, string> = {},
): { bytes: Buffer; dataBytes: number } {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const { name, dtype, shape } of tensors) {
    const size = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = Buffer.alloc(8 + padded, 0x20);
  bytes.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(bytes, 8);
  return { bytes, dataBytes: offset };
}

/** Encodes tensors and string metadata as one safetensors file image. */
export function encodeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = {},
): Buffer {
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected)
      throw new Error(`tensor ${name}: ${t.data.byteLength} bytes for ${t.dtype}[${t.shape.join(', ')}]`);
  }
  const header = safetensorsHeader(
    Object.entries(tensors).map(([name, t]) => ({ name, ...t })),
    metadata,
  );
  const out = Buffer.alloc(header.bytes.length + header.dataBytes);
  header.bytes.copy(out, 0);
  let at = header.bytes.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isStringRecord(x: unknown): x is Record<string, string> {
  return (
    x !== null && typeof x === 'object' && !Array.isArray(x) && Object.values(x).every((v) => typeof v === 'string')
  );
}
