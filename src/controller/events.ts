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
const microTime = (us: number) =>
  `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;

/** Events sent at once: the rest wait here, not in the HTTP agent ahead of the reconciles' requests. */
const SENDING = 8;
/** Events waiting beyond this are dropped (and counted in a log line), as client-go's broadcaster drops them. */
const MAX_WAITING = 10_000;

interface Pending {
  namespace: string;
  /** The Event, serialized (a few hundred bytes while it waits). */
  body: Buffer;
  /** For the log line, should it not be recorded. */
  about: { migration: string; phase: string; step: number; reason: string };
}

export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly instance: string,
  ) {}

  private readonly waiting: Pending[] = [];
  private sending = 0;
  private dropped = 0;
  private idle: (() => void)[] = [];

  /**
   * Records an Event without holding up the caller: its time (and so its place in the
   * order) is taken now, and it is sent in the background, a few at a time, so that the
   * reconciles' own requests never queue behind a burst of Events. A failure to record is
   * logged, never fatal.
   */
  record(pm: PodMigration, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (this.waiting.length >= MAX_WAITING) {
      if (this.dropped++ % 1000 === 0)
        this.log.warn({ dropped: this.dropped, waiting: this.waiting.length }, 'too many Events waiting to be sent; dropping some');
      return;
    }
    const { namespace, name } = pm.metadata;
    const us = nowMicros();
    this.waiting.push({
      namespace,
      about: { migration: `${namespace}/${name}`, phase: pm.status?.phase ?? 'Pending', step: pm.status?.step ?? 0, reason },
      body: Buffer.from(
        JSON.stringify({
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
        }),
      ),
    });
    this.pump();
  }

  /** Waits for the Events recorded so far to be sent (before the process exits). */
  async flush(): Promise<void> {
    if (this.sending === 0 && this.waiting.length === 0) return;
    await new Promise<void>((r) => this.idle.push(r));
  }

  private pump(): void {
    while (this.sending < SENDING && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      this.sending++;
      void this.send(next).finally(() => {
        this.sending--;
        this.pump();
        if (this.sending === 0 && this.waiting.length === 0) for (const r of this.idle.splice(0)) r();
      });
    }
  }

  private async send({ namespace, body, about }: Pending): Promise<void> {
    try {
      await this.client.create(`/apis/events.k8s.io/v1/namespaces/${namespace}/events`, body);
    } catch (e) {
      this.log.warn({ ...about, err: String(e) }, 'could not record event');
    }
  }
}
