// High availability: two replicas with leader election. Only the Lease holder reconciles;
// when it is killed the standby takes over within the lease duration and finishes the
// migration in flight; on SIGTERM the leader hands the lease back at once.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { V1Lease } from '@kubernetes/client-node';
import {
  OperatorProcess,
  TRAINING_CONTAINERS,
  createNamespace,
  createRunningPod,
  deleteNamespace,
  env,
  eventually,
  k8s,
  migration,
  pmPath,
  podManifest,
  podsOfMigration,
  sleep,
  waitForPhase,
} from './helpers';
import { FreezableProxy, apiServerPort, kubeconfigThrough } from './proxy';
import { CLUSTER_DIR } from './cluster/provider';

const LEASE_SECONDS = 4;
let ns: string;
let leaseName: string;
let replicas: OperatorProcess[];

const leasePath = (name = leaseName) => `/apis/coordination.k8s.io/v1/namespaces/podmigration-system/leases/${name}`;
const electionArgs = (lease: string) => [
  '--leader-elect',
  '--leader-election-namespace',
  'podmigration-system',
  '--leader-election-id',
  lease,
  '--leader-election-lease-duration',
  String(LEASE_SECONDS),
  '--leader-election-renew-deadline',
  '3',
  '--leader-election-retry-period',
  '1',
];
const leaders = () => replicas.filter((r) => (r.log().match(/became leader/g) ?? []).length > 0);
const reconciled = (r: OperatorProcess) => r.log().includes('status updated');

beforeAll(async () => {
  ns = await createNamespace('leader');
  leaseName = `podmigration-test-${randomBytes(3).toString('hex')}`;
  const args = electionArgs(leaseName);
  replicas = [new OperatorProcess(ns, args, `${ns}-a`), new OperatorProcess(ns, args, `${ns}-b`)];
  for (const r of replicas) r.start();
});

afterAll(async () => {
  for (const r of replicas) await r.stop();
  await k8s.delete(leasePath()).catch(() => undefined);
  await deleteNamespace(ns);
});

async function migrate(pod: string, metricsDelaySeconds: number) {
  await createRunningPod(podManifest(ns, pod, 'node-1', TRAINING_CONTAINERS.slice(0, 2)));
  await k8s.create(
    pmPath(ns),
    migration(ns, `move-${pod}`, { podName: pod, sourceNode: 'node-1', targetNode: 'node-2', metricsDelaySeconds }),
  );
  return `move-${pod}`;
}

it('lets only the lease holder reconcile', async () => {
  await eventually('a leader', async () => (leaders().length === 1 ? true : undefined));
  const name = await migrate('one', 0);
  expect((await waitForPhase(ns, name, ['Completed', 'Failed'])).status!.phase).toBe('Completed');
  const [leader] = leaders();
  const standby = replicas.find((r) => r !== leader)!;
  expect(reconciled(leader)).toBe(true);
  expect(reconciled(standby)).toBe(false);
  expect(standby.log()).toMatch(/waiting for leadership/);
});

it('fails over within the lease duration when the leader is killed, and finishes the migration in flight', async () => {
  const [leader] = leaders();
  const standby = replicas.find((r) => r !== leader)!;
  const name = await migrate('two', 6);
  await waitForPhase(ns, name, ['CollectingMetrics']);
  const killedAt = Date.now();
  await leader.stop('SIGKILL');
  await eventually('standby leads', async () => (standby.log().includes('became leader') ? true : undefined), 30_000);
  const failoverMs = Date.now() - killedAt;
  // Reported by the test run: the measured takeover time. The standby counts the lease
  // duration from when it saw the last renewal (up to one retry period after it), and
  // looks once per retry period: lease + 2 retry periods, and a second for the machine.
  process.stdout.write(`leader failover took ${failoverMs} ms (lease ${LEASE_SECONDS}s)\n`);
  expect(failoverMs).toBeLessThanOrEqual((LEASE_SECONDS + 3) * 1000);
  const pm = await waitForPhase(ns, name, ['Completed', 'Failed']);
  expect(pm.status!.phase).toBe('Completed');
  expect(await podsOfMigration(ns, name)).toHaveLength(1);
  // Its log reaches the file a moment after the write it tells of.
  await eventually('the standby logged its status write', async () => (reconciled(standby) ? true : undefined), 10_000);
});

