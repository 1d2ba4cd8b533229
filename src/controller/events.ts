// Kubernetes Events on a PodMigration, shown by `kubectl describe`. Written as
// events.k8s.io/v1 Events with a microsecond eventTime (which `kubectl events` sorts by),
// named like client-go names them, <object>.<hex time>, so that names sort as the events
// happened: `kubectl describe` sorts only by whole-second timestamps and leaves ties in
// the order the API lists them, by name.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import type { KubeClient } from '../kube/client';

export const COMPONENT = 'migration.ai-storage.io/podmigration-controller';

/** Microseconds since the epoch, strictly increasing in this process. */
let last = 0;
function nowMicros(): number {
  last = Math.max(Date.now() * 1000, last + 1);
  return last;
}

/** RFC 3339 with microseconds, as the MicroTime type wants. */
const microTime = (us: number) => `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;

export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly instance: string,
  ) {}

  private readonly sending = new Set<Promise<void>>();

  /**
   * Records an Event without holding up the caller: its time (and so its place in the
   * order) is taken now, and it is sent in the background. A failure to record is logged,
   * never fatal.
   */
  record(pm: PodMigration, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const sent = this.send(pm, type, reason, message);
    this.sending.add(sent);
    void sent.finally(() => this.sending.delete(sent));
  }

  /** Waits for the Events being sent (before the process exits). */
  async flush(): Promise<void> {
    await Promise.all([...this.sending]);
  }

  private async send(pm: PodMigration, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const { namespace, name } = pm.metadata;
    const us = nowMicros();
    const event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${name}.${us.toString(16).padStart(14, '0')}${randomBytes(2).toString('hex')}`, namespace },
      eventTime: microTime(us),
      reportingController: COMPONENT,
      reportingInstance: this.instance.slice(0, 128),
      action: reason,
      reason,
      note: message.slice(0, 1024),
      type,
      regarding: {
        apiVersion: pm.apiVersion,
        kind: pm.kind,
        name,
        namespace,
        uid: pm.metadata.uid,
        resourceVersion: pm.metadata.resourceVersion,
      },
    };
    try {
      await this.client.create(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`, event);
    } catch (e) {
      this.log.warn(
        { migration: `${namespace}/${name}`, phase: pm.status?.phase ?? 'Pending', step: pm.status?.step ?? 0, err: String(e), reason },
        'could not record event',
      );
    }
  }
}
