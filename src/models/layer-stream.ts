/**
 * Extraction one layer at a time. The extracting graph runs as a chain of per-layer stages (graph/stages.ts,
 * runtime StagedSession); after stage i, layer i's probabilities (and q, k) are in buffers this module keeps
 * per model and reuses for every layer and every call of the same length, so a stream holds one layer's
 * outputs however many layers the model has, and no call pays for fresh output memory (on Linux, touching
 * a fresh page costs more than the softmax that fills it). A model whose every output fits a budget runs
 * on one session instead (runtime GroupedSession): one run computes every layer into stacked buffers, which
 * the stream then hands out layer by layer. A staged Llama-style decoder runs on a SplitSession
 * (split-session.ts), whose stages are its layers' runs of heads at the input's length. `collect` stacks a
 * stream into an Attention.
 */
import type { Attention, AttentionHeader, AttentionStream, LayerAttention, Tensor } from '../core/attention.js';
import { AttnvizError, check } from '../core/errors.js';
import { HIDDEN_LAST, outputNames } from '../graph/family.js';
import { outputArray } from '../runtime/ort-direct.js';
import type { Feed, GroupedRunner, RunOutput } from '../runtime/session.js';
import type { HeadRun } from './split-session.js';

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

/**
 * Float32 buffers by role, allocated once per size and handed out again while the size stays the same. They
 * come from outputArray, which onnxruntime's C API path writes in place.
 */
export class BufferPool {
  private readonly buffers = new Map<string, Float32Array>();

  get(role: string, length: number): Float32Array {
    let b = this.buffers.get(role);
    if (b?.length !== length) {
      b = outputArray(length);
      this.buffers.set(role, b);
    }
    return b;
  }
}

/** What a stage of an extracting runner computes: one layer's probabilities of a run of heads. */
export interface StagePart {
  layer: number;
  /** The run of heads `start` … `start + n − 1`, output as `probs`. */
  start: number;
  n: number;
  probs: string;
  /** The stage also outputs the layer's q and k (its first part). */
  qk: boolean;
}

/**
 * Per stage of `session`, the layer it computes (null: a stage of no layer's, the rest of the graph): read off
 * the stage's outputs (`layers.N.attn.probs`).
 */
export function stageParts(session: GroupedRunner, layers: number, heads: number): (StagePart | null)[] {
  const parts = new Map<string, number>();
  for (let layer = 0; layer < layers; layer++) parts.set(outputNames(layer).probs, layer);
  return Array.from({ length: session.stageCount }, (_, s): StagePart | null => {
    const outputs = session.stageOutputs(s);
    const probs = outputs.find((o) => parts.has(o));
    if (probs === undefined) return null;
    const layer = parts.get(probs)!;
    return { layer, start: 0, n: heads, probs, qk: outputs.includes(outputNames(layer).q) };
  });
}

/** The stages of a split session (SplitSession.stream): its runs of heads (splitRuns), then the rest. */
export function runParts(runs: readonly HeadRun[]): (StagePart | null)[] {
  return [...runs.map((run) => ({ ...run, qk: run.start === 0 })), null];
}

export class LayerStream implements AttentionStream {
  private started = false;
  private last: Tensor | undefined;

