/** Output files of the analysis commands: the format from the extension, checked before any model runs. */
import { extname } from 'node:path';
import { AttnvizError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';

/** Each path's format (lower-case extension), refused unless in `formats`. */
export function outputFormats<F extends string>(paths: string[], formats: readonly F[], flag = '-o'): F[] {
  if (!paths.length) throw new AttnvizError(`missing ${flag} (${formats.map((f) => `.${f}`).join(', ')})`);
  return paths.map((p) => {
    const f = extname(p).slice(1).toLowerCase();
    if (!(formats as readonly string[]).includes(f))
      throw new AttnvizError(`${flag} must end in ${formats.map((x) => `.${x}`).join(', ')}, not "${p}"`);
    return f as F;
  });
}

/** Writes text atomically (a temporary file renamed), so a failed run leaves no partial report. */
export function writeText(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, Buffer.from(text));
}

/** Writes text (SVG, HTML, JSON, CSV) or bytes (PNG) atomically. */
export function writeImage(path: string, image: Uint8Array | string): Promise<void> {
  return writeFileAtomic(path, typeof image === 'string' ? Buffer.from(image) : image);
}

/** --scale, for PNG outputs only: checked by the image module (loaded only when an image is asked for). */
export async function scaleOption(given: unknown, format: string | null): Promise<number | undefined> {
  if (given === undefined) return undefined;
  if (format !== 'png') throw new AttnvizError('--scale is for .png outputs');
  const { checkScale } = await import('../export/image.js');
  return checkScale(Number(given));
}
