/**
 * A GGUF file (architectures llama, mistral, qwen2) as a model the engine can build: its metadata becomes a
 * Hugging Face style config, its vocabulary the tokenizer (gguf-tokenizer.ts), and its tensors, renamed to
 * transformers' names, the checkpoint's weights — read in place, nothing is written to disk:
 *
 * - F32, F16 and BF16 tensors are ONNX external data pointing into the .gguf file at the tensor's offset
 *   (onnxruntime reads them from there, like a safetensors checkpoint's);
 * - block-quantized matrices (PACKED_TYPES: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) are repacked in
 *   memory, exactly, for onnxruntime's MatMulNBits (gguf-quant.ts) each time a graph is built, and handed to
 *   the session as in-memory external data; they stay quantized in the session.
 *
 * Any other tensor type is refused at load, naming the tensor and its type.
 *
 * llama.cpp's converter stores llama and mistral q/k rows in Meta's order, not HF's permuted one, so those
 * run with interleaved RoPE (graph/llama.ts); qwen2 keeps HF's order (llama.cpp's NEOX RoPE): 'half'.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { AttnvizError, check } from '../core/errors.js';
import type { DType } from '../core/safetensors.js';
import { ModelConfig } from './config.js';
import { GGML, ggmlTypeName, readGguf, readTensorBytes, readTensorF32, type GgufFile, type GgufValue } from './gguf.js';
import { PACKED_TYPES, packMatrix } from './gguf-quant.js';
import { ggufTokenizer, type GgufTokenizer } from './gguf-tokenizer.js';
import { Weights, type WeightRef } from './weights.js';

export interface GgufModel {
  architecture: GgufArchitecture;
  /** HF-style config (model_type = the architecture) made from the GGUF metadata. */
  config: ModelConfig;
  /** The tensors under transformers' names, located in the .gguf file. */
  weights: Weights;
  tokenizer: GgufTokenizer;
}

/**
 * Llama 3.1+ RoPE scaling as llama.cpp stores it: one divisor per frequency, `[head_dim / 2]` F32 (the
 * 'llama3' rope_scaling of transformers, evaluated).
 */
const ROPE_FREQS = 'rope_freqs.weight';

/** GGUF architectures read, and whether their q/k rows are in Meta's (interleaved RoPE) order. */
export const GGUF_ARCHITECTURES = { llama: 'interleaved', mistral: 'interleaved', qwen2: 'half' } as const;
export type GgufArchitecture = keyof typeof GGUF_ARCHITECTURES;

/** Tensor types the engine runs: plain floats in place, block-quantized ones repacked. */
const FLOAT_TYPES: Record<number, DType> = { [GGML.F32]: 'F32', [GGML.F16]: 'F16', [GGML.BF16]: 'BF16' };
const RUNNABLE = [...Object.keys(FLOAT_TYPES).map(Number), ...PACKED_TYPES].map(ggmlTypeName).join(', ');

/** GGUF llama tensor names → transformers LlamaForCausalLM names (`blk.N.` → `model.layers.N.`); the same for
 * mistral and qwen2 (whose q/k/v also carry `.bias`). */
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
  throw new AttnvizError(
    `${what}: tensor "${name}" is not part of a llama, mistral or qwen2 model as attnviz reads it`,
  );
}

export function openGgufModel(path: string): GgufModel {
  const what = basename(path);
  const file = readGguf(path);
  const tokenizer = ggufTokenizer(file, what);
  const config = new ModelConfig(configOf(file, what), path);
  const ropeFreqs = file.tensors.get(ROPE_FREQS);
  // onnxruntime resolves external data below one folder, after symlinks: the file's real folder.
  const real = realpathSync(path);
  const tensors = new Map<string, WeightRef>();
  for (const t of file.tensors.values()) {
    if (t === ropeFreqs) continue; // read into the config (rope_scaling), not a weight
    const name = hfName(t.name, what);
    const float = FLOAT_TYPES[t.type];
    const packed = PACKED_TYPES.includes(t.type);
    check(t.byteLength !== null && (float !== undefined || (packed && t.shape.length === 2)), () => {
      const where = packed ? ` on a ${t.shape.length}-dimensional tensor` : '';
      return (
        `${what}: tensor "${t.name}" has type ${t.typeName}${where}, which attnviz cannot run ` +
        `(supported: ${RUNNABLE}; quantized types for matrices)`
      );
    });
    const ref: WeightRef = {
      name,
      dtype: float ?? 'U8',
      shape: t.shape,
      offset: t.offset,
      byteLength: t.byteLength,
      file: real,
    };
    if (!float) {
      const [rows, cols] = t.shape;
      ref.quantized = {
        type: t.typeName,
        pack: (allocate) => packMatrix(t.type, readTensorBytes(file, t), rows, cols, allocate),
      };
    }
    tensors.set(name, ref);
  }
  const architecture = config.raw.model_type as GgufArchitecture; // checked by configOf
  return { architecture, config, weights: Weights.of(dirname(real), tensors), tokenizer };
}

