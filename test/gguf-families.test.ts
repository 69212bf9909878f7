/**
 * GGUF files of the second-wave decoder architectures (qwen3, gemma2, gemma3, phi3, olmo2, bloom, falcon, gptj),
 * each written here from a tiny random checkpoint in Hugging Face layout (the family tests' builders) the way
 * llama.cpp's convert_hf_to_gguf.py writes it — its tensor names (gguf-py's tensor map), its metadata keys and
 * its transforms (Gemma's norm weights + 1, BLOOM's per-head qkv regrouped as q | k | v, Falcon's kv groups
 * regrouped likewise, a duplicated BLOOM output matrix) — and run against the same checkpoint as a safetensors
 * folder: the same tokens, attention, q, k and last hidden state within 1e-4, the same greedy generation. The
 * same file with its matrices quantized to Q8_0 (ggml's quantize_row_q8_0_ref) runs quantized and matches its
 * dequantized F32 copy.
 *
 * The converter's layout is our own reading of convert_hf_to_gguf.py and gguf-py (no real Hub GGUF is
 * reachable here): this checks that the loader undoes what that reading says the converter does.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { f32ToF16Bits } from './checkpoints.js';
import { GGML, readGguf } from '../src/load/gguf.js';
import { Model } from '../src/models/checkpoint-model.js';
import { dequantizedCopy, f32Bytes, gguf, toMeta, type MetaValue, type TensorSpec } from './gguf-writer.js';
import { expectBad, HAVE_SHARED, maxAbs, maxAbsDiff, present, SHARED } from './shared.js';
import {
  BLOOM_CONFIG,
  bloomWeights,
  decoderWeights,
  FALCONS,
  falconWeights,
  GPTJ_CONFIG,
  gptjWeights,
  type DecoderSpec,
} from './tiny-decoders.js';
import { removeTinyModels, writeTinyModel, type TinyWeights } from './tiny-models.js';
import { tinyTokenizerFiles } from './tiny-tokenizers.js';

const STORIES = join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const HAVE_STORIES = present(existsSync(STORIES), STORIES, 'the SentencePiece-vocabulary GGUF tests');
/** Plain words: every pre-tokenizer here splits it as GPT-2's does, so the folder's tokenizer gives the same ids. */
const TEXT = 'The cat sat on the mat and the dog watched it';

// ---- the converter, as read from convert_hf_to_gguf.py and gguf-py/gguf/tensor_mapping.py ----------------

/** transformers name → GGUF name, first match wins. */
type Names = [RegExp, string][];

const DECODER_NAMES = (postAttentionNorm: 'ffn_norm' | 'post_attention_norm'): Names => [
  [/^model\.embed_tokens\./, 'token_embd.'],
  [/^model\.norm\./, 'output_norm.'],
  [/^lm_head\./, 'output.'],
  [/^model\.layers\.(\d+)\.input_layernorm\./, 'blk.$1.attn_norm.'],
  [/^model\.layers\.(\d+)\.self_attn\.q_proj\./, 'blk.$1.attn_q.'],
  [/^model\.layers\.(\d+)\.self_attn\.k_proj\./, 'blk.$1.attn_k.'],
  [/^model\.layers\.(\d+)\.self_attn\.v_proj\./, 'blk.$1.attn_v.'],
  [/^model\.layers\.(\d+)\.self_attn\.qkv_proj\./, 'blk.$1.attn_qkv.'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\./, 'blk.$1.attn_output.'],
  [/^model\.layers\.(\d+)\.self_attn\.q_norm\./, 'blk.$1.attn_q_norm.'],
  [/^model\.layers\.(\d+)\.self_attn\.k_norm\./, 'blk.$1.attn_k_norm.'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\./, `blk.$1.${postAttentionNorm}.`],
  [/^model\.layers\.(\d+)\.pre_feedforward_layernorm\./, 'blk.$1.ffn_norm.'],
  [/^model\.layers\.(\d+)\.post_feedforward_layernorm\./, 'blk.$1.post_ffw_norm.'],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\./, 'blk.$1.ffn_gate.'],
  // Phi-3's fused gate_up_proj stays fused, as ffn_up.
  [/^model\.layers\.(\d+)\.mlp\.(up_proj|gate_up_proj)\./, 'blk.$1.ffn_up.'],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\./, 'blk.$1.ffn_down.'],
];

