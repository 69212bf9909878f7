/**
 * Llama benchmark (prints figures; not a test). A ~1B Llama has 16 layers of Llama-3.2-1B's shapes
 * (hidden 2048, 32 query heads over 8 key/value heads of 64, MLP 8192, llama3 RoPE scaling); this writes
 * random checkpoints with 2 and 4 such layers under a temporary folder and reports, at exactly 128 and 512
 * tokens:
 *
 * - time per layer of `model.attention(text)` (every layer's probabilities, q and k) and of a plain forward
 *   pass over the same weights (`Model.load(dir, { extract: false })` then `forward(text)`), as the median
 *   divided by the layer count and as the slope between the 2- and 4-layer models (which cancels the
 *   embedding, final norm and run overhead), and the ratio of the two;
 * - memory per layer of the attention result: probabilities [H, T, T] plus q and k [H, T, d] in float32.
 *
 *   npx tsc -p . && node --expose-gc dist/bench/llama.js [--runs N] [--warmup N] [--threads N] [--layers 2,4]
 *
 * The vocabulary is llama-tiny-mha's 512 pieces (../shared/golden/models) instead of Llama 3's 128k: the
 * embedding is not a layer, and a 1 GB random embedding would only slow the set-up.
 */
import { closeSync, copyFileSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { safetensorsHeader } from '../src/core/safetensors.js';
import { Model } from '../src/models/checkpoint-model.js';
import { exactText } from './texts.js';

/** This file runs as dist/bench/llama.js. */
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOKENIZER = resolve(REPO, '..', 'shared', 'golden', 'models', 'llama-tiny-mha');
const SIZES = [128, 512] as const;
const D = 2048,
  F = 8192,
  H = 32,
  KV = 8,
  HD = 64,
  VOCAB = 512;

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    threads: { type: 'string' },
    layers: { type: 'string', default: '2,4' },
  },
});
const RUNS = Number(args.runs),
  WARMUP = Number(args.warmup);
const THREADS = args.threads ? Number(args.threads) : undefined;
const LAYER_COUNTS = args.layers!.split(',').map(Number);

// ---- a checkpoint of L Llama-3.2-1B layers ----------------------------------------------------------------

function config(layers: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: D,
    intermediate_size: F,
    num_hidden_layers: layers,
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: HD,
    hidden_act: 'silu',
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: true,
    vocab_size: VOCAB,
    bos_token_id: 1,
    eos_token_id: 2,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 32,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
    torch_dtype: 'float32',
  };
}

function tensors(layers: number): { name: string; shape: number[]; ones?: boolean }[] {
  const out = [
    { name: 'model.embed_tokens.weight', shape: [VOCAB, D] },
    { name: 'model.norm.weight', shape: [D], ones: true },
  ];
  for (let i = 0; i < layers; i++) {
    const l = `model.layers.${i}`;
    out.push(
      { name: `${l}.input_layernorm.weight`, shape: [D], ones: true },
      { name: `${l}.post_attention_layernorm.weight`, shape: [D], ones: true },
      { name: `${l}.self_attn.q_proj.weight`, shape: [H * HD, D] },
      { name: `${l}.self_attn.k_proj.weight`, shape: [KV * HD, D] },
      { name: `${l}.self_attn.v_proj.weight`, shape: [KV * HD, D] },
      { name: `${l}.self_attn.o_proj.weight`, shape: [D, H * HD] },
      { name: `${l}.mlp.gate_proj.weight`, shape: [F, D] },
      { name: `${l}.mlp.up_proj.weight`, shape: [F, D] },
      { name: `${l}.mlp.down_proj.weight`, shape: [D, F] },
    );
  }
  return out;
}

/** Writes config, tokenizer and model.safetensors (streamed; weights N(0, 0.02) from one random 4 MB block, shifted per tensor). */
function writeCheckpoint(dir: string, layers: number): number {
  const list = tensors(layers);
  const header = safetensorsHeader(
    list.map((t) => ({ ...t, dtype: 'F32' as const })),
    { format: 'pt' },
  );
  const block = new Float32Array(1 << 20);
  let seed = 12345;
  for (let i = 0; i < block.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const u1 = (seed + 1) / 4294967297;
    seed = (seed * 1103515245 + 12345) >>> 0;
    block[i] = 0.02 * Math.sqrt(-2 * Math.log(u1)) * Math.cos((2 * Math.PI * seed) / 4294967296);
  }
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  try {
    writeSync(fd, header.bytes);
    const ones = new Float32Array(D).fill(1);
    list.forEach((t, k) => {
      let left = t.shape.reduce((a, b) => a * b, 1);
      if (t.ones) return void writeSync(fd, new Uint8Array(ones.buffer, 0, left * 4));
      let at = (k * 7919) % block.length;
      while (left > 0) {
        const part = block.subarray(at, at + Math.min(left, block.length - at));
        writeSync(fd, new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
        left -= part.length;
        at = 0;
      }
    });
  } finally {
    closeSync(fd);
  }
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config(layers), null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(dir, f));
  return header.dataBytes;
}

