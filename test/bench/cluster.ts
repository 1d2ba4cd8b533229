// The benchmark's own control plane: hack/cluster.sh in .cluster-bench/, with the API
// server's audit log on (AUDIT=1) so that requests can be counted by identity. Clients of
// it, as the admin and as the operator, and what /proc says of its processes.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { KubeClient, type Query, type WatchHandler } from '../../src/kube/client';
import { KubeConfig } from '../../src/kube/config';

/** The repository: the nearest directory above this file (or its build output) with hack/cluster.sh. */
function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'hack/cluster.sh'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no hack/cluster.sh above ${from}`);
  }
}

export const ROOT = repositoryRoot(__dirname);
const DIR = join(ROOT, '.cluster-bench');

/** Who operator.kubeconfig is (hack/cluster.sh): the operator's ServiceAccount, bound only by config/rbac. */
export const OPERATOR_USER = 'system:serviceaccount:podmigration-system:podmigration-operator';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function clusterScript(cmd: 'up' | 'down', stderr: 'inherit' | 'ignore'): void {
  execFileSync(join(ROOT, 'hack/cluster.sh'), [cmd], {
    env: { ...process.env, CLUSTER_DIR: DIR, AUDIT: '1' },
    stdio: ['ignore', 'ignore', stderr],
  });
}

export class BenchCluster {
  readonly dir = DIR;
  readonly auditLog = join(DIR, 'audit.log');
  /** The admin (system:masters): what the bench itself does, never counted. */
  readonly admin = this.client('kubeconfig');

  private constructor() {}

  /** Starts it, or finds it running (kept by an earlier run's --keep). */
  static up(): BenchCluster {
    clusterScript('up', 'inherit');
    return new BenchCluster();
  }

  /** Stops every process of it and removes its state (nothing to do when it never started). */
  static down(): void {
    if (existsSync(DIR)) clusterScript('down', 'ignore');
  }

  /** A client of the kubeconfig `file`: kubeconfig (the admin) or operator.kubeconfig (the operator's identity). */
  client(file: 'kubeconfig' | 'operator.kubeconfig'): KubeClient {
    return new KubeClient(KubeConfig.fromFile(join(DIR, file)), 'podmigration-bench');
  }

  apiserverPid(): number {
    return Number(readFileSync(join(DIR, 'kube-apiserver.pid'), 'utf8'));
  }

  etcdPid(): number {
    return Number(readFileSync(join(DIR, 'etcd.pid'), 'utf8'));
  }

  /** A namespace, once its default ServiceAccount exists (pods can be created in it). */
  async namespace(name: string): Promise<void> {
    await this.admin.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    while (!(await this.admin.get(`/api/v1/namespaces/${name}/serviceaccounts/default`).catch(() => undefined))) await sleep(100);
  }

  /** Deletes a namespace (in the background: room on the nodes for the next run). */
  async deleteNamespace(name: string): Promise<void> {
    await this.admin.delete(`/api/v1/namespaces/${name}`);
  }
}

/**
 * A watch restarted whenever the API server ends it, until `stop()`. `query` is asked again
 * at each start (a resourceVersion to resume from). A timer keeps the process alive while
 * it restarts.
 */
export function keepWatching(client: KubeClient, path: string, query: () => Query, onEvent: WatchHandler): { stop: () => void } {
  let watching = true;
  let watch: ReturnType<KubeClient['watch']>;
  const start = () => {
    watch = client.watch(path, query(), onEvent);
    watch.done
      .catch(() => undefined)
      .then(() => {
        if (watching) setTimeout(start, 100);
      });
  };
  start();
  const alive = setInterval(() => undefined, 1_000);
  return {
    stop: () => {
      watching = false;
      watch.abort();
      clearInterval(alive);
    },
  };
}

/** CPU time (user + system, ms) a process has used so far. */
export function cpuOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // 100 Hz ticks
}

/** A memory figure of a process (VmRSS: now, VmHWM: its peak), in MiB. */
export function memOf(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}
