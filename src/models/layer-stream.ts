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
    const full = { probs: buffer('probs', T), ...(qk ? { q: buffer('q', d), k: buffer('k', d) } : {}) };
    const plan = (stage: number) => {
      if (!layers.includes(stage)) return { fetch: stage === this.session.stageCount - 1 ? [HIDDEN_LAST] : [] };
      const o = outputNames(stage);
      const into: Record<string, RunOutput> = { [o.probs]: full.probs };
      if (full.q && full.k) Object.assign(into, { [o.q]: full.q, [o.k]: full.k });
      return { fetch: Object.keys(into), into };
    };
    for await (const { stage, outputs } of this.session.stream(this.feeds, plan)) {
      if (outputs[HIDDEN_LAST]) this.last = outputs[HIDDEN_LAST];
      if (!layers.includes(stage)) continue;
      checkFinite(full.probs.data, stage);
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

/** The heads `heads` of a `[H, rows, cols]` tensor, copied into `into`. */
function selectHeads(t: RunOutput, heads: readonly number[], into: Float32Array): Tensor {
  const [, rows, cols] = t.dims;
  const size = rows * cols;
  heads.forEach((h, i) => into.set(t.data.subarray(h * size, (h + 1) * size), i * size));
  return { dims: [heads.length, rows, cols], data: into };
}

/** A NaN or infinity in the probabilities means broken weights: say so instead of drawing garbage. */
function checkFinite(data: Float32Array, layer: number): void {
  // Rows sum to 1, so a non-finite value anywhere makes its row's sum non-finite: one pass, no branches.
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  check(Number.isFinite(sum), `layer ${layer}: the attention probabilities are not finite (NaN or infinite weights?)`);
}

/**
 * Reads a whole stream into one Attention (stacked `[layers, heads, …]` tensors), in fresh arrays or, with
 * `pool`, in arrays kept for the next call of the same size (which overwrites them).
 */
export async function collect(
  stream: AttentionStream,
  base: Omit<Attention, 'attention' | 'query' | 'key' | 'hiddenLast'>,
  pool?: BufferPool,
): Promise<Attention> {
  const { layers, heads, qk, headDim: d, tokens } = stream.header;
  const T = tokens.length,
    L = layers.length,
    H = heads.length;
  const stacked = (role: string, perLayer: number[]): Tensor => {
    const length = L * perLayer.reduce((a, b) => a * b, 1);
    return { dims: [L, ...perLayer], data: pool ? pool.get(`stacked.${role}`, length) : new Float32Array(length) };
  };
  const attention = stacked('probs', [H, T, T]);
  const query = qk ? stacked('q', [H, T, d]) : undefined;
  const key = qk ? stacked('k', [H, T, d]) : undefined;
  let i = 0;
  for await (const layer of stream) {
    const put = (into: Tensor | undefined, t: Tensor | undefined) => into?.data.set(t!.data, i * t!.data.length);
    put(attention, layer.attention);
    put(query, layer.query);
    put(key, layer.key);
    i++;
  }
  return {
    ...base,
    attention,
    ...(query && key ? { query, key } : {}),
    ...(stream.hiddenLast ? { hiddenLast: stream.hiddenLast } : {}),
  };
}
