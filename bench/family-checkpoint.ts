/**
 * A random checkpoint of any family in its own Hugging Face layout, for the benchmarks: the tensors are the ones
 * the family's graph asks for — the family builds its graph once against a recorder that notes every (name,
 * shape) `weights.get` is called with — written N(0, 0.02) into one model.safetensors, with config.json and the
 * tokenizer of a golden tiny model from ../shared/golden/models.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { encodeSafetensors, type TensorToWrite } from '../src/core/safetensors.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { familyFor } from '../src/graph/families.js';
import { ModelConfig } from '../src/load/config.js';
import type { WeightRef, Weights } from '../src/load/weights.js';
import { SHARED_MODELS } from './checkpoints.js';

/** The (name, shape) pairs a family's graph reads, in order, by building it against a recorder. */
function tensorsOf(config: ModelConfig): Map<string, number[]> {
  const family = familyFor(config);
  const seen = new Map<string, number[]>();
  const recorder = {
    has: () => false,
    hasQuantized: () => false,
    get(names: string | readonly string[], shape: readonly number[]): WeightRef {
      const name = typeof names === 'string' ? names : names[0];
      seen.set(name, [...shape]);
      return { name, dtype: 'F32', shape: [...shape], offset: 0, byteLength: 0, file: '' } as WeightRef;
    },
    location: () => 'model.safetensors',
  } as unknown as Weights;
  family.build(new GraphBuilder(recorder), recorder, family.readConfig(config), { extract: true });
  return seen;
}

/**
 * Writes a checkpoint of config.json `raw` (its model_type picks the family; the family's defaults fill in the
 * rest) into a fresh temporary folder, with `tokenizer`'s tokenizer files, and returns the folder.
 */
export function writeFamilyCheckpoint(
  raw: { model_type: string } & Record<string, unknown>,
  tokenizer: 'bert-tiny' | 'llama-tiny-mha',
): string {
  const dir = mkdtempSync(join(os.tmpdir(), `attnviz-bench-${raw.model_type}-`));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(SHARED_MODELS, tokenizer, f), join(dir, f));
  let seed = 1;
  const normal = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const u = (seed + 1) / 2 ** 31;
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * seed) / 2 ** 31);
  };
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of tensorsOf(new ModelConfig(raw, raw.model_type))) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 0.02 * normal());
    tensors[name] = { dtype: 'F32', shape, data };
  }
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  return dir;
}
