// Liveness and readiness endpoints for the kubelet's probes.
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HealthOptions {
  /** host:port; ":8081" listens on every address. */
  address: string;
  /** Ready once the informer caches have synced. */
  ready: () => boolean;
}

export function parseAddress(address: string): { host?: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(address);
  if (!m || Number(m[2]) > 65535) throw new Error(`invalid address ${JSON.stringify(address)}: want host:port or :port`);
  return { host: m[1] || undefined, port: Number(m[2]) };
}

export async function startHealthServer(o: HealthOptions): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = o.ready();
      res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ok\n' : 'informer caches not synced\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    }
  });
  const { host, port } = parseAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}
