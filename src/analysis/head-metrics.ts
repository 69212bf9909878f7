/**
 * Head finder metrics (Vig 2019 §4.2, "locating relevant heads"): one number per layer × head for one text,
 * each the mean over query rows i of a quantity of row i's attention p_i·. A row takes part only where the
 * quantity is defined (e.g. the previous token from row 1 on); a metric with no such row in a text is NaN for
 * that text. n_i is the number of keys row i may attend to: i + 1 in a causal model, else all K. Rows with
 * n_i = 1 (a causal model's first token, which can only attend to itself) are left out of every metric.
 *
 * - entropy       −Σ_j p_ij ln p_ij / ln n_i            1 = uniform over the row's keys, 0 = one key
 * - first         p_i0                                  attention to the first token (a sink)
 * - special       Σ_{j special} p_ij                    [CLS], [SEP], <s>, … (texts with some)
 * - previous      p_i,i−1
 * - self          p_ii                                  the diagonal
 * - next          p_i,i+1                               (not defined in causal models)
 * - distance      Σ_j p_ij |i − j|                      mean attention distance, in tokens
 * - punctuation   Σ_{j punctuation} p_ij                (rows with a punctuation key in reach)
 * - same          Σ_{j ≠ i, token j = token i} p_ij     the same word elsewhere (case-insensitive)
 * - induction     Σ_{j : token j−1 = token i, j < i} p_ij   the token after an earlier occurrence
 * - patterns      Σ_{j ≠ i, token j ~ /to/} p_ij  over rows whose token ~ /from/ (user-defined)
 *
 * Tokens are matched on their display text (core/tokens.ts prettifyToken, trimmed).
 */
import type { Attention } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { prettifyToken, specialMask } from '../core/tokens.js';

export const BUILTIN_METRICS = [
  'entropy',
  'first',
  'special',
  'previous',
  'self',
  'next',
  'distance',
  'punctuation',
  'same',
  'induction',
] as const;

export const METRIC_DESCRIPTIONS: Record<(typeof BUILTIN_METRICS)[number], string> = {
  entropy: 'normalised entropy of each row (1 = uniform, 0 = one key)',
  first: 'attention to the first token',
  special: 'attention to special tokens ([CLS], [SEP], <s>, …)',
  previous: 'attention to the previous token',
  self: 'attention to the token itself (diagonal)',
  next: 'attention to the next token',
  distance: 'mean attention distance, in tokens',
  punctuation: 'attention to punctuation tokens',
  same: 'attention to the same word elsewhere',
  induction: 'attention to the token after an earlier occurrence of the current token',
};

/** A user pattern: from query tokens matching `from` to key tokens matching `to`. */
export interface TokenPattern {
  name: string;
  from: RegExp;
  to: RegExp;
}

/**
 * Parses "/from/flags -> /to/flags" (flags optional; a bare word is a case-sensitive regular expression too),
 * e.g. `/^(he|she)$/i -> /^[A-Z]/`. Bad syntax or an invalid regular expression is an AttnvizError.
 */
export function parsePattern(spec: string): TokenPattern {
  const parts = spec.split(/\s*->\s*/);
  check(parts.length === 2, `pattern "${spec}" must be "/from/ -> /to/"`);
  const [from, to] = parts.map((p) => regex(p.trim(), spec));
  return { name: spec.trim(), from, to };
}

function regex(text: string, spec: string): RegExp {
  const m = /^\/(.*)\/([a-z]*)$/s.exec(text);
  try {
    return m ? new RegExp(m[1], m[2].replace(/[gy]/g, '')) : new RegExp(text);
  } catch (e) {
    throw new AttnvizError(`pattern "${spec}": invalid regular expression ${text} (${(e as Error).message})`);
  }
}

/** Token text as matched: the display text, trimmed (Ġthe → the). */
export const tokenText = (t: string) => prettifyToken(t).trim();
const PUNCTUATION = /^[\p{P}\p{S}]+$/u;

