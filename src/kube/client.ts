// A small JSON client for the Kubernetes API, on node:https with one keep-alive agent.
//
// Objects travel as the API server's own JSON: a generated client's models would drop any
// field they do not know, and a pod copied through them would lose fields added in newer
// Kubernetes releases. Credentials come from src/kube/config.ts.
import { type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { GROUP, PLURAL, VERSION } from '../api/types';
import { ApiError } from '../errors';
import { VERSION as OPERATOR_VERSION } from '../version';
import type { KubeConfig } from './config';

/**
 * Names this process to the API server, as client-go's does (binary/version (os/arch)):
 * audit logs show it, and managedFields name the operator's writes after it.
 */
export const USER_AGENT = `podmigration-operator/v${OPERATOR_VERSION} (${process.platform}/${process.arch}) node/${process.versions.node}`;

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  contentType?: string;
  timeoutMs?: number;
  /** Sent as the request's identity (the REST facade's callers), instead of the kubeconfig's. */
  bearerToken?: string;
}

/** A watch event: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, with its object. */
export type WatchHandler = (type: string, object: Record<string, unknown>) => void;

export class KubeClient {
  private readonly server: string;
  private agent?: { id: string; agent: Agent };
  private readonly recent = new Map<string, { at: number; answer: Promise<unknown> }>();

  constructor(
    readonly config: KubeConfig,
    private readonly userAgent = USER_AGENT,
  ) {
    this.server = config.cluster.server;
  }

  /**
   * One keep-alive agent for as long as the TLS material is the same (a rotated client
   * certificate makes a new one). A token goes in each request's header: it may rotate.
   */
  private keepAlive(cert?: Buffer, key?: Buffer): Agent | undefined {
    if (!this.server.startsWith('https:')) return undefined;
    const { ca, insecureSkipTLSVerify, tlsServerName } = this.config.cluster;
    const id = JSON.stringify([ca, cert, key].map((b) => b?.toString('base64')));
    if (this.agent?.id !== id) {
      this.agent?.agent.destroy();
      this.agent = {
        id,
        agent: new Agent({
          ca,
          cert,
          key,
          rejectUnauthorized: !insecureSkipTLSVerify,
          servername: tlsServerName,
          keepAlive: true,
          maxSockets: 32,
        }),
      };
    }
    return this.agent.agent;
  }

