// The original migration REST API, as a thin facade over PodMigrations (--api-bind-address).
// Every request acts with its caller's own bearer token, passed through to the API server,
// which authenticates and authorizes it: the facade holds no credentials of its own, and
// no state (every replica answers the same). Docs: docs/openapi.yaml.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import { ApiError } from '../errors';
import { listen } from '../http';
import { KubeClient, paths, USER_AGENT } from '../kube/client';
import type { KubeConfig } from '../kube/config';
import { httpsServer } from '../tls';
import { RequestError, migrationId, parseCreate, parseId, summarize, toMigration, toPodMigration, toStatus } from './translate';

export const MAX_BODY_BYTES = 64 * 1024;
const PREFIX = '/api/v1/migrations';

export interface FacadeOptions {
  address: string;
  /** The operator's kubeconfig: only its cluster (server, CA) is used, never its credentials. */
  kubeConfig: KubeConfig;
  /** tls.crt and tls.key: served over TLS when set, and read again when they change. */
  certDir?: string;
  log: Logger;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

const error = (status: number, message: string, field?: string): Answer => ({
  status,
  body: { error: message, ...(field ? { field } : {}) },
});

async function readBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json')
    throw new RequestError(415, `Content-Type must be application/json, not ${JSON.stringify(type || '(none)')}`);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new RequestError(413, `the body must be at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RequestError(413, `the body must be at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new RequestError(400, `the body is not valid JSON: ${(e as Error).message}`);
  }
}

/** The API server's answer to the caller's request, in the facade's terms. */
function fromApiError(e: ApiError, what: string): Answer {
  if (e.code === 401)
    return { ...error(401, 'the bearer token was not accepted by the Kubernetes API server'), headers: { 'WWW-Authenticate': 'Bearer' } };
  if (e.code === 403) return error(403, e.message);
  if (e.code === 404) return error(404, `${what} not found`);
  if (e.code === 400 || e.code === 422) return error(400, e.message);
  return error(502, `the Kubernetes API server answered ${e.code}: ${e.message}`);
}

export async function handle(client: KubeClient, req: IncomingMessage): Promise<Answer> {
  const url = new URL(req.url ?? '/', 'http://facade');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  const only = (allowed: string): Answer | undefined =>
    method === allowed ? undefined : { ...error(405, `${method} is not allowed here; use ${allowed}`), headers: { Allow: allowed } };

  if (path === '/health') return only('GET') ?? { status: 200, body: { status: 'healthy' } };
  const known = path === PREFIX || path.startsWith(`${PREFIX}/`) || path === '/api/v1/metrics';
  if (!known) return error(404, `no such endpoint: ${path}`);

  const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!auth)
    return { ...error(401, 'a bearer token is required (Authorization: Bearer <token>)'), headers: { 'WWW-Authenticate': 'Bearer' } };
  const token = auth[1];
  const call = <T>(m: string, p: string, body?: unknown, query?: Record<string, string>) =>
    client.request<T>(m, p, { body, query, bearerToken: token });
  /** What a 404 from the API server is about. */
  let what = 'it';

  try {
    if (path === PREFIX) {
      const wrong = only('POST');
      if (wrong) return wrong;
      const request = parseCreate(await readBody(req));
      const pm = toPodMigration(request);
      const created = await call<PodMigration>('POST', paths.migrations(request.pod_namespace), pm);
      // A new record reads Pending (the schema's default) until the operator starts it.
      return {
        status: 202,
        body: { ...toMigration(created), migration_id: migrationId(created), status: 'pending', message: 'migration accepted' },
      };
    }
    if (path === '/api/v1/metrics') {
      const wrong = only('GET');
      if (wrong) return wrong;
      const ns = url.searchParams.get('namespace') ?? undefined;
      const list = await call<{ items: PodMigration[] }>('GET', paths.migrations(ns || undefined));
      return { status: 200, body: { scope: ns ? `namespace ${ns}` : 'all namespaces', ...summarize(list.items) } };
    }
    const wrong = only('GET');
    if (wrong) return wrong;
    const segments = path.slice(PREFIX.length + 1).split('/');
    const wantsStatus = segments.length > 1 && segments[segments.length - 1] === 'status';
    const { namespace, name } = parseId(wantsStatus ? segments.slice(0, -1) : segments);
    what = `migration ${namespace}/${name}`;
    const pm = await call<PodMigration>('GET', paths.migration(namespace, name));
    return { status: 200, body: wantsStatus ? toStatus(pm) : toMigration(pm) };
  } catch (e) {
    if (e instanceof RequestError) return error(e.status, e.message, e.field);
    if (e instanceof ApiError) return fromApiError(e, what);
    throw e;
  }
}

export async function serveFacade(o: FacadeOptions): Promise<{ server: Server; port: number }> {
  // A client for the cluster with no identity of its own: each request carries its caller's token.
  // Writes on a caller's behalf are named apart from the operator's own (managedFields, audit).
  const client = new KubeClient(o.kubeConfig.anonymous(), USER_AGENT.replace(/^podmigration-operator/, 'podmigration-rest-api'));
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(client, req).then(
      (a) => {
        res.writeHead(a.status, { 'Content-Type': 'application/json', ...a.headers }).end(`${JSON.stringify(a.body)}\n`);
        o.log.debug({ method: req.method, path: req.url, status: a.status }, 'api request');
      },
      (e: unknown) => {
        o.log.error({ method: req.method, path: req.url, err: String(e) }, 'api request failed');
        res.writeHead(500, { 'Content-Type': 'application/json' }).end(`${JSON.stringify({ error: 'internal error' })}\n`);
      },
    );
  };
  const server = o.certDir ? httpsServer(o.certDir, o.log, onRequest) : createServer(onRequest);
  server.requestTimeout = 30_000;
  return { server, port: await listen(server, o.address) };
}
