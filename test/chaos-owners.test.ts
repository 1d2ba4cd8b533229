// Chaos with owned workloads: a Deployment (Surge), a StatefulSet and an Indexed Job
// (Steer), and a custom owner run by a test controller (Steer, trusted by flag), moved
// again and again to random nodes while the cluster works against the migrations: duplicate
// records race for one pod, the StatefulSet scales, the Deployment rolls out, and the
// operator is SIGKILLed at random moments. The invariants are checked per workload kind at
// every change the API server makes (list + watch), and once everything has settled.
import type { V1Pod } from '@kubernetes/client-node';
import { type PodMigration, TERMINAL_PHASES } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  OperatorProcess,
  createNamespace,
  deleteNamespace,
  eventually,
  followPods,
  freePort,
  getPod,
  k8s,
  migration,
  pmPath,
  registerWebhook,
  sleep,
} from './helpers';

const CONFIG = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podmigration-mutating-webhook';
const SECRET = '/api/v1/namespaces/podmigration-system/secrets/podmigration-webhook-cert';
const TRAINERS = 'trainers.test.podmigration.io';
const NODES = ['node-1', 'node-2', 'node-3'];
const MIGRATIONS = 36;
const MIN_KILLS = 5;
const MIGRATION_LABEL = 'migration.ai-storage.io/migration';

let ns: string;
let operator: OperatorProcess;

beforeAll(async () => {
  ns = await createNamespace('chaos-owners');
  const port = await freePort();
  await k8s.delete(SECRET).catch(() => undefined);
  await registerWebhook('mutating_webhook.yaml', `https://127.0.0.1:${port}/mutate-v1-pod`);
  await k8s
    .create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: TRAINERS },
      spec: {
        group: 'test.podmigration.io',
        names: { plural: 'trainers', singular: 'trainer', kind: 'Trainer' },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
          },
        ],
      },
    })
    .catch(() => undefined);
  for (const [kind, body] of [
    [
      'clusterroles',
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'podmigration-chaos-trainers' },
        rules: [{ apiGroups: ['test.podmigration.io'], resources: ['trainers'], verbs: ['get'] }],
      },
    ],
    [
      'clusterrolebindings',
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'podmigration-chaos-trainers' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'podmigration-chaos-trainers' },
        subjects: [{ kind: 'ServiceAccount', name: 'podmigration-operator', namespace: 'podmigration-system' }],
      },
    ],
  ] as const) {
    await k8s.create(`/apis/rbac.authorization.k8s.io/v1/${kind}`, body).catch(() => undefined);
  }
  operator = new OperatorProcess(ns, [
    '--webhook-bind-address',
    `127.0.0.1:${port}`,
    '--steer-owner-kinds',
    'apps/StatefulSet,batch/Job,test.podmigration.io/Trainer',
    '--max-concurrent-reconciles',
    '8',
  ]);
  operator.start();
  await eventually(
    'CA bundle injected',
    async () =>
      (await k8s.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(CONFIG)).webhooks[0].clientConfig.caBundle ? true : undefined,
    60_000,
  );
});

afterAll(async () => {
  await operator.stop('SIGTERM');
  await k8s.delete(CONFIG).catch(() => undefined);
  await k8s.delete(SECRET).catch(() => undefined);
  await k8s.delete('/apis/rbac.authorization.k8s.io/v1/clusterroles/podmigration-chaos-trainers').catch(() => undefined);
  await k8s.delete('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/podmigration-chaos-trainers').catch(() => undefined);
  await deleteNamespace(ns);
});

const ready = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const live = (p: V1Pod) => !p.metadata?.deletionTimestamp;
const template = (app: string) => ({
  metadata: { labels: { app } },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'main', image: 'registry.example/main:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
  },
});
const terminal = (m: PodMigration) => TERMINAL_PHASES.includes(m.status?.phase ?? 'Pending');
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

