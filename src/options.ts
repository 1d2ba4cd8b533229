// Command-line flags (each also readable from an environment variable).
import { parseArgs } from 'node:util';
import { DEFAULT_LIMITS, type Limits } from './controller/inflight';
import { isLoopback, parseAddress } from './http';
import { DEFAULT_STEER_OWNER_KINDS } from './migration/owners';

export interface Options {
  kubeconfig?: string;
  namespace?: string;
  /** Reconciles at once (workers). */
  workers: number;
  limits: Limits;
  logLevel: string;
  logFormat: 'json' | 'text';
  healthProbeAddress?: string;
  /** Prometheus /metrics: over HTTPS, for callers the API server authorizes, unless on loopback. */
  metrics?: {
    address: string;
    secure: boolean;
    /** tls.crt and tls.key (reloaded when they change); a self-issued certificate otherwise. */
    certDir?: string;
  };
  /** Serve the admission webhooks: the one that steers owners' replacement pods (Steer mode), and the eviction one (drains). */
  webhook?: {
    address: string;
    /** Where the operator runs: the webhook's Secret lives here. */
    namespace: string;
    /** With cert-manager: read tls.crt/tls.key from here instead of managing them. */
    certDir?: string;
    secretName: string;
    configName: string;
    evictionConfigName: string;
    serviceName: string;
  };
  /** Owners trusted to recreate an evicted pod (Steer mode), as `group/Kind`. */
  steerOwnerKinds: string[];
  /** The original REST API, as a facade over PodMigrations. */
  api?: { address: string; certDir?: string };
  leaderElection?: {
    namespace: string;
    name: string;
    leaseDurationSeconds: number;
    renewDeadlineSeconds: number;
    retryPeriodSeconds: number;
  };
}

