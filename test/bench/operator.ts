// The operator under test, as a process: the build it runs from (dist/, or --dist), the
// processes this bench started (which never outlive it), and the run of N migrations.
import { type ChildProcess, type SpawnOptions, execFileSync, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { PodMigration } from '../../src/api/types';
import { paths } from '../../src/kube/client';
import { type BenchCluster, cpuOf, keepWatching, memOf, sleep } from './cluster';
import { quiet } from './audit';
import type { Run } from './floor';
import { createMigrations } from './workload';

/** A build of the operator: its main.js, and whether it knows a flag (an older one may predate it). */
export class OperatorBuild {
  readonly main: string;
  private readonly help: string;

  constructor(dist: string) {
    this.main = join(resolve(dist), 'main.js');
    this.help = execFileSync(process.execPath, [this.main, '--help'], { encoding: 'utf8' });
  }

  knows(flag: string): boolean {
    return this.help.includes(flag);
  }

  /** Starts the operator with `args` (its process is killed by killOperators()). */
  start(args: string[], options: SpawnOptions): ChildProcess {
    const proc = spawn(process.execPath, [this.main, ...args], options);
    started.add(proc);
    return proc;
  }
}

const started = new Set<ChildProcess>();

/** Kills every operator this bench started (on its exit, even when a run fails). */
export function killOperators(): void {
  for (const p of started) p.kill('SIGKILL');
}

/** The operator's run: the floor's figures, until when its requests count, its own CPU and peak RSS, and --timeline's records. */
export interface OperatorRun extends Run {
  /** Its requests and CPU count until it has sent nothing for 3 s. */
  tEnd: number;
  cpuMs: number;
  rss: number;
  /** With --timeline: the records once completed, read after the measured window. */
  records?: PodMigration[];
}

export interface OperatorRunOptions {
  /** Keep the default limits on migrations in flight, instead of limits raised to N. */
  defaults: boolean;
  timeline: boolean;
  /** The operator's environment (NODE_OPTIONS of --node-options). */
  env: NodeJS.ProcessEnv;
}

/** The operator as a process, reconciling the N migrations of `ns` at once. */
export async function operatorRun(
  cluster: BenchCluster,
  build: OperatorBuild,
  ns: string,
  n: number,
  o: OperatorRunOptions,
): Promise<OperatorRun> {
  const { admin } = cluster;
  const proc = build.start(
    [
      '--kubeconfig',
      join(cluster.dir, 'operator.kubeconfig'),
      '--namespace',
      ns,
      build.knows('--max-concurrent-reconciles') ? '--max-concurrent-reconciles' : '--max-concurrent-migrations',
      String(Math.min(n, 100)),
      // Limits raised to N: this measures throughput (--defaults measures what they cost).
      ...(o.defaults || !build.knows('--max-migrations-in-flight')
        ? []
        : ['--max-migrations-in-flight', String(n), '--max-migrations-per-node', String(n)]),
      '--health-probe-bind-address',
      '127.0.0.1:0',
      '--metrics-bind-address',
      '0',
      '--log-level',
      'warn',
    ],
    { stdio: 'ignore', env: o.env },
  );
  const pid = proc.pid!;
  await sleep(2_000); // caches synced
  // Completions are seen through one watch (as the floor sees its copies' readiness):
  // listing every record again and again would load the API server in the operator's
  // window only.
  const done = new Map<string, number>();
  let failed: Error | undefined;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  const onRecord = (pm: PodMigration) => {
    if (pm.status?.phase === 'Completed' && !done.has(pm.metadata.name)) done.set(pm.metadata.name, Date.parse(pm.status.completionTime!));
    if (pm.status?.phase === 'Failed') failed ??= new Error(`${pm.metadata.name} failed: ${pm.status.reason} ${pm.status.message}`);
    if (failed || done.size === n) allDone();
  };
  let since = (await admin.get<{ metadata: { resourceVersion: string } }>(paths.migrations(ns))).metadata.resourceVersion;
  const watch = keepWatching(
    cluster.client('kubeconfig'),
    paths.migrations(ns),
    () => ({ resourceVersion: since, allowWatchBookmarks: true }),
    (type, object) => {
      const pm = object as unknown as PodMigration;
      since = pm.metadata?.resourceVersion ?? since;
      if (type !== 'BOOKMARK') onRecord(pm);
    },
  );
  const cpu0 = cpuOf(pid);
  const api0 = cpuOf(cluster.apiserverPid());
  const t0 = Date.now();
  const created = await createMigrations(admin, ns, n);
  await finished;
  const t1 = Date.now();
  watch.stop();
  if (failed) throw failed;
  // What the migrations still cause after the last one completed (Events sent in the
  // background, finalizers released) is theirs too: requests and CPU are counted until the
  // operator has sent nothing for 3 s.
  const tEnd = await quiet(cluster.auditLog, t1);
  const cpuMs = cpuOf(pid) - cpu0;
  const apiCpuMs = cpuOf(cluster.apiserverPid()) - api0;
  const records = o.timeline ? (await admin.get<{ items: PodMigration[] }>(paths.migrations(ns))).items : undefined;
  const rss = memOf(pid, 'VmHWM'); // the peak
  proc.kill('SIGKILL');
  return { t0, t1, tEnd, created, done, cpuMs, rss, apiCpuMs, records };
}
