// Shared pieces of the integration tests: an admin client, namespaces, pods, kubectl, and
// the operator as a real process (so it can be killed).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { API_VERSION, LABEL_MIGRATION, type Phase, type PodMigration, type PodMigrationSpec } from '../src/api/types';
import { ignoreNotFound } from '../src/errors';
import { KubeClient, paths } from '../src/kube/client';
import { KubeConfig } from '../src/kube/config';
import { Informer } from '../src/kube/informer';
import pino from 'pino';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { issue } from '../src/certificates';
import { parse, stringify } from 'yaml';
import { CLUSTER_DIR, ROOT, testEnv } from './cluster/provider';

export const env = testEnv();

/** A kubeconfig (as text) for the test cluster with a bearer token as its identity. */
export function tokenKubeconfig(user: string, token: string): string {
  const admin = parse(readFileSync(env.kubeconfig, 'utf8')) as { clusters: { name: string; cluster: object }[] };
  const cluster = admin.clusters[0];
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [cluster],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: cluster.name, user } }],
    'current-context': user,
  });
}

/**
 * Follows the pods of a namespace (list, then watch: every change the API server makes, in
 * order) and calls `check` with all of them after each change. For invariants that must
 * hold at every moment, which sampling at intervals could miss.
 */
export async function followPods(
  ns: string,
  check: (pods: readonly V1Pod[]) => void,
  labelSelector?: string,
): Promise<{ changes: () => number; stop: () => Promise<void> }> {
  let changes = 0;
  const informer: Informer<V1Pod> = new Informer<V1Pod>({
    client: k8s,
    path: paths.pods(ns),
    labelSelector,
    log: pino({ level: 'silent' }),
    onChange: () => {
      changes += 1;
      check(informer.list());
    },
  });
  await informer.start();
  check(informer.list());
  return { changes: () => changes, stop: () => informer.stop() };
}

/** A serving certificate for 127.0.0.1 written as tls.crt and tls.key into a directory of its own (the --*-cert-dir flags). */
export async function servingCertDir(name: string): Promise<{ dir: string; ca: string }> {
  const dir = join(CLUSTER_DIR, name);
  mkdirSync(dir, { recursive: true });
  const c = await issue(['localhost', '127.0.0.1']);
  writeFileSync(join(dir, 'tls.crt'), c.cert);
  writeFileSync(join(dir, 'tls.key'), c.key);
  return { dir, ca: c.ca };
}

/** One HTTPS request to 127.0.0.1 trusting `ca`; the status and the body as text. */
export function httpsCall(
  port: number,
  path: string,
  ca: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: o.method ?? 'GET', ca, headers: o.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

export function adminClient(): KubeClient {
  return new KubeClient(KubeConfig.fromFile(env.kubeconfig), 'podmigration-tests');
}

export const k8s = adminClient();

export const pmPath = (ns: string, name?: string) => (name ? paths.migration(ns, name) : paths.migrations(ns));

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `fn` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(100);
  }
}

const uniqueName = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

export async function createNamespace(prefix: string, name = uniqueName(prefix)): Promise<string> {
  await k8s.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  // Pods are admitted only once the namespace's default ServiceAccount exists.
  await eventually(`serviceaccount default in ${name}`, () => k8s.get(`/api/v1/namespaces/${name}/serviceaccounts/default`));
  return name;
}

export async function deleteNamespace(name: string): Promise<void> {
  await k8s.delete(`/api/v1/namespaces/${name}`).catch(() => undefined);
}

export interface ContainerSpec {
  name: string;
  cpu: string;
  memory: string;
}

/** An AI-style pod on `node`; the kwok annotations choose how the fake kubelet plays it. */
export function podManifest(
  ns: string,
  name: string,
  node: string,
  containers: ContainerSpec[],
  annotations: Record<string, string> = {},
): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { app: name }, annotations },
    spec: {
      nodeName: node,
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 5,
      containers: containers.map((c) => ({
        name: c.name,
        image: `registry.example/${c.name}:1`,
        resources: { requests: { cpu: c.cpu, memory: c.memory } },
      })),
    },
  };
}

