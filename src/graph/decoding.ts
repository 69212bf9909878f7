/**
 * What generation needs from a decoder's graph, on top of the standard outputs (family.ts); both are off by
 * default, so `attention()` pays nothing for them.
 *
 * - `logits`: next-token scores from the language-model head. 'last' scores only the last position
 *   (`[1, vocab]`): one row of the head's product, what generation needs, cheap even with a 128k vocabulary;
 *   'all' scores every position (`[T, vocab]`).
 * - a KV cache: the graph also takes, per layer, the keys and values of the P positions already seen
 *   (`past.N.key`, `past.N.value`, `[kvHeads, P, d]`, keys after RoPE) and returns them extended by the T
 *   new positions (`present.N.key`, `present.N.value`, `[kvHeads, P + T, d]`); `causal_mask` is then
 *   `[T, P + T]` and `position_ids` are P..P+T-1. Each generation step then runs one token, not the whole text.
 */
import type { WeightRef } from '../load/weights.js';
import type { GraphBuilder } from './builder.js';
import type { BuildOptions } from './family.js';

export const LOGITS = 'logits';

export type LogitsMode = 'last' | 'all';

/** Build options of families that have a language-model head. */
export interface DecodingBuildOptions extends BuildOptions {
  logits?: LogitsMode;
  /** Past/present key-value inputs and outputs (with extract: false). */
  kvCache?: boolean;
}

export const cacheNames = (layer: number) => ({
  pastKey: `past.${layer}.key`,
  pastValue: `past.${layer}.value`,
  presentKey: `present.${layer}.key`,
  presentValue: `present.${layer}.value`,
});

/**
 * Declares `logits` = h·Wᵀ (+ b) for the final hidden state h `[T, D]`, the head (or tied embedding) W
 * `[V, D]` and an optional bias b `[1, V]` (BART's final_logits_bias); with `softcap` c (Gemma 2's
 * final_logit_softcapping), c·tanh(h·Wᵀ / c).
 */
export function lmHead(
  g: GraphBuilder,
  hidden: string,
  w: WeightRef,
  mode: LogitsMode,
  bias?: WeightRef,
  softcap?: number,
): void {
  const [vocab] = w.shape;
  // Slice(h, [-1], [big], axis 0) keeps the last row, as [1, D].
  const rows =
    mode === 'last' ? g.op('Slice', [hidden, g.ints([-1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([0])]) : hidden;
  const dims = [mode === 'last' ? 1 : 'T', vocab];
  // g.linear: a quantized head (GGUF) runs as MatMulNBits, a float one as Gemm.
  if (softcap === undefined) {
    g.output(g.linear(rows, w, bias, LOGITS), dims);
    return;
  }
  const scaled = g.op('Div', [g.linear(rows, w, bias), g.scalar(softcap)]);
  g.output(g.op('Mul', [g.op('Tanh', [scaled]), g.scalar(softcap)], {}, LOGITS), dims);
}

/**
 * With a KV cache: `[kvHeads, T, d]` new keys or values of one layer → `[kvHeads, P + T, d]`, the past ones
 * (a graph input) followed by the new, declared as the layer's present output.
 */
export function extendCache(
  g: GraphBuilder,
  x: string,
  past: string,
  present: string,
  kvHeads: number,
  headDim: number,
): string {
  g.input(past, 'float', [kvHeads, 'P', headDim]);
  return g.output(g.op('Concat', [past, x], { axis: 1 }, present), [kvHeads, 'S', headDim]);
}