const TRANSFORMER_NAMES: Names = [
  [/^transformer\.(word_embeddings|wte)\./, 'token_embd.'],
  [/^transformer\.word_embeddings_layernorm\./, 'token_embd_norm.'],
  [/^transformer\.ln_f\./, 'output_norm.'],
  [/^lm_head\./, 'output.'],
  [/^transformer\.h\.(\d+)\.(input_layernorm|ln_attn|ln_1)\./, 'blk.$1.attn_norm.'],
  [/^transformer\.h\.(\d+)\.ln_mlp\./, 'blk.$1.attn_norm_2.'],
  [/^transformer\.h\.(\d+)\.post_attention_layernorm\./, 'blk.$1.ffn_norm.'],
  [/^transformer\.h\.(\d+)\.self_attention\.query_key_value\./, 'blk.$1.attn_qkv.'],
  [/^transformer\.h\.(\d+)\.(self_attention\.dense|attn\.out_proj)\./, 'blk.$1.attn_output.'],
  [/^transformer\.h\.(\d+)\.attn\.q_proj\./, 'blk.$1.attn_q.'],
  [/^transformer\.h\.(\d+)\.attn\.k_proj\./, 'blk.$1.attn_k.'],
  [/^transformer\.h\.(\d+)\.attn\.v_proj\./, 'blk.$1.attn_v.'],
  [/^transformer\.h\.(\d+)\.(mlp\.dense_h_to_4h|mlp\.fc_in)\./, 'blk.$1.ffn_up.'],
  [/^transformer\.h\.(\d+)\.(mlp\.dense_4h_to_h|mlp\.fc_out)\./, 'blk.$1.ffn_down.'],
];

/** A converted tensor: GGUF name, PyTorch shape, values. */
interface Converted {
  name: string;
  shape: number[];
  data: Float32Array;
}

function convertName(name: string, names: Names): string {
  const hit = names.find(([re]) => re.test(name));
  if (!hit) throw new Error(`the test's converter has no GGUF name for ${name}`);
  return name.replace(hit[0], hit[1]);
}

/** Rows regrouped: `order[i]` is the source row block (of `rowSize` values each) of destination block i. */
function regroupRows(data: Float32Array, rowSize: number, order: number[]): Float32Array {
  const out = new Float32Array(data.length);
  order.forEach((from, to) => out.set(data.subarray(from * rowSize, (from + 1) * rowSize), to * rowSize));
  return out;
}

/**
 * BLOOM (BloomModel.modify_tensors): query_key_value rows [H, 3, d] → [3, H, d]; Falcon
 * (FalconModel.modify_tensors): [K, n + 2, d] (n = H / K queries, a key, a value per group) → all queries, then
 * the K keys, then the K values. `cols` values per row (1 for biases).
 */
function bloomQkv(data: Float32Array, H: number, d: number, cols: number): Float32Array {
  const order = [0, 1, 2].flatMap((part) => Array.from({ length: H }, (_, h) => h * 3 + part));
  return regroupRows(data, d * cols, order);
}

function falconQkv(data: Float32Array, H: number, K: number, d: number, cols: number): Float32Array {
  const n = H / K;
  const order = [
    ...Array.from({ length: H }, (_, h) => Math.floor(h / n) * (n + 2) + (h % n)),
    ...Array.from({ length: K }, (_, g) => g * (n + 2) + n),
    ...Array.from({ length: K }, (_, g) => g * (n + 2) + n + 1),
  ];
  return regroupRows(data, d * cols, order);
}

/** Every checkpoint tensor renamed, then `transform`ed (the converter's modify_tensors). */
function convert(w: TinyWeights, names: Names, transform: (t: Converted) => Converted[] = (t) => [t]): Converted[] {
  return [...w.tensors].flatMap(([name, t]) =>
    transform({ name: convertName(name, names), shape: t.shape, data: t.data }),
  );
}

