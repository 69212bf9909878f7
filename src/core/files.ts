/**
 * Node only: the formats of this folder on disk. Reading safetensors headers and files, writing files
 * atomically, attention files by path. Everything else in core/ is browser-safe and shared with the app.
 */
import { open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Attention, AttentionStream, Tensor } from './attention.js';
import {
  type AttentionFileOptions,
  decodeAttentionFile,
  encodeAttentionFile,
  type FloatDType,
  idsTensor,
  metadataOf,
  type ReadOptions,
} from './attention-file.js';
import { BLOCK, blockAligned, DIRECT_MIN, DirectWriter, openDirect } from './direct.js';
import { toHalf } from './half.js';
import { AttnvizError, check, systemReason } from './errors.js';
import {
  DTYPE_BYTES,
  decodeHeader,
  headerLength,
  parseHeader,
  safetensorsHeader,
  type SafetensorsHeader,
  type TensorToWrite,
} from './safetensors.js';

/** Reads only the header of a safetensors file (weights stay on disk). */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  const file = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new AttnvizError(`${path}: cannot open (${systemReason(e)})`);
  });
  try {
    const stat = await file.stat();
    check(stat.isFile(), `${path}: not a file`);
    const { size } = stat;
    const lengthBytes = Buffer.alloc(8);
    await file.read(lengthBytes, 0, 8, 0);
    const header = Buffer.alloc(headerLength(lengthBytes, size, basename(path)));
    await file.read(header, 0, header.length, 8);
    return parseHeader(header, size, basename(path));
  } finally {
    await file.close();
  }
}

/** Reads a whole safetensors file into memory (for small files such as attention files). */
export async function readSafetensors(path: string): Promise<{ header: SafetensorsHeader; bytes: Buffer }> {
  const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    throw new AttnvizError(`${path}: cannot read (${systemReason(e)})`);
  });
  return { header: decodeHeader(bytes, basename(path)), bytes };
}

/**
 * Writes a file atomically: a temporary sibling `name.<pid>.tmp`, then rename, so a failure never leaves half a
 * file behind. A process killed mid-write leaves its temporary file; the next write to that folder removes such
 * files whose process is gone.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await removeStaleTemporaries(dirname(path));
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    // The cleanup fails too when the folder is missing or is a file (ENOTDIR): the write's error is the one to tell.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new AttnvizError(`cannot write ${path} (${writeReason(e, path)})`);
  }
}

/** Temporary files writeFileAtomic names: `<name>.<pid>.tmp`. */
const TEMPORARY = /^.+\.(\d+)\.tmp$/;

/** Removes `<name>.<pid>.tmp` files in `dir` whose process no longer runs (a write killed midway). */
async function removeStaleTemporaries(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(TEMPORARY.exec(name)?.[1]);
    if (!pid || pid === process.pid || processRuns(pid)) continue;
    await rm(join(dir, name), { force: true }).catch(() => undefined);
  }
}

/** Whether process `pid` runs (temporary files named after a pid are stale once it is gone). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, under another user.
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** A missing folder is the usual reason a write fails with ENOENT: name it. */
function writeReason(e: unknown, path: string): string {
  return (e as { code?: string }).code === 'ENOENT' ? `no such folder ${dirname(path)}` : systemReason(e);
}

export async function writeAttentionFile(
  path: string,
  a: Attention,
  options: AttentionFileOptions = {},
): Promise<void> {
  await writeFileAtomic(path, encodeAttentionFile(a, options));
}

export interface StreamFileOptions extends AttentionFileOptions {
  /**
   * Whether to write around the page cache (Linux's O_DIRECT, where the file system takes it): by default, for files
   * from 256 MiB up (core/direct.ts).
   */
  direct?: boolean;
}

/**
 * Writes an attention file from a stream, layer by layer: the header first (every shape is known from the
 * stream's header), then each layer's share of `attention`, `query` and `key` at its place as it arrives, then
 * `hidden_last` and `input_ids`. Memory holds one layer, and up to three parts being written (Writes). A temporary
 * sibling renamed at the end, so a failure leaves no half-written file. Returns the file's bytes and how many of
 * them were written around the page cache.
 */
