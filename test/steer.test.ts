// Steer mode: pods of StatefulSets, Jobs and custom controllers, whose replacement only the
// owner can make. The operator serves the admission webhook (its certificate issued by
// itself into a Secret, the CA written into the configuration), evicts the source, and the
// owner's next pod is pinned to the target node at admission. With the real
// kube-controller-manager controllers and kube-scheduler.
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { paths } from '../src/kube/client';
import { ROOT } from './cluster/provider';
import {
  OperatorProcess,
  createNamespace,
  deleteNamespace,
  eventually,
  getPod,
  k8s,
  kubectl,
  migration,
  pmPath,
  podsOfMigration,
  sleep,
  waitForPhase,
  httpsCall,
  servingCertDir,
} from './helpers';

const CONFIG = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/podmigration-mutating-webhook';
const SECRET = '/api/v1/namespaces/podmigration-system/secrets/podmigration-webhook-cert';
let ns: string;
let port: number;
let operator: OperatorProcess;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** config/webhook's configuration, reaching the operator on loopback instead of through its Service. */
async function registerWebhook(): Promise<void> {
  const config = JSON.parse(kubectl(['create', '--dry-run=client', '-o', 'json', '-f', join(ROOT, 'config/webhook/mutating_webhook.yaml')]).stdout);
  config.webhooks[0].clientConfig = { url: `https://127.0.0.1:${port}/mutate-v1-pod` };
  await k8s.delete(CONFIG).catch(() => undefined);
  await k8s.create('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', config);
}

beforeAll(async () => {
  ns = await createNamespace('steer');
  port = await freePort();
  await k8s.delete(SECRET).catch(() => undefined);
  await registerWebhook();
  operator = new OperatorProcess(ns, ['--webhook-bind-address', `127.0.0.1:${port}`]);
  operator.start();
  await eventually('CA bundle injected', async () => {
    const c = await k8s.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(CONFIG);
    return c.webhooks[0].clientConfig.caBundle ? true : undefined;
  }, 60_000);
});

afterAll(async () => {
  await operator.stop('SIGTERM');
  await k8s.delete(CONFIG).catch(() => undefined);
  await k8s.delete(SECRET).catch(() => undefined);
  await deleteNamespace(ns);
});

const ready = (p?: V1Pod) => !!p && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const otherNode = (node: string) => ['node-1', 'node-2', 'node-3'].find((n) => n !== node)!;
const spec = (app: string) => ({
  metadata: { labels: { app } },
  spec: {
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'main', image: 'registry.example/main:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
  },
});

it('issued its own serving certificate into its Secret', async () => {
  const secret = await k8s.get<{ type: string; data: Record<string, string> }>(SECRET);
  expect(secret.type).toBe('kubernetes.io/tls');
  expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  const c = await k8s.get<{ webhooks: { clientConfig: { caBundle: string } }[] }>(CONFIG);
  expect(c.webhooks[0].clientConfig.caBundle).toBe(secret.data['ca.crt']);
});

it('moves a StatefulSet pod: the same name, now on the target node', async () => {
  await k8s.create(`/apis/apps/v1/namespaces/${ns}/statefulsets`, {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'notebook' },
    spec: { replicas: 1, serviceName: 'notebook', selector: { matchLabels: { app: 'notebook' } }, template: spec('notebook') },
  });
  const source = await eventually('notebook-0 Ready', async () => {
    const p = await getPod(ns, 'notebook-0');
    return ready(p) ? p : undefined;
  });
  const to = otherNode(source!.spec!.nodeName!);
  await k8s.create(pmPath(ns), migration(ns, 'move-notebook', { podName: 'notebook-0', sourceNode: source!.spec!.nodeName!, targetNode: to, metricsDelaySeconds: 0 }));
  const pm = await waitForPhase(ns, 'move-notebook', ['Completed', 'Failed'], 90_000);
  expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer', steer: { owner: { kind: 'StatefulSet', name: 'notebook' } }, targetPod: { name: 'notebook-0' } });
  const now = await getPod(ns, 'notebook-0');
  expect(now!.metadata!.uid).not.toBe(source!.metadata!.uid);
  expect(now!.spec!.nodeName).toBe(to);
  expect(ready(now)).toBe(true);
  expect(now!.metadata!.labels!['migration.ai-storage.io/migration']).toBe('move-notebook');
});

