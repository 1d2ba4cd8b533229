// Monitoring by convention: the alert rules shipped in config/prometheus name only metrics
// the operator really serves (checked against a live scrape of a leader-elected operator
// that has run a migration), /metrics served securely answers only identities the API
// server authorizes, and the ServiceMonitor scrapes the metrics Service that way.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './cluster/provider';
import {
  DOWNLOADER_DONE,
  OperatorProcess,
  TRAINING_CONTAINERS,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  eventually,
  k8s,
  kubectl,
  migration,
  pmPath,
  podManifest,
  waitForPhase,
} from './helpers';

const LEASE = `podmigration-monitoring-${process.pid}`;
let ns: string;
let operator: OperatorProcess;

beforeAll(async () => {
  ns = await createNamespace('monitoring');
  operator = new OperatorProcess(ns, [
    '--leader-elect',
    '--leader-election-namespace',
    'podmigration-system',
    '--leader-election-id',
    LEASE,
  ]);
  operator.start();
});

afterAll(async () => {
  await operator.stop();
  await k8s.delete(`/apis/coordination.k8s.io/v1/namespaces/podmigration-system/leases/${LEASE}`).catch(() => undefined);
  await deleteNamespace(ns);
});

const FUNCTIONS = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'rate',
  'irate',
  'increase',
  'vector',
  'on',
  'by',
  'without',
  'and',
  'or',
  'unless',
  'absent',
  'histogram_quantile',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
]);

const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g;

/** Metric names an expression reads (identifiers that are not functions, keywords or label names). */
function metricNames(expr: string): string[] {
  const withoutLabels = expr
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(GROUPING, '$1()');
  return [...withoutLabels.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !FUNCTIONS.has(w) && !/^\d/.test(w));
}

/** Labels an expression groups or matches by (`by (namespace, node)`), which its metrics' series must carry. */
const groupingLabels = (expr: string) =>
  [...expr.matchAll(GROUPING)].flatMap((m) =>
    m[2]
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean),
  );

/** A live scrape: every series line, and the metric names served. */
async function liveScrape(ready: (text: string) => boolean): Promise<{ served: Set<string>; series: string[] }> {
  const port = await operator.port('metrics');
  const text = await eventually('the scrape', async () => {
    const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return ready(t) ? t : undefined;
  });
  const series = text.split('\n').filter((l) => l && !l.startsWith('#'));
  return { served: new Set(series.map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0])), series };
}

it('alerts on metrics the operator serves, with the labels it gives them', async () => {
  await createRunningPod(podManifest(ns, 'watched', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  await k8s.create(
    pmPath(ns),
    migration(ns, 'move-watched', { podName: 'watched', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }),
  );
  expect((await waitForPhase(ns, 'move-watched', ['Completed', 'Failed'])).status!.phase).toBe('Completed');
  // And one that fails, so that the failure series exist too.
  await k8s.create(pmPath(ns), migration(ns, 'move-nothing', { podName: 'nothing', sourceNode: 'node-1', targetNode: 'node-2' }));
  expect((await waitForPhase(ns, 'move-nothing', ['Completed', 'Failed'])).status!.reason).toBe('PodNotFound');

  const { served, series } = await liveScrape(
    (t) => t.includes(`leader_election_master_status{name="${LEASE}"} 1`) && t.includes('podmigration_migrations_total{result="Failed"'),
  );

  const rules = parseAllDocuments(readFileSync(join(ROOT, 'config/prometheus/alerts.yaml'), 'utf8'))[0].toJS() as {
    spec: { groups: { rules: { alert: string; expr: string }[] }[] };
  };
  const all = rules.spec.groups.flatMap((g) => g.rules);
  expect(all.map((r) => r.alert)).toEqual([
    'PodMigrationsStuck',
    'PodMigrationsFailing',
    'PodMigrationReconcileErrors',
    'PodMigrationOperatorNoLeader',
    'PodMigrationWorkQueueStuck',
  ]);
  for (const r of all) {
    for (const name of metricNames(r.expr)) {
      expect([r.alert, name, served.has(name)]).toEqual([r.alert, name, true]);
      // Every label matcher names a label the series carries.
      for (const m of r.expr.matchAll(new RegExp(`${name}\\{([^}]*)\\}`, 'g'))) {
        for (const [, label, value] of m[1].matchAll(/(\w+)="([^"]*)"/g)) {
          const matching = series.filter((l) => l.startsWith(`${name}{`) && l.includes(`${label}="${value}"`));
          // The lease's name differs here from the default the rule uses.
          if (name === 'leader_election_master_status') expect(series.some((l) => l.startsWith(`${name}{${label}=`))).toBe(true);
          else
            expect([r.alert, `${name}{${label}="${value}"}`, matching.length > 0]).toEqual([r.alert, `${name}{${label}="${value}"}`, true]);
        }
      }
    }
  }
});

it('charts in its dashboard only metrics the operator serves, with the labels it gives them', async () => {
  // A pod that strands requests (a finished downloader), so that the stranded gauges are served.
  await createRunningPod(podManifest(ns, 'idle', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  const { served, series } = await liveScrape(
    (t) =>
      t.includes(`podmigration_stranded_cpu_cores{namespace="${ns}"`) && t.includes('podmigration_migrations_total{result="Completed"'),
  );
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'config/prometheus/dashboard.json'), 'utf8')) as {
    panels: { title: string; type: string; targets?: { expr: string }[] }[];
  };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
  expect(queries.length).toBeGreaterThanOrEqual(10);
  const charted = new Set<string>();
  for (const q of queries) {
    const names = metricNames(q.expr);
    expect([q.panel, names.length > 0]).toEqual([q.panel, true]);
    for (const name of names) {
      charted.add(name);
      expect([q.panel, name, served.has(name)]).toEqual([q.panel, name, true]);
      const of = series.filter((l) => l.startsWith(`${name}{`));
      for (const label of groupingLabels(q.expr))
        expect([q.panel, name, label, of.some((l) => l.includes(`${label}="`))]).toEqual([q.panel, name, label, true]);
      for (const m of q.expr.matchAll(new RegExp(`${name}\\{([^}]*)\\}`, 'g')))
        for (const [, label, value] of m[1].matchAll(/(\w+)="([^"]*)"/g))
          expect([q.panel, `${label}="${value}"`, of.some((l) => l.includes(`${label}="${value}"`))]).toEqual([
            q.panel,
            `${label}="${value}"`,
            true,
          ]);
    }
  }
  // What the issue asks it to show: stranded and reclaimed capacity, results and reasons, durations, in flight and queued.
  for (const name of [
    'podmigration_stranded_cpu_cores',
    'podmigration_stranded_memory_bytes',
    'podmigration_reclaimed_cpu_cores_total',
    'podmigration_reclaimed_memory_bytes_total',
    'podmigration_migrations_total',
    'podmigration_migration_duration_seconds_bucket',
    'podmigration_migrations_in_flight',
    'workqueue_depth',
  ])
    expect([name, charted.has(name)]).toEqual([name, true]);
});

