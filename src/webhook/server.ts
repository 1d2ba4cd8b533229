// The admission webhooks, served over HTTPS: the mutating one for pods (Steer mode) and the
// validating one for evictions (drains, eviction.ts). Neither may hurt what it is called
// for: their configurations have failurePolicy Ignore, a short timeout and CEL
// matchConditions so the API server calls them only when it matters; here any error, a
// slow lookup or an unknown request answers "allowed" (unchanged).
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import { type KubeClient, paths } from '../kube/client';
import { parseAddress } from '../http';
import { type KeyPair, httpsServer } from '../tls';
import { CertManager } from './certs';
import { EVICTION_WEBHOOK_PATH, type EvictionDeps, reviewEviction } from './eviction';
import { steerPatch, steeringMigrations, waitsForReplacement } from './steer';

export const WEBHOOK_PATH = '/mutate-v1-pod';
const MAX_BODY = 3 * 1024 * 1024;
const LOOKUP_TIMEOUT_MS = 1_500;

/** Where the webhook finds the migrations: the operator's cache, and the API server when the cache has none for an owner. */
export interface MigrationSource {
  cached(namespace: string): readonly PodMigration[];
  live(namespace: string): Promise<readonly PodMigration[]>;
  /** How many pods a Job runs at once now (a Job's next pod is its replacement only while that is 1). */
  jobParallelism?(namespace: string, name: string): Promise<number | undefined>;
}

export interface WebhookOptions {
  address: string;
  client: KubeClient;
  migrations: MigrationSource;
  log: Logger;
  namespace: string;
  certDir?: string;
  secretName: string;
  configName: string;
  /** The ValidatingWebhookConfiguration of the eviction webhook (its CA bundle is kept too). */
  evictionConfigName: string;
  serviceName: string;
  /** Serve the eviction webhook. */
  eviction?: Omit<EvictionDeps, 'client' | 'log'>;
}

/** A namespace's name; anything else is no namespace (and never goes into a request path). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Decides one admission request: the patch for the replacement a Steer migration waits
 * for, or nothing. Never throws, whatever the body: anything it cannot read, and any
 * error, answers "allowed, unchanged". The API server calls it only for the pods of owners
 * a migration waits on (matchConditions), so the migrations come from the cache; the API
 * server is asked only when the cache has no migration waiting on the pod's owner yet (it
 * may lag behind the write that armed the webhook).
 */
export async function review(source: MigrationSource, log: Logger, body: unknown): Promise<object> {
  const req = isObject(body) && isObject(body.request) ? body.request : undefined;
  const allowed = (patch?: object[]) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: typeof req?.uid === 'string' ? req.uid : '',
      allowed: true,
      ...(patch && patch.length ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    },
  });
  try {
    const pod = req?.object;
    const namespace = req?.namespace;
    const named = typeof namespace === 'string' && DNS_LABEL.test(namespace);
    if (req?.operation !== 'CREATE' || !named || !isObject(pod) || !isObject(pod.metadata) || !isObject(pod.spec)) return allowed();
    const owners = pod.metadata.ownerReferences;
    if (!Array.isArray(owners) || !Array.isArray(pod.spec.containers)) return allowed();
    const owner = owners.find((r) => isObject(r) && r.controller === true) as { uid?: unknown } | undefined;
    if (typeof owner?.uid !== 'string') return allowed();
    const waiting = (ms: readonly PodMigration[]) => ms.some((m) => waitsForReplacement(m) && m.status?.steer?.owner.uid === owner.uid);
    let migrations = source.cached(namespace);
    if (!waiting(migrations)) migrations = await source.live(namespace);
    const found = steeringMigrations(pod as V1Pod, migrations);
    if (found.length !== 1) {
      if (found.length > 1)
        log.warn({ migrations: found.map((m) => m.metadata.name) }, 'several migrations wait for this pod; admitting it unchanged');
      return allowed();
    }
    const [m] = found;
    const s = m.status!.steer!;
    if ('onlyNewPod' in s.replacement && s.owner.kind === 'Job' && source.jobParallelism) {
      // A Job scaled up since step 1 makes pods that are no one's replacement.
      const parallelism = await source.jobParallelism(namespace, s.owner.name);
      if (parallelism === undefined || parallelism > 1) {
        log.warn(
          { migration: `${namespace}/${m.metadata.name}`, parallelism },
          'the Job now runs several pods at once: its next pod is not certainly the replacement; admitting it unchanged',
        );
        return allowed();
      }
    }
    const name = (pod.metadata.name ?? pod.metadata.generateName) as string | undefined;
    log.info(
      {
        migration: `${namespace}/${m.metadata.name}`,
        pod: name,
        targetNode: m.spec.targetNode ?? `not ${m.spec.sourceNode}`,
        dryRun: req.dryRun === true,
      },
      'steering the replacement pod',
    );
    return allowed(steerPatch(pod as V1Pod, m));
  } catch (e) {
    log.warn({ err: String(e) }, 'webhook could not decide; admitting the pod unchanged');
    return allowed();
  }
}