it("moves a Job's running pod, and the Job still completes", async () => {
  await k8s.create(`/apis/batch/v1/namespaces/${ns}/jobs`, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'train' },
    spec: { backoffLimit: 4, template: { ...spec('train'), spec: { ...spec('train').spec, restartPolicy: 'Never' } } },
  });
  const source = await eventually('Job pod Ready', async () => (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: 'app=train' })).items.find(ready));
  const to = otherNode(source.spec!.nodeName!);
  await k8s.create(pmPath(ns), migration(ns, 'move-train', { podName: source.metadata!.name!, sourceNode: source.spec!.nodeName!, targetNode: to, metricsDelaySeconds: 0 }));
  const pm = await waitForPhase(ns, 'move-train', ['Completed', 'Failed'], 90_000);
  expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer' });
  const [replacement] = await podsOfMigration(ns, 'move-train');
  expect(replacement.spec!.nodeName).toBe(to);
  expect(replacement.metadata!.ownerReferences![0]).toMatchObject({ kind: 'Job', name: 'train' });
  // The work finishes on the new node (the fake kubelet is told so): the Job completes.
  await k8s.replace(`${paths.pod(ns, replacement.metadata!.name!)}/status`, {
    ...replacement,
    status: {
      ...replacement.status,
      phase: 'Succeeded',
      conditions: replacement.status!.conditions!.map((c) => (c.type === 'Ready' ? { ...c, status: 'False' } : c)),
      containerStatuses: replacement.status!.containerStatuses!.map((s) => ({
        ...s,
        ready: false,
        started: false,
        state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: s.state!.running!.startedAt, finishedAt: new Date().toISOString() } },
      })),
    },
  });
  await eventually('Job Complete', async () => {
    const job = await k8s.get<{ status?: { conditions?: { type: string; status: string }[] } }>(`/apis/batch/v1/namespaces/${ns}/jobs/train`);
    return job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ? true : undefined;
  }, 60_000);
});

