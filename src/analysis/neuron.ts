/**
 * The neuron view's maths (Vig 2019 §3.3), as pure functions on Attention values: for one layer, head and
 * query token i, the elementwise products q_i ⊙ k_j, the scores q_i·k_j·scale, their softmax under the
 * causal mask, and the check that this softmax reproduces the data's attention row. No DOM: the view
 * (views/neuron-view.ts), the CLI (`attnviz neurons`) and tests call the same functions.
 *
 * Conventions (core/attention.ts): `query`/`key` are `[L, H, T, d]` as they enter q·kᵀ (after RoPE for rotary
 * models), the score is q·k·scale with scale = `scoreScale` or 1/√d, plus `positionBias` (T5) when present;
 * causal data masks keys j > i.
 */
import { type Attention, attentionLogit, type Tensor } from '../core/attention.js';

/** The expanded columns for query token i, one entry per key in `cols`. */
export interface NeuronColumns {
  /** The query token i. */
  query: number;
  /** Key token indices j, top to bottom. */
  keys: number[];
  /** True where the causal mask hides key j (j > i): no product, no dot. */
  masked: boolean[];
  /** q_i ⊙ k_j, d values each; null where masked. */
  products: (number[] | null)[];
  /** q_i · k_j / √d (× the data's scoreScale instead, when it has one); null where masked. */
  dots: (number | null)[];
  /** The data's attention weights a_ij (what the Softmax column draws). */
  softmax: number[];
  /** softmax of the dots over all unmasked keys of the row (the whole row, not only `cols`); null where masked. */
  computed: (number | null)[];
  /** max_j |computed − a_ij| over the whole row, and the limit accepted (storage precision). */
  maxDiff: number;
  tolerance: number;
}

/** Colour scales s in opacity = tanh(|v| / s) for one layer and head. */
export interface NeuronScales {
  vector: number;
  product: number;
  dot: number;
}

/** s = SCALE_RMS × RMS of a column's values (see headScales). */
export const SCALE_RMS = 3;
/** Relative error of a product of two float16-rounded values (2u, u = 2⁻¹¹): q/k travel as float16 in pages. */
const F16_PRODUCT = 2 ** -10;
/** Attention is stored in 12 bits (≤ 2.5e-4 off); 1e-3 is the accepted agreement, widened by the q/k bound. */
const ATTENTION_TOL = 1e-3;

/** q or k of token i in one layer and head: d values (a view into the tensor, not a copy). */
export function headVector(t: Tensor, layer: number, head: number, i: number): Float32Array {
  const [, H, T, d] = t.dims;
  const o = ((layer * H + head) * T + i) * d;
  return t.data.subarray(o, o + d);
}

/** Key j is hidden from query i in `layer` by the causal mask (j > i) or a sliding window (core attentionLogit). */
export const isMasked = (a: Attention, layer: number, i: number, j: number): boolean =>
  attentionLogit(a, layer, 0, i, j, 0) === -Infinity;

/** The factor q·k is multiplied by: the data's scoreScale (T5: 1), else 1/√d for the stored head size d. */
export const scoreScale = (a: Attention): number => a.scoreScale ?? 1 / Math.sqrt(a.query?.dims[3] ?? 1);

/** The score formula, e.g. "softmax(q · k / √d + position bias)", as the view and the CLI print it. */
export function scoreFormula(a: Attention): string {
  const s = a.scoreScale;
  const scaled = s === undefined ? 'q · k / √d' : s === 1 ? 'q · k' : `q · k × ${s.toPrecision(4)}`;
  const capped =
    a.attnLogitSoftcapping === undefined
      ? scaled
      : `${a.attnLogitSoftcapping}·tanh(${scaled} / ${a.attnLogitSoftcapping})`;
  const bias = a.positionBias || a.layerPositionBias ? ' + position bias' : '';
  return `softmax(${capped}${bias}${a.layerWindows?.some((w) => w) ? ', sliding window' : ''})`;
}

/** The position bias added to score (i, j), 0 without one. */
export function positionBias(a: Attention, head: number, i: number, j: number): number {
  const b = a.positionBias;
  if (!b) return 0;
  const [, T, K] = b.dims;
  return b.data[(head * T + i) * K + j];
}

/**
 * How many leading head dimensions carry values in `layer`: past them q and k are 0 for every head and token.
 * A model whose layers have different head sizes reports q/k zero-padded to the largest (the embedded USE
 * lite model: 64 in layer 0, 128 in layer 1; models/tfjs-model.ts); the view draws only these dimensions.
 */
export function headSize(a: Attention, layer: number): number {
  const q = a.query,
    k = a.key;
  if (!q || !k) return 0;
  let size = 0;
  for (const t of [q, k]) {
    const [, H, T, d] = t.dims;
    const layerData = t.data.subarray(layer * H * T * d, (layer + 1) * H * T * d);
    for (let o = 0; o < layerData.length; o += d)
      for (let n = d - 1; n >= size; n--)
        if (layerData[o + n] !== 0) {
          size = n + 1;
          break;
        }
  }
  return Math.max(size, 1);
}

/**
 * The scores of query row i over all keys: z_j = q_i·k_j·scale, p = softmax(z + bias) over unmasked j (the
 * model's own softmax, whatever a view shows), and the largest float16 error of any z_j: a product of two
 * f16-rounded values is off by ≤ 2⁻¹⁰ relative, so |Δz_j| ≤ 2⁻¹⁰ Σ_n |q_n k_n| · scale.
 */
