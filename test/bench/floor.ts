// The floor: a client that issues only the requests the contract needs (GET pod, POST copy,
// one shared watch for Ready, POST eviction, PUT status), with the operator's identity and
// N at once. What the operator does beyond it is its safety work.
import type { V1Pod } from '@kubernetes/client-node';
import type { PodMigration } from '../../src/api/types';
import { paths } from '../../src/kube/client';
import { buildTargetPod } from '../../src/migration/optimizedPod';
import { type BenchCluster, cpuOf, keepWatching } from './cluster';
import { createMigrations } from './workload';

/** One run of N migrations: its window, when each was created and done (ms since the epoch), and the API server's CPU. */
export interface Run {
  t0: number;
  t1: number;
  created: Map<string, number>;
  done: Map<string, number>;
  apiCpuMs: number;
}

const isReady = (pod: V1Pod) => (pod.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True');

/** Moves pods p-0..p-(N-1) of `ns` to node-2 as the floor does. */
export async function floor(cluster: BenchCluster, ns: string, n: number): Promise<Run> {
  const { admin } = cluster;
  const c = cluster.client('operator.kubeconfig');
  const api0 = cpuOf(cluster.apiserverPid());
  const t0 = Date.now();
  const created = await createMigrations(admin, ns, n);
  const ready = new Set<string>();
  const waiters = new Map<string, () => void>();
  // One shared watch for the copies' readiness (a connection of its own).
  const watch = keepWatching(
    cluster.client('operator.kubeconfig'),
    paths.pods(ns),
    () => ({ labelSelector: 'floor' }),
    (_type, object) => {
      const pod = object as V1Pod;
      const name = pod.metadata?.name;
      if (name && isReady(pod)) {
        ready.add(name);
        waiters.get(name)?.();
      }
    },
  );
  const done = new Map<string, number>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const pod = await c.get<V1Pod>(paths.pod(ns, `p-${i}`));
      const copy = `p-${i}-copy`;
      // The same copy the operator makes (a pure function: no requests).
      const body = buildTargetPod(pod, {
        name: copy,
        where: { node: 'node-2' },
        migrationName: `m-${i}`,
        migrationUid: 'floor',
        keep: new Set(['main']),
      });
      body.metadata!.labels = { ...body.metadata!.labels, floor: 'yes' };
      await c.create(paths.pods(ns), body);
      if (!ready.has(copy)) await new Promise<void>((r) => waiters.set(copy, r));
      await c.create(paths.eviction(ns, `p-${i}`), {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: `p-${i}`, namespace: ns },
        deleteOptions: { preconditions: { uid: pod.metadata!.uid } },
      });
      const pm = await admin.get<PodMigration>(paths.migration(ns, `m-${i}`)); // reading the record is the bench's, not counted
      await c.replace(paths.migrationStatus(ns, `m-${i}`), { ...pm, status: { phase: 'Completed' } });
      done.set(`m-${i}`, Date.now());
    }),
  );
  const t1 = Date.now();
  const apiCpuMs = cpuOf(cluster.apiserverPid()) - api0;
  watch.stop();
  return { t0, t1, created, done, apiCpuMs };
}
