/**
 * Rotary position embedding (RoPE, Su et al. 2021), for every family that uses it (GPT-NeoX, Llama and its
 * kin). Pairs of dimensions of each head are rotated by the angle position·θ_j, in one of two layouts:
 * - 'half' (transformers' `rotate_half`, HF checkpoints): pairs (x[j], x[j + dims/2]);
 * - 'interleaved' (Meta's and llama2.c's checkpoints, GGUF): adjacent pairs (x[2j], x[2j + 1]).
 * Only the first `dims` = 2·invFreq.length dimensions rotate (partial rotary: GPT-NeoX/Pythia rotate a
 * quarter); the rest pass through unchanged.
 *
 * θ_j (inv_freq) is computed here in float32 as torch does; cos/sin are computed in the graph from
 * `position_ids`, `[T, dims/2]`, once per graph and reused by every layer.
 */
import { AttnvizError, check } from '../core/errors.js';
import type { ModelConfig } from '../load/config.js';
import type { GraphBuilder } from './builder.js';
import { DataType } from './onnx.js';

export type RopeLayout = 'half' | 'interleaved';

export interface Rope {
  /** Graph value: int64 `[T]` positions (the `position_ids` input). */
  positions: string;
  /** θ_j of each rotated pair, float32 (ropeInvFreq): dims/2 values. */
  invFreq: Float32Array;
  /** Per-head width d of the tensors rotated. */
  headDim: number;
  layout: RopeLayout;
}

/**
 * inv_freq[j] = 1 / θ^(2j/d) in float32, rounded at each step as torch computes
 * `1.0 / (theta ** (torch.arange(0, d, 2).float() / d))`, then rope_scaling: 'linear' divides by `factor`;
 * 'llama3' (Llama 3.1+) divides low frequencies by `factor` and blends the middle band, as transformers'
 * _compute_llama3_parameters; 'frequency_divisors' (GGUF's rope_freqs: that scaling as llama.cpp stores it) divides
 * frequency j by divisors[j]. Anything else is refused by name.
 */
export function ropeInvFreq(d: number, theta: number, scaling: ModelConfig | null): Float32Array {
  // θ ≤ 0 (or 1) gives NaN or constant angles: every attention value would be wrong.
  check(theta > 1, `rope_theta ${theta} must be a number above 1`);
  const inv = Float32Array.from({ length: d / 2 }, (_, j) =>
    Math.fround(1 / Math.fround(theta ** Math.fround((2 * j) / d))),
  );
  const type = scaling ? scaling.string(['rope_type', 'type'], 'default') : 'default';
  switch (type) {
    case 'default':
      return inv;
    case 'linear': {
      const factor = scaling!.float('factor');
      return inv.map((f) => f / factor);
    }
    case 'llama3': {
      const s = scaling!;
      const factor = s.float('factor'),
        low = s.float('low_freq_factor'),
        high = s.float('high_freq_factor');
      const oldContext = s.float('original_max_position_embeddings');
      const lowWavelen = oldContext / low,
        highWavelen = oldContext / high;
      return inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f;
        if (wavelen > lowWavelen) return f / factor;
        const smooth = (oldContext / wavelen - low) / (high - low);
        return ((1 - smooth) * f) / factor + smooth * f;
      });
    }
    case 'frequency_divisors': {
      // GGUF's rope_freqs tensor (load/gguf-checkpoint.ts): llama.cpp divides each frequency by its entry.
      const divisors = scaling!.raw.divisors;
      check(
        Array.isArray(divisors) && divisors.length === d / 2 && divisors.every((x) => typeof x === 'number' && x > 0),
        `${scaling!.path}: divisors must be ${d / 2} positive numbers`,
      );
      return inv.map((f, j) => f / (divisors[j] as number));
    }
    default:
      throw new AttnvizError(
        `${scaling!.path}: rope type "${type}" is not supported (supported: default, linear, llama3)`,
      );
  }
}

/**
 * A function rotating per-head queries or keys `[H, T, headDim]` by their positions, returning
 * `[H, T, headDim]` (named `out` when given: the q/k graph outputs, after RoPE, as they enter q·kᵀ).
 */
export function rotary(g: GraphBuilder, rope: Rope): (x: string, out?: string) => string {
  const { headDim } = rope;
  const half = rope.invFreq.length,
    dims = 2 * half;
  check(dims <= headDim, `rotary dimensions ${dims} must be at most the head size ${headDim}`);
  check(rope.layout === 'half' || dims === headDim, 'interleaved rotary embeddings rotate the whole head');
  if (dims === 0) return (x, out) => g.op('Identity', [x], {}, out);
  // angle [T, dims/2] = position ⊗ θ.
  const angle = g.op('Mul', [
    g.op('Unsqueeze', [g.op('Cast', [rope.positions], { to: DataType.FLOAT }), g.ints([1])]),
    g.floats(rope.invFreq, [half]),
  ]);
  if (rope.layout === 'half') {
    const cos = g.op('Cos', [angle]),
      sin = g.op('Sin', [angle]);
    const slice = (x: string, from: number, to: number) =>
      g.op('Slice', [x, g.ints([from]), g.ints([to]), g.ints([2])]);
    // (x₁, x₂) = halves of the rotated part: [x₁·cos − x₂·sin, x₂·cos + x₁·sin] = x·cos +
    // rotate_half(x)·sin.
    return (x, out) => {
      const [x1, x2] = g.opN('Split', [dims === headDim ? x : slice(x, 0, dims)], 2, { axis: -1 });
      const first = g.op('Sub', [g.op('Mul', [x1, cos]), g.op('Mul', [x2, sin])]);
      const second = g.op('Add', [g.op('Mul', [x2, cos]), g.op('Mul', [x1, sin])]);
      const rest = dims === headDim ? [] : [slice(x, dims, headDim)];
      return g.op('Concat', [first, second, ...rest], { axis: -1 }, out);
    };
  }
  // Interleaved: view the head as d/2 pairs [.., d/2, 2] (a, b) → (a·cos − b·sin, a·sin + b·cos), as llama2.c.
  const cos = g.op('Unsqueeze', [g.op('Cos', [angle]), g.ints([2])]),
    sin = g.op('Unsqueeze', [g.op('Sin', [angle]), g.ints([2])]);
  return (x, out) => {
    const [a, b] = g.opN('Split', [g.op('Reshape', [x, g.ints([0, 0, half, 2])])], 2, { axis: -1 });
    const re = g.op('Sub', [g.op('Mul', [a, cos]), g.op('Mul', [b, sin])]);
    const im = g.op('Add', [g.op('Mul', [a, sin]), g.op('Mul', [b, cos])]);
    return g.op('Reshape', [g.op('Concat', [re, im], { axis: -1 }), g.ints([0, 0, headDim])], {}, out);
  };
}