/** Scores of one text: `values[m]` is `[layers × heads]` (NaN where metric m is not defined for the text). */
export interface HeadScores {
  metrics: string[];
  layers: number;
  heads: number;
  values: Float64Array[];
}

/** Every builtin metric and each pattern, per layer × head, for one Attention (self-attention only). */
export function headScores(a: Attention, patterns: readonly TokenPattern[] = []): HeadScores {
  const [L, H, T, K] = a.attention.dims;
  check(T === K && !a.keyTokens, 'the head finder needs self-attention (as many keys as queries)');
  const texts = a.tokens.map(tokenText);
  const lower = texts.map((t) => t.toLowerCase());
  const reach = (i: number) => (a.causal ? i + 1 : K);
  const rows = Array.from({ length: T }, (_, i) => i).filter((i) => reach(i) > 1);
  const keysWhere = (i: number, keep: (j: number) => boolean) => {
    const out: number[] = [];
    for (let j = 0; j < reach(i); j++) if (keep(j)) out.push(j);
    return out;
  };
  const special = specialMask(a.tokens, a.special);
  const punctuation = texts.map((t) => PUNCTUATION.test(t));

  // For each mass metric, the rows taking part and, per row, the keys whose weights it sums, flattened
  // (rows, offsets into keys): the loops over 144 heads then touch only typed arrays.
  interface KeySets {
    rows: Int32Array;
    offsets: Int32Array;
    keys: Int32Array;
  }
  const sets = (keys: (i: number) => number[] | null): KeySets => {
    const taking: number[] = [],
      offsets = [0],
      flat: number[] = [];
    for (const i of rows) {
      const k = keys(i);
      if (!k?.length) continue;
      taking.push(i);
      flat.push(...k);
      offsets.push(flat.length);
    }
    return { rows: Int32Array.from(taking), offsets: Int32Array.from(offsets), keys: Int32Array.from(flat) };
  };
  const mass: [string, KeySets][] = [
    ['first', sets(() => [0])],
    ['special', sets((i) => keysWhere(i, (j) => special[j]))],
    ['previous', sets((i) => (i >= 1 ? [i - 1] : null))],
    ['self', sets((i) => [i])],
    ['next', sets((i) => (!a.causal && i + 1 < K ? [i + 1] : null))],
    ['punctuation', sets((i) => keysWhere(i, (j) => punctuation[j]))],
    ['same', sets((i) => keysWhere(i, (j) => j !== i && lower[j] === lower[i]))],
    ['induction', sets((i) => keysWhere(i, (j) => j >= 1 && j < i && lower[j - 1] === lower[i]))],
    ...patterns.map((p): [string, KeySets] => [
      p.name,
      sets((i) => (p.from.test(texts[i]) ? keysWhere(i, (j) => j !== i && p.to.test(texts[j])) : null)),
    ]),
  ];

  const metrics = ['entropy', ...mass.slice(0, 5).map((m) => m[0]), 'distance', ...mass.slice(5).map((m) => m[0])];
  const values = metrics.map(() => new Float64Array(L * H).fill(Number.NaN));
  const slot = (name: string) => values[metrics.indexOf(name)];
  const entropySlot = slot('entropy'),
    distanceSlot = slot('distance');
  const massSlots = mass.map(([name]) => slot(name));
  const logReach = Float64Array.from(rows, (i) => Math.log(reach(i)));
  const p = a.attention.data;
  for (let lh = 0; lh < L * H; lh++) {
    const base = lh * T * K;
    if (rows.length) {
      let entropy = 0,
        distance = 0;
      for (let r = 0; r < rows.length; r++) {
        const i = rows[r],
          n = reach(i),
          at = base + i * K;
        let e = 0,
          d = 0;
        for (let j = 0; j < n; j++) {
          const w = p[at + j];
          if (w > 0) e -= w * Math.log(w);
          d += w * (i > j ? i - j : j - i);
        }
        entropy += e / logReach[r];
        distance += d;
      }
      entropySlot[lh] = entropy / rows.length;
      distanceSlot[lh] = distance / rows.length;
    }
    for (let m = 0; m < mass.length; m++) {
      const { rows: taking, offsets, keys } = mass[m][1];
      if (!taking.length) continue;
      let sum = 0;
      for (let r = 0; r < taking.length; r++) {
        const at = base + taking[r] * K;
        for (let o = offsets[r]; o < offsets[r + 1]; o++) sum += p[at + keys[o]];
      }
      massSlots[m][lh] = sum / taking.length;
    }
  }
  return { metrics, layers: L, heads: H, values };
}

