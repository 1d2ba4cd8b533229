// Drains: migrations whose target kube-scheduler chooses (spec.targetNode unset), and
// evictions that become migrations, with the real `kubectl drain`, kube-scheduler and
// kube-controller-manager, and the operator serving its webhooks on loopback (registered
// by URL, as `make run` does).
import type { V1Pod } from '@kubernetes/client-node';
import type { NodeDrain, PodMigration } from '../src/api/types';
import { Informer } from '../src/kube/informer';
import pino from 'pino';
import { ApiError } from '../src/errors';
import { paths } from '../src/kube/client';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventually,
  followPods,
  freePort,
  getPod,
  k8s,
  kubectl,
  kubectlAsync,
  kwokNode,
  migration,
  pmPath,
  podManifest,
  podsOfMigration,
  registerWebhook,
  waitForPhase,
} from './helpers';

const EVICTION_CONFIG = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/podmigration-eviction-webhook';
const MUTATING_CONFIG = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podmigration-mutating-webhook';
const SECRET = '/api/v1/namespaces/podmigration-system/secrets/podmigration-webhook-cert';
const ON_EVICTION = 'migration.ai-storage.io/on-eviction';
let ns: string;
let operator: OperatorProcess;
const nodes: string[] = [];
const drains: string[] = [];
const drainPath = (name?: string) => `/apis/migration.ai-storage.io/v1alpha1/nodedrains${name ? `/${name}` : ''}`;

beforeAll(async () => {
  ns = await createNamespace('drain');
  const port = await freePort();
  await k8s.delete(SECRET).catch(() => undefined);
  await registerWebhook('mutating_webhook.yaml', `https://127.0.0.1:${port}/mutate-v1-pod`);
  await registerWebhook('eviction_webhook.yaml', `https://127.0.0.1:${port}/validate-v1-pod-eviction`);
  // The default limits on migrations in flight (5 in all, 2 per node), as a user runs it.
  const limits = ['--max-migrations-in-flight', '5', '--max-migrations-per-node', '2'];
  operator = new OperatorProcess(ns, ['--webhook-bind-address', `127.0.0.1:${port}`, ...limits], `drain-${ns}`);
  operator.start();
  // Serving once the CA is in both configurations.
  await eventually(
    'CA bundle injected',
    async () =>
      (await k8s.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(EVICTION_CONFIG)).webhooks[0].clientConfig.caBundle
        ? true
        : undefined,
    30_000,
  );
});

afterAll(async () => {
  for (const d of drains) await k8s.delete(drainPath(d)).catch(() => undefined);
  await operator.stop('SIGTERM');
  // Registered by URL here: removed, so that a later apply of config/webhook starts clean.
  await k8s.delete(EVICTION_CONFIG).catch(() => undefined);
  await k8s.delete(MUTATING_CONFIG).catch(() => undefined);
  await deleteNamespace(ns);
  for (const n of nodes) await k8s.delete(paths.node(n)).catch(() => undefined);
});

const ready = (p?: V1Pod) =>
  !!p && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Two fake nodes of a pool of their own: the first takes the pods, the second (cordoned until `open`) is where they go. */
async function pool(name: string): Promise<{ from: string; to: string; selector: Record<string, string>; open: () => Promise<void> }> {
  const selector = { pool: `${ns}-${name}` };
  const [from, to] = [`${ns}-${name}-a`, `${ns}-${name}-b`];
  nodes.push(from, to);
  await kwokNode(from, { labels: selector });
  await kwokNode(to, { labels: selector, unschedulable: true });
  return { from, to, selector, open: async () => void (await k8s.mergePatch(paths.node(to), { spec: { unschedulable: false } })) };
}

const template = (app: string, selector: Record<string, string>) => ({
  metadata: { labels: { app } },
  spec: {
    nodeSelector: selector,
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'main', image: 'registry.example/main:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
  },
});

async function workload(kind: 'Deployment' | 'StatefulSet' | 'DaemonSet', name: string, selector: Record<string, string>): Promise<void> {
  const plural = `${kind.toLowerCase()}s`;
  await k8s.create(`/apis/apps/v1/namespaces/${ns}/${plural}`, {
    apiVersion: 'apps/v1',
    kind,
    metadata: { name },
    spec: {
      ...(kind === 'DaemonSet' ? {} : { replicas: 1 }),
      ...(kind === 'StatefulSet' ? { serviceName: name } : {}),
      selector: { matchLabels: { app: name } },
      template: template(name, selector),
    },
  });
}

