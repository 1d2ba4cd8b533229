// Chaos: many migrations over distinct pods while the operator is SIGKILLed at random
// moments and restarted. An invariant checker samples the API server throughout.
import type { V1Pod } from '@kubernetes/client-node';
import { GROUP, type PodMigration, TERMINAL_PHASES } from '../src/api/types';
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

const MIGRATIONS = 24;
const MIN_KILLS = 6;
const { ns, operator } = operatorNamespace('chaos', { args: ['--max-concurrent-migrations', '4'], start: false });

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

/** Every violation of the invariants in one sample; `failedSince` tracks how long a migration has been Failed. */
function violations(s: Sample, failedSince: Map<string, number>, now: number): string[] {
  const out: string[] = [];
  const label = `${GROUP}/migration`;
  for (const m of s.migrations) {
    const name = m.metadata.name;
    const phase = m.status?.phase;
    const targets = s.pods.filter((p) => p.metadata?.labels?.[label] === name);
    const source = s.pods.find((p) => p.metadata?.name === m.spec.podName && !p.metadata?.labels?.[label]);
    if (targets.length > 1) out.push(`${name}: ${targets.length} target pods`);
    const claims = s.claims.filter((c) => c.metadata.labels?.[label] === name);
    if (claims.length > 1) out.push(`${name}: ${claims.length} checkpoint claims`);
    if (!TERMINAL_PHASES.includes(phase ?? 'Pending') && !source && targets.length === 0) {
      out.push(`${name}: in ${phase ?? 'Pending'} with neither source nor target pod`);
    }
    if (phase === 'Failed' || phase === 'Cancelled') {
      const since = failedSince.get(name) ?? now;
      failedSince.set(name, since);
      // Cleanup follows the status write; allow it a few seconds (and an operator restart).
      if (targets.some((t) => !t.metadata?.deletionTimestamp) && now - since > 10_000) out.push(`${name}: ${phase} but its target pod remains`);
    }
  }
  return out;
}

it(`keeps every invariant across ${MIGRATIONS} migrations and repeated SIGKILLs`, async () => {
  // A quarter of the pods never become Ready on node-2, so those migrations fail and roll back.
  for (let i = 0; i < MIGRATIONS; i++) {
    const failing = i % 4 === 3;
    const annotations = failing ? { ...DOWNLOADER_DONE, 'kwok.podmigration.test/unready-on': 'node-2' } : DOWNLOADER_DONE;
    await createRunningPod(podManifest(ns, `chaos-${i}`, 'node-1', TRAINING_CONTAINERS, annotations));
  }
  for (let i = 0; i < MIGRATIONS; i++) {
    await k8s.create(
      pmPath(ns),
      migration(ns, `chaos-${i}`, {
        podName: `chaos-${i}`,
        sourceNode: 'node-1',
        targetNode: 'node-2',
        preservePV: i % 2 === 0,
        // Deadlines run while the operator is down, so only the failing ones get a short one.
        readyTimeoutSeconds: i % 4 === 3 ? 4 : 120,
        metricsDelaySeconds: 1,
      }),
    );
  }

  const found: string[] = [];
  const failedSince = new Map<string, number>();
  let samples = 0;
  let checking = true;
  const checker = (async () => {
    while (checking) {
      const s = await sample();
      samples += 1;
      found.push(...violations(s, failedSince, Date.now()));
      await sleep(50);
    }
  })();

  // Kill at random moments until every migration is terminal, at least MIN_KILLS times.
  let kills = 0;
  const deadline = Date.now() + 150_000;
  let done = false;
  operator.start();
  while (!done && Date.now() < deadline) {
    await sleep(300 + Math.random() * 1200);
    const s = await sample();
    done = s.migrations.every((m) => TERMINAL_PHASES.includes(m.status?.phase ?? 'Pending')) && kills >= MIN_KILLS;
    if (!done && kills < MIN_KILLS * 2) {
      await operator.stop('SIGKILL');
      kills += 1;
      operator.start();
    }
  }
  // A last quiet stretch so cleanups after the final kill can finish, then a final check.
  await sleep(12_000);
  checking = false;
  await checker;
  const final = await sample();
  found.push(...violations(final, failedSince, Date.now() + 60_000));
  const phases = final.migrations.map((m) => m.status?.phase ?? 'Pending');
  const completed = phases.filter((p) => p === 'Completed').length;
  const failed = phases.filter((p) => p === 'Failed').length;
  process.stdout.write(
    `chaos: ${MIGRATIONS} migrations (${completed} Completed, ${failed} Failed), ${kills} SIGKILLs, ${samples} invariant samples, ${found.length} violations\n`,
  );
  expect(found).toEqual([]);
  expect(phases.every((p) => TERMINAL_PHASES.includes(p))).toBe(true);
  expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
  // The failing quarter failed for the reason they were built to; the rest completed.
  for (const m of final.migrations) {
    const i = Number(m.metadata.name.split('-')[1]);
    if (i % 4 === 3) expect([m.metadata.name, m.status!.phase, m.status!.reason]).toEqual([m.metadata.name, 'Failed', 'TargetPodNotReady']);
    else expect([m.metadata.name, m.status!.phase, m.status!.reason ?? '']).toEqual([m.metadata.name, 'Completed', '']);
  }
});
