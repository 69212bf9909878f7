/**
 * An Attention from what a notebook user has at hand, in BertViz's call shape: `{ attention, tokens,
 * sentenceBStart }`, where attention is nested arrays `[L][H][T][T]`, a list with one `[batch, H, T, T]` (or
 * `[H, T, T]`) entry per layer as Hugging Face's `outputs.attentions`, or a flat typed array with `dims`.
 * Browser-safe: no Node imports.
 */
import type { Attention, Tensor } from './attention.js';
import { AttnvizError, check } from './errors.js';

/** Numbers nested to any depth, or a typed array (the innermost level may be either). */
export type Numbers = ArrayLike<number> | readonly Numbers[];

/** A dense array given flat with its dimensions. */
export interface FlatArray {
  dims: readonly number[];
  data: ArrayLike<number>;
}

export interface ArraysInput {
  /** `[L, H, T, T]` nested, a per-layer list of `[batch, H, T, T]` / `[H, T, T]`, or `{ dims, data }`. */
  attention: Numbers | FlatArray;
  tokens: readonly string[];
  sentenceBStart?: number | null;
  /** q and k `[L, H, T, d]` in the same shapes as `attention`, for the neuron view (both or neither). */
  query?: Numbers | FlatArray;
  key?: Numbers | FlatArray;
  /** Default: inferred, true when nothing is above the diagonal. */
  causal?: boolean;
  /** Which batch element of per-layer `[batch, …]` arrays to show (default 0). */
  batch?: number;
  text?: string;
  model?: { source: string; modelType: string };
}

/** An Attention (what the engine and attention files give) rather than arrays to convert. */
export function isAttention(x: Attention | ArraysInput): x is Attention {
  const a = x.attention as Partial<Tensor>;
  return 'pair' in x && typeof x.causal === 'boolean' && a.data instanceof Float32Array && Array.isArray(a.dims);
}

/** Shape of a nested array (checked rectangular) and its values in row-major order. */
function flatten(x: Numbers, what: string): Tensor {
  const dims: number[] = [];
  let level: Numbers | number = x;
  while (typeof level !== 'number') {
    check(level.length > 0, `${what} has an empty dimension`);
    dims.push(level.length);
    level = level[0];
  }
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let n = 0;
  const walk = (v: Numbers, depth: number) => {
    check(
      v.length === dims[depth],
      `${what} is not rectangular: a dimension ${depth} of ${v.length}, not ${dims[depth]}`,
    );
    if (depth === dims.length - 1) {
      for (let i = 0; i < v.length; i++) data[n++] = (v as ArrayLike<number>)[i];
    } else for (let i = 0; i < v.length; i++) walk((v as readonly Numbers[])[i], depth + 1);
  };
  walk(x, 0);
  return { dims, data };
}

/** `[L, H, T, X]` from any accepted shape; a per-layer list keeps element `batch` of a leading batch axis. */
function layersTensor(x: Numbers | FlatArray, what: string, batch: number): Tensor {
  if ('dims' in x && 'data' in x) {
    const size = x.dims.reduce((a, b) => a * b, 1);
    check(x.data.length === size, `${what}: ${x.data.length} values for dims [${x.dims.join(', ')}]`);
    check(x.dims.length === 4, `${what} has dims [${x.dims.join(', ')}]; expected [layers, heads, T, T]`);
    return { dims: [...x.dims], data: Float32Array.from(x.data) };
  }
  const t = flatten(x, what);
  if (t.dims.length === 4) return t;
  if (t.dims.length === 5) {
    // Hugging Face outputs.attentions: one [batch, H, T, T] per layer.
    const [L, B, ...rest] = t.dims;
    check(Number.isInteger(batch) && batch >= 0 && batch < B, `batch ${batch} is out of range (batch size ${B})`);
    const size = rest.reduce((a, b) => a * b, 1);
    const data = new Float32Array(L * size);
    for (let l = 0; l < L; l++) data.set(t.data.subarray((l * B + batch) * size, (l * B + batch + 1) * size), l * size);
    return { dims: [L, ...rest], data };
  }
  throw new AttnvizError(
    `${what} has shape [${t.dims.join(', ')}]; expected [layers, heads, T, T] or one [batch, heads, T, T] per layer`,
  );
}

export function attentionFromArrays(input: ArraysInput): Attention {
  const batch = input.batch ?? 0;
  const attention = layersTensor(input.attention, 'attention', batch);
  const [, , T, Tk] = attention.dims;
  check(T === Tk, `attention is ${T} × ${Tk} per head: self-attention must be square`);
  check(input.tokens.length === T, `${input.tokens.length} tokens but the attention covers ${T} positions`);
  for (let i = 0; i < attention.data.length; i++) {
    const v = attention.data[i];
    check(Number.isFinite(v) && v >= -1e-6, `attention holds ${v} at index ${i}: expected probabilities`);
  }
  check((input.query === undefined) === (input.key === undefined), 'query and key come together or not at all');
  const qk = input.query && input.key ? [input.query, input.key] : null;
  const [query, key] = qk ? qk.map((x, i) => layersTensor(x, i ? 'key' : 'query', batch)) : [];
  for (const t of query && key ? [query, key] : []) {
    check(
      t.dims.slice(0, 3).join() === attention.dims.slice(0, 3).join(),
      `q/k have dims [${t.dims.join(', ')}]; expected [${attention.dims.slice(0, 3).join(', ')}, d]`,
    );
  }
  let causal = input.causal;
  if (causal === undefined) {
    causal = true;
    for (let r = 0; r < attention.data.length / T && causal; r++) {
      const i = r % T;
      for (let j = i + 1; j < T; j++) if (attention.data[r * T + j] !== 0) causal = false;
    }
  }
  return {
    tokens: [...input.tokens],
    text: input.text ?? '',
    pair: null,
    sentenceBStart: input.sentenceBStart ?? null,
    model: input.model ?? { source: '', modelType: '' },
    causal,
    attention,
    ...(query && key ? { query, key } : {}),
  };
}
