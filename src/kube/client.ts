// A small JSON client for the Kubernetes API.
//
// Objects travel as the API server's own JSON. client-node's generated typed APIs
// deserialize into model classes and silently drop any field their models do not know;
// copying a pod through them would lose fields added in newer Kubernetes releases. The
// KubeConfig (credentials, TLS) and the Watch/informer machinery are client-node's.
import type { KubeConfig } from '@kubernetes/client-node';
import { Agent, type RequestOptions as HttpsRequestOptions } from 'node:https';
import fetch, { type RequestInit } from 'node-fetch';
import { GROUP, PLURAL, VERSION } from '../api/types';
import { ApiError } from '../errors';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  contentType?: string;
  timeoutMs?: number;
}

export class KubeClient {
  private readonly server: string;
  private agent?: { id: string; agent: Agent };

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/+$/, '');
  }

  /**
   * Credentials and headers as client-node computes them for each request (tokens may
   * rotate), but one keep-alive agent for as long as the TLS material is the same:
   * client-node makes a new agent, and so a new TLS connection, for every request.
   */
  private async requestInit(): Promise<RequestInit> {
    const tls: HttpsRequestOptions = {};
    const init = (await this.kc.applyToFetchOptions(tls)) as RequestInit;
    if (this.kc.getCurrentCluster()?.proxyUrl || !this.server.startsWith('https:')) return init;
    const { ca, cert, key, rejectUnauthorized, servername } = tls;
    const id = JSON.stringify([ca, cert, key, rejectUnauthorized, servername].map((v) => (Buffer.isBuffer(v) ? v.toString() : v)));
    if (this.agent?.id !== id) {
      this.agent?.agent.destroy();
      this.agent = { id, agent: new Agent({ ca, cert, key, rejectUnauthorized, servername, keepAlive: true, maxSockets: 32 }) };
    }
    return { ...init, agent: this.agent.agent };
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const init = await this.requestInit();
    const headers = init.headers as import('node-fetch').Headers;
    headers.set('Accept', 'application/json');
    if (opts.body !== undefined) headers.set('Content-Type', opts.contentType ?? 'application/json');
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), opts.timeoutMs ?? 30_000);
    try {
      const res = await fetch(url.toString(), {
        ...init,
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: controller.signal as RequestInit['signal'],
      });
      const text = await res.text();
      const data = text ? safeJson(text) : undefined;
      if (!res.ok) {
        const status = (data ?? {}) as { reason?: string; message?: string; details?: { causes?: { type?: string }[] } };
        const causes = (status.details?.causes ?? []).flatMap((c) => (c.type ? [c.type] : []));
        throw new ApiError(res.status, status.reason ?? res.statusText, status.message ?? (text || res.statusText), causes);
      }
      return data as T;
    } finally {
      clearTimeout(timer);
    }
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, { query });
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