it(`keeps every workload's invariants across ${MIGRATIONS} migrations of owned pods, scale changes, rollouts, duplicates and SIGKILLs`, async () => {
  const apps = `/apis/apps/v1/namespaces/${ns}`;
  await k8s.create(`${apps}/deployments`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web' },
    spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: template('web') },
  });
  await k8s.create(`${apps}/statefulsets`, {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db' },
    spec: {
      replicas: 2,
      serviceName: 'db',
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: { app: 'db' } },
      template: template('db'),
    },
  });
  await k8s.create(`/apis/batch/v1/namespaces/${ns}/jobs`, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'shards' },
    spec: {
      completionMode: 'Indexed',
      completions: 3,
      parallelism: 3,
      backoffLimit: 1000,
      template: { ...template('shards'), spec: { ...template('shards').spec, restartPolicy: 'Never' } },
    },
  });
  const trainer = await eventually('Trainer', () =>
    k8s.create<{ metadata: { uid: string } }>(`/apis/test.podmigration.io/v1/namespaces/${ns}/trainers`, {
      apiVersion: 'test.podmigration.io/v1',
      kind: 'Trainer',
      metadata: { name: 'llm' },
    }),
  );
  const owner = { apiVersion: 'test.podmigration.io/v1', kind: 'Trainer', name: 'llm', uid: trainer.metadata.uid, controller: true };
  let running = true;
  // The custom controller: keeps llm-0 and llm-1, each made anew (same name) once gone.
  const controller = (async () => {
    while (running) {
      for (const name of ['llm-0', 'llm-1']) {
        if (!(await getPod(ns, name))) {
          await k8s
            .create(paths.pods(ns), {
              apiVersion: 'v1',
              kind: 'Pod',
              metadata: { name, namespace: ns, ownerReferences: [owner], ...template('llm').metadata },
              spec: template('llm').spec,
            })
            .catch(() => undefined);
        }
      }
      await sleep(150);
    }
  })();
  await eventually(
    'every workload Ready',
    async () => {
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items.filter(ready);
      const n = (app: string) => pods.filter((p) => p.metadata?.labels?.app === app).length;
      return n('web') === 2 && n('db') === 2 && n('shards') === 3 && n('llm') === 2 ? true : undefined;
    },
    60_000,
  );

  // The invariants, at every change the API server makes to the namespace's pods.
  const found: string[] = [];
  const webReplicas = 2;
  const check = (pods: readonly V1Pod[]) => {
    const of = (app: string) => pods.filter((p) => p.metadata?.labels?.app === app);
    const web = of('web').filter(ready).length;
    if (web < webReplicas) found.push(`Deployment web: ${web} Ready pods, fewer than its ${webReplicas} replicas`);
    // A StatefulSet's pods are its own, by name: never a copy, never two of one ordinal.
    for (const p of of('db').filter(live))
      if (!/^db-\d+$/.test(p.metadata!.name!)) found.push(`StatefulSet db: pod ${p.metadata!.name} is not one of its ordinals`);
    for (const p of of('shards').filter(live))
      if (!(p.metadata?.ownerReferences ?? []).some((r) => r.kind === 'Job'))
        found.push(`Job shards: pod ${p.metadata!.name} has no Job as owner`);
    for (const p of of('llm').filter(live))
      if (!/^llm-[01]$/.test(p.metadata!.name!)) found.push(`Trainer llm: pod ${p.metadata!.name} is not one of its pods`);
  };
  const follow = await followPods(ns, check);

  // The cluster at work: migrations (some duplicated), scale changes, rollouts, SIGKILLs.
  const names: string[] = [];
  let kills = 0;
  const chaos = (async () => {
    for (let i = 0; i < MIGRATIONS; i++) {
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items.filter(
        (p) => ready(p) && ['web', 'db', 'shards', 'llm'].includes(p.metadata?.labels?.app ?? ''),
      );
      if (pods.length) {
        const pod = pick(pods);
        const from = pod.spec!.nodeName!;
        const to = pick(NODES.filter((n) => n !== from));
        const copies = i % 4 === 1 ? 2 : 1; // a duplicate record races for the same pod
        await Promise.all(
          Array.from({ length: copies }, (_, d) => {
            const name = `m-${i}${d ? '-dup' : ''}`;
            names.push(name);
            return k8s.create(
              pmPath(ns),
              migration(ns, name, {
                podName: pod.metadata!.name!,
                sourceNode: from,
                targetNode: to,
                metricsDelaySeconds: 1,
                readyTimeoutSeconds: 60,
                timeoutSeconds: 180,
              }),
            );
          }),
        );
      }
      if (i === 8) await k8s.mergePatch(`${apps}/statefulsets/db`, { spec: { replicas: 3 } });
      if (i === 20) await k8s.mergePatch(`${apps}/statefulsets/db`, { spec: { replicas: 2 } });
      if (i === 12 || i === 28)
        await k8s.mergePatch(`${apps}/deployments/web`, { spec: { template: { metadata: { annotations: { rollout: String(i) } } } } });
      if (i % 5 === 3) {
        await operator.stop('SIGKILL');
        kills += 1;
        operator.start();
      }
      await sleep(800 + Math.random() * 1200);
    }
  })();
  await chaos;
  while (kills < MIN_KILLS) {
    await operator.stop('SIGKILL');
    kills += 1;
    operator.start();
    await sleep(1_500);
  }
  const all = async () => (await k8s.get<{ items: PodMigration[] }>(pmPath(ns))).items;
  await eventually('every migration ended', async () => ((await all()).every(terminal) ? true : undefined), 240_000);
  await sleep(10_000); // rollbacks after the last status write, owners settling
  await follow.stop();
  running = false;
  await controller;

  // Once settled: no copy without an owner, no pinned replacement left Pending, no Job
  // failed, and every Completed migration names the pod it was asked to move.
  const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items.filter(live);
  for (const p of pods) {
    if (p.metadata?.labels?.[MIGRATION_LABEL] && !(p.metadata.ownerReferences ?? []).some((r) => r.controller))
      found.push(`pod ${p.metadata.name}: a copy that no owner holds`);
    if (!p.spec?.nodeName) found.push(`pod ${p.metadata!.name}: left Pending, never placed`);
  }
  const job = await k8s.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
    `/apis/batch/v1/namespaces/${ns}/jobs/shards`,
  );
  if (job.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True')) found.push('Job shards failed');
  const migrations = await all();
  for (const m of migrations) {
    const s = m.status!;
    if (
      s.phase === 'Completed' &&
      s.mode === 'Steer' &&
      s.steer?.replacement &&
      'name' in s.steer.replacement &&
      s.targetPod?.name !== s.steer.replacement.name
    ) {
      found.push(`${m.metadata.name}: Completed on ${s.targetPod?.name}, not on the replacement of ${s.steer.replacement.name}`);
    }
    const rb = s.conditions?.find((c) => c.type === 'RolledBack');
    if (rb?.reason === 'NoPodLeft') found.push(`${m.metadata.name}: says no pod is left (${rb.message})`);
  }
  const phases = migrations.map((m) => `${m.status!.mode ?? '-'}:${m.status!.phase}`);
  const count = (x: string) => phases.filter((p) => p.endsWith(x)).length;
  process.stdout.write(
    `chaos-owners: ${names.length} migrations (${count(':Completed')} Completed, ${count(':Failed')} Failed; ` +
      `${phases.filter((p) => p.startsWith('Surge')).length} Surge, ${phases.filter((p) => p.startsWith('Steer')).length} Steer), ` +
      `${kills} SIGKILLs, ${follow.changes()} pod changes checked, ${found.length} violations\n`,
  );
  expect([...new Set(found)]).toEqual([]);
  expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  expect(follow.changes()).toBeGreaterThan(50);
  // Some of each did move.
  expect(migrations.filter((m) => m.status!.phase === 'Completed' && m.status!.mode === 'Surge').length).toBeGreaterThan(0);
  expect(migrations.filter((m) => m.status!.phase === 'Completed' && m.status!.mode === 'Steer').length).toBeGreaterThan(0);
});
