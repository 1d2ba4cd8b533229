// Chaos: many migrations while the operator is SIGKILLed at random moments and restarted,
// and while the cluster works against them: duplicate migrations of one pod race, pods are
// deleted slowly (a finalizer held for a while, as a kubelet's grace period would), and
// disruption budgets block evictions and then lift. An invariant checker samples the API
// server throughout.
import type { V1Pod } from '@kubernetes/client-node';
import { type PodMigration, TERMINAL_PHASES } from '../src/api/types';
import { paths } from '../src/kube/client';
import {
  DOWNLOADER_DONE,
  TRAINING_CONTAINERS,
  createRunningPod,
  k8s,
  migration,
  operatorNamespace,
  pmPath,
  podManifest,
  sleep,
} from './helpers';

const PODS = 24;
const MIN_KILLS = 6;
const HOLD = 'test.podmigration/slow';
const { ns, operator } = operatorNamespace('chaos', { args: ['--max-concurrent-reconciles', '4'], start: false });

/** What happens to pod i: how it is set up, and what its migrations must end in. */
const plan = (i: number) => ({
  failing: i % 4 === 3, // never Ready on node-2: fails with TargetPodNotReady and rolls back
  duplicated: i % 3 === 1, // a second migration of the same pod is created at the same moment
  slow: i % 2 === 0, // its pods (source and copy) take 1-2 s to go once deleted
  budget: i % 5 === 2, // a budget blocks its eviction for the first 6 s
});

interface Sample {
  migrations: PodMigration[];
  pods: V1Pod[];
  claims: { metadata: { name: string; labels?: Record<string, string> } }[];
}

async function sample(): Promise<Sample> {
  // Migrations first: a pod list read after them can only be newer.
  const migrations = (await k8s.get<{ items: PodMigration[] }>(pmPath(ns))).items;
  const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items;
  const claims = (await k8s.get<{ items: Sample['claims'] }>(paths.pvcs(ns))).items;
  return { migrations, pods, claims };
}

const live = (p: V1Pod) => !p.metadata?.deletionTimestamp;
const terminal = (m: PodMigration) => TERMINAL_PHASES.includes(m.status?.phase ?? 'Pending');

/**
 * Every violation of the invariants in one sample. Per workload (the pods labelled
 * app=chaos-i: the source and any copy): never zero live pods; never more than two while a
 * migration runs; exactly one once all its migrations have ended (after a grace period
 * for the rollback, which follows the terminal status write). Per migration: at most one
 * checkpoint claim, and a status that matches the pods: Completed means its copy is live
 * and the source is not; a rollback that says the source runs means it does.
 */
function violations(s: Sample, endedSince: Map<string, number>, now: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < PODS; i++) {
    const app = `chaos-${i}`;
    const pods = s.pods.filter((p) => p.metadata?.labels?.app === app);
    const alive = pods.filter(live);
    const migrations = s.migrations.filter((m) => m.spec.podName === app);
    if (alive.length === 0) out.push(`${app}: no live pod`);
    if (alive.length > 2) out.push(`${app}: ${alive.length} live pods`);
    if (migrations.length > 0 && migrations.every(terminal)) {
      const since = endedSince.get(app) ?? now;
      endedSince.set(app, since);
      if (alive.length > 1 && now - since > 10_000) out.push(`${app}: ${alive.length} live pods although every migration of it ended`);
    }
    for (const m of migrations) {
      const name = m.metadata.name;
      const claims = s.claims.filter((c) => c.metadata.labels?.['migration.ai-storage.io/migration'] === name);
      if (claims.length > 1) out.push(`${name}: ${claims.length} checkpoint claims`);
      const target = pods.find((p) => p.metadata?.uid === m.status?.targetPod?.uid);
      const source = pods.find((p) => p.metadata?.uid === m.status?.sourcePod?.uid);
      if (m.status?.phase === 'Completed' && m.status.reason !== 'AlreadyOnTarget') {
        if (!target || !live(target)) out.push(`${name}: Completed but its copy is ${target ? 'terminating' : 'gone'}`);
        if (source && live(source)) out.push(`${name}: Completed but its source still runs`);
      }
      const rolledBack = m.status?.conditions?.find((c) => c.type === 'RolledBack');
      if (rolledBack?.reason === 'SourcePodRunning' && !(source && live(source)))
        out.push(`${name}: says the source runs, and it does not`);
    }
  }
  return out;
}

/** The slow kubelet: holds the pods of slow workloads with a finalizer, released 1-2 s after deletion. */
async function slowKubelet(isRunning: () => boolean): Promise<void> {
  const slowApps = new Set(
    Array.from({ length: PODS }, (_, i) => i)
      .filter((i) => plan(i).slow)
      .map((i) => `chaos-${i}`),
  );
  while (isRunning()) {
    const pods = (await k8s.get<{ items: V1Pod[] }>(paths.pods(ns))).items;
    for (const p of pods) {
      if (!slowApps.has(p.metadata?.labels?.app ?? '')) continue;
      const held = p.metadata?.finalizers?.includes(HOLD);
      const deleting = p.metadata?.deletionTimestamp;
      const path = paths.pod(ns, p.metadata!.name!);
      if (!held && !deleting)
        await k8s
          .mergePatch(path, { metadata: { finalizers: [HOLD], resourceVersion: p.metadata!.resourceVersion } })
          .catch(() => undefined);
      if (held && deleting && Date.now() - Date.parse(String(deleting)) > 1_000 + Math.random() * 1_000) {
        await k8s.mergePatch(path, { metadata: { finalizers: null } }).catch(() => undefined);
      }
    }
    await sleep(100);
  }
}

