/**
 * A GGUF file (architectures llama, mistral, qwen2, qwen3, gemma2, gemma3, phi3, olmo2, bloom, falcon, gptj) as
 * a model the engine can build: its metadata becomes a Hugging Face style config, its vocabulary the tokenizer
 * (gguf-tokenizer.ts), and its tensors, renamed to transformers' names, the checkpoint's weights — read in
 * place, nothing is written to disk:
 *
 * - F32, F16 and BF16 tensors are ONNX external data pointing into the .gguf file at the tensor's offset
 *   (onnxruntime reads them from there, like a safetensors checkpoint's);
 * - block-quantized matrices (PACKED_TYPES: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) are repacked in
 *   memory, exactly, for onnxruntime's MatMulNBits (gguf-quant.ts) each time a graph is built, and handed to
 *   the session as in-memory external data; they stay quantized in the session.
 *
 * Any other tensor type is refused at load, naming the tensor and its type.
 *
 * Each architecture runs on the family of its transformers model_type, in the layout llama.cpp's converter
 * wrote (graph/families.ts `ggufFamily`): llama and mistral q/k rows in Meta's order (interleaved RoPE), Gemma's
 * norm weights with the 1 added, BLOOM's and Falcon's fused qkv rows as [all q | all k | all v].
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
  /** HF-style config (model_type: the family the architecture runs on) made from the GGUF metadata. */
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

/** Tensor types the engine runs: plain floats in place, block-quantized ones repacked. */
const FLOAT_TYPES: Record<number, DType> = { [GGML.F32]: 'F32', [GGML.F16]: 'F16', [GGML.BF16]: 'BF16' };
const RUNNABLE = [...Object.keys(FLOAT_TYPES).map(Number), ...PACKED_TYPES].map(ggmlTypeName).join(', ');

/** The GGUF architectures attnviz reads (`general.architecture`), each on the family of its model_type. */
export const GGUF_ARCHITECTURES = [
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'gemma2',
  'gemma3',
  'phi3',
  'olmo2',
  'bloom',
  'falcon',
  'gptj',
] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];
const isArchitecture = (a: unknown): a is GgufArchitecture => typeof a === 'string' && Object.hasOwn(ARCHITECTURES, a);

/**
 * How llama.cpp's converter (convert_hf_to_gguf.py, gguf-py's tensor map) writes one architecture, read back:
 * the transformers model_type it runs as, GGUF tensor names → transformers' names (`blk.N.<name>` →
 * `<layers>.N.<name>`; `.weight` / `.bias` kept), and the config.json fields its metadata gives. What the
 * converter changed on the way is undone by the family's GGUF layout (graph/families.ts `ggufFamily`).
 */
interface Architecture {
  modelType: string;
  layers: string;
  top: Record<string, string>;
  block: (file: GgufFile) => Record<string, string>;
  /** The family computes inv_freq with ropeInvFreq from rope_scaling, so `rope_freqs.weight` can be read. */
  ropeFreqs?: boolean;
  config: (m: Metadata) => Record<string, unknown>;
}

const LLAMA_TOP = { token_embd: 'model.embed_tokens', output_norm: 'model.norm', output: 'lm_head' };
const TRANSFORMER_TOP = { output_norm: 'transformer.ln_f', output: 'lm_head' };
const ATTENTION = {
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
};
const QK_NORMS = { attn_q_norm: 'self_attn.q_norm', attn_k_norm: 'self_attn.k_norm' };
const SWIGLU = { ffn_gate: 'mlp.gate_proj', ffn_up: 'mlp.up_proj', ffn_down: 'mlp.down_proj' };
const LLAMA_BLOCK = {
  attn_norm: 'input_layernorm',
  ...ATTENTION,
  ffn_norm: 'post_attention_layernorm',
  ...SWIGLU,
};
/** BLOOM's and Falcon's fused attention and GELU MLP. */
const FUSED_BLOCK = {
  attn_qkv: 'self_attention.query_key_value',
  attn_output: 'self_attention.dense',
  ffn_up: 'mlp.dense_h_to_4h',
  ffn_down: 'mlp.dense_4h_to_h',
};

/** An architecture in Llama's names: `model.embed_tokens`, `model.layers.N.<block>`, `model.norm`, `lm_head`. */
const llamaNamed = (
  modelType: string,
  { block, ...rest }: Pick<Architecture, 'config' | 'ropeFreqs'> & { block: Record<string, string> },
): Architecture => ({ modelType, layers: 'model.layers', top: LLAMA_TOP, block: () => block, ...rest });

