/**
 * Neuron contributions (Vig 2019's "linking neurons to model behaviour", as numbers): which head dimensions
 * make a score, and which make a query's whole attention pattern.
 *
 * One key j: the score is ℓ_ij = scale · Σ_n q_in k_jn + b_ij (b: a position bias, T5). Each dimension n adds the
 * term t_n = q_in k_jn; the terms are listed by |t_n|, each with its share t_n / Σ_m t_m of q·k (shares sum
 * to 1, and are above 1 or negative where terms cancel), and the top dimensions are the fewest whose |t_n| make
 * TOP_MASS of Σ|t_n|.
 *
 * The whole row (every unmasked key): softmax ignores what all keys share, so a dimension drives the pattern
 * by how its term varies across keys. With c_nj = scale · q_in k_jn and ℓ_j = Σ_n c_nj + b_j, the variance of
 * the scores over the keys splits exactly into Var(ℓ) = Σ_n Cov(c_n, ℓ) + Cov(b, ℓ): a dimension's share is
 * Cov(c_n, ℓ) / Var(ℓ) (keys weighted equally; shares sum to 1, a negative share works against the pattern).
 * A positional head whose pattern comes from a few dimensions shows those few with most of the share.
 */
import { type Attention, attentionLogit } from '../core/attention.js';
import { attentionRow, headSize, headVector, isMasked, positionBias, scoreScale } from './neuron.js';

/** The top dimensions are the fewest whose |terms| (or shares) add up to this fraction… */
export const TOP_MASS = 0.8;
/** …and at most this many. */
export const TOP_MAX = 8;

export interface Term {
  /** Head dimension n. */
  dim: number;
  q: number;
  k: number;
  /** t_n = q_n k_n. */
  product: number;
  /** t_n / q·k: the share of q·k (0 when q·k = 0). */
  share: number;
}

/** The score of one (query, key) pair by dimension. */
export interface KeyContributions {
  layer: number;
  head: number;
  query: number;
  key: number;
  /** Head dimensions the terms cover (headSize: past it q and k are padding). */
  size: number;
  /** True when the causal mask hides the key: no score (terms still listed). */
  masked: boolean;
  /** q · k. */
  dot: number;
  /** The factor q · k is multiplied by (1/√d, or the data's scoreScale). */
  scale: number;
  /** The position bias added to the score; null when the data has none. */
  positionBias: number | null;
  /** The score before softmax: dot · scale + position bias (null when masked). */
  score: number | null;
  /** The data's attention weight a_ij. */
  attention: number;
  /** All `size` terms, by |product|, largest first. */
  terms: Term[];
  /** The top dimensions (see TOP_MASS), in the order of `terms`. */
  top: number[];
}

export interface DimensionShare {
  /** A head dimension, or the position bias ('position bias'). */
  dim: number | 'position bias';
  /** Cov(c_n, ℓ) / Var(ℓ) over the unmasked keys (shares sum to 1). */
  share: number;
  /** Mean and standard deviation of the term c_nj = scale · q_n k_jn over the keys. */
  mean: number;
  std: number;
}

/** What drives query i's attention pattern over all unmasked keys. */
export interface RowContributions {
  layer: number;
  head: number;
  query: number;
  size: number;
  /** The unmasked keys the statistics run over. */
  keys: number;
  /** Variance of the scores ℓ_j over those keys; 0 (no pattern, shares all 0) with one key or equal scores. */
  variance: number;
  /** Every dimension (and the position bias, when present), by share, largest first. */
  dims: DimensionShare[];
  /** The fewest head dimensions whose shares add up to TOP_MASS (at most TOP_MAX), in the order of `dims`. */
  top: number[];
}