it(`keeps every invariant across ${PODS} pods with racing, slow, blocked and failing migrations, and repeated SIGKILLs`, async () => {
  for (let i = 0; i < PODS; i++) {
    const { failing, budget } = plan(i);
    const annotations = failing ? { ...DOWNLOADER_DONE, 'kwok.podmigration.test/unready-on': 'node-2' } : DOWNLOADER_DONE;
    await createRunningPod(podManifest(ns, `chaos-${i}`, 'node-1', TRAINING_CONTAINERS, annotations));
    if (budget) {
      await k8s.create(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets`, {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: `chaos-${i}` },
        spec: { selector: { matchLabels: { app: `chaos-${i}` } }, maxUnavailable: 0 },
      });
    }
  }
  let running = true;
  const kubelet = slowKubelet(() => running);
  await sleep(500); // the slow pods hold their finalizer before anything deletes them
  const names: string[] = [];
  const created = Date.now();
  await Promise.all(
    Array.from({ length: PODS }, (_, i) => i).flatMap((i) => {
      const p = plan(i);
      return (p.duplicated ? [`chaos-${i}`, `chaos-${i}-dup`] : [`chaos-${i}`]).map((name) => {
        names.push(name);
        return k8s.create(
          pmPath(ns),
          migration(ns, name, {
            podName: `chaos-${i}`,
            sourceNode: 'node-1',
            targetNode: 'node-2',
            preservePV: i % 2 === 1,
            // Deadlines run while the operator is down, so only the failing ones get a short one.
            readyTimeoutSeconds: p.failing ? 4 : 120,
            timeoutSeconds: 300,
            metricsDelaySeconds: 1,
          }),
        );
      });
    }),
  );
  // The budgets lift after a while.
  const lifted = (async () => {
    await sleep(Math.max(created + 6_000 - Date.now(), 0));
    for (let i = 0; i < PODS; i++) {
      if (plan(i).budget) await k8s.delete(`/apis/policy/v1/namespaces/${ns}/poddisruptionbudgets/chaos-${i}`);
    }
  })();

  const found: string[] = [];
  const endedSince = new Map<string, number>();
  let samples = 0;
  let checking = true;
  const checker = (async () => {
    while (checking) {
      const s = await sample();
      samples += 1;
      found.push(...violations(s, endedSince, Date.now()));
      await sleep(50);
    }
  })();

  // Kill at random moments until every migration is terminal, at least MIN_KILLS times.
  let kills = 0;
  const deadline = Date.now() + 180_000;
  let done = false;
  operator.start();
  while (!done && Date.now() < deadline) {
    await sleep(300 + Math.random() * 1200);
    const s = await sample();
    done = s.migrations.every(terminal) && kills >= MIN_KILLS;
    if (!done && kills < MIN_KILLS * 2) {
      await operator.stop('SIGKILL');
      kills += 1;
      operator.start();
    }
  }
  await lifted;
  // A last quiet stretch so cleanups after the final kill can finish, then a final check.
  await sleep(12_000);
  checking = false;
  await checker;
  running = false;
  await kubelet;
  const final = await sample();
  found.push(...violations(final, endedSince, Date.now() + 60_000));
  const phases = final.migrations.map((m) => m.status?.phase ?? 'Pending');
  const count = (p: string) => phases.filter((x) => x === p).length;
  process.stdout.write(
    `chaos: ${names.length} migrations of ${PODS} pods (${count('Completed')} Completed, ${count('Failed')} Failed), ` +
      `${kills} SIGKILLs, ${samples} invariant samples, ${found.length} violations\n`,
  );
  expect([...new Set(found)]).toEqual([]);
  expect(phases.every((p) => TERMINAL_PHASES.includes(p as never))).toBe(true);
  expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  // Each pod: the failing ones failed as built; of the others exactly one migration completed,
  // and a duplicate that lost was refused.
  for (let i = 0; i < PODS; i++) {
    const ms = final.migrations.filter((m) => m.spec.podName === `chaos-${i}`);
    // The one that moved the pod; a duplicate that came after it finds it already there.
    const completed = ms.filter((m) => m.status!.phase === 'Completed' && m.status!.reason !== 'AlreadyOnTarget');
    const reasons = ms.filter((m) => !completed.includes(m)).map((m) => m.status!.reason);
    if (plan(i).failing) {
      expect([i, completed.length, reasons.includes('TargetPodNotReady')]).toEqual([i, 0, true]);
    } else {
      expect([i, completed.length]).toEqual([i, 1]);
    }
    for (const r of reasons)
      expect(['TargetPodNotReady', 'MigrationInProgress', 'PodNotFound', 'PodTerminating', 'AlreadyOnTarget']).toContain(r);
  }
});