/** One metric of one head over a corpus: mean and standard deviation over the texts where it is defined. */
export interface MetricSummary {
  mean: number;
  std: number;
  /** Texts where the metric is defined. */
  n: number;
  /** The highest per-text value and the index of its text (−1 when n = 0). */
  best: number;
  bestText: number;
}

/** Accumulates per-text HeadScores over a corpus (Welford's running mean and variance, in float64). */
export class CorpusScores {
  private summaries: MetricSummary[][] | null = null;
  private m2: Float64Array[] = [];
  private shape: { metrics: string[]; layers: number; heads: number } | null = null;

  add(textIndex: number, s: HeadScores): void {
    if (!this.shape) {
      this.shape = { metrics: s.metrics, layers: s.layers, heads: s.heads };
      this.summaries = s.values.map((v) =>
        Array.from(v, () => ({ mean: 0, std: 0, n: 0, best: Number.NEGATIVE_INFINITY, bestText: -1 })),
      );
      this.m2 = s.values.map((v) => new Float64Array(v.length));
    }
    check(
      s.layers === this.shape.layers && s.heads === this.shape.heads,
      'every text of a corpus must come from the same model',
    );
    s.values.forEach((v, m) => {
      v.forEach((x, lh) => {
        if (!Number.isFinite(x)) return;
        const t = this.summaries![m][lh];
        t.n++;
        const delta = x - t.mean;
        t.mean += delta / t.n;
        this.m2[m][lh] += delta * (x - t.mean);
        if (x > t.best) {
          t.best = x;
          t.bestText = textIndex;
        }
      });
    });
  }

  /** Per metric, per layer × head (index l · heads + h). Undefined metrics have n = 0 and NaN mean. */
  result(): { metrics: string[]; layers: number; heads: number; summary: MetricSummary[][] } {
    check(this.shape && this.summaries, 'no text was scored');
    const summary = this.summaries.map((row, m) =>
      row.map((t, lh) =>
        t.n === 0
          ? { mean: Number.NaN, std: Number.NaN, n: 0, best: Number.NaN, bestText: -1 }
          : { ...t, std: Math.sqrt(this.m2[m][lh] / t.n) },
      ),
    );
    return { ...this.shape, summary };
  }
}

export interface CorpusText {
  text: string;
  pair: string | null;
  /** "line N" or the file name, for messages. */
  where: string;
}

/** A corpus given as text (the CLI's file, the app's pasted or opened one): one text per line, blanks skipped. */
export const corpusLines = (text: string) => text.split(/\r?\n/).map((t, i) => ({ text: t, where: `line ${i + 1}` }));

/**
 * The texts of a corpus: blank ones dropped (none left is an error naming `name`); with `pair`, a tab splits
 * each into a sentence pair (a text without one is an error).
 */
export function corpusTexts(entries: { text: string; where: string }[], pair: boolean, name: string): CorpusText[] {
  const kept = entries.map((e) => ({ ...e, text: e.text.trim() })).filter((e) => e.text !== '');
  check(kept.length > 0, `${name}: the corpus is empty (no non-blank text)`);
  return kept.map(({ text, where }) => {
    if (!pair) return { text, pair: null, where };
    const tab = text.indexOf('\t');
    check(tab >= 0, `${name}: ${where} has no tab (a sentence pair needs "A<tab>B" on each line)`);
    return { text: text.slice(0, tab).trim(), pair: text.slice(tab + 1).trim(), where };
  });
}
