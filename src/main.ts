// The operator's entry point: flags, logger, kubeconfig, controller, signals.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import pino from 'pino';
import { delegatedAuth } from './auth';
import { Controller } from './controller/controller';
import { healthRoutes, serve } from './http';
import { KubeClient } from './kube/client';
import { KubeConfig, KubeConfigError } from './kube/config';
import { LeaderElector } from './leaderelection';
import { serveFacade } from './facade/server';
import { textLines } from './logformat';
import { USAGE, UsageError, parseOptions } from './options';
import { selfIssued } from './tls';
import { VERSION } from './version';
import { WebhookArming } from './webhook/arming';
import { DrainController } from './drain/controller';
import { ReclaimController } from './reclaim/controller';
import { DEFAULT_LIMITS } from './controller/inflight';
import { EVICTION_WEBHOOK_PATH } from './webhook/eviction';
import { WEBHOOK_PATH, jobParallelism, liveMigrations, serveWebhook } from './webhook/server';
import { whoAmI } from './auth';

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`error: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (opts === 'version') {
    process.stdout.write(`podmigration-operator ${VERSION} (Node.js ${process.version})\n`);
    return 0;
  }
  const log = pino(
    { level: opts.logLevel, base: { component: 'podmigration-operator' } },
    opts.logFormat === 'text' ? textLines(process.stdout) : undefined,
  );
  let kc: KubeConfig;
  try {
    kc = opts.kubeconfig ? KubeConfig.fromFile(opts.kubeconfig) : KubeConfig.inCluster();
  } catch (e) {
    if (!(e instanceof KubeConfigError) && (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }

  // The webhook is called only for the owners a Steer migration waits on; the leader arms it.
  const arming = opts.webhook ? new WebhookArming({ client: new KubeClient(kc), configName: opts.webhook.configName, log }) : undefined;
  const env = { steering: !!opts.webhook, steerOwnerKinds: new Set(opts.steerOwnerKinds), arming };
  const controller = new Controller({
    kubeConfig: kc,
    log,
    namespace: opts.namespace,
    workers: opts.workers,
    limits: opts.limits,
    instance: hostname(),
    env,
  });
  const elector = opts.leaderElection
    ? new LeaderElector({
        ...opts.leaderElection,
        client: new KubeClient(kc),
        identity: `${hostname()}_${randomBytes(4).toString('hex')}`,
        log,
      })
    : undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // Finish the reconciles in flight, then hand the lease to a standby.
    controller
      .stop()
      .then(() => elector?.release())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  // A promise nobody waits on that fails is a bug to log, never a reason to stop serving.
  process.on('unhandledRejection', (e: unknown) =>
    log.error({ err: e instanceof Error ? e.stack : String(e) }, 'unhandled promise rejection'),
  );
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info({ version: VERSION, server: kc.cluster.server, namespace: opts.namespace ?? '(all)' }, 'starting');
  if (opts.healthProbeAddress) {
    // A standby is ready: it is doing its job, which is to wait.
    const ready = () => (elector && !elector.isLeader ? true : controller.hasSynced);
    const { port } = await serve(opts.healthProbeAddress, healthRoutes(ready));
    log.info({ address: opts.healthProbeAddress, port }, 'serving /healthz and /readyz');
  }
  if (opts.metrics) {
    const { address, secure, certDir } = opts.metrics;
    const registry = controller.metrics.registry;
    const routes = { '/metrics': async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType }) };
    // Beyond loopback: HTTPS, for callers the API server authenticates and authorizes.
    const secureServing = secure
      ? { tls: certDir ?? (await selfIssued('podmigration-metrics')), guard: delegatedAuth(new KubeClient(kc), log), log }
      : undefined;
    const { port } = await serve(address, routes, secureServing);
    log.info({ address, port, secure, certDir }, 'serving /metrics');
  }
  if (opts.webhook) {
    // Every replica serves the webhook (the Service picks any), leader or not, from its own
    // cache of the migrations.
    const client = new KubeClient(kc);
    const cache = controller.cachedMigrations;
    void controller.startCaches();
    // Its own evictions (step 4's) pass the eviction webhook: known by the user the API server sees.
    let self: string | undefined;
    void whoAmI(client, log).then((u) => (self = u));
    const { port, ensureCA } = await serveWebhook({
      ...opts.webhook,
      client,
      log,
      eviction: { env, self: () => self, namespace: opts.namespace, migrations: (ns) => cache.list(ns) },
      migrations: { cached: (ns) => cache.list(ns), live: liveMigrations(client), jobParallelism: jobParallelism(client) },
    });
    if (arming) arming.ensureServing = ensureCA;
    log.info({ address: opts.webhook.address, port, paths: [WEBHOOK_PATH, EVICTION_WEBHOOK_PATH] }, 'serving the admission webhooks');
  }
  if (opts.api) {
    // Every replica serves it: it holds no state, and acts with each caller's own rights.
    const { port } = await serveFacade({ ...opts.api, kubeConfig: kc, log });
    log.info({ address: opts.api.address, port, tls: !!opts.api.certDir }, 'serving /api/v1/migrations');
  }
  if (elector) {
    const lease = { name: opts.leaderElection!.name };
    controller.metrics.leader.set(lease, 0);
    log.info({ lease: `${opts.leaderElection!.namespace}/${opts.leaderElection!.name}` }, 'waiting for leadership');
    await elector.acquire(() => process.exit(1));
    controller.metrics.leader.set(lease, 1);
  }
  if (!stopping && arming) {
    // What the migrations in flight wait on, as this leader finds them (after a restart, a failover).
    await controller.startCaches();
    await arming
      .seed(controller.cachedMigrations.list())
      .catch((e: unknown) => log.warn({ err: String(e) }, 'could not set which owners the webhook is armed for'));
  }
  if (!stopping) await controller.start();
  // NodeDrains, run by the leader beside the migrations they start.
  if (!stopping)
    await new DrainController({
      client: new KubeClient(kc),
      log,
      env,
      migrations: controller.cachedMigrations,
      namespace: opts.namespace,
    }).start();
  // ReclaimPolicies and the stranded-capacity gauges, from the leader's cache of the pods.
  if (!stopping)
    await new ReclaimController({
      client: new KubeClient(kc),
      log,
      metrics: controller.metrics,
      migrations: controller.cachedMigrations,
      namespace: opts.namespace,
      clusterLimit: (opts.limits ?? DEFAULT_LIMITS).cluster,
    }).start();
  return -1; // keep running until a signal
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`fatal: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
