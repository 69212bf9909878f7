/** Input values the model kinds feed to their graphs. */

/**
 * The additive causal mask `[T, start + T]` for T tokens after `start` cached ones: 0 where a query may attend
 * (keys up to its own position), -inf above, so softmax gives exact zeros for future tokens.
 */
export function causalMask(T: number, start = 0): Float32Array {
  const S = start + T;
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) m.fill(-Infinity, i * S + start + i + 1, (i + 1) * S);
  return m;
}
