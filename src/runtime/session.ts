/**
 * The one module that talks to onnxruntime (Node). A session is built once per model from the graph bytes;
 * the weights are external data read by onnxruntime from the checkpoint files under `weightsRoot`.
 * Runs on one session are queued: a second text waits for the first instead of doubling peak memory.
 */
import { availableParallelism } from 'node:os';
import type ort from 'onnxruntime-node';
import { DirectSession, type MemoryFile, quietTelemetry } from './ort-direct.js';

export type Feed =
  | { type: 'int64'; data: BigInt64Array; dims: readonly number[] }
  | { type: 'float32'; data: Float32Array; dims: readonly number[] };

export interface RunOutput {
  data: Float32Array;
  dims: readonly number[];
}

export interface SessionOptions {
  /**
   * onnxruntime intra-op threads. Default: the cores this process may use (os.availableParallelism()), since
   * onnxruntime's own default here is one thread (it counts physical cores, and a VM's often report one).
   */
  threads?: number;
  /**
   * External-data files given as bytes (repacked quantized weights, graph/builder.ts); onnxruntime copies them
   * while creating the session, so the caller's buffers can be dropped once it resolves.
   */
  memory?: readonly MemoryFile[];
  /**
   * The threads stop spinning as each run returns (a session whose runs alternate with other sessions' runs:
   * its idle threads must not take the cores those need).
   */
  stopSpinning?: boolean;
  /**
   * No memory arena and no memory pattern (a session of a chain: each arena would keep its session's peak
   * intermediates for good; without, they come from malloc, which reuses the freed blocks of the session before).
   */
  noArena?: boolean;
  /**
   * The process's one arena shared by such sessions (runtime/ort-direct.ts sharedArena: sessions that run one after
   * another reuse one working set) where onnxruntime's C API is used; elsewhere noArena decides.
   */
  sharedArena?: boolean;
}

/** The intra-op thread count a session gets: the caller's, or the cores the process may use. */
export function threadCount(options: SessionOptions = {}): number {
  return options.threads ?? availableParallelism();
}

/** A promise chain that runs one task at a time. */
export class Queue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Waits for the tasks before; the returned function lets the next one start. */
  async acquire(): Promise<() => void> {
    const before = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => {
      release = r;
    });
    await before;
    return release;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await task();
    } finally {
      release();
    }
  }
}

/** What Session and StagedSession both offer: run the whole graph. */
export interface Runner {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * The outputs named in `fetch`, written into `into` where given. Those named in `hold` may be left in
   * onnxruntime's memory (C API sessions): fed to a later run, they are read in place; `drop` releases them.
   */
  run(
    feeds: Record<string, Feed>,
    into?: Record<string, RunOutput>,
    fetch?: readonly string[],
    hold?: readonly string[],
  ): Promise<Record<string, RunOutput>>;
  /** Releases an output `run` held (nothing for any other). */
  drop?(output: RunOutput): void;
  release(): Promise<void>;
}

export class Session implements Runner {
  private readonly queue = new Queue();
  /**
   * The binding's copy of the last output of the run before, kept until this run has made its copies.
   * onnxruntime-node 1.30 copies every output into a new ArrayBuffer (pre-allocated ones too); when the run's
   * copies are collected they would join glibc's heap top and be handed back to the system (trimmed), so that the
   * next run's copies fault in fresh pages (~3 µs per 4 KB on these VMs; 46 000 faults per BERT-base call at
   * 512 tokens). The copy made last lies above the others: kept alive, it keeps them in the heap, where the next
   * run's copies of the same sizes find them (bench/RESULTS.md).
   */
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: held, never read: holding it is the point
  private fence: unknown;

