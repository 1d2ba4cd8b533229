// --memory: the operator's memory with K stored PodMigrations that have ended (as a cluster
// accumulates them): the records are written first, then the operator starts, lists them
// and settles. Reports its RSS once settled and its peak.
import { join } from 'node:path';
import type { PodMigration } from '../../src/api/types';
import { paths } from '../../src/kube/client';
import { type BenchCluster, memOf, sleep } from './cluster';
import type { OperatorBuild } from './operator';
import { completedStatus, inBatches, migrationSpec, newMigration } from './workload';

/** One row of the memory table (its column names are what is printed). */
export interface MemoryRow {
  'stored PodMigrations': number;
  'cache synced s': string;
  'RSS MiB 10 s after sync': string;
  'RSS MiB 90 s after sync': string;
  'peak RSS MiB': string;
}

export async function memoryRun(cluster: BenchCluster, build: OperatorBuild, k: number, run: string): Promise<MemoryRow> {
  const { admin } = cluster;
  const ns = `bench-mem-${k}-${run}`;
  await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await inBatches(k, 100, async (i) => {
    const name = `m-${i}`;
    const body = newMigration(name, migrationSpec(`trainer-${i}`, { metricsDelaySeconds: 0 }), ns);
    // As kubectl apply (or a GitOps tool) leaves it.
    body.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(body) };
    const pm = await admin.create<PodMigration>(paths.migrations(ns), body);
    pm.status = completedStatus(i, pm.metadata);
    await admin.replace(paths.migrationStatus(ns, name), pm);
  });
  const proc = build.start(
    [
      '--kubeconfig',
      join(cluster.dir, 'operator.kubeconfig'),
      '--namespace',
      ns,
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const pid = proc.pid!;
  let port: number | undefined;
  proc.stdout!.on('data', (d) => {
    for (const line of String(d).split('\n')) if (line.includes('serving /healthz')) port = (JSON.parse(line) as { port: number }).port;
  });
  const t0 = Date.now();
  for (;;) {
    const ready =
      port &&
      (await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      ));
    if (ready) break;
    if (Date.now() - t0 > 120_000) throw new Error(`the operator did not sync ${k} records within 120 s`);
    await sleep(100);
  }
  const synced = Date.now() - t0;
  await sleep(10_000); // the initial reconciles are done
  const early = memOf(pid, 'VmRSS');
  await sleep(80_000); // V8 gives freed heap back to the system after about a minute idle
  const row: MemoryRow = {
    'stored PodMigrations': k,
    'cache synced s': (synced / 1000).toFixed(1),
    'RSS MiB 10 s after sync': early.toFixed(0),
    'RSS MiB 90 s after sync': memOf(pid, 'VmRSS').toFixed(0),
    'peak RSS MiB': memOf(pid, 'VmHWM').toFixed(0),
  };
  proc.kill('SIGKILL');
  if (process.env.BENCH_KEEP_RECORDS) console.log(`kept ${k} records in namespace ${ns}`);
  else await cluster.deleteNamespace(ns);
  return row;
}
