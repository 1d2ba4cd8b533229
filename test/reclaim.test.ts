// Stranded capacity and ReclaimPolicies, on the real API server with kube-scheduler and
// kube-controller-manager: pods with finished, crashed and running containers across
// namespaces; the figures a report gives (and the gauges), a Report policy that moves
// nothing, and a Migrate policy that moves its candidates within its limits, skips what it
// must, waits on budgets, and gives the capacity back.
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { LABEL_RECLAIM_POLICY, type PodMigration, type ReclaimPolicy } from '../src/api/types';
import { paths } from '../src/kube/client';
import { fromFigures } from '../src/migration/resources';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventually,
  getPod,
  k8s,
  kubectl,
  migration,
  pmPath,
  podManifest,
  sleep,
  waitForPhase,
} from './helpers';

const RP = `/apis/migration.ai-storage.io/v1alpha1/reclaimpolicies`;
const TEAM = `reclaim-team-${process.pid}`;
const policy = `reclaim-${process.pid}`;
let a: string; // in scope (labelled)
let b: string; // in scope (labelled)
let c: string; // out of scope
let d: string; // in scope, where a quota refuses PodMigrations
let operator: OperatorProcess;
let port: number;

const GUARD = { guard: 'true' };

/** A bare pod on node-1 whose containers kwok plays as asked (terminated: exited 0; crashlooping). */
async function bare(
  ns: string,
  name: string,
  containers: V1Container[],
  o: {
    terminated?: string[];
    crashlooping?: string[];
    spec?: Partial<V1Pod['spec']>;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  } = {},
): Promise<V1Pod> {
  const annotations: Record<string, string> = { ...o.annotations };
  if (o.terminated) annotations['kwok.podmigration.test/terminated'] = o.terminated.join(',');
  if (o.crashlooping) annotations['kwok.podmigration.test/crashlooping'] = o.crashlooping.join(',');
  const pod = podManifest(ns, name, 'node-1', [], annotations);
  pod.metadata!.labels = { ...pod.metadata!.labels, ...o.labels };
  pod.spec = { ...pod.spec!, containers, ...o.spec };
  return createRunningPod(pod);
}
const ctr = (name: string, cpu: string, memory: string, extra: Partial<V1Container> = {}): V1Container => ({
  name,
  image: `registry.example/${name}:1`,
  resources: { requests: { cpu, memory } },
  ...extra,
});

async function workload(ns: string, kind: 'Deployment' | 'StatefulSet', name: string, replicas = 1): Promise<void> {
  await k8s.create(`/apis/apps/v1/namespaces/${ns}/${kind.toLowerCase()}s`, {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name },
    spec: {
      replicas,
      ...(kind === 'StatefulSet' ? { serviceName: name } : {}),
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: DOWNLOADER_DONE },
        spec: {
          terminationGracePeriodSeconds: 5,
          nodeSelector: { 'kubernetes.io/hostname': 'node-2' },
          containers: TRAINING_CONTAINERS.map((t) => ctr(t.name, t.cpu, t.memory)),
        },
      },
    },
  });
}

const getPolicy = () => k8s.get<ReclaimPolicy>(`${RP}/${policy}`);
const reclaimMigrations = async () =>
  (
    await k8s.get<{ items: PodMigration[] }>('/apis/migration.ai-storage.io/v1alpha1/podmigrations', {
      labelSelector: `${LABEL_RECLAIM_POLICY}=${policy}`,
    })
  ).items;
const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
/** A series' value in a scrape (0 when absent). */
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
};

