/**
 * An error caused by the user's input (a file, a model folder, a text, a flag), as opposed to a bug.
 * Its message is one line that names the cause; the CLI prints it without a stack trace and exits 2.
 */
export class AttnvizError extends Error {
  override name = 'AttnvizError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(oneLine(message), options);
  }
}

/** The longest message an AttnvizError carries: input echoed in errors (names, values) never floods a terminal. */
export const MAX_MESSAGE_CHARS = 300;

/**
 * `message` on one line (control characters and line breaks become spaces) of at most `max` characters: a
 * longer one keeps its start and end, where causes and file names are, around an ellipsis.
 */
export function oneLine(message: string, max = MAX_MESSAGE_CHARS): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is replaced
  const flat = message.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
  if (flat.length <= max) return flat;
  const head = Math.ceil((max - 1) * 0.7);
  return `${flat.slice(0, head)}…${flat.slice(flat.length - (max - 1 - head))}`;
}

/** A value from the input as an error shows it: JSON, on one line, at most `max` characters. */
export function shorten(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return oneLine(text, max);
}

/** Throws an AttnvizError with `message` unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AttnvizError(typeof message === 'string' ? message : message());
}

/** The fields of a Node file system error read here (core stays free of Node's types). */
interface SystemError {
  code?: string;
  path?: string;
}

/** Plain words for the file system errors a user's paths cause (Node's errno codes). */
const SYSTEM_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is a file, not a folder',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EFBIG: 'the file would be larger than this process may write (ulimit -f)',
  EROFS: 'the file system is read-only',
  EEXIST: 'it already exists',
  EMFILE: 'too many files are open',
  ENAMETOOLONG: 'the name is too long',
};

/** Why a file operation failed, in words (`e.code` phrased, else the error's first line). */
export function systemReason(e: unknown): string {
  const code = (e as SystemError | null)?.code;
  if (code && SYSTEM_REASONS[code]) return SYSTEM_REASONS[code];
  return String((e as Error)?.message ?? e).split('\n')[0];
}

/** "path: reason" for a Node file system error that carries a path and a known code; null for any other error. */
export function systemErrorMessage(e: unknown): string | null {
  const { code, path } = (e ?? {}) as SystemError;
  return code && path && SYSTEM_REASONS[code] ? `${path}: ${SYSTEM_REASONS[code]}` : null;
}
