import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import pino from 'pino';
import { type ServingCert, issue } from './certificates';
import { httpsServer } from './tls';

/** The certificate the server at 127.0.0.1:port presents, checked against `ca`. */
function served(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(new X509Certificate(socket.getPeerX509Certificate()!.raw).fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

async function eventually<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined || i >= 60) return v as T;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('httpsServer from a certificate directory', () => {
  let dir: string;
  let server: Server;
  let port: number;
  let first: ServingCert;
  let second: ServingCert;
  const write = (c: ServingCert) => {
    writeFileSync(join(dir, 'tls.crt'), c.cert);
    writeFileSync(join(dir, 'tls.key'), c.key);
  };
  const fingerprint = (c: ServingCert) => new X509Certificate(c.cert).fingerprint256;

  beforeAll(async () => {
    [first, second] = await Promise.all([issue(['localhost']), issue(['localhost'])]);
    dir = mkdtempSync(join(tmpdir(), 'tls-test-'));
    write(first);
    server = httpsServer(dir, pino({ level: 'silent' }), (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the pair in the directory, and the new one once the files are replaced', async () => {
    expect(await served(port, first.ca)).toBe(fingerprint(first));
    write(second);
    expect(await eventually(async () => ((await served(port, second.ca)) === fingerprint(second) ? true : undefined))).toBe(true);
  });

  it('keeps serving the pair in use while the files hold no valid pair', async () => {
    writeFileSync(join(dir, 'tls.key'), first.key); // halves that do not match
    await new Promise((r) => setTimeout(r, 200));
    expect(await served(port, second.ca)).toBe(fingerprint(second));
    write(first);
    expect(await eventually(async () => ((await served(port, first.ca)) === fingerprint(first) ? true : undefined))).toBe(true);
  });
});