/** ggml's quantize_row_q8_0_ref: per 32 values d = max|x| / 127 (stored f16), codes round(x / d). */
function q8_0(values: Float32Array): Uint8Array {
  const out = Buffer.alloc((values.length / 32) * 34);
  for (let b = 0; b < values.length / 32; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    const d = Math.fround(x.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127);
    const id = d ? Math.fround(1 / d) : 0;
    out.writeUInt16LE(f32ToF16Bits(d), b * 34);
    x.forEach((v, j) => out.writeInt8(Math.round(Math.fround(v * id)), b * 34 + 2 + j));
  }
  return out;
}

/** The converted tensors as GGUF tensors: F32, or matrices whose rows fill 32-value blocks as Q8_0. */
function tensorSpecs(tensors: Converted[], quantize: boolean): TensorSpec[] {
  return tensors.map(({ name, shape, data }) => {
    const ne = [...shape].reverse();
    return quantize && shape.length === 2 && shape[1] % 32 === 0
      ? { name, ne, type: GGML.Q8_0, data: q8_0(data) }
      : { name, ne, type: GGML.F32, data: f32Bytes(data) };
  });
}

// ---- vocabularies ---------------------------------------------------------------------------------------

/** gpt2-tiny's byte-level BPE as llama.cpp's _set_vocab_gpt2 writes it: tokens by id, merges, types. */
function bpeVocabulary(pre: string): [string, MetaValue][] {
  const json = JSON.parse(tinyTokenizerFiles('gpt2-tiny', 512)['tokenizer.json']) as {
    model: { vocab: Record<string, number>; merges: string[] };
    added_tokens: { id: number }[];
  };
  const tokens: string[] = [];
  for (const [piece, id] of Object.entries(json.model.vocab)) tokens[id] = piece;
  const control = new Set(json.added_tokens.map((t) => t.id));
  const eos = json.added_tokens[0].id;
  return [
    ['tokenizer.ggml.model', { str: 'gpt2' }],
    ['tokenizer.ggml.pre', { str: pre }],
    ['tokenizer.ggml.tokens', { strs: tokens }],
    ['tokenizer.ggml.token_type', { i32s: tokens.map((_, i) => (control.has(i) ? 3 : 1)) }],
    ['tokenizer.ggml.merges', { strs: json.model.merges }],
    ['tokenizer.ggml.bos_token_id', { u32: eos }],
    ['tokenizer.ggml.eos_token_id', { u32: eos }],
    ['tokenizer.ggml.add_bos_token', { bool: false }],
  ];
}

/** stories260K's SentencePiece vocabulary (llama-tiny-mha's), as _set_vocab_sentencepiece writes one. */
function spmVocabulary(addSpacePrefix: boolean): [string, MetaValue][] {
  const stories = readGguf(STORIES);
  const keys = ['tokens', 'scores', 'token_type', 'bos_token_id', 'eos_token_id'].map((k) => `tokenizer.ggml.${k}`);
  return [
    ['tokenizer.ggml.model', { str: 'llama' }],
    ...keys.map((k): [string, MetaValue] => [k, toMeta(stories.metadata.get(k))]),
    ['tokenizer.ggml.add_bos_token', { bool: true }],
    ['tokenizer.ggml.add_space_prefix', { bool: addSpacePrefix }],
  ];
}

// ---- the architectures ----------------------------------------------------------------------------------

interface Case {
  arch: string;
  /** config.json of the safetensors folder. */
  config: Record<string, unknown>;
  weights: TinyWeights;
  /** `<arch>.*` metadata as the converter writes it (keys without the prefix). */
  metadata: [string, MetaValue][];
  tensors: Converted[];
  vocabulary: 'spm' | 'spm-no-prefix' | string;
}

const u32 = (n: number): MetaValue => ({ u32: n });
const f32 = (n: number): MetaValue => ({ f32: n });

/** TextModel.set_gguf_parameters' keys for a Llama-style decoder. */
function decoderMetadata(s: DecoderSpec, theta: number, context = 256): [string, MetaValue][] {
  return [
    ['context_length', u32(context)],
    ['embedding_length', u32(s.hidden)],
    ['block_count', u32(s.layers)],
    ['feed_forward_length', u32(s.intermediate)],
    ['attention.head_count', u32(s.heads)],
    ['attention.head_count_kv', u32(s.kvHeads)],
    ['rope.freq_base', f32(theta)],
    ['attention.layer_norm_rms_epsilon', f32(s.eps)],
  ];
}