  private constructor(
    /**
     * onnxruntime-node, imported by the first binding session: a process whose sessions all run on the C API
     * (`attnviz extract` on Linux) never loads its ~20 modules and native binding (bench/RESULTS.md, start-up).
     */
    private readonly binding: typeof ort,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(graph: Uint8Array, weightsRoot: string, options: SessionOptions = {}): Promise<Session> {
    quietTelemetry();
    const { default: binding } = await import('onnxruntime-node');
    const session = await binding.InferenceSession.create(graph, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threadCount(options),
      ...(options.noArena ? { enableCpuMemArena: false, enableMemPattern: false } : {}),
      ...(options.memory?.length ? { externalData: options.memory } : {}),
      // Resolves external-data locations (the safetensors files) relative to this folder.
      extra: {
        session: {
          model_external_initializers_file_folder_path: weightsRoot,
          ...(options.stopSpinning ? { force_spinning_stop: '1' } : {}),
        },
      },
    });
    return new Session(binding, session);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /**
   * Runs the graph and returns the outputs named in `fetch` (default: all). Outputs named in `into` are
   * written by onnxruntime straight into those buffers (views into the caller's stacked [L, H, …] arrays, or
   * buffers kept from an earlier run), which saves a copy of every per-layer output.
   */
  run(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput> = {},
    fetch: readonly string[] = this.session.outputNames,
  ): Promise<Record<string, RunOutput>> {
    return this.queue.run(() => this.runNow(feeds, into, fetch));
  }

  private async runNow(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput>,
    fetch: readonly string[],
  ): Promise<Record<string, RunOutput>> {
    const tensors: Record<string, ort.Tensor> = {};
    const { Tensor } = this.binding;
    for (const [name, f] of Object.entries(feeds)) tensors[name] = new Tensor(f.type, f.data, f.dims);
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const name of fetch)
      fetches[name] = into[name] ? new Tensor('float32', into[name].data, into[name].dims) : null;
    const out = await this.session.run(tensors, fetches);
    // onnxruntime-common lists the fetches in the session's output order, and the binding copies them in that order.
    this.fence = out[this.session.outputNames.filter((n) => n in fetches).at(-1) ?? ''];
    const outputs: Record<string, RunOutput> = {};
    for (const [name, t] of Object.entries(out)) outputs[name] = { data: t.data as Float32Array, dims: t.dims };
    return outputs;
  }

  async release(): Promise<void> {
    await this.queue.run(() => this.session.release());
  }
}

/** A DirectSession as a Runner, its runs queued (a DirectSession runs one at a time). */
class CApiSession implements Runner {
  private readonly queue = new Queue();

  constructor(private readonly session: DirectSession) {}

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  run(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput> = {},
    fetch: readonly string[] = this.outputNames,
    hold: readonly string[] = [],
  ): Promise<Record<string, RunOutput>> {
    return this.queue.run(() => this.session.run(feeds, into, fetch, hold));
  }

  drop(output: RunOutput): void {
    this.session.drop(output);
  }

  release(): Promise<void> {
    return this.queue.run(async () => this.session.release());
  }
}

/**
 * A session over `graph`: on onnxruntime's C API where it loads (runtime/ort-direct.ts: outputs whose buffers come
 * from outputArray are written in place, the others copied once; no copy by the binding into fresh memory),
 * else on the binding.
 */
export async function createSession(
  graph: Uint8Array,
  weightsRoot: string,
  options: SessionOptions = {},
): Promise<Runner> {
  if (!DirectSession.available) return Session.create(graph, weightsRoot, options);
  return new CApiSession(await DirectSession.create(graph, weightsRoot, { ...options, threads: threadCount(options) }));
}

/** One stage of a graph split by graph/stages.ts. */
export interface StageSpec {
  graph: Uint8Array;
  inputs: readonly string[];
  outputs: readonly string[];
  /** Of `outputs`, those only later stages read. */
  carried: readonly string[];
}

/** What a stage's run gives back: the outputs asked for (carried values stay inside). */
export interface StageOutput {
  stage: number;
  outputs: Record<string, RunOutput>;
}

/** Every output a stream of stages yields, in one record: a staged runner's `run`. */
export async function outputsOf(stream: AsyncIterable<StageOutput>): Promise<Record<string, RunOutput>> {
  const all: Record<string, RunOutput> = {};
  for await (const { outputs } of stream) Object.assign(all, outputs);
  return all;
}

/**
 * A run whose outputs come in groups, in order (a layer's probabilities, q and k, then the rest): what a layer
 * stream (models/layer-stream.ts) reads. StagedSession computes each group in its own session before the next;
 * GroupedSession computes them all in one run of one session, then hands them out group by group.
 */
