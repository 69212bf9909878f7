/**
 * Next-token choice from logits, as llama2.c's sampler: temperature 0 takes the argmax (the first on ties);
 * otherwise softmax(logits / temperature), then nucleus (top-p) sampling when 0 < topP < 1, else sampling
 * from the whole distribution. The random numbers come from llama2.c's xorshift64* generator seeded with
 * `seed`, so one seed always gives the same text.
 */
import { check } from '../core/errors.js';

export interface SamplerOptions {
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus probability mass, in (0, 1]; 1 samples from the whole distribution. */
  topP: number;
  /** Any non-negative integer. */
  seed: number;
}

export class Sampler {
  private state: bigint;

  constructor(readonly options: SamplerOptions) {
    const { temperature, topP, seed } = options;
    check(Number.isFinite(temperature) && temperature >= 0, `temperature must be a number ≥ 0, not ${temperature}`);
    check(Number.isFinite(topP) && topP > 0 && topP <= 1, `top-p must be in (0, 1], not ${topP}`);
    check(Number.isSafeInteger(seed) && seed >= 0, `seed must be a non-negative integer, not ${seed}`);
    // xorshift64* has a fixed point at 0.
    this.state = BigInt(seed) === 0n ? 0x9e3779b97f4a7c15n : BigInt(seed);
  }

  /** The next token id for one row of logits. */
  sample(logits: ArrayLike<number>): number {
    if (this.options.temperature === 0) return argmax(logits);
    const probs = softmax(logits, this.options.temperature);
    const coin = this.random();
    return this.options.topP < 1 ? sampleTopP(probs, this.options.topP, coin) : sampleMultinomial(probs, coin);
  }

  /** A float in [0, 1) from xorshift64* (llama2.c random_f32). */
  private random(): number {
    const mask = 0xffffffffffffffffn;
    let s = this.state;
    s ^= s >> 12n;
    s ^= (s << 25n) & mask;
    s ^= s >> 27n;
    this.state = s;
    const u32 = Number(((s * 0x2545f4914f6cdd1dn) & mask) >> 32n);
    return (u32 >>> 8) / 16777216;
  }
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** softmax(logits / temperature) in float64. */
export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const p = Float64Array.from(logits, (v) => v / temperature);
  let max = -Infinity;
  for (const v of p) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += p[i] = Math.exp(p[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** The k most likely ids of a distribution with their probabilities, most likely first (ties: lower id). */
export function topK(probs: Float64Array, k: number): { id: number; probability: number }[] {
  const best: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    if (best.length === k && probs[i] <= probs[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && probs[best[at - 1]] < probs[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best.map((id) => ({ id, probability: probs[id] }));
}

function sampleMultinomial(probs: Float64Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) {
    cdf += probs[i];
    if (coin < cdf) return i;
  }
  return probs.length - 1; // rounding
}

/**
 * Nucleus sampling: the smallest set of most likely tokens whose probability exceeds topP, sampled in
 * proportion. Tokens below (1 − topP)/(n − 1) cannot be in it and are skipped before sorting (llama2.c);
 * equal probabilities keep id order, so the result does not depend on the sort's stability.
 */
function sampleTopP(probs: Float64Array, topP: number, coin: number): number {
  const cutoff = (1 - topP) / (probs.length - 1);
  const candidates: number[] = [];
  for (let i = 0; i < probs.length; i++) if (probs[i] >= cutoff) candidates.push(i);
  candidates.sort((a, b) => probs[b] - probs[a] || a - b);
  let cumulative = 0,
    last = candidates.length - 1;
  for (let i = 0; i < candidates.length; i++) {
    cumulative += probs[candidates[i]];
    if (cumulative > topP) {
      last = i;
      break;
    }
  }
  const r = coin * cumulative;
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf += probs[candidates[i]];
    if (r < cdf) return candidates[i];
  }
  return candidates[last];
}
