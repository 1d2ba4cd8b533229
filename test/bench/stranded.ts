// --stranded: the operator's memory with P running pods in the cluster, half of them holding
// requests for a finished container. Its cluster-wide pod watch keeps only what each pod
// strands; the floor is the same operator in the same run watching a namespace with no pods.
// Reports when the stranded gauges first agree with the pods, the RSS 10 s and 90 s after,
// the peak, and the ratio to the floor's.
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { paths } from '../../src/kube/client';
import { type BenchCluster, memOf, sleep } from './cluster';
import type { OperatorBuild } from './operator';
import { inBatches } from './workload';

export interface StrandedRow {
  pods: number;
  'stranded pods (gauge)': number;
  'figures agree s': string;
  'RSS MiB 10 s after': string;
  'RSS MiB 90 s after': string;
  'peak RSS MiB': string;
  'floor RSS MiB (no pods)': string;
  'RSS / floor': string;
}

const NODES = ['node-1', 'node-2', 'node-3'];

export async function strandedRun(cluster: BenchCluster, build: OperatorBuild, p: number, run: string): Promise<StrandedRow> {
  const { admin } = cluster;
  const ns = `bench-stranded-${p}-${run}`;
  const empty = `bench-stranded-empty-${run}`;
  await cluster.namespace(ns);
  await cluster.namespace(empty);
  await inBatches(p, 50, (i) =>
    admin.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `s-${i}`,
        labels: { app: `s-${i % 100}` },
        annotations: i % 2 === 0 ? { 'kwok.podmigration.test/terminated': 'prepare' } : {},
      },
      spec: {
        nodeName: NODES[i % NODES.length],
        containers: [
          { name: 'main', image: 'x', resources: { requests: { cpu: '10m', memory: '16Mi' } } },
          { name: 'prepare', image: 'x', resources: { requests: { cpu: '100m', memory: '64Mi' } } },
        ],
      },
    } satisfies V1Pod),
  );
  for (;;) {
    const running = (await admin.get<{ items: V1Pod[] }>(paths.pods(ns), { fieldSelector: 'status.phase=Running' })).items.length;
    if (running === p) break;
    await sleep(1_000);
  }

  const floor = await measure(cluster, build, ['--namespace', empty], 0);
  const row = await measure(cluster, build, [], p / 2);
  await cluster.deleteNamespace(ns);
  await cluster.deleteNamespace(empty);
  return {
    pods: p,
    'stranded pods (gauge)': row.stranded,
    'figures agree s': (row.agreeMs / 1000).toFixed(1),
    'RSS MiB 10 s after': row.early.toFixed(0),
    'RSS MiB 90 s after': row.late.toFixed(0),
    'peak RSS MiB': row.peak.toFixed(0),
    'floor RSS MiB (no pods)': floor.late.toFixed(0),
    'RSS / floor': (row.late / floor.late).toFixed(2),
  };
}

/** Starts an operator with `args`, waits until its gauges count `want` stranded pods, and measures it. */
async function measure(cluster: BenchCluster, build: OperatorBuild, args: string[], want: number) {
  const proc = build.start(
    [
      '--kubeconfig',
      join(cluster.dir, 'operator.kubeconfig'),
      ...args,
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const pid = proc.pid!;
  let port: number | undefined;
  proc.stdout!.on('data', (d) => {
    for (const line of String(d).split('\n')) if (line.includes('serving /metrics')) port = (JSON.parse(line) as { port: number }).port;
  });
  const t0 = Date.now();
  let stranded = -1;
  for (;;) {
    if (port) {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
      // Served once the pod cache has synced; summed over namespaces and nodes.
      if (text.includes('# TYPE podmigration_stranded_pods gauge'))
        stranded = text
          .split('\n')
          .filter((l) => l.startsWith('podmigration_stranded_pods{'))
          .reduce((n, l) => n + Number(l.split(' ')[1]), 0);
      if (stranded === want) break;
    }
    if (Date.now() - t0 > 300_000) throw new Error(`the stranded gauges did not reach ${want} pods within 300 s (last ${stranded})`);
    await sleep(200);
  }
  const agreeMs = Date.now() - t0;
  await sleep(10_000);
  const early = memOf(pid, 'VmRSS');
  await sleep(80_000); // V8 gives freed heap back to the system after about a minute idle
  const out = { stranded, agreeMs, early, late: memOf(pid, 'VmRSS'), peak: memOf(pid, 'VmHWM') };
  proc.kill('SIGKILL');
  return out;
}
