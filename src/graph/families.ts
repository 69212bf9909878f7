/** The model families the engine can build, by config.json `model_type`. */
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { GgufArchitecture } from '../load/gguf-checkpoint.js';
import { albert } from './albert.js';
import { bart, marian, mbart } from './bart.js';
import { bert } from './bert.js';
import { distilbert } from './distilbert.js';
import { electra } from './electra.js';
import type { Family, ModelDims } from './family.js';
import { gptNeox } from './gpt-neox.js';
import { gpt2 } from './gpt2.js';
import { llama, mistral, qwen2 } from './llama.js';
import { camembert, roberta, xlmRoberta } from './roberta.js';
import { mt5, t5 } from './t5.js';
import { qwen3 } from './qwen3.js';
import { gemma2, gemma3Text } from './gemma.js';
import { olmo2 } from './olmo2.js';
import { phi3 } from './phi3.js';
import { mpnet } from './mpnet.js';
import { debertaV2 } from './deberta-v2.js';
import { modernbert } from './modernbert.js';
import { bloom } from './bloom.js';
import { gptj } from './gptj.js';
import { falcon } from './falcon.js';

export const FAMILIES: readonly Family<ModelDims>[] = [
  bert,
  gpt2,
  roberta,
  xlmRoberta,
  camembert,
  distilbert,
  mpnet,
  debertaV2,
  modernbert,
  albert,
  electra,
  gptNeox,
  llama,
  mistral,
  qwen2,
  qwen3,
  gemma2,
  gemma3Text,
  phi3,
  olmo2,
  bloom,
  falcon,
  gptj,
  bart,
  mbart,
  marian,
  t5,
  mt5,
];

export function familyFor(config: ModelConfig): Family<ModelDims> {
  const type = config.modelType;
  const family = FAMILIES.find((f) => f.modelType === type);
  check(
    family,
    `${config.path}: model_type "${type}" is not supported (supported: ${FAMILIES.map((f) => f.modelType).join(', ')})`,
  );
  return family;
}

/** `family` with `layout` over the dims its readConfig gives: the same graph on another layout of the weights. */
function withLayout<D extends ModelDims>(family: Family<D>, layout: Partial<D>): Family<D> {
  return { ...family, readConfig: (c) => ({ ...family.readConfig(c), ...layout }) };
}

/**
 * The family each GGUF architecture runs on (load/gguf-checkpoint.ts), in the layout llama.cpp's converter
 * writes (convert_hf_to_gguf.py):
 * - llama, mistral: q/k rows in Meta's order (the converter undoes transformers' permutation): interleaved RoPE;
 * - gemma2, gemma3: RMSNorm weights stored as 1 + w (the converter adds the 1): normOffset 0;
 * - bloom: query_key_value rows regrouped from per head [q, k, v] to [all q | all k | all v];
 * - falcon: query_key_value rows as [all q | K k | K v] for every variant (Falcon-40B's groups regrouped).
 * The others keep transformers' layout: qwen2, qwen3, phi3 (fused qkv_proj and gate_up_proj kept fused),
 * olmo2 (llama.cpp's NEOX RoPE is rotate_half) and gptj (its NORM RoPE is rotate_every_two).
 */
const GGUF_FAMILIES: Record<GgufArchitecture, Family<ModelDims>> = {
  llama: withLayout(llama, { rope: 'interleaved' }),
  mistral: withLayout(mistral, { rope: 'interleaved' }),
  qwen2,
  qwen3,
  gemma2: withLayout(gemma2, { normOffset: 0 }),
  gemma3: withLayout(gemma3Text, { normOffset: 0 }),
  phi3,
  olmo2,
  bloom: withLayout(bloom, { qkvLayout: 'blocks' }),
  falcon: withLayout(falcon, { layout: 'blocks' }),
  gptj,
};

export function ggufFamily(architecture: GgufArchitecture): Family<ModelDims> {
  return GGUF_FAMILIES[architecture];
}
