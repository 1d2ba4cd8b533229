// A TCP proxy on 127.0.0.1 in front of the API server that can be frozen: while frozen it
// forwards nothing, so every request through it hangs (a network partition, or an API
// server that stopped answering), without touching the API server itself.
import { type Server, type Socket, connect, createServer } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';

export class FreezableProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  frozen = false;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<number> {
    this.server = createServer((client) => {
      const upstream = connect(this.upstreamPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.on('data', (d) => (this.frozen ? undefined : upstream.write(d)));
      upstream.on('data', (d) => (this.frozen ? undefined : client.write(d)));
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const address = this.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

const SERVER = /server: https:\/\/127\.0\.0\.1:(\d+)/;

/** The loopback port of the API server a kubeconfig names. */
export function apiServerPort(kubeconfig: string): number {
  const m = SERVER.exec(readFileSync(kubeconfig, 'utf8'));
  if (!m) throw new Error(`no loopback server in ${kubeconfig}`);
  return Number(m[1]);
}

/** Writes to `path` a copy of `kubeconfig` whose server is 127.0.0.1:`port`. */
export function kubeconfigThrough(kubeconfig: string, port: number, path: string): string {
  writeFileSync(path, readFileSync(kubeconfig, 'utf8').replace(SERVER, `server: https://127.0.0.1:${port}`));
  return path;
}