export function scoreRow(
  a: Attention,
  layer: number,
  head: number,
  i: number,
): { z: Float64Array; p: Float64Array; zError: number } {
  const K = (a.keyTokens ?? a.tokens).length;
  const q = headVector(a.query!, layer, head, i);
  const d = q.length,
    scale = scoreScale(a);
  const z = new Float64Array(K).fill(-Infinity),
    logit = new Float64Array(K),
    p = new Float64Array(K);
  let max = -Infinity,
    zError = 0;
  for (let j = 0; j < K; j++) {
    if (isMasked(a, layer, i, j)) continue;
    const k = headVector(a.key!, layer, head, j);
    let s = 0,
      abs = 0;
    for (let n = 0; n < d; n++) {
      const x = q[n] * k[n];
      s += x;
      abs += Math.abs(x);
    }
    z[j] = s * scale;
    zError = Math.max(zError, F16_PRODUCT * abs * scale + 1e-6);
    logit[j] = attentionLogit(a, layer, head, i, j, s);
    max = Math.max(max, logit[j]);
  }
  let sum = 0;
  for (let j = 0; j < K; j++) if (z[j] > -Infinity) sum += p[j] = Math.exp(logit[j] - max);
  for (let j = 0; j < K; j++) p[j] /= sum;
  return { z, p, zError };
}

/** The data's attention row a_i· of one layer and head (a view into the tensor). */
export function attentionRow(a: Attention, layer: number, head: number, i: number): Float32Array {
  const [, H, T, K] = a.attention.dims;
  const o = ((layer * H + head) * T + i) * K;
  return a.attention.data.subarray(o, o + K);
}

/**
 * The five columns for query token i over the keys `cols`, and the consistency check over the whole row.
 * `size` keeps the first `size` head dimensions of the products (headSize: the rest is padding).
 */
export function neuronColumns(
  a: Attention,
  layer: number,
  head: number,
  i: number,
  cols: readonly number[],
  size = a.query!.dims[3],
): NeuronColumns {
  const K = a.attention.dims[3];
  const { z, p, zError } = scoreRow(a, layer, head, i);
  const row = attentionRow(a, layer, head, i);
  // softmax moves by dp_j = p_j (Δz_j − Σ p_k Δz_k), so |dp_j| ≤ 2 p_j max|Δz|.
  let maxDiff = 0,
    pMax = 0;
  for (let j = 0; j < K; j++) {
    maxDiff = Math.max(maxDiff, Math.abs(p[j] - row[j]));
    pMax = Math.max(pMax, p[j]);
  }
  const q = headVector(a.query!, layer, head, i);
  const masked = cols.map((j) => isMasked(a, layer, i, j));
  return {
    query: i,
    keys: [...cols],
    masked,
    products: cols.map((j, c) => {
      if (masked[c]) return null;
      const k = headVector(a.key!, layer, head, j);
      return Array.from({ length: size }, (_, n) => q[n] * k[n]);
    }),
    dots: cols.map((j, c) => (masked[c] ? null : z[j])),
    softmax: cols.map((j) => row[j]),
    computed: cols.map((j, c) => (masked[c] ? null : p[j])),
    maxDiff,
    tolerance: ATTENTION_TOL + 2 * pMax * zError,
  };
}

/**
 * Colour scales for one head: s = 3 × RMS of q and k (together, over the first `size` dimensions), of the
 * products q_i ⊙ k_j and of the scores q_i·k_j·scale over the unmasked pairs. Computed without visiting the
 * T × K pairs: Σ_ij Σ_n q_in² k_jn² = Σ_n Σ_i q_in² S_in and Σ_ij (q_i·k_j)² = Σ_i q_iᵀ M_i q_i, where
 * S_in = Σ_j k_jn² and M_i = Σ_j k_j k_jᵀ run over the keys query i sees (all, or j ≤ i: prefix sums).
 * O((T + K) d²).
 */
export function headScales(a: Attention, layer: number, head: number, size = a.query!.dims[3]): NeuronScales {
  // T queries, K keys (K = T but for cross-attention).
  const T = a.tokens.length,
    K = (a.keyTokens ?? a.tokens).length;
  const q = (i: number) => headVector(a.query!, layer, head, i),
    k = (j: number) => headVector(a.key!, layer, head, j);
  const d = size,
    scale = scoreScale(a);
  const S = new Float64Array(d),
    M = new Float64Array(d * d);
  let vec = 0,
    prod = 0,
    dot = 0,
    pairs = 0,
    seen = 0;
  const addKey = (j: number) => {
    const kj = k(j);
    for (let n = 0; n < d; n++) {
      vec += kj[n] * kj[n];
      S[n] += kj[n] * kj[n];
      for (let m = 0; m < d; m++) M[n * d + m] += kj[n] * kj[m];
    }
    seen++;
  };
  if (!a.causal) for (let j = 0; j < K; j++) addKey(j);
  for (let i = 0; i < T; i++) {
    if (a.causal) while (seen <= i && seen < K) addKey(seen);
    const qi = q(i);
    for (let n = 0; n < d; n++) {
      vec += qi[n] * qi[n];
      prod += qi[n] * qi[n] * S[n];
      let row = 0;
      for (let m = 0; m < d; m++) row += M[n * d + m] * qi[m];
      dot += qi[n] * row;
    }
    pairs += seen;
  }
  for (; seen < K; seen++) {
    const kj = k(seen);
    for (let n = 0; n < d; n++) vec += kj[n] * kj[n];
  }
  const s = (sumSq: number, n: number) => Math.max(1e-6, SCALE_RMS * Math.sqrt(Math.max(0, sumSq) / Math.max(1, n)));
  return { vector: s(vec, (T + K) * d), product: s(prod, pairs * d), dot: s(dot * scale * scale, pairs) };
}
