/**
 * Tiny random Llama-style decoders for the tests of the newer decoder families (Qwen3, Gemma 2, Gemma 3,
 * Phi-3, OLMo 2): checkpoints in exact Hugging Face layout with llama-tiny-mha's 512-token tokenizer, and one
 * float64 forward pass, written from the modeling files, whose switches are each family's differences:
 *
 * | switch | Llama | Qwen3 | Gemma 2 | Gemma 3 | Phi-3 | OLMo 2 |
 * |---|---|---|---|---|---|---|
 * | norm weight | w | w | 1 + w | 1 + w | w | w |
 * | where norms sit | pre | pre | pre + post (sandwich) | sandwich | pre | post only |
 * | q/k norm | — | per head | — | per head | — | over the projection |
 * | embeddings × √D | — | — | yes | yes | — | — |
 * | fused projections | — | — | — | — | qkv, gate_up | — |
 * | MLP activation | silu | silu | gelu tanh | gelu tanh | silu | silu |
 *
 * plus per layer: the score scale, soft-capping, the sliding window and the RoPE θ. Like tiny-models.ts's, it
 * is a second reading of the modeling files: it catches wiring mistakes, not a misreading shared by both.
 */
import { expect } from 'vitest';
import type { Attention } from '../src/core/attention.js';
import { attentionLogit } from '../src/core/attention.js';
import { gather, linear, Rng, splitHeads, TinyWeights, type Reference, type Rows } from './tiny-models.js';

export const V = 512;

export interface DecoderSpec {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  eps: number;
  norm: 'plain' | 'onePlus';
  placement: 'pre' | 'sandwich' | 'post';
  qkNorm: 'none' | 'head' | 'projection';
  embedScale: boolean;
  fused: boolean;
  act: 'silu' | 'gelu_tanh';
  /** Per layer. */
  scale: number;
  softcap?: number;
  windows: (number | null)[];
  thetas: number[];
  /** Per layer, rope_scaling 'linear''s factor (angles divided by it), default 1. */
  ropeFactors?: number[];
  /** Rotated dimensions per head (Phi-3's partial_rotary_factor), default all. */
  rotaryDims?: number;
  bias?: boolean;
}

/** Random weights under `model.` in the layout the spec implies; norm weights ≈ 0 for 1 + w, ≈ 1 otherwise. */
export function decoderWeights(s: DecoderSpec, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const D = s.hidden,
    H = s.heads,
    K = s.kvHeads,
    d = s.headDim,
    F = s.intermediate;
  const norm = (name: string, width: number) =>
    s.norm === 'onePlus' ? w.add(`${name}.weight`, [width], 0.1) : w.add(`${name}.weight`, [width], 0.1, 1);
  w.add('model.embed_tokens.weight', [V, D], s.embedScale ? 0.3 : 1);
  for (let i = 0; i < s.layers; i++) {
    const l = `model.layers.${i}`;
    if (s.placement !== 'post') norm(`${l}.input_layernorm`, D);
    const qk = 1.2 / Math.sqrt(D);
    if (s.fused) w.linear(`${l}.self_attn.qkv_proj`, D, (H + 2 * K) * d, qk, false);
    else {
      w.linear(`${l}.self_attn.q_proj`, D, H * d, qk, s.bias ?? false);
      w.linear(`${l}.self_attn.k_proj`, D, K * d, qk, s.bias ?? false);
      w.linear(`${l}.self_attn.v_proj`, D, K * d, 0.4, s.bias ?? false);
    }
    if (s.qkNorm === 'head') {
      norm(`${l}.self_attn.q_norm`, d);
      norm(`${l}.self_attn.k_norm`, d);
    } else if (s.qkNorm === 'projection') {
      norm(`${l}.self_attn.q_norm`, H * d);
      norm(`${l}.self_attn.k_norm`, K * d);
    }
    w.linear(`${l}.self_attn.o_proj`, H * d, D, 0.3, s.bias ?? false);
    if (s.placement !== 'pre') norm(`${l}.post_attention_layernorm`, D);
    if (s.placement === 'sandwich') norm(`${l}.pre_feedforward_layernorm`, D);
    if (s.placement === 'pre') norm(`${l}.post_attention_layernorm`, D);
    if (s.placement !== 'pre') norm(`${l}.post_feedforward_layernorm`, D);
    if (s.fused) w.linear(`${l}.mlp.gate_up_proj`, D, 2 * F, 0.4, false);
    else {
      w.linear(`${l}.mlp.gate_proj`, D, F, 0.4, false);
      w.linear(`${l}.mlp.up_proj`, D, F, 0.4, false);
    }
    w.linear(`${l}.mlp.down_proj`, F, D, 0.3, false);
  }
  norm('model.norm', D);
  return w;
}

