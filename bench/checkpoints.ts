/**
 * Random checkpoints of real model shapes for the benchmarks: BERT-base and GPT-2 small in Hugging Face
 * layout (config.json, model.safetensors written tensor by tensor, the tokenizer of the golden tiny model
 * of the same family from ../shared/golden/models, i.e. the real bert-base-uncased and gpt2 vocabularies).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { safetensorsHeader } from '../src/core/safetensors.js';

/** ../shared/golden/models beside the repository (this file runs as dist/bench/checkpoints.js). */
export const SHARED_MODELS = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'shared',
  'golden',
  'models',
);

export interface GenResult {
  bytes: number;
  tensors: number;
  seconds: number;
}

// ---- the two checkpoints --------------------------------------------------------------------------------

type Init = 'normal' | 'ones' | 'zeros';
interface TensorSpec {
  name: string;
  shape: number[];
  init: Init;
}

export interface ModelSpec {
  key: 'bert' | 'gpt2';
  label: string;
  /** Folder in ../shared/golden/models whose tokenizer.json / tokenizer_config.json are copied. */
  tokenizerFrom: string;
  config: Record<string, unknown>;
  tensors: () => TensorSpec[];
  /** PyTorch eager, returning attentions and q/k, at 32, 128, 512 tokens on this machine kind (ms). */
  pytorch: readonly [number, number, number];
}

const normal = (name: string, shape: number[]): TensorSpec => ({ name, shape, init: 'normal' });
const layerNorm = (prefix: string, D: number, names = ['weight', 'bias']): TensorSpec[] => [
  { name: `${prefix}.${names[0]}`, shape: [D], init: 'ones' },
  { name: `${prefix}.${names[1]}`, shape: [D], init: 'zeros' },
];

/** bert-base-uncased's encoder (the tensors src/graph/bert.ts reads; no pooler or MLM head). nn.Linear is [out, in]. */
export const BERT: ModelSpec = {
  key: 'bert',
  label: 'BERT-base',
  tokenizerFrom: 'bert-tiny',
  pytorch: [64, 146, 540],
  config: {
    architectures: ['BertModel'],
    model_type: 'bert',
    hidden_size: 768,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    intermediate_size: 3072,
    hidden_act: 'gelu',
    max_position_embeddings: 512,
    type_vocab_size: 2,
    vocab_size: 30522,
    layer_norm_eps: 1e-12,
    initializer_range: 0.02,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    torch_dtype: 'float32',
  },
  tensors() {
    const D = 768,
      F = 3072,
      e = 'bert.embeddings';
    const out: TensorSpec[] = [
      normal(`${e}.word_embeddings.weight`, [30522, D]),
      normal(`${e}.position_embeddings.weight`, [512, D]),
      normal(`${e}.token_type_embeddings.weight`, [2, D]),
      ...layerNorm(`${e}.LayerNorm`, D),
    ];
    for (let i = 0; i < 12; i++) {
      const l = `bert.encoder.layer.${i}`;
      for (const p of ['query', 'key', 'value'])
        out.push(normal(`${l}.attention.self.${p}.weight`, [D, D]), normal(`${l}.attention.self.${p}.bias`, [D]));
      out.push(
        normal(`${l}.attention.output.dense.weight`, [D, D]),
        normal(`${l}.attention.output.dense.bias`, [D]),
        ...layerNorm(`${l}.attention.output.LayerNorm`, D),
      );
      out.push(normal(`${l}.intermediate.dense.weight`, [F, D]), normal(`${l}.intermediate.dense.bias`, [F]));
      out.push(
        normal(`${l}.output.dense.weight`, [D, F]),
        normal(`${l}.output.dense.bias`, [D]),
        ...layerNorm(`${l}.output.LayerNorm`, D),
      );
    }
    return out;
  },
};