/** Llama, Mistral, Qwen2: LlamaConfig / MistralConfig / Qwen2Config fields; a window in every layer if given. */
const llamaLike = (modelType: string): Architecture =>
  llamaNamed(modelType, {
    block: LLAMA_BLOCK,
    ropeFreqs: true,
    config: (m) => ({
      ...decoder(m, true),
      // No key, no window, as llama.cpp runs it (MistralConfig's absent-field default would be 4096).
      ...(m.has('attention.sliding_window')
        ? { sliding_window: m.num('attention.sliding_window'), use_sliding_window: true }
        : { sliding_window: null }),
    }),
  });

/**
 * llama.cpp scales Gemma's scores by head_dim^−½, except in the 27B models (46 layers for Gemma 2, 62 for
 * Gemma 3), by (hidden / heads)^−½: query_pre_attn_scalar is not in the file, and this is what it was.
 */
const gemmaScalar = (m: Metadata, layers27b: number) =>
  m.num('block_count') === layers27b
    ? m.num('embedding_length') / m.num('attention.head_count')
    : m.num('attention.key_length', m.num('embedding_length') / m.num('attention.head_count'));

const GEMMA_BLOCK = {
  attn_norm: 'input_layernorm',
  ...ATTENTION,
  ...QK_NORMS,
  post_attention_norm: 'post_attention_layernorm',
  ffn_norm: 'pre_feedforward_layernorm',
  post_ffw_norm: 'post_feedforward_layernorm',
  ...SWIGLU,
};

/** Gemma 2 and 3: Gemma's block and the config fields both have, then the version's own (`config`). */
const gemmaLike = (modelType: string, layers27b: number, config: Architecture['config']): Architecture =>
  llamaNamed(modelType, {
    block: GEMMA_BLOCK,
    config: (m) => ({
      ...decoder(m, true),
      hidden_activation: 'gelu_pytorch_tanh',
      query_pre_attn_scalar: gemmaScalar(m, layers27b),
      ...config(m),
    }),
  });

