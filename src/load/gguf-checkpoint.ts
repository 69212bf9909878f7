/**
 * A GGUF file (llama architecture) as a model the engine can build: its metadata becomes a Hugging Face
 * style config, its vocabulary the tokenizer (gguf-tokenizer.ts), and its tensors, renamed to transformers'
 * Llama names, a `model.safetensors` in a temporary folder under os.tmpdir() that the graph refers to as
 * external data, like any checkpoint. F32, F16 and BF16 tensors are copied as they are; Q8_0, Q4_0, Q4_K and
 * Q6_K are dequantized to F32 on the way (one tensor in memory at a time). The copy is needed because
 * onnxruntime reads external data only below one folder (it resolves symlinks and refuses paths outside),
 * and dequantized tensors have to live somewhere. `remove()` deletes the folder; so does process exit.
 *
 * GGUF's llama tensors hold Meta's q/k row order, not HF's permuted one, so the graph uses interleaved RoPE
 * (graph/llama.ts `llamaInterleaved`).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import { safetensorsHeader } from '../core/safetensors.js';
import { ModelConfig } from './config.js';
import {
  GGML,
  READABLE_TYPES,
  readGguf,
  readTensorBytes,
  readTensorF32,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
} from './gguf.js';
import { ggufTokenizer, type GgufTokenizer } from './gguf-tokenizer.js';

export interface GgufModel {
  /** HF-style config (model_type "llama") made from the GGUF metadata; errors name the GGUF file. */
  config: ModelConfig;
  /** Temporary folder holding model.safetensors with the weights under transformers' names. */
  dir: string;
  tokenizer: GgufTokenizer;
  /** Deletes `dir`. */
  remove(): Promise<void>;
}

/** GGUF llama tensor names → transformers LlamaForCausalLM names (`blk.N.` → `model.layers.N.`). */
const BLOCK_NAMES: Record<string, string> = {
  attn_norm: 'input_layernorm',
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_norm: 'post_attention_layernorm',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
};
const TOP_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

export function hfName(name: string, what: string): string {
  if (TOP_NAMES[name]) return TOP_NAMES[name];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (m && BLOCK_NAMES[m[2]]) return `model.layers.${m[1]}.${BLOCK_NAMES[m[2]]}.${m[3]}`;
  if (name === 'rope_freqs.weight')
    throw new AttnvizError(`${what}: tensor "rope_freqs.weight" (Llama 3.1 RoPE scaling factors) is not supported`);
  throw new AttnvizError(`${what}: tensor "${name}" is not part of a llama model as attnviz reads it`);
}

export async function openGgufModel(path: string): Promise<GgufModel> {
  const what = basename(path);
  const file = readGguf(path);
  const tokenizer = ggufTokenizer(file, what);
  const config = new ModelConfig(configOf(file, what), path);
  const tensors = [...file.tensors.values()].map((t) => ({ t, name: hfName(t.name, what) }));
  for (const { t } of tensors) {
    check(
      READABLE_TYPES.includes(t.type),
      `${what}: tensor "${t.name}" has type ${t.typeName}, which attnviz cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K)`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'attnviz-gguf-'));
  live.add(dir);
  const remove = async () => {
    live.delete(dir);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await writeSafetensors(join(dir, 'model.safetensors'), file, tensors);
  } catch (e) {
    await remove();
    throw e;
  }
  return { config, dir, tokenizer, remove };
}

/** The config.json transformers would have for this file (LlamaConfig fields), from `llama.*` metadata. */
function configOf(file: GgufFile, what: string): Record<string, unknown> {
  const meta = file.metadata;
  const arch = meta.get('general.architecture');
  check(arch !== undefined, `${what}: missing metadata "general.architecture"`);
  check(arch === 'llama', `${what}: architecture "${String(arch)}" is not supported (only llama)`);
  const num = (key: string, fallback?: number): number => {
    const v = meta.get(`llama.${key}`);
    if (v === undefined && fallback !== undefined) return fallback;
    check(v !== undefined, `${what}: missing metadata "llama.${key}"`);
    check(
      typeof v === 'number' && Number.isFinite(v) && v > 0,
      `${what}: metadata "llama.${key}" must be a positive number, got ${show(v)}`,
    );
    return v;
  };
  const hidden = num('embedding_length');
  const heads = num('attention.head_count');
  const headDim = num('attention.key_length', hidden / heads);
  const ropeDims = num('rope.dimension_count', headDim);
  check(
    ropeDims === headDim,
    `${what}: llama.rope.dimension_count ${ropeDims} differs from the head size ${headDim} (partial rotary is not supported)`,
  );
  const scaling = meta.get('llama.rope.scaling.type');
  let ropeScaling: Record<string, unknown> | null = null;
  if (scaling === 'linear') ropeScaling = { rope_type: 'linear', factor: num('rope.scaling.factor') };
  else
    check(
      scaling === undefined || scaling === 'none',
      `${what}: llama.rope.scaling.type "${show(scaling)}" is not supported (only none, linear)`,
    );
  const tokens = meta.get('tokenizer.ggml.tokens');
  const ids = (key: string) => meta.get(`tokenizer.ggml.${key}`);
  return {
    model_type: 'llama',
    hidden_size: hidden,
    num_hidden_layers: num('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: num('attention.head_count_kv', heads),
    head_dim: headDim,
    intermediate_size: num('feed_forward_length'),
    max_position_embeddings: num('context_length'),
    rms_norm_eps: num('attention.layer_norm_rms_epsilon'),
    rope_theta: num('rope.freq_base', 10000),
    rope_scaling: ropeScaling,
    vocab_size: num('vocab_size', Array.isArray(tokens) ? tokens.length : undefined),
    hidden_act: 'silu',
    tie_word_embeddings: !file.tensors.has('output.weight'),
    bos_token_id: ids('bos_token_id') ?? null,
    eos_token_id: ids('eos_token_id') ?? null,
  };
}

const show = (v: GgufValue | undefined) => (typeof v === 'bigint' ? v.toString() : JSON.stringify(v));

/**
 * Writes the tensors as one safetensors file, streaming: the header first (every size is known), then each
 * tensor's bytes — copied for F32/F16/BF16, dequantized to F32 for quantized types.
 */
async function writeSafetensors(
  path: string,
  file: GgufFile,
  tensors: { t: GgufTensorInfo; name: string }[],
): Promise<void> {
  const dtype = (t: GgufTensorInfo) => (t.type === GGML.F16 ? 'F16' : t.type === GGML.BF16 ? 'BF16' : 'F32');
  const header = safetensorsHeader(
    tensors.map(({ t, name }) => ({ name, dtype: dtype(t), shape: t.shape })),
    { format: 'pt', source: basename(file.path) },
  );
  const out = await open(path, 'w');
  try {
    await out.write(header.bytes);
    for (const { t } of tensors) {
      const data = dtype(t) === 'F32' && t.type !== GGML.F32 ? readTensorF32(file, t) : readTensorBytes(file, t);
      await out.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  } finally {
    await out.close();
  }
}

/** Temporary folders not yet removed; deleted when the process exits (a model not released). */
const live = new Set<string>();
process.once('exit', () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});