export interface GroupedRunner extends Runner {
  /**
   * Whether an input of `tokens` tokens runs all stages in one run (their outputs then held at once, in buffers
   * that must all differ) or stage after stage.
   */
  oneRun(tokens: number): boolean;
  readonly stageCount: number;
  /** The caller's outputs of stage `s`. */
  stageOutputs(s: number): readonly string[];
  /**
   * Yields each stage's outputs `plan(stage).fetch` names, written into `plan(stage).into` where given. The
   * session is held until the iteration ends (or is broken off). A GroupedSession asks every stage's plan
   * before its one run, so the buffers of different stages must not overlap.
   */
  stream(
    feeds: Record<string, Feed>,
    plan: (stage: number) => { fetch: readonly string[]; into?: Record<string, RunOutput> },
  ): AsyncGenerator<StageOutput>;
}

/**
 * One session over the whole extracting graph, its outputs handed out in groups (GroupedRunner): the plain
 * pass's session settings (memory arena, spinning threads), at the cost of holding every group's outputs at
 * once. Created and run through onnxruntime's C API where it loads (runtime/ort-direct.ts: onnxruntime writes
 * the outputs into the caller's buffers, with no copy by the binding into fresh memory; in-memory weights included),
 * else through the binding.
 */
export class GroupedSession implements GroupedRunner {
  private readonly queue = new Queue();

  private constructor(
    private readonly session: Runner,
    private readonly groups: readonly (readonly string[])[],
  ) {}

  /** `groups`: the outputs of each stage, in order; the outputs in none form a last stage. */
  static async create(
    graph: Uint8Array,
    groups: readonly (readonly string[])[],
    weightsRoot: string,
    options: SessionOptions = {},
  ): Promise<GroupedSession> {
    const session = await createSession(graph, weightsRoot, options);
    const grouped = new Set(groups.flat());
    const rest = session.outputNames.filter((o) => !grouped.has(o));
    return new GroupedSession(session, rest.length > 0 ? [...groups, rest] : groups);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Whether it runs on onnxruntime's C API (else on the binding). */
  get onCApi(): boolean {
    return this.session instanceof CApiSession;
  }

  oneRun(): boolean {
    return true;
  }

  get stageCount(): number {
    return this.groups.length;
  }

  stageOutputs(s: number): readonly string[] {
    return this.groups[s];
  }

  run(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput> = {},
    fetch: readonly string[] = this.outputNames,
  ): Promise<Record<string, RunOutput>> {
    return this.queue.run(() => this.session.run(feeds, into, fetch));
  }

  async *stream(
    feeds: Record<string, Feed>,
    plan: (stage: number) => { fetch: readonly string[]; into?: Record<string, RunOutput> },
  ): AsyncGenerator<StageOutput> {
    const release = await this.queue.acquire();
    try {
      const plans = this.groups.map((_, s) => plan(s));
      const out = await this.session.run(
        feeds,
        Object.assign({}, ...plans.map((p) => p.into ?? {})),
        plans.flatMap((p) => p.fetch),
      );
      for (const [stage, p] of plans.entries())
        yield { stage, outputs: Object.fromEntries(p.fetch.map((name) => [name, out[name]])) };
    } finally {
      release();
    }
  }

  release(): Promise<void> {
    return this.queue.run(() => this.session.release());
  }
}

/**
 * A graph run as a chain of sessions, one per stage (graph/stages.ts), over the same external weights: each
 * weight is loaded by the stage that uses it, so the chain holds the weights once. `stream` yields each
 * stage's outputs before the next stage runs, so a caller can consume a layer's outputs and let go of them.
 */
export class StagedSession implements GroupedRunner {
  private readonly queue = new Queue();