  /** Sends a request: the request, and its response once the headers are in. */
  private async send(
    method: string,
    path: string,
    opts: RequestOptions,
    body?: Buffer,
  ): Promise<{ req: ClientRequest; res: Promise<IncomingMessage> }> {
    const { cert, key, token } = await this.config.credentials();
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const bearer = opts.bearerToken ?? token;
    const headers: Record<string, string> = {
      ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}),
      Accept: 'application/json',
      'User-Agent': this.userAgent,
      ...(body ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': String(body.length) } : {}),
    };
    // A caller's token never rides on the operator's own client certificate.
    const agent = this.keepAlive(opts.bearerToken ? undefined : cert, opts.bearerToken ? undefined : key);
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    let req!: ClientRequest;
    const res = new Promise<IncomingMessage>((resolve, reject) => {
      req = send(url, { method, headers, agent }, resolve);
      req.on('error', reject);
      req.end(body);
    });
    return { req, res };
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    try {
      return await this.requestOnce<T>(method, path, opts);
    } catch (e) {
      // Refused credentials of its own (an exec plugin's token that was revoked, a rotated
      // token file): fetched again and tried once more, as client-go does.
      if (!(e instanceof ApiError) || e.code !== 401 || opts.bearerToken) throw e;
      this.config.invalidate();
      return this.requestOnce<T>(method, path, opts);
    }
  }

  private async requestOnce<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    // A Buffer is sent as it is: JSON serialized beforehand (Events waiting to be sent).
    const body = opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(JSON.stringify(opts.body));
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const { req, res } = await this.send(method, path, opts, body);
    const timer = setTimeout(() => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs}ms`)), timeoutMs);
    const { status, statusText, text } = await (async () => {
      const r = await res;
      const chunks: Buffer[] = [];
      for await (const c of r) chunks.push(c as Buffer);
      return { status: r.statusCode ?? 0, statusText: r.statusMessage ?? '', text: Buffer.concat(chunks).toString() };
    })().finally(() => clearTimeout(timer));
    const data = text ? safeJson(text) : undefined;
    if (status < 200 || status >= 300) throw apiError(status, statusText, data, text);
    return data as T;
  }

  /**
   * Watches a collection (`?watch=1`): calls `onEvent` for every event until the API server
   * ends the stream (resolves) or it fails (rejects); `abort` ends it from this side.
   */
  watch(path: string, query: Query, onEvent: WatchHandler): { done: Promise<void>; abort: () => void } {
    let request: ClientRequest | undefined;
    let aborted = false;
    const done = (async () => {
      const sent = await this.send('GET', path, { query: { ...query, watch: 1 } });
      request = sent.req;
      if (aborted) sent.req.destroy();
      const res = await sent.res;
      if ((res.statusCode ?? 0) !== 200) {
        if (res.statusCode === 401) this.config.invalidate();
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString();
        throw apiError(res.statusCode ?? 0, res.statusMessage ?? '', safeJson(text), text);
      }
      // Decoded as a stream: a character split between two chunks stays whole.
      res.setEncoding('utf8');
      let buffered = '';
      try {
        for await (const chunk of res) {
          buffered += chunk as string;
          let newline;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (!line) continue;
            const event = JSON.parse(line) as { type: string; object: Record<string, unknown> };
            onEvent(event.type, event.object);
          }
        }
      } catch (e) {
        if (!aborted) throw e;
      }
    })();
    return {
      done,
      abort: () => {
        aborted = true;
        request?.destroy();
      },
    };
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
  }
  /**
   * A GET answered from an answer (or a refusal, such as 404) at most `maxAgeMs` old, and
   * shared by callers that ask at the same time: for objects that many reconciles read
   * and none of them needs to the millisecond (a node's readiness, an optional API).
   */
  getRecent<T>(path: string, maxAgeMs: number): Promise<T> {
    const now = Date.now();
    const hit = this.recent.get(path);
    if (hit && now - hit.at < maxAgeMs) return hit.answer as Promise<T>;
    const answer = this.get<T>(path);
    this.recent.set(path, { at: now, answer });
    // A transient failure is not remembered; neither is anything once it is stale.
    answer.catch((e: unknown) => {
      if (!(e instanceof ApiError) || e.code >= 500 || e.code === 429) this.recent.delete(path);
    });
    if (this.recent.size > 1_000) for (const [k, v] of this.recent) if (now - v.at >= maxAgeMs) this.recent.delete(k);
    return answer;
  }
  create<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.request<T>('POST', path, { body, query });
  }
  replace<T>(path: string, body: T): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }
  delete<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('DELETE', path, { body });
  }
  mergePatch<T>(path: string, patch: unknown): Promise<T> {
    return this.request<T>('PATCH', path, { body: patch, contentType: 'application/merge-patch+json' });
  }
}

function apiError(status: number, statusText: string, data: unknown, text: string): ApiError {
  const s = (data ?? {}) as { reason?: string; message?: string; details?: { causes?: { type?: string }[] } };
  const causes = (s.details?.causes ?? []).flatMap((c) => (c.type ? [c.type] : []));
  return new ApiError(status, s.reason ?? statusText, s.message ?? (text || statusText), causes);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

/** Paths of the resources the operator uses. */
const migrationsBase = `/apis/${GROUP}/${VERSION}`;
export const paths = {
  migrations: (ns?: string) => (ns ? `${migrationsBase}/namespaces/${ns}/${PLURAL}` : `${migrationsBase}/${PLURAL}`),
  migration: (ns: string, name: string) => `${migrationsBase}/namespaces/${ns}/${PLURAL}/${encodeURIComponent(name)}`,
  migrationStatus: (ns: string, name: string) => `${paths.migration(ns, name)}/status`,
  pods: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods'),
  pod: (ns: string, name: string) => `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(name)}`,
  eviction: (ns: string, name: string) => `/api/v1/namespaces/${ns}/pods/${encodeURIComponent(name)}/eviction`,
  replicaSet: (ns: string, name: string) => `/apis/apps/v1/namespaces/${ns}/replicasets/${encodeURIComponent(name)}`,
  nodes: () => '/api/v1/nodes',
  node: (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`,
  pvcs: (ns: string) => `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
  pvc: (ns: string, name: string) => `/api/v1/namespaces/${ns}/persistentvolumeclaims/${encodeURIComponent(name)}`,
  events: (ns: string) => `/api/v1/namespaces/${ns}/events`,
  podMetrics: (ns: string, name: string) => `/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods/${encodeURIComponent(name)}`,
};
