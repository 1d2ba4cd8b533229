// --costs: what one request of each kind the operator sends costs the API server (and
// etcd), 500 of each, 25 at once, with the operator's identity: the PodMigration writes are
// the expensive ones, and they grow with the record.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_CLAIM, API_VERSION, FINALIZER, KIND, type PodMigration } from '../../src/api/types';
import { COMPONENT } from '../../src/controller/events';
import { paths } from '../../src/kube/client';
import { STEP_TABLE, TOTAL_STEPS } from '../../src/migration/status';
import { type BenchCluster, cpuOf, sleep } from './cluster';
import { completedStatus, inBatches, migrationSpec, newMigration } from './workload';

/** One row of the costs table (its column names are what is printed). */
export interface CostRow {
  request: string;
  'API server CPU ms': string;
  'etcd CPU ms': string;
}

export async function costsRun(cluster: BenchCluster, run: string): Promise<CostRow[]> {
  const { admin } = cluster;
  const ns = `bench-costs-${run}`;
  const n = 500;
  const c = cluster.client('operator.kubeconfig');
  await cluster.namespace(ns);
  const rows: CostRow[] = [];
  const measure = async (what: string, fn: (i: number) => Promise<unknown>) => {
    const a0 = cpuOf(cluster.apiserverPid());
    const e0 = cpuOf(cluster.etcdPid());
    await inBatches(n, 25, fn);
    rows.push({
      request: what,
      'API server CPU ms': ((cpuOf(cluster.apiserverPid()) - a0) / n).toFixed(2),
      'etcd CPU ms': ((cpuOf(cluster.etcdPid()) - e0) / n).toFixed(2),
    });
  };
  const pms: PodMigration[] = [];
  const pods: V1Pod[] = [];
  const resourceVersion = (i: number) => pms[i].metadata.resourceVersion;
  await measure('create PodMigration (admin)', async (i) => {
    pms[i] = await admin.create<PodMigration>(paths.migrations(ns), newMigration(`m-${i}`, migrationSpec(`trainer-${i}`)));
  });
  await measure('GET PodMigration', (i) => c.get(paths.migration(ns, `m-${i}`)));
  await measure('PATCH finalizer on (no status yet)', async (i) => {
    pms[i] = await c.mergePatch<PodMigration>(paths.migration(ns, `m-${i}`), {
      metadata: { resourceVersion: resourceVersion(i), finalizers: [FINALIZER] },
    });
  });
  await measure('PUT status (a completed one)', async (i) => {
    pms[i] = await c.replace(paths.migrationStatus(ns, `m-${i}`), { ...pms[i], status: completedStatus(i, pms[i].metadata) });
  });
  await measure('PUT status again (message changed)', async (i) => {
    pms[i] = await c.replace(paths.migrationStatus(ns, `m-${i}`), {
      ...pms[i],
      status: { ...completedStatus(i, pms[i].metadata), message: `changed ${i}` },
    });
  });
  await measure('PATCH finalizer off (completed)', async (i) => {
    pms[i] = await c.mergePatch<PodMigration>(paths.migration(ns, `m-${i}`), {
      metadata: { resourceVersion: resourceVersion(i), finalizers: null },
    });
  });
  // As the operator's EventRecorder writes one (src/controller/events.ts).
  await measure('create Event', (i) =>
    c.create(`/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `m-${i}.${run}` },
      eventTime: new Date().toISOString().replace('Z', '000Z'),
      reportingController: COMPONENT,
      reportingInstance: 'bench',
      action: 'StepSucceeded',
      reason: 'StepSucceeded',
      note: `step 1/${TOTAL_STEPS} ${STEP_TABLE[0].name} succeeded: captured 3 containers: migrating trainer, exporter; dropping downloader (Completed)`,
      type: 'Normal',
      regarding: { apiVersion: API_VERSION, kind: KIND, name: `m-${i}`, namespace: ns, uid: pms[i].metadata.uid },
    }),
  );
  await measure('create pod (admin)', async (i) => {
    pods[i] = await admin.create<V1Pod>(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `trainer-${i}` },
      spec: { nodeName: 'node-3', containers: [{ name: 'main', image: 'x' }] },
    } satisfies V1Pod);
  });
  await sleep(3_000); // kwok has started them
  await measure('GET pod', async (i) => {
    pods[i] = await c.get<V1Pod>(paths.pod(ns, `trainer-${i}`));
  });
  await measure('PATCH pod annotation (the claim)', async (i) => {
    pods[i] = await c.mergePatch<V1Pod>(paths.pod(ns, `trainer-${i}`), {
      metadata: { resourceVersion: pods[i].metadata!.resourceVersion, annotations: { [ANNOTATION_CLAIM]: `m-${i}/x` } },
    });
  });
  await cluster.deleteNamespace(ns);
  return rows;
}