const ARCHITECTURES: Record<GgufArchitecture, Architecture> = {
  llama: llamaLike('llama'),
  mistral: llamaLike('mistral'),
  qwen2: llamaLike('qwen2'),
  qwen3: llamaNamed('qwen3', {
    block: { ...LLAMA_BLOCK, ...QK_NORMS },
    ropeFreqs: true,
    config: (m) => ({ ...decoder(m, true), attention_bias: m.tensor('blk.0.attn_q.bias') }),
  }),
  gemma2: gemmaLike('gemma2', 46, (m) => ({
    sliding_window: m.num('attention.sliding_window'),
    // llama.cpp's defaults when the keys are absent, as Gemma2Config's.
    attn_logit_softcapping: m.num('attn_logit_softcapping', 50),
    final_logit_softcapping: m.num('final_logit_softcapping', 30),
  })),
  gemma3: gemmaLike('gemma3_text', 62, (m) => ({
    rope_theta: m.num('rope.freq_base', 1e6),
    // llama.cpp rotates sliding layers with θ 10000 unless the file says otherwise.
    rope_local_base_freq: m.num('rope.freq_base_swa', 1e4),
    // No window (or 0): every layer global, as llama.cpp reads such a file.
    ...(m.get('attention.sliding_window') ? { sliding_window: m.num('attention.sliding_window') } : {}),
    ...slidingPattern(m),
    attn_logit_softcapping: null,
    final_logit_softcapping: m.has('final_logit_softcapping') ? m.num('final_logit_softcapping') : null,
  })),
  phi3: llamaNamed('phi3', {
    block: {
      attn_norm: 'input_layernorm',
      attn_qkv: 'self_attn.qkv_proj',
      attn_output: 'self_attn.o_proj',
      ffn_norm: 'post_attention_layernorm',
      // Kept fused by the converter: gate rows, then up rows, as transformers' gate_up_proj.
      ffn_up: 'mlp.gate_up_proj',
      ffn_down: 'mlp.down_proj',
    },
    config: (m) => {
      for (const name of ['rope_factors_long.weight', 'rope_factors_short.weight'])
        check(
          !m.tensor(name),
          `${m.what}: tensor "${name}" is Phi-3's longrope scaling (128k-context models), which attnviz does not ` +
            'support (only default RoPE)',
        );
      const c = decoder(m, false);
      return {
        ...c,
        partial_rotary_factor: m.num('rope.dimension_count', c.head_dim) / c.head_dim,
        ...(m.has('attention.sliding_window') ? { sliding_window: m.num('attention.sliding_window') } : {}),
      };
    },
  }),
  olmo2: llamaNamed('olmo2', {
    block: {
      ...ATTENTION,
      ...QK_NORMS,
      post_attention_norm: 'post_attention_layernorm',
      post_ffw_norm: 'post_feedforward_layernorm',
      ...SWIGLU,
    },
    ropeFreqs: true,
    config: (m) => {
      // llama.cpp writes OLMo 3 as olmo2 with a window (every 4th layer global); transformers' Olmo2 has none.
      check(
        !m.get('attention.sliding_window'),
        `${m.what}: olmo2.attention.sliding_window is set (OLMo 3's sliding layers), which the olmo2 family ` +
          'does not have',
      );
      return decoder(m, true);
    },
  }),
  bloom: {
    modelType: 'bloom',
    layers: 'transformer.h',
    top: {
      ...TRANSFORMER_TOP,
      token_embd: 'transformer.word_embeddings',
      token_embd_norm: 'transformer.word_embeddings_layernorm',
    },
    block: () => ({ attn_norm: 'input_layernorm', ffn_norm: 'post_attention_layernorm', ...FUSED_BLOCK }),
    config: (m) => {
      const hidden = m.num('embedding_length'),
        heads = m.num('attention.head_count');
      check(
        m.num('attention.head_count_kv', heads) === heads && m.num('feed_forward_length', 4 * hidden) === 4 * hidden,
        `${m.what}: bloom with key/value heads other than ${heads} or an MLP other than 4 × ${hidden} is not BLOOM`,
      );
      return {
        n_embed: hidden,
        n_layer: m.num('block_count'),
        n_head: heads,
        seq_length: m.num('context_length'),
        layer_norm_epsilon: m.num('attention.layer_norm_epsilon'),
      };
    },
  },
  falcon: {
    modelType: 'falcon',
    layers: 'transformer.h',
    top: { ...TRANSFORMER_TOP, token_embd: 'transformer.word_embeddings' },
    // Falcon-40B's two norms (ln_attn, ln_mlp) are attn_norm and attn_norm_2; one norm is attn_norm.
    block: (file) => ({
      attn_norm: file.tensors.has('blk.0.attn_norm_2.weight') ? 'ln_attn' : 'input_layernorm',
      attn_norm_2: 'ln_mlp',
      ...FUSED_BLOCK,
    }),
    config: (m) => {
      const kv = m.num('attention.head_count_kv', 1);
      const twoNorms = m.tensor('blk.0.attn_norm_2.weight');
      // llama.cpp runs every Falcon as a parallel block; the qkv rows are q | k | v (graph/families.ts).
      return {
        hidden_size: m.num('embedding_length'),
        num_hidden_layers: m.num('block_count'),
        num_attention_heads: m.num('attention.head_count'),
        num_kv_heads: kv,
        new_decoder_architecture: kv > 1 || twoNorms,
        multi_query: kv === 1,
        num_ln_in_parallel_attn: twoNorms ? 2 : 1,
        parallel_attn: true,
        bias: m.tensor('blk.0.attn_qkv.bias'),
        // The converter writes 4 × hidden whatever ffn_hidden_size was; the tensor has the real width.
        ffn_hidden_size: m.rows('blk.0.ffn_up.weight'),
        layer_norm_epsilon: m.num('attention.layer_norm_epsilon'),
        max_position_embeddings: m.num('context_length'),
        rope_theta: m.num('rope.freq_base', 10000),
        tie_word_embeddings: !m.tensor('output.weight'),
      };
    },
  },
  gptj: {
    modelType: 'gptj',
    layers: 'transformer.h',
    top: { ...TRANSFORMER_TOP, token_embd: 'transformer.wte' },
    block: () => ({
      attn_norm: 'ln_1',
      attn_q: 'attn.q_proj',
      attn_k: 'attn.k_proj',
      attn_v: 'attn.v_proj',
      attn_output: 'attn.out_proj',
      ffn_up: 'mlp.fc_in',
      ffn_down: 'mlp.fc_out',
    }),
    config: (m) => {
      const hidden = m.num('embedding_length'),
        heads = m.num('attention.head_count');
      return {
        n_embd: hidden,
        n_layer: m.num('block_count'),
        n_head: heads,
        n_positions: m.num('context_length'),
        // As for Falcon: feed_forward_length is written as 4 × n_embd, n_inner may differ.
        n_inner: m.rows('blk.0.ffn_up.weight'),
        rotary_dim: m.num('rope.dimension_count', hidden / heads),
        layer_norm_epsilon: m.num('attention.layer_norm_epsilon'),
        activation_function: 'gelu_new',
      };
    },
  },
};

