// The benchmark's command line: `make bench ARGS='...'` passes these options alone (without
// ARGS, make bench runs --n 1,100,1000 --memory 1000,5000,10000).

export const USAGE = `usage: make bench ARGS='[option]...'

  --n 1,100            N: migrations at once, one run per N ('' for none; default 1,100)
  --drain 100,500      N: kubectl drain of node-1 holding N single-replica Deployments'
                       pods, plainly and with the operator answering the evictions, on
                       the same control plane: wall times, the operator's requests per
                       pod, the fewest Ready pods any Deployment had ('' for none)
  --memory 1000,5000   K: the operator's memory with K stored (ended) PodMigrations: its
                       peak, and its RSS 10 s and 90 s after its caches synced (V8 returns
                       the heap the initial list left behind after about a minute idle)
  --stranded 10000     P: the operator's memory with P running pods, half of them holding
                       requests for a finished container (its cluster-wide pod watch):
                       when its stranded gauges agree, its RSS 10 s and 90 s after, its
                       peak, and the same operator watching no pods as the floor
  --defaults           the operator keeps its default limits on migrations in flight (what
                       safety costs), instead of limits raised to N (throughput)
  --breakdown          also lists the operator's requests per migration by verb, resource
                       and code
  --timeline           also says where the operator's migrations spent their time (from
                       their status)
  --costs              measures what one request of each kind the operator sends costs the
                       API server
  --node-options '..'  NODE_OPTIONS for the operator alone in the N runs (V8 heap experiments)
  --dist DIR           runs the operator from another build (for example an older commit's
                       dist/; default dist/)
  --keep               leaves the control plane (.cluster-bench/) running afterwards
`;

export interface BenchOptions {
  sizes: number[];
  drain: number[];
  memory: number[];
  stranded: number[];
  dist: string;
  keep: boolean;
  breakdown: boolean;
  timeline: boolean;
  costs: boolean;
  defaults: boolean;
  /** NODE_OPTIONS of the operator in the N runs; unset: the bench's own. */
  nodeOptions?: string;
}

const VALUES = ['n', 'drain', 'memory', 'stranded', 'dist', 'node-options'] as const;
const SWITCHES = ['keep', 'breakdown', 'timeline', 'costs', 'defaults'] as const;
type Value = (typeof VALUES)[number];
type Switch = (typeof SWITCHES)[number];

const isOne = <T extends string>(names: readonly T[], name: string): name is T => (names as readonly string[]).includes(name);

export class UsageError extends Error {}

const list = (s: string) => s.split(',').filter(Boolean).map(Number);

/**
 * Reads the options; undefined for --help. An option's value is the next argument as it
 * is, even when it starts with a dash (`--node-options --max-old-space-size=96`); given
 * twice, the first counts.
 */
export function parseOptions(argv: readonly string[], defaultDist: string): BenchOptions | undefined {
  const values: Partial<Record<Value, string>> = {};
  const switches = new Set<Switch>();
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    if (name === 'help') return undefined;
    if (isOne(VALUES, name)) {
      if (i + 1 >= argv.length) throw new UsageError(`${argv[i]} needs a value`);
      const value = argv[++i];
      values[name] ??= value;
    } else if (isOne(SWITCHES, name)) {
      switches.add(name);
    } else {
      throw new UsageError(`unknown option ${JSON.stringify(argv[i])}`);
    }
  }
  for (const name of ['n', 'drain', 'memory', 'stranded'] as const) {
    if (list(values[name] ?? '').some((x) => !Number.isInteger(x) || x <= 0)) {
      throw new UsageError(`--${name} takes positive whole numbers separated by commas, not ${JSON.stringify(values[name])}`);
    }
  }
  return {
    sizes: list(values.n ?? '1,100'),
    drain: list(values.drain ?? ''),
    memory: list(values.memory ?? ''),
    stranded: list(values.stranded ?? ''),
    dist: values.dist ?? defaultDist,
    keep: switches.has('keep'),
    breakdown: switches.has('breakdown'),
    timeline: switches.has('timeline'),
    costs: switches.has('costs'),
    defaults: switches.has('defaults'),
    nodeOptions: values['node-options'],
  };
}
