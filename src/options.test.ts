import { UsageError, parseOptions } from './options';

describe('parseOptions', () => {
  it('has safe defaults: loopback endpoints, all namespaces, no leader election', () => {
    expect(parseOptions([], {})).toEqual({
      kubeconfig: undefined,
      namespace: undefined,
      workers: 4,
      limits: { cluster: 5, perNode: 2 },
      logLevel: 'info',
      logFormat: 'json',
      healthProbeAddress: '127.0.0.1:8081',
      metrics: { address: '127.0.0.1:8080', secure: false, certDir: undefined },
      leaderElection: undefined,
      steerOwnerKinds: ['apps/StatefulSet', 'batch/Job'],
    });
  });

  it('trusts only the owners it is told recreate their pods (Steer), as group/Kind', () => {
    expect(parseOptions(['--steer-owner-kinds', 'apps/StatefulSet, kubeflow.org/PyTorchJob'], {})).toMatchObject({
      steerOwnerKinds: ['apps/StatefulSet', 'kubeflow.org/PyTorchJob'],
    });
    expect(parseOptions([], { STEER_OWNER_KINDS: 'batch/Job' })).toMatchObject({ steerOwnerKinds: ['batch/Job'] });
    expect(() => parseOptions(['--steer-owner-kinds', 'PyTorchJob'], {})).toThrow(/"PyTorchJob" is not group\/Kind/);
  });

  it('serves the REST facade only when asked, over TLS beyond loopback', () => {
    expect(parseOptions([], {})).toMatchObject({ api: undefined });
    expect(parseOptions(['--api-bind-address', '127.0.0.1:9000'], {})).toMatchObject({ api: { address: '127.0.0.1:9000' } });
    expect(parseOptions([], { API_BIND_ADDRESS: ':8443', API_CERT_DIR: '/certs' })).toMatchObject({
      api: { address: ':8443', certDir: '/certs' },
    });
    expect(parseOptions(['--api-bind-address', '0'], {})).toMatchObject({ api: undefined });
  });

  it('serves /metrics as plain HTTP only on loopback, and when nothing asks for more', () => {
    const metrics = (argv: string[], env: NodeJS.ProcessEnv = {}) => (parseOptions(argv, env) as { metrics?: object }).metrics;
    expect(metrics(['--metrics-bind-address', 'localhost:8080'])).toEqual({ address: 'localhost:8080', secure: false, certDir: undefined });
    expect(metrics(['--metrics-bind-address', ':8443'])).toEqual({ address: ':8443', secure: true, certDir: undefined });
    expect(metrics([], { METRICS_BIND_ADDRESS: '0.0.0.0:8443', METRICS_CERT_DIR: '/certs' })).toEqual({
      address: '0.0.0.0:8443',
      secure: true,
      certDir: '/certs',
    });
    expect(metrics(['--metrics-secure'])).toMatchObject({ address: '127.0.0.1:8080', secure: true });
    expect(metrics([], { METRICS_SECURE: 'true' })).toMatchObject({ secure: true });
    expect(metrics(['--metrics-cert-dir', '/certs'])).toMatchObject({ address: '127.0.0.1:8080', secure: true });
  });

  it('answers --version and reads --log-format', () => {
    expect(parseOptions(['--version'], {})).toBe('version');
    expect(parseOptions([], { LOG_FORMAT: 'text' })).toMatchObject({ logFormat: 'text' });
  });

  it('reads flags, and the environment where a flag is absent', () => {
    const o = parseOptions(['--namespace', 'ml', '--max-concurrent-migrations=8', '--metrics-bind-address', '0'], {
      KUBECONFIG: '/k',
      LOG_LEVEL: 'debug',
      LEADER_ELECT: 'true',
      POD_NAMESPACE: 'ops',
    });
    expect(o).toMatchObject({ kubeconfig: '/k', namespace: 'ml', workers: 8, logLevel: 'debug', metrics: undefined });
    expect(
      parseOptions(['--max-concurrent-reconciles', '16', '--max-migrations-in-flight', '50'], { MAX_MIGRATIONS_PER_NODE: '7' }),
    ).toMatchObject({
      workers: 16,
      limits: { cluster: 50, perNode: 7 },
    });
    expect(parseOptions([], { MAX_CONCURRENT_MIGRATIONS: '3' })).toMatchObject({ workers: 3 }); // the old name still works
    expect(typeof o === 'object' && o.leaderElection).toEqual({
      namespace: 'ops',
      name: 'podmigration-operator',
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
    });
  });

  it.each([
    [['--max-concurrent-migrations', '0'], /--max-concurrent-migrations must be a whole number from 1 to 100/],
    [['--max-concurrent-migrations', 'lots'], /--max-concurrent-migrations/],
    [['--max-concurrent-reconciles', '101'], /--max-concurrent-reconciles must be a whole number from 1 to 100/],
    [['--max-migrations-in-flight', '0'], /--max-migrations-in-flight must be a whole number from 1/],
    [['--max-migrations-per-node=-1'], /--max-migrations-per-node must be a whole number from 1/],
    [['--log-level', 'loud'], /--log-level must be one of/],
    [['--log-format', 'xml'], /--log-format must be json or text/],
    [['--api-bind-address', ':8443'], /serves beyond loopback: give it TLS with --api-cert-dir/],
    [['--api-bind-address', '0.0.0.0:8443'], /--api-cert-dir/],
    [['--metrics-bind-address', 'localhost'], /--metrics-bind-address: invalid address/],
    [['--health-probe-bind-address', ':99999'], /--health-probe-bind-address: invalid address/],
    [['--leader-elect', '--leader-election-renew-deadline', '20'], /renew-deadline must be shorter/],
    [['--leader-elect', '--leader-election-retry-period', '0'], /--leader-election-retry-period must be a whole number/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
  ])('refuses %j with a clear message', (argv, message) => {
    expect(() => parseOptions(argv, {})).toThrow(UsageError);
    expect(() => parseOptions(argv, {})).toThrow(message);
  });

  it('answers --help', () => {
    expect(parseOptions(['--help'], {})).toBe('help');
  });
});
