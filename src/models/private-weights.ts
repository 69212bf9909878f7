/**
 * Private copies of a checkpoint's weight files for onnxruntime to map (LoadOptions.weights 'copy', the
 * default). onnxruntime maps external-data files: one truncated while mapped is SIGBUS for the whole process,
 * one overwritten in place silently changes the weights under a loaded model. A copy in a private temporary
 * folder, checked against the bytes the tensors need, and removed as soon as the sessions exist (their
 * mappings keep the data, and its disk space, until the model is released), is a file nobody else can
 * change. bench/weights-source.ts compares it with mapping the files themselves and with reading the weights
 * into memory (bench/RESULTS.md).
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { AttnvizError, systemReason } from '../core/errors.js';
import { processRuns } from '../core/files.js';
import type { Weights } from '../load/weights.js';

const PREFIX = 'attnviz-weights-';

/**
 * Runs `create` (which builds sessions over the weights under the folder it is given) on private copies of the
 * weight files, then removes them. Copies are reflinks where the file system has them (instant, no space).
 */
export async function withPrivateWeights<T>(weights: Weights, create: (root: string) => Promise<T>): Promise<T> {
  const base = tmpdir();
  await removeStaleCopies(base);
  const dir = await mkdtemp(join(base, `${PREFIX}${process.pid}-`)).catch((e: unknown) => {
    throw new AttnvizError(`cannot copy the weights to ${base} (${systemReason(e)})`);
  });
  try {
    for (const [location, { file, bytes }] of weights.extents()) {
      const copy = join(dir, location);
      try {
        await mkdir(dirname(copy), { recursive: true });
        await copyFile(file, copy, constants.COPYFILE_FICLONE);
      } catch (e) {
        throw new AttnvizError(
          `cannot copy the weights to ${base} (${systemReason(e)}): TMPDIR needs ${Math.ceil(bytes / 2 ** 20)} MB ` +
            `free for ${basename(file)}`,
        );
      }
      const size = (await stat(copy)).size;
      if (size < bytes)
        throw new AttnvizError(
          `${basename(file)} changed while loading: it has ${size} bytes, its tensors need ${bytes}`,
        );
    }
    return await create(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes copies left by a process killed while loading (`attnviz-weights-<pid>-…` of a process gone). */
async function removeStaleCopies(base: string): Promise<void> {
  const names = await readdir(base).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length).split('-')[0]);
    if (pid && pid !== process.pid && !processRuns(pid))
      await rm(join(base, name), { recursive: true, force: true }).catch(() => undefined);
  }
}