function decoderConfig(modelType: string, s: DecoderSpec, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    model_type: modelType,
    vocab_size: 512,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    max_position_embeddings: 256,
    rms_norm_eps: s.eps,
    tie_word_embeddings: true,
    ...extra,
  };
}

const SMALL = { layers: 2, hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 64, eps: 1e-6 } as const;
const PRE_NORM = { norm: 'plain', placement: 'pre', embedScale: false, act: 'silu' } as const;

function qwen3(): Case {
  const s: DecoderSpec = {
    ...SMALL,
    ...PRE_NORM,
    headDim: 12,
    qkNorm: 'head',
    fused: false,
    scale: 12 ** -0.5,
    thetas: [1e6, 1e6],
    windows: [null, null],
  };
  const w = decoderWeights(s, 201);
  return {
    arch: 'qwen3',
    config: decoderConfig('qwen3', s, { rope_theta: 1e6 }),
    weights: w,
    metadata: [...decoderMetadata(s, 1e6), ['attention.key_length', u32(12)], ['attention.value_length', u32(12)]],
    tensors: convert(w, DECODER_NAMES('ffn_norm')),
    vocabulary: 'qwen2',
  };
}

/** Gemma with head_dim 8 = query_pre_attn_scalar: llama.cpp scales by head_dim^−½ (not stored in the file). */
function gemma(variant: 'gemma2' | 'gemma3'): Case {
  const g3 = variant === 'gemma3';
  const s: DecoderSpec = {
    ...SMALL,
    layers: 4,
    norm: 'onePlus',
    placement: 'sandwich',
    qkNorm: g3 ? 'head' : 'none',
    embedScale: true,
    fused: false,
    act: 'gelu_tanh',
    scale: 8 ** -0.5,
    windows: g3 ? [4, 4, null, 4] : [4, null, 4, null],
    thetas: g3 ? [1e4, 1e4, 1e6, 1e4] : [1e4, 1e4, 1e4, 1e4],
    ...(g3 ? {} : { softcap: 2 }),
  };
  const w = decoderWeights(s, g3 ? 203 : 202);
  const config = decoderConfig(g3 ? 'gemma3_text' : 'gemma2', s, {
    query_pre_attn_scalar: 8,
    sliding_window: 4,
    hidden_activation: 'gelu_pytorch_tanh',
    ...(g3
      ? {
          sliding_window_pattern: 3,
          rope_theta: 1e6,
          rope_local_base_freq: 1e4,
          rope_scaling: { rope_type: 'linear', factor: 8 },
        }
      : { attn_logit_softcapping: 2, final_logit_softcapping: 30, rope_theta: 1e4 }),
  });
  const metadata: [string, MetaValue][] = [
    ...decoderMetadata(s, 1e4).filter(([k]) => k !== 'rope.freq_base'),
    ['attention.key_length', u32(8)],
    ['attention.value_length', u32(8)],
    ['attention.sliding_window', u32(4)],
    ...(g3
      ? ([
          ['rope.freq_base', f32(1e6)],
          ['rope.scaling.type', { str: 'linear' }],
          ['rope.scaling.factor', f32(8)],
          ['attention.sliding_window_pattern', u32(3)],
        ] as [string, MetaValue][])
      : ([
          ['attn_logit_softcapping', f32(2)],
          ['final_logit_softcapping', f32(30)],
        ] as [string, MetaValue][])),
  ];
  return {
    arch: variant,
    config,
    weights: w,
    metadata,
    // Gemma2Model / Gemma3Model.modify_tensors: every "norm.weight" + 1 (the RMSNorm's 1 + w, stored).
    tensors: convert(w, DECODER_NAMES('post_attention_norm'), (t) => [
      t.name.endsWith('norm.weight') ? { ...t, data: t.data.map((v) => v + 1) } : t,
    ]),
    vocabulary: 'spm-no-prefix',
  };
}

