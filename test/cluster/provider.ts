// Where the integration tests get their cluster: by default the local control plane
// (hack/cluster.sh: real etcd, kube-apiserver, kube-controller-manager and kwok), or an
// existing cluster named by TEST_KUBECONFIG (its nodes must be managed by kwok).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '../..');
export const CLUSTER_DIR = process.env.TEST_CLUSTER_DIR ?? join(ROOT, '.cluster-test');
const ENV_FILE = join(CLUSTER_DIR, 'test-env.json');

export interface TestEnv {
  /** Admin (system:masters) kubeconfig, for the tests themselves. */
  kubeconfig: string;
  /** The operator's own identity, bound only by config/rbac. */
  operatorKubeconfig: string;
  /** Directory with kubectl. */
  bin: string;
  /** Whether this run started the control plane (and so stops it). */
  started: boolean;
}

export function provide(): TestEnv {
  mkdirSync(CLUSTER_DIR, { recursive: true });
  const cluster = (cmd: string) =>
    execFileSync(join(ROOT, 'hack/cluster.sh'), [cmd], {
      env: { ...process.env, CLUSTER_DIR },
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    }).trim();
  let env: TestEnv;
  if (process.env.TEST_KUBECONFIG) {
    env = {
      kubeconfig: process.env.TEST_KUBECONFIG,
      operatorKubeconfig: process.env.TEST_OPERATOR_KUBECONFIG ?? process.env.TEST_KUBECONFIG,
      bin: cluster('bin'),
      started: false,
    };
  } else {
    cluster('up');
    env = {
      kubeconfig: join(CLUSTER_DIR, 'kubeconfig'),
      operatorKubeconfig: join(CLUSTER_DIR, 'operator.kubeconfig'),
      bin: cluster('bin'),
      started: true,
    };
  }
  writeFileSync(ENV_FILE, JSON.stringify(env));
  return env;
}

export function release(): void {
  const env = testEnv();
  const pids = join(CLUSTER_DIR, 'pids');
  if (existsSync(pids)) {
    for (const pid of readdirSync(pids)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(pids, { recursive: true, force: true });
  }
  if (env.started && !process.env.KEEP_CLUSTER) {
    execFileSync(join(ROOT, 'hack/cluster.sh'), ['down'], { env: { ...process.env, CLUSTER_DIR }, stdio: 'inherit' });
  }
}

export function testEnv(): TestEnv {
  if (!existsSync(ENV_FILE)) throw new Error(`no test cluster: ${ENV_FILE} is missing (run the tests through jest's globalSetup)`);
  return JSON.parse(readFileSync(ENV_FILE, 'utf8')) as TestEnv;
}
