/**
 * A session built on first use — a model's generation graph, which `attention()` never needs — shared by the
 * callers that ask while it builds, forgotten when the build fails (the next call tries again, the error is
 * not cached) and released with its model.
 */
import type { Session } from '../runtime/session.js';

export class LazySession {
  private pending?: Promise<Session>;

  constructor(private readonly build: () => Promise<Session>) {}

  get(): Promise<Session> {
    this.pending ??= this.build();
    const pending = this.pending;
    pending.catch(() => {
      if (this.pending === pending) this.pending = undefined;
    });
    return pending;
  }

  /** Releases the session if it was built (waiting for a build under way); a failed build has nothing to release. */
  async release(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    if (pending)
      await pending.then(
        (s) => s.release(),
        () => undefined,
      );
  }
}
