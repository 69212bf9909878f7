/** Option parsing shared by the commands: each command declares node:util parseArgs options and reads values. */
import type { ParseArgsConfig } from 'node:util';
import { AttnvizError } from '../core/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A command: its options (parseArgs), a usage paragraph, and what it does. */
export interface Command {
  options: Options;
  usage: string;
  run: (values: Values) => Promise<void>;
}

/** A numeric option, checked by `valid` (described as `what` in the error); undefined when absent. */
export function numberOption(v: Values, name: string, valid: (n: number) => boolean, what: string): number | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || !valid(n)) throw new AttnvizError(`--${name} must be ${what}, not "${String(value)}"`);
  return n;
}

export function required(v: Values, name: string): string {
  const value = v[name];
  if (typeof value !== 'string') throw new AttnvizError(`missing --${name}`);
  return value;
}

/** A repeatable string option as a list (absent: empty). */
export function list(v: Values, name: string): string[] {
  const value = v[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}