beforeAll(async () => {
  [a, b, c, d] = [
    await createNamespace('reclaim-a'),
    await createNamespace('reclaim-b'),
    await createNamespace('reclaim-c'),
    await createNamespace('reclaim-d'),
  ];
  for (const ns of [a, b, d]) await k8s.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: { [TEAM]: 'ml' } } });
  // Every namespace: the stranded figures are cluster-wide; the policy's selector picks a and b.
  operator = new OperatorProcess('', [], `reclaim-${process.pid}`);
  operator.start();
  port = await operator.port('metrics');

  // a: what strands, and what does not.
  await bare(
    a,
    'downloaded',
    TRAINING_CONTAINERS.map((t) => ctr(t.name, t.cpu, t.memory)),
    { terminated: ['downloader'] },
  ); // 500m, 512Mi
  await bare(a, 'with-sidecar', [ctr('app', '1', '1Gi'), ctr('convert', '1500m', '2Gi')], {
    terminated: ['convert'],
    spec: { initContainers: [ctr('proxy', '250m', '128Mi', { restartPolicy: 'Always' })] },
  }); // 1500m, 2Gi
  await bare(a, 'init-heavy', [ctr('app', '1', '1Gi'), ctr('done', '1', '1Gi')], {
    terminated: ['done'],
    spec: { initContainers: [ctr('prepare', '4', '4Gi')] },
  }); // a copy runs `prepare` again: nothing to give back
  await bare(a, 'pod-level', [ctr('app', '500m', '512Mi'), ctr('done', '500m', '512Mi')], {
    terminated: ['done'],
    spec: { resources: { requests: { cpu: '2', memory: '2Gi' } } },
  }); // the pod-level requests stay: nothing to give back
  await bare(a, 'crashing', [ctr('trainer', '4', '8Gi'), ctr('metrics', '100m', '64Mi')], { crashlooping: ['trainer'] }); // the work itself
  await bare(
    a,
    'all-running',
    TRAINING_CONTAINERS.map((t) => ctr(t.name, t.cpu, t.memory)),
  );
  await bare(a, 'budgeted', [ctr('app', '100m', '64Mi'), ctr('done', '700m', '700Mi')], { terminated: ['done'], labels: GUARD });
  await bare(a, 'busy', [ctr('app', '100m', '64Mi'), ctr('done', '800m', '800Mi')], { terminated: ['done'], labels: GUARD });
  await bare(a, 'goes-away', [ctr('app', '100m', '64Mi'), ctr('done', '300m', '300Mi')], { terminated: ['done'] });
  // b: an owner's pods, and one opted out.
  await workload(b, 'Deployment', 'web', 2); // Surge, both replicas never Ready: 500m, 512Mi each
  await workload(b, 'StatefulSet', 'db'); // Steer (an eviction: downtime): 500m, 512Mi
  await bare(b, 'opted-out', [ctr('app', '100m', '64Mi'), ctr('done', '2', '2Gi')], {
    terminated: ['done'],
    annotations: { 'migration.ai-storage.io/migratable': 'false' },
  });
  // c: strands, but is not selected.
  // Its copy would keep the crashing trainer, and crash too: reported, never moved.
  await bare(b, 'crash-and-done', [ctr('trainer', '100m', '64Mi'), ctr('done', '400m', '400Mi')], {
    crashlooping: ['trainer'],
    terminated: ['done'],
  });
  // d: a quota that refuses every PodMigration.
  await bare(d, 'quota-held', [ctr('app', '100m', '64Mi'), ctr('done', '300m', '300Mi')], { terminated: ['done'] });
  await k8s.create(`/api/v1/namespaces/${d}/resourcequotas`, {
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: { name: 'no-migrations' },
    spec: { hard: { 'count/podmigrations.migration.ai-storage.io': '0' } },
  });
  await bare(c, 'elsewhere', [ctr('app', '100m', '64Mi'), ctr('done', '3', '3Gi')], { terminated: ['done'] });
  for (const app of ['web', 'db'])
    await eventually(`${app} running`, async () => {
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(b), { labelSelector: `app=${app}` })).items;
      return pods.filter((p) => p.status?.phase === 'Running').length === (app === 'web' ? 2 : 1) ? true : undefined;
    });
  // A budget that refuses to let `budgeted` and `busy` go (they are not Ready: a finished container).
  await k8s.create(`/apis/policy/v1/namespaces/${a}/poddisruptionbudgets`, {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'guard' },
    spec: { selector: { matchLabels: GUARD }, minAvailable: 10 },
  });
}, 120_000);

afterAll(async () => {
  await k8s.delete(`${RP}/${policy}`).catch(() => undefined);
  await operator.stop('SIGTERM');
  for (const ns of [a, b, c, d]) await deleteNamespace(ns);
});