function phi3(): Case {
  const s: DecoderSpec = {
    ...SMALL,
    ...PRE_NORM,
    eps: 1e-5,
    qkNorm: 'none',
    fused: true,
    scale: 8 ** -0.5,
    thetas: [1e4, 1e4],
    windows: [null, null],
    rotaryDims: 6,
  };
  const w = decoderWeights(s, 204);
  return {
    arch: 'phi3',
    config: decoderConfig('phi3', s, { partial_rotary_factor: 0.75 }),
    weights: w,
    metadata: [...decoderMetadata(s, 1e4), ['rope.dimension_count', u32(6)]],
    tensors: convert(w, DECODER_NAMES('ffn_norm')),
    vocabulary: 'spm',
  };
}

function olmo2(): Case {
  const s: DecoderSpec = {
    ...SMALL,
    ...PRE_NORM,
    kvHeads: 4,
    placement: 'post',
    qkNorm: 'projection',
    fused: false,
    scale: 8 ** -0.5,
    thetas: [5e5, 5e5],
    windows: [null, null],
  };
  const w = decoderWeights(s, 205);
  return {
    arch: 'olmo2',
    config: decoderConfig('olmo2', s, { rope_theta: 5e5 }),
    weights: w,
    metadata: decoderMetadata(s, 5e5),
    tensors: convert(w, DECODER_NAMES('post_attention_norm')),
    vocabulary: 'dbrx',
  };
}

function bloom(): Case {
  const w = bloomWeights(206);
  const [D, H, d] = [24, 6, 4];
  return {
    arch: 'bloom',
    config: BLOOM_CONFIG,
    weights: w,
    metadata: [
      ['context_length', u32(D)], // hparams.get("seq_length", n_embed): BLOOM_CONFIG has no seq_length
      ['embedding_length', u32(D)],
      ['feed_forward_length', u32(4 * D)],
      ['block_count', u32(2)],
      ['attention.head_count', u32(H)],
      ['attention.head_count_kv', u32(H)],
      ['attention.layer_norm_epsilon', f32(1e-5)],
    ],
    tensors: convert(w, TRANSFORMER_NAMES, (t) => {
      if (t.name.endsWith('attn_qkv.weight')) return [{ ...t, data: bloomQkv(t.data, H, d, D) }];
      if (t.name.endsWith('attn_qkv.bias')) return [{ ...t, data: bloomQkv(t.data, H, d, 1) }];
      // The tied head written out as output.weight too ("TODO: tie them at runtime").
      return t.name === 'token_embd.weight' ? [t, { ...t, name: 'output.weight' }] : [t];
    }),
    vocabulary: 'bloom',
  };
}

function falcon(which: 0 | 1): Case {
  const s = FALCONS[which];
  const w = falconWeights(s, 207 + which);
  const [D, H, d] = [32, 4, 8];
  return {
    arch: 'falcon',
    config: s.config,
    weights: w,
    metadata: [
      ['context_length', u32(2048)],
      ['embedding_length', u32(D)],
      ['feed_forward_length', u32(4 * D)],
      ['block_count', u32(2)],
      ['attention.head_count', u32(H)],
      ['attention.head_count_kv', u32(s.kv)],
      ['attention.layer_norm_epsilon', f32(1e-5)],
    ],
    tensors: convert(w, TRANSFORMER_NAMES, (t) =>
      t.name.endsWith('attn_qkv.weight') ? [{ ...t, data: falconQkv(t.data, H, s.kv, d, D) }] : [t],
    ),
    vocabulary: 'falcon',
  };
}

function gptj(): Case {
  const w = gptjWeights(209);
  return {
    arch: 'gptj',
    config: GPTJ_CONFIG,
    weights: w,
    metadata: [
      ['block_count', u32(2)],
      ['context_length', u32(128)],
      ['embedding_length', u32(32)],
      ['feed_forward_length', u32(4 * 32)], // the converter's 4 × n_embd, although n_inner is 48
      ['attention.head_count', u32(4)],
      ['attention.layer_norm_epsilon', f32(1e-5)],
      ['rope.dimension_count', u32(4)],
    ],
    tensors: convert(w, TRANSFORMER_NAMES),
    vocabulary: 'gpt-2',
  };
}

