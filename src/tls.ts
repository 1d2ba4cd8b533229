// HTTPS servers whose key pair is read from a directory (tls.crt and tls.key, as a mounted
// kubernetes.io/tls Secret holds them) and read again whenever a file there changes, so a
// certificate renewed in place (cert-manager) is served without a restart.
import { readFileSync, watch } from 'node:fs';
import type { RequestListener } from 'node:http';
import { type Server, createServer } from 'node:https';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { issue } from './certificates';

export interface KeyPair {
  cert: string;
  key: string;
}

const context = (p: KeyPair) => ({ cert: p.cert, key: p.key, minVersion: 'TLSv1.2' as const });

export function readKeyPair(dir: string): KeyPair {
  return { cert: readFileSync(join(dir, 'tls.crt'), 'utf8'), key: readFileSync(join(dir, 'tls.key'), 'utf8') };
}

/** A certificate for localhost signed by a CA of its own, made now and kept in memory (controller-runtime's default for metrics). */
export async function selfIssued(name: string): Promise<KeyPair> {
  const { cert, key } = await issue(['localhost', '127.0.0.1'], `${name}-ca`);
  return { cert, key };
}

/**
 * An HTTPS server with the key pair `source` names: a directory, watched until the server
 * closes (a pair that cannot be read, or whose halves do not match yet, leaves the one in
 * use), or the pair itself.
 */
export function httpsServer(source: string | KeyPair, log: Logger, listener: RequestListener): Server {
  if (typeof source !== 'string') return createServer(context(source), listener);
  const dir = source;
  let current = readKeyPair(dir);
  const server = createServer(context(current), listener);
  const watcher = watch(dir, () => {
    try {
      const next = readKeyPair(dir);
      if (next.cert === current.cert && next.key === current.key) return;
      server.setSecureContext(context(next));
      current = next;
      log.info({ dir }, 'reloaded the serving certificate');
    } catch (e) {
      log.warn({ dir, err: String(e) }, 'could not reload the serving certificate; serving the one before');
    }
  });
  server.once('close', () => watcher.close());
  return server;
}
