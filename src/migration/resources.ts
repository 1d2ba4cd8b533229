// Kubernetes quantities and the savings arithmetic. Pure functions.
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import type { ResourceFigures, Savings } from '../api/types';

const DECIMAL_SUFFIX: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};
const BINARY_SUFFIX: Record<string, number> = {
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
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
const max = (a: Totals, b: Totals): Totals => ({ cpu: Math.max(a.cpu, b.cpu), memory: Math.max(a.memory, b.memory) });

/**
 * What the pod requests of its node, computed as kube-scheduler does
 * (k8s.io/component-helpers/resource.PodRequests): the app containers and the restartable
 * init containers (sidecars) run together; each ordinary init container runs alone with
 * the sidecars started before it; the pod needs the larger of the two. Pod-level
 * requests (spec.resources), where set, replace that figure for their resource, and the
 * runtime class's overhead is added.
 */
export function podRequests(spec: Pick<V1PodSpec, 'containers' | 'initContainers' | 'resources' | 'overhead'>): Totals {
  let running = sumRequests(spec.containers ?? []);
  let sidecars: Totals = { cpu: 0, memory: 0 };
  let init: Totals = { cpu: 0, memory: 0 };
  for (const c of spec.initContainers ?? []) {
    const req = requestsOf(c);
    if (c.restartPolicy === 'Always') {
      running = add(running, req);
      sidecars = add(sidecars, req);
      init = max(init, sidecars);
    } else {
      init = max(init, add(req, sidecars));
    }
  }
  const total = max(running, init);
  const podLevel = spec.resources?.requests ?? {};
  if (podLevel.cpu !== undefined) total.cpu = parseQuantity(podLevel.cpu);
  if (podLevel.memory !== undefined) total.memory = parseQuantity(podLevel.memory);
  return add(total, requestsOf({ resources: { requests: spec.overhead } }));
}

export function toFigures(t: Totals): ResourceFigures {
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