export const USAGE = `Usage: podmigration-operator [flags]

Moves running pods between nodes as PodMigration resources ask.

Flags (environment variable in brackets):
  --kubeconfig PATH        kubeconfig to use; in-cluster config when unset [KUBECONFIG]
  --namespace NS           watch only this namespace; all when unset [WATCH_NAMESPACE]
  --max-concurrent-reconciles N
                           reconciles run at the same time, 1-100 (default 4)
                           [MAX_CONCURRENT_RECONCILES]; --max-concurrent-migrations
                           [MAX_CONCURRENT_MIGRATIONS] is its old name
  --max-migrations-in-flight N
                           migrations started and not ended, at most (default 5); more
                           wait in Pending [MAX_MIGRATIONS_IN_FLIGHT]
  --max-migrations-per-node N
                           migrations in flight out of any one node, and into any one
                           node, at most (default 2) [MAX_MIGRATIONS_PER_NODE]
  --log-level LEVEL        trace, debug, info, warn, error or fatal (default info) [LOG_LEVEL]
  --log-format FORMAT      json (one object per line, default) or text (for a terminal)
                           [LOG_FORMAT]
  --health-probe-bind-address HOST:PORT
                           serve /healthz and /readyz there; "0" turns it off
                           (default 127.0.0.1:8081) [HEALTH_PROBE_BIND_ADDRESS]
  --metrics-bind-address HOST:PORT
                           serve Prometheus /metrics there; "0" turns it off
                           (default 127.0.0.1:8080) [METRICS_BIND_ADDRESS]; beyond
                           loopback only securely (--metrics-secure)
  --metrics-secure         serve /metrics over HTTPS, and only to callers whose bearer
                           token the API server authenticates (TokenReview) and
                           authorizes for get on /metrics (SubjectAccessReview, as the
                           metrics-reader ClusterRole grants); always on beyond loopback
                           [METRICS_SECURE=true]
  --metrics-cert-dir DIR   serve it with tls.crt and tls.key from DIR (read again when
                           they change; turns --metrics-secure on); otherwise with a
                           certificate the operator issues itself at start
                           [METRICS_CERT_DIR]
  --leader-elect           only the holder of a coordination.k8s.io Lease reconciles; run
                           more than one replica only with this on [LEADER_ELECT=true]
  --leader-election-namespace NS
                           namespace of the Lease (default $POD_NAMESPACE, else
                           podmigration-system)
  --leader-election-id NAME
                           name of the Lease (default podmigration-operator)
  --leader-election-lease-duration S, --leader-election-renew-deadline S,
  --leader-election-retry-period S
                           lease timing in seconds (default 15, 10, 2)
  --webhook-bind-address HOST:PORT
                           serve the admission webhooks over HTTPS there: the one that
                           steers the replacement pods of StatefulSets, Jobs and other
                           owners (Steer mode), and the one that turns evictions of
                           opted-in pods into migrations (drains); "0" (the default)
                           turns them off, and such pods are then refused, their
                           evictions not answered [WEBHOOK_BIND_ADDRESS]
  --webhook-cert-dir DIR   read tls.crt and tls.key from DIR (cert-manager); otherwise
                           the operator issues them itself into the Secret
                           --webhook-secret-name (default podmigration-webhook-cert) in
                           $POD_NAMESPACE (else podmigration-system), and writes the CA
                           into the MutatingWebhookConfiguration --webhook-config-name
                           (default podmigration-mutating-webhook) and the
                           ValidatingWebhookConfiguration --eviction-webhook-config-name
                           (default podmigration-eviction-webhook), for the Service
                           --webhook-service-name (default podmigration-webhook-service)
  --steer-owner-kinds LIST owners trusted to recreate an evicted pod, whose pods move in
                           Steer mode, as comma-separated group/Kind (default
                           apps/StatefulSet,batch/Job; add e.g. kubeflow.org/PyTorchJob);
                           the pods of any other owner are refused [STEER_OWNER_KINDS]
  --api-bind-address HOST:PORT
                           serve the original migration REST API there (a facade over
                           PodMigrations that acts with each caller's bearer token); off
                           when unset or "0" [API_BIND_ADDRESS]
  --api-cert-dir DIR       serve it over TLS with tls.crt and tls.key from DIR (read
                           again when they change); required beyond loopback [API_CERT_DIR]
  --version                print the version and exit
  -h, --help               show this help
`;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export class UsageError extends Error {}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' | 'version' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'max-concurrent-reconciles': { type: 'string' },
        'max-concurrent-migrations': { type: 'string' },
        'max-migrations-in-flight': { type: 'string' },
        'max-migrations-per-node': { type: 'string' },
        'log-level': { type: 'string' },
        'health-probe-bind-address': { type: 'string' },
        'metrics-bind-address': { type: 'string' },
        'metrics-secure': { type: 'boolean' },
        'metrics-cert-dir': { type: 'string' },
        'leader-elect': { type: 'boolean' },
        'leader-election-namespace': { type: 'string' },
        'leader-election-id': { type: 'string' },
        'leader-election-lease-duration': { type: 'string' },
        'leader-election-renew-deadline': { type: 'string' },
        'leader-election-retry-period': { type: 'string' },
        'webhook-bind-address': { type: 'string' },
        'webhook-cert-dir': { type: 'string' },
        'webhook-secret-name': { type: 'string' },
        'webhook-config-name': { type: 'string' },
        'eviction-webhook-config-name': { type: 'string' },
        'webhook-service-name': { type: 'string' },
        'log-format': { type: 'string' },
        'steer-owner-kinds': { type: 'string' },
        'api-bind-address': { type: 'string' },
        'api-cert-dir': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return 'help';
  if (values.version) return 'version';
  const logFormat = values['log-format'] ?? env.LOG_FORMAT ?? 'json';
  if (logFormat !== 'json' && logFormat !== 'text')
    throw new UsageError(`--log-format must be json or text, not ${JSON.stringify(logFormat)}`);
  const count = (flag: string, text: string, max: number) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > max)
      throw new UsageError(`--${flag} must be a whole number from 1 to ${max}, not ${JSON.stringify(text)}`);
    return n;
  };
  const reconcilesFlag =
    values['max-concurrent-reconciles'] !== undefined || values['max-concurrent-migrations'] === undefined
      ? 'max-concurrent-reconciles'
      : 'max-concurrent-migrations';
  const workers = count(
    reconcilesFlag,
    values['max-concurrent-reconciles'] ??
      values['max-concurrent-migrations'] ??
      env.MAX_CONCURRENT_RECONCILES ??
      env.MAX_CONCURRENT_MIGRATIONS ??
      '4',
    100,
  );
  const limits: Limits = {
    cluster: count(
      'max-migrations-in-flight',
      values['max-migrations-in-flight'] ?? env.MAX_MIGRATIONS_IN_FLIGHT ?? String(DEFAULT_LIMITS.cluster),
      100_000,
    ),
    perNode: count(
      'max-migrations-per-node',
      values['max-migrations-per-node'] ?? env.MAX_MIGRATIONS_PER_NODE ?? String(DEFAULT_LIMITS.perNode),
      100_000,
    ),
  };
  const logLevel = values['log-level'] ?? env.LOG_LEVEL ?? 'info';
  if (!LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(logLevel)}`);
  }
  const address = (
    flag: 'health-probe-bind-address' | 'metrics-bind-address' | 'webhook-bind-address' | 'api-bind-address',
    fromEnv: string | undefined,
    fallback: string,
  ) => {
    const text = values[flag] ?? fromEnv ?? fallback;
    if (text === '0') return undefined;
    try {
      parseAddress(text);
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message}`);
    }
    return text;
  };
  const healthProbeAddress = address('health-probe-bind-address', env.HEALTH_PROBE_BIND_ADDRESS, '127.0.0.1:8081');
  const metricsAddress = address('metrics-bind-address', env.METRICS_BIND_ADDRESS, '127.0.0.1:8080');
  const metricsCertDir = values['metrics-cert-dir'] ?? (env.METRICS_CERT_DIR || undefined);
  // Plain HTTP only on loopback, and only when nothing asks for more.
  const metrics = metricsAddress
    ? {
        address: metricsAddress,
        secure:
          !isLoopback(parseAddress(metricsAddress).host) || (values['metrics-secure'] ?? env.METRICS_SECURE === 'true') || !!metricsCertDir,
        certDir: metricsCertDir,
      }
    : undefined;
  const webhookAddress = address('webhook-bind-address', env.WEBHOOK_BIND_ADDRESS, '0');
  const apiAddress = address('api-bind-address', env.API_BIND_ADDRESS, '0');
  const apiCertDir = values['api-cert-dir'] ?? (env.API_CERT_DIR || undefined);
  if (apiAddress && !apiCertDir && !isLoopback(parseAddress(apiAddress).host)) {
    throw new UsageError(`--api-bind-address ${apiAddress} serves beyond loopback: give it TLS with --api-cert-dir`);
  }
  const api = apiAddress ? { address: apiAddress, certDir: apiCertDir } : undefined;
  const webhook: Options['webhook'] = webhookAddress
    ? {
        address: webhookAddress,
        namespace: env.POD_NAMESPACE || 'podmigration-system',
        certDir: values['webhook-cert-dir'],
        secretName: values['webhook-secret-name'] ?? 'podmigration-webhook-cert',
        configName: values['webhook-config-name'] ?? 'podmigration-mutating-webhook',
        evictionConfigName: values['eviction-webhook-config-name'] ?? 'podmigration-eviction-webhook',
        serviceName: values['webhook-service-name'] ?? 'podmigration-webhook-service',
      }
    : undefined;
  const kindsText = values['steer-owner-kinds'] ?? env.STEER_OWNER_KINDS ?? DEFAULT_STEER_OWNER_KINDS.join(',');
  const steerOwnerKinds = kindsText
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of steerOwnerKinds) {
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Z][A-Za-z0-9]*$/.test(k)) {
      throw new UsageError(
        `--steer-owner-kinds: ${JSON.stringify(k)} is not group/Kind (for example apps/StatefulSet or kubeflow.org/PyTorchJob)`,
      );
    }
  }
  const seconds = (flag: string, fallback: number) => {
    const text = (values as Record<string, string | undefined>)[flag] ?? String(fallback);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1)
      throw new UsageError(`--${flag} must be a whole number of seconds, at least 1, not ${JSON.stringify(text)}`);
    return n;
  };
  let leaderElection: Options['leaderElection'];
  if (values['leader-elect'] ?? env.LEADER_ELECT === 'true') {
    leaderElection = {
      namespace: values['leader-election-namespace'] ?? (env.POD_NAMESPACE || 'podmigration-system'),
      name: values['leader-election-id'] ?? 'podmigration-operator',
      leaseDurationSeconds: seconds('leader-election-lease-duration', 15),
      renewDeadlineSeconds: seconds('leader-election-renew-deadline', 10),
      retryPeriodSeconds: seconds('leader-election-retry-period', 2),
    };
    if (leaderElection.renewDeadlineSeconds >= leaderElection.leaseDurationSeconds) {
      throw new UsageError('--leader-election-renew-deadline must be shorter than --leader-election-lease-duration');
    }
  }
  return {
    webhook,
    steerOwnerKinds,
    api,
    leaderElection,
    healthProbeAddress,
    metrics,
    kubeconfig: values.kubeconfig ?? (env.KUBECONFIG || undefined),
    namespace: values.namespace ?? (env.WATCH_NAMESPACE || undefined),
    workers,
    limits,
    logLevel,
    logFormat,
  };
}
