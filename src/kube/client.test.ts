// The client against a loopback HTTP server standing in for the API server: how it reads a
// watch stream and what it does when its credentials are refused.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubeClient } from './client';
import { KubeConfig } from './config';

const dir = mkdtempSync(join(tmpdir(), 'kubeclient-'));

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; kubeconfig: (user: object) => KubeConfig }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const kubeconfig = (user: object) => {
    const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      path,
      stringify({
        clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${port}` } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return KubeConfig.fromFile(path);
  };
  return { server, kubeconfig };
}

describe('KubeClient', () => {
  it('keeps a character whole when a watch stream splits it between two chunks', async () => {
    const line = Buffer.from(
      `${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'm', annotations: { note: 'café ✓' } } } })}\n`,
    );
    const cut = line.indexOf(Buffer.from('é')) + 1; // inside the two bytes of é
    const { server, kubeconfig } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(line.subarray(0, cut));
      setTimeout(() => res.end(line.subarray(cut)), 50);
    });
    try {
      const seen: unknown[] = [];
      await new KubeClient(kubeconfig({ token: 't' })).watch('/api/v1/pods', {}, (_type, obj) => seen.push(obj)).done;
      expect(seen).toEqual([{ metadata: { name: 'm', annotations: { note: 'café ✓' } } }]);
    } finally {
      server.close();
    }
  });

  it('loads its credentials again and retries once when they are refused (401)', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'old\n');
    const seen: string[] = [];
    const { server, kubeconfig } = await serve((req, res) => {
      seen.push(req.headers.authorization ?? '');
      const ok = req.headers.authorization === 'Bearer new';
      res
        .writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' })
        .end(JSON.stringify(ok ? { kind: 'PodList', items: [] } : { kind: 'Status', reason: 'Unauthorized', message: 'Unauthorized' }));
    });
    try {
      const client = new KubeClient(kubeconfig({ tokenFile }));
      await expect(client.get('/api/v1/pods')).rejects.toMatchObject({ code: 401 }); // refused, and still refused after reading the file again
      expect(seen).toEqual(['Bearer old', 'Bearer old']);
      writeFileSync(tokenFile, 'new\n'); // rotated: within the minute the file is trusted, a 401 reads it again
      await expect(client.get('/api/v1/pods')).resolves.toEqual({ kind: 'PodList', items: [] });
      expect(seen).toEqual(['Bearer old', 'Bearer old', 'Bearer old', 'Bearer new']);
      // A caller's own token is the caller's: refused, it is not retried.
      await expect(client.request('GET', '/api/v1/pods', { bearerToken: 'caller' })).rejects.toMatchObject({ code: 401 });
      expect(seen).toHaveLength(5);
    } finally {
      server.close();
    }
  });
});
