// An informer (client-node's ListWatch) that keeps running: client-node relists on 410
// Gone but stops on any other watch or list error, so this restarts it with backoff.
import { type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeClient, Query } from './client';

export interface InformerOptions<T> {
  kubeConfig: KubeConfig;
  client: KubeClient;
  /** Collection path, e.g. /api/v1/pods. */
  path: string;
  labelSelector?: string;
  log: Logger;
  /** Called with every added, changed or deleted object. */
  onChange: (obj: KubernetesObject) => void;
  /** What the cache keeps of each object (listed or watched); all of it when unset. */
  transform?: (obj: T) => T;
}

const PAGE = 500;

export class Informer<T extends KubernetesObject> {
  private readonly informer;
  private stopped = false;
  private synced = false;
  private restartDelayMs = 0;
  private restartTimer?: NodeJS.Timeout;

  constructor(private readonly opts: InformerOptions<T>) {
    const query: Query = { labelSelector: opts.labelSelector };
    const transform = opts.transform ?? ((o: T) => o);
    // In pages, each trimmed as it comes: a list of ten thousand whole objects would be
    // held (and parsed) at once otherwise.
    const list = async () => {
      const items: T[] = [];
      let result: KubernetesListObject<T>;
      let next: string | undefined;
      do {
        result = await opts.client.get<KubernetesListObject<T>>(opts.path, { ...query, limit: PAGE, continue: next });
        for (const item of result.items) items.push(transform(item));
        next = result.metadata?._continue;
      } while (next);
      result.items = items;
      this.synced = true;
      this.restartDelayMs = 0;
      return result;
    };
    // Watched objects are trimmed before the cache stores them, as listed ones are.
    const watch = new Watch(opts.kubeConfig);
    const trimming = {
      watch: (path: string, q: Query, cb: (phase: string, obj: unknown, raw: unknown) => void, done: (err: unknown) => void) =>
        watch.watch(path, q, (phase, obj, raw) => cb(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? obj : transform(obj as T), raw), done),
    } as Watch;
    this.informer = new ListWatch<T>(opts.path, trimming, list, false, opts.labelSelector);
    this.informer.on('add', opts.onChange);
    this.informer.on('update', opts.onChange);
    this.informer.on('delete', opts.onChange);
    this.informer.on('error', (err: unknown) => this.restart(err));
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.informer.stop();
  }

  /** True once the first list succeeded: the cache holds the cluster's state. */
  get hasSynced(): boolean {
    return this.synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    this.restartDelayMs = Math.min(Math.max(this.restartDelayMs * 2, 500), 30_000);
    this.opts.log.warn({ path: this.opts.path, err: String(err), retryInMs: this.restartDelayMs }, 'watch failed; restarting');
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) this.informer.start().catch((e: unknown) => this.restart(e));
    }, this.restartDelayMs);
  }
}
