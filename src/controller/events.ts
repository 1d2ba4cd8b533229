// Kubernetes Events on a PodMigration, shown by `kubectl describe`.
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import type { KubeClient } from '../kube/client';
import { paths } from '../kube/client';

export const COMPONENT = 'podmigration-controller';

export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly instance: string,
  ) {}

  /** Records an Event; a failure to record is logged, never fatal. */
  async record(pm: PodMigration, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${pm.metadata.name}.${randomBytes(8).toString('hex')}`, namespace: pm.metadata.namespace },
      involvedObject: {
        apiVersion: pm.apiVersion,
        kind: pm.kind,
        name: pm.metadata.name,
        namespace: pm.metadata.namespace,
        uid: pm.metadata.uid,
        resourceVersion: pm.metadata.resourceVersion,
      },
      reason,
      message: message.slice(0, 1024),
      type,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: this.instance,
    } as unknown as CoreV1Event;
    try {
      await this.client.create(paths.events(pm.metadata.namespace), event);
    } catch (e) {
      const { namespace, name } = pm.metadata;
      this.log.warn(
        { migration: `${namespace}/${name}`, phase: pm.status?.phase ?? 'Pending', step: pm.status?.step ?? 0, err: String(e), reason },
        'could not record event',
      );
    }
  }
}
