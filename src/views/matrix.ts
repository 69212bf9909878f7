/**
 * The part of an attention tensor a view shows: one layer, the rows and columns the sentence-pair filter
 * and the special-token option keep, rows renormalised when tokens are hidden. Views draw from this.
 * Rows are query tokens (`tokens`), columns key tokens: the same tokens for self-attention, `keyTokens`
 * (encoder tokens) for cross-attention, where the matrix is T × Tk.
 */
import type { Attention } from '../core/attention.js';
import { isSpecialToken } from './tokens.js';

/** BertViz's "Attention:" filter for sentence pairs: which sentence attends to which. */
export type PairFilter = 'all' | 'aa' | 'bb' | 'ab' | 'ba';

export const PAIR_FILTERS: Record<PairFilter, string> = {
  all: 'All',
  aa: 'Sentence A → Sentence A',
  bb: 'Sentence B → Sentence B',
  ab: 'Sentence A → Sentence B',
  ba: 'Sentence B → Sentence A',
};

export interface Selection {
  filter: PairFilter;
  /** Hide special tokens and renormalise each row over the tokens that remain. */
  hideSpecial: boolean;
}

export interface LayerMatrix {
  /** Token indices shown on the query side (left) and key side (right). */
  rows: number[];
  cols: number[];
  heads: number;
  /** `[heads, rows.length, cols.length]` */
  data: Float32Array;
}

/**
 * Query and key token indices for a filter; `sentenceBStart` null means there is no pair. `keyTokens`, when
 * the keys are other tokens than the queries (cross-attention), gives the columns (no pair filter then).
 */
export function filterIndices(
  tokens: readonly string[],
  sentenceBStart: number | null,
  sel: Selection,
  keyTokens?: readonly string[],
): { rows: number[]; cols: number[] } {
  const T = tokens.length;
  const b = sentenceBStart ?? T;
  const range = (from: number, to: number, list = tokens) =>
    Array.from({ length: to - from }, (_, i) => from + i).filter((i) => !sel.hideSpecial || !isSpecialToken(list[i]));
  if (keyTokens !== undefined && keyTokens !== tokens)
    return { rows: range(0, T), cols: range(0, keyTokens.length, keyTokens) };
  const A = range(0, b),
    B = range(b, T),
    all = range(0, T);
  switch (sentenceBStart === null ? 'all' : sel.filter) {
    case 'aa':
      return { rows: A, cols: A };
    case 'bb':
      return { rows: B, cols: B };
    case 'ab':
      return { rows: A, cols: B };
    case 'ba':
      return { rows: B, cols: A };
    default:
      return { rows: all, cols: all };
  }
}

export function layerMatrix(a: Attention, layer: number, sel: Selection): LayerMatrix {
  // T query rows, K key columns (K = T but for cross-attention).
  const [, H, T, K] = a.attention.dims;
  const { rows, cols } = filterIndices(a.tokens, a.sentenceBStart, sel, a.keyTokens);
  const R = rows.length,
    C = cols.length;
  const data = new Float32Array(H * R * C);
  const src = a.attention.data;
  for (let h = 0; h < H; h++) {
    const base = (layer * H + h) * T * K;
    for (let r = 0; r < R; r++) {
      const rowBase = base + rows[r] * K;
      const out = (h * R + r) * C;
      let sum = 0;
      for (let c = 0; c < C; c++) sum += data[out + c] = src[rowBase + cols[c]];
      // Renormalise only when tokens were hidden; the pair filter shows raw weights, as BertViz does.
      if (sel.hideSpecial && sum > 0) for (let c = 0; c < C; c++) data[out + c] /= sum;
    }
  }
  return { rows, cols, heads: H, data };
}

/** Which of a row's weights pass a threshold and a top-k cut (the "hide weak lines" control). */
export function keepMask(row: Float32Array, threshold: number, topK: number | null): Uint8Array {
  const keep = new Uint8Array(row.length);
  let kth = -Infinity;
  if (topK !== null && topK < row.length) kth = [...row].sort((x, y) => y - x)[Math.max(0, topK - 1)];
  for (let i = 0; i < row.length; i++) keep[i] = row[i] >= threshold && row[i] >= kth ? 1 : 0;
  return keep;
}