const rms = (x: Rows, g: Float32Array, eps: number, onePlus: boolean): Rows =>
  x.map((row) => {
    const inv = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / row.length + eps);
    return row.map((v, j) => v * inv * (onePlus ? 1 + g[j] : g[j]));
  });

const acts = {
  silu: (v: number) => v / (1 + Math.exp(-v)),
  gelu_tanh: (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
};

/** rotate_half RoPE on the first `dims` of each head, θ_j = theta^(−2j/dims), position of row t = t. */
function rope(x: Rows[], dims: number, theta: number, factor = 1): Rows[] {
  const half = dims / 2;
  return x.map((head) =>
    head.map((row, t) => {
      const y = Float64Array.from(row);
      for (let j = 0; j < half; j++) {
        const angle = t / theta ** ((2 * j) / dims) / factor;
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        y[j] = row[j] * c - row[j + half] * s;
        y[j + half] = row[j + half] * c + row[j] * s;
      }
      return y;
    }),
  );
}

/** The float64 forward pass of the spec over `ids` (positions 0…T−1), q/k as they enter q·kᵀ. */
export function decoderReference(w: TinyWeights, s: DecoderSpec, ids: readonly number[]): Reference {
  const D = s.hidden,
    H = s.heads,
    K = s.kvHeads,
    d = s.headDim,
    F = s.intermediate,
    T = ids.length;
  const g = (name: string) => w.get(`model.${name}.weight`);
  const norm = (x: Rows, name: string) => rms(x, g(name), s.eps, s.norm === 'onePlus');
  // attention_bias: q, k, v and o projections only.
  const lin = (x: Rows, name: string, nOut: number) =>
    linear(x, g(name), s.bias && name.includes('self_attn') ? w.get(`model.${name}.bias`) : null, nOut);
  const add = (a: Rows, b: Rows) => a.map((r, t) => r.map((v, j) => v + b[t][j]));
  const cols = (x: Rows, from: number, to: number) => x.map((r) => r.slice(from, to));
  const ref: Reference = { q: [], k: [], probs: [], hidden: [] };
  let x = gather(w.get('model.embed_tokens.weight'), D, ids);
  if (s.embedScale) x = x.map((r) => r.map((v) => v * Math.fround(Math.sqrt(D))));
  for (let i = 0; i < s.layers; i++) {
    const l = `layers.${i}`;
    const h = s.placement === 'post' ? x : norm(x, `${l}.input_layernorm`);
    let qp: Rows, kp: Rows, vp: Rows;
    if (s.fused) {
      const qkv = linear(h, g(`${l}.self_attn.qkv_proj`), null, (H + 2 * K) * d);
      [qp, kp, vp] = [cols(qkv, 0, H * d), cols(qkv, H * d, (H + K) * d), cols(qkv, (H + K) * d, (H + 2 * K) * d)];
    } else {
      [qp, kp, vp] = [
        lin(h, `${l}.self_attn.q_proj`, H * d),
        lin(h, `${l}.self_attn.k_proj`, K * d),
        lin(h, `${l}.self_attn.v_proj`, K * d),
      ];
    }
    if (s.qkNorm === 'projection') [qp, kp] = [norm(qp, `${l}.self_attn.q_norm`), norm(kp, `${l}.self_attn.k_norm`)];
    let q = splitHeads(qp, H, d),
      k = splitHeads(kp, K, d);
    const v = splitHeads(vp, K, d);
    if (s.qkNorm === 'head') {
      q = q.map((head) => norm(head, `${l}.self_attn.q_norm`));
      k = k.map((head) => norm(head, `${l}.self_attn.k_norm`));
    }
    const dims = s.rotaryDims ?? d;
    q = rope(q, dims, s.thetas[i], s.ropeFactors?.[i]);
    k = rope(k, dims, s.thetas[i], s.ropeFactors?.[i]);
    const kRep = q.map((_, hh) => k[Math.floor(hh / (H / K))]);
    const vRep = q.map((_, hh) => v[Math.floor(hh / (H / K))]);
    const window = s.windows[i];
    const probs = q.map((qh, hh) =>
      qh.map((qi, a) => {
        const sc = kRep[hh].map((kj, b) => {
          if (b > a || (window !== null && a - b >= window)) return -Infinity;
          let z = qi.reduce((acc, val, c) => acc + val * kj[c], 0) * s.scale;
          if (s.softcap !== undefined) z = s.softcap * Math.tanh(z / s.softcap);
          return z;
        });
        const max = Math.max(...sc);
        const e = sc.map((z) => Math.exp(z - max));
        const sum = e.reduce((p, c) => p + c, 0);
        return Float64Array.from(e, (z) => z / sum);
      }),
    );
    ref.q.push(q);
    ref.k.push(kRep);
    ref.probs.push(probs);
    const context = Array.from({ length: T }, (_, t) => {
      const row = new Float64Array(H * d);
      for (let hh = 0; hh < H; hh++)
        for (let j = 0; j < T; j++) for (let c = 0; c < d; c++) row[hh * d + c] += probs[hh][t][j] * vRep[hh][j][c];
      return row;
    });
    let a = lin(context, `${l}.self_attn.o_proj`, D);
    if (s.placement !== 'pre') a = norm(a, `${l}.post_attention_layernorm`);
    x = add(x, a);
    const h2 =
      s.placement === 'pre'
        ? norm(x, `${l}.post_attention_layernorm`)
        : s.placement === 'sandwich'
          ? norm(x, `${l}.pre_feedforward_layernorm`)
          : x;
    let gate: Rows, up: Rows;
    if (s.fused) {
      const gu = linear(h2, g(`${l}.mlp.gate_up_proj`), null, 2 * F);
      [gate, up] = [cols(gu, 0, F), cols(gu, F, 2 * F)];
    } else [gate, up] = [lin(h2, `${l}.mlp.gate_proj`, F), lin(h2, `${l}.mlp.up_proj`, F)];
    const f = acts[s.act];
    let m = linear(
      gate.map((r, t) => r.map((val, j) => f(val) * up[t][j])),
      g(`${l}.mlp.down_proj`),
      null,
      D,
    );
    if (s.placement !== 'pre') m = norm(m, `${l}.post_feedforward_layernorm`);
    x = add(x, m);
  }
  ref.hidden = norm(x, 'norm');
  return ref;
}

/**
 * Rows sum to 1, exact zeros above the diagonal and outside each layer's window, and softmax of
 * attentionLogit (q·kᵀ with the documented extras: score scale, soft-capping, windows) = the attention.
 */
export function expectDecoderInvariants(a: Attention): void {
  const [L, H, T] = a.attention.dims;
  const d = a.query!.dims[3];
  const p = a.attention.data,
    q = a.query!.data,
    k = a.key!.data;
  let rowSum = 0,
    masked = 0,
    softmax = 0;
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const base = ((l * H + h) * T + i) * T;
        const scores = Array.from({ length: T }, (_, j) => {
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[((l * H + h) * T + i) * d + c] * k[((l * H + h) * T + j) * d + c];
          return attentionLogit(a, l, h, i, j, dot);
        });
        const max = Math.max(...scores);
        const e = scores.map((z) => Math.exp(z - max));
        const sum = e.reduce((x, y) => x + y, 0);
        let row = 0;
        for (let j = 0; j < T; j++) {
          row += p[base + j];
          if (scores[j] === -Infinity) masked = Math.max(masked, p[base + j]);
          softmax = Math.max(softmax, Math.abs(e[j] / sum - p[base + j]));
        }
        rowSum = Math.max(rowSum, Math.abs(row - 1));
      }
  expect(a.causal).toBe(true);
  expect(rowSum, 'rows sum to 1').toBeLessThan(1e-5);
  expect(masked, 'exact zeros where the mask or window hides a key').toBe(0);
  expect(softmax, 'softmax(attentionLogit(q·kᵀ)) = attention').toBeLessThan(1e-5);
}

