// Kubernetes quantities and the savings arithmetic. Pure functions.
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import type { ResourceFigures, Savings } from '../api/types';

const DECIMAL_SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};
const BINARY_SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Parses a Kubernetes quantity ("1500m", "0.5", "768Mi", "1e3") into a plain number. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(q.trim());
  if (!m) throw new Error(`invalid quantity ${JSON.stringify(q)}`);
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  const suffix = m[3] ?? '';
  return base * (BINARY_SUFFIX[suffix] ?? DECIMAL_SUFFIX[suffix]);
}

/** CPU cores -> "1500m" (whole millicores, rounded up as Kubernetes does). */
export function formatCpu(cores: number): string {
  return `${Math.ceil(Math.round(cores * 1e6) / 1e3)}m`;
}

/** Bytes -> the largest binary unit that states it exactly ("768Mi"), else bytes. */
export function formatMemory(bytes: number): string {
  const whole = Math.ceil(bytes);
  for (const unit of ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki']) {
    const size = BINARY_SUFFIX[unit];
    if (whole >= size && whole % size === 0) return `${whole / size}${unit}`;
  }
  return `${whole}`;
}

export interface Totals {
  cpu: number; // cores
  memory: number; // bytes
}

/** Sums the requests of the given containers. */
export function sumRequests(containers: readonly V1Container[]): Totals {
  return containers.map(requestsOf).reduce(add, { cpu: 0, memory: 0 });
}

function requestsOf(c: { resources?: { requests?: Record<string, string> } }): Totals {
  const req = c.resources?.requests ?? {};
  return { cpu: req.cpu !== undefined ? parseQuantity(req.cpu) : 0, memory: req.memory !== undefined ? parseQuantity(req.memory) : 0 };
}

const add = (a: Totals, b: Totals): Totals => ({ cpu: a.cpu + b.cpu, memory: a.memory + b.memory });

/**
 * What the pod requests of its node, computed as kube-scheduler does
 * (k8s.io/component-helpers/resource.PodRequests): the app containers and the restartable
 * init containers (sidecars) run together; each ordinary init container runs alone with
 * the sidecars started before it; the pod needs the larger of the two. Pod-level
 * requests (spec.resources), where set, replace that figure for their resource, and the
 * runtime class's overhead is added.
 */
export function podRequests(spec: Pick<V1PodSpec, 'containers' | 'initContainers' | 'resources' | 'overhead'>): Totals {
  const all = allRequests(spec);
  return { cpu: all.get('cpu') ?? 0, memory: all.get('memory') ?? 0 };
}

type Requests = Map<string, number>;

function requestMap(requests: Record<string, string> | undefined): Requests {
  return new Map(Object.entries(requests ?? {}).map(([k, v]) => [k, parseQuantity(v)]));
}

function combine(a: Requests, b: Requests, f: (x: number, y: number) => number): Requests {
  const out = new Map(a);
  for (const [k, v] of b) out.set(k, f(out.get(k) ?? 0, v));
  for (const k of a.keys()) if (!b.has(k)) out.set(k, f(a.get(k)!, 0));
  return out;
}
const plus = (a: Requests, b: Requests) => combine(a, b, (x, y) => x + y);
const larger = (a: Requests, b: Requests) => combine(a, b, Math.max);

/**
 * podRequests for every resource the pod requests (cpu, memory, ephemeral-storage,
 * extended resources such as nvidia.com/gpu), by the same rules.
 */
export function allRequests(spec: Pick<V1PodSpec, 'containers' | 'initContainers' | 'resources' | 'overhead'>): Requests {
  let running: Requests = new Map();
  for (const c of spec.containers ?? []) running = plus(running, requestMap(c.resources?.requests));
  let sidecars: Requests = new Map();
  let init: Requests = new Map();
  for (const c of spec.initContainers ?? []) {
    const req = requestMap(c.resources?.requests);
    if (c.restartPolicy === 'Always') {
      running = plus(running, req);
      sidecars = plus(sidecars, req);
      init = larger(init, sidecars);
    } else {
      init = larger(init, plus(req, sidecars));
    }
  }
  const total = larger(running, init);
  for (const [k, v] of requestMap(spec.resources?.requests)) total.set(k, v);
  return plus(total, requestMap(spec.overhead));
}

/** A quantity of `resource` as Kubernetes writes it: millicores, bytes in binary units, or a count. */
export function formatQuantity(resource: string, n: number): string {
  if (resource === 'cpu') return formatCpu(n);
  if (resource === 'memory' || resource === 'ephemeral-storage' || resource.startsWith('hugepages-')) return formatMemory(n);
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 1000) / 1000);
}

/** The figures of a pod spec: CPU and memory, its extended resources, and `devices` DRA devices. */
export function podFigures(
  spec: Pick<V1PodSpec, 'containers' | 'initContainers' | 'resources' | 'overhead'>,
  devices = 0,
): ResourceFigures {
  const all = allRequests(spec);
  const out: ResourceFigures = { cpu: formatCpu(all.get('cpu') ?? 0), memory: formatMemory(all.get('memory') ?? 0) };
  for (const [k, v] of [...all].sort(([a], [b]) => a.localeCompare(b))) if (k.includes('/') && v > 0) out[k] = formatQuantity(k, v);
  if (devices > 0) out.devices = devices;
  return out;
}

/** Extended resources and DRA devices in `original` that `optimized` no longer holds. */
export function devicesFreed(original: ResourceFigures, optimized: ResourceFigures): Pick<Savings, 'freed' | 'devices'> {
  const freed: Record<string, string> = {};
  for (const [k, v] of Object.entries(original)) {
    if (k === 'cpu' || k === 'memory' || v === undefined) continue;
    const n = parseQuantity(String(v)) - parseQuantity(String(optimized[k] ?? 0));
    if (n > 0) freed[k] = formatQuantity(k, n);
  }
  const names = Object.keys(freed).sort((a, b) => (a === 'devices' ? 1 : b === 'devices' ? -1 : a.localeCompare(b)));
  if (names.length === 0) return {};
  const words = names.map((k) => (k === 'devices' ? `${freed[k]} DRA device${freed[k] === '1' ? '' : 's'}` : `${freed[k]} ${k}`));
  return { freed, devices: words.join(', ') };
}

export function toFigures(t: Totals): { cpu: string; memory: string } {
  return { cpu: formatCpu(t.cpu), memory: formatMemory(t.memory) };
}

export function fromFigures(f: ResourceFigures): Totals {
  return { cpu: parseQuantity(f.cpu), memory: parseQuantity(f.memory) };
}

/** Percent saved, one decimal; undefined when there was nothing to save from. */
export function percentSaved(original: number, optimized: number): number | undefined {
  if (!(original > 0)) return undefined;
  return Math.round(((original - optimized) / original) * 1000) / 10;
}

export function savings(original: Totals, optimized: Totals): Savings {
  const cpuPercent = percentSaved(original.cpu, optimized.cpu);
  const memoryPercent = percentSaved(original.memory, optimized.memory);
  const show = (p: number | undefined) => (p === undefined ? 'n/a' : `${p.toFixed(1)}%`);
  return { cpuPercent, memoryPercent, cpu: show(cpuPercent), memory: show(memoryPercent), basis: 'requests' };
}
