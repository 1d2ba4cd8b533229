// A NodeDrain, converged: cordon the node (its intent on record first, so that a restarted
// operator, or the NodeDrain's deletion, uncordons only a node it cordoned), then take
// each pod in scope once, and see it through:
//   - Migrate: what a migration moves without downtime (Copy or Surge mode) gets a
//     PodMigration of its own (target left to kube-scheduler, labelled and owned by the
//     NodeDrain); the in-flight limits pace them. Migrated once its source is gone.
//   - Evict: what only its owner can recreate (Steer mode), what a migration refuses or
//     fails to move, and pods not Running, through the Eviction API (budgets respected,
//     blocked evictions retried), as kubectl drain does; unless spec.evictUnmovable is
//     false, when they are left and reported.
//   - Skip: DaemonSet and mirror pods (kubectl drain --ignore-daemonsets leaves them), and
//     pods someone else removes first.
// Each pod's action and result are kept in status.items, and the counts derived from them,
// so they survive a restart and are never counted twice. Drained once every pod has a
// result and none that was moved or evicted is left on the node.
import type { V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  ANNOTATION_CANCEL,
  ANNOTATION_CLAIM,
  API_VERSION,
  DRAIN_FINALIZER,
  DRAIN_KIND,
  type DrainItem,
  KIND,
  LABEL_CREATED_BY,
  LABEL_NODE_DRAIN,
  type NodeDrain,
  type NodeDrainStatus,
  type PodMigration,
  TERMINAL_PHASES,
} from '../api/types';
import { unfinishedHolder } from '../actions/claim';
import { evictPod } from '../actions/evict';
import { MigrationFailure, isAlreadyExists, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import type { Environment } from '../migration/context';
import { nodeBound } from '../migration/preflight';
import { kstatusConditions } from '../migration/status';
import { selectorMatches, selectorProblem } from '../migration/surge';
import { chooseMode } from '../modes/chooseMode';
import { countItems, drainMigrationName, finished } from './scope';
import { isDeepStrictEqual } from 'node:util';

/** How often a drain in progress looks again (its migrations and evictions move on their own). */
export const DRAIN_POLL_MS = 2_000;

export const drainPath = (name?: string) =>
  `/apis/migration.ai-storage.io/v1alpha1/nodedrains${name ? `/${encodeURIComponent(name)}` : ''}`;

export interface DrainReconcilerOptions {
  client: KubeClient;
  drains: { get(name: string): NodeDrain | undefined; list(): readonly NodeDrain[] };
  /** The PodMigrations, as the operator's cache holds them. */
  migrations: { get(name: string, namespace?: string): PodMigration | undefined; list(namespace?: string): readonly PodMigration[] };
  env: Environment;
  log: Logger;
  /** The one namespace the operator watches, if any: pods elsewhere are not this drain's. */
  namespace?: string;
  clock?: () => Date;
}

const ended = (m: PodMigration) => TERMINAL_PHASES.includes(m.status?.phase ?? 'Pending');
const sourceGone = (m: PodMigration) => m.status?.phase === 'CollectingMetrics' || m.status?.phase === 'Completed';

export class DrainReconciler {
  constructor(private readonly o: DrainReconcilerOptions) {}

  private now(): string {
    return (this.o.clock?.() ?? new Date()).toISOString();
  }

  /** Converges one NodeDrain; returns when to look again (ms). */
  async reconcile(name: string): Promise<number | undefined> {
    const cached = this.o.drains.get(name);
    if (!cached) return undefined;
    if (cached.metadata.deletionTimestamp) return this.finalize(name);
    const phase = cached.status?.phase;
    if (phase === 'Drained' || phase === 'Failed') return undefined;
    const { client } = this.o;
    // As the API server holds it now: the cache may lag behind this reconciler's last write,
    // and a write from a stale copy would only meet a conflict.
    const fresh = await client.get<NodeDrain>(drainPath(name)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!fresh) return undefined;
    if (fresh.metadata.deletionTimestamp) return this.finalize(name);
    let nd: NodeDrain = fresh;
    if (!nd.metadata.finalizers?.includes(DRAIN_FINALIZER)) {
      nd = await client.mergePatch<NodeDrain>(drainPath(name), {
        metadata: { resourceVersion: nd.metadata.resourceVersion, finalizers: [...(nd.metadata.finalizers ?? []), DRAIN_FINALIZER] },
      });
    }
    const before = nd.status ?? {};
    const status: NodeDrainStatus = structuredClone(before);
    const now = this.now();
    const write = async () => {
      status.pods = countItems(status.items ?? []);
      status.conditions = kstatusConditions(status.conditions, {
        phase: status.phase ?? 'Pending',
        reason: status.reason || (status.phase ?? 'Pending'),
        message: status.message ?? '',
        done: status.phase === 'Drained' ? 'Drained' : undefined,
        stalled: status.phase === 'Failed',
        generation: nd.metadata.generation,
        now,
      });
      status.observedGeneration = nd.metadata.generation;
      if (isDeepStrictEqual(status, nd.status ?? {})) return;
      nd = await client.replace<NodeDrain>(`${drainPath(name)}/status`, { ...nd, status });
    };

    const nodeName = nd.spec.nodeName;
    // One NodeDrain per node: the one created first drains it; a later one would share its
    // pods and migrations, and uncordon the node under it when deleted.
    const first = this.firstFor(nodeName);
    if (first && first.metadata.name !== name && !status.startTime) {
      Object.assign(status, {
        phase: 'Failed',
        reason: 'NodeAlreadyDraining',
        completionTime: now,
        message: `NodeDrain ${first.metadata.name} drains node ${nodeName} already; delete it first to drain the node again`,
      });
      await write();
      return undefined;
    }
    // The CRD's schema refuses malformed selectors; one stored before it did ends the drain before it starts.
    const bad =
      selectorProblem(nd.spec.namespaceSelector, 'spec.namespaceSelector') ?? selectorProblem(nd.spec.podSelector, 'spec.podSelector');
    if (bad && !status.startTime) {
      Object.assign(status, { phase: 'Failed', reason: 'InvalidSpec', message: bad, completionTime: now });
      await write();
      return undefined;
    }
    const node = await client.get<V1Node>(paths.node(nodeName)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!node) {
      Object.assign(status, { phase: 'Failed', reason: 'NodeNotFound', message: `node ${nodeName} does not exist`, completionTime: now });
      await write();
      return undefined;
    }
    if (!status.startTime) Object.assign(status, { phase: 'Draining', startTime: now, message: `draining node ${nodeName}` });
    // Cordoned first, its intent on record before the node is touched, so that only a node
    // this NodeDrain cordoned is uncordoned when it goes (one someone else uncordons meanwhile
    // is cordoned again, and then counts as its own).
    if (!node.spec?.unschedulable) {
      if (!status.cordoned) {
        status.cordoned = true;
        await write();
      }
      await client.mergePatch(paths.node(nodeName), { spec: { unschedulable: true } });
      this.o.log.info({ nodeDrain: name, node: nodeName }, 'cordoned the node');
    } else status.cordoned ??= false;

    const pods = await this.podsInScope(nd);
    const items = (status.items ??= []);
    const known = new Set(items.map((i) => i.uid));
    for (const pod of pods) if (!known.has(pod.metadata!.uid!)) items.push(await this.classify(nd, pod));
    const onNode = new Map(pods.map((p) => [p.metadata!.uid!, p]));
    for (const item of items) if (!item.result) await this.progress(nd, item, onNode.get(item.uid));

    const unfinished = items.filter((i) => !i.result);
    const leaving = items.filter((i) => (i.result === 'Migrated' || i.result === 'Evicted') && onNode.has(i.uid));
    const c = countItems(items);
    const timeout = nd.spec.timeoutSeconds;
    if (!unfinished.length && !leaving.length) {
      const left = items.filter((i) => (i.result === 'Failed' || i.result === 'Skipped') && onNode.has(i.uid));
      Object.assign(status, {
        phase: 'Drained',
        completionTime: now,
        message:
          `node ${nodeName} drained: ${c.migrated} migrated, ${c.evicted} evicted, ${c.failed} failed, ${c.skipped} skipped` +
          (left.length
            ? `; left on the node: ${left
                .slice(0, 5)
                .map((i) => `${i.namespace}/${i.name}`)
                .join(', ')}${left.length > 5 ? ` and ${left.length - 5} more` : ''}`
            : ''),
      });
    } else if (timeout && Date.parse(now) - Date.parse(status.startTime!) > timeout * 1000) {
      // Ended: what it started and can still be undone is cancelled, as a deletion would.
      const cancelled = await this.cancelMigrations(name);
      Object.assign(status, {
        phase: 'Failed',
        reason: 'Timeout',
        completionTime: now,
        message:
          `node ${nodeName} not drained within ${timeout}s: ${c.pending} pods pending (${unfinished
            .slice(0, 3)
            .map((i) => `${i.namespace}/${i.name}: ${i.message}`)
            .join('; ')})` + (cancelled ? `; ${cancelled} migrations not past their point of no return cancelled` : ''),
      });
    } else {
      const waiting = unfinished.length ? `${c.pending} pending` : `${leaving.length} leaving the node`;
      status.message = `draining node ${nodeName}: ${c.migrated} migrated, ${c.evicted} evicted, ${waiting}`;
    }
    await write();
    return status.phase === 'Draining' ? DRAIN_POLL_MS : undefined;
  }

  /** The node's pods this drain takes: unfinished, in the watched namespace, matching its selectors. */
  private async podsInScope(nd: NodeDrain): Promise<V1Pod[]> {
    const { client } = this.o;
    const list = await client.get<{ items: V1Pod[] }>(paths.pods(this.o.namespace), { fieldSelector: `spec.nodeName=${nd.spec.nodeName}` });
    const labels = new Map<string, Promise<Record<string, string>>>();
    const nsLabels = (ns: string) => {
      if (!labels.has(ns))
        labels.set(
          ns,
          client.get<V1Namespace>(`/api/v1/namespaces/${ns}`).then((n) => n.metadata?.labels ?? {}),
        );
      return labels.get(ns)!;
    };
    const out: V1Pod[] = [];
    for (const p of list.items) {
      if (finished(p) || !selectorMatches(nd.spec.podSelector, p.metadata?.labels)) continue;
      if (nd.spec.namespaceSelector && !selectorMatches(nd.spec.namespaceSelector, await nsLabels(p.metadata!.namespace!))) continue;
      out.push(p);
    }
    return out;
  }

  /** What the drain does with a pod it sees for the first time. */
  private async classify(nd: NodeDrain, pod: V1Pod): Promise<DrainItem> {
    const item: DrainItem = { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, uid: pod.metadata!.uid!, action: 'Skip' };
    const bound = nodeBound(pod);
    if (bound) return { ...item, result: 'Skipped', message: bound };
    if (pod.metadata?.deletionTimestamp) return { ...item, result: 'Skipped', message: 'being deleted by someone else' };
    const evictUnmovable = nd.spec.evictUnmovable ?? true;
    const unmovable = (message: string, result: 'Failed' | 'Skipped'): DrainItem =>
      evictUnmovable ? { ...item, action: 'Evict', message: `${message}: evicting it` } : { ...item, result, message: `${message}: left` };
    if (pod.status?.phase !== 'Running')
      return unmovable(`not Running (${pod.status?.phase ?? 'no phase'}), nothing to migrate`, 'Skipped');
    try {
      const { mode } = await chooseMode(this.o.client, this.record(nd, pod), pod, this.o.env);
      if (mode === 'Copy' || mode === 'Surge')
        return { ...item, action: 'Migrate', migration: drainMigrationName(pod.metadata!.uid!), message: `${mode} migration` };
      return unmovable(`only its owner can recreate it (${mode} mode: a migration gains nothing over an eviction)`, 'Skipped');
    } catch (e) {
      if (!(e instanceof MigrationFailure)) throw e;
      return unmovable(`a migration would refuse it (${e.reason}: ${e.message})`, 'Failed');
    }
  }

  /** Moves one pod along: its migration started and followed, or its eviction asked for. */
  private async progress(nd: NodeDrain, item: DrainItem, pod: V1Pod | undefined): Promise<void> {
    const { client } = this.o;
    const evictUnmovable = nd.spec.evictUnmovable ?? true;
    if (item.action === 'Migrate') {
      const m = this.o.migrations.get(item.migration!, item.namespace);
      if (m && sourceGone(m)) {
        Object.assign(item, {
          result: 'Migrated',
          message: `moved to ${m.status?.targetNode ?? 'another node'} by PodMigration ${m.metadata.name}`,
        });
      } else if (m && ended(m)) {
        const why = `PodMigration ${m.metadata.name} ended ${m.status?.phase} (${m.status?.reason ?? 'no reason'})`;
        if (evictUnmovable && pod) Object.assign(item, { action: 'Evict', message: `${why}: evicting it` });
        else Object.assign(item, { result: pod ? 'Failed' : 'Skipped', message: pod ? `${why}: left` : `${why}, and the pod is gone` });
      } else if (!m && !pod) {
        Object.assign(item, { result: 'Skipped', message: 'removed by someone else before its migration started' });
      } else if (!m) {
        const claim = pod!.metadata?.annotations?.[ANNOTATION_CLAIM];
        const holder = claim ? await unfinishedHolder(client, item.namespace, claim) : undefined;
        if (holder) {
          item.message = `being moved by PodMigration ${holder}; waiting for it`;
          return;
        }
        await client.create(paths.migrations(item.namespace), this.record(nd, pod!)).catch((e: unknown) => {
          if (!isAlreadyExists(e)) throw e;
        });
        item.message = `migrating with PodMigration ${item.migration}`;
      } else {
        item.message = `PodMigration ${m.metadata.name}: ${m.status?.phase ?? 'Pending'}${m.status?.message ? `, ${m.status.message}` : ''}`;
      }
      return;
    }
    // Evict.
    if (!pod) {
      Object.assign(item, { result: 'Skipped', message: 'removed by someone else before its eviction' });
      return;
    }
    const r = await evictPod(client, item.namespace, pod);
    if (r === 'evicted') Object.assign(item, { result: 'Evicted', message: 'evicted' });
    else if (r === 'gone') Object.assign(item, { result: 'Skipped', message: 'removed by someone else before its eviction' });
    else item.message = `eviction refused, retried: ${r}`;
  }

  /** The NodeDrain that drains `node`: the oldest not being deleted nor ended Failed (by name, for the same second). */
  private firstFor(node: string): NodeDrain | undefined {
    const created = (d: NodeDrain) => Date.parse(String(d.metadata.creationTimestamp ?? 0));
    return this.o.drains
      .list()
      .filter((d) => d.spec.nodeName === node && !d.metadata.deletionTimestamp && d.status?.phase !== 'Failed')
      .sort((a, b) => created(a) - created(b) || a.metadata.name.localeCompare(b.metadata.name))[0];
  }

  /** Asks its unfinished migrations to cancel (each honours it only while it can still undo); how many were asked. */
  private async cancelMigrations(name: string): Promise<number> {
    let asked = 0;
    for (const m of this.o.migrations.list()) {
      if (m.metadata.labels?.[LABEL_NODE_DRAIN] !== name || ended(m) || m.metadata.annotations?.[ANNOTATION_CANCEL] === 'true') continue;
      await this.o.client
        .mergePatch(paths.migration(m.metadata.namespace, m.metadata.name), { metadata: { annotations: { [ANNOTATION_CANCEL]: 'true' } } })
        .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
      asked++;
    }
    return asked;
  }

  /** The PodMigration that moves `pod` for this drain: to where kube-scheduler chooses, labelled and owned by the NodeDrain. */
  private record(nd: NodeDrain, pod: V1Pod): PodMigration {
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: {
        name: drainMigrationName(pod.metadata!.uid!),
        namespace: pod.metadata!.namespace!,
        labels: { [LABEL_CREATED_BY]: 'node-drain', [LABEL_NODE_DRAIN]: nd.metadata.name },
        ownerReferences: [{ apiVersion: API_VERSION, kind: DRAIN_KIND, name: nd.metadata.name, uid: nd.metadata.uid }],
      },
      spec: { podName: pod.metadata!.name!, sourceNode: nd.spec.nodeName },
    } as unknown as PodMigration;
  }

  /**
   * Deleted: its migrations not past their point of no return are cancelled (a cancel
   * the migrations themselves honour only while they can still undo it), a node it cordoned
   * is uncordoned, and its finalizer released. Its PodMigrations then go with it (owner
   * references), each undoing what it can as any deleted PodMigration does.
   */
  private async finalize(name: string): Promise<number | undefined> {
    const { client, log } = this.o;
    const nd = await client.get<NodeDrain>(drainPath(name)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
    if (!nd?.metadata.finalizers?.includes(DRAIN_FINALIZER)) return undefined;
    await this.cancelMigrations(name);
    // A node another NodeDrain still drains stays cordoned.
    const other = this.o.drains
      .list()
      .some(
        (d) =>
          d.metadata.name !== name && d.spec.nodeName === nd.spec.nodeName && !d.metadata.deletionTimestamp && d.status?.phase !== 'Failed',
      );
    if (nd.status?.cordoned && !other) {
      await client
        .mergePatch(paths.node(nd.spec.nodeName), { spec: { unschedulable: false } })
        .catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
      log.info({ nodeDrain: name, node: nd.spec.nodeName }, 'uncordoned the node');
    }
    await client.mergePatch(drainPath(name), {
      metadata: { resourceVersion: nd.metadata.resourceVersion, finalizers: nd.metadata.finalizers.filter((f) => f !== DRAIN_FINALIZER) },
    });
    log.info({ nodeDrain: name }, 'deleted; finalizer released');
    return undefined;
  }
}