/** Tied-head logits of the last position, h·Eᵀ, for the reference's final hidden state. */
export function lastLogits(w: TinyWeights, ref: Reference, finalSoftcap?: number): Float64Array {
  const h = ref.hidden[ref.hidden.length - 1];
  const E = w.get('model.embed_tokens.weight');
  return Float64Array.from({ length: V }, (_, v) => {
    let z = 0;
    for (let j = 0; j < h.length; j++) z += E[v * h.length + j] * h[j];
    return finalSoftcap === undefined ? z : finalSoftcap * Math.tanh(z / finalSoftcap);
  });
}

// ---- BLOOM, GPT-J, Falcon: checkpoints in HF layout (their float64 passes are in decoders.test.ts) ----------

export const BLOOM_CONFIG = {
  architectures: ['BloomForCausalLM'],
  model_type: 'bloom',
  vocab_size: 512,
  hidden_size: 24,
  n_layer: 2,
  n_head: 6,
  layer_norm_epsilon: 1e-5,
  bos_token_id: 1,
  eos_token_id: 2,
};

export function bloomWeights(seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const D = 24;
  const ln = (name: string) => {
    w.add(`${name}.weight`, [D], 0.1, 1);
    w.add(`${name}.bias`, [D], 0.05);
  };
  w.add('transformer.word_embeddings.weight', [512, D], 1);
  ln('transformer.word_embeddings_layernorm');
  for (let i = 0; i < 2; i++) {
    const l = `transformer.h.${i}`;
    ln(`${l}.input_layernorm`);
    w.linear(`${l}.self_attention.query_key_value`, D, 3 * D, 0.5);
    w.linear(`${l}.self_attention.dense`, D, D, 0.3);
    ln(`${l}.post_attention_layernorm`);
    w.linear(`${l}.mlp.dense_h_to_4h`, D, 4 * D, 0.3);
    w.linear(`${l}.mlp.dense_4h_to_h`, 4 * D, D, 0.2);
  }
  ln('transformer.ln_f');
  return w;
}