/** Contributions of each dimension to the score of query i on key j. */
export function keyContributions(
  a: Attention,
  layer: number,
  head: number,
  i: number,
  j: number,
  size = headSize(a, layer),
): KeyContributions {
  const q = headVector(a.query!, layer, head, i),
    k = headVector(a.key!, layer, head, j);
  let dot = 0;
  for (let n = 0; n < size; n++) dot += q[n] * k[n];
  const terms: Term[] = Array.from({ length: size }, (_, n) => {
    const product = q[n] * k[n];
    return { dim: n, q: q[n], k: k[n], product, share: dot === 0 ? 0 : product / dot };
  }).sort((x, y) => Math.abs(y.product) - Math.abs(x.product) || x.dim - y.dim);
  const masked = isMasked(a, layer, i, j);
  const scale = scoreScale(a);
  const bias = a.positionBias ? positionBias(a, head, i, j) : null;
  return {
    layer,
    head,
    query: i,
    key: j,
    size,
    masked,
    dot,
    scale,
    positionBias: bias,
    score: masked ? null : attentionLogit(a, layer, head, i, j, dot),
    attention: attentionRow(a, layer, head, i)[j],
    terms,
    top: topOf(
      terms.map((t) => t.dim),
      terms.map((t) => Math.abs(t.product)),
    ),
  };
}

/** Which dimensions make query i's scores differ across its unmasked keys (see the header). */
export function rowContributions(
  a: Attention,
  layer: number,
  head: number,
  i: number,
  size = headSize(a, layer),
): RowContributions {
  const K = (a.keyTokens ?? a.tokens).length;
  const keys = Array.from({ length: K }, (_, j) => j).filter((j) => !isMasked(a, layer, i, j));
  const n = keys.length,
    scale = scoreScale(a);
  const q = headVector(a.query!, layer, head, i);
  // c[m][j]: dimension m's term for key j (m = size: the position bias).
  const rows = size + (a.positionBias ? 1 : 0);
  const c = Array.from({ length: rows }, () => new Float64Array(n));
  const score = new Float64Array(n);
  keys.forEach((j, x) => {
    const k = headVector(a.key!, layer, head, j);
    for (let m = 0; m < size; m++) score[x] += c[m][x] = scale * q[m] * k[m];
    if (a.positionBias) score[x] += c[size][x] = positionBias(a, head, i, j);
  });
  const mean = (v: Float64Array) => v.reduce((s, x) => s + x, 0) / Math.max(1, n);
  const scoreMean = mean(score);
  let variance = 0;
  for (const s of score) variance += (s - scoreMean) ** 2;
  variance /= Math.max(1, n);
  // Below this the scores are equal up to rounding: no pattern to explain.
  const flat = variance <= 1e-12 * Math.max(1, scoreMean * scoreMean);
  const dims: DimensionShare[] = c.map((terms, m) => {
    const mu = mean(terms);
    let cov = 0,
      sq = 0;
    for (let x = 0; x < n; x++) {
      cov += (terms[x] - mu) * (score[x] - scoreMean);
      sq += (terms[x] - mu) ** 2;
    }
    return {
      dim: m < size ? m : 'position bias',
      share: flat ? 0 : cov / n / variance,
      mean: mu,
      std: Math.sqrt(sq / Math.max(1, n)),
    };
  });
  dims.sort((x, y) => y.share - x.share || order(x.dim) - order(y.dim));
  const heads = dims.filter((d): d is DimensionShare & { dim: number } => typeof d.dim === 'number');
  return {
    layer,
    head,
    query: i,
    size,
    keys: n,
    variance: flat ? 0 : variance,
    dims,
    top: flat
      ? []
      : topOf(
          heads.map((d) => d.dim),
          heads.map((d) => Math.max(0, d.share)),
        ),
  };
}

const order = (dim: number | 'position bias') => (typeof dim === 'number' ? dim : Infinity);

/** The first of `dims` (sorted by `weights`, largest first) whose weights reach TOP_MASS of the total. */
function topOf(dims: number[], weights: number[]): number[] {
  const total = weights.reduce((s, w) => s + w, 0);
  const top: number[] = [];
  let sum = 0;
  for (let x = 0; x < dims.length && top.length < TOP_MAX && total > 0 && sum < TOP_MASS * total; x++) {
    if (weights[x] <= 0) break;
    top.push(dims[x]);
    sum += weights[x];
  }
  return top;
}
