/**
 * The part of an attention tensor a view shows: one layer, the rows and columns the sentence-pair filter
 * and the special-token option keep, rows renormalised when tokens are hidden. Views draw from this.
 * Rows are query tokens (`tokens`), columns key tokens: the same tokens for self-attention, `keyTokens`
 * (encoder tokens) for cross-attention, where the matrix is T × Tk.
 */
import type { Attention } from '../core/attention.js';
import { specialMask } from './tokens.js';

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

/** What the filters read of an Attention: its tokens on both sides, the pair boundary, the special masks. */
export type FilterData = Pick<Attention, 'tokens' | 'sentenceBStart' | 'keyTokens' | 'special' | 'keySpecial'>;

/**
 * Query and key token indices for a filter; `sentenceBStart` null means there is no pair. `keyTokens`, when
 * the keys are other tokens than the queries (cross-attention), gives the columns (no pair filter then).
 */
export function filterIndices(
  { tokens, sentenceBStart, keyTokens, special, keySpecial }: FilterData,
  sel: Selection,
): { rows: number[]; cols: number[] } {
  const T = tokens.length;
  const b = sentenceBStart ?? T;
  // The tokenizer's masks when the data has them (specialMask guesses from the token text otherwise).
  const cross = keyTokens !== undefined && keyTokens !== tokens;
  const rowSpecial = specialMask(tokens, special);
  const colSpecial = cross ? specialMask(keyTokens, keySpecial) : rowSpecial;
  const range = (from: number, to: number, mask = rowSpecial) =>
    Array.from({ length: to - from }, (_, i) => from + i).filter((i) => !sel.hideSpecial || !mask[i]);
  if (cross) return { rows: range(0, T), cols: range(0, keyTokens.length, colSpecial) };
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
  const { rows, cols } = filterIndices(a, sel);
  const n = rows.length * cols.length;
  const src = a.attention.data;
  const layerData = (h: number) => src.subarray((layer * H + h) * T * K, (layer * H + h + 1) * T * K);
  // Nothing cut: the layer's own slice of the data, not a copy.
  if (rows.length === T && cols.length === K && !sel.hideSpecial)
    return { rows, cols, heads: H, data: src.subarray(layer * H * T * K, (layer + 1) * H * T * K) };
  const data = new Float32Array(H * n);
  // Renormalise only when tokens were hidden; the pair filter shows raw weights, as BertViz does.
  for (let h = 0; h < H; h++) data.set(selectCells(layerData(h), K, rows, cols, sel.hideSpecial), h * n);
  return { rows, cols, heads: H, data };
}

/**
 * One head's `[T × K]` weights cut to `rows` × `cols` (a new `[R × C]` array, or `w` itself when nothing is
 * cut), rows renormalised over the kept columns when `renormalise` (hidden special tokens).
 */
export function selectCells(
  w: Float32Array,
  K: number,
  rows: readonly number[],
  cols: readonly number[],
  renormalise: boolean,
): Float32Array {
  const R = rows.length,
    C = cols.length;
  if (R * K === w.length && C === K && !renormalise) return w;
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) {
    const base = rows[r] * K;
    let sum = 0;
    for (let c = 0; c < C; c++) sum += out[r * C + c] = w[base + cols[c]];
    if (renormalise && sum > 0) for (let c = 0; c < C; c++) out[r * C + c] /= sum;
  }
  return out;
}
