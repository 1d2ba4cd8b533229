// --drain N: node-1 holds N single-replica Deployments' pods and is drained with the real
// `kubectl drain`, twice on the same control plane: plainly (the floor: each Deployment
// is down from its pod's eviction until the ReplicaSet's new pod is Ready), then with the
// operator serving its eviction webhook and the pods opted in (each is handed over to a
// copy first). Reports wall time, the operator's requests per pod (audit log), and the
// fewest Ready pods any Deployment had at any change the API server made (a watch).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { paths } from '../../src/kube/client';
import { requests } from './audit';
import { type BenchCluster, ROOT, keepWatching, sleep } from './cluster';
import type { OperatorBuild } from './operator';
import { inBatches } from './workload';

export interface DrainRow {
  N: number;
  'plain drain s': string;
  'operator drain s': string;
  'wall ratio': string;
  'op req/pod': string;
  'fewest Ready, plain': number;
  'fewest Ready, operator': number;
  'Deployments at 0, plain/op': string;
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

const ready = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** config/webhook's configurations, reaching an operator on loopback by URL (as `make run` registers them). */
async function registerWebhooks(cluster: BenchCluster, port: number): Promise<void> {
  for (const file of ['mutating_webhook.yaml', 'eviction_webhook.yaml']) {
    const config = parse(readFileSync(join(ROOT, 'config/webhook', file), 'utf8'));
    const collection = `/apis/admissionregistration.k8s.io/v1/${String(config.kind).toLowerCase()}s`;
    for (const w of config.webhooks) w.clientConfig = { url: `https://127.0.0.1:${port}${w.clientConfig.service.path}` };
    await cluster.admin.delete(`${collection}/${config.metadata.name}`).catch(() => undefined);
    await cluster.admin.create(collection, config);
  }
}

const cordon = (cluster: BenchCluster, node: string, on: boolean) =>
  cluster.admin.mergePatch(paths.node(node), { spec: { unschedulable: on } });

/** N Deployments d-i of one replica in `ns`, each Ready on node-1 (node-2 held cordoned meanwhile). */
async function deployments(cluster: BenchCluster, ns: string, n: number, optIn: boolean): Promise<void> {
  const { admin } = cluster;
  await cluster.namespace(ns);
  await cordon(cluster, 'node-2', true);
  await cordon(cluster, 'node-3', true);
  await inBatches(n, 50, (i) =>
    admin.create(`/apis/apps/v1/namespaces/${ns}/deployments`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `d-${i}` },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: `d-${i}` } },
        template: {
          metadata: { labels: { app: `d-${i}` }, annotations: optIn ? { 'migration.ai-storage.io/on-eviction': 'migrate' } : {} },
          spec: {
            terminationGracePeriodSeconds: 1,
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [
                    { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: ['node-1', 'node-2'] }] },
                  ],
                },
              },
            },
            containers: [{ name: 'main', image: 'x', resources: { requests: { cpu: '10m', memory: '16Mi' } } }],
          },
        },
      },
    }),
  );
  for (;;) {
    const pods = (await admin.get<{ items: V1Pod[] }>(paths.pods(ns))).items;
    if (pods.filter((p) => ready(p) && p.spec?.nodeName === 'node-1').length === n) break;
    await sleep(500);
  }
  await cordon(cluster, 'node-2', false);
}

