// Measured usage from metrics.k8s.io, where the cluster serves it (metrics-server).
import type { UsageFigures } from '../api/types';
import { ApiError } from '../errors';
import type { KubeClient } from '../kube/client';
import { paths } from '../kube/client';
import { parseQuantity, toFigures } from '../migration/resources';

interface PodMetrics {
  containers?: { name: string; usage: { cpu?: string; memory?: string } }[];
}

export type UsageReading = { available: true; figures: UsageFigures } | { available: false; message: string };

/** How long an answer to whether the cluster serves metrics.k8s.io is trusted. */
const SERVED_TTL_MS = 5 * 60_000;

/** Whether the cluster serves metrics.k8s.io: one request every 5 minutes, shared by every migration. */
async function metricsServed(client: KubeClient): Promise<boolean> {
  try {
    await client.getRecent('/apis/metrics.k8s.io/v1beta1', SERVED_TTL_MS);
    return true;
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    // Otherwise (forbidden, unavailable) the pod's own request says what is wrong.
    return e.code !== 404;
  }
}

const NOT_SERVED: UsageReading = {
  available: false,
  message: 'metrics.k8s.io is not served by this cluster (no metrics-server): usage is not recorded',
};

/**
 * Sum of the containers' current usage, or why there is none. Never invents numbers. A
 * cluster that does not serve metrics.k8s.io (looked up once every 5 minutes) is not
 * asked for every pod.
 */
export async function readUsage(client: KubeClient, namespace: string, podName: string): Promise<UsageReading> {
  if (!(await metricsServed(client))) return NOT_SERVED;
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
    if (e.code === 404) return { available: false, message: `metrics.k8s.io has no figures for pod ${podName} yet (it is too new)` };
    if (e.code === 403) return { available: false, message: `reading metrics.k8s.io is forbidden: ${e.message}` };
    if (e.code === 503) return { available: false, message: `metrics.k8s.io is unavailable: ${e.message}` };
    throw e;
  }
}
