/**
 * An error caused by the user's input (a file, a model folder, a text, a flag), as opposed to a bug.
 * Its message is one line that names the cause; the CLI prints it without a stack trace and exits 2.
 */
export class AttnvizError extends Error {
  override name = 'AttnvizError';
}

/** Throws an AttnvizError with `message` unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new AttnvizError(typeof message === 'string' ? message : message());
}