/** Every Deployment's Ready pods at every change (a watch), from now until stop(). */
function followReady(cluster: BenchCluster, ns: string, n: number) {
  const pods = new Map<string, V1Pod>();
  const least = new Map(Array.from({ length: n }, (_, i) => [`d-${i}`, 1]));
  let since = '';
  const w = keepWatching(
    cluster.client('kubeconfig'),
    paths.pods(ns),
    () => ({ resourceVersion: since, allowWatchBookmarks: true }),
    (type, object) => {
      const p = object as unknown as V1Pod;
      since = p.metadata?.resourceVersion ?? since;
      if (type === 'BOOKMARK') return;
      if (type === 'DELETED') pods.delete(p.metadata!.name!);
      else pods.set(p.metadata!.name!, p);
      const app = p.metadata?.labels?.app;
      if (!app) return;
      const now = [...pods.values()].filter((q) => q.metadata?.labels?.app === app && ready(q)).length;
      least.set(app, Math.min(least.get(app) ?? now, now));
    },
  );
  return {
    start: async () => {
      since = (await cluster.admin.get<{ metadata: { resourceVersion: string } }>(paths.pods(ns))).metadata.resourceVersion;
      for (const p of (await cluster.admin.get<{ items: V1Pod[] }>(paths.pods(ns))).items) pods.set(p.metadata!.name!, p);
    },
    stop: () => w.stop(),
    least: () => Math.min(...least.values()),
    atZero: () => [...least.values()].filter((v) => v === 0).length,
  };
}

/** `kubectl drain node-1` (waiting on every pod it evicts); its wall time in ms. */
function kubectlDrain(cluster: BenchCluster): Promise<number> {
  const kubectl = join(execFileSync(join(ROOT, 'hack/build-tools.sh'), { encoding: 'utf8' }).trim(), 'kubectl');
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const p = spawn(
      kubectl,
      ['--kubeconfig', join(cluster.dir, 'kubeconfig'), 'drain', 'node-1', '--ignore-daemonsets', '--force', '--timeout=1800s'],
      { stdio: 'ignore' },
    );
    p.on('close', (code) => (code === 0 ? resolve(Date.now() - t0) : reject(new Error(`kubectl drain exited ${code}`))));
  });
}

async function drainOnce(cluster: BenchCluster, ns: string, n: number) {
  const follow = followReady(cluster, ns, n);
  await follow.start();
  await sleep(500);
  const t0 = Date.now();
  const ms = await kubectlDrain(cluster);
  await sleep(1_000);
  follow.stop();
  await cordon(cluster, 'node-1', false);
  return { ms, t0, t1: t0 + ms, least: follow.least(), atZero: follow.atZero() };
}

export async function drainRun(
  cluster: BenchCluster,
  build: OperatorBuild,
  n: number,
  run: string,
  env: NodeJS.ProcessEnv,
): Promise<DrainRow> {
  // The floor: a plain drain, no operator.
  const plainNs = `bench-drain-plain-${n}-${run}`;
  await deployments(cluster, plainNs, n, false);
  const plain = await drainOnce(cluster, plainNs, n);
  await cluster.deleteNamespace(plainNs);

  // The operator: its webhook answers the evictions with migrations.
  const opNs = `bench-drain-op-${n}-${run}`;
  await deployments(cluster, opNs, n, true);
  const port = await freePort();
  await registerWebhooks(cluster, port);
  const proc = build.start(
    [
      '--kubeconfig',
      join(cluster.dir, 'operator.kubeconfig'),
      '--namespace',
      opNs,
      '--webhook-bind-address',
      `127.0.0.1:${port}`,
      '--max-concurrent-reconciles',
      String(Math.min(n, 100)),
      '--max-migrations-in-flight',
      String(n),
      '--max-migrations-per-node',
      String(n),
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: 'ignore', env },
  );
  await sleep(3_000); // caches synced, certificate issued and its CA injected
  const op = await drainOnce(cluster, opNs, n);
  await sleep(1_500); // the audit log is written asynchronously
  const audit = requests(cluster.auditLog, op.t0, op.t1);
  proc.kill('SIGKILL');
  await cluster.deleteNamespace(opNs);
  return {
    N: n,
    'plain drain s': (plain.ms / 1000).toFixed(1),
    'operator drain s': (op.ms / 1000).toFixed(1),
    'wall ratio': (op.ms / plain.ms).toFixed(1),
    'op req/pod': (audit.count / n).toFixed(1),
    'fewest Ready, plain': plain.least,
    'fewest Ready, operator': op.least,
    'Deployments at 0, plain/op': `${plain.atZero}/${op.atZero}`,
  };
}