const EXPECTED = [
  {
    namespace: () => a,
    pod: 'with-sidecar',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '1500m',
    strandedMemory: '2Gi',
    finishedContainers: ['convert'],
  },
  {
    namespace: () => a,
    pod: 'busy',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '800m',
    strandedMemory: '800Mi',
    finishedContainers: ['done'],
  },
  {
    namespace: () => a,
    pod: 'budgeted',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '700m',
    strandedMemory: '700Mi',
    finishedContainers: ['done'],
  },
  {
    namespace: () => a,
    pod: 'downloaded',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '500m',
    strandedMemory: '512Mi',
    finishedContainers: ['downloader'],
  },
  {
    namespace: () => b,
    pod: 'db-0',
    mode: 'Steer',
    downtime: true,
    strandedCPU: '500m',
    strandedMemory: '512Mi',
    finishedContainers: ['downloader'],
  },
  ...[1, 2].map(() => ({
    namespace: () => b,
    pod: 'web-',
    mode: 'Surge',
    downtime: false,
    strandedCPU: '500m',
    strandedMemory: '512Mi',
    finishedContainers: ['downloader'],
  })),
  {
    namespace: () => b,
    pod: 'crash-and-done',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '400m',
    strandedMemory: '400Mi',
    finishedContainers: ['done'],
  },
  {
    namespace: () => a,
    pod: 'goes-away',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '300m',
    strandedMemory: '300Mi',
    finishedContainers: ['done'],
  },
  {
    namespace: () => d,
    pod: 'quota-held',
    mode: 'Copy',
    downtime: false,
    strandedCPU: '300m',
    strandedMemory: '300Mi',
    finishedContainers: ['done'],
  },
];