const podsOf = async (app: string) => (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `app=${app}` })).items;
const evictionMigrations = async () =>
  (await k8s.get<{ items: PodMigration[] }>(pmPath(ns), { labelSelector: 'migration.ai-storage.io/created-by=eviction' })).items;

describe('the target left to kube-scheduler', () => {
  it('moves a bare pod to a node of its choosing, never the source, and says which', async () => {
    await createRunningPod(podManifest(ns, 'free', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
    await k8s.create(pmPath(ns), migration(ns, 'move-free', { podName: 'free', sourceNode: 'node-1', metricsDelaySeconds: 0 }));
    const pm = await waitForPhase(ns, 'move-free', ['Completed', 'Failed']);
    expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Copy' });
    const [copy] = await podsOfMigration(ns, 'move-free');
    expect(copy.spec!.nodeName).not.toBe('node-1');
    expect(pm.status!.targetNode).toBe(copy.spec!.nodeName);
    expect(pm.status!.targetPod).toMatchObject({ name: copy.metadata!.name, node: copy.spec!.nodeName });
    expect(copy.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms).toEqual([
      { matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['node-1'] }] },
    ]);
    expect(await getPod(ns, 'free')).toBeUndefined();
    // The TARGET column shows where it went.
    const row = kubectl(['get', 'podmigration', 'move-free', '-n', ns, '--no-headers']).stdout.trim().split(/\s+/);
    expect(row.slice(0, 4)).toEqual(['move-free', 'free', 'node-1', copy.spec!.nodeName]);
  });

  it('keeps the copy off the source node even where only the source would do (the source runs on)', async () => {
    const pod = podManifest(ns, 'rooted', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE);
    pod.spec!.nodeSelector = { 'kubernetes.io/hostname': 'node-1' };
    const source = await createRunningPod(pod);
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-rooted', { podName: 'rooted', sourceNode: 'node-1', readyTimeoutSeconds: 60, metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-rooted', ['Completed', 'Failed'], 90_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodUnschedulable' });
    expect(pm.status!.message).toMatch(/node affinity|didn't match/);
    expect((await getPod(ns, 'rooted'))!.metadata!.uid).toBe(source.metadata!.uid);
    await eventually('the copy removed', async () => ((await podsOfMigration(ns, 'move-rooted')).length === 0 ? true : undefined), 30_000);
  });

  it('with spec.avoidSourceNode false, lets the copy land on the source node, where it fits (a reclaim in place)', async () => {
    const pod = podManifest(ns, 'inplace', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE);
    pod.spec!.nodeSelector = { 'kubernetes.io/hostname': 'node-1' };
    await createRunningPod(pod);
    await k8s.create(
      pmPath(ns),
      migration(ns, 'move-inplace', { podName: 'inplace', sourceNode: 'node-1', avoidSourceNode: false, metricsDelaySeconds: 0 }),
    );
    const pm = await waitForPhase(ns, 'move-inplace', ['Completed', 'Failed']);
    expect(pm.status).toMatchObject({ phase: 'Completed', targetNode: 'node-1' });
    const [copy] = await podsOfMigration(ns, 'move-inplace');
    expect(copy.spec!.nodeName).toBe('node-1');
    expect(copy.spec!.affinity).toBeUndefined();
    expect(copy.spec!.containers.map((c) => c.name)).toEqual(['trainer', 'exporter']);
    expect(pm.status!.resources!.savings).toMatchObject({ cpuPercent: 33.3, memoryPercent: 66.7 });
  });
});

describe('evictions of opted-in pods become migrations', () => {
  it('answers an eviction 429, naming the PodMigration it started; a repeat starts no second one', async () => {
    const p = podManifest(ns, 'evictee', 'node-2', TRAINING_CONTAINERS, { ...DOWNLOADER_DONE, [ON_EVICTION]: 'migrate' });
    const source = await createRunningPod(p);
    const evict = () =>
      k8s
        .create(paths.eviction(ns, 'evictee'), { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'evictee', namespace: ns } })
        .then(
          () => undefined,
          (e: unknown) => e as ApiError,
        );
    const name = `eviction-${source.metadata!.uid}`;
    for (let i = 0; i < 2; i++) {
      const e = await evict();
      expect(e).toBeInstanceOf(ApiError);
      expect([e!.code, e!.reason]).toEqual([429, 'TooManyRequests']);
      expect(e!.message).toContain(`PodMigration ${ns}/${name}`);
    }
    const made = await evictionMigrations();
    expect(made.map((m) => m.metadata.name)).toEqual([name]);
    expect(made[0].metadata.annotations).toMatchObject({ 'migration.ai-storage.io/evicted-by': 'admin' });
    // It moves the pod; then the pod is gone, and an eviction finds nothing to evict.
    const done = await waitForPhase(ns, name, ['CollectingMetrics', 'Completed', 'Failed'], 90_000);
    expect(done.status).toMatchObject({ mode: 'Copy' });
    expect(done.status!.phase).not.toBe('Failed');
    expect(done.status!.targetNode).not.toBe('node-2');
    expect(await getPod(ns, 'evictee')).toBeUndefined();
    expect((await evict())!.code).toBe(404);
  });

  it('kubectl drain: the Deployment never without a Ready pod, the bare pod lives on, the StatefulSet pod evicted, the DaemonSet pod untouched', async () => {
    const { from, to, selector, open } = await pool('kd');
    await k8s.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: { [ON_EVICTION]: 'migrate' } } });
    try {
      await workload('Deployment', 'web', selector);
      await workload('StatefulSet', 'db', selector);
      await workload('DaemonSet', 'agent', selector);
      const notebook = await createRunningPod(podManifest(ns, 'notebook', from, TRAINING_CONTAINERS, DOWNLOADER_DONE));
      const placed = await eventually('web, db and agent Ready on the first node', async () => {
        const pods = [...(await podsOf('web')), ...(await podsOf('db')), ...(await podsOf('agent'))].filter(
          (p) => p.spec!.nodeName === from,
        );
        return pods.length === 3 && pods.every(ready) ? pods : undefined;
      });
      const [db, agent] = [placed.find((p) => p.metadata!.name === 'db-0')!, placed.find((p) => p.metadata!.labels!.app === 'agent')!];
      await open();

      const gaps: string[] = [];
      const web = await followPods(
        ns,
        (pods) => {
          if (!pods.some(ready)) gaps.push(pods.map((p) => `${p.metadata!.name}:${ready(p) ? 'Ready' : 'not Ready'}`).join(','));
        },
        'app=web',
      );
      const r = await kubectlAsync(['drain', from, '--ignore-daemonsets', '--force', '--timeout=180s']);
      await web.stop();
      expect(r.code).toBe(0);
      // kubectl drain's own words for a 429: it retries, as it does for a budget.
      expect(r.stderr).toMatch(/error when evicting pods\/"web-[a-z0-9-]+" .*\(will retry after 5s\): .* is being moved by PodMigration/);
      expect(gaps).toEqual([]);
      expect(web.changes()).toBeGreaterThan(3);

      // The Deployment's pod runs on the other node, handed over (Surge); the bare pod too (Copy).
      const now = (await podsOf('web')).filter(ready);
      expect(now.map((p) => p.spec!.nodeName)).toEqual([to]);
      const copies = (await podsOf('notebook')).filter(
        (p) => p.metadata!.annotations?.['migration.ai-storage.io/migrated-from'] === 'notebook',
      );
      expect(copies.map((p) => p.status!.phase)).toEqual(['Running']);
      expect(copies[0].spec!.nodeName).not.toBe(from);
      expect(await getPod(ns, 'notebook')).toBeUndefined();
      const made = await evictionMigrations();
      expect(made.map((m) => [m.spec.podName, m.status!.mode]).sort()).toEqual(
        expect.arrayContaining([
          [notebook.metadata!.name, 'Copy'],
          [expect.stringMatching(/^web-/), 'Surge'],
        ]),
      );
      // The StatefulSet's pod was evicted (a migration gains nothing there), and came back.
      const db0 = await eventually('db-0 back', async () => {
        const p = await getPod(ns, 'db-0');
        return p && p.metadata!.uid !== db.metadata!.uid && ready(p) ? p : undefined;
      });
      expect(db0.spec!.nodeName).toBe(to);
      expect(made.some((m) => m.spec.podName === 'db-0')).toBe(false);
      // The DaemonSet's pod belongs to its node.
      expect((await getPod(ns, agent.metadata!.name!))!.metadata!.uid).toBe(agent.metadata!.uid);
    } finally {
      await k8s.mergePatch(`/api/v1/namespaces/${ns}`, { metadata: { labels: { [ON_EVICTION]: null } } });
    }
  });

  it('a migration that fails during a drain: the next eviction passes, and the drain completes', async () => {
    const { from } = await pool('fail');
    // Only its own node will do: the migration cannot place a copy anywhere else.
    const p = podManifest(ns, 'pinned', from, TRAINING_CONTAINERS, { ...DOWNLOADER_DONE, [ON_EVICTION]: 'migrate' });
    p.spec!.nodeSelector = { 'kubernetes.io/hostname': from };
    const source = await createRunningPod(p);
    const r = await kubectlAsync(['drain', from, '--force', '--timeout=180s']);
    expect(r.code).toBe(0);
    const pm = await waitForPhase(ns, `eviction-${source.metadata!.uid}`, ['Completed', 'Failed']);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'TargetPodUnschedulable' });
    expect(r.stdout + r.stderr).toMatch(/will retry after 5s/);
    expect(r.stdout).toMatch(/pod\/pinned evicted/);
    expect(await getPod(ns, 'pinned')).toBeUndefined();
  });

  it('with the operator stopped, a drain behaves exactly as without it', async () => {
    const { from, selector, open } = await pool('down');
    await workload('Deployment', 'plain', selector);
    await eventually('plain Ready', async () => ((await podsOf('plain')).some(ready) ? true : undefined));
    await createRunningPod(podManifest(ns, 'lost', from, TRAINING_CONTAINERS, { ...DOWNLOADER_DONE, [ON_EVICTION]: 'migrate' }));
    await open();
    const before = (await evictionMigrations()).length;
    await operator.stop('SIGKILL');
    try {
      const t0 = Date.now();
      const r = await kubectlAsync(['drain', from, '--ignore-daemonsets', '--force', '--timeout=120s']);
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/will retry/);
      expect(Date.now() - t0).toBeLessThan(60_000);
      expect(await getPod(ns, 'lost')).toBeUndefined();
      expect((await evictionMigrations()).length).toBe(before);
    } finally {
      operator.start();
    }
  });
});

