// An in-memory API server for unit tests of the reconciler, the steps and the modes: objects
// by path, resourceVersions and their conflicts, UID preconditions, finalizers, label and
// field selectors, dry runs, the Eviction API, and a record of every call. What the rest of
// the cluster does (a kubelet, the scheduler, owners) is played by the test between
// reconciles, through `world`.
import { randomUUID } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { ApiError } from '../../src/errors';
import type { KubeClient, Query } from '../../src/kube/client';

type Obj = { apiVersion?: string; kind?: string; metadata: Record<string, any>; [k: string]: any };

export interface Call {
  verb: string;
  path: string;
  dryRun?: boolean;
}

const notFound = (path: string) => new ApiError(404, 'NotFound', `${path} not found`);

/** JSON merge patch (RFC 7386). */
function merge(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = { ...(target && typeof target === 'object' && !Array.isArray(target) ? target : {}) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out;
}

function matchesLabels(obj: Obj, selector?: string): boolean {
  if (!selector) return true;
  const labels = obj.metadata.labels ?? {};
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return v === undefined ? k in labels : labels[k] === v;
  });
}

function matchesFields(obj: Obj, selector?: string): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    const value = k.split('.').reduce((o: any, p) => o?.[p], obj);
    return value === v;
  });
}

export class FakeKube {
  readonly objects = new Map<string, Obj>();
  readonly calls: Call[] = [];
  private version = 1;
  /** The time the fake stamps objects with (the tests' clock). */
  now = () => new Date();
  /** Mutating admission for pods (the webhook's patch); called for creations and dry runs. */
  admitPod?: (pod: V1Pod, dryRun: boolean) => V1Pod | Promise<V1Pod>;
  /** The answer of the Eviction API for a pod: 'allow' deletes it. */
  eviction: (pod: V1Pod) => 'allow' | ApiError = () => 'allow';

  /** A KubeClient over this store. */
  get client(): KubeClient {
    return {
      get: (path: string, query?: Query) => this.read(path, query),
      getRecent: (path: string) => this.read(path),
      request: (_method: string, path: string, o?: { query?: Query }) => this.read(path, o?.query),
      create: (path: string, body: Obj, query?: Query) => this.create(path, body, query),
      replace: (path: string, body: Obj) => this.replace(path, body),
      mergePatch: (path: string, patch: Obj) => this.patch(path, patch),
      delete: (path: string, body?: Obj) => this.remove(path, body),
    } as unknown as KubeClient;
  }

  /** Puts an object in the store as it is (the test's own setup), with the server-set fields filled in. */
  put<T extends Obj>(path: string, obj: T): T & { metadata: { uid: string; resourceVersion: string } } {
    const stored = this.stamp(structuredClone(obj), obj.metadata.uid);
    this.objects.set(path, stored);
    return stored as T & { metadata: { uid: string; resourceVersion: string } };
  }

  at<T = Obj>(path: string): T | undefined {
    return this.objects.get(path) as T | undefined;
  }

  list<T = Obj>(collection: string, labelSelector?: string): T[] {
    return [...this.objects.entries()]
      .filter(([p, o]) => this.inCollection(p, collection) && matchesLabels(o, labelSelector))
      .map(([, o]) => o as T);
  }

  /** Changes an object as a controller would (status too), with a new resourceVersion. */
  update(path: string, change: (o: any) => void): void {
    const o = this.objects.get(path);
    if (!o) throw notFound(path);
    change(o);
    o.metadata.resourceVersion = String(++this.version);
  }

  /** Removes an object at once (a kubelet that confirmed the deletion, a controller's delete). */
  drop(path: string): void {
    this.objects.delete(path);
  }

  private stamp(o: Obj, uid?: string): Obj {
    o.metadata.uid ??= uid ?? randomUUID();
    o.metadata.resourceVersion = String(++this.version);
    o.metadata.creationTimestamp ??= this.now().toISOString();
    o.metadata.generation ??= 1;
    return o;
  }

  private inCollection(path: string, collection: string): boolean {
    if (!path.startsWith(`${collection}/`)) {
      // A cluster-wide list of a namespaced resource: /api/v1/pods holds /api/v1/namespaces/*/pods/*.
      const m = /^(\/apis?\/[^/]+(?:\/[^/]+)?)\/([a-z]+)$/.exec(collection);
      if (!m) return false;
      return new RegExp(`^${m[1]}/namespaces/[^/]+/${m[2]}/[^/]+$`).test(path);
    }
    return !path.slice(collection.length + 1).includes('/');
  }