// ---- timing -----------------------------------------------------------------------------------------------

const gc = () => (globalThis as { gc?: () => void }).gc?.();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

interface Row {
  layers: number;
  T: number;
  extractMs: number;
  plainMs: number;
  resultBytes: number;
}

async function measure(dir: string, layers: number): Promise<Row[]> {
  const extract = await Model.load(dir, { threads: THREADS, progress: false });
  const plain = await Model.load(dir, { threads: THREADS, extract: false, progress: false });
  const rows: Row[] = [];
  try {
    for (const T of SIZES) {
      const text = exactText((s) => extract.tokenizer.encode(s).ids.length, T);
      const check = await extract.attention(text);
      if (check.attention.dims.join() !== [layers, H, T, T].join() || check.kvHeads !== KV)
        throw new Error(`unexpected result dims ${check.attention.dims}`);
      const resultBytes = [check.attention, check.query!, check.key!].reduce((n, t) => n + t.data.byteLength, 0);
      const time = async (run: () => Promise<unknown>) => {
        gc();
        const t0 = performance.now();
        await run();
        return performance.now() - t0;
      };
      for (let i = 0; i < WARMUP; i++) {
        await time(() => extract.attention(text));
        await time(() => plain.forward(text));
      }
      const e: number[] = [],
        p: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        // Alternate which goes first.
        if (i % 2) p.push(await time(() => plain.forward(text)));
        e.push(await time(() => extract.attention(text)));
        if (!(i % 2)) p.push(await time(() => plain.forward(text)));
      }
      rows.push({ layers, T, extractMs: median(e), plainMs: median(p), resultBytes });
      console.error(
        `  ${layers} layers, ${T} tokens: attention ${median(e).toFixed(0)} ms, forward ${median(p).toFixed(0)} ms`,
      );
    }
  } finally {
    await extract.release();
    await plain.release();
  }
  return rows;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(os.tmpdir(), 'attnviz-bench-llama-'));
  try {
    console.error(
      `Llama-3.2-1B layer shapes; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), threads ${THREADS ?? 'onnxruntime default'}, ${RUNS} runs + ${WARMUP} warm-up`,
    );
    const rows: Row[] = [];
    for (const layers of LAYER_COUNTS) {
      const dir = join(root, `l${layers}`);
      await mkdir(dir);
      const bytes = writeCheckpoint(dir, layers);
      console.error(`wrote ${layers} layers: ${(bytes / 1e6).toFixed(0)} MB`);
      rows.push(...(await measure(dir, layers)));
      await rm(dir, { recursive: true, force: true });
    }
    console.log(
      '\n| layers | tokens | attention() ms/layer | forward ms/layer | ratio | result MB/layer (probs + q + k) |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(
        `| ${r.layers} | ${r.T} | ${(r.extractMs / r.layers).toFixed(0)} | ${(r.plainMs / r.layers).toFixed(0)} | ${(r.extractMs / r.plainMs).toFixed(2)} | ${(r.resultBytes / r.layers / 1e6).toFixed(1)} |`,
      );
    }
    const [few, many] = [Math.min(...LAYER_COUNTS), Math.max(...LAYER_COUNTS)];
    if (few !== many) {
      console.log(`\nslope between ${few} and ${many} layers (per added layer):`);
      for (const T of SIZES) {
        const a = rows.find((r) => r.layers === few && r.T === T)!,
          b = rows.find((r) => r.layers === many && r.T === T)!;
        const e = (b.extractMs - a.extractMs) / (many - few),
          p = (b.plainMs - a.plainMs) / (many - few);
        console.log(
          `  ${T} tokens: attention() ${e.toFixed(0)} ms, forward ${p.toFixed(0)} ms, ratio ${(e / p).toFixed(2)}`,
        );
      }
    }
    console.log(
      `\nresult per layer in float32: probs H·T·T·4 = ${((H * 128 * 128 * 4) / 1e6).toFixed(1)} / ${((H * 512 * 512 * 4) / 1e6).toFixed(1)} MB, q + k 2·H·T·d·4 = ${((2 * H * 128 * HD * 4) / 1e6).toFixed(1)} / ${((2 * H * 512 * HD * 4) / 1e6).toFixed(1)} MB at 128 / 512 tokens`,
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