it('hands the lease back on SIGTERM', async () => {
  const leader = replicas.find((r) => r.log().includes('became leader') && r.pid !== undefined)!;
  await leader.stop('SIGTERM');
  expect(leader.log()).toMatch(/released leadership/);
  const lease = await k8s.get<V1Lease>(leasePath());
  expect(lease.spec!.holderIdentity ?? '').toBe('');
});

describe('under faults', () => {
  const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');
  const extra: OperatorProcess[] = [];
  afterAll(async () => {
    for (const r of extra) await r.stop();
  });

  it('does not take a lease its holder keeps renewing, however old its renewTime looks (clock skew)', async () => {
    const lease = `podmigration-skew-${randomBytes(3).toString('hex')}`;
    // Another replica whose clock runs an hour behind ours renews every second.
    const hourAgo = () => micro(Date.now() - 3_600_000);
    await k8s.create(leasePath(lease).replace(/\/[^/]+$/, ''), {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: lease },
      spec: { holderIdentity: 'skewed-replica', leaseDurationSeconds: LEASE_SECONDS, renewTime: hourAgo(), acquireTime: hourAgo() },
    });
    let renewing = true;
    const renewer = (async () => {
      while (renewing) {
        const l = await k8s.get<V1Lease>(leasePath(lease));
        await k8s.replace(leasePath(lease), { ...l, spec: { ...l.spec, renewTime: hourAgo() } }).catch(() => undefined);
        await sleep(1_000);
      }
    })();
    const op = new OperatorProcess(ns, electionArgs(lease), `${ns}-skew`);
    extra.push(op);
    op.start();
    await sleep(3 * LEASE_SECONDS * 1000);
    renewing = false;
    await renewer;
    const stoppedAt = Date.now();
    expect(op.log()).toMatch(/waiting for leadership/);
    expect(op.log()).not.toMatch(/became leader/);
    // Once the holder stops renewing, it takes over after a lease duration of its own clock.
    await eventually('takes over', async () => (op.log().includes('became leader') ? true : undefined), 30_000);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual((LEASE_SECONDS - 1) * 1000);
    await k8s.delete(leasePath(lease)).catch(() => undefined);
  });

  it('stops leading when renewals hang, before anyone else could see the lease expire', async () => {
    const lease = `podmigration-hang-${randomBytes(3).toString('hex')}`;
    const proxy = new FreezableProxy(apiServerPort(env.operatorKubeconfig));
    const path = kubeconfigThrough(env.operatorKubeconfig, await proxy.start(), join(CLUSTER_DIR, `${lease}.kubeconfig`));
    const op = new OperatorProcess(ns, electionArgs(lease), `${ns}-hang`, path);
    extra.push(op);
    try {
      op.start();
      await eventually('leader', async () => (op.log().includes('became leader') ? true : undefined), 30_000);
      // Follow the lease as the API server holds it: when did its renewTime last move?
      let lastRenewSeen = Date.now();
      let last = '';
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const l = await k8s.get<V1Lease>(leasePath(lease));
          const t = String(l.spec?.renewTime);
          if (t !== last) [last, lastRenewSeen] = [t, Date.now()];
          await sleep(100);
        }
      })();
      await sleep(2_500);
      proxy.frozen = true; // every request from now on hangs
      const code = await Promise.race([op.exited(), sleep(30_000).then(() => 'still running')]);
      const exitedAt = Date.now();
      watching = false;
      await watcher;
      expect(op.log()).toMatch(/lost leadership/);
      expect(code).toBe(1);
      // A standby takes the lease only after a lease duration without renewals: the old
      // leader must have stopped (and so stopped reconciling) before that.
      expect(exitedAt).toBeLessThan(lastRenewSeen + LEASE_SECONDS * 1000);
    } finally {
      await proxy.stop();
      await k8s.delete(leasePath(lease)).catch(() => undefined);
    }
  });
});
