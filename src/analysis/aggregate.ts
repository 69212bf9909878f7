/**
 * Aggregates over heads and layers, as pseudo-layers: each returns an Attention `[L, 1, T, K]` whose layer l is
 * one matrix computed from the model's layer l (mean or max over heads) or from layers 0…l (rollout). Every
 * view draws it as a one-head model; q and k are dropped, since no single query or key produced it.
 *
 *   mean:    M_l = (1/H) Σ_h A_{l,h}                                  (rows still sum to 1)
 *   max:     X_l[i, j] = max_h A_{l,h}[i, j]                           (rows no longer sum to 1)
 *   rollout: Â_l = rownorm(0.5·M_l + 0.5·I),  R_0 = Â_0,  R_l = Â_l · R_{l−1}
 *
 * Rollout is Abnar & Zuidema 2020 (`compute_joint_attention`): the identity stands for the residual
 * connection, R_l[i, j] is how much of input token j reaches position i after layer l. It needs
 * self-attention (T = K). Sums run in float64.
 */
import type { Attention, Tensor } from '../core/attention.js';
import { check } from '../core/errors.js';

export const AGGREGATES = ['mean', 'max', 'rollout'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

export const AGGREGATE_LABELS: Record<Aggregate, string> = {
  mean: 'mean over heads',
  max: 'max over heads',
  rollout: 'rollout',
};

/** `[L, H, T, K]` → `[L, 1, T, K]`, the heads combined by `combine` (applied to a float64 accumulator). */
function overHeads(
  t: Tensor,
  start: number,
  combine: (acc: number, v: number) => number,
  finish: (acc: number) => number,
): Tensor {
  const [L, H, T, K] = t.dims;
  const cell = T * K;
  const out = new Float32Array(L * cell);
  const acc = new Float64Array(cell);
  for (let l = 0; l < L; l++) {
    acc.fill(start);
    for (let h = 0; h < H; h++) {
      const base = (l * H + h) * cell;
      for (let c = 0; c < cell; c++) acc[c] = combine(acc[c], t.data[base + c]);
    }
    for (let c = 0; c < cell; c++) out[l * cell + c] = finish(acc[c]);
  }
  return { dims: [L, 1, T, K], data: out };
}

export function meanHeads(t: Tensor): Tensor {
  const H = t.dims[1];
  return overHeads(
    t,
    0,
    (a, v) => a + v,
    (a) => a / H,
  );
}

export function maxHeads(t: Tensor): Tensor {
  return overHeads(t, -Infinity, Math.max, (a) => a);
}

/** Attention rollout `[L, 1, T, T]`: layer l holds R_l, the rollout through layers 0…l. */
export function rollout(t: Tensor): Tensor {
  const [L, , T, K] = t.dims;
  check(T === K, `rollout needs self-attention (as many keys as queries), not ${T} queries × ${K} keys`);
  const mean = meanHeads(t).data;
  const cell = T * T;
  const out = new Float32Array(L * cell);
  let previous: Float64Array | null = null;
  const hat = new Float64Array(cell);
  for (let l = 0; l < L; l++) {
    for (let i = 0; i < T; i++) {
      let sum = 0;
      for (let j = 0; j < T; j++) sum += hat[i * T + j] = 0.5 * mean[l * cell + i * T + j] + (i === j ? 0.5 : 0);
      for (let j = 0; j < T; j++) hat[i * T + j] = sum > 0 ? hat[i * T + j] / sum : 0;
    }
    const r: Float64Array = previous ? matmul(hat, previous, T) : Float64Array.from(hat);
    for (let c = 0; c < cell; c++) out[l * cell + c] = r[c];
    previous = r;
  }
  return { dims: [L, 1, T, T], data: out };
}

/** a · b for T × T row-major matrices. */
function matmul(a: Float64Array, b: Float64Array, T: number): Float64Array {
  const out = new Float64Array(T * T);
  for (let i = 0; i < T; i++)
    for (let k = 0; k < T; k++) {
      const x = a[i * T + k];
      if (x === 0) continue;
      for (let j = 0; j < T; j++) out[i * T + j] += x * b[k * T + j];
    }
  return out;
}

/** The Attention with its layers replaced by the aggregate (one pseudo-head per layer); q/k dropped. */
export function aggregate(a: Attention, kind: Aggregate): Attention {
  const { query: _q, key: _k, kvHeads: _kv, rotary: _r, positionBias: _p, encoderDecoder: _ed, ...rest } = a;
  const attention =
    kind === 'mean' ? meanHeads(a.attention) : kind === 'max' ? maxHeads(a.attention) : rollout(a.attention);
  return { ...rest, attention };
}

/** Parses a user's aggregate name (CLI flag, URL), naming the choices when it is unknown. */
export function parseAggregate(name: string): Aggregate {
  check(
    (AGGREGATES as readonly string[]).includes(name),
    `unknown aggregate "${name}" (one of ${AGGREGATES.join(', ')})`,
  );
  return name as Aggregate;
}
