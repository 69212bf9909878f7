/**
 * Every family read from a config.json that gives only `model_type`: each field takes the default of the family's
 * transformers config class, as from_pretrained would (BertConfig, GPT2Config, …, MT5Config). The expected values
 * are written here from those classes' __init__ signatures (transformers 4.x), not taken from src/graph; a
 * family without a row here fails, so a new family must state its defaults.
 */
import { describe, expect, test } from 'vitest';
import { FAMILIES } from '../src/graph/families.js';
import { ModelConfig } from '../src/load/config.js';

type Row = { fields: Record<string, unknown>; theta?: number; windows?: (layers: number) => unknown[] };

/** θ back from inv_freq's second entry, θ^(−2/d). */
const thetaOf = (invFreq: Float32Array, d: number) => invFreq[1] ** (-d / 2);
const every = (n: number, value: unknown) => Array.from({ length: n }, () => value);

const BERT = { hidden: 768, layers: 12, heads: 12, headDim: 64, intermediate: 3072, maxPositions: 512 };
const BERT_REST = { typeVocab: 2, eps: 1e-12, act: 'gelu' };
const ROBERTA = { ...BERT, ...BERT_REST, maxPositions: 510, positionRows: 512, padIdx: 1 };
const BART = {
  hidden: 1024,
  layers: 12,
  decoderLayers: 12,
  heads: 16,
  headDim: 64,
  encoderFfn: 4096,
  decoderFfn: 4096,
  maxPositions: 1024,
  act: 'gelu',
  embedScale: 1,
  tied: true,
};
const T5 = {
  hidden: 512,
  headDim: 64,
  eps: 1e-6,
  numBuckets: 32,
  maxDistance: 128,
  maxPositions: 512,
  decoderStart: 0,
};
const LLAMA = { hidden: 4096, layers: 32, heads: 32, headDim: 128, eps: 1e-6, tied: false };

