// Leader election on a coordination.k8s.io/v1 Lease, in the manner of client-go's
// leaderelection: acquire when the lease is free or expired, renew every retry period,
// give up leadership if it cannot be renewed within the renew deadline, and release it
// on shutdown so a standby takes over at once.
//
// As in client-go, a lease counts as expired only when this process has seen the record
// unchanged for a whole lease duration by its own clock: the holder's renewTime, written by
// another machine's clock, is never compared with ours, so clock skew cannot make two
// leaders. No request may outlive the renew deadline, so a renewal that hangs ends
// leadership (renew deadline < lease duration) before a standby can take the lease.
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isAlreadyExists, isConflict, isNotFound } from './errors';
import type { KubeClient } from './kube/client';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  log: Logger;
}

const micro = (d: Date) => d.toISOString().replace('Z', '000Z');

export class LeaderElector {
  private stopped = false;
  private leading = false;
  private lastRenew = 0;
  private timer?: NodeJS.Timeout;
  /** The lease record as last seen, and when (by this process's clock) it last changed. */
  private observedRecord = '';
  private observedTime = 0;

  constructor(private readonly o: LeaderElectionOptions) {}

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases/${this.o.name}`;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Resolves once this process holds the lease; calls onLost if it ever loses it. */
  async acquire(onLost: () => void): Promise<void> {
    for (;;) {
      if (this.stopped) throw new Error('leader election stopped');
      if (await this.tryAcquireOrRenew()) break;
      await sleep(this.o.retryPeriodSeconds * 1000);
    }
    this.leading = true;
    this.lastRenew = Date.now();
    this.o.log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
    const renew = async () => {
      if (this.stopped) return;
      const left = this.lastRenew + this.o.renewDeadlineSeconds * 1000 - Date.now();
      const ok = left > 0 && (await this.tryAcquireOrRenew(left).catch(() => false));
      if (ok) this.lastRenew = Date.now();
      else if (Date.now() - this.lastRenew >= this.o.renewDeadlineSeconds * 1000) {
        this.leading = false;
        this.o.log.error(
          { lease: `${this.o.namespace}/${this.o.name}`, renewDeadlineSeconds: this.o.renewDeadlineSeconds },
          'lost leadership: the lease was not renewed within the renew deadline',
        );
        onLost();
        return;
      }
      this.timer = setTimeout(renew, this.o.retryPeriodSeconds * 1000);
    };
    this.timer = setTimeout(renew, this.o.retryPeriodSeconds * 1000);
  }

  /** Stops renewing and, if leading, hands the lease back. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.o.client.get<V1Lease>(this.path);
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      await this.o.client.replace(this.path, {
        ...lease,
        spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: micro(new Date()) },
      });
      this.o.log.info({ lease: `${this.o.namespace}/${this.o.name}` }, 'released leadership');
    } catch (e) {
      this.o.log.warn({ err: String(e) }, 'could not release the lease');
    }
  }

  private async tryAcquireOrRenew(timeoutMs = this.o.renewDeadlineSeconds * 1000): Promise<boolean> {
    const now = new Date();
    const request = <T>(method: string, path: string, body?: unknown) => this.o.client.request<T>(method, path, { body, timeoutMs });
    let lease: V1Lease | undefined;
    try {
      lease = await request<V1Lease>('GET', this.path);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const mine = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      renewTime: micro(now),
    };
    if (!lease) {
      try {
        await request('POST', this.path.replace(/\/[^/]+$/, ''), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: { ...mine, acquireTime: micro(now), leaseTransitions: 0 },
        });
        return true;
      } catch (e) {
        if (isAlreadyExists(e)) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([
      spec.holderIdentity,
      spec.renewTime,
      spec.acquireTime,
      spec.leaseDurationSeconds,
      spec.leaseTransitions,
    ]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedTime = Date.now();
    }
    const holder = spec.holderIdentity;
    const expires = this.observedTime + (spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== this.o.identity && expires > Date.now()) return false;
    const taking = holder !== this.o.identity;
    try {
      await request('PUT', this.path, {
        ...lease,
        spec: {
          ...spec,
          ...mine,
          ...(taking ? { acquireTime: micro(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
        },
      });
      return true;
    } catch (e) {
      if (isConflict(e)) return false;
      throw e;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