/** The three-container pod whose figures the tests know: 1500m/768Mi, 1000m/256Mi migrated. */
export const TRAINING_CONTAINERS: ContainerSpec[] = [
  { name: 'trainer', cpu: '750m', memory: '128Mi' },
  { name: 'exporter', cpu: '250m', memory: '128Mi' },
  { name: 'downloader', cpu: '500m', memory: '512Mi' },
];
export const DOWNLOADER_DONE = { 'kwok.podmigration.test/terminated': 'downloader' };

export async function getPod(ns: string, name: string): Promise<V1Pod | undefined> {
  return ignoreNotFound(k8s.get<V1Pod>(paths.pod(ns, name)));
}

/** Creates the pod and waits until the fake kubelet reports it in `phase` (Running). */
export async function createRunningPod(pod: V1Pod, phase = 'Running'): Promise<V1Pod> {
  const ns = pod.metadata!.namespace!;
  await k8s.create(paths.pods(ns), pod);
  return eventually(`pod ${pod.metadata!.name} ${phase}`, async () => {
    const p = await getPod(ns, pod.metadata!.name!);
    return p?.status?.phase === phase ? p : undefined;
  });
}

export function migration(ns: string, name: string, spec: PodMigrationSpec): PodMigration {
  return { apiVersion: API_VERSION, kind: 'PodMigration', metadata: { name, namespace: ns } as PodMigration['metadata'], spec };
}

export async function getMigration(ns: string, name: string): Promise<PodMigration> {
  return k8s.get<PodMigration>(pmPath(ns, name));
}

export async function waitForPhase(ns: string, name: string, phases: Phase[], timeoutMs = 60_000): Promise<PodMigration> {
  return eventually(
    `migration ${name} in ${phases.join('|')}`,
    async () => {
      const pm = await getMigration(ns, name);
      return pm.status?.phase && phases.includes(pm.status.phase) ? pm : undefined;
    },
    timeoutMs,
  );
}

export async function podsOfMigration(ns: string, name: string): Promise<V1Pod[]> {
  const list = await k8s.get<{ items: V1Pod[] }>(paths.pods(ns), { labelSelector: `${LABEL_MIGRATION}=${name}` });
  return list.items;
}

export async function claimsOfMigration(ns: string, name: string) {
  const list = await k8s.get<{ items: { metadata: { name: string } }[] }>(`/api/v1/namespaces/${ns}/persistentvolumeclaims`, {
    labelSelector: `${LABEL_MIGRATION}=${name}`,
  });
  return list.items;
}

