// An informer, as client-go's reflector and store: list (in pages), then watch from the
// list's resourceVersion with bookmarks; a watch that ends is resumed from the last
// resourceVersion seen, one that expired (410 Gone) or failed starts over with a fresh
// list, with backoff. The cache holds each object as `transform` leaves it.
import type { Logger } from 'pino';
import { ApiError } from '../errors';
import type { KubeClient, Query } from './client';

export interface CachedObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

export interface InformerOptions<T> {
  client: KubeClient;
  /** Collection path, e.g. /api/v1/pods. */
  path: string;
  labelSelector?: string;
  log: Logger;
  /** Called with every added, changed or deleted object. */
  onChange: (obj: T) => void;
  /** What the cache keeps of each object (listed or watched); all of it when unset. */
  transform?: (obj: T) => T;
}

const PAGE = 100;
/** The API server ends a watch after this long (it is resumed): a silent stream is noticed. */
const WATCH_SECONDS = 300;

const keyOf = (o: CachedObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class Informer<T extends CachedObject> {
  private readonly store = new Map<string, T>();
  private resourceVersion = '';
  private synced = false;
  private stopped = true;
  private restartDelayMs = 0;
  private timer?: NodeJS.Timeout;
  private current?: { abort: () => void };

  constructor(private readonly o: InformerOptions<T>) {}

  /** Lists, then keeps watching; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.relist().catch((e: unknown) => this.retry(e));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.current?.abort();
  }

  /** True once the first list succeeded: the cache holds the cluster's state. */
  get hasSynced(): boolean {
    return this.synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.store.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): readonly T[] {
    const all = [...this.store.values()];
    return namespace === undefined ? all : all.filter((x) => x.metadata?.namespace === namespace);
  }

  private get query(): Query {
    return { labelSelector: this.o.labelSelector };
  }

  /** A fresh list, in pages, trimmed as it comes; what went away meanwhile counts as deleted. */
  private async relist(): Promise<void> {
    const transform = this.o.transform ?? ((x: T) => x);
    const fresh = new Map<string, T>();
    let next: string | undefined;
    let version = '';
    do {
      const page = await this.o.client.get<{ items: T[]; metadata?: { continue?: string; resourceVersion?: string } }>(this.o.path, {
        ...this.query,
        limit: PAGE,
        continue: next,
      });
      for (const item of page.items) {
        const t = transform(item);
        fresh.set(keyOf(t), t);
      }
      next = page.metadata?.continue || undefined;
      version = page.metadata?.resourceVersion ?? version;
    } while (next);
    if (this.stopped) return;
    const gone = [...this.store].filter(([k]) => !fresh.has(k)).map(([, v]) => v);
    const changed = [...fresh]
      .filter(([k, v]) => this.store.get(k)?.metadata?.resourceVersion !== v.metadata?.resourceVersion)
      .map(([, v]) => v);
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    this.resourceVersion = version;
    this.synced = true;
    this.restartDelayMs = 0;
    for (const x of [...gone, ...changed]) this.o.onChange(x);
    this.watch();
  }

  private watch(): void {
    if (this.stopped) return;
    const transform = this.o.transform ?? ((x: T) => x);
    let expired = false;
    // A stream that went silent (a dead connection the API server cannot close) is given up.
    let idle: NodeJS.Timeout | undefined;
    const alive = () => {
      clearTimeout(idle);
      idle = setTimeout(
        () => {
          expired = true;
          w.abort();
        },
        (WATCH_SECONDS + 30) * 1000,
      );
    };
    const w = this.o.client.watch(
      this.o.path,
      { ...this.query, resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS },
      (type, raw) => {
        if (type === 'ERROR') {
          // 410 Gone: the resourceVersion is too old; only a fresh list will do.
          expired = true;
          if ((raw as { code?: number }).code !== 410) this.o.log.warn({ path: this.o.path, status: raw }, 'watch error');
          w.abort();
          return;
        }
        const obj = raw as T;
        if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
        if (type === 'BOOKMARK') return;
        const t = transform(obj);
        if (type === 'DELETED') this.store.delete(keyOf(t));
        else this.store.set(keyOf(t), t);
        this.o.onChange(t);
      },
    );
    this.current = w;
    alive();
    w.done
      .finally(() => clearTimeout(idle))
      .then(
        () => {
          if (this.stopped) return;
          if (expired) void this.relist().catch((e: unknown) => this.retry(e));
          else this.watch(); // the API server's timeout: resume where it stopped
        },
        (e: unknown) => this.retry(e),
      );
  }

  private retry(err: unknown): void {
    if (this.stopped) return;
    this.restartDelayMs = Math.min(Math.max(this.restartDelayMs * 2, 500), 30_000);
    const gone = err instanceof ApiError && err.code === 410;
    this.o.log[gone ? 'debug' : 'warn'](
      { path: this.o.path, err: String(err), retryInMs: this.restartDelayMs },
      'watch failed; listing again',
    );
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.relist().catch((e: unknown) => this.retry(e)), this.restartDelayMs);
  }
}
