/**
 * Second-wave families benchmark (prints figures; not a test): for each family added in issue 12, a random
 * checkpoint of one mid size (hidden 512, 8 heads, 6 layers) in the family's own Hugging Face layout, then at
 * exactly 128 tokens the extraction (`model.attention`) against the plain forward pass of the same weights
 * (`loadModel(dir, { extract: false })` then `forward`), interleaved run by run, and their ratio (target:
 * ≤ 1.3×).
 *
 *   node dist/bench/families.js [--runs N] [--family NAME]
 *
 * The tensors are the ones each family's graph asks for: the family builds its graph once against a recorder
 * that notes every (name, shape) `weights.get` is called with, and those are written N(0, 0.02). Tokenizers
 * come from ../shared/golden/models (bert-tiny's for encoders, llama-tiny-mha's for decoders).
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, type TensorToWrite } from '../src/core/safetensors.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { familyFor } from '../src/graph/families.js';
import { ModelConfig } from '../src/load/config.js';
import type { WeightRef, Weights } from '../src/load/weights.js';
import { extractionBytes, Model, ONE_SESSION_BYTES } from '../src/models/checkpoint-model.js';
import { exactText } from './texts.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GOLDEN = resolve(REPO, '..', 'shared', 'golden', 'models');
const D = 512,
  H = 8,
  L = 6,
  FF = 1536;

const ENCODER = {
  vocab_size: 30522,
  hidden_size: D,
  num_attention_heads: H,
  num_hidden_layers: L,
  intermediate_size: FF,
};
const DECODER = { ...ENCODER, vocab_size: 512, num_key_value_heads: 4, max_position_embeddings: 2048 };

/** Configs by model_type; each family's defaults fill in the rest. */
const CONFIGS: Record<string, Record<string, unknown>> = {
  'xlm-roberta': { ...ENCODER, max_position_embeddings: 514, type_vocab_size: 1 },
  mpnet: { ...ENCODER, max_position_embeddings: 514 },
  'deberta-v2': {
    ...ENCODER,
    relative_attention: true,
    position_buckets: 256,
    pos_att_type: 'p2c|c2p',
    share_att_key: true,
    norm_rel_ebd: 'layer_norm',
    position_biased_input: false,
  },
  modernbert: { ...ENCODER, local_attention: 64 },
  qwen3: { ...DECODER, head_dim: 64 },
  gemma2: { ...DECODER, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 64 },
  gemma3_text: { ...DECODER, head_dim: 64, query_pre_attn_scalar: 64, sliding_window: 64 },
  phi3: DECODER,
  olmo2: DECODER,
  bloom: { vocab_size: 512, hidden_size: D, n_head: H, n_layer: L },
  falcon: { vocab_size: 512, hidden_size: D, num_attention_heads: H, num_hidden_layers: L },
  gptj: { vocab_size: 512, n_embd: D, n_head: H, n_layer: L, rotary_dim: 32 },
};
const ENCODERS = new Set(['xlm-roberta', 'mpnet', 'deberta-v2', 'modernbert']);

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

function writeCheckpoint(modelType: string): string {
  const dir = mkdtempSync(join(os.tmpdir(), `attnviz-bench-${modelType}-`));
  const raw = { model_type: modelType, ...CONFIGS[modelType] };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  const tokenizer = ENCODERS.has(modelType) ? 'bert-tiny' : 'llama-tiny-mha';
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(GOLDEN, tokenizer, f), join(dir, f));
  let seed = 1;
  const normal = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const u = (seed + 1) / 2 ** 31;
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * seed) / 2 ** 31);
  };
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, shape] of tensorsOf(new ModelConfig(raw, modelType))) {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 0.02 * normal());
    tensors[name] = { dtype: 'F32', shape, data };
  }
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
  return dir;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 10;
  const only = args.includes('--family') ? args[args.indexOf('--family') + 1] : null;
  console.log(`families benchmark: hidden ${D}, ${H} heads, ${L} layers, 128 tokens, ${runs} runs (median)`);
  console.log(
    `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  console.log('| family | extracts on | extraction (ms) | plain forward (ms) | ratio | ≤ 1.3× |');
  console.log('|---|---|---|---|---|---|');
  for (const modelType of Object.keys(CONFIGS)) {
    if (only && only !== modelType) continue;
    const dir = writeCheckpoint(modelType);
    try {
      const [extract, plain] = [await Model.load(dir), await Model.load(dir, { extract: false })];
      const text = exactText((t) => extract.tokenizer.encode(t).ids.length, 128);
      const a: number[] = [],
        f: number[] = [];
      for (let i = -2; i < runs; i++) {
        let t = performance.now();
        await extract.attention(text);
        const ta = performance.now() - t;
        t = performance.now();
        await plain.forward(text);
        const tf = performance.now() - t;
        if (i >= 0) {
          a.push(ta);
          f.push(tf);
        }
      }
      const ratio = median(a) / median(f);
      // As Model.load decides (LoadOptions.staged); score-bias families (MPNet, DeBERTa, BLOOM) run whole.
      const staged = extractionBytes(extract.dims) > ONE_SESSION_BYTES;
      console.log(
        `| ${modelType} | ${staged && extract.streams ? 'a session per layer' : 'one session'} | ` +
          `${median(a).toFixed(1)} | ${median(f).toFixed(1)} | ` +
          `${ratio.toFixed(2)} | ${ratio <= 1.3 ? 'met' : 'not met'} |`,
      );
      await Promise.all([extract.release(), plain.release()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(
    `load average at the end: ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}

await main();
