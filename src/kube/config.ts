// Where the API server is and who the operator is to it: a kubeconfig file, or the
// in-cluster ServiceAccount. What client-go's rest.Config covers for an operator: the
// server, its CA (or insecure-skip-tls-verify) and TLS server name; a client certificate,
// a bearer token, a token file (re-read, since the kubelet rotates projected tokens), or an
// exec credential plugin (client.authentication.k8s.io, as EKS, GKE and AKS use), cached
// until it expires. Legacy auth-provider entries and proxies are refused with a message.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

export interface Cluster {
  server: string;
  ca?: Buffer;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
}

/** What a request presents: a client certificate, or a bearer token. */
export interface Credentials {
  cert?: Buffer;
  key?: Buffer;
  token?: string;
}

interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
}

interface User {
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  token?: string;
  tokenFile?: string;
  exec?: ExecConfig;
  'auth-provider'?: { name?: string };
  username?: string;
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A token file is read again after this long (client-go: at most once a minute). */
const TOKEN_FILE_TTL_MS = 60_000;

export class KubeConfigError extends Error {}

export class KubeConfig {
  private cached?: { until: number; credentials: Credentials };
  private pending?: Promise<Credentials>;

  private constructor(
    readonly cluster: Cluster,
    private readonly user: User,
    /** Where relative paths in the user entry are resolved from. */
    private readonly base: string,
  ) {}

  /** The current context of a kubeconfig file (or the one named). */
  static fromFile(path: string, context?: string): KubeConfig {
    const doc = parse(readFileSync(path, 'utf8')) as {
      'current-context'?: string;
      contexts?: { name: string; context: { cluster: string; user?: string } }[];
      clusters?: { name: string; cluster: Record<string, unknown> }[];
      users?: { name: string; user: User }[];
    };
    const name = context ?? doc['current-context'];
    const ctx = doc.contexts?.find((c) => c.name === name)?.context;
    if (!ctx) throw new KubeConfigError(`${path}: no context ${JSON.stringify(name ?? '')}`);
    const c = doc.clusters?.find((x) => x.name === ctx.cluster)?.cluster;
    if (!c) throw new KubeConfigError(`${path}: no cluster ${JSON.stringify(ctx.cluster)}`);
    const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
    const base = dirname(path);
    if (c['proxy-url']) throw new KubeConfigError(`${path}: proxy-url is not supported; reach the API server directly`);
    if (user['auth-provider']) {
      throw new KubeConfigError(
        `${path}: auth-provider ${user['auth-provider'].name ?? ''} is not supported (it was removed from kubectl too); use an exec credential plugin`,
      );
    }
    const file = (p: unknown) => readFileSync(isAbsolute(String(p)) ? String(p) : join(base, String(p)));
    const cluster: Cluster = {
      server: String(c.server ?? '').replace(/\/+$/, ''),
      ca: c['certificate-authority-data']
        ? Buffer.from(String(c['certificate-authority-data']), 'base64')
        : c['certificate-authority']
          ? file(c['certificate-authority'])
          : undefined,
      insecureSkipTLSVerify: c['insecure-skip-tls-verify'] === true,
      tlsServerName: c['tls-server-name'] ? String(c['tls-server-name']) : undefined,
    };
    if (!cluster.server) throw new KubeConfigError(`${path}: cluster ${ctx.cluster} has no server`);
    return new KubeConfig(cluster, user, base);
  }

  /** The pod's ServiceAccount, as the kubelet mounts it. */
  static inCluster(dir = SERVICE_ACCOUNT, env: NodeJS.ProcessEnv = process.env): KubeConfig {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT;
    if (!host || !port) throw new KubeConfigError('not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); give --kubeconfig');
    const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return new KubeConfig({ server, ca: readFileSync(join(dir, 'ca.crt')) }, { tokenFile: join(dir, 'token') }, dir);
  }

  /** The same cluster with no identity: each request brings its own token (the REST facade). */
  anonymous(): KubeConfig {
    return new KubeConfig(this.cluster, {}, this.base);
  }

  /** The credentials to present now (a token file re-read, an exec plugin run, when due). */
  async credentials(): Promise<Credentials> {
    const now = Date.now();
    if (this.cached && now < this.cached.until) return this.cached.credentials;
    this.pending ??= this.load().finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** Forgets the credentials: the API server refused them (401); the next request loads them again. */
  invalidate(): void {
    this.cached = undefined;
  }

  private async load(): Promise<Credentials> {
    const u = this.user;
    const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(this.base, p));
    const now = Date.now();
    let credentials: Credentials = {};
    let until = Number.POSITIVE_INFINITY;
    if (u.exec) {
      const e = await runExec(u.exec);
      credentials = { token: e.token, cert: e.cert, key: e.key };
      // Run again a little before it expires; one that does not say is kept until the API
      // server refuses it (invalidate), as client-go keeps it.
      until = e.expires ? e.expires - 10_000 : Number.POSITIVE_INFINITY;
    } else if (u.tokenFile) {
      credentials = { token: file(u.tokenFile).toString('utf8').trim() };
      until = now + TOKEN_FILE_TTL_MS;
    } else if (u.token) {
      credentials = { token: u.token };
    }
    const cert = u['client-certificate-data']
      ? Buffer.from(u['client-certificate-data'], 'base64')
      : u['client-certificate']
        ? file(u['client-certificate'])
        : undefined;
    const key = u['client-key-data'] ? Buffer.from(u['client-key-data'], 'base64') : u['client-key'] ? file(u['client-key']) : undefined;
    if (cert && key) credentials = { ...credentials, cert: credentials.cert ?? cert, key: credentials.key ?? key };
    this.cached = { until, credentials };
    return credentials;
  }
}

/** Runs a client.authentication.k8s.io exec plugin and reads its ExecCredential. */
function runExec(c: ExecConfig): Promise<{ token?: string; cert?: Buffer; key?: Buffer; expires?: number }> {
  const apiVersion = c.apiVersion ?? 'client.authentication.k8s.io/v1';
  const info = JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } });
  const env = { ...process.env, KUBERNETES_EXEC_INFO: info, ...Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value])) };
  return new Promise((resolve, reject) => {
    execFile(c.command, c.args ?? [], { env, timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new KubeConfigError(`exec credential plugin ${c.command} failed: ${stderr.trim() || err.message}`));
      try {
        const s =
          (
            JSON.parse(stdout) as {
              status?: { token?: string; clientCertificateData?: string; clientKeyData?: string; expirationTimestamp?: string };
            }
          ).status ?? {};
        if (!s.token && !(s.clientCertificateData && s.clientKeyData)) throw new Error('no token and no client certificate in its status');
        resolve({
          token: s.token,
          cert: s.clientCertificateData ? Buffer.from(s.clientCertificateData) : undefined,
          key: s.clientKeyData ? Buffer.from(s.clientKeyData) : undefined,
          expires: s.expirationTimestamp ? Date.parse(s.expirationTimestamp) : undefined,
        });
      } catch (e) {
        reject(new KubeConfigError(`exec credential plugin ${c.command} answered no usable ExecCredential: ${(e as Error).message}`));
      }
    });
  });
}
