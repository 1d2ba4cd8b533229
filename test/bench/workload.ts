// What the runs move and store: pods on node-1, PodMigration records moving them to node-2,
// and the status of a completed migration (for stored records and --costs).
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, KIND, type PodMigration, type PodMigrationSpec, type PodMigrationStatus } from '../../src/api/types';
import { type KubeClient, paths } from '../../src/kube/client';
import { targetPodName } from '../../src/migration/optimizedPod';
import { fromFigures, savings } from '../../src/migration/resources';
import { advance, begin, setConditions } from '../../src/migration/status';
import { type BenchCluster, sleep } from './cluster';

/** What the bench creates (a PodMigration without server-set fields). */
export interface NewPodMigration {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec: PodMigrationSpec;
}

/** Moves pod `podName` from node-1 to node-2. */
export function migrationSpec(podName: string, more: Partial<PodMigrationSpec> = {}): PodMigrationSpec {
  return { podName, sourceNode: 'node-1', targetNode: 'node-2', ...more };
}

export function newMigration(name: string, spec: PodMigrationSpec, namespace?: string): NewPodMigration {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name, ...(namespace ? { namespace } : {}) }, spec };
}

/** Runs `fn(i)` for i in [0, n), `batch` at once. */
export async function inBatches(n: number, batch: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => fn(i + j)));
}

/** N running pods p-0..p-(N-1) on node-1 in namespace `ns` (created with it). */
export async function podsOnNode1(cluster: BenchCluster, ns: string, n: number): Promise<void> {
  const { admin } = cluster;
  await cluster.namespace(ns);
  await inBatches(n, 50, (i) =>
    admin.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `p-${i}`, labels: { app: `p-${i}` } },
      spec: { nodeName: 'node-1', containers: [{ name: 'main', image: 'x', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
    } satisfies V1Pod),
  );
  for (;;) {
    const pods = (await admin.get<{ items: V1Pod[] }>(paths.pods(ns))).items;
    if (pods.filter((p) => p.status?.phase === 'Running').length === n) return;
    await sleep(200);
  }
}

/** Creates migrations m-i of pods p-i, 50 at once; returns when each was created (ms since the epoch). */
export async function createMigrations(admin: KubeClient, ns: string, n: number): Promise<Map<string, number>> {
  const created = new Map<string, number>();
  await inBatches(n, 50, async (i) => {
    const name = `m-${i}`;
    await admin.create(paths.migrations(ns), newMigration(name, migrationSpec(`p-${i}`, { metricsDelaySeconds: 0 })));
    created.set(name, Date.now());
  });
  return created;
}

/**
 * The status of a completed migration of pod trainer-i, written through the operator's own
 * transitions (begin, advance, setConditions) with what its steps record, taking 2 s.
 */
export function completedStatus(i: number, migration: Pick<PodMigration['metadata'], 'uid'>): PodMigrationStatus {
  const at = (s: number) => `2026-01-01T00:00:0${s}Z`;
  const source = `trainer-${i}`;
  const target = targetPodName(source, migration.uid);
  const status: PodMigrationStatus = { mode: 'Copy' };
  begin(status, at(0));
  status.sourcePod = { name: source, uid: '5f0c2a7e-8a77-4d0e-9d0a-000000000000', node: 'node-1' };
  status.containers = [
    { name: 'trainer', state: 'running', restartCount: 0, migrated: true },
    { name: 'exporter', state: 'running', restartCount: 0, migrated: true },
    { name: 'downloader', state: 'terminated', restartCount: 0, migrated: false, reason: 'Completed' },
  ];
  const original = { cpu: '1500m', memory: '768Mi' };
  status.resources = { original };
  advance(status, at(0), 'captured 3 containers: migrating trainer, exporter; dropping downloader (Completed)');
  advance(status, at(0), 'spec.preservePV is false: no checkpoint claim', true);
  status.targetPod = { name: target, uid: '5f0c2a7e-8a77-4d0e-9d0a-111111111111', node: 'node-2' };
  advance(status, at(1), `pod ${target} is Ready on node-2`);
  status.sourcePod.evictionRequestedAt = at(1);
  advance(status, at(2), `source pod ${source} evicted from node-1`);
  const optimized = { cpu: '1000m', memory: '256Mi' };
  const saved = savings(fromFigures(original), fromFigures(optimized));
  status.resources = {
    original,
    optimized,
    savings: saved,
    usage: { available: false, message: 'metrics.k8s.io is not served by this cluster (no metrics-server): usage is not recorded' },
  };
  advance(status, at(2), `migration complete: pod ${target} on node-2; requests saved: cpu ${saved.cpu}, memory ${saved.memory}`);
  setConditions(status, 1, at(2));
  return status;
}