// ---- files ----------------------------------------------------------------------------------------------

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'attnviz-gguf-families-'));
});
const opened: Model[] = [];
afterAll(async () => {
  await Promise.all(opened.splice(0).map((m) => m.release()));
  await rm(scratch, { recursive: true, force: true });
  await removeTinyModels();
});
let count = 0;
async function open(bytes: Uint8Array | string): Promise<Model> {
  let path = bytes;
  if (typeof path !== 'string') {
    path = join(scratch, `m${count++}.gguf`);
    await writeFile(path, bytes);
  }
  const m = await Model.load(path);
  opened.push(m);
  return m;
}

function ggufOf(c: Case, quantize: boolean, change: (t: Converted[]) => Converted[] = (t) => t): Buffer {
  const vocabulary =
    c.vocabulary === 'spm' || c.vocabulary === 'spm-no-prefix'
      ? spmVocabulary(c.vocabulary === 'spm')
      : bpeVocabulary(c.vocabulary);
  return gguf({
    metadata: [
      ['general.architecture', { str: c.arch }],
      ...c.metadata.map(([k, v]): [string, MetaValue] => [`${c.arch}.${k}`, v]),
      ...vocabulary,
    ],
    tensors: tensorSpecs(change(c.tensors), quantize),
  });
}

const expectClose = (x: ArrayLike<number>, y: ArrayLike<number>, what: string) =>
  expect(maxAbsDiff(x, y), what).toBeLessThan(1e-4 * Math.max(1, maxAbs(y)));

const CASES: [string, () => Case, boolean][] = [
  ['qwen3 (per-head q/k norms, GQA, head_dim 12 from key_length)', qwen3, false],
  ['gemma2 (norms stored + 1, soft-capping, sliding layers)', () => gemma('gemma2'), true],
  ['gemma3 (norms + 1, q/k norms, local and global θ, linear scaling, window period 3)', () => gemma('gemma3'), true],
  ['phi3 (fused qkv and gate_up kept fused, rotary on 6 of 8 dims)', phi3, true],
  ['olmo2 (q/k norms over the projection, post norms)', olmo2, false],
  ['bloom (qkv regrouped to q | k | v, ALiBi, duplicated output matrix)', bloom, false],
  ['falcon, Falcon-7B layout (multi-query)', () => falcon(0), false],
  ['falcon, Falcon-40B layout (2 kv groups regrouped, attn_norm_2)', () => falcon(1), false],
  ['gptj (rotary_dim 4 of 8, n_inner from the tensors)', gptj, false],
];

describe.each(CASES)('GGUF %s', (_, make, sentencePiece) => {
  const skip = sentencePiece && (!HAVE_SHARED || !HAVE_STORIES);
  test.skipIf(skip)('the same tokens, attention, q, k and hidden state as the safetensors folder', async () => {
    const c = make();
    const folder = await writeTinyModel(
      c.config,
      c.weights,
      sentencePiece ? 'llama-tiny-mha' : 'gpt2-tiny',
      sentencePiece ? { golden: 'json' } : {},
    );
    const [hf, file] = await Promise.all([open(folder), open(ggufOf(c, false))]);
    // Without the dummy prefix (Gemma), the text's own leading space makes the first word's "▁".
    const text = c.vocabulary === 'spm-no-prefix' ? ` ${TEXT}` : TEXT;
    const [a, b] = await Promise.all([hf.attention(TEXT), file.attention(text)]);
    expect(b.inputIds).toEqual(a.inputIds);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.model.modelType).toBe(a.model.modelType);
    expect(b.attention.dims).toEqual(a.attention.dims);
    expect(maxAbsDiff(b.attention.data, a.attention.data), 'attention').toBeLessThan(1e-4);
    expectClose(b.query!.data, a.query!.data, 'query');
    expectClose(b.key!.data, a.key!.data, 'key');
    expectClose(b.hiddenLast!.data, a.hiddenLast!.data, 'hidden_last');
    // Greedy generation (the KV-cache graph, on the same layout) picks the same tokens (BLOOM, GPT-J: no head).
    expect(file.capabilities.generate).toBe(hf.capabilities.generate);
    if (hf.capabilities.generate) {
      const options = { maxNewTokens: 6, temperature: 0 };
      const [x, y] = await Promise.all([hf.generate(TEXT, options), file.generate(text, options)]);
      expect(y.ids).toEqual(x.ids);
      expect(x.ids.length).toBeGreaterThan(a.inputIds!.length);
    }
  });

  test.skipIf(skip)('Q8_0 matrices run quantized and match the same values in F32', async () => {
    const c = make();
    const bytes = ggufOf(c, true);
    const path = join(scratch, `q${count++}.gguf`);
    await writeFile(path, bytes);
    const quantized = [...readGguf(path).tensors.values()].filter((t) => t.type === GGML.Q8_0);
    expect(quantized.length, 'Q8_0 tensors in the file').toBeGreaterThan(0);
    const text = c.vocabulary === 'spm-no-prefix' ? ` ${TEXT}` : TEXT;
    const [q, plain] = await Promise.all([open(path), open(dequantizedCopy(path))]);
    const [a, b] = await Promise.all([q.attention(text), plain.attention(text)]);
    expect(maxAbsDiff(a.attention.data, b.attention.data), 'attention').toBeLessThan(1e-4);
    expectClose(a.hiddenLast!.data, b.hiddenLast!.data, 'hidden_last');
    expect(q.weightBytes).toBeLessThan(plain.weightBytes);
  });
});

