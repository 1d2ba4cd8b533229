// The operator's HTTP endpoints: /healthz and /readyz for the kubelet's probes, /metrics
// for Prometheus. Each runs on the address its flag names.
import { type Server, createServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';

export interface Reply {
  status: number;
  body: string;
  contentType?: string;
}
export type Routes = Record<string, () => Reply | Promise<Reply>>;

export function parseAddress(address: string): { host?: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`invalid address ${JSON.stringify(address)}: want host:port or :port`);
  return { host: m[1] || undefined, port: Number(m[2]) };
}

/** Listens on `address` (host:port; :port for every interface); the port bound. */
export async function listen(server: NetServer, address: string): Promise<number> {
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return (server.address() as AddressInfo).port;
}

export async function serve(address: string, routes: Routes): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const route = routes[(req.url ?? '').split('?')[0]];
    Promise.resolve(route ? route() : { status: 404, body: 'not found\n' }).then(
      (r) => res.writeHead(r.status, { 'Content-Type': r.contentType ?? 'text/plain' }).end(r.body),
      (e: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${String(e)}\n`),
    );
  });
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
