// Measured usage from metrics.k8s.io, where the cluster serves it (metrics-server).
import type { ResourceFigures } from '../api/types';
import { ApiError } from '../errors';
import type { KubeClient } from '../kube/client';
import { paths } from '../kube/client';
import { parseQuantity, toFigures } from '../migration/resources';

interface PodMetrics {
  containers?: { name: string; usage: { cpu?: string; memory?: string } }[];
}

export type UsageReading = { available: true; figures: ResourceFigures } | { available: false; message: string };

/** Sum of the containers' current usage, or why there is none. Never invents numbers. */
export async function readUsage(client: KubeClient, namespace: string, podName: string): Promise<UsageReading> {
  try {
    const m = await client.get<PodMetrics>(paths.podMetrics(namespace, podName));
    let cpu = 0;
    let memory = 0;
    for (const c of m.containers ?? []) {
      cpu += parseQuantity(c.usage.cpu ?? '0');
      memory += parseQuantity(c.usage.memory ?? '0');
    }
    return { available: true, figures: toFigures({ cpu, memory }) };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    if (e.code === 404) {
      return { available: false, message: `metrics.k8s.io has no figures for pod ${podName} (the API is not served here, or the pod is too new)` };
    }
    if (e.code === 403) return { available: false, message: `reading metrics.k8s.io is forbidden: ${e.message}` };
    if (e.code === 503) return { available: false, message: `metrics.k8s.io is unavailable: ${e.message}` };
    throw e;
  }
}
