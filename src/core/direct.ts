/**
 * Node only: writing large files around the page cache. A long input's attention file is gigabytes written once
 * (Llama-3.2-1B shapes, 2048 tokens, F16: 4.57 GB). Through the page cache every byte is first copied into a
 * fresh page of the kernel's, which the computing's cores pay for: on this project's 2-core VM, `dd` of 4.7 GB cost
 * 12.1 s of system CPU buffered and 0.6 s with O_DIRECT, where the device reads the process's memory itself
 * (bench/RESULTS.md, eighth session). Linux only (O_DIRECT); elsewhere, and wherever the system refuses it, files go
 * through the cache as before.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/**
 * Files from this size up are written around the cache; smaller ones stay in it, where reading one back right
 * after (the app, `attnviz view`) costs nothing.
 */
export const DIRECT_MIN = 256 * 2 ** 20;

/**
 * O_DIRECT wants file offsets, lengths and memory addresses in whole blocks of the device (512 B or 4 KiB). 64 KiB
 * also keeps each memory page (4 to 64 KiB, by the system) wholly written one way: a page written through the cache
 * while a direct write covers part of it can keep stale bytes. A write's bytes outside whole blocks (less than a
 * block at each end) go through the cache.
 */
export const BLOCK = 65536;

/** A second handle on `path` that writes around the cache, or undefined where the system has no such thing. */
export async function openDirect(path: string): Promise<FileHandle | undefined> {
  // O_DIRECT is undefined in Node's constants off Linux.
  if (constants.O_DIRECT === undefined) return undefined;
  return open(path, constants.O_WRONLY | constants.O_DIRECT).catch(() => undefined);
}

/**
 * `bytes` bytes whose start is at a block boundary in memory. JavaScript has one such allocation without a native
 * addon: a WebAssembly memory, which V8 maps from a fresh range of pages (64 KiB-aligned or better here). Past a
 * WebAssembly memory's 4 GiB, an ordinary buffer: its direct writes are refused (EINVAL) and go through the cache.
 */
export function blockAligned(bytes: number): ArrayBuffer {
  const pages = Math.ceil(bytes / 65536);
  return pages <= 65536 ? new WebAssembly.Memory({ initial: pages }).buffer : new ArrayBuffer(bytes);
}

/** Writes all of `bytes` at `position` (a write may take fewer bytes than it is given). */
async function writeAll(file: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await file.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/** A file written through two handles on it: the cache's, and one around it for whole blocks. */
export class DirectWriter {
  /** Bytes written around the cache so far. */
  directBytes = 0;

  constructor(
    private readonly cached: FileHandle,
    private direct: FileHandle | undefined,
  ) {}

  /**
   * Writes `bytes` at `position`: its whole blocks around the cache, provided `bytes` sits in memory as it will in
   * the file (byte `position % BLOCK` of a block-aligned buffer), the ends through the cache. A direct write the
   * system refuses (EINVAL: the file system, or memory that is not aligned) is written through the cache, as is
   * everything after it.
   */
  async write(bytes: Uint8Array, position: number): Promise<void> {
    const direct = this.direct;
    if (!direct) return writeAll(this.cached, bytes, position);
    const end = position + bytes.length;
    const a = Math.min(Math.ceil(position / BLOCK) * BLOCK, end);
    const b = Math.max(a, end - (end % BLOCK));
    const middle = bytes.subarray(a - position, b - position);
    await Promise.all([
      writeAll(this.cached, bytes.subarray(0, a - position), position),
      writeAll(this.cached, bytes.subarray(b - position), b),
      writeAll(direct, middle, a).then(
        () => void (this.directBytes += middle.length),
        (e: unknown) => {
          if ((e as { code?: string }).code !== 'EINVAL') throw e;
          this.direct = undefined;
          return writeAll(this.cached, middle, a);
        },
      ),
    ]);
  }
}