export const GPTJ_CONFIG = {
  architectures: ['GPTJForCausalLM'],
  model_type: 'gptj',
  vocab_size: 512,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  rotary_dim: 4,
  n_inner: 48,
  n_positions: 128,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  bos_token_id: 1,
  eos_token_id: 2,
};

export function gptjWeights(seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const D = 32;
  const ln = (name: string) => {
    w.add(`${name}.weight`, [D], 0.1, 1);
    w.add(`${name}.bias`, [D], 0.05);
  };
  w.add('transformer.wte.weight', [512, D], 1);
  for (let i = 0; i < 2; i++) {
    const l = `transformer.h.${i}`;
    ln(`${l}.ln_1`);
    for (const proj of ['q_proj', 'k_proj']) w.linear(`${l}.attn.${proj}`, D, D, 0.4, false);
    w.linear(`${l}.attn.v_proj`, D, D, 0.3, false);
    w.linear(`${l}.attn.out_proj`, D, D, 0.3, false);
    w.linear(`${l}.mlp.fc_in`, D, 48, 0.3);
    w.linear(`${l}.mlp.fc_out`, 48, D, 0.2);
  }
  ln('transformer.ln_f');
  w.linear('lm_head', D, 512, 0.2);
  return w;
}

export interface FalconSpec {
  name: string;
  config: Record<string, unknown>;
  layout: 'grouped' | 'multi-query' | 'per-head';
  kv: number;
  norms: 'one' | 'two' | 'sequential';
  bias: boolean;
}

export const FALCON_BASE = {
  architectures: ['FalconForCausalLM'],
  model_type: 'falcon',
  vocab_size: 512,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  layer_norm_epsilon: 1e-5,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
};

export const FALCONS: FalconSpec[] = [
  {
    name: 'Falcon-7B (multi-query, parallel, one norm)',
    config: FALCON_BASE,
    layout: 'multi-query',
    kv: 1,
    norms: 'one',
    bias: false,
  },
  {
    name: 'Falcon-40B (new architecture, 2 kv groups, ln_attn + ln_mlp)',
    config: { ...FALCON_BASE, new_decoder_architecture: true, num_kv_heads: 2 },
    layout: 'grouped',
    kv: 2,
    norms: 'two',
    bias: false,
  },
  {
    name: 'per-head qkv, sequential, biases',
    config: { ...FALCON_BASE, multi_query: false, parallel_attn: false, bias: true },
    layout: 'per-head',
    kv: 4,
    norms: 'sequential',
    bias: true,
  },
];

export function falconWeights(s: FalconSpec, seed: number): TinyWeights {
  const w = new TinyWeights(new Rng(seed));
  const D = 32,
    d = 8;
  const ln = (name: string) => {
    w.add(`${name}.weight`, [D], 0.1, 1);
    w.add(`${name}.bias`, [D], 0.05);
  };
  w.add('transformer.word_embeddings.weight', [512, D], 1);
  for (let i = 0; i < 2; i++) {
    const l = `transformer.h.${i}`;
    if (s.norms === 'two') {
      ln(`${l}.ln_attn`);
      ln(`${l}.ln_mlp`);
    } else ln(`${l}.input_layernorm`);
    w.linear(`${l}.self_attention.query_key_value`, D, (4 + 2 * s.kv) * d, 0.4, s.bias);
    w.linear(`${l}.self_attention.dense`, D, D, 0.3, s.bias);
    if (s.norms === 'sequential') ln(`${l}.post_attention_layernorm`);
    w.linear(`${l}.mlp.dense_h_to_4h`, D, 4 * D, 0.3, s.bias);
    w.linear(`${l}.mlp.dense_4h_to_h`, 4 * D, D, 0.2, s.bias);
  }
  ln('transformer.ln_f');
  return w;
}
