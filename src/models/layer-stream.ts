/**
 * Extraction one layer at a time. The extracting graph runs as a chain of per-layer stages (graph/stages.ts,
 * runtime StagedSession); after stage i, layer i's probabilities (and q, k) are in buffers this module keeps
 * per model and reuses for every layer and every call of the same length, so a stream holds one layer's
 * outputs however many layers the model has, and no call pays for fresh output memory (on Linux, touching
 * a fresh page costs more than the softmax that fills it). `collect` stacks a stream into an Attention.
 */
import type { Attention, AttentionHeader, AttentionStream, LayerAttention, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { HIDDEN_LAST, outputNames } from '../graph/family.js';
import type { Feed, RunOutput, StagedSession } from '../runtime/session.js';

/** Which layers and heads to extract, and whether with q and k. */
export interface Selection {
  /** Layer indices (default: all). */
  layers?: readonly number[];
  /** Head indices (default: all). */
  heads?: readonly number[];
  /** Also queries and keys (default true). */
  qk?: boolean;
}

/** A selection checked against a model with `n` layers or heads: sorted distinct indices; all when absent. */
export function selectIndices(list: readonly number[] | undefined, n: number, what: 'layer' | 'head'): number[] {
  if (list === undefined) return Array.from({ length: n }, (_, i) => i);
  check(list.length > 0, `no ${what}s selected`);
  for (const i of list)
    check(
      Number.isInteger(i) && i >= 0 && i < n,
      `${what} ${i} is out of range: the model has ${n} ${what}s (0–${n - 1})`,
    );
  return [...new Set(list)].sort((a, b) => a - b);
}

/** Float32 buffers by role, allocated once per size and handed out again while the size stays the same. */
export class BufferPool {
  private readonly buffers = new Map<string, Float32Array>();

  get(role: string, length: number): Float32Array {
    let b = this.buffers.get(role);
    if (b?.length !== length) {
      b = new Float32Array(length);
      this.buffers.set(role, b);
    }
    return b;
  }
}

export class LayerStream implements AttentionStream {
  private started = false;
  private last: Tensor | undefined;

  constructor(
    private readonly session: StagedSession,
    private readonly feeds: Record<string, Feed>,
    readonly header: AttentionHeader,
    /** The model's head count (the buffers onnxruntime writes hold every head). */
    private readonly modelHeads: number,
    private readonly pool: BufferPool,
    /**
     * Stacked `[layers, heads, …]` tensors (all heads) to write each layer into in place, instead of the
     * pool's per-layer buffers: `collect`'s result, which then needs no copy.
     */
    private readonly target?: Stacked,
  ) {}

  get hiddenLast(): Tensor | undefined {
    return this.last;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<LayerAttention> {
    if (this.started) throw new AttnvizError('an attention stream can be read only once');
    this.started = true;
    const { layers, heads, qk, headDim: d, tokens } = this.header;
    const T = tokens.length,
      H = this.modelHeads;
    const allHeads = heads.length === H;
    const buffer = (role: string, cols: number): RunOutput => ({
      dims: [H, T, cols],
      data: this.pool.get(role, H * T * cols),
    });
    let full = { probs: buffer('probs', T), ...(qk ? { q: buffer('q', d), k: buffer('k', d) } : {}) };
    const target = allHeads ? this.target : undefined;
    const plan = (stage: number) => {
      if (!layers.includes(stage)) return { fetch: stage === this.session.stageCount - 1 ? [HIDDEN_LAST] : [] };
      if (target) {
        const i = layers.indexOf(stage);
        full = {
          probs: layerOf(target.attention, i),
          ...(target.query && target.key ? { q: layerOf(target.query, i), k: layerOf(target.key, i) } : {}),
        };
      }
      const o = outputNames(stage);
      const into: Record<string, RunOutput> = { [o.probs]: full.probs };
      if (full.q && full.k) Object.assign(into, { [o.q]: full.q, [o.k]: full.k });
      return { fetch: Object.keys(into), into };
    };
    for await (const { stage, outputs } of this.session.stream(this.feeds, plan)) {
      if (outputs[HIDDEN_LAST]) this.last = outputs[HIDDEN_LAST];
      if (!layers.includes(stage)) continue;
      checkFinite(full.probs, stage);
      const pick = (t: RunOutput, role: string): Tensor =>
        allHeads ? t : selectHeads(t, heads, this.pool.get(`${role}.heads`, (heads.length * t.data.length) / H));
      yield {
        layer: stage,
        attention: pick(full.probs, 'probs'),
        ...(full.q && full.k ? { query: pick(full.q, 'q'), key: pick(full.k, 'k') } : {}),
      };
    }
  }
}

/** Layer i of a stacked `[L, …]` tensor, as a view. */
function layerOf(t: Tensor, i: number): RunOutput {
  const size = t.data.length / t.dims[0];
  return { dims: t.dims.slice(1), data: t.data.subarray(i * size, (i + 1) * size) };
}

/** The heads `heads` of a `[H, rows, cols]` tensor, copied into `into`. */
function selectHeads(t: RunOutput, heads: readonly number[], into: Float32Array): Tensor {
  const [, rows, cols] = t.dims;
  const size = rows * cols;
  heads.forEach((h, i) => into.set(t.data.subarray(h * size, (h + 1) * size), i * size));
  return { dims: [heads.length, rows, cols], data: into };
}

/**
 * A NaN or infinity in the probabilities means broken weights: say so instead of drawing garbage. A softmax row
 * with any NaN or infinite score is NaN throughout (its max or its sum is), so one value per row tells.
 */
function checkFinite(t: RunOutput, layer: number): void {
  const cols = t.dims[2];
  let sum = 0;
  for (let i = 0; i < t.data.length; i += cols) sum += t.data[i];
  check(Number.isFinite(sum), `layer ${layer}: the attention probabilities are not finite (NaN or infinite weights?)`);
}

/** The stacked `[layers, heads, …]` tensors of a selection's Attention. */
export interface Stacked {
  attention: Tensor;
  query?: Tensor;
  key?: Tensor;
}

/**
 * Stacked tensors for `header`'s selection: fresh arrays or, with `pool`, arrays kept for the next call of the
 * same size (which overwrites them).
 */
export function stackedFor(header: AttentionHeader, pool?: BufferPool): Stacked {
  const { layers, heads, qk, headDim: d, tokens } = header;
  const [T, L, H] = [tokens.length, layers.length, heads.length];
  const stacked = (role: string, perLayer: number[]): Tensor => {
    const length = L * perLayer.reduce((a, b) => a * b, 1);
    return { dims: [L, ...perLayer], data: pool ? pool.get(`stacked.${role}`, length) : new Float32Array(length) };
  };
  return {
    attention: stacked('probs', [H, T, T]),
    ...(qk ? { query: stacked('q', [H, T, d]), key: stacked('k', [H, T, d]) } : {}),
  };
}

/**
 * Reads a whole stream into `into` (from stackedFor; a stream built with the same target has written there
 * already, and nothing is copied) and returns the Attention.
 */
export async function collect(
  stream: AttentionStream,
  into: Stacked,
  base: Omit<Attention, 'attention' | 'query' | 'key' | 'hiddenLast'>,
): Promise<Attention> {
  let i = 0;
  const put = (to: Tensor | undefined, t: Tensor | undefined) => {
    if (!to || !t) return;
    const at = i * t.data.length;
    if (t.data.buffer !== to.data.buffer || t.data.byteOffset !== to.data.byteOffset + at * 4) to.data.set(t.data, at);
  };
  for await (const layer of stream) {
    put(into.attention, layer.attention);
    put(into.query, layer.query);
    put(into.key, layer.key);
    i++;
  }
  return {
    ...base,
    ...into,
    ...(stream.hiddenLast ? { hiddenLast: stream.hiddenLast } : {}),
  };
}