  private async read(path: string, query?: Query): Promise<any> {
    this.calls.push({ verb: 'get', path });
    const o = this.objects.get(path);
    if (o) return structuredClone(o);
    const items = [...this.objects.entries()]
      .filter(
        ([p, x]) =>
          this.inCollection(p, path) &&
          matchesLabels(x, query?.labelSelector as string) &&
          matchesFields(x, query?.fieldSelector as string),
      )
      .map(([, x]) => structuredClone(x));
    if (items.length || /\/(pods|podmigrations|persistentvolumeclaims|resourceslices|events)$/.test(path))
      return { items, metadata: { resourceVersion: String(this.version) } };
    throw notFound(path);
  }

  private async create(path: string, body: Obj, query?: Query): Promise<any> {
    const dryRun = query?.dryRun === 'All';
    this.calls.push({ verb: 'create', path, ...(dryRun ? { dryRun } : {}) });
    if (path.endsWith('/eviction')) return this.evict(path.slice(0, -'/eviction'.length), body);
    let obj = structuredClone(body);
    obj.metadata ??= {};
    obj.metadata.name ??= `${obj.metadata.generateName ?? 'x-'}${randomUUID().slice(0, 5)}`;
    const ns = /\/namespaces\/([^/]+)\//.exec(`${path}/`)?.[1];
    if (ns) obj.metadata.namespace = ns;
    if (obj.kind === 'Pod' && this.admitPod) obj = (await this.admitPod(obj as V1Pod, dryRun)) as Obj;
    const at = `${path}/${obj.metadata.name}`;
    if (this.objects.has(at)) throw new ApiError(409, 'AlreadyExists', `${at} already exists`);
    this.stamp(obj);
    if (!dryRun) this.objects.set(at, obj);
    return structuredClone(obj);
  }

  private async replace(path: string, body: Obj): Promise<any> {
    this.calls.push({ verb: 'update', path });
    const status = path.endsWith('/status');
    const at = status ? path.slice(0, -'/status'.length) : path;
    const current = this.objects.get(at);
    if (!current) throw notFound(at);
    if (body.metadata?.resourceVersion && body.metadata.resourceVersion !== current.metadata.resourceVersion) {
      throw new ApiError(409, 'Conflict', `the object has been modified; please apply your changes to the latest version`);
    }
    const next = status
      ? { ...current, status: structuredClone(body.status) }
      : { ...structuredClone(body), metadata: { ...body.metadata, uid: current.metadata.uid } };
    next.metadata = { ...next.metadata, resourceVersion: String(++this.version) };
    this.objects.set(at, next);
    return structuredClone(next);
  }

  private async patch(path: string, patch: Obj): Promise<any> {
    this.calls.push({ verb: 'patch', path });
    const current = this.objects.get(path);
    if (!current) throw notFound(path);
    const rv = patch.metadata?.resourceVersion;
    if (rv && rv !== current.metadata.resourceVersion)
      throw new ApiError(409, 'Conflict', `the object has been modified; please apply your changes to the latest version`);
    const next = merge(current, patch) as Obj;
    next.metadata.resourceVersion = String(++this.version);
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers ?? []).length) this.objects.delete(path);
    else this.objects.set(path, next);
    return structuredClone(next);
  }

  private async remove(path: string, body?: Obj): Promise<any> {
    this.calls.push({ verb: 'delete', path });
    const current = this.objects.get(path);
    if (!current) throw notFound(path);
    const uid = body?.preconditions?.uid;
    if (uid && uid !== current.metadata.uid)
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata.uid}`);
    if ((current.metadata.finalizers ?? []).length) {
      current.metadata.deletionTimestamp ??= this.now().toISOString();
      current.metadata.resourceVersion = String(++this.version);
    } else this.objects.delete(path);
    return {};
  }

  private async evict(podPath: string, body: Obj): Promise<any> {
    const pod = this.objects.get(podPath);
    if (!pod) throw notFound(podPath);
    const uid = body.deleteOptions?.preconditions?.uid;
    if (uid && uid !== pod.metadata.uid)
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${pod.metadata.uid}`);
    const answer = this.eviction(pod as V1Pod);
    if (answer !== 'allow') throw answer;
    await this.remove(podPath);
    return {};
  }
}