/** Follows a NodeDrain's every version (list, then watch) and checks its counts at each. */
async function followDrain(name: string, check: (d: NodeDrain) => void) {
  const versions: NodeDrain[] = [];
  const informer = new Informer<NodeDrain>({
    client: k8s,
    path: drainPath(),
    log: pino({ level: 'silent' }),
    onChange: (d) => {
      if (d.metadata.name !== name) return;
      versions.push(d);
      check(d);
    },
  });
  await informer.start();
  return { versions, stop: () => informer.stop() };
}

async function nodeDrain(name: string, spec: object): Promise<void> {
  drains.push(name);
  await k8s.create(drainPath(), { apiVersion: 'migration.ai-storage.io/v1alpha1', kind: 'NodeDrain', metadata: { name }, spec });
}

const drained = (name: string, timeoutMs = 180_000) =>
  eventually(
    `NodeDrain ${name} ended`,
    async () => {
      const d = await k8s.get<NodeDrain>(drainPath(name));
      return d.status?.phase === 'Drained' || d.status?.phase === 'Failed' ? d : undefined;
    },
    timeoutMs,
  );

/** Every Deployment's Ready pods (Ready, not being deleted), at every change the API server makes. */
async function floorOfReady(apps: string[]) {
  const least = new Map(apps.map((a) => [a, Infinity]));
  const follow = await followPods(ns, (pods) => {
    for (const a of apps) least.set(a, Math.min(least.get(a)!, pods.filter((p) => p.metadata!.labels!.app === a && ready(p)).length));
  });
  return { least, stop: () => follow.stop() };
}

