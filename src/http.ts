// The operator's HTTP endpoints: /healthz and /readyz for the kubelet's probes, /metrics
// for Prometheus. Each runs on the address its flag names.
import { type IncomingMessage, type RequestListener, type Server, createServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Logger } from 'pino';
import { type KeyPair, httpsServer } from './tls';

export interface Reply {
  status: number;
  body: string;
  contentType?: string;
}
export type Routes = Record<string, () => Reply | Promise<Reply>>;
/** Authentication and authorization: undefined lets the request through, a reply refuses it. */
export type Guard = (req: IncomingMessage) => Promise<Reply | undefined>;

/** HTTPS, with a key pair (or a directory that holds one, reloaded when it changes), and a guard before every route. */
export interface Secure {
  tls: string | KeyPair;
  guard: Guard;
  log: Logger;
}

export function parseAddress(address: string): { host?: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`invalid address ${JSON.stringify(address)}: want host:port or :port`);
  return { host: m[1] || undefined, port: Number(m[2]) };
}

export const isLoopback = (host: string | undefined): boolean =>
  !!host && (/^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1' || host === '[::1]' || host === 'localhost');

/** Listens on `address` (host:port; :port for every interface); the port bound. */
export async function listen(server: NetServer, address: string): Promise<number> {
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}

export async function serve(address: string, routes: Routes, secure?: Secure): Promise<{ server: Server; port: number }> {
  const answer = async (req: IncomingMessage): Promise<Reply> => {
    const refused = await secure?.guard(req);
    if (refused) return refused;
    const route = routes[(req.url ?? '').split('?')[0]];
    return route ? route() : { status: 404, body: 'not found\n' };
  };
  const onRequest: RequestListener = (req, res) => {
    answer(req).then(
      (r) => res.writeHead(r.status, { 'Content-Type': r.contentType ?? 'text/plain' }).end(r.body),
      (e: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${String(e)}\n`),
    );
  };
  const server = secure ? httpsServer(secure.tls, secure.log, onRequest) : createServer(onRequest);
  return { server, port: await listen(server, address) };
}

export function healthRoutes(ready: () => boolean): Routes {
  const ok = (): Reply => ({ status: 200, body: 'ok\n' });
  return {
    '/healthz': ok,
    '/livez': ok,
    '/readyz': () => (ready() ? ok() : { status: 503, body: 'informer caches not synced\n' }),
  };
}
