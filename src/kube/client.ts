// A small JSON client for the Kubernetes API.
//
// Objects travel as the API server's own JSON. client-node's generated typed APIs
// deserialize into model classes and silently drop any field their models do not know;
// copying a pod through them would lose fields added in newer Kubernetes releases. The
// KubeConfig (credentials, TLS) and the Watch/informer machinery are client-node's.
import type { KubeConfig } from '@kubernetes/client-node';
import { request as httpRequest } from 'node:http';
import { Agent, type RequestOptions as HttpsRequestOptions, request as httpsRequest } from 'node:https';
import { GROUP, PLURAL, VERSION } from '../api/types';
import { ApiError } from '../errors';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  contentType?: string;
  timeoutMs?: number;
  /** Sent as the request's identity (the REST facade's callers), instead of the kubeconfig's. */
  bearerToken?: string;
}

export class KubeClient {
  private readonly server: string;
  private agent?: { id: string; agent: Agent };
  private readonly recent = new Map<string, { at: number; answer: Promise<unknown> }>();

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
  }

  /**
   * One keep-alive agent for as long as the TLS material is the same (client-node makes a
   * new agent, and so a new TLS connection, for every request). Credentials and headers
   * are still taken from client-node per request: tokens may rotate.
   */
  private keepAlive(tls: HttpsRequestOptions): Agent | undefined {
    if (this.kc.getCurrentCluster()?.proxyUrl || !this.server.startsWith('https:')) return undefined;
    const { ca, cert, key, rejectUnauthorized, servername } = tls;
    const id = JSON.stringify([ca, cert, key, rejectUnauthorized, servername].map((v) => (Buffer.isBuffer(v) ? v.toString() : v)));
    if (this.agent?.id !== id) {
      this.agent?.agent.destroy();
      this.agent = { id, agent: new Agent({ ca, cert, key, rejectUnauthorized, servername, keepAlive: true, maxSockets: 32 }) };
    }
    return this.agent.agent;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const tls: HttpsRequestOptions = {};
    await this.kc.applyToHTTPSOptions(tls);
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = {
      ...(tls.headers as Record<string, string> | undefined),
      ...(opts.bearerToken ? { Authorization: `Bearer ${opts.bearerToken}` } : {}),
      Accept: 'application/json',
      ...(body ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': String(body.length) } : {}),
    };
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const { status, statusText, text } = await new Promise<{ status: number; statusText: string; text: string }>((resolve, reject) => {
      const req = send(url, { method, headers, agent: this.keepAlive(tls) ?? tls.agent, auth: tls.auth }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      const timer = setTimeout(() => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs}ms`)), timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end(body);
    });
    const data = text ? safeJson(text) : undefined;
    if (status < 200 || status >= 300) {
      const s = (data ?? {}) as { reason?: string; message?: string; details?: { causes?: { type?: string }[] } };
      const causes = (s.details?.causes ?? []).flatMap((c) => (c.type ? [c.type] : []));
      throw new ApiError(status, s.reason ?? statusText, s.message ?? (text || statusText), causes);
    }
    return data as T;
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
  node: (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`,
  pvcs: (ns: string) => `/api/v1/namespaces/${ns}/persistentvolumeclaims`,
  pvc: (ns: string, name: string) => `/api/v1/namespaces/${ns}/persistentvolumeclaims/${encodeURIComponent(name)}`,
  events: (ns: string) => `/api/v1/namespaces/${ns}/events`,
  podMetrics: (ns: string, name: string) => `/apis/metrics.k8s.io/v1beta1/namespaces/${ns}/pods/${encodeURIComponent(name)}`,
};