const EXPECTED: Record<string, Row> = {
  bert: { fields: { ...BERT, ...BERT_REST, vocab: 30522 } },
  gpt2: {
    fields: {
      hidden: 768,
      layers: 12,
      heads: 12,
      maxPositions: 1024,
      vocab: 50257,
      inner: 3072,
      eps: 1e-5,
      act: 'gelu_new',
      scaleByInverseLayer: false,
      scoreScale: undefined,
    },
  },
  roberta: { fields: { ...ROBERTA, vocab: 50265 } },
  'xlm-roberta': { fields: { ...ROBERTA, vocab: 30522 } },
  camembert: { fields: { ...ROBERTA, vocab: 30522 } },
  distilbert: {
    fields: { hidden: 768, layers: 6, heads: 12, maxPositions: 512, vocab: 30522, ffn: 3072, act: 'gelu' },
  },
  mpnet: {
    fields: { ...BERT, maxPositions: 510, positionRows: 512, vocab: 30527, eps: 1e-12, act: 'gelu', buckets: 32 },
  },
  'deberta-v2': {
    fields: {
      hidden: 1536,
      layers: 24,
      heads: 24,
      intermediate: 6144,
      vocab: 128100,
      maxPositions: 512,
      typeVocab: 0,
      eps: 1e-7,
      act: 'gelu',
      relative: false,
      positionInput: true,
      shareAttKey: false,
    },
  },
  modernbert: {
    fields: {
      ...BERT,
      layers: 22,
      intermediate: 1152,
      vocab: 50368,
      maxPositions: 8192,
      eps: 1e-5,
      act: 'gelu',
      normBias: false,
      attentionBias: false,
      mlpBias: false,
      globalTheta: 160000,
      localTheta: 10000,
    },
    // Global attention every 3rd layer from 0; local windows of 128 (64 each side) otherwise.
    windows: (n) => Array.from({ length: n }, (_, i) => (i % 3 === 0 ? null : [64, 64])),
  },
  albert: {
    fields: {
      hidden: 4096,
      layers: 12,
      heads: 64,
      intermediate: 16384,
      vocab: 30000,
      maxPositions: 512,
      typeVocab: 2,
      embedding: 128,
      groups: 1,
      eps: 1e-12,
      act: 'gelu_new',
    },
  },
  electra: {
    fields: { ...BERT, ...BERT_REST, hidden: 256, heads: 4, intermediate: 1024, vocab: 30522, embedding: 128 },
  },
  gpt_neox: {
    fields: {
      hidden: 6144,
      layers: 44,
      heads: 64,
      intermediate: 24576,
      vocab: 50432,
      maxPositions: 2048,
      eps: 1e-5,
      act: 'gelu',
      rotaryDims: 24,
      rotaryBase: 10000,
      parallelResidual: true,
      attentionBias: true,
    },
  },
  llama: {
    fields: { ...LLAMA, kvHeads: 32, intermediate: 11008, vocab: 32000, maxPositions: 2048, qkvBias: false },
    theta: 10000,
    windows: (n) => every(n, null),
  },
  mistral: {
    fields: { ...LLAMA, kvHeads: 8, intermediate: 14336, vocab: 32000, maxPositions: 131072, qkvBias: false },
    theta: 10000,
    windows: (n) => every(n, 4096),
  },
  qwen2: {
    fields: { ...LLAMA, kvHeads: 32, intermediate: 22016, vocab: 151936, maxPositions: 32768, qkvBias: true },
    theta: 10000,
    windows: (n) => every(n, null),
  },
  qwen3: {
    fields: { ...LLAMA, kvHeads: 32, intermediate: 22016, vocab: 151936, maxPositions: 32768, bias: false },
    theta: 10000,
  },
  gemma2: {
    fields: {
      hidden: 2304,
      layers: 26,
      heads: 8,
      kvHeads: 4,
      headDim: 256,
      intermediate: 9216,
      vocab: 256000,
      maxPositions: 8192,
      eps: 1e-6,
      act: 'gelu_pytorch_tanh',
      finalSoftcap: 30,
      attnLogitSoftcapping: 50,
      scoreScale: 1 / 16,
    },
    theta: 10000,
    // Sliding (4096) and global layers alternate, the first sliding.
    windows: (n) => Array.from({ length: n }, (_, i) => (i % 2 === 0 ? [4095, 0] : null)),
  },
  gemma3_text: {
    fields: {
      hidden: 2304,
      layers: 26,
      kvHeads: 4,
      headDim: 256,
      vocab: 262208,
      maxPositions: 131072,
      eps: 1e-6,
      finalSoftcap: undefined,
      attnLogitSoftcapping: undefined,
      scoreScale: 1 / 16,
    },
    theta: 1e6,
    // Five sliding layers, then a global one (sliding_window_pattern 6).
    windows: (n) => Array.from({ length: n }, (_, i) => (i % 6 === 5 ? null : [4095, 0])),
  },
  phi3: {
    fields: {
      hidden: 3072,
      layers: 32,
      heads: 32,
      kvHeads: 32,
      headDim: 96,
      intermediate: 8192,
      vocab: 32064,
      maxPositions: 4096,
      eps: 1e-5,
      theta: 10000,
      rotaryDims: 96,
      tied: false,
      window: null,
    },
  },
  olmo2: {
    fields: {
      ...LLAMA,
      kvHeads: 32,
      intermediate: 11008,
      vocab: 50304,
      maxPositions: 2048,
      eps: 1e-5,
      bias: false,
    },
    theta: 10000,
  },
  bloom: { fields: { hidden: 64, layers: 2, heads: 8, vocab: 250880, eps: 1e-5, residualPostNorm: false } },
  falcon: {
    fields: {
      hidden: 4544,
      layers: 32,
      heads: 71,
      kvHeads: 1,
      vocab: 65024,
      ffn: 18176,
      maxPositions: 2048,
      eps: 1e-5,
      act: 'gelu',
      parallel: true,
      parallelNorms: 1,
      bias: false,
      tied: true,
    },
    theta: 10000,
  },
  gptj: {
    fields: {
      hidden: 4096,
      layers: 28,
      heads: 16,
      headDim: 256,
      rotaryDims: 64,
      inner: 16384,
      maxPositions: 2048,
      vocab: 50400,
      eps: 1e-5,
      act: 'gelu_new',
    },
  },
  bart: { fields: { ...BART, vocab: 50265, decoderStart: 2, shift: 'start' } },
  mbart: { fields: { ...BART, vocab: 50265, decoderStart: 0, shift: 'last' } },
  marian: { fields: { ...BART, vocab: 58101, decoderVocab: 58101, decoderStart: 58100, sharedEmbeddings: true } },
  t5: { fields: { ...T5, ff: 2048, layers: 6, decoderLayers: 6, heads: 8, vocab: 32128, act: 'relu', tied: true } },
  mt5: {
    fields: { ...T5, ff: 1024, layers: 8, decoderLayers: 8, heads: 6, vocab: 250112, act: 'gelu_new', gated: true },
  },
};
// MT5Config: an LM head of its own (transformers 4's tie_word_embeddings false).
EXPECTED.mt5.fields.tied = false;

describe("a config.json with only model_type: the config class's defaults", () => {
  test('every family has a row', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual(FAMILIES.map((f) => f.modelType).sort());
  });

  test.each(FAMILIES.map((f) => [f.modelType, f] as const))('%s', (modelType, family) => {
    const row = EXPECTED[modelType];
    const read = family.readConfig(new ModelConfig({ model_type: modelType }, 'config.json')) as unknown as Record<
      string,
      unknown
    >;
    // undefined: the field is absent (no score scale, no soft-capping).
    for (const [key, value] of Object.entries(row.fields)) expect(read[key], key).toEqual(value);
    if (row.theta !== undefined) {
      const inv = read.invFreq as Float32Array | { global: Float32Array };
      const theta = thetaOf(inv instanceof Float32Array ? inv : inv.global, read.headDim as number);
      expect(Math.abs(theta / row.theta - 1)).toBeLessThan(1e-4);
    }
    if (row.windows) {
      const windows = read.layerWindows ?? read.windows;
      expect(windows).toEqual(row.windows(read.layers as number));
    }
  });
});
