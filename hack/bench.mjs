#!/usr/bin/env node
// The operator against a floor, side by side in one run on the local control plane (kwok
// pods are Ready in milliseconds, so what shows is the control plane's cost).
//
//   node hack/bench.mjs [--n 1,100] [--memory 1000,5000,10000] [--dist DIR] [--keep]
//                       [--breakdown] [--timeline] [--costs] [--defaults]  (make bench)
//
// --memory: the operator's memory with that many stored (ended) PodMigrations: its peak,
// and its RSS 10 s and 90 s after its caches synced (V8 returns the heap the initial list
// left behind after about a minute idle).
// --defaults: the operator keeps its default limits on migrations in flight (what safety
// costs), instead of limits raised to N (throughput).
// --breakdown also lists the operator's requests per migration by verb, resource and code.
// --timeline also says where the operator's migrations spent their time (from their status).
// --costs measures what one request of each kind the operator sends costs the API server.
// --node-options '...' sets NODE_OPTIONS for the operator alone (V8 heap experiments).
//
// --dist runs the operator from another build (for example an older commit's dist/).
//
// For each N, N pods on node-1 are moved to node-2 twice: first by the floor client, which
// issues only the requests the contract needs (GET pod, POST copy, one shared watch for
// Ready, POST eviction, PUT status), then by the operator; both with the operator's
// identity and N at once. Requests are counted by identity from the API server's audit
// log, within each run's window. Prints wall time, p50/p99 latency (record created ->
// Completed), requests per migration, the operator's CPU per migration and RSS, and the
// ratios to the floor.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const root = resolve(new URL('..', import.meta.url).pathname);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const sizes = arg('n', '1,100').split(',').filter(Boolean).map(Number);
const dir = join(root, '.cluster-bench');
const env = { ...process.env, CLUSTER_DIR: dir, AUDIT: '1' };

execFileSync(join(root, 'hack/cluster.sh'), ['up'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
const { KubeConfig } = require(join(root, 'dist/kube/config.js'));
const { KubeClient, paths } = require(join(root, 'dist/kube/client.js'));
const { buildTargetPod } = require(join(root, 'dist/migration/optimizedPod.js'));

// --node-options '...': NODE_OPTIONS for the operator only (this script reads whole audit logs).
const operatorEnv = { ...process.env, NODE_OPTIONS: arg('node-options', process.env.NODE_OPTIONS ?? '') };

// Operators this script started never outlive it, even when a run fails.
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});
const client = (file) => new KubeClient(KubeConfig.fromFile(join(dir, file)), 'podmigration-bench');
const admin = client('kubeconfig');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const GROUP = 'migration.ai-storage.io';
const pmPath = (ns, name) => `/apis/${GROUP}/v1alpha1/namespaces/${ns}/podmigrations${name ? `/${name}` : ''}`;
const OPERATOR = 'system:serviceaccount:podmigration-system:podmigration-operator';