  constructor(
    private readonly session: Pick<GroupedRunner, 'oneRun' | 'stream'>,
    /** What each stage computes (stageParts, runParts). */
    private readonly parts: () => readonly (StagePart | null)[],
    private readonly feeds: Record<string, Feed>,
    readonly header: AttentionHeader,
    /** The model's head count (the q and k onnxruntime writes hold every head). */
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
    // One run computes every layer at once: each needs its own place, every head of the selected layers.
    const target =
      (allHeads ? this.target : undefined) ??
      (this.session.oneRun(T)
        ? stackedFor({ ...this.header, heads: selectIndices(undefined, H, 'head') }, (role, n) =>
            this.pool.get(`layers.${role}`, n),
          )
        : undefined);
    // Where onnxruntime writes a stage's outputs: the target's place for them, or a pool buffer per size.
    const buffers = (part: StagePart) => {
      const at = layers.indexOf(part.layer);
      const into = (stacked: Tensor | undefined, role: string, rows: number, cols: number, start: number) => {
        const size = rows * T * cols;
        if (!stacked) return { dims: [rows, T, cols], data: this.pool.get(`${role}.${rows}`, size) };
        const layer = layerOf(stacked, at);
        return { dims: [rows, T, cols], data: layer.data.subarray(start * T * cols, start * T * cols + size) };
      };
      const probs = into(target?.attention, 'probs', part.n, T, part.start);
      if (!(qk && part.qk)) return { probs };
      return { probs, q: into(target?.query, 'q', H, d, 0), k: into(target?.key, 'k', H, d, 0) };
    };
    // What each stage computes, asked once the session for this length exists (its kind decides).
    let known: readonly (StagePart | null)[] | undefined;
    const parts = () => (known ??= this.parts());
    // Each stage's buffers, by stage (a one-run session plans every stage before its run).
    const planned = new Map<number, ReturnType<typeof buffers>>();
    const plan = (stage: number) => {
      const part = parts()[stage];
      const current = part && layers.includes(part.layer) ? buffers(part) : undefined;
      if (current) planned.set(stage, current);
      if (!part || !current) return { fetch: stage === parts().length - 1 ? [HIDDEN_LAST] : [] };
      const o = outputNames(part.layer);
      const into: Record<string, RunOutput> = { [part.probs]: current.probs };
      if (current.q && current.k) Object.assign(into, { [o.q]: current.q, [o.k]: current.k });
      return { fetch: Object.keys(into), into };
    };
    for await (const { stage, outputs } of this.session.stream(this.feeds, plan)) {
      if (outputs[HIDDEN_LAST]) this.last = outputs[HIDDEN_LAST];
      const part = parts()[stage];
      const current = planned.get(stage);
      planned.delete(stage);
      if (!part || !current) continue;
      checkFinite(current.probs, part.layer);
      // The selected heads of this run, as indices into it.
      const mine = heads.filter((h) => h >= part.start && h < part.start + part.n);
      if (mine.length === 0 && !current.q) continue;
      // Every head of the run (distinct indices in it: as many as it has) is the run itself, not a copy.
      const pick = (t: RunOutput, role: string, offset: number, chosen: readonly number[]): Tensor =>
        chosen.length === t.dims[0]
          ? t
          : selectHeads(
              t,
              chosen.map((h) => h - offset),
              this.pool.get(`${role}.heads`, (chosen.length * t.data.length) / t.dims[0]),
            );
      yield {
        layer: part.layer,
        heads: mine,
        attention: pick(current.probs, 'probs', part.start, mine),
        ...(current.q && current.k
          ? { query: pick(current.q, 'q', 0, heads), key: pick(current.k, 'k', 0, heads) }
          : {}),
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

/** Where a stacked tensor's array comes from: its role ('probs', 'q', 'k') and length in, the array out. */
export type StackedArrays = (role: string, length: number) => Float32Array;

/**
 * Stacked tensors for `header`'s selection, their arrays from `arrays`: by default fresh ones (outputArray); a
 * pool's for arrays kept for the next call of the same size (which overwrites them), lent ones for a fresh result
 * made after the run (ort-direct.ts lentArray).
 */
export function stackedFor(header: AttentionHeader, arrays: StackedArrays = (_, n) => outputArray(n)): Stacked {
  const { layers, heads, qk, headDim: d, tokens } = header;
  const [T, L, H] = [tokens.length, layers.length, heads.length];
  const stacked = (role: string, perLayer: number[]): Tensor => {
    const length = L * perLayer.reduce((a, b) => a * b, 1);
    return { dims: [L, ...perLayer], data: arrays(role, length) };
  };
  return {
    attention: stacked('probs', [H, T, T]),
    ...(qk ? { query: stacked('q', [H, T, d]), key: stacked('k', [H, T, d]) } : {}),
  };
}

/**
 * Reads a whole stream into `into` (from stackedFor; a stream built with the same target has written there
 * already, and nothing is copied) and returns the Attention. `each` is told of every layer once all of its heads
 * are in (a layer may come in runs of heads), with the result being filled: a layer of it may be read then.
 */
export async function collect(
  stream: AttentionStream,
  into: Stacked,
  base: Omit<Attention, 'attention' | 'query' | 'key' | 'hiddenLast'>,
  each?: (result: Attention, layer: number) => void,
): Promise<Attention> {
  const result: Attention = { ...base, ...into };
  const perLayer = into.attention.data.length / into.attention.dims[0];
  // The yields appended one after another.
  const end = { attention: 0, query: 0, key: 0 };
  const put = (role: keyof typeof end, to: Tensor | undefined, t: Tensor | undefined) => {
    if (!to || !t) return;
    const at = end[role];
    if (t.data.buffer !== to.data.buffer || t.data.byteOffset !== to.data.byteOffset + at * 4) to.data.set(t.data, at);
    end[role] += t.data.length;
  };
  for await (const layer of stream) {
    put('attention', into.attention, layer.attention);
    put('query', into.query, layer.query);
    put('key', into.key, layer.key);
    if (each && end.attention % perLayer === 0) each(result, end.attention / perLayer - 1);
  }
  check(end.attention === into.attention.data.length, `the attention stream ended after ${end.attention} values`);
  return stream.hiddenLast ? { ...result, hiddenLast: stream.hiddenLast } : result;
}