describe('a Report policy', () => {
  it('refuses a policy without a threshold, or with a threshold that is not a quantity, naming the field', () => {
    const bad = (spec: string) =>
      kubectl(
        ['apply', '-f', '-'],
        `{"apiVersion":"migration.ai-storage.io/v1alpha1","kind":"ReclaimPolicy","metadata":{"name":"bad-${process.pid}"},"spec":${spec}}`,
      );
    expect(bad('{}').stderr).toMatch(/spec\.minStrandedCPU or spec\.minStrandedMemory must be set/);
    expect(bad('{"minStrandedCPU":"lots"}').stderr).toMatch(/spec\.minStrandedCPU must be a positive quantity/);
    expect(bad('{"minStrandedMemory":"1Gi","action":"Delete"}').stderr).toMatch(/spec\.action: Unsupported value: "Delete"/);
    // A misspelt selector would select every pod: refused, never pruned to an empty one.
    expect(bad('{"minStrandedCPU":"1","podSelector":{"matchlabels":{"app":"x"}}}').stderr).toMatch(
      /unknown field "spec\.podSelector\.matchlabels"/,
    );
    expect(bad('{"minStrandedCPU":"1","namespaceSelector":{"matchExpressions":[{"key":"team","operator":"Bogus"}]}}').stderr).toMatch(
      /spec\.namespaceSelector\.matchExpressions\[0\]\.operator: Unsupported value: "Bogus"/,
    );
    expect(bad('{"minStrandedCPU":"1","podSelector":{"matchExpressions":[{"key":"team","operator":"In"}]}}').stderr).toMatch(
      /spec\.podSelector\.matchExpressions\[0\]: Invalid value: .*values must be non-empty for In and NotIn/,
    );
  });

  it('lists exactly the pods that strand, largest first, with their figures and modes, and creates nothing', async () => {
    await k8s.create(RP, {
      apiVersion: 'migration.ai-storage.io/v1alpha1',
      kind: 'ReclaimPolicy',
      metadata: { name: policy },
      spec: { namespaceSelector: { matchLabels: { [TEAM]: 'ml' } }, minStrandedCPU: '250m', minFinishedSeconds: 0 },
    });
    const rp = await eventually('the report', async () => {
      const p = await getPolicy();
      return p.status?.totals?.pods === EXPECTED.length ? p : undefined;
    });
    expect(rp.spec).toMatchObject({ action: 'Report', maxCandidates: 20, maxConcurrent: 1, allowDowntime: false });
    const listed = rp.status!.candidates!.map((x) => ({ ...x, pod: x.pod.startsWith('web-') ? 'web-' : x.pod }));
    expect(listed).toEqual(
      EXPECTED.map((e) => ({ ...e, namespace: e.namespace(), node: e.pod === 'db-0' || e.pod === 'web-' ? 'node-2' : 'node-1' })),
    );
    // 1500m + 800m + 700m + 500m * 4 + 400m + 300m * 2; 2Gi + 800Mi + 700Mi + 512Mi * 4 + 400Mi + 300Mi * 2.
    expect(rp.status!.totals).toEqual({ pods: 10, strandedCPU: '6000m', strandedMemory: '6596Mi' });
    expect(rp.status!.reclaimed).toEqual({ migrations: 0, cpu: '0m', memory: '0' });
    expect(rp.status!.conditions!.find((x) => x.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Scanned' });
    await sleep(2_000);
    expect(await reclaimMigrations()).toEqual([]);
    // Written when it changes, not each time it is looked at.
    const version = (await getPolicy()).metadata.resourceVersion;
    await sleep(3_000);
    expect((await getPolicy()).metadata.resourceVersion).toBe(version);

    // kubectl get reads as a report.
    const table = kubectl(['get', 'reclaimpolicies', policy]).stdout;
    expect(table.split('\n')[0].split(/\s+/)).toEqual([
      'NAME',
      'ACTION',
      'CANDIDATES',
      'STRANDED-CPU',
      'STRANDED-MEM',
      'RECLAIMED-CPU',
      'RECLAIMED-MEM',
      'AGE',
    ]);
    expect(table.split('\n')[1].split(/\s+/).slice(0, 7)).toEqual([policy, 'Report', '10', '6000m', '6596Mi', '0m', '0']);
  });

  it('serves the stranded figures as gauges, by namespace and node, for every namespace', async () => {
    const text = await eventually('the gauges', async () => {
      const t = await scrape();
      return t.includes(`podmigration_stranded_pods{namespace="${c}"`) ? t : undefined;
    });
    expect(value(text, `podmigration_stranded_cpu_cores{namespace="${a}",node="node-1"}`)).toBeCloseTo(1.5 + 0.8 + 0.7 + 0.5 + 0.3, 6);
    expect(value(text, `podmigration_stranded_pods{namespace="${a}",node="node-1"}`)).toBe(5);
    expect(value(text, `podmigration_stranded_memory_bytes{namespace="${b}",node="node-2"}`)).toBe(3 * 512 * 2 ** 20);
    // Opted out of migrations, it still strands what it strands.
    expect(value(text, `podmigration_stranded_cpu_cores{namespace="${b}",node="node-1"}`)).toBeCloseTo(2.4, 6);
    expect(value(text, `podmigration_stranded_cpu_cores{namespace="${c}",node="node-1"}`)).toBe(3);
  });

  it('drops a pod deleted or finished while listed', async () => {
    await k8s.delete(paths.pod(a, 'goes-away'), { gracePeriodSeconds: 0 });
    await k8s.mergePatch(`${paths.pod(c, 'elsewhere')}/status`, { status: { phase: 'Succeeded' } });
    const rp = await eventually('the report without goes-away', async () => {
      const p = await getPolicy();
      return p.status?.totals?.pods === 9 ? p : undefined;
    });
    expect(rp.status!.candidates!.map((x) => x.pod)).not.toContain('goes-away');
    expect(rp.status!.totals).toEqual({ pods: 9, strandedCPU: '5700m', strandedMemory: '6296Mi' });
    await eventually('elsewhere no longer stranding', async () =>
      value(await scrape(), `podmigration_stranded_cpu_cores{namespace="${c}",node="node-1"}`) === 0 ? true : undefined,
    );
  });
});

describe('a Migrate policy', () => {
  it('moves its candidates within maxConcurrent, skips the one already moving and the Steer pod, waits on the budget, and gives the capacity back', async () => {
    const before = await scrape();
    const reclaimedBefore = value(before, `podmigration_reclaimed_cpu_cores_total{namespace="${a}"}`);
    // The user's own migration of `busy`: its copy is made, then the budget holds the source.
    await k8s.create(
      pmPath(a),
      migration(a, 'user-busy', { podName: 'busy', sourceNode: 'node-1', targetNode: 'node-3', metricsDelaySeconds: 0 }),
    );
    await eventually('user-busy held by the budget', async () => {
      const pm = await k8s.get<PodMigration>(pmPath(a, 'user-busy'));
      return pm.status?.phase === 'DeletingSourcePod' ? true : undefined;
    });

    await k8s.mergePatch(`${RP}/${policy}`, { spec: { action: 'Migrate', maxConcurrent: 2 } });
    let most = 0;
    const seen = new Set<string>();
    const until = async (what: string, done: (ms: PodMigration[]) => boolean) =>
      eventually(
        what,
        async () => {
          const ms = await reclaimMigrations();
          for (const m of ms) seen.add(m.spec.podName);
          // Under way: until the source is removed (one that only waits to measure holds no place).
          most = Math.max(
            most,
            ms.filter((m) => !['CollectingMetrics', 'Completed', 'Failed', 'Cancelled'].includes(m.status?.phase ?? 'Pending')).length,
          );
          return done(ms) ? ms : undefined;
        },
        120_000,
      );
    // Three complete; `budgeted` waits on its budget, its source untouched.
    await until(
      'four completed, budgeted held',
      (ms) =>
        ms.filter((m) => m.status?.phase === 'Completed').length === 4 &&
        ms.some((m) => m.spec.podName === 'budgeted' && m.status?.phase === 'DeletingSourcePod'),
    );
    expect(await getPod(a, 'budgeted')).toMatchObject({ metadata: { name: 'budgeted' } });
    expect((await getPod(a, 'budgeted'))!.metadata!.deletionTimestamp).toBeUndefined();

    await k8s.delete(`/apis/policy/v1/namespaces/${a}/poddisruptionbudgets/guard`);
    const ms = await until('five completed', (x) => x.filter((m) => m.status?.phase === 'Completed').length === 5);
    expect(most).toBeLessThanOrEqual(2);
    expect(most).toBeGreaterThanOrEqual(1);
    // Moved: the three bare pods and both of the Deployment's (never Ready: a finished container); not `busy` (the
    // user's), not db-0 (Steer), not opted-out.
    expect([...seen].map((p) => (p.startsWith('web-') ? 'web-' : p)).sort()).toEqual([
      'budgeted',
      'downloaded',
      'web-',
      'web-',
      'with-sidecar',
    ]);
    for (const m of ms) {
      expect(m.metadata.name).toMatch(/^reclaim-[0-9a-f-]{36}$/);
      expect(m.spec).toMatchObject({ avoidSourceNode: false });
      expect(m.spec.targetNode).toBeUndefined();
      expect(m.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'ReclaimPolicy', name: policy })]);
    }
    expect(await waitForPhase(a, 'user-busy', ['Completed'])).toBeTruthy();

    // The report: db-0, crash-and-done and quota-held left, each saying why; reclaimed is what the five
    // migrations gave back.
    const saved = (m: PodMigration) => {
      const o = fromFigures(m.status!.resources!.original!);
      const n = fromFigures(m.status!.resources!.optimized!);
      return { cpu: o.cpu - n.cpu, memory: o.memory - n.memory };
    };
    const gave = ms.map(saved).reduce((x, y) => ({ cpu: x.cpu + y.cpu, memory: x.memory + y.memory }));
    expect(gave.cpu).toBeCloseTo(1.5 + 0.7 + 0.5 + 0.5 + 0.5, 6);
    const rp = await eventually('the report after', async () => {
      const p = await getPolicy();
      return p.status?.totals?.pods === 3 && p.status.reclaimed?.migrations === 5 && p.status.inFlight === 0 ? p : undefined;
    });
    expect(rp.status!.candidates!.map((x) => [x.pod, x.skipped])).toEqual([
      ['db-0', expect.stringMatching(/^moving it has downtime \(Steer mode/)],
      ['crash-and-done', 'container trainer crashes: a copy would keep it, and crash too'],
      ['quota-held', expect.stringMatching(/^the API server refused its PodMigration: .*forbidden.*quota: no-migrations/)],
    ]);
    expect(rp.status!.message).toMatch(/; 0 migrations in flight, 5 completed, 3 skipped/);
    expect(rp.status!.reclaimed).toEqual({ migrations: 5, cpu: '3700m', memory: `${(gave.memory / 2 ** 20).toFixed(0)}Mi` });
    expect(rp.status!.conditions!.find((x) => x.type === 'Ready')).toMatchObject({ status: 'True' });

    // The gauges fall to what is left, and the counter rose by what a's migrations gave back (the user's too).
    const after = await eventually('the gauges after', async () => {
      const t = await scrape();
      return value(t, `podmigration_stranded_pods{namespace="${a}",node="node-1"}`) === 0 ? t : undefined;
    });
    expect(value(after, `podmigration_stranded_cpu_cores{namespace="${b}",node="node-2"}`)).toBeCloseTo(0.5, 6);
    const inA = [...ms.filter((m) => m.metadata.namespace === a), await k8s.get<PodMigration>(pmPath(a, 'user-busy'))].map(saved);
    expect(value(after, `podmigration_reclaimed_cpu_cores_total{namespace="${a}"}`) - reclaimedBefore).toBeCloseTo(
      inA.reduce((x, y) => x + y.cpu, 0),
      6,
    );
    expect(value(after, `podmigration_reclaimed_cpu_cores_total{namespace="${b}"}`)).toBeCloseTo(1, 6);
  }, 240_000);
});
