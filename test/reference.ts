/**
 * The float64 reference forward pass every family test computes by hand: the pieces of transformers'
 * modeling_*.py written out over rows of float64, sharing no code with src/graph (tiny-models.ts,
 * tiny-decoders.ts, tiny-seq2seq.ts and the decoders, encoders, GPT-NeoX tests build their models from
 * these). A second reading of the same modeling files, not an independent reference: it catches wiring
 * mistakes in a graph (a missed bias, a residual in the wrong place, a wrong qkv layout), not a misreading
 * shared by both.
 */
import type { Attention } from '../src/core/attention.js';

/** Rows of a `[T, n]` activation. */
export type Rows = Float64Array[];

export function gather(table: Float32Array, width: number, ids: readonly number[]): Rows {
  return ids.map((id) => Float64Array.from(table.subarray(id * width, (id + 1) * width)));
}

export function addRows(...xs: Rows[]): Rows {
  return xs[0].map((row, t) => row.map((v, j) => xs.slice(1).reduce((s, x) => s + x[t][j], v)));
}

export const mulRows = (a: Rows, b: Rows): Rows => a.map((row, t) => row.map((v, j) => v * b[t][j]));
export const scaleRows = (x: Rows, s: number): Rows => x.map((row) => row.map((v) => v * s));
/** Columns [from, to) of every row. */
export const columns = (x: Rows, from: number, to: number): Rows => x.map((row) => row.slice(from, to));

/** x·Wᵀ + b with W `[out, in]`. */
export function linear(x: Rows, w: Float32Array, b: Float32Array | null, nOut: number): Rows {
  return x.map((row) => {
    const y = new Float64Array(nOut);
    for (let o = 0; o < nOut; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < row.length; i++) s += w[o * row.length + i] * row[i];
      y[o] = s;
    }
    return y;
  });
}

export function layerNorm(x: Rows, g: Float32Array, b: Float32Array, eps: number): Rows {
  return x.map((row) => {
    const mean = row.reduce((a, v) => a + v, 0) / row.length;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / row.length;
    return row.map((v, j) => ((v - mean) / Math.sqrt(variance + eps)) * g[j] + b[j]);
  });
}

/** RMSNorm: x / √(mean(x²) + eps) · w, or · (1 + w) for Gemma's offsets from 1 (`onePlus`). */
export function rmsNorm(x: Rows, w: Float32Array, eps: number, onePlus = false): Rows {
  return x.map((row) => {
    const inv = 1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / row.length + eps);
    return row.map((v, j) => v * inv * (onePlus ? 1 + w[j] : w[j]));
  });
}

/** erf to ~1e-7 relative (Numerical Recipes' erfc, Chebyshev fit): plenty for a 1e-4 comparison. */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const silu = (v: number) => v / (1 + Math.exp(-v));
/** The activations by their config names (gelu_tanh: gelu_pytorch_tanh, the same function as gelu_new). */
const ACTIVATIONS: Record<string, (v: number) => number> = {
  gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  gelu_new: geluTanh,
  gelu_tanh: geluTanh,
  relu: (v) => Math.max(0, v),
  silu,
  swish: silu,
};

export function activation(x: Rows, name: string): Rows {
  const f = ACTIVATIONS[name];
  if (!f) throw new Error(`reference: no activation ${name}`);
  return x.map((row) => row.map(f));
}

/** `[T, H·d]` → per head `[H][T]` vectors of d. */
export function splitHeads(x: Rows, heads: number, d: number): Rows[] {
  return Array.from({ length: heads }, (_, h) => x.map((row) => row.slice(h * d, (h + 1) * d)));
}

/** softmax over one row of scores; a −∞ score (masked) gets exactly 0. */
export function softmaxRow(scores: ArrayLike<number>): Float64Array {
  const max = Math.max(...Array.from(scores));
  const e = Float64Array.from(scores, (s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/** Per head Σ_j probs[h][i][j] · v[h][j], the heads merged back to `[T, H·d]` (head h in columns h·d …). */
export function mergeHeads(probs: Rows[], v: Rows[]): Rows {
  const H = probs.length,
    d = v[0][0].length;
  return probs[0].map((_, i) => {
    const row = new Float64Array(H * d);
    for (let h = 0; h < H; h++)
      for (let j = 0; j < v[h].length; j++) for (let c = 0; c < d; c++) row[h * d + c] += probs[h][i][j] * v[h][j][c];
    return row;
  });
}

/** The score of query i and key j in head h from their scaled dot product s: a bias added, or −∞ (masked). */
export type Logit = (s: number, h: number, i: number, j: number) => number;
/** The causal mask: key j after query i is −∞. */
export const causal: Logit = (s, _h, i, j) => (j > i ? -Infinity : s);

/**
 * softmax(logit(q·kᵀ·scale))·v per head, for any numbers of query and key rows (logit: the scores as they are by
 * default); the context merged to `[T, H·d]`.
 */
export function attend(
  q: Rows[],
  k: Rows[],
  v: Rows[],
  scale: number,
  logit: Logit = (s) => s,
): { probs: Rows[]; context: Rows } {
  const probs = q.map((qh, h) =>
    qh.map((qi, i) =>
      softmaxRow(k[h].map((kj, j) => logit(qi.reduce((a, x, c) => a + x * kj[c], 0) * scale, h, i, j))),
    ),
  );
  return { probs, context: mergeHeads(probs, v) };
}

/**
 * HF rotate_half RoPE on the first `dims` of each head vector, θ_j = theta^(−2j/dims) (divided by `factor`, linear
 * rope_scaling); the position of row t is t.
 */
export function rope(x: Rows[], dims: number, theta: number, factor = 1): Rows[] {
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

/** The score of query i and key j in layer l, head h of an Attention, from the dot product of its own q and k. */
export type AttentionLogit = (l: number, h: number, i: number, j: number, dot: number) => number;

/**
 * The largest |softmax(scores) − attention| over every row of `a`, the scores `logit(q·k)` from its own q and k
 * (by default q·k/√d, −∞ after the query in a causal model): whether they are what made the attention.
 */
export function softmaxError(a: Attention, logit?: AttentionLogit): number {
  const [L, H, T, d] = a.query!.dims;
  const q = a.query!.data,
    k = a.key!.data,
    p = a.attention.data;
  const score = logit ?? ((_l, _h, i, j, dot) => (a.causal && j > i ? -Infinity : dot / Math.sqrt(d)));
  let worst = 0;
  for (let l = 0; l < L; l++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < T; i++) {
        const row = (l * H + h) * T + i;
        const expected = softmaxRow(
          Array.from({ length: T }, (_, j) => {
            let dot = 0;
            for (let c = 0; c < d; c++) dot += q[row * d + c] * k[((l * H + h) * T + j) * d + c];
            return score(l, h, i, j, dot);
          }),
        );
        for (let j = 0; j < T; j++) worst = Math.max(worst, Math.abs(expected[j] - p[row * T + j]));
      }
  return worst;
}
