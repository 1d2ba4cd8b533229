// The mutating admission webhook for pods (Steer mode), served over HTTPS. It must never
// hurt pod creation: its configuration has failurePolicy Ignore, a short timeout and CEL
// matchConditions so the API server calls it only for pods with a controlling owner; here
// any error, a slow lookup or an unknown request answers "allowed, unchanged".
import { readFileSync, watch } from 'node:fs';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import { type KubeClient, paths } from '../kube/client';
import { parseAddress } from '../http';
import { CertManager, type ServingCert } from './certs';
import { steerPatch, steeringMigration } from './steer';

export const WEBHOOK_PATH = '/mutate-v1-pod';
const MAX_BODY = 3 * 1024 * 1024;
const LOOKUP_TIMEOUT_MS = 1_500;

interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request?: { uid: string; operation?: string; namespace?: string; object?: V1Pod };
}

export interface WebhookOptions {
  address: string;
  client: KubeClient;
  log: Logger;
  namespace: string;
  certDir?: string;
  secretName: string;
  configName: string;
  serviceName: string;
}

/** Decides one admission request: the patch for a pod a Steer migration waits for, or nothing. */
export async function review(client: KubeClient, log: Logger, body: AdmissionReview): Promise<object> {
  const req = body.request;
  const allowed = (patch?: object[]) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: req?.uid ?? '',
      allowed: true,
      ...(patch && patch.length ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
    },
  });
  const pod = req?.object;
  if (req?.operation !== 'CREATE' || !pod?.metadata?.ownerReferences?.some((r) => r.controller) || !req.namespace) return allowed();
  try {
    const list = await client.request<{ items: PodMigration[] }>('GET', paths.migrations(req.namespace), { timeoutMs: LOOKUP_TIMEOUT_MS });
    const m = steeringMigration(pod, list.items);
    if (!m) return allowed();
    log.info({ migration: `${req.namespace}/${m.metadata.name}`, pod: pod.metadata?.name ?? pod.metadata?.generateName, targetNode: m.spec.targetNode }, 'steering the replacement pod');
    return allowed(steerPatch(pod, m));
  } catch (e) {
    log.warn({ err: String(e) }, 'webhook lookup failed; admitting the pod unchanged');
    return allowed();
  }
}

/** Starts the HTTPS server; its certificate is managed (or read from certDir) and reloaded. */
export async function serveWebhook(o: WebhookOptions): Promise<{ server: Server; port: number; stop: () => void }> {
  let first: ServingCert | undefined;
  let server: Server | undefined;
  const use = (c: Pick<ServingCert, 'cert' | 'key'>) => {
    if (server) server.setSecureContext({ cert: c.cert, key: c.key });
    else first = { ca: '', ...c };
  };
  let stop: () => void;
  if (o.certDir) {
    const read = () => use({ cert: readFileSync(join(o.certDir!, 'tls.crt'), 'utf8'), key: readFileSync(join(o.certDir!, 'tls.key'), 'utf8') });
    read();
    const watcher = watch(o.certDir, () => {
      try {
        read();
      } catch (e) {
        o.log.warn({ err: String(e) }, 'could not reload the webhook certificate');
      }
    });
    stop = () => watcher.close();
  } else {
    const dnsNames = [`${o.serviceName}.${o.namespace}.svc`, `${o.serviceName}.${o.namespace}.svc.cluster.local`, 'localhost', '127.0.0.1'];
    const certs = new CertManager({ client: o.client, namespace: o.namespace, secretName: o.secretName, webhookConfigName: o.configName, dnsNames, log: o.log, onCert: use });
    await certs.start();
    stop = () => certs.stop();
  }
  server = createServer({ cert: first!.cert, key: first!.key }, (req, res) => {
    const reply = (status: number, body: object) => res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== WEBHOOK_PATH) return reply(404, { message: 'not found' });
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let body: AdmissionReview;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString()) as AdmissionReview;
      } catch {
        return reply(400, { message: 'the body is not an AdmissionReview' });
      }
      review(o.client, o.log, body).then((r) => reply(200, r));
    });
  });
  const { host, port } = parseAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(port, host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port, stop };
}
