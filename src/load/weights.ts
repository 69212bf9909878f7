/**
 * The checkpoint's tensors, located on disk but not read: the ONNX graph refers to their bytes in place (as
 * external data), so onnxruntime reads each weight once, straight from the safetensors file, and the weights
 * never pass through JavaScript memory. Single files and sharded checkpoints (an index + shards) both load.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import { readHeader } from '../core/files.js';
import type { DType, TensorEntry } from '../core/safetensors.js';
import type { Allocate, PackedMatrix } from './gguf-quant.js';

/** One tensor of the checkpoint: its header entry plus the real path of the file that holds it. */
export interface WeightRef extends TensorEntry {
  file: string;
  /**
   * A GGUF block-quantized matrix (dtype U8: its raw blocks), repacked for MatMulNBits when a graph is built
   * (load/gguf-quant.ts).
   */
  quantized?: { type: string; pack(allocate?: Allocate): PackedMatrix };
}

export const FLOAT_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

export class Weights {
  /** Directory that contains every weight file (after resolving symlinks, e.g. hub-cache blobs). */
  readonly root: string;
  private readonly tensors: Map<string, WeightRef>;
  /** Names `get` has returned: what the graphs built so far read. */
  private readonly readNames = new Set<string>();

  private constructor(root: string, tensors: Map<string, WeightRef>) {
    this.root = root;
    this.tensors = tensors;
  }

  /** Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`, in `dir`. */
  static async open(dir: string): Promise<Weights> {
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    let files: string[];
    if (existsSync(single)) files = [single];
    else if (existsSync(index)) files = await shardFiles(dir, index);
    else
      throw new AttnvizError(
        `${dir}: no weights (looked for model.safetensors and model.safetensors.index.json; ` +
          `only safetensors checkpoints are supported)`,
      );

    const tensors = new Map<string, WeightRef>();
    const real = await Promise.all(files.map((f) => realpath(f)));
    for (const file of real) {
      const header = await readHeader(file);
      for (const entry of header.tensors.values()) tensors.set(entry.name, { ...entry, file });
    }
    return new Weights(commonDir(real), tensors);
  }

  /** Tensors located by another reader (a GGUF file's, load/gguf-checkpoint.ts), all under `root`. */
  static of(root: string, tensors: Map<string, WeightRef>): Weights {
    return new Weights(root, tensors);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  /**
   * The first of `names` that the checkpoint holds (real checkpoints spell some tensors in several ways),
   * checked to be a float tensor of exactly `shape`.
   */
  get(names: string | readonly string[], shape: readonly number[]): WeightRef {
    const candidates = typeof names === 'string' ? [names] : names;
    const found = candidates.map((n) => this.tensors.get(n)).find((t) => t !== undefined);
    check(found, `checkpoint is missing tensor ${candidates.map((n) => `"${n}"`).join(' or ')}`);
    check(
      found.quantized || FLOAT_DTYPES.includes(found.dtype),
      `tensor "${found.name}" has dtype ${found.dtype}; expected F32, F16 or BF16`,
    );
    check(
      found.shape.length === shape.length && found.shape.every((d, i) => d === shape[i]),
      `tensor "${found.name}" has shape [${found.shape.join(', ')}]; the config implies [${shape.join(', ')}]`,
    );
    this.readNames.add(found.name);
    return found;
  }

  /** The checkpoint's tensors that no `get` has returned (in file order). */
  unread(): string[] {
    return [...this.tensors.keys()].filter((name) => !this.readNames.has(name));
  }

  /** Whether some tensors are quantized (GGUF): repacked, so handed to onnxruntime as bytes. */
  hasQuantized(): boolean {
    for (const t of this.tensors.values()) if (t.quantized) return true;
    return false;
  }

  /** The bytes of one tensor, read from its file (into `into` when given). */
  read(ref: WeightRef, into?: Uint8Array): Uint8Array {
    return readBytes(ref.file, ref.offset, ref.byteLength, `tensor "${ref.name}"`, into);
  }

  /** Path of a weight file relative to `root`, as an ONNX external-data location. */
  location(ref: WeightRef): string {
    return relative(this.root, ref.file).split(sep).join('/');
  }

  /** Each weight file (by its external-data location) with the bytes its tensors take from its start. */
  extents(): Map<string, { file: string; bytes: number }> {
    const out = new Map<string, { file: string; bytes: number }>();
    for (const t of this.tensors.values()) {
      const location = this.location(t);
      const end = t.offset + t.byteLength;
      if (end > (out.get(location)?.bytes ?? -1)) out.set(location, { file: t.file, bytes: end });
    }
    return out;
  }

  /** Total bytes of all tensors (what loading costs in memory). */
  byteLength(): number {
    let total = 0;
    for (const t of this.tensors.values()) total += t.byteLength;
    return total;
  }
}

/** `length` bytes of the file at `path` from `offset` (`what` names them if the file is short). */
export function readBytes(path: string, offset: number, length: number, what: string, into?: Uint8Array): Buffer {
  const out = into ? Buffer.from(into.buffer, into.byteOffset, length) : Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    for (let done = 0; done < length; ) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), offset + done);
      check(n > 0, `${basename(path)}: truncated while reading ${what}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

async function shardFiles(dir: string, indexPath: string): Promise<string[]> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new AttnvizError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  check(map !== null && typeof map === 'object' && !Array.isArray(map), `${indexPath}: has no weight_map object`);
  const names = [...new Set(Object.values(map))];
  check(names.length > 0, `${indexPath}: weight_map lists no shards`);
  for (const name of names) {
    check(
      typeof name === 'string' && /^[^/\\]+$/.test(name) && name !== '.' && name !== '..',
      `${indexPath}: shard name ${JSON.stringify(name)} is not a file name in the model folder`,
    );
    check(existsSync(join(dir, name)), `${dir}: shard ${name} listed in model.safetensors.index.json is missing`);
  }
  return names.map((n) => join(dir, n as string));
}

/** Deepest directory containing all `files`; onnxruntime only reads external data below its base folder. */
function commonDir(files: string[]): string {
  let dir = dirname(files[0]);
  while (!files.every((f) => f.startsWith(dir.endsWith(sep) ? dir : dir + sep))) dir = dirname(dir);
  return dir;
}