function hfName(name: string, architecture: GgufArchitecture, file: GgufFile, what: string): string {
  const arch = ARCHITECTURES[architecture];
  const top = /^([a-z_]+)\.(weight|bias)$/.exec(name);
  if (top && Object.hasOwn(arch.top, top[1])) return `${arch.top[top[1]]}.${top[2]}`;
  const m = /^blk\.(\d+)\.([a-z_0-9]+)\.(weight|bias)$/.exec(name);
  const block = arch.block(file);
  if (m && Object.hasOwn(block, m[2])) return `${arch.layers}.${m[1]}.${block[m[2]]}.${m[3]}`;
  throw new AttnvizError(`${what}: tensor "${name}" is not part of a ${architecture} model as attnviz reads it`);
}

export function openGgufModel(path: string): GgufModel {
  const what = basename(path);
  const file = readGguf(path);
  const tokenizer = ggufTokenizer(file, what);
  const architecture = architectureOf(file, what);
  const config = new ModelConfig(configOf(file, architecture, what), path);
  const ropeFreqs = ARCHITECTURES[architecture].ropeFreqs ? file.tensors.get(ROPE_FREQS) : undefined;
  // onnxruntime resolves external data below one folder, after symlinks: the file's real folder.
  const real = realpathSync(path);
  const tensors = new Map<string, WeightRef>();
  for (const t of file.tensors.values()) {
    if (t === ropeFreqs) continue; // read into the config (rope_scaling), not a weight
    const name = hfName(t.name, architecture, file, what);
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
  return { architecture, config, weights: Weights.of(dirname(real), tensors), tokenizer };
}

function architectureOf(file: GgufFile, what: string): GgufArchitecture {
  const arch = file.metadata.get('general.architecture');
  check(arch !== undefined, `${what}: missing metadata "general.architecture"`);
  check(
    isArchitecture(arch),
    `${what}: architecture "${String(arch)}" is not supported (only ${GGUF_ARCHITECTURES.join(', ')})`,
  );
  return arch;
}

/** The `<architecture>.*` metadata of a file, read as numbers, with its tensors' presence. */
class Metadata {
  constructor(
    readonly file: GgufFile,
    readonly arch: GgufArchitecture,
    readonly what: string,
  ) {}

  has(key: string): boolean {
    return this.file.metadata.has(`${this.arch}.${key}`);
  }

  get(key: string): GgufValue | undefined {
    return this.file.metadata.get(`${this.arch}.${key}`);
  }

  /** A positive number; `fallback` when absent (without one, absence is an error naming the key). */
  num(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    check(v !== undefined, `${this.what}: missing metadata "${this.arch}.${key}"`);
    check(
      typeof v === 'number' && Number.isFinite(v) && v > 0,
      `${this.what}: metadata "${this.arch}.${key}" must be a positive number, got ${show(v)}`,
    );
    return v;
  }

  tensor(name: string): boolean {
    return this.file.tensors.has(name);
  }

  /** The rows (PyTorch's first dimension) of a tensor, for sizes the converter writes wrongly or not at all. */
  rows(name: string): number {
    const t = this.file.tensors.get(name);
    check(t !== undefined, `${this.what}: missing tensor "${name}"`);
    return t.shape[0];
  }
}

/**
 * The fields of a Llama-style decoder (embedding_length, block_count, heads, head_dim from key_length,
 * feed_forward_length, context_length → max_position_embeddings, RMS epsilon, RoPE θ and scaling). With
 * `fullRotary`, rope.dimension_count must be the head size.
 */
function decoder(m: Metadata, fullRotary: boolean) {
  const hidden = m.num('embedding_length');
  const heads = m.num('attention.head_count');
  const headDim = m.num('attention.key_length', hidden / heads);
  if (fullRotary) {
    const ropeDims = m.num('rope.dimension_count', headDim);
    check(
      ropeDims === headDim,
      `${m.what}: ${m.arch}.rope.dimension_count ${ropeDims} differs from the head size ${headDim} ` +
        `(partial rotary is not supported for ${m.arch})`,
    );
  }
  return {
    hidden_size: hidden,
    num_hidden_layers: m.num('block_count'),
    num_attention_heads: heads,
    num_key_value_heads: m.num('attention.head_count_kv', heads),
    head_dim: headDim,
    intermediate_size: m.num('feed_forward_length'),
    max_position_embeddings: m.num('context_length'),
    rms_norm_eps: m.num('attention.layer_norm_rms_epsilon'),
    rope_theta: m.num('rope.freq_base', 10000),
    rope_scaling: ropeScaling(m, headDim),
    hidden_act: 'silu',
    tie_word_embeddings: !m.tensor('output.weight'),
  };
}

/** `rope.scaling.type` (none or linear), or the `rope_freqs.weight` divisors (Llama 3.1+). */
function ropeScaling(m: Metadata, headDim: number): Record<string, unknown> | null {
  const scaling = m.get('rope.scaling.type');
  let out: Record<string, unknown> | null = null;
  if (scaling === 'linear') out = { rope_type: 'linear', factor: m.num('rope.scaling.factor') };
  else
    check(
      scaling === undefined || scaling === 'none',
      `${m.what}: ${m.arch}.rope.scaling.type "${show(scaling)}" is not supported (only none, linear)`,
    );
  const freqs = ARCHITECTURES[m.arch].ropeFreqs ? m.file.tensors.get(ROPE_FREQS) : undefined;
  if (freqs) {
    check(
      out === null && freqs.type === GGML.F32 && freqs.shape.length === 1 && freqs.shape[0] === headDim / 2,
      `${m.what}: tensor "${ROPE_FREQS}" must be F32 [${headDim / 2}], without another rope scaling`,
    );
    out = { rope_type: 'frequency_divisors', divisors: Array.from(readTensorF32(m.file, freqs)) };
  }
  return out;
}

/**
 * Gemma 3's sliding layers: none without `attention.sliding_window` (or with 0), as llama.cpp reads it;
 * else `attention.sliding_window_pattern` as a period n (all but every n-th layer slide) or one boolean per
 * layer (true: sliding); absent, Gemma 3's period 6, which llama.cpp assumes.
 */
function slidingPattern(m: Metadata): Record<string, unknown> {
  const pattern = m.get('attention.sliding_window_pattern');
  if (!m.get('attention.sliding_window')) return { layer_types: Array(m.num('block_count')).fill('full_attention') };
  if (pattern === undefined) return {};
  if (Array.isArray(pattern)) {
    check(
      pattern.length === m.num('block_count') && pattern.every((p) => typeof p === 'boolean'),
      `${m.what}: ${m.arch}.attention.sliding_window_pattern must be one boolean per layer`,
    );
    return { layer_types: pattern.map((p) => (p ? 'sliding_attention' : 'full_attention')) };
  }
  return { sliding_window_pattern: m.num('attention.sliding_window_pattern') };
}

/**
 * The config.json transformers would have for this file, from the `<architecture>.*` metadata, the tokenizer's
 * vocabulary size and special ids. `context_length` becomes the positions limit, so longer texts are refused (or
 * cut) and generation stops there, as for any checkpoint.
 */
function configOf(file: GgufFile, architecture: GgufArchitecture, what: string): Record<string, unknown> {
  const m = new Metadata(file, architecture, what);
  const arch = ARCHITECTURES[architecture];
  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  const ids = (key: string) => file.metadata.get(`tokenizer.ggml.${key}`);
  return {
    model_type: arch.modelType,
    ...arch.config(m),
    vocab_size: m.num('vocab_size', Array.isArray(tokens) ? tokens.length : undefined),
    bos_token_id: ids('bos_token_id') ?? null,
    eos_token_id: ids('eos_token_id') ?? null,
  };
}

const show = (v: GgufValue | undefined) => (typeof v === 'bigint' ? v.toString() : JSON.stringify(v));
