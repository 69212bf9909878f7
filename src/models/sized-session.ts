/**
 * A model's extracting session, of the kind each input's length asks for: one GroupedSession (one run of the
 * whole graph, as fast as the plain pass, every layer's outputs held at once) while they fit a budget, a
 * StagedSession (a session per layer, one layer's outputs at a time) above it. Both kinds have the same stages
 * (graph/stages.ts splits the graph at the groups GroupedSession hands out), so a layer stream reads either.
 *
 * One kind is held at a time: each session holds its own copy of the weights in onnxruntime (prepacked matrices),
 * so a call that needs the other kind waits for the runs under way, releases the current session, then creates
 * the other — the weights are never held twice, at the cost of a session's creation at each change of kind
 * (bench/RESULTS.md measures both). The first session is either created at load (of the kind short inputs run on)
 * or left to the first call (LoadOptions.lazy), which then creates the kind its input needs: a one-shot run of
 * a long input creates one session, not two.
 */
import { AttnvizError, check } from '../core/errors.js';
import { INPUTS } from '../graph/family.js';
import { Queue, type Feed, type GroupedRunner, type RunOutput, type StageOutput } from '../runtime/session.js';

/** One session for the whole graph, or one per stage. */
export type SessionKind = 'one' | 'staged';

/** Creates a session of a kind. */
export type SessionFactory = (kind: SessionKind) => Promise<GroupedRunner>;

export class SizedSession implements GroupedRunner {
  private readonly queue = new Queue();
  private held: { kind: SessionKind; session: GroupedRunner } | undefined;
  /** The factory of the first session when none was created at load, dropped once used (or at release). */
  private firstFactory: SessionFactory | undefined;
  private released = false;
  /** Sessions created so far, the one given at load included. */
  private createdCount = 0;

  constructor(
    /** The kind an input of this many tokens runs on. */
    private readonly kindFor: (tokens: number) => SessionKind,
    /** Creates a session of a kind (after a change of kind, and on first need when `first` is a factory). */
    private readonly create: SessionFactory,
    /** The outputs of each stage, in order, the last stage's included (GroupedSession's groups). */
    private readonly stages: readonly (readonly string[])[],
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    /**
     * The session created at load, held until a call needs the other kind; or the factory the first call creates
     * its kind with (one that may reuse what the load built, such as the graph, which `create` builds again).
     */
    first: { kind: SessionKind; session: GroupedRunner } | { create: SessionFactory },
  ) {
    if ('session' in first) {
      this.held = first;
      this.createdCount = 1;
    } else this.firstFactory = first.create;
  }

  oneRun(tokens: number): boolean {
    return this.kindFor(tokens) === 'one';
  }

  get stageCount(): number {
    return this.stages.length;
  }

  stageOutputs(s: number): readonly string[] {
    return this.stages[s];
  }

  /**
   * The kind held now (none before the first call when created lazily, after release, or after a creation that
   * failed: the next call tries again).
   */
  get kind(): SessionKind | undefined {
    return this.held?.kind;
  }

  /** How many sessions of either kind were created so far (each a load's worth of work). */
  get created(): number {
    return this.createdCount;
  }

  run(
    feeds: Record<string, Feed>,
    into?: Record<string, RunOutput>,
    fetch?: readonly string[],
  ): Promise<Record<string, RunOutput>> {
    return this.queue.run(async () => (await this.sessionFor(feeds)).run(feeds, into, fetch));
  }

  async *stream(
    feeds: Record<string, Feed>,
    plan: (stage: number) => { fetch: readonly string[]; into?: Record<string, RunOutput> },
  ): AsyncGenerator<StageOutput> {
    const release = await this.queue.acquire();
    try {
      yield* (await this.sessionFor(feeds)).stream(feeds, plan);
    } finally {
      release();
    }
  }

  /** The session for these feeds' length, of the kind held or, after releasing that one, newly created. */
  private async sessionFor(feeds: Record<string, Feed>): Promise<GroupedRunner> {
    if (this.released) throw new AttnvizError('this model was released');
    const ids = feeds[INPUTS.inputIds];
    check(ids !== undefined, `the extracting graph's feeds have no ${INPUTS.inputIds}`);
    const kind = this.kindFor(ids.dims[0]);
    if (this.held?.kind === kind) return this.held.session;
    // Nothing runs on the held session now (this queue is ours): it goes before the other is created.
    const old = this.held;
    this.held = undefined;
    await old?.session.release();
    const create = this.firstFactory ?? this.create;
    this.firstFactory = undefined;
    const session = await create(kind);
    this.createdCount++;
    this.held = { kind, session };
    return session;
  }

  release(): Promise<void> {
    return this.queue.run(async () => {
      this.released = true;
      this.firstFactory = undefined;
      const old = this.held;
      this.held = undefined;
      await old?.session.release();
    });
  }
}
