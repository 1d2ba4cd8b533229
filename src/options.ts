// Command-line flags (each also readable from an environment variable).
import { parseArgs } from 'node:util';
import { parseAddress } from './health';

export interface Options {
  kubeconfig?: string;
  namespace?: string;
  workers: number;
  logLevel: string;
  healthProbeAddress?: string;
}

export const USAGE = `Usage: podmigration-operator [flags]

Moves running pods between nodes as PodMigration resources ask.

Flags (environment variable in brackets):
  --kubeconfig PATH        kubeconfig to use; in-cluster config when unset [KUBECONFIG]
  --namespace NS           watch only this namespace; all when unset [WATCH_NAMESPACE]
  --max-concurrent-migrations N
                           migrations reconciled at the same time, 1-100 (default 4)
                           [MAX_CONCURRENT_MIGRATIONS]
  --log-level LEVEL        trace, debug, info, warn, error or fatal (default info) [LOG_LEVEL]
  --health-probe-bind-address HOST:PORT
                           serve /healthz and /readyz there; "0" turns it off
                           (default 127.0.0.1:8081) [HEALTH_PROBE_BIND_ADDRESS]
  -h, --help               show this help
`;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export class UsageError extends Error {}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        namespace: { type: 'string' },
        'max-concurrent-migrations': { type: 'string' },
        'log-level': { type: 'string' },
        'health-probe-bind-address': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return 'help';
  const workersText = values['max-concurrent-migrations'] ?? env.MAX_CONCURRENT_MIGRATIONS ?? '4';
  const workers = Number(workersText);
  if (!/^\d+$/.test(workersText) || workers < 1 || workers > 100) {
    throw new UsageError(`--max-concurrent-migrations must be a whole number from 1 to 100, not ${JSON.stringify(workersText)}`);
  }
  const logLevel = values['log-level'] ?? env.LOG_LEVEL ?? 'info';
  if (!LEVELS.includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, not ${JSON.stringify(logLevel)}`);
  }
  const health = values['health-probe-bind-address'] ?? env.HEALTH_PROBE_BIND_ADDRESS ?? '127.0.0.1:8081';
  if (health !== '0') {
    try {
      parseAddress(health);
    } catch (e) {
      throw new UsageError(`--health-probe-bind-address: ${(e as Error).message}`);
    }
  }
  return {
    healthProbeAddress: health === '0' ? undefined : health,
    kubeconfig: values.kubeconfig ?? (env.KUBECONFIG || undefined),
    namespace: values.namespace ?? (env.WATCH_NAMESPACE || undefined),
    workers,
    logLevel,
  };
}
