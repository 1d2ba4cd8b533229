// A work queue of keys in the manner of client-go's: a key waiting to be processed is held
// once however often it is added; a key being processed is never handed to a second
// worker, and if it is added meanwhile it is processed again afterwards; failures back off
// exponentially per key; delayed adds replace sleeping. Two lanes: work on migrations in
// flight is handed out before new ones are started (finish what was started), so a
// migration whose copy turned Ready does not wait behind every record created after it.

import type { Logger } from 'pino';
import { isConflict } from '../errors';

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Told of adds, retries, and how long keys waited and were worked on (seconds). */
  observer?: QueueObserver;
}

export interface QueueObserver {
  added(): void;
  retried(): void;
  waited(seconds: number): void;
  worked(seconds: number): void;
}

/** `first`: work on something in flight; `later`: something new (a record not started yet). */
export type Lane = 'first' | 'later';

export class WorkQueue {
  /** Keys waiting, by lane; a key moved to the first lane leaves a stale entry behind, skipped. */
  private readonly lanes: Record<Lane, string[]> = { first: [], later: [] };
  /** Keys waiting or added while being processed, and the lane they wait in. */
  private readonly dirty = new Map<string, Lane>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly observer?: QueueObserver;
  private readonly queuedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();

  constructor(opts: WorkQueueOptions = {}) {
    this.baseDelayMs = opts.baseDelayMs ?? 200;
    this.maxDelayMs = opts.maxDelayMs ?? 60_000;
    this.observer = opts.observer;
  }

  add(key: string, lane: Lane = 'first'): void {
    if (this.shuttingDown) return;
    const was = this.dirty.get(key);
    if (was === 'first' || (was === 'later' && lane === 'later')) return;
    if (was === 'later') {
      // Promoted: it was new, now something in flight needs it.
      this.dirty.set(key, 'first');
      if (!this.processing.has(key)) this.lanes.first.push(key);
      return;
    }
    this.observer?.added();
    this.dirty.set(key, lane);
    if (this.processing.has(key)) return; // re-queued by done()
    this.queuedAt.set(key, performance.now());
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.start(key);
      waiter(key);
    } else {
      this.lanes[lane].push(key);
    }
  }

  /** The next waiting key, first lane first. */
  private next(): string | undefined {
    for (const lane of ['first', 'later'] as const) {
      const q = this.lanes[lane];
      while (q.length) {
        const key = q.shift()!;
        if (this.dirty.get(key) === lane && !this.processing.has(key)) return key;
      }
    }
    return undefined;
  }

  private start(key: string): void {
    const now = performance.now();
    this.observer?.waited((now - (this.queuedAt.get(key) ?? now)) / 1000);
    this.queuedAt.delete(key);
    this.processing.add(key);
    this.startedAt.set(key, now);
  }

  /** Seconds of work in progress, summed, and the longest (client-go's unfinished work). */
  unfinishedWork(): { seconds: number; longest: number } {
    const now = performance.now();
    let seconds = 0;
    let longest = 0;
    for (const t of this.startedAt.values()) {
      seconds += (now - t) / 1000;
      longest = Math.max(longest, (now - t) / 1000);
    }
    return { seconds, longest };
  }

  /** Adds the key after `ms`; an earlier pending delayed add for the key wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Adds the key after a delay that doubles with each failure of that key. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.observer?.retried();
    const delay = Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the failure count of the key (after it was processed successfully). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** The next key to process; undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.next();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.start(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.observer?.worked((performance.now() - started) / 1000);
    const lane = this.dirty.get(key);
    if (lane) {
      this.dirty.delete(key);
      this.add(key, lane);
    }
  }

  /** Keys waiting to be processed. */
  get length(): number {
    let n = 0;
    for (const key of this.dirty.keys()) if (!this.processing.has(key)) n++;
    return n;
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}

/**
 * One worker of a controller: hands the queue's keys to `reconcile` until the queue shuts
 * down. A key is looked at again after the delay `reconcile` returns; after a conflict
 * (someone else wrote the object meanwhile) 200 ms later; after any other failure with
 * backoff. `kind` names the key in the log (nodeDrain, reclaimPolicy).
 */
export async function runWorker(
  queue: WorkQueue,
  reconcile: (key: string) => Promise<number | undefined>,
  log: Logger,
  kind: string,
): Promise<void> {
  for (;;) {
    const key = await queue.get();
    if (key === undefined) return;
    try {
      const after = await reconcile(key);
      queue.forget(key);
      if (after !== undefined) queue.addAfter(key, after);
    } catch (e) {
      const conflict = isConflict(e);
      const retryInMs = conflict ? (queue.forget(key), queue.addAfter(key, 200), 200) : queue.addRateLimited(key);
      log[conflict ? 'debug' : 'error'](
        { [kind]: key, err: e instanceof Error ? e.message : String(e), retryInMs },
        `${kind} reconcile failed; retrying`,
      );
    } finally {
      queue.done(key);
    }
  }
}