  private constructor(
    private readonly stages: readonly { spec: StageSpec; session: Runner }[],
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {}

  static async create(specs: readonly StageSpec[], weightsRoot: string, options: SessionOptions = {}) {
    const stages: { spec: StageSpec; session: Runner }[] = [];
    try {
      for (const spec of specs) {
        const session = await createSession(spec.graph, weightsRoot, {
          threads: options.threads,
          // Each session's own arena would keep its stage's peak intermediates for good: L arenas, L times the
          // memory one session needs. They share one (and, on the binding, have none: fresh pages every run).
          noArena: true,
          sharedArena: true,
          // Repacked quantized weights: every stage may read its share of them (onnxruntime copies what it uses).
          memory: options.memory,
          // Stages run one after another: a finished stage's threads must not spin while the next one works,
          // but within a run they spin as the plain pass's do (without spinning, every parallel op waits for
          // its workers to wake: a fixed few ms per stage). So spinning stops as each run returns.
          stopSpinning: true,
        });
        stages.push({ spec, session });
      }
    } catch (e) {
      await Promise.all(stages.map((s) => s.session.release()));
      throw e;
    }
    const carried = new Set(specs.flatMap((s) => s.carried));
    const unique = (names: string[]) => [...new Set(names)].filter((n) => !carried.has(n));
    return new StagedSession(
      stages,
      unique(specs.flatMap((s) => [...s.inputs])),
      unique(specs.flatMap((s) => [...s.outputs])),
    );
  }

  oneRun(): boolean {
    return false;
  }

  get stageCount(): number {
    return this.stages.length;
  }

  /** The caller's outputs of stage `s` (its share of outputNames). */
  stageOutputs(s: number): readonly string[] {
    const { outputs, carried } = this.stages[s].spec;
    return outputs.filter((o) => !carried.includes(o));
  }

  /** Runs every stage and returns the outputs named in `fetch` (default: all), as Session.run. */
  async run(
    feeds: Record<string, Feed>,
    into: Record<string, RunOutput> = {},
    fetch: readonly string[] = this.outputNames,
  ): Promise<Record<string, RunOutput>> {
    return outputsOf(
      this.stream(feeds, (s) => ({ fetch: this.stageOutputs(s).filter((o) => fetch.includes(o)), into })),
    );
  }

  /**
   * Runs the stages in order, yielding after each the outputs `plan(stage).fetch` names (written into
   * `plan(stage).into` where given). The session is held until the iteration ends (or is broken off).
   */
  async *stream(
    feeds: Record<string, Feed>,
    plan: (stage: number) => { fetch: readonly string[]; into?: Record<string, RunOutput> },
  ): AsyncGenerator<StageOutput> {
    const release = await this.queue.acquire();
    const values = new Map<string, Feed>(Object.entries(feeds));
    /** How to release each carried value still held. */
    const carried = new Map<string, () => void>();
    const drop = (name: string) => {
      values.delete(name);
      carried.get(name)?.();
      carried.delete(name);
    };
    try {
      for (let s = 0; s < this.stages.length; s++) {
        const { spec, session } = this.stages[s];
        const { fetch, into = {} } = plan(s);
        const inputs: Record<string, Feed> = {};
        for (const name of spec.inputs) {
          const value = values.get(name);
          if (!value) throw new Error(`stage ${s}: no value for its input ${name}`);
          inputs[name] = value;
        }
        // Carried values stay in onnxruntime's memory where the session can hold them: copied out and back in,
        // each stage's hidden state cost 0.12 s at 2,048 tokens on Llama-1B shapes, in fresh pages both ways.
        const out = await session.run(inputs, into, [...fetch, ...spec.carried], spec.carried);
        for (const name of spec.carried) {
          values.set(name, { type: 'float32', ...out[name] });
          carried.set(name, () => session.drop?.(out[name]));
        }
        // A carried value no later stage reads is dropped here (released, or left to be collected).
        for (const name of spec.inputs)
          if (!this.stages.slice(s + 1).some((later) => later.spec.inputs.includes(name))) drop(name);
        const outputs: Record<string, RunOutput> = {};
        for (const name of fetch) outputs[name] = out[name];
        yield { stage: s, outputs };
      }
    } finally {
      for (const name of [...carried.keys()]) drop(name);
      release();
    }
  }

  async release(): Promise<void> {
    const release = await this.queue.acquire();
    try {
      await Promise.all(this.stages.map((s) => s.session.release()));
    } finally {
      release();
    }
  }
}
