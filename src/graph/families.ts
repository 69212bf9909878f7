/** The model families the engine can build, by config.json `model_type`. */
import { check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
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