/**
 * The config.json transformers would have for this file (LlamaConfig / MistralConfig / Qwen2Config fields),
 * from the `<architecture>.*` metadata. `context_length` becomes max_position_embeddings, so longer texts are
 * refused (or cut) and generation stops there, as for any checkpoint.
 */
function configOf(file: GgufFile, what: string): Record<string, unknown> {
  const meta = file.metadata;
  const arch = meta.get('general.architecture');
  check(arch !== undefined, `${what}: missing metadata "general.architecture"`);
  check(
    typeof arch === 'string' && Object.hasOwn(GGUF_ARCHITECTURES, arch),
    `${what}: architecture "${String(arch)}" is not supported (only ${Object.keys(GGUF_ARCHITECTURES).join(', ')})`,
  );
  const num = (key: string, fallback?: number): number => {
    const v = meta.get(`${arch}.${key}`);
    if (v === undefined && fallback !== undefined) return fallback;
    check(v !== undefined, `${what}: missing metadata "${arch}.${key}"`);
    check(
      typeof v === 'number' && Number.isFinite(v) && v > 0,
      `${what}: metadata "${arch}.${key}" must be a positive number, got ${show(v)}`,
    );
    return v;
  };
  const hidden = num('embedding_length');
  const heads = num('attention.head_count');
  const headDim = num('attention.key_length', hidden / heads);
  const ropeDims = num('rope.dimension_count', headDim);
  check(
    ropeDims === headDim,
    `${what}: ${arch}.rope.dimension_count ${ropeDims} differs from the head size ${headDim} ` +
      `(partial rotary is not supported)`,
  );
  const scaling = meta.get(`${arch}.rope.scaling.type`);
  let ropeScaling: Record<string, unknown> | null = null;
  if (scaling === 'linear') ropeScaling = { rope_type: 'linear', factor: num('rope.scaling.factor') };
  else
    check(
      scaling === undefined || scaling === 'none',
      `${what}: ${arch}.rope.scaling.type "${show(scaling)}" is not supported (only none, linear)`,
    );
  const freqs = file.tensors.get(ROPE_FREQS);
  if (freqs) {
    check(
      ropeScaling === null && freqs.type === GGML.F32 && freqs.shape.length === 1 && freqs.shape[0] === headDim / 2,
      `${what}: tensor "${ROPE_FREQS}" must be F32 [${headDim / 2}], without another rope scaling`,
    );
    ropeScaling = { rope_type: 'frequency_divisors', divisors: Array.from(readTensorF32(file, freqs)) };
  }
  const window = meta.get(`${arch}.attention.sliding_window`);
  const tokens = meta.get('tokenizer.ggml.tokens');
  const ids = (key: string) => meta.get(`tokenizer.ggml.${key}`);
  return {
    model_type: arch,
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
    ...(window !== undefined ? { sliding_window: num('attention.sliding_window'), use_sliding_window: true } : {}),
    vocab_size: num('vocab_size', Array.isArray(tokens) ? tokens.length : undefined),
    hidden_act: 'silu',
    tie_word_embeddings: !file.tensors.has('output.weight'),
    bos_token_id: ids('bos_token_id') ?? null,
    eos_token_id: ids('eos_token_id') ?? null,
  };
}

const show = (v: GgufValue | undefined) => (typeof v === 'bigint' ? v.toString() : JSON.stringify(v));
