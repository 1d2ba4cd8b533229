// Monitoring by convention: the alert rules shipped in config/prometheus name only metrics
// the operator really serves (checked against a live scrape of a leader-elected operator
// that has run a migration), and the ServiceMonitor selects the metrics Service.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './cluster/provider';
import { OperatorProcess, TRAINING_CONTAINERS, createNamespace, createRunningPod, deleteNamespace, eventually, k8s, kubectl, migration, pmPath, podManifest, waitForPhase } from './helpers';

const LEASE = `podmigration-monitoring-${process.pid}`;
let ns: string;
let operator: OperatorProcess;

beforeAll(async () => {
  ns = await createNamespace('monitoring');
  operator = new OperatorProcess(ns, ['--leader-elect', '--leader-election-namespace', 'podmigration-system', '--leader-election-id', LEASE]);
  operator.start();
});

afterAll(async () => {
  await operator.stop();
  await k8s.delete(`/apis/coordination.k8s.io/v1/namespaces/podmigration-system/leases/${LEASE}`).catch(() => undefined);
  await deleteNamespace(ns);
});

const FUNCTIONS = new Set(['sum', 'max', 'min', 'avg', 'count', 'rate', 'irate', 'increase', 'vector', 'on', 'by', 'without', 'and', 'or', 'unless', 'absent', 'histogram_quantile', 'ignoring', 'group_left', 'group_right', 'bool']);

/** Metric names an expression reads (identifiers that are not functions, keywords or label names). */
function metricNames(expr: string): string[] {
  const withoutLabels = expr.replace(/\{[^}]*\}/g, '{}').replace(/\[[^\]]*\]/g, '[]');
  return [...withoutLabels.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)].map((m) => m[0]).filter((w) => !FUNCTIONS.has(w));
}

it('alerts on metrics the operator serves, with the labels it gives them', async () => {
  await createRunningPod(podManifest(ns, 'watched', 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  await k8s.create(pmPath(ns), migration(ns, 'move-watched', { podName: 'watched', sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds: 0 }));
  expect((await waitForPhase(ns, 'move-watched', ['Completed', 'Failed'])).status!.phase).toBe('Completed');
  // And one that fails, so that the failure series exist too.
  await k8s.create(pmPath(ns), migration(ns, 'move-nothing', { podName: 'nothing', sourceNode: 'node-1', targetNode: 'node-2' }));
  expect((await waitForPhase(ns, 'move-nothing', ['Completed', 'Failed'])).status!.reason).toBe('PodNotFound');

  const port = await operator.port('metrics');
  const text = await eventually('leader and a completion in the scrape', async () => {
    const t = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return t.includes(`leader_election_master_status{name="${LEASE}"} 1`) && t.includes('podmigration_migrations_total{result="Failed"') ? t : undefined;
  });
  const served = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]));
  const series = text.split('\n').filter((l) => l && !l.startsWith('#'));

  const rules = parseAllDocuments(readFileSync(join(ROOT, 'config/prometheus/alerts.yaml'), 'utf8'))[0].toJS() as {
    spec: { groups: { rules: { alert: string; expr: string }[] }[] };
  };
  const all = rules.spec.groups.flatMap((g) => g.rules);
  expect(all.map((r) => r.alert)).toEqual(['PodMigrationsStuck', 'PodMigrationsFailing', 'PodMigrationReconcileErrors', 'PodMigrationOperatorNoLeader', 'PodMigrationWorkQueueStuck']);
  for (const r of all) {
    for (const name of metricNames(r.expr)) {
      expect([r.alert, name, served.has(name)]).toEqual([r.alert, name, true]);
      // Every label matcher names a label the series carries.
      for (const m of r.expr.matchAll(new RegExp(`${name}\\{([^}]*)\\}`, 'g'))) {
        for (const [, label, value] of m[1].matchAll(/(\w+)="([^"]*)"/g)) {
          const matching = series.filter((l) => l.startsWith(`${name}{`) && l.includes(`${label}="${value}"`));
          // The lease's name differs here from the default the rule uses.
          if (name === 'leader_election_master_status') expect(series.some((l) => l.startsWith(`${name}{${label}=`))).toBe(true);
          else expect([r.alert, `${name}{${label}="${value}"}`, matching.length > 0]).toEqual([r.alert, `${name}{${label}="${value}"}`, true]);
        }
      }
    }
  }
});

it('renders the ServiceMonitor and rules as a component that selects the metrics Service', () => {
  const rendered = kubectl(['kustomize', join(ROOT, 'test/fixtures/prometheus-overlay')]);
  expect(rendered.stderr).toBe('');
  const docs = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> });
  const monitor = docs.find((d) => d.kind === 'ServiceMonitor')!;
  const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'podmigration-controller-manager-metrics')!;
  expect(docs.some((d) => d.kind === 'PrometheusRule')).toBe(true);
  const selector = (monitor.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
  expect(service.metadata.labels).toMatchObject(selector);
  const ports = (service.spec.ports as { name: string }[]).map((p) => p.name);
  expect(ports).toContain((monitor.spec.endpoints as { port: string }[])[0].port);
});
