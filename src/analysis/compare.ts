/**
 * Compare two attentions (Vig 2019 §4.1, "detecting model bias"): two texts on one model, or one text on two
 * models that share a tokenizer. Both must have the same layers × heads.
 *
 * Alignment (for the difference A − B): tokens of equal-length inputs align position by position; otherwise
 * the longest common prefix and the longest common suffix of the token strings align (the differing middle of
 * each side is left out). With nothing in common the difference is refused.
 *
 * Question: "attention from token(s) X to token(s) Y" is, per layer × head, the mean over the rows of X of
 * the summed weights to the columns of Y, computed in each input with its own X and Y; heads are ranked by
 * |A − B|.
 */
import type { Attention, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { tokenText } from './head-metrics.js';

export interface Alignment {
  rule: 'same length' | 'common prefix and suffix';
  /** Aligned token indices: `a[n]` in A pairs with `b[n]` in B. */
  a: number[];
  b: number[];
  /** Display labels of the aligned tokens ("She | He" where the two differ). */
  labels: string[];
}

export function alignTokens(ta: readonly string[], tb: readonly string[]): Alignment {
  const label = (i: number, j: number) =>
    ta[i] === tb[j] ? tokenText(ta[i]) : `${tokenText(ta[i])} | ${tokenText(tb[j])}`;
  if (ta.length === tb.length) {
    const idx = ta.map((_, i) => i);
    return { rule: 'same length', a: idx, b: idx, labels: idx.map((i) => label(i, i)) };
  }
  const short = Math.min(ta.length, tb.length);
  let prefix = 0;
  while (prefix < short && ta[prefix] === tb[prefix]) prefix++;
  let suffix = 0;
  while (suffix < short - prefix && ta[ta.length - 1 - suffix] === tb[tb.length - 1 - suffix]) suffix++;
  check(
    prefix + suffix > 0,
    `the two tokenizations do not align (${ta.length} and ${tb.length} tokens with no common prefix or suffix): ` +
      'no difference',
  );
  const a = [...range(0, prefix), ...range(ta.length - suffix, ta.length)];
  const b = [...range(0, prefix), ...range(tb.length - suffix, tb.length)];
  return { rule: 'common prefix and suffix', a, b, labels: a.map((i, n) => label(i, b[n])) };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

function checkSameShape(a: Attention, b: Attention): void {
  const [La, Ha] = a.attention.dims,
    [Lb, Hb] = b.attention.dims;
  check(
    La === Lb && Ha === Hb,
    `the two attentions have different shapes (${La} × ${Ha} and ${Lb} × ${Hb} layers × heads): cannot compare`,
  );
  check(!a.keyTokens && !b.keyTokens, 'compare needs self-attention on both sides');
}

/** A − B on the aligned tokens: `[L, H, N, N]` for the N aligned tokens, in [−1, 1]. */
export function attentionDifference(a: Attention, b: Attention, alignment = alignTokens(a.tokens, b.tokens)): Tensor {
  checkSameShape(a, b);
  const [L, H, Ta] = a.attention.dims;
  const Tb = b.attention.dims[2];
  const N = alignment.a.length;
  const out = new Float32Array(L * H * N * N);
  for (let lh = 0; lh < L * H; lh++)
    for (let r = 0; r < N; r++)
      for (let c = 0; c < N; c++)
        out[(lh * N + r) * N + c] =
          a.attention.data[(lh * Ta + alignment.a[r]) * Ta + alignment.a[c]] -
          b.attention.data[(lh * Tb + alignment.b[r]) * Tb + alignment.b[c]];
  return { dims: [L, H, N, N], data: out };
}

/**
 * Token indices picked by `spec`: `/re/flags` (a regular expression on the token's display text), `#3` or
 * `#3,5` (indices), or a word (the display text, case-insensitive). No match is an AttnvizError.
 */
export function selectTokens(tokens: readonly string[], spec: string, side = ''): number[] {
  const s = spec.trim();
  let picked: number[];
  const where = side ? ` in ${side}` : '';
  if (/^#\d+(\s*,\s*\d+)*$/.test(s)) {
    picked = s.slice(1).split(',').map(Number);
    const bad = picked.find((i) => i >= tokens.length);
    check(bad === undefined, `token index ${bad} is out of range${where} (${tokens.length} tokens)`);
  } else {
    const m = /^\/(.*)\/([a-z]*)$/s.exec(s);
    let test: (t: string) => boolean;
    if (m) {
      let re: RegExp;
      try {
        re = new RegExp(m[1], m[2].replace(/[gy]/g, ''));
      } catch (e) {
        throw new AttnvizError(`invalid regular expression ${s} (${(e as Error).message})`);
      }
      test = (t) => re.test(t);
    } else test = (t) => t.toLowerCase() === s.toLowerCase();
    picked = tokens.flatMap((t, i) => (test(tokenText(t)) ? [i] : []));
  }
  check(picked.length > 0, `no token matches "${spec}"${where}`);
  return picked;
}

/** Per layer × head (`[L · H]`, index l · H + h): mean over rows `from` of the summed weights to columns `to`. */
export function attentionBetween(a: Attention, from: readonly number[], to: readonly number[]): Float64Array {
  const [L, H, T, K] = a.attention.dims;
  const out = new Float64Array(L * H);
  for (let lh = 0; lh < L * H; lh++) {
    let sum = 0;
    for (const i of from) for (const j of to) sum += a.attention.data[(lh * T + i) * K + j];
    out[lh] = sum / from.length;
  }
  return out;
}

export interface QuestionRow {
  layer: number;
  head: number;
  a: number;
  b: number;
  /** a − b */
  diff: number;
}

export interface Question {
  from: string;
  to: string;
  /** The token indices X and Y picked in each input. */
  picked: { a: { from: number[]; to: number[] }; b: { from: number[]; to: number[] } };
  /** Every layer × head, sorted by |a − b|, largest first (ties: layer, then head). */
  rows: QuestionRow[];
}

/** The question "attention from X to Y" asked of both inputs (selectTokens specs, matched in each). */
export function askQuestion(a: Attention, b: Attention, from: string, to: string): Question {
  checkSameShape(a, b);
  const picked = {
    a: { from: selectTokens(a.tokens, from, 'A'), to: selectTokens(a.tokens, to, 'A') },
    b: { from: selectTokens(b.tokens, from, 'B'), to: selectTokens(b.tokens, to, 'B') },
  };
  const va = attentionBetween(a, picked.a.from, picked.a.to);
  const vb = attentionBetween(b, picked.b.from, picked.b.to);
  const H = a.attention.dims[1];
  const rows = Array.from(va, (x, lh) => ({
    layer: Math.floor(lh / H),
    head: lh % H,
    a: x,
    b: vb[lh],
    diff: x - vb[lh],
  }));
  rows.sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff) || x.layer - y.layer || x.head - y.head);
  return { from, to, picked, rows };
}
