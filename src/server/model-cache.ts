/**
 * Loaded models, kept for the next request under a memory cap. Each model is loaded once however many
 * requests ask at the same time (they share one promise), and its jobs run one after another (a queue per
 * model: two texts never run at once on one model, which would double its peak memory). When the models'
 * estimated memory passes the cap, the least recently used idle ones are released; the model just used
 * always stays, even alone above the cap. Every request first compares the model's files with their state
 * when it loaded (OpenedModel.files): a model whose files changed is retired (released once its running jobs
 * end) and loaded again, and one whose files became unreadable or forbidden answers that error.
 */
import { HttpError } from './http-error.js';
import type { Progress } from '../core/protocol.js';
import type { AttentionModel } from '../models/model.js';

export interface CacheOptions {
  /** Estimated bytes the loaded models may take together. */
  capBytes: number;
  /** Jobs waiting on one model beyond which new ones are refused (503). */
  maxQueue: number;
  open(key: string, onProgress: (p: Progress) => void): Promise<OpenedModel>;
}

/** A loaded model and how to tell whether its files changed since. */
export interface OpenedModel {
  model: AttentionModel;
  /** The state of its files (names, real paths, inodes, sizes, times) taken before loading them. */
  state: string;
  /** Their state now; throws when one may no longer be read (gone, or linking outside the model roots). */
  files(): Promise<string>;
}

interface Entry {
  key: string;
  loading: Promise<OpenedModel>;
  /** The model once loaded, until released. */
  model: AttentionModel | null;
  opened: OpenedModel | null;
  /** Out of the cache (its files changed): released when its last job ends. */
  retired: boolean;
  /** Which load this is, over the cache's life: results of another load of the same key may be stale. */
  generation: number;
  /** Progress listeners of a load under way. */
  listeners: Set<(p: Progress) => void>;
  lastUsed: number;
  /** Jobs queued or running. */
  pending: number;
  queue: Promise<unknown>;
}

export interface CacheStatus {
  key: string;
  bytes: number;
  lastUsed: number;
  pending: number;
}

/** Memory a loaded model holds, estimated from its weight bytes (weights dominate; activations are per run). */
export const estimateBytes = (m: AttentionModel) => m.weightBytes;

export class ModelCache {
  private readonly entries = new Map<string, Entry>();
  private clock = 0;
  private loads = 0;

  constructor(private readonly options: CacheOptions) {}

  /** The model under `key`, loading it (once) if needed; `onProgress` hears the load's progress. */
  async get(key: string, onProgress?: (p: Progress) => void): Promise<AttentionModel> {
    const entry = await this.current(key);
    if (onProgress && !entry.model) entry.listeners.add(onProgress);
    try {
      return (await entry.loading).model;
    } finally {
      if (onProgress) entry.listeners.delete(onProgress);
    }
  }

  /**
   * The model under `key` loaded (once) and its files checked, as `get`; returns the number of this load, which
   * changes when the model is loaded again (its files changed), so results kept from before can be told apart.
   */
  async generation(key: string): Promise<number> {
    const entry = await this.current(key);
    await entry.loading;
    return entry.generation;
  }

  /** Runs `job` on the model under `key` after the jobs queued on it before. */
  async run<T>(key: string, job: (m: AttentionModel) => Promise<T>): Promise<T> {
    const entry = await this.current(key);
    if (entry.pending >= this.options.maxQueue)
      throw new HttpError(
        503,
        `the server is busy: ${entry.pending} requests are waiting for this model; try again shortly`,
      );
    // Counted from now on, so the model cannot be evicted between its load and this job.
    entry.pending++;
    try {
      const { model } = await entry.loading;
      entry.lastUsed = ++this.clock;
      // A macrotask turn before each job: TF.js runs resolve on microtasks only, so without it a busy queue
      // would keep the event loop from reading new requests (and from answering anything else) until it drains.
      const result = entry.queue.then(() => new Promise((resolve) => setImmediate(resolve))).then(() => job(model));
      entry.queue = result.catch(() => undefined);
      return await result;
    } finally {
      entry.pending--;
      entry.lastUsed = ++this.clock;
      if (entry.retired) this.releaseIdle(entry);
      else if (entry.model) this.evict(entry);
    }
  }

  /**
   * The entry under `key`, its files checked against their state at load (a walk of a few stats): when they
   * changed, the entry is retired and a new one loads; when the check fails, the entry is retired and the
   * request gets the error. An entry still loading took its state when it began.
   */
  private async current(key: string): Promise<Entry> {
    const entry = this.ensure(key);
    if (!entry.opened) return entry;
    let now: string;
    try {
      now = await entry.opened.files();
    } catch (e) {
      this.retire(entry);
      throw e;
    }
    if (now === entry.opened.state) return entry;
    this.retire(entry);
    return this.ensure(key);
  }

  private retire(entry: Entry): void {
    if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    entry.retired = true;
    this.releaseIdle(entry);
  }

  /** Releases a retired entry's model once no job waits on it. */
  private releaseIdle(entry: Entry): void {
    if (entry.pending > 0 || !entry.model) return;
    const { model } = entry;
    entry.model = null;
    void entry.queue.then(() => model.release()).catch(() => undefined);
  }

  private ensure(key: string): Entry {
    const existing = this.entries.get(key);
    if (existing) return existing;
    const listeners = new Set<(p: Progress) => void>();
    const entry: Entry = {
      key,
      model: null,
      opened: null,
      retired: false,
      generation: ++this.loads,
      listeners,
      lastUsed: ++this.clock,
      pending: 0,
      queue: Promise.resolve(),
      // Opened on a later turn of the event loop, so the caller's progress listener is in place for the first
      // event (the caller may await the file check of `current` first).
      loading: new Promise((resolve) => setImmediate(resolve)).then(() =>
        this.options.open(key, (p) => listeners.forEach((l) => l(p))),
      ),
    };
    this.entries.set(key, entry);
    entry.loading.then(
      (opened) => {
        entry.model = opened.model;
        entry.opened = opened;
        entry.listeners.clear();
        this.evict(entry);
      },
      () => {
        // A failed load is forgotten, so the next request tries again (the model may have been downloaded since).
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry;
  }

  status(): CacheStatus[] {
    return [...this.entries.values()]
      .filter((e) => e.model)
      .map((e) => ({ key: e.key, bytes: estimateBytes(e.model!), lastUsed: e.lastUsed, pending: e.pending }));
  }

  /** Releases least recently used idle models while the total is above the cap, never `keep`. */
  private evict(keep: Entry): void {
    const loaded = () => [...this.entries.values()].filter((e) => e.model);
    let total = loaded().reduce((s, e) => s + estimateBytes(e.model!), 0);
    for (const e of loaded().sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (total <= this.options.capBytes) break;
      if (e === keep || e.pending > 0) continue;
      this.entries.delete(e.key);
      total -= estimateBytes(e.model!);
      void e.model!.release().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(
      entries.map(async (e) => {
        const opened = await e.loading.catch(() => null);
        await e.queue;
        await opened?.model.release().catch(() => undefined);
      }),
    );
  }
}
