/**
 * Extraction of a model whose layer graph leaves the attention out (graph/decoder.ts's decoders, ModernBERT;
 * BuildOptions.split): the layers run as a chain of stage sessions (StagedSession: per layer the MLP of the layer
 * before, the norms, the projections and RoPE, giving q, k and v; then a last stage), and every layer's attention
 * runs on one weightless session (decoder.ts attentionGraph), a run of heads at a time, between its layer's stage
 * and the next: the probabilities go to the caller, the context into the buffer the next stage reads.
 *
 * Why so (bench/RESULTS.md): that one session keeps onnxruntime's memory arena, so a run's `[n, T, T]` scores
 * reuse the memory of the run before, where per-run stage sessions (no arena: L of them would each keep their
 * peak) took fresh pages from the system for every run, and on Linux VMs faulting in a fresh page costs more
 * than the softmax that fills it; the heads per run follow the input's length (runHeads: all of them at a few
 * hundred tokens, one at 4,096) instead of being fixed when the model is built; and the model has L + 2
 * sessions, not one per run of heads.
 */
import { check } from '../core/errors.js';
import { ATTENTION_IO } from '../graph/decoder.js';
import { outputArray, trimHeapAbove } from '../runtime/ort-direct.js';
import { headChunks, INPUTS, outputNames, probsChunkName, type SplitLayer, splitNames } from '../graph/family.js';
import {
  createSession,
  type Feed,
  type GroupedRunner,
  outputsOf,
  type RunOutput,
  type Runner,
  type SessionOptions,
  StagedSession,
  type StageOutput,
  type StageSpec,
} from '../runtime/session.js';

/** One run of heads of one layer: heads `start` … `start + n − 1`, their probabilities output as `probs`. */
export interface HeadRun {
  layer: number;
  start: number;
  n: number;
  probs: string;
}

/**
 * Bytes of one run's `[n, T, T]` float32 scores: the attention session holds about three such tensors at once
 * (scores, masked scores, and the probabilities it writes into the caller's buffer).
 */
export const RUN_BYTES = 2 ** 26;

/** The heads per run at `T` tokens: the largest divisor of `heads` whose `[n, T, T]` scores fit RUN_BYTES, else 1. */
export function runHeads(heads: number, T: number): number {
  let n = Math.max(1, Math.min(heads, Math.floor(RUN_BYTES / (T * T * 4))));
  while (heads % n !== 0) n--;
  return n;
}

/** Every layer's runs of heads at `T` tokens, `headChunk` heads each if given, else runHeads. */
export function splitRuns(layers: number, heads: number, T: number, headChunk?: number): HeadRun[] {
  const n = headChunk ?? runHeads(heads, T);
  return Array.from({ length: layers }, (_, layer) =>
    headChunks(heads, n).map(([start, size]) => ({ layer, start, n: size, probs: probsChunkName(layer, start) })),
  ).flat();
}

/** The stages of a split graph (graph/stages.ts): per layer its q, k, v and the masks it is the first to read. */
export function splitGroups(layers: readonly SplitLayer[]): string[][] {
  const seen = new Set<string>([INPUTS.causalMask]);
  return layers.map((layer, i) => {
    const o = outputNames(i);
    const masks = layer.mask === undefined || seen.has(layer.mask) ? [] : [layer.mask];
    if (layer.mask !== undefined) seen.add(layer.mask);
    return [o.q, o.k, splitNames(i).v, ...masks];
  });
}

type Plan = Parameters<GroupedRunner['stream']>[1];

/** Free heap bytes past which a long input's layer boundary hands them back (trimHeapAbove). */
const TRIM_ABOVE = 2 ** 28;

/**
 * The mask of a layer without one (ModernBERT's global layers): a zero broadcast over the scores, so that such
 * layers share the attention session, and its memory arena, with the masked ones.
 */
const NO_MASK: Feed = { type: 'float32', data: new Float32Array(1), dims: [1, 1] };

/**
 * A GroupedRunner whose stages are the runs of heads at the input's length (runs(T)) and a last one, so its
 * stage count is known per call, not once.
 */
export class SplitSession implements GroupedRunner {
  /** Buffers of q, k, v (when the caller takes none) and the context, by role, reused while T stays the same. */
  private readonly buffers = new Map<string, Float32Array>();