async function setup(ns, n) {
  await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  while (!(await admin.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`).catch(() => undefined))) await sleep(100);
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) =>
        admin.create(paths.pods(ns), {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `p-${i + j}`, labels: { app: `p-${i + j}` } },
          spec: { nodeName: 'node-1', containers: [{ name: 'main', image: 'x', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
        }),
      ),
    );
  }
  for (;;) {
    const pods = (await admin.get(paths.pods(ns))).items;
    if (pods.filter((p) => p.status?.phase === 'Running').length === n) return;
    await sleep(200);
  }
}

async function createMigrations(ns, n) {
  const created = new Map();
  for (let i = 0; i < n; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
        const name = `m-${i + j}`;
        await admin.create(pmPath(ns), {
          apiVersion: `${GROUP}/v1alpha1`,
          kind: 'PodMigration',
          metadata: { name },
          spec: { podName: `p-${i + j}`, sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 },
        });
        created.set(name, Date.now());
      }),
    );
  }
  return created;
}

/** The floor: only the requests the contract needs, with the operator's identity. */
async function floor(ns, n) {
  const c = client('operator.kubeconfig');
  const api0 = cpuOf(apiserver());
  const t0 = Date.now();
  const created = await createMigrations(ns, n);
  const ready = new Map();
  const waiters = new Map();
  // One shared watch for the copies' readiness (a connection of its own).
  const watcher = client('operator.kubeconfig');
  let watching = true;
  let watch;
  const onPod = (_type, pod) => {
    if ((pod.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True')) {
      ready.set(pod.metadata.name, true);
      waiters.get(pod.metadata.name)?.();
    }
  };
  // The watch is restarted should the API server end it; a timer keeps the process alive meanwhile.
  const start = () => {
    watch = watcher.watch(paths.pods(ns), { labelSelector: 'floor' }, onPod);
    watch.done
      .catch(() => undefined)
      .then(() => {
        if (watching) setTimeout(start, 100);
      });
  };
  start();
  const alive = setInterval(() => undefined, 1_000);
  const done = new Map();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const pod = await c.get(paths.pod(ns, `p-${i}`));
      const copy = `p-${i}-copy`;
      // The same copy the operator makes (a pure function: no requests).
      const body = buildTargetPod(pod, {
        name: copy,
        targetNode: 'node-2',
        migrationName: `m-${i}`,
        migrationUid: 'floor',
        keep: new Set(['main']),
      });
      body.metadata.labels.floor = 'yes';
      await c.create(paths.pods(ns), body);
      if (!ready.get(copy)) await new Promise((r) => waiters.set(copy, r));
      await c.create(`${paths.pod(ns, `p-${i}`)}/eviction`, {
        apiVersion: 'policy/v1',
        kind: 'Eviction',
        metadata: { name: `p-${i}`, namespace: ns },
        deleteOptions: { preconditions: { uid: pod.metadata.uid } },
      });
      const pm = await admin.get(pmPath(ns, `m-${i}`)); // reading the record is the bench's, not counted
      await c.replace(`${pmPath(ns, `m-${i}`)}/status`, { ...pm, status: { phase: 'Completed' } });
      done.set(`m-${i}`, Date.now());
    }),
  );
  const t1 = Date.now();
  const apiCpuMs = cpuOf(apiserver()) - api0;
  watching = false;
  watch.abort();
  clearInterval(alive);
  return { t0, t1, created, done, apiCpuMs };
}

// What the build under test understands (an older one, through --dist, may predate a flag).
const main = join(resolve(arg('dist', join(root, 'dist'))), 'main.js');
const help = execFileSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
const knows = (flag) => help.includes(flag);

/** The operator as a process, reconciling N at once. */
async function operator(ns, n) {
  const proc = spawn(
    process.execPath,
    [
      main,
      '--kubeconfig',
      join(dir, 'operator.kubeconfig'),
      '--namespace',
      ns,
      knows('--max-concurrent-reconciles') ? '--max-concurrent-reconciles' : '--max-concurrent-migrations',
      String(Math.min(n, 100)),
      // Limits raised to N: this measures throughput (--defaults measures what they cost).
      ...(process.argv.includes('--defaults') || !knows('--max-migrations-in-flight')
        ? []
        : ['--max-migrations-in-flight', String(n), '--max-migrations-per-node', String(n)]),
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: 'ignore', env: operatorEnv },
  );
  children.add(proc);
  await sleep(2_000); // caches synced
  // Completions are seen through one watch (as the floor sees its copies' readiness):
  // listing every record again and again would load the API server in the operator's
  // window only.
  const done = new Map();
  let failed;
  let allDone;
  const finished = new Promise((r) => (allDone = r));
  const observer = client('kubeconfig');
  let watching = true;
  let watch;
  const onRecord = (_type, pm) => {
    if (pm.status?.phase === 'Completed' && !done.has(pm.metadata.name)) done.set(pm.metadata.name, Date.parse(pm.status.completionTime));
    if (pm.status?.phase === 'Failed') failed ??= new Error(`${pm.metadata.name} failed: ${pm.status.reason} ${pm.status.message}`);
    if (failed || done.size === n) allDone();
  };
  let since = (await admin.get(pmPath(ns))).metadata.resourceVersion;
  const start = () => {
    watch = observer.watch(pmPath(ns), { resourceVersion: since, allowWatchBookmarks: true }, (type, pm) => {
      since = pm.metadata?.resourceVersion ?? since;
      if (type !== 'BOOKMARK') onRecord(type, pm);
    });
    watch.done
      .catch(() => undefined)
      .then(() => {
        if (watching) setTimeout(start, 100);
      });
  };
  start();
  const cpu = () => cpuOf(proc.pid);
  const cpu0 = cpu();
  const api0 = cpuOf(apiserver());
  const t0 = Date.now();
  const created = await createMigrations(ns, n);
  await finished;
  const t1 = Date.now();
  watching = false;
  watch.abort();
  if (failed) throw failed;
  // What the migrations still cause after the last one completed (Events sent in the
  // background, finalizers released) is theirs too: requests and CPU are counted until the
  // operator has sent nothing for 3 s.
  const tEnd = await quiet(t1);
  const cpuMs = cpu() - cpu0;
  const apiCpuMs = cpuOf(apiserver()) - api0;
  if (process.argv.includes('--timeline')) await timeline(ns, created);
  const rss = memOf(proc.pid, 'VmHWM'); // the peak
  proc.kill('SIGKILL');
  return { t0, t1, tEnd, created, done, cpuMs, rss, apiCpuMs };
}

/** The time of the operator's last request once it has sent none for 3 s (from the audit log). */
async function quiet(since) {
  const log = join(dir, 'audit.log');
  // From a little before its end now: its lines are written asynchronously, and any older
  // than `since` change nothing.
  let offset = Math.max(0, statSync(log).size - 4 * 1024 * 1024);
  let skipFirst = offset > 0;
  let last = since;
  let partial = '';
  for (;;) {
    await sleep(1_000);
    const size = statSync(log).size;
    if (size > offset) {
      const buf = Buffer.alloc(size - offset);
      const fd = openSync(log, 'r');
      readSync(fd, buf, 0, buf.length, offset);
      closeSync(fd);
      offset = size;
      const lines = (partial + buf.toString()).split('\n');
      partial = lines.pop();
      if (skipFirst) lines.shift(); // begun mid-line
      skipFirst = false;
      for (const line of lines) {
        if (!line.includes(OPERATOR)) continue;
        const at = Date.parse(JSON.parse(line).requestReceivedTimestamp);
        if (at > last) last = at;
      }
    }
    if (Date.now() - last > 3_000 + 1_500) return last; // + the audit log's own delay
  }
}

/**
 * --timeline: where a migration's time went, from its status (after the run, outside the
 * measured window): p50/p90 of the wait before step 1 started, of each step, and in all.
 */
async function timeline(ns, created) {
  const spans = new Map();
  const add = (what, ms) => spans.set(what, [...(spans.get(what) ?? []), ms]);
  for (const pm of (await admin.get(pmPath(ns))).items) {
    const c = created.get(pm.metadata.name);
    add('created -> started', Date.parse(pm.status.startTime) - c);
    for (const st of pm.status.steps ?? []) {
      if (st.startTime && st.completionTime) add(st.name, Date.parse(st.completionTime) - Date.parse(st.startTime));
    }
    add('created -> Completed', Date.parse(pm.status.completionTime) - c);
  }
  const items = (await admin.get(pmPath(ns))).items;
  const bytes = items.reduce((sum, pm) => sum + JSON.stringify(pm).length, 0) / items.length;
  const statusBytes = items.reduce((sum, pm) => sum + JSON.stringify(pm.status).length, 0) / items.length;
  console.log(
    `timeline of ${created.size} migrations (ms); a completed record is ${bytes.toFixed(0)} bytes of JSON, ${statusBytes.toFixed(0)} of them status`,
  );
  for (const [what, xs] of spans)
    console.log(`  ${what.padEnd(34)} p50 ${String(pct(xs, 50)).padStart(6)}  p90 ${String(pct(xs, 90)).padStart(6)}`);
}

/** The operator identity's requests within [t0, t1], and how many of each kind. */
function requests(t0, t1) {
  let count = 0;
  const kinds = new Map();
  for (const line of readFileSync(join(dir, 'audit.log'), 'utf8').split('\n')) {
    if (!line.includes(OPERATOR)) continue;
    const e = JSON.parse(line);
    const at = Date.parse(e.requestReceivedTimestamp);
    if (e.user?.username !== OPERATOR || at < t0 || at > t1) continue;
    count++;
    const r = e.objectRef ?? {};
    const kind = `${e.verb} ${r.resource ?? e.requestURI}${r.subresource ? `/${r.subresource}` : ''} ${e.responseStatus?.code ?? ''}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return { count, kinds };
}
const breakdown = process.argv.includes('--breakdown');

/** CPU time (user + system, ms) a process has used so far. */
function cpuOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // 100 Hz ticks
}
const apiserver = () => Number(readFileSync(join(dir, 'kube-apiserver.pid'), 'utf8'));
const memOf = (pid, field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const pct = (xs, p) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const latencies = (r) => [...r.done].map(([name, at]) => at - r.created.get(name));

const rows = [];
const run = Date.now().toString(36); // a kept cluster can be benched again
for (const n of sizes) {
  await setup(`bench-floor-${n}-${run}`, n);
  const fr = await floor(`bench-floor-${n}-${run}`, n);
  await sleep(1_500); // the audit log is written asynchronously
  const fAudit = requests(fr.t0, fr.t1);
  const fReq = fAudit.count / n;
  await setup(`bench-op-${n}-${run}`, n);
  const or = await operator(`bench-op-${n}-${run}`, n);
  await sleep(1_500);
  const oAudit = requests(or.t0, or.tEnd);
  const oReq = oAudit.count / n;
  if (breakdown) {
    console.log(`N=${n}: operator requests per migration, by kind`);
    for (const [kind, c] of [...oAudit.kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${(c / n).toFixed(2).padStart(7)}  ${kind}`);
  }
  // Room on the nodes for the next N (deleted in the background).
  for (const ns of [`bench-floor-${n}-${run}`, `bench-op-${n}-${run}`]) await admin.delete(`/api/v1/namespaces/${ns}`);
  const fl = latencies(fr);
  const ol = latencies(or);
  rows.push({
    N: n,
    'floor wall s': ((fr.t1 - fr.t0) / 1000).toFixed(2),
    'operator wall s': ((or.t1 - or.t0) / 1000).toFixed(2),
    'wall ratio': ((or.t1 - or.t0) / (fr.t1 - fr.t0)).toFixed(1),
    'p50 ms floor/op': `${pct(fl, 50)}/${pct(ol, 50)}`,
    'p99 ms floor/op': `${pct(fl, 99)}/${pct(ol, 99)}`,
    'req/migration floor/op': `${fReq.toFixed(1)}/${oReq.toFixed(1)}`,
    'op CPU ms/migration': (or.cpuMs / n).toFixed(1),
    'apiserver CPU ms/migration floor/op': `${(fr.apiCpuMs / n).toFixed(1)}/${(or.apiCpuMs / n).toFixed(1)}`,
    'op peak RSS MiB': or.rss.toFixed(0),
  });
}
if (rows.length) console.table(rows);

/** The status of a completed migration, as the operator writes it (for stored records and --costs). */
function completedStatus(i) {
  const t = '2026-01-01T00:00:00Z';
  const step = (name, message) => ({ name, state: 'Succeeded', startTime: t, completionTime: t, message });
  const message = `migration complete: pod trainer-${i}-mig-0a1b2 on node-2; requests saved: cpu 33.3%, memory 66.7%`;
  return {
    phase: 'Completed',
    step: 5,
    progress: '5/5',
    message,
    startTime: t,
    completionTime: t,
    durationSeconds: 2.4,
    observedGeneration: 1,
    mode: 'Copy',
    sourcePod: { name: `trainer-${i}`, uid: '5f0c2a7e-8a77-4d0e-9d0a-000000000000', node: 'node-1', evictionRequestedAt: t },
    targetPod: { name: `trainer-${i}-mig-0a1b2`, uid: '5f0c2a7e-8a77-4d0e-9d0a-111111111111', node: 'node-2' },
    containers: [
      { name: 'trainer', state: 'running', restartCount: 0, migrated: true },
      { name: 'exporter', state: 'running', restartCount: 0, migrated: true },
      { name: 'downloader', state: 'terminated', restartCount: 0, migrated: false, reason: 'Completed' },
    ],
    resources: {
      original: { cpu: '1500m', memory: '768Mi' },
      optimized: { cpu: '1000m', memory: '256Mi' },
      savings: { cpuPercent: 33.3, memoryPercent: 66.7, basis: 'requests', cpu: '500m (33.3%)', memory: '512Mi (66.7%)' },
      usage: { available: false, message: 'metrics.k8s.io is not served by this cluster (no metrics-server): usage is not recorded' },
    },
    steps: [
      step('CaptureState', 'captured 3 containers: migrating trainer, exporter; dropping downloader (Completed)'),
      { name: 'Checkpoint', state: 'Skipped', startTime: t, completionTime: t, message: 'spec.preservePV is false: no checkpoint claim' },
      step('CreateTargetPod', `pod trainer-${i}-mig-0a1b2 is Ready on node-2`),
      step('DeleteSourcePod', `source pod trainer-${i} evicted from node-1`),
      step('CollectMetrics', message),
    ],
    conditions: ['Ready', 'Reconciling', 'Stalled'].map((type) => ({
      type,
      status: type === 'Ready' ? 'True' : 'False',
      reason: type === 'Ready' ? 'Completed' : 'Completed',
      message,
      lastTransitionTime: t,
      observedGeneration: 1,
    })),
  };
}

/**
 * Memory with K stored PodMigrations that have ended (as a cluster accumulates them): the
 * records are written first, then the operator starts, lists them and settles. Reports
 * its RSS once settled and its peak.
 */
async function memoryScale(k) {
  const ns = `bench-mem-${k}-${run}`;
  await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  for (let i = 0; i < k; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, k - i) }, async (_, j) => {
        const name = `m-${i + j}`;
        const spec = { podName: `trainer-${i + j}`, sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 };
        const body = { apiVersion: `${GROUP}/v1alpha1`, kind: 'PodMigration', metadata: { name, namespace: ns }, spec };
        // As kubectl apply (or a GitOps tool) leaves it.
        body.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(body) };
        const pm = await admin.create(pmPath(ns), body);
        pm.status = completedStatus(i + j);
        await admin.replace(`${pmPath(ns, name)}/status`, pm);
      }),
    );
  }
  const proc = spawn(
    process.execPath,
    [
      main,
      '--kubeconfig',
      join(dir, 'operator.kubeconfig'),
      '--namespace',
      ns,
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  children.add(proc);
  let port;
  proc.stdout.on('data', (d) => {
    for (const line of String(d).split('\n')) if (line.includes('serving /healthz')) port = JSON.parse(line).port;
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
  const early = memOf(proc.pid, 'VmRSS');
  await sleep(80_000); // V8 gives freed heap back to the system after about a minute idle
  const result = {
    'stored PodMigrations': k,
    'cache synced s': (synced / 1000).toFixed(1),
    'RSS MiB 10 s after sync': early.toFixed(0),
    'RSS MiB 90 s after sync': memOf(proc.pid, 'VmRSS').toFixed(0),
    'peak RSS MiB': memOf(proc.pid, 'VmHWM').toFixed(0),
  };
  proc.kill('SIGKILL');
  if (process.env.BENCH_KEEP_RECORDS) console.log(`kept ${k} records in namespace ${ns}`);
  else await admin.delete(`/api/v1/namespaces/${ns}`);
  return result;
}

/**
 * --costs: what one request of each kind the operator sends costs the API server (and
 * etcd), 500 of each, 25 at once, with the operator's identity: the PodMigration writes
 * are the expensive ones, and they grow with the record.
 */
async function costs() {
  const ns = `bench-costs-${run}`;
  const n = 500;
  const c = client('operator.kubeconfig');
  await admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  while (!(await admin.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`).catch(() => undefined))) await sleep(100);
  const etcd = () => Number(readFileSync(join(dir, 'etcd.pid'), 'utf8'));
  const rows = [];
  const measure = async (what, fn) => {
    const a0 = cpuOf(apiserver());
    const e0 = cpuOf(etcd());
    for (let i = 0; i < n; i += 25) await Promise.all(Array.from({ length: 25 }, (_, j) => fn(i + j)));
    rows.push({
      request: what,
      'API server CPU ms': ((cpuOf(apiserver()) - a0) / n).toFixed(2),
      'etcd CPU ms': ((cpuOf(etcd()) - e0) / n).toFixed(2),
    });
  };
  const pms = [];
  const pods = [];
  await measure('create PodMigration (admin)', async (i) => {
    pms[i] = await admin.create(pmPath(ns), {
      apiVersion: `${GROUP}/v1alpha1`,
      kind: 'PodMigration',
      metadata: { name: `m-${i}` },
      spec: { podName: `trainer-${i}`, sourceNode: 'node-1', targetNode: 'node-2' },
    });
  });
  await measure('GET PodMigration', (i) => c.get(pmPath(ns, `m-${i}`)));
  await measure('PATCH finalizer on (no status yet)', async (i) => {
    pms[i] = await c.mergePatch(pmPath(ns, `m-${i}`), {
      metadata: { resourceVersion: pms[i].metadata.resourceVersion, finalizers: ['migration.ai-storage.io/cleanup'] },
    });
  });
  await measure(
    'PUT status (a completed one)',
    async (i) => (pms[i] = await c.replace(`${pmPath(ns, `m-${i}`)}/status`, { ...pms[i], status: completedStatus(i) })),
  );
  await measure(
    'PUT status again (message changed)',
    async (i) =>
      (pms[i] = await c.replace(`${pmPath(ns, `m-${i}`)}/status`, {
        ...pms[i],
        status: { ...completedStatus(i), message: `changed ${i}` },
      })),
  );
  await measure('PATCH finalizer off (completed)', async (i) => {
    pms[i] = await c.mergePatch(pmPath(ns, `m-${i}`), { metadata: { resourceVersion: pms[i].metadata.resourceVersion, finalizers: null } });
  });
  await measure('create Event', (i) =>
    c.create(`/apis/events.k8s.io/v1/namespaces/${ns}/events`, {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `m-${i}.${run}` },
      eventTime: new Date().toISOString().replace('Z', '000Z'),
      reportingController: 'migration.ai-storage.io/podmigration-controller',
      reportingInstance: 'bench',
      action: 'StepSucceeded',
      reason: 'StepSucceeded',
      note: `step 1/5 CaptureState succeeded: captured 3 containers: migrating trainer, exporter; dropping downloader (Completed)`,
      type: 'Normal',
      regarding: { apiVersion: `${GROUP}/v1alpha1`, kind: 'PodMigration', name: `m-${i}`, namespace: ns, uid: pms[i].metadata.uid },
    }),
  );
  await measure('create pod (admin)', async (i) => {
    pods[i] = await admin.create(paths.pods(ns), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `trainer-${i}` },
      spec: { nodeName: 'node-3', containers: [{ name: 'main', image: 'x' }] },
    });
  });
  await sleep(3_000); // kwok has started them
  await measure('GET pod', async (i) => (pods[i] = await c.get(paths.pod(ns, `trainer-${i}`))));
  await measure('PATCH pod annotation (the claim)', async (i) => {
    pods[i] = await c.mergePatch(paths.pod(ns, `trainer-${i}`), {
      metadata: { resourceVersion: pods[i].metadata.resourceVersion, annotations: { 'migration.ai-storage.io/claimed-by': `m-${i}/x` } },
    });
  });
  console.table(rows);
  await admin.delete(`/api/v1/namespaces/${ns}`);
}
if (process.argv.includes('--costs')) await costs();

const memory = arg('memory', '');
if (memory) {
  const mem = [];
  for (const k of memory.split(',').map(Number)) mem.push(await memoryScale(k));
  console.table(mem);
}
if (!process.argv.includes('--keep') && existsSync(dir)) execFileSync(join(root, 'hack/cluster.sh'), ['down'], { env, stdio: 'ignore' });
process.exit(0);
