/**
 * What a CLI command is, and the option helpers the commands share. Each command lives in its own file
 * (extract.ts, export.ts, …) and is listed in commands.ts; main.ts parses the arguments and dispatches.
 */
import type { ParseArgsConfig } from 'node:util';
import { AttnvizError } from '../core/errors.js';
import type { LoadOptions } from '../models/checkpoint-model.js';
import { loadModel } from '../models/load-model.js';
import type { AttentionModel } from '../models/model.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  name: string;
  /** The synopsis line(s) after `attnviz`, e.g. `extract --model <m> --text "<A>" --out <file>`. */
  synopsis: string;
  /** What the command does and what its options mean (a few lines, indented by the caller). */
  description: string;
  options: Options;
  run(values: Values): Promise<void>;
  /**
   * run() returns with the command still at work (a server), which ends the process itself; otherwise the
   * process ends as soon as run() returns (main.ts), whatever is left in the event loop.
   */
  keepsRunning?: boolean;
}

/**
 * --model, --text, --pair, --truncate, for encoder-decoder models --target or --max-new-tokens, and
 * --allow-unused.
 */
export const MODEL_OPTIONS: Options = {
  model: { type: 'string' },
  text: { type: 'string' },
  pair: { type: 'string' },
  truncate: { type: 'boolean' },
  target: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  'allow-unused': { type: 'boolean' },
};

/**
 * loadModel with --allow-unused: checkpoint tensors the graph neither reads nor knowingly skips are then a
 * warning on stderr (listing them) rather than an error.
 */
export async function loadForCli(source: string, v: Values, options: LoadOptions = {}): Promise<AttentionModel> {
  const m = await loadModel(source, { ...options, allowUnused: v['allow-unused'] === true });
  // Only checkpoints have tensors to leave unread (ONNX and TF.js models read their own graph).
  const unused = 'unusedTensors' in m ? (m.unusedTensors as readonly string[]) : [];
  if (unused.length > 0) {
    const list = unused.slice(0, 5).join(', ') + (unused.length > 5 ? `, … (${unused.length} in all)` : '');
    console.error(`warning: --allow-unused: ${unused.length} checkpoint tensors not read: ${list}`);
  }
  return m;
}

/** A numeric option, checked by `valid` (described as `what` in the error); undefined when absent. */
export function numberOption(v: Values, name: string, valid: (n: number) => boolean, what: string): number | undefined {
  const value = v[name];
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (!Number.isFinite(n) || !valid(n)) throw new AttnvizError(`--${name} must be ${what}, not "${String(value)}"`);
  return n;
}

export const positiveInteger = (v: Values, name: string) =>
  numberOption(v, name, (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer');

export function required(v: Values, name: string): string {
  const value = v[name];
  if (typeof value !== 'string') throw new AttnvizError(`missing --${name}`);
  return value;
}

export function optionalString(v: Values, name: string): string | undefined {
  const value = v[name];
  return typeof value === 'string' ? value : undefined;
}

/** A repeatable string option as a list (absent: empty). */
export function list(v: Values, name: string): string[] {
  const value = v[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}