  private constructor(
    private readonly layers: StagedSession,
    /** The attention session of each layer (layers with the same score extras share one). */
    private readonly attention: readonly Runner[],
    private readonly specs: readonly SplitLayer[],
    private readonly dims: { heads: number; headDim: number },
    /** Heads per run when the caller fixes it (LoadOptions.headChunk), else runHeads by length. */
    private readonly headChunk: number | undefined,
  ) {}

  /**
   * `stages`: the split graph's stages (splitGroups), `specs`: its layers' score extras (BuildOptions.split),
   * `attentionGraph`: the attention graph for a layer's extras.
   */
  static async create(
    stages: readonly StageSpec[],
    specs: readonly SplitLayer[],
    attentionGraph: (layer: SplitLayer) => Uint8Array,
    dims: { heads: number; headDim: number; headChunk?: number },
    weightsRoot: string,
    options: SessionOptions = {},
  ): Promise<SplitSession> {
    const layers = await StagedSession.create(stages, weightsRoot, options);
    const sessions = new Map<string, Promise<Runner>>();
    const byLayer: Promise<Runner>[] = specs.map((spec) => {
      const key = `${spec.scale} ${spec.softcap}`;
      // The layers' shared arena serves the attention runs too: one working set, the larger of the two, not both.
      const own = { threads: options.threads, stopSpinning: true, sharedArena: true };
      if (!sessions.has(key)) sessions.set(key, createSession(attentionGraph(spec), weightsRoot, own));
      return sessions.get(key)!;
    });
    const attention = await Promise.all(byLayer).catch(async (e: unknown) => {
      await layers.release();
      await Promise.allSettled([...sessions.values()].map(async (s) => (await s).release()));
      throw e;
    });
    return new SplitSession(layers, attention, specs, dims, dims.headChunk);
  }

  /** The layers' inputs but the contexts, and the causal mask when the attention reads it. */
  get inputNames(): readonly string[] {
    const context = new Set(this.specs.map((_, i) => splitNames(i).context));
    const names = this.layers.inputNames.filter((n) => !context.has(n));
    const causal = this.specs.some((s) => s.mask === INPUTS.causalMask) && !names.includes(INPUTS.causalMask);
    return causal ? [...names, INPUTS.causalMask] : names;
  }

  /** q, k, the last hidden state (and logits); v and the window masks stay inside. */
  get outputNames(): readonly string[] {
    const inside = new Set(this.specs.flatMap((s, i) => [splitNames(i).v, ...(s.mask === undefined ? [] : [s.mask])]));
    return this.layers.outputNames.filter((n) => !inside.has(n));
  }

  /** Every layer's runs of heads at `T` tokens, in order: the stream's stages, before its last one. */
  runs(T: number): HeadRun[] {
    return splitRuns(this.specs.length, this.dims.heads, T, this.headChunk);
  }

  /** Each run is a run of its own. */
  oneRun(): boolean {
    return false;
  }

  /** The layers' stages (the stream's stages are runs(T) and the last one). */
  get stageCount(): number {
    return this.specs.length + 1;
  }

  stageOutputs(s: number): readonly string[] {
    return this.layers.stageOutputs(s);
  }

  /** Runs every layer and its attention; returns the outputs named in `fetch` that the last stage makes. */
  async run(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput> = {},
    fetch: readonly string[] = this.outputNames,
  ): Promise<Record<string, RunOutput>> {
    return outputsOf(this.stream(feeds, () => ({ fetch, into })));
  }

