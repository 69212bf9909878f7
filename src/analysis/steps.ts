/**
 * Generation step by step. In a causal model a row of the attention depends only on the tokens up to it, so
 * the attention over the final sequence already holds every step: generated token n (0-based; position
 * p = promptLength + n) was predicted by the output at position p − 1, and row p − 1 over keys 0…p − 1 is the
 * attention of that position when the token was produced, before any later token existed.
 */
import type { Attention, Tensor } from '../core/attention.js';
import { check } from '../core/errors.js';

/** The query position whose output chose generated token `step`. */
export const stepQuery = (promptLength: number, step: number) => promptLength + step - 1;

/** Attention `[L, H, p]` of the position that produced generated token `step` over its context 0…p − 1. */
export function stepAttention(a: Attention, promptLength: number, step: number): Tensor {
  check(a.causal, 'step-by-step attention needs a causal model');
  const [L, H, T, K] = a.attention.dims;
  const q = stepQuery(promptLength, step);
  check(
    Number.isInteger(step) && step >= 0 && promptLength >= 1 && promptLength + step < T,
    `step ${step} is out of range: ${T - promptLength} tokens were generated`,
  );
  const n = q + 1;
  const out = new Float32Array(L * H * n);
  for (let lh = 0; lh < L * H; lh++) out.set(a.attention.data.subarray((lh * T + q) * K, (lh * T + q) * K + n), lh * n);
  return { dims: [L, H, n], data: out };
}