describe('GGUF metadata read as llama.cpp reads it', () => {
  test.skipIf(!HAVE_STORIES)('gemma3 without attention.sliding_window: every layer global', async () => {
    const c = gemma('gemma3');
    c.metadata = c.metadata.filter(([k]) => k !== 'attention.sliding_window');
    const a = await (await open(ggufOf(c, false))).attention(` ${TEXT}`);
    expect(a.layerWindows ?? [], 'no windowed layer').toEqual([]);
    // Layer 0, head 0, the last query: keys further back than the window of 4 are attended to.
    const T = a.tokens.length;
    expect(a.attention.data[(T - 1) * T]).toBeGreaterThan(0);
  });
});

describe('GGUF layouts attnviz refuses by name', () => {
  test('phi3 with longrope factors (rope_factors_long / _short, the 128k-context models)', async () => {
    const c = phi3();
    const factors = (name: string): Converted => ({ name, shape: [3], data: Float32Array.of(1, 2, 3) });
    await expectBad(
      Model.load(await fileOf(ggufOf(c, false, (t) => [...t, factors('rope_factors_long.weight')]))),
      /tensor "rope_factors_long\.weight" is Phi-3's longrope scaling .* not support/,
    );
  });

  test('falcon with a post-attention norm (sequential blocks: llama.cpp runs Falcon parallel only)', async () => {
    const c = falcon(0);
    const norm: Converted = { name: 'blk.0.ffn_norm.weight', shape: [32], data: new Float32Array(32) };
    await expectBad(
      Model.load(await fileOf(ggufOf(c, false, (t) => [...t, norm]))),
      /tensor "blk\.0\.ffn_norm\.weight" is not part of a falcon model as attnviz reads it/,
    );
  });

  test('olmo2 with a sliding window (OLMo 3, which llama.cpp writes as olmo2)', async () => {
    const c = olmo2();
    c.metadata = [...c.metadata, ['attention.sliding_window', u32(4)]];
    await expectBad(Model.load(await fileOf(ggufOf(c, false))), /olmo2\.attention\.sliding_window is set \(OLMo 3/);
  });

  test('a q/k norm in a gemma2 file (Gemma 2 has none): the unread tensor is named', async () => {
    const c = gemma('gemma2');
    const qNorm: Converted = { name: 'blk.0.attn_q_norm.weight', shape: [8], data: new Float32Array(8) };
    await expectBad(Model.load(await fileOf(ggufOf(c, false, (t) => [...t, qNorm]))), /q_norm/);
  });

  test('gemma3: a sliding-window pattern with one entry per layer must have one per layer', async () => {
    const c = gemma('gemma3');
    c.metadata = c.metadata.map(([k, v]): [string, MetaValue] =>
      k === 'attention.sliding_window_pattern' ? [k, { strs: ['a'] }] : [k, v],
    );
    await expectBad(
      Model.load(await fileOf(ggufOf(c, false))),
      /gemma3\.attention\.sliding_window_pattern must be one boolean per layer/,
    );
  });
});

async function fileOf(bytes: Uint8Array): Promise<string> {
  const path = join(scratch, `bad${count++}.gguf`);
  await writeFile(path, bytes);
  return path;
}