  /**
   * Yields, for each run of heads (runs(T), stage i), the outputs `plan(i)` asks of it — its probabilities
   * (`run.probs`), and with a layer's first run the layer's q and k — and last (stage runs(T).length) those of
   * the last stage (the last hidden state, logits).
   */
  async *stream(feeds: Record<string, Feed>, plan: Plan): AsyncGenerator<StageOutput> {
    const T = feeds[INPUTS.inputIds].dims[0];
    const { heads: H, headDim: d } = this.dims;
    const runs = this.runs(T);
    // In outputArray's memory, which the C API's sessions write and read in place (no copy per run of heads).
    const buffer = (role: string) => {
      let b = this.buffers.get(role);
      if (b?.length !== H * T * d) this.buffers.set(role, (b = outputArray(H * T * d)));
      return { dims: [H, T, d], data: b };
    };
    // Every layer's context input is the one buffer its attention runs write into before the layer after reads it.
    const context = buffer('context');
    const chainFeeds: Record<string, Feed> = { ...feeds };
    for (let i = 0; i < this.specs.length; i++) chainFeeds[splitNames(i).context] = { type: 'float32', ...context };
    // The causal mask (decoders) every run of heads reads, copied once into outputArray's memory.
    const masks = new Map<string, Feed>();
    const given = feeds[INPUTS.causalMask];
    if (given) {
      check(given.type === 'float32', 'the causal mask is float32');
      const causal = outputArray(given.data.length);
      causal.set(given.data);
      masks.set(INPUTS.causalMask, { ...given, data: causal });
    }
    const groups = splitGroups(this.specs);
    const first = new Map<number, ReturnType<Plan>>();
    const chain = this.layers.stream(chainFeeds, (s) => {
      if (s === this.specs.length) return plan(runs.length);
      const at = runs.findIndex((r) => r.layer === s);
      const p = plan(at);
      first.set(s, p);
      const o = outputNames(s);
      // q or k asked for without a buffer of the caller's: a fresh one (the shared ones serve the next layer).
      const own = (name: string, role: string) =>
        p.into?.[name] ?? (p.fetch.includes(name) ? { dims: [H, T, d], data: outputArray(H * T * d) } : buffer(role));
      const into: Record<string, RunOutput> = {
        [o.q]: own(o.q, 'q'),
        [o.k]: own(o.k, 'k'),
        [splitNames(s).v]: buffer('v'),
      };
      // The window masks this layer is the first to read ([T, T]), for this call only.
      for (const name of groups[s].slice(3)) into[name] = { dims: [T, T], data: outputArray(T * T) };
      return { fetch: groups[s], into };
    });
    for await (const { stage, outputs } of chain) {
      if (stage === this.specs.length) {
        yield { stage: runs.length, outputs };
        continue;
      }
      for (const name of groups[stage].slice(3)) masks.set(name, { type: 'float32', ...outputs[name] });
      const o = outputNames(stage);
      const slice = (t: RunOutput, run: HeadRun): RunOutput => ({
        data: t.data.subarray(run.start * T * d, (run.start + run.n) * T * d),
        dims: [run.n, T, d],
      });
      const feed = (t: RunOutput, run: HeadRun): Feed => ({ type: 'float32', ...slice(t, run) });
      const [q, k, v] = [outputs[o.q], outputs[o.k], outputs[splitNames(stage).v]];
      const spec = this.specs[stage];
      for (let i = runs.findIndex((r) => r.layer === stage); runs[i]?.layer === stage; i++) {
        const run = runs[i];
        const p = run.start === 0 ? first.get(stage)! : plan(i);
        const io = ATTENTION_IO;
        const probs = p.fetch.includes(run.probs);
        const out = await this.attention[stage].run(
          {
            [io.q]: feed(q, run),
            [io.k]: feed(k, run),
            [io.v]: feed(v, run),
            [io.mask]: spec.mask === undefined ? NO_MASK : masks.get(spec.mask)!,
          },
          {
            [io.context]: slice(context, run),
            ...(probs && p.into?.[run.probs] ? { [io.probs]: p.into[run.probs] } : {}),
          },
          probs ? [io.probs, io.context] : [io.context],
        );
        const given: Record<string, RunOutput> = { ...(probs ? { [run.probs]: out[io.probs] } : {}) };
        if (run.start === 0) for (const name of [o.q, o.k]) if (p.fetch.includes(name)) given[name] = outputs[name];
        yield { stage: i, outputs: given };
      }
      // Long inputs (a layer's attention in several runs): the pages glibc keeps free under live blocks after a
      // layer would add up over the layers (~40 MB each at 4096 tokens on Llama-1B shapes); handed back once they
      // pass TRIM_ABOVE (the peak at 4096 tokens stays within its target, shorter inputs rarely pay for a trim).
      if (runs.length > this.specs.length) trimHeapAbove(TRIM_ABOVE);
    }
  }

  async release(): Promise<void> {
    await this.layers.release();
    await Promise.all([...new Set(this.attention)].map((s) => s.release()));
  }
}