describe('a custom controller', () => {
  const crd = 'trainers.test.podmigration.io';
  let running = true;
  let controller: Promise<void>;
  let owner: { apiVersion: string; kind: string; name: string; uid: string; controller: boolean };
  let made = 0;

  beforeAll(async () => {
    await k8s.create('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: crd },
      spec: {
        group: 'test.podmigration.io',
        names: { plural: 'trainers', singular: 'trainer', kind: 'Trainer' },
        scope: 'Namespaced',
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    }).catch(() => undefined);
    const trainer = await eventually('Trainer created', () =>
      k8s.create<{ metadata: { name: string; uid: string } }>(`/apis/test.podmigration.io/v1/namespaces/${ns}/trainers`, {
        apiVersion: 'test.podmigration.io/v1',
        kind: 'Trainer',
        metadata: { name: 'llm' },
      }),
    );
    owner = { apiVersion: 'test.podmigration.io/v1', kind: 'Trainer', name: 'llm', uid: trainer.metadata.uid, controller: true };
    // The custom controller: keeps one pod of the Trainer's, made anew when it is gone.
    controller = (async () => {
      while (running) {
        const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: 'app=llm' })).items.filter((p) => !p.metadata?.deletionTimestamp);
        if (pods.length === 0) {
          made += 1;
          await k8s.create(paths.pods(ns), { apiVersion: 'v1', kind: 'Pod', metadata: { name: `llm-${made}`, namespace: ns, ownerReferences: [owner], ...spec('llm').metadata }, spec: spec('llm').spec });
        }
        await sleep(200);
      }
    })();
  });

  afterAll(async () => {
    running = false;
    await controller;
    await k8s.delete(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`).catch(() => undefined);
  });

  it("steers its replacement pod to the target node", async () => {
    const source = await eventually('llm-1 Ready', async () => {
      const p = await getPod(ns, 'llm-1');
      return ready(p) ? p : undefined;
    });
    const to = otherNode(source!.spec!.nodeName!);
    await k8s.create(pmPath(ns), migration(ns, 'move-llm', { podName: 'llm-1', sourceNode: source!.spec!.nodeName!, targetNode: to, metricsDelaySeconds: 0 }));
    const pm = await waitForPhase(ns, 'move-llm', ['Completed', 'Failed'], 90_000);
    expect(pm.status).toMatchObject({ phase: 'Completed', mode: 'Steer', steer: { owner: { kind: 'Trainer', name: 'llm' } }, targetPod: { name: 'llm-2' } });
    expect((await getPod(ns, 'llm-2'))!.spec!.nodeName).toBe(to);
  });

  it('never delays the owner when the operator is down (failurePolicy Ignore, connection refused)', async () => {
    const create = async (name: string) => {
      const t0 = Date.now();
      await k8s.create(paths.pods(ns), { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, ownerReferences: [owner], labels: { app: 'side' } }, spec: spec('side').spec });
      return Date.now() - t0;
    };
    const up = await create('side-up');
    await operator.stop('SIGKILL');
    const down = await create('side-down');
    operator.start();
    process.stdout.write(`owned pod creation: ${up} ms with the webhook up, ${down} ms with it down\n`);
    // The webhook's timeout is 2 s; a refused connection must not come near it.
    expect(down).toBeLessThan(1_000);
    expect(await getPod(ns, 'side-down')).toBeDefined();
    await eventually('operator back', async () => (operator.log().split('serving the pod admission webhook').length > 2 ? true : undefined), 30_000);
  });
});

it('serves with a certificate from --webhook-cert-dir (cert-manager) and admits what it does not steer unchanged', async () => {
  const { dir, ca } = await servingCertDir('webhook-certs');
  const p = await freePort();
  const other = new OperatorProcess(ns, ['--webhook-bind-address', `127.0.0.1:${p}`, '--webhook-cert-dir', dir], `${ns}-certdir`);
  other.start();
  try {
    await eventually('webhook served', async () => (other.log().includes('serving the pod admission webhook') ? true : undefined));
    const pod = { metadata: { name: 'x', ownerReferences: [{ apiVersion: 'v1', kind: 'Thing', name: 't', uid: 'u', controller: true }] }, spec: { containers: [] } };
    const reply = await httpsCall(p, '/mutate-v1-pod', ca, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'r-1', operation: 'CREATE', namespace: ns, object: pod } }),
    });
    const answer = JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; patch?: string } };
    expect(answer.response).toEqual({ uid: 'r-1', allowed: true });
  } finally {
    await other.stop('SIGTERM');
  }
});

it('says plainly where an unsteered replacement went (ReplacementNotSteered)', async () => {
  await k8s.delete(CONFIG);
  try {
    await k8s.create(`/apis/apps/v1/namespaces/${ns}/statefulsets`, {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'lost' },
      spec: { replicas: 1, serviceName: 'lost', selector: { matchLabels: { app: 'lost' } }, template: spec('lost') },
    });
    const source = await eventually('lost-0 Ready', async () => {
      const p = await getPod(ns, 'lost-0');
      return ready(p) ? p : undefined;
    });
    await k8s.create(pmPath(ns), migration(ns, 'move-lost', { podName: 'lost-0', sourceNode: source!.spec!.nodeName!, targetNode: otherNode(source!.spec!.nodeName!) }));
    const pm = await waitForPhase(ns, 'move-lost', ['Completed', 'Failed'], 90_000);
    expect(pm.status).toMatchObject({ phase: 'Failed', reason: 'ReplacementNotSteered' });
    expect(pm.status!.message).toMatch(/StatefulSet lost recreated the pod as lost-0, which the admission webhook did not steer .*(runs on node-\d|is not scheduled yet)/);
  } finally {
    await registerWebhook();
  }
});
