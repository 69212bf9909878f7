/** config.json of a Hugging Face model folder, with typed, checked access to its fields. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AttnvizError, check, systemReason } from '../core/errors.js';
import { MODEL_KINDS } from './sources.js';

export class ModelConfig {
  constructor(
    readonly raw: Readonly<Record<string, unknown>>,
    /** Where the config came from, for error messages. */
    readonly path: string,
  ) {}

  get modelType(): string {
    return this.string('model_type');
  }

  /**
   * A size (layers, heads, widths, vocabulary): the first of `keys` present (families renamed fields over
   * time: n_embd / hidden_size), else `fallback`; missing with no fallback, or not a positive integer, is an
   * error naming the field.
   */
  size(keys: string | readonly string[], fallback?: number): number {
    const v = this.lookup(keys, fallback);
    check(
      Number.isSafeInteger(v) && (v as number) > 0,
      () => `${this.path}: field ${name(keys)} must be a positive integer, got ${JSON.stringify(v)}`,
    );
    return v as number;
  }

  float(keys: string | readonly string[], fallback?: number): number {
    const v = this.lookup(keys, fallback);
    check(
      typeof v === 'number' && Number.isFinite(v),
      () => `${this.path}: field ${name(keys)} must be a number, got ${JSON.stringify(v)}`,
    );
    return v;
  }

  string(keys: string | readonly string[], fallback?: string): string {
    const v = this.lookup(keys, fallback);
    check(typeof v === 'string', () => `${this.path}: field ${name(keys)} must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(keys: string | readonly string[], fallback?: boolean): boolean {
    const v = this.lookup(keys, fallback);
    check(
      typeof v === 'boolean',
      () => `${this.path}: field ${name(keys)} must be true or false, got ${JSON.stringify(v)}`,
    );
    return v;
  }

  private lookup(keys: string | readonly string[], fallback: unknown): unknown {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const v = this.raw[key];
      if (v !== undefined && v !== null) return v;
    }
    check(fallback !== undefined, `${this.path}: missing field ${name(keys)}`);
    return fallback;
  }
}

export async function readConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new AttnvizError(
      (e as { code?: string }).code === 'ENOENT'
        ? `${dir}: no config.json, so not a model attnviz reads (${MODEL_KINDS})`
        : `${path}: cannot read (${systemReason(e)})`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new AttnvizError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  check(raw !== null && typeof raw === 'object' && !Array.isArray(raw), `${path}: must be a JSON object`);
  return new ModelConfig(raw as Record<string, unknown>, path);
}

function name(keys: string | readonly string[]): string {
  return typeof keys === 'string' ? `"${keys}"` : keys.map((k) => `"${k}"`).join(' or ');
}

/** A string field restricted to `allowed`; anything else is an error listing them. */
export function oneOf<T extends string>(
  config: ModelConfig,
  keys: string | readonly string[],
  allowed: readonly T[],
  fallback?: T,
): T {
  const v = config.string(keys, fallback);
  check(
    (allowed as readonly string[]).includes(v),
    `${config.path}: ${name(keys)} is "${v}"; supported: ${allowed.join(', ')}`,
  );
  return v as T;
}
