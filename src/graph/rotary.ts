/**
 * Rotary position embedding (RoPE, Su et al. 2021) in transformers' `rotate_half` convention, as GPT-NeoX,
 * Llama and most HF checkpoints use it: the first `dims` dimensions of each head are rotated in pairs
 * (x[j], x[j + dims/2]) by the angle position·θ_j, θ_j = base^(−2j/dims); the remaining dimensions (partial
 * rotary: GPT-NeoX/Pythia rotate a quarter) pass through unchanged. Checkpoints converted from Meta's
 * original code or GGUF pair adjacent dimensions instead (see the golden README); that is not this.
 *
 * cos/sin are computed in the graph, in float32, the way transformers does it:
 * inv_freq = 1 / base^(arange(0, dims, 2) / dims), freqs = position ⊗ inv_freq, emb = [freqs, freqs],
 * then cos(emb), sin(emb) — `[T, dims]`, made once per graph for each (positions, dims, base).
 */
import onnxProto from 'onnx-proto';
import { check } from '../core/errors.js';
import type { GraphBuilder } from './builder.js';

const FLOAT = onnxProto.onnx.TensorProto.DataType.FLOAT;

export interface Rope {
  /** Graph value: int64 `[T]` positions (the `position_ids` input). */
  positions: string;
  /** Rotated dimensions per head: even, at most headDim (GPT-NeoX: int(headDim · rotary_pct)). */
  dims: number;
  /** Per-head width d of the tensors rotated. */
  headDim: number;
  /** θ base (rotary_emb_base / rope_theta). */
  base: number;
}

/** cos/sin tables already made in a graph, by `positions|dims|base`. */
const made = new WeakMap<GraphBuilder, Map<string, { cos: string; sin: string }>>();

/** cos(position·θ) and sin(position·θ) for the rotated dimensions, `[T, dims]` each (each θ_j twice). */
export function rotaryTables(g: GraphBuilder, rope: Rope): { cos: string; sin: string } {
  const key = `${rope.positions}|${rope.dims}|${rope.base}`;
  const cache = made.get(g) ?? new Map<string, { cos: string; sin: string }>();
  made.set(g, cache);
  const known = cache.get(key);
  if (known) return known;
  // inv_freq [dims/2] in float32, as torch computes 1.0 / (base ** (arange(0, dims, 2).float() / dims)).
  const exponents = g.op('Div', [g.op('Range', [g.scalar(0), g.scalar(rope.dims), g.scalar(2)]), g.scalar(rope.dims)]);
  const invFreq = g.op('Reciprocal', [g.op('Pow', [g.scalar(rope.base), exponents])]);
  // freqs [T, dims/2] = position ⊗ inv_freq; emb [T, dims] = [freqs, freqs] (rotate_half pairs j with j + dims/2).
  const position = g.op('Unsqueeze', [g.op('Cast', [rope.positions], { to: FLOAT }), g.ints([1])]);
  const freqs = g.op('Mul', [position, invFreq]);
  const emb = g.op('Concat', [freqs, freqs], { axis: -1 });
  const tables = { cos: g.op('Cos', [emb]), sin: g.op('Sin', [emb]) };
  cache.set(key, tables);
  return tables;
}

/**
 * Rotates per-head queries or keys `x` `[H, T, headDim]` by their positions: on the first `dims` dimensions
 * x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] (x₁, x₂ the two halves), the rest unchanged.
 * Returns `[H, T, headDim]`, written to `out` when given (the q/k graph outputs: after RoPE, as they enter q·kᵀ).
 */
export function rotateHalf(g: GraphBuilder, x: string, rope: Rope, out?: string): string {
  const { dims, headDim } = rope;
  check(
    dims >= 0 && dims % 2 === 0 && dims <= headDim,
    `rotary dimensions ${dims} must be even and at most the head size ${headDim}`,
  );
  if (dims === 0) return g.op('Identity', [x], {}, out);
  const { cos, sin } = rotaryTables(g, rope);
  const slice = (from: number, to: number) => g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([2])]);
  const half = dims / 2;
  const rotated = g.op('Concat', [g.op('Neg', [slice(half, dims)]), slice(0, half)], { axis: 2 });
  const xRot = dims === headDim ? x : slice(0, dims);
  const y = g.op(
    'Add',
    [g.op('Mul', [xRot, cos]), g.op('Mul', [rotated, sin])],
    {},
    dims === headDim ? out : undefined,
  );
  return dims === headDim ? y : g.op('Concat', [y, slice(dims, headDim)], { axis: 2 }, out);
}
