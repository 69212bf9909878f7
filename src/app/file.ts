/**
 * Attention files opened in the page — with the file picker or dropped on it — so attention computed elsewhere
 * (PyTorch, another attnviz) is viewed like a model run. The file is read here, in the browser, by core's
 * decoder (docs/attention-file.md): nothing is uploaded.
 */
import type { Attention } from '../core/attention.js';
import { decodeAttentionFile } from '../core/attention-file.js';
import { AttnvizError } from '../core/errors.js';

/** Larger files are refused before being read: a page cannot hold an ArrayBuffer past 2 GiB in every browser. */
export const MAX_FILE_BYTES = 2 ** 31 - 1;

/** The Attention in `file`; a file that is not one is an AttnvizError naming the file and the cause. */
export async function readAttentionBlob(file: Blob, name: string): Promise<Attention> {
  if (file.size > MAX_FILE_BYTES)
    throw new AttnvizError(
      `${name} is ${(file.size / 2 ** 30).toFixed(1)} GiB: too large to open in the page (at most 2 GiB)`,
    );
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch (e) {
    throw new AttnvizError(`cannot read ${name} (${(e as Error).message})`);
  }
  // core's decoder refuses non-finite values and rows that are not probabilities, naming layer and head.
  return decodeAttentionFile(bytes, name);
}

/**
 * Calls `open` with a file dropped anywhere on the page; `overlay` shows while a file is dragged over it.
 * Drags of anything but files (text, links) are left to the browser.
 */
export function acceptDrops(overlay: HTMLElement, open: (file: File) => void): void {
  const carriesFiles = (e: DragEvent) => e.dataTransfer?.types.includes('Files') ?? false;
  let depth = 0;
  window.addEventListener('dragenter', (e) => {
    if (!carriesFiles(e)) return;
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', (e) => {
    if (!carriesFiles(e)) return;
    if (--depth <= 0) {
      depth = 0;
      overlay.hidden = true;
    }
  });
  window.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('drop', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    const file = e.dataTransfer?.files[0];
    if (file) open(file);
  });
}
