// Writes a PodMigration's status and finalizer, and remembers its own writes so that a
// reconcile working from an earlier one of them is skipped.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { FINALIZER, type PodMigration, type PodMigrationStatus } from '../api/types';
import { isConflict } from '../errors';
import { type KubeClient, paths } from '../kube/client';

/** How long a write in flight is expected to show in the cache. */
const EXPECTED_MS = 10_000;

/** What of a record's metadata others change and a reconcile must see: the cancel annotation, a deletion, the finalizers. */
function sameMetadata(a: PodMigration, b: PodMigration): boolean {
  return (
    isDeepStrictEqual(a.metadata.annotations ?? {}, b.metadata.annotations ?? {}) &&
    isDeepStrictEqual(a.metadata.finalizers ?? [], b.metadata.finalizers ?? []) &&
    a.metadata.deletionTimestamp === b.metadata.deletionTimestamp
  );
}

export class StatusWriter {
  /**
   * The resourceVersions this operator wrote to a record (oldest first), until the cache
   * shows the newest. A reconcile is asked for by the watch event of each write; one whose
   * cached record is an earlier write of ours would work from a status already replaced
   * (and meet a conflict): it is skipped, since the newest write's event is on its way.
   */
  private readonly written = new Map<string, string[]>();
  /**
   * What the records look like after the writes in flight. A watch event can arrive before
   * the answer to the write it tells of, so a write is recognised by its content too.
   */
  private readonly expected = new Map<string, { match: (o: PodMigration) => boolean; until: number }[]>();

  constructor(private readonly client: KubeClient) {}

  private expect(key: string, match: (o: PodMigration) => boolean): void {
    const now = Date.now();
    const list = (this.expected.get(key) ?? []).filter((e) => e.until > now);
    list.push({ match, until: now + EXPECTED_MS });
    this.expected.set(key, list);
  }

  /** Whether the cache shows an earlier write of ours than the newest. */
  cacheBehind(key: string, resourceVersion: string | undefined): boolean {
    const mine = this.written.get(key);
    if (!mine) return false;
    const i = resourceVersion ? mine.indexOf(resourceVersion) : -1;
    if (i >= 0 && i < mine.length - 1) return true;
    this.written.delete(key); // caught up, or someone else wrote since
    return false;
  }

  /** Whether this change to the record is one of this operator's own recent writes. */
  isOwn(key: string, pm: PodMigration): boolean {
    const rv = pm.metadata.resourceVersion;
    if (rv && (this.written.get(key) ?? []).includes(rv)) return true;
    const list = this.expected.get(key);
    const i = list?.findIndex((e) => e.until > Date.now() && e.match(pm)) ?? -1;
    if (i < 0) return false;
    list!.splice(i, 1);
    return true;
  }

  forget(key: string): void {
    this.written.delete(key);
    this.expected.delete(key);
  }

  private wrote(pm: PodMigration, resourceVersion: string | undefined): string | undefined {
    if (!resourceVersion) return resourceVersion;
    const key = `${pm.metadata.namespace}/${pm.metadata.name}`;
    const mine = this.written.get(key) ?? [];
    mine.push(resourceVersion);
    this.written.set(key, mine.slice(-8));
    return resourceVersion;
  }

  /**
   * Writes the status with the resourceVersion it was computed from. On a conflict that
   * came from another writer touching only metadata (labels, annotations), the status
   * this was computed from is still current, so the write is retried at once with the
   * fresh resourceVersion; if the status itself moved on, the conflict goes back to the
   * queue and the migration is reconciled afresh. Returns the new resourceVersion.
   */
  async status(pm: PodMigration, before: PodMigrationStatus, status: PodMigrationStatus, log: Logger): Promise<string | undefined> {
    const { namespace, name } = pm.metadata;
    let resourceVersion = pm.metadata.resourceVersion;
    this.expect(`${namespace}/${name}`, (o) => isDeepStrictEqual(o.status ?? {}, status) && sameMetadata(o, pm));
    for (let attempt = 1; ; attempt++) {
      try {
        const written = await this.client.replace(paths.migrationStatus(namespace, name), {
          ...pm,
          metadata: { ...pm.metadata, resourceVersion },
          status,
        });
        return this.wrote(pm, written.metadata.resourceVersion);
      } catch (e) {
        if (!isConflict(e) || attempt >= 5) throw e;
        const fresh = await this.client.get<PodMigration>(paths.migration(namespace, name));
        if (!isDeepStrictEqual(fresh.status ?? {}, before)) throw e;
        log.debug({ attempt }, 'status write conflicted with a metadata change; retrying with the fresh resourceVersion');
        resourceVersion = fresh.metadata.resourceVersion;
      }
    }
  }

  /** Adds or removes the finalizer; returns the record's new resourceVersion. */
  async finalizer(pm: PodMigration, present: boolean): Promise<string | undefined> {
    const current = pm.metadata.finalizers ?? [];
    if (current.includes(FINALIZER) === present) return pm.metadata.resourceVersion;
    const finalizers = present ? [...current, FINALIZER] : current.filter((f) => f !== FINALIZER);
    this.expect(`${pm.metadata.namespace}/${pm.metadata.name}`, (o) =>
      sameMetadata(o, { ...pm, metadata: { ...pm.metadata, finalizers } }),
    );
    const written = await this.client.mergePatch<PodMigration>(paths.migration(pm.metadata.namespace, pm.metadata.name), {
      metadata: { finalizers, resourceVersion: pm.metadata.resourceVersion },
    });
    return this.wrote(pm, written.metadata.resourceVersion);
  }
}