export async function eventsOf(ns: string, name: string) {
  const list = await k8s.get<{ items: { reason: string; type: string; message: string }[] }>(paths.events(ns), {
    fieldSelector: `involvedObject.name=${name},involvedObject.kind=PodMigration`,
  });
  return list.items;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real kubectl, built with the control plane, as the admin user. */
export function kubectl(args: string[], input?: string): CommandResult {
  const r = spawnSync(join(env.bin, 'kubectl'), ['--kubeconfig', env.kubeconfig, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** kubectl, without blocking this process while it runs (watches here go on receiving). */
export function kubectlAsync(args: string[], timeoutMs = 300_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(join(env.bin, 'kubectl'), ['--kubeconfig', env.kubeconfig, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** A TCP port free on loopback now. */
export async function freePort(): Promise<number> {
  // Below the kernel's ephemeral range (32768 and up), so that no process binding port 0
  // meanwhile (the operator's own probe and metrics servers) is handed the same port.
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/**
 * Registers one of config/webhook's configurations (replacing one there) to reach the
 * operator on loopback by URL instead of through its Service, as `make run` does.
 */
export async function registerWebhook(file: 'mutating_webhook.yaml' | 'eviction_webhook.yaml', url: string): Promise<void> {
  const config = JSON.parse(kubectl(['create', '--dry-run=client', '-o', 'json', '-f', join(ROOT, 'config/webhook', file)]).stdout);
  const collection = `/apis/admissionregistration.k8s.io/v1/${String(config.kind).toLowerCase()}s`;
  for (const w of config.webhooks) w.clientConfig = { url };
  await k8s.delete(`${collection}/${config.metadata.name}`).catch(() => undefined);
  await k8s.create(collection, config);
}

/** The operator as a separate process under its own ServiceAccount identity; '' watches every namespace. */
export class OperatorProcess {
  private child?: ChildProcess;
  readonly logFile: string;

  constructor(
    private readonly namespace: string,
    private readonly extraArgs: string[] = [],
    label = namespace || 'all-namespaces',
    private readonly kubeconfig = env.operatorKubeconfig,
  ) {
    mkdirSync(join(CLUSTER_DIR, 'logs'), { recursive: true });
    this.logFile = join(CLUSTER_DIR, 'logs', `operator-${label}.log`);
  }

  start(): void {
    const out = createWriteStream(this.logFile, { flags: 'a' });
    this.child = spawn(
      process.execPath,
      [
        join(ROOT, 'dist/main.js'),
        '--kubeconfig',
        this.kubeconfig,
        ...(this.namespace ? ['--namespace', this.namespace] : []),
        '--log-level',
        'debug',
        '--health-probe-bind-address',
        '127.0.0.1:0',
        '--metrics-bind-address',
        '127.0.0.1:0',
        // Tests move many pods between the same few nodes at once; the limits on
        // migrations in flight have their own test (limits.test.ts).
        '--max-migrations-in-flight',
        '1000',
        '--max-migrations-per-node',
        '1000',
        ...this.extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // Recorded so the global teardown can stop it even if this test process dies.
    mkdirSync(join(CLUSTER_DIR, 'pids'), { recursive: true });
    writeFileSync(join(CLUSTER_DIR, 'pids', String(this.child.pid)), '');
    this.child.stdout!.pipe(out);
    this.child.stderr!.pipe(out);
  }

  /** The port of /healthz and /readyz, or of /metrics, once the operator has logged it. */
  async port(what: 'healthz' | 'metrics' | 'api/v1/migrations'): Promise<number> {
    return eventually(`${what} server`, async () => {
      const line = this.log()
        .split('\n')
        .reverse()
        .find((l) => l.includes(`serving /${what}`));
      return line ? (JSON.parse(line) as { port: number }).port : undefined;
    });
  }

  /** The operator's log so far. */
  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the exit code (or signal) once the process has exited by itself. */
  exited(): Promise<number | string> {
    const child = this.child;
    if (!child) return Promise.resolve('not started');
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? child.signalCode!);
    return new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal ?? 'unknown')));
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Stops the process (SIGKILL by default) and waits until it is gone. */
  async stop(sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(sig);
    await exited;
    this.child = undefined;
  }
}

/**
 * For one test file: a namespace of its own, created before its tests and deleted after
 * them, and an operator process watching it (started first unless `start: false`).
 */
export function operatorNamespace(prefix: string, o: { args?: string[]; start?: boolean } = {}) {
  const ns = uniqueName(prefix);
  const operator = new OperatorProcess(ns, o.args ?? []);
  beforeAll(async () => {
    await createNamespace(prefix, ns);
    if (o.start !== false) operator.start();
  });
  afterAll(async () => {
    await operator.stop('SIGTERM');
    await deleteNamespace(ns);
  });
  return { ns, operator };
}

export interface KwokNodeOptions {
  unschedulable?: boolean;
  taints?: object[];
  cpu?: string;
  memory?: string;
  /** Extended resources it offers, such as {'nvidia.com/gpu': '2'}. */
  extended?: Record<string, string>;
  labels?: Record<string, string>;
  /** false: no kwok manages it, so it is never Ready. */
  managed?: boolean;
}

/** A fake node that kwok plays the kubelet for; waits until it is Ready and its not-ready taint is lifted. */
export async function kwokNode(name: string, o: KwokNodeOptions = {}): Promise<string> {
  const resources = { cpu: o.cpu ?? '16', memory: o.memory ?? '64Gi', pods: '110', ...o.extended };
  await k8s.create('/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: o.managed === false ? {} : { 'kwok.x-k8s.io/node': 'fake' },
      labels: { type: 'kwok', 'kubernetes.io/hostname': name, ...o.labels },
    },
    spec: { unschedulable: o.unschedulable, taints: o.taints },
    status: { allocatable: resources, capacity: resources },
  });
  if (o.managed !== false) {
    await eventually(`node ${name} Ready`, async () => {
      const n = await k8s.get<{ spec?: { taints?: { key: string }[] }; status?: { conditions?: { type: string; status: string }[] } }>(
        `/api/v1/nodes/${name}`,
      );
      // Ready, and the node lifecycle controller has lifted its not-ready taint.
      const settled = !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/not-ready'));
      return settled && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    });
  }
  return name;
}
