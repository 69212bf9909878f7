/** What the commands share: their shape, the options that run a model, and option parsing with one-line errors. */
import type { ParseArgsConfig } from 'node:util';
import type { Attention } from '../core/attention.js';
import { AttnvizError } from '../core/errors.js';
import { loadModel } from '../models/load-model.js';

export type Values = Record<string, string | boolean | undefined>;

/** One command: its options (for node:util parseArgs) and what it does with their values. */
export interface Command {
  options: Options;
  run: (values: Values) => Promise<void>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * --model, --text, --pair, --truncate, and for encoder-decoder models --target or --max-new-tokens: the options
 * that run a model.
 */
export const MODEL_OPTIONS: Options = {
  model: { type: 'string' },
  text: { type: 'string' },
  pair: { type: 'string' },
  truncate: { type: 'boolean' },
  target: { type: 'string' },
  'max-new-tokens': { type: 'string' },
};

export async function attentionFrom(v: Values): Promise<Attention> {
  const model = required(v, 'model');
  const text = required(v, 'text');
  const m = await loadModel(model);
  try {
    const maxNewTokens = numberOption(
      v,
      'max-new-tokens',
      (n) => Number.isSafeInteger(n) && n > 0,
      'a positive integer',
    );
    return await m.attention(text, {
      pair: v.pair as string | undefined,
      truncate: v.truncate === true,
      target: v.target as string | undefined,
      ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
    });
  } finally {
    await m.release();
  }
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