/** A Job's parallelism as the API server holds it now. */
export function jobParallelism(client: KubeClient): NonNullable<MigrationSource['jobParallelism']> {
  return async (namespace, name) => {
    const path = `/apis/batch/v1/namespaces/${namespace}/jobs/${encodeURIComponent(name)}`;
    const job = await client.request<{ spec?: { parallelism?: number } }>('GET', path, { timeoutMs: LOOKUP_TIMEOUT_MS });
    return job.spec?.parallelism ?? 1;
  };
}

/** The migrations of a namespace as the API server holds them now (a cache miss). */
export function liveMigrations(client: KubeClient): MigrationSource['live'] {
  return async (namespace) =>
    (await client.request<{ items: PodMigration[] }>('GET', paths.migrations(namespace), { timeoutMs: LOOKUP_TIMEOUT_MS })).items;
}

/** Starts the HTTPS server; its certificate is managed (or read from certDir) and reloaded. */
export async function serveWebhook(
  o: WebhookOptions,
): Promise<{ server: Server; port: number; stop: () => void; ensureCA: () => Promise<unknown> }> {
  // With cert-manager, a mounted Secret read again on change; otherwise the operator's own,
  // renewed by the CertManager, which hands each new one over.
  let source: string | KeyPair = o.certDir ?? { cert: '', key: '' };
  const serving: { server?: Server } = {};
  let stop = () => undefined as void;
  let ensureCA: () => Promise<unknown> = async () => undefined;
  if (!o.certDir) {
    const dnsNames = [`${o.serviceName}.${o.namespace}.svc`, `${o.serviceName}.${o.namespace}.svc.cluster.local`, 'localhost', '127.0.0.1'];
    const onCert = (c: KeyPair) => {
      if (serving.server) serving.server.setSecureContext({ cert: c.cert, key: c.key, minVersion: 'TLSv1.2' });
      else source = { cert: c.cert, key: c.key };
    };
    const certs = new CertManager({
      client: o.client,
      namespace: o.namespace,
      secretName: o.secretName,
      webhookConfigs: [
        { kind: 'mutatingwebhookconfigurations', name: o.configName },
        { kind: 'validatingwebhookconfigurations', name: o.evictionConfigName, optional: true },
      ],
      dnsNames,
      log: o.log,
      onCert,
    });
    await certs.start();
    stop = () => certs.stop();
    ensureCA = () => certs.sync();
  }
  const server = httpsServer(source, o.log, (req, res) => {
    const reply = (status: number, body: object) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    const path = (req.url ?? '').split('?')[0];
    const answer =
      path === WEBHOOK_PATH
        ? (body: unknown) => review(o.migrations, o.log, body)
        : path === EVICTION_WEBHOOK_PATH && o.eviction
          ? (body: unknown) => reviewEviction({ ...o.eviction!, client: o.client, log: o.log }, body)
          : undefined;
    if (req.method !== 'POST' || !answer) return reply(404, { message: 'not found' });
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        return reply(400, { message: 'the body is not an AdmissionReview' });
      }
      answer(body).then(
        (r) => reply(200, r),
        (e: unknown) => reply(500, { message: String(e) }),
      );
    });
  });
  serving.server = server;
  const { host, port } = parseAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port, stop: () => (stop(), server.close()), ensureCA };
}
