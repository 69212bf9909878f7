/**
 * Node only: the formats of this folder on disk. Reading safetensors headers and files, writing files
 * atomically, attention files by path. Everything else in core/ is browser-safe and shared with the app.
 */
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Attention } from './attention.js';
import { decodeAttentionFile, encodeAttentionFile } from './attention-file.js';
import { AttnvizError, check, systemReason } from './errors.js';
import { decodeHeader, headerLength, parseHeader, type SafetensorsHeader } from './safetensors.js';

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

/** Writes a file atomically: a temporary sibling, then rename, so a failure never leaves half a file behind. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new AttnvizError(`cannot write ${path} (${writeReason(e, path)})`);
  }
}

/** A missing folder is the usual reason a write fails with ENOENT: name it. */
function writeReason(e: unknown, path: string): string {
  return (e as { code?: string }).code === 'ENOENT' ? `no such folder ${dirname(path)}` : systemReason(e);
}

export async function writeAttentionFile(path: string, a: Attention): Promise<void> {
  await writeFileAtomic(path, encodeAttentionFile(a));
}

export async function readAttentionFile(path: string): Promise<Attention> {
  const { bytes } = await readSafetensors(path);
  return decodeAttentionFile(bytes, basename(path));
}
