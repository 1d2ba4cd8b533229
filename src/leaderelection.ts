// Leader election on a coordination.k8s.io/v1 Lease, in the manner of client-go's
// leaderelection: acquire when the lease is free or expired, renew every retry period,
// give up leadership if it cannot be renewed within the renew deadline, and release it
// on shutdown so a standby takes over at once.
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
      const ok = await this.tryAcquireOrRenew().catch(() => false);
      if (ok) this.lastRenew = Date.now();
      if (!ok && Date.now() - this.lastRenew > this.o.renewDeadlineSeconds * 1000) {
        this.leading = false;
        this.o.log.error({ lease: `${this.o.namespace}/${this.o.name}` }, 'lost leadership');
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

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    let lease: V1Lease | undefined;
    try {
      lease = await this.o.client.get<V1Lease>(this.path);
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
        await this.o.client.create(this.path.replace(/\/[^/]+$/, ''), {
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
    const holder = spec.holderIdentity;
    const expires = Date.parse(String(spec.renewTime ?? 0)) + (spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder && holder !== this.o.identity && expires > now.getTime()) return false;
    const taking = holder !== this.o.identity;
    try {
      await this.o.client.replace(this.path, {
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