export async function writeAttentionStream(
  path: string,
  stream: AttentionStream,
  options: StreamFileOptions = {},
): Promise<{ bytes: number; directBytes: number }> {
  const h = stream.header;
  const dtype = options.dtype ?? 'F32';
  const T = h.tokens.length,
    L = h.layers.length,
    H = h.heads.length;
  const shapes: { name: string; dtype: TensorToWrite['dtype']; shape: number[] }[] = [
    { name: 'attention', dtype, shape: [L, H, T, T] },
    ...(h.qk
      ? [
          { name: 'query', dtype, shape: [L, H, T, h.headDim] },
          { name: 'key', dtype, shape: [L, H, T, h.headDim] },
        ]
      : []),
    { name: 'hidden_last', dtype, shape: [T, h.hidden] },
    ...(h.inputIds ? [{ name: 'input_ids', dtype: 'I64' as const, shape: [T] }] : []),
  ];
  const { bytes: header } = safetensorsHeader(shapes, {
    attnviz: metadataOf({ ...h, layers: h.layers, heads: h.heads }),
  });
  // Each tensor's place in the file: after the header and the tensors before it.
  const offsets: Record<string, number> = {};
  let at = header.length;
  for (const t of shapes) {
    offsets[t.name] = at;
    at += t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
  }
  const tmp = `${path}.${process.pid}.tmp`;
  await removeStaleTemporaries(dirname(path));
  const file = await open(tmp, 'w').catch((e: unknown) => {
    throw new AttnvizError(`cannot write ${path} (${writeReason(e, path)})`);
  });
  const direct = (options.direct ?? at >= DIRECT_MIN) ? await openDirect(tmp) : undefined;
  const writer = new DirectWriter(file, direct);
  // Each tensor is written front to back: a stream's parts, appended, are the [L, H, …] tensor.
  const end = { ...offsets };
  const writes = new Writes(writer, dtype);
  const write = async (name: string, t: Tensor) => {
    const bytes = await writes.write(t.data, end[name]);
    end[name] += bytes;
  };
  try {
    // At its size from the start: no write extends the file (on ext4 a direct write that does waits for the others).
    await file.truncate(at);
    await file.write(header, 0, header.length, 0);
    for await (const layer of stream) {
      await write('attention', layer.attention);
      if (h.qk && layer.query && layer.key) {
        await write('query', layer.query);
        await write('key', layer.key);
      }
    }
    const layersDone = (end.attention - offsets.attention) / (H * T * T * DTYPE_BYTES[dtype]);
    check(
      layersDone === L && stream.hiddenLast,
      `${path}: the stream ended after ${Math.floor(layersDone)} of ${L} layers`,
    );
    await write('hidden_last', stream.hiddenLast);
    if (h.inputIds) {
      const b = idsTensor(h.inputIds).data;
      await file.write(new Uint8Array(b.buffer), 0, b.byteLength, offsets.input_ids);
    }
    await writes.done();
    await direct?.close();
    await file.close();
    await rename(tmp, path);
    return { bytes: at, directBytes: writer.directBytes };
  } catch (e) {
    await writes.settled();
    await direct?.close().catch(() => undefined);
    await file.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e instanceof AttnvizError ? e : new AttnvizError(`cannot write ${path} (${writeReason(e, path)})`);
  }
}

/**
 * A stream's parts written while the stream computes the next: each part is converted (F16, BF16) or copied (F32)
 * into a buffer of the writer's own, since the stream reuses its buffers for the next part, and its write is left
 * running. A long input's file is gigabytes (1B Llama shapes, 2048 tokens, F16: 4.57 GB; awaited part by part, 12 s
 * besides 18 s of computing on this VM; overlapped, 25–29 s). What was left is the page cache's own CPU time, which
 * the computing's cores pay: large files are written around it (core/direct.ts), from buffers placed as the bytes
 * lie in the file's blocks. Up to SLOTS writes are under way: a layer's first part comes with its q, k.
 */
class Writes {
  private static readonly SLOTS = 3;
  private readonly slots = Array.from({ length: Writes.SLOTS }, () => ({
    buffer: new ArrayBuffer(0),
    written: Promise.resolve(),
  }));
  private next = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly file: DirectWriter,
    private readonly dtype: FloatDType,
  ) {}

  /**
   * Converts `values` into the next slot once its last write is done and starts writing them at `position`;
   * returns their bytes. Rethrows an earlier write's failure.
   */
  async write(values: Float32Array, position: number): Promise<number> {
    const slot = this.slots[this.next];
    this.next = (this.next + 1) % Writes.SLOTS;
    await slot.written;
    if (this.failure) throw this.failure.error;
    const size = values.length * DTYPE_BYTES[this.dtype];
    // The part lies in the buffer as in the file's blocks: its whole blocks are block-aligned in memory too.
    const lead = position % BLOCK;
    if (slot.buffer.byteLength < lead + size) slot.buffer = blockAligned(BLOCK + size);
    if (this.dtype === 'F32') new Float32Array(slot.buffer, lead, values.length).set(values);
    else toHalf(values, this.dtype, new Uint16Array(slot.buffer, lead, values.length));
    slot.written = this.file.write(new Uint8Array(slot.buffer, lead, size), position).catch((error: unknown) => {
      this.failure ??= { error };
    });
    return size;
  }

  /** Waits for every write; rethrows the first failure. */
  async done(): Promise<void> {
    await this.settled();
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every write (failed or not): the file can be closed. */
  settled(): Promise<unknown> {
    return Promise.all(this.slots.map((s) => s.written));
  }
}

export async function readAttentionFile(path: string, options: ReadOptions = {}): Promise<Attention> {
  const { bytes } = await readSafetensors(path);
  return decodeAttentionFile(bytes, basename(path), options);
}