/** GPT-2 small (openai-community/gpt2's names, no `transformer.` prefix). Conv1D is [in, out]. */
export const GPT2: ModelSpec = {
  key: 'gpt2',
  label: 'GPT-2 small',
  tokenizerFrom: 'gpt2-tiny',
  pytorch: [75, 145, 541],
  config: {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_positions: 1024,
    n_ctx: 1024,
    vocab_size: 50257,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    bos_token_id: 50256,
    eos_token_id: 50256,
    torch_dtype: 'float32',
  },
  tensors() {
    const D = 768,
      F = 3072;
    const out: TensorSpec[] = [normal('wte.weight', [50257, D]), normal('wpe.weight', [1024, D])];
    for (let i = 0; i < 12; i++) {
      const l = `h.${i}`;
      out.push(...layerNorm(`${l}.ln_1`, D));
      out.push(normal(`${l}.attn.c_attn.weight`, [D, 3 * D]), normal(`${l}.attn.c_attn.bias`, [3 * D]));
      out.push(normal(`${l}.attn.c_proj.weight`, [D, D]), normal(`${l}.attn.c_proj.bias`, [D]));
      out.push(...layerNorm(`${l}.ln_2`, D));
      out.push(normal(`${l}.mlp.c_fc.weight`, [D, F]), normal(`${l}.mlp.c_fc.bias`, [F]));
      out.push(normal(`${l}.mlp.c_proj.weight`, [F, D]), normal(`${l}.mlp.c_proj.bias`, [D]));
    }
    out.push(...layerNorm('ln_f', D));
    return out;
  },
};

export const SPECS = [BERT, GPT2];

// ---- writing a checkpoint (child process) ----------------------------------------------------------------

/** xorshift128 → N(0, std) by Box–Muller; deterministic per seed. */
export function normalFiller(seed: number): (a: Float32Array, std: number) => void {
  let x = 123456789 ^ seed,
    y = 362436069,
    z = 521288629,
    w = 88675123 ^ (seed * 2654435761);
  const next = () => {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return w;
  };
  return (a, std) => {
    for (let i = 0; i < a.length; i += 2) {
      const r = std * Math.sqrt(-2 * Math.log((next() + 1) / 4294967297));
      const theta = (2 * Math.PI * next()) / 4294967296;
      a[i] = r * Math.cos(theta);
      if (i + 1 < a.length) a[i + 1] = r * Math.sin(theta);
    }
  };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes `model.safetensors` + config.json + the tokenizer files into `dir`. The safetensors file is
 * streamed tensor by tensor in 4 MB chunks (a temporary name, then a rename), never built in memory.
 */
export function writeCheckpoint(spec: ModelSpec, dir: string): GenResult {
  const t0 = performance.now();
  const tensors = spec.tensors();
  const header = safetensorsHeader(
    tensors.map((t) => ({ ...t, dtype: 'F32' as const })),
    { format: 'pt' },
  );

  const path = join(dir, 'model.safetensors');
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, header.bytes);
    const fill = normalFiller(spec.key === 'bert' ? 1 : 2);
    const chunk = new Float32Array(1 << 20);
    for (const t of tensors) {
      for (let left = t.shape.reduce((a, b) => a * b, 1); left > 0; ) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        if (t.init === 'normal') fill(part, 0.02);
        else part.fill(t.init === 'ones' ? 1 : 0);
        writeAll(fd, new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
        left -= part.length;
      }
    }
    // Flushed now, so that the kernel's write-back of ~0.5 GB does not compete with the measurements that follow.
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);

  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(spec.config, null, 2)}\n`);
  const from = join(SHARED_MODELS, spec.tokenizerFrom);
  writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(from, 'tokenizer.json')));
  // The tiny models' tokenizer_config.json is kept, with model_max_length set to this model's positions.
  const tokenizerConfig = JSON.parse(readFileSync(join(from, 'tokenizer_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  tokenizerConfig.model_max_length = spec.key === 'bert' ? 512 : 1024;
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
  return { bytes: header.dataBytes, tensors: tensors.length, seconds: (performance.now() - t0) / 1000 };
}