describe('NodeDrain', () => {
  it('refuses a misspelt or malformed selector, naming the field (a selector pruned to {} would drain every pod)', () => {
    const bad = (selector: string) =>
      kubectl(
        ['apply', '-f', '-'],
        `{"apiVersion":"migration.ai-storage.io/v1alpha1","kind":"NodeDrain","metadata":{"name":"bad-${process.pid}"},"spec":{"nodeName":"node-3","podSelector":${selector}}}`,
      );
    expect(bad('{"matchlabels":{"app":"web"}}').stderr).toMatch(/unknown field "spec\.podSelector\.matchlabels"/);
    expect(bad('{"matchExpressions":[{"key":"app","operator":"NotIn"}]}').stderr).toMatch(/values must be non-empty for In and NotIn/);
    expect(kubectl(['get', 'nodedrain', `bad-${process.pid}`]).code).not.toBe(0);
  });

  it('drains 20 pods of 10 Deployments under the default limits: no Deployment below its replicas, counts right at every version', async () => {
    const { from, to, selector, open } = await pool('nd');
    const apps = Array.from({ length: 10 }, (_, i) => `svc-${i}`);
    for (const a of apps) {
      await k8s.create(`/apis/apps/v1/namespaces/${ns}/deployments`, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: a },
        spec: { replicas: 2, selector: { matchLabels: { app: a } }, template: template(a, selector) },
      });
    }
    await eventually('20 pods Ready on the first node', async () => {
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { fieldSelector: `spec.nodeName=${from}` })).items;
      return pods.filter(ready).length === 20 ? true : undefined;
    });
    await open();
    const floor = await floorOfReady(apps);
    const wrong: string[] = [];
    let seenMigrated = 0;
    const follow = await followDrain('drain-nd', (d) => {
      const c = d.status?.pods;
      if (!c) return;
      const sum = c.migrated + c.evicted + c.pending + c.failed + c.skipped;
      if (sum !== c.total) wrong.push(`sum ${sum} != total ${c.total}`);
      if (c.total !== 0 && c.total !== 20) wrong.push(`total ${c.total}`);
      if (c.migrated < seenMigrated) wrong.push(`migrated went back from ${seenMigrated} to ${c.migrated}`);
      if (c.evicted || c.failed || c.skipped) wrong.push(`evicted ${c.evicted}, failed ${c.failed}, skipped ${c.skipped}`);
      seenMigrated = c.migrated;
    });
    await nodeDrain('drain-nd', { nodeName: from });
    const d = await drained('drain-nd');
    await follow.stop();
    await floor.stop();
    expect(d.status).toMatchObject({
      phase: 'Drained',
      cordoned: true,
      pods: { total: 20, migrated: 20, evicted: 0, pending: 0, failed: 0, skipped: 0 },
    });
    expect(d.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Drained' });
    expect(wrong).toEqual([]);
    expect(follow.versions.length).toBeGreaterThan(5);
    // Never fewer Ready pods than replicas (the floor with a plain drain: 0).
    expect([...floor.least.values()]).toEqual(apps.map(() => 2));
    // Nothing of ours left on the node; every Deployment whole on the other one; the node stays cordoned.
    const left = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { fieldSelector: `spec.nodeName=${from}` })).items;
    expect(left.map((p) => p.metadata!.name)).toEqual([]);
    const moved = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { fieldSelector: `spec.nodeName=${to}` })).items.filter(ready);
    expect(moved.length).toBe(20);
    expect((await k8s.get<{ spec: { unschedulable?: boolean } }>(paths.node(from))).spec.unschedulable).toBe(true);
    // Its PodMigrations, listed by its label.
    const listed = kubectl(['get', 'pm', '-n', ns, '-l', 'migration.ai-storage.io/node-drain=drain-nd', '-o', 'name'])
      .stdout.trim()
      .split('\n');
    expect(listed).toHaveLength(20);
    const row = kubectl(['get', 'nodedrains', 'drain-nd', '--no-headers']).stdout.trim().split(/\s+/);
    expect(row.slice(0, 6)).toEqual(['drain-nd', from, 'Drained', '20', '0', '0']);
  });

  it('evicts what only its owner recreates, skips DaemonSet pods, migrates a bare pod', async () => {
    const { from, to, selector, open } = await pool('mix');
    await workload('StatefulSet', 'mix-db', selector);
    await workload('DaemonSet', 'mix-agent', selector);
    await createRunningPod(podManifest(ns, 'mix-notebook', from, TRAINING_CONTAINERS, DOWNLOADER_DONE));
    await eventually('placed', async () => {
      const pods = [...(await podsOf('mix-db')), ...(await podsOf('mix-agent'))].filter((p) => p.spec!.nodeName === from);
      return pods.length === 2 && pods.every(ready) ? true : undefined;
    });
    await open();
    await nodeDrain('drain-mix', { nodeName: from });
    const d = await drained('drain-mix');
    expect(d.status).toMatchObject({ phase: 'Drained', pods: { total: 3, migrated: 1, evicted: 1, pending: 0, failed: 0, skipped: 1 } });
    const by = new Map(d.status!.items!.map((i) => [i.name.replace(/-[a-z0-9]{5}$/, ''), i]));
    expect(by.get('mix-db-0')).toMatchObject({ action: 'Evict', result: 'Evicted' });
    expect(by.get('mix-agent')).toMatchObject({ action: 'Skip', result: 'Skipped' });
    expect(by.get('mix-notebook')).toMatchObject({ action: 'Migrate', result: 'Migrated' });
    const db0 = await eventually('mix-db-0 back', async () => {
      const p = await getPod(ns, 'mix-db-0');
      return p && ready(p) ? p : undefined;
    });
    expect(db0.spec!.nodeName).toBe(to);
  });

  it('deleted mid-way: nothing lost, a migration not past its point of no return cancelled, the node uncordoned; one NodeDrain per node', async () => {
    const { from, to, selector, open } = await pool('stop');
    const apps = Array.from({ length: 6 }, (_, i) => `stop-${i}`);
    for (const a of apps) {
      const t = template(a, selector);
      // One of them never becomes Ready on the other node: its migration waits in step 3.
      if (a === 'stop-5') Object.assign(t.metadata, { annotations: { 'kwok.podmigration.test/unready-on': to } });
      await k8s.create(`/apis/apps/v1/namespaces/${ns}/deployments`, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: a },
        spec: { replicas: 1, selector: { matchLabels: { app: a } }, template: t },
      });
    }
    const sources = await eventually('6 pods Ready', async () => {
      const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { fieldSelector: `spec.nodeName=${from}` })).items.filter(ready);
      return pods.length === 6 ? pods : undefined;
    });
    await open();
    const floor = await floorOfReady(apps);
    await nodeDrain('drain-stop', { nodeName: from });
    // A second NodeDrain of the same node is refused: the first drains it.
    await nodeDrain('drain-stop-again', { nodeName: from });
    expect((await drained('drain-stop-again', 30_000)).status).toMatchObject({ phase: 'Failed', reason: 'NodeAlreadyDraining' });
    await eventually(
      'five migrated, one whose copy never becomes Ready',
      async () => {
        const c = (await k8s.get<NodeDrain>(drainPath('drain-stop'))).status?.pods;
        return c && c.migrated === 5 && c.pending === 1 ? true : undefined;
      },
      120_000,
    );
    const held = sources.find((p) => p.metadata!.labels!.app === 'stop-5')!;
    await k8s.delete(drainPath('drain-stop'));
    await eventually('NodeDrain gone', async () =>
      k8s.get(drainPath('drain-stop')).then(
        () => undefined,
        () => true,
      ),
    );
    expect((await k8s.get<{ spec: { unschedulable?: boolean } }>(paths.node(from))).spec.unschedulable).toBeFalsy();
    // The held pod runs on where it was; every Deployment ends with its one Ready pod, and none
    // was ever without one.
    await eventually(
      'each Deployment settled with one Ready pod',
      async () => {
        const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items;
        return apps.every((a) => pods.filter((p) => p.metadata!.labels!.app === a && ready(p)).length === 1) ? true : undefined;
      },
      60_000,
    );
    await floor.stop();
    expect([...floor.least.values()]).toEqual(apps.map(() => 1));
    const after = await getPod(ns, held.metadata!.name!);
    expect([after?.metadata?.uid, after?.spec?.nodeName, ready(after)]).toEqual([held.metadata!.uid, from, true]);
    // Its PodMigrations go with it (owner references), each undoing what it could.
    await eventually(
      'its PodMigrations gone',
      async () => {
        const left = (
          await k8s.get<{ items: PodMigration[] }>(pmPath(ns), { labelSelector: 'migration.ai-storage.io/node-drain=drain-stop' })
        ).items;
        return left.length === 0 ? true : undefined;
      },
      60_000,
    );
  });
});