it('ships the dashboard as a ConfigMap Grafana picks up, with the component', () => {
  const rendered = kubectl(['kustomize', join(ROOT, 'test/fixtures/prometheus-overlay')]);
  const cm = parseAllDocuments(rendered.stdout)
    .map(
      (d) =>
        d.toJS() as {
          kind: string;
          metadata: { name: string; namespace?: string; labels?: Record<string, string> };
          data?: Record<string, string>;
        },
    )
    .find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'podmigration-dashboard')!;
  expect(cm.metadata).toMatchObject({ namespace: 'podmigration-system', labels: { grafana_dashboard: '1' } });
  expect(JSON.parse(cm.data!['dashboard.json'])).toEqual(JSON.parse(readFileSync(join(ROOT, 'config/prometheus/dashboard.json'), 'utf8')));
});

it('renders the ServiceMonitor and rules as a component that selects the metrics Service', () => {
  const rendered = kubectl(['kustomize', join(ROOT, 'test/fixtures/prometheus-overlay')]);
  expect(rendered.stderr).toBe('');
  const docs = parseAllDocuments(rendered.stdout).map(
    (d) => d.toJS() as { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> },
  );
  const monitor = docs.find((d) => d.kind === 'ServiceMonitor')!;
  const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'podmigration-controller-manager-metrics')!;
  expect(docs.some((d) => d.kind === 'PrometheusRule')).toBe(true);
  const selector = (monitor.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
  expect(service.metadata.labels).toMatchObject(selector);
  const ports = (service.spec.ports as { name: string }[]).map((p) => p.name);
  const endpoint = (monitor.spec.endpoints as { port: string }[])[0];
  expect(ports).toContain(endpoint.port);
  // Over HTTPS, as Prometheus's own ServiceAccount (the operator's certificate is its own).
  expect(endpoint).toMatchObject({
    scheme: 'https',
    bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    tlsConfig: { insecureSkipVerify: true },
  });
});

describe('served securely (--metrics-secure, as beyond loopback)', () => {
  const READER = 'podmigration-metrics-reader';
  const binding = `metrics-reader-${process.pid}`;
  const tokens: Record<string, string> = {};
  let secure: OperatorProcess;
  let port: number;

  /** GET /metrics over HTTPS; the issuer of the certificate served too. */
  const scrape = (token?: string) =>
    new Promise<{ status: number; body: string; issuer: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/metrics',
          rejectUnauthorized: false,
          headers: token ? { Authorization: `Bearer ${token}` } : {},
        },
        (res) => {
          const issuer = String((res.socket as TLSSocket).getPeerCertificate().issuer.CN);
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, issuer }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    for (const sa of ['prometheus', 'nosy']) {
      await k8s.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
      const t = await k8s.create<{ status: { token: string } }>(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {},
      });
      tokens[sa] = t.status.token;
    }
    await k8s.create('/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: binding },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: READER },
      subjects: [{ kind: 'ServiceAccount', name: 'prometheus', namespace: ns }],
    });
    // Watching a namespace of its own: serving /metrics is all that is asked of it.
    secure = new OperatorProcess(`${ns}-idle`, ['--metrics-secure'], `${ns}-secure-metrics`);
    secure.start();
    port = await secure.port('metrics');
  });

  afterAll(async () => {
    await secure.stop();
    await k8s.delete(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${binding}`).catch(() => undefined);
  });

  it('refuses a scrape without a token, or with one the API server does not accept (401)', async () => {
    expect(await scrape()).toMatchObject({ status: 401, body: 'Unauthorized\n' });
    expect(await scrape('not-a-token')).toMatchObject({ status: 401 });
    // Nor is plain HTTP spoken there.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  it('refuses an identity without get on /metrics (403)', async () => {
    expect(await scrape(tokens.nosy)).toMatchObject({
      status: 403,
      body: `Authorization denied for user system:serviceaccount:${ns}:nosy\n`,
    });
  });

  it(`serves an identity bound to ${READER}, over its own certificate`, async () => {
    const r = await scrape(tokens.prometheus);
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^podmigration_build_info\{/m);
    expect(r.body).toMatch(/^podmigration_migrations_in_flight /m);
    expect(r.issuer).toBe('podmigration-metrics-ca');
  });
});
