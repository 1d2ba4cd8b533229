// The webhook is called only while a Steer migration waits on an owner: its configuration's
// matchCondition `armed-owners` names the UIDs of those owners, and is `false` at rest, so
// that the API server calls the webhook for no pod at all (a hung operator slows nothing).
// The leader arms an owner before it evicts the owner's pod, and disarms it once the
// replacement is steered or the migration ends.
import type { Logger } from 'pino';
import type { PodMigration } from '../api/types';
import { isConflict } from '../errors';
import type { KubeClient } from '../kube/client';
import type { Arming } from '../migration/context';
import { waitsForReplacement } from './steer';

export const ARMED_CONDITION = 'armed-owners';

/** The CEL expression that matches pods controlled by one of these owners (none: `false`). */
export function armedExpression(ownerUids: Iterable<string>): string {
  const uids = [...new Set(ownerUids)].filter((u) => /^[0-9A-Za-z-]+$/.test(u)).sort();
  if (uids.length === 0) return 'false';
  return (
    'has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, ' +
    `has(r.controller) && r.controller && r.uid in [${uids.map((u) => `'${u}'`).join(', ')}])`
  );
}

interface WebhookConfiguration {
  metadata: { resourceVersion?: string };
  webhooks?: { name: string; matchConditions?: { name: string; expression: string }[] }[];
}

export class WebhookArming implements Arming {
  /** Migration (namespace/name) -> the owner UID it waits on. */
  private readonly armed = new Map<string, string>();
  private last = Promise.resolve();

  constructor(private readonly o: { client: KubeClient; configName: string; log: Logger }) {}

  private get path(): string {
    return `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${this.o.configName}`;
  }

  /** What the migrations in the cache wait on, once this process leads (after a restart, say). */
  async seed(migrations: readonly PodMigration[]): Promise<void> {
    this.armed.clear();
    for (const m of migrations)
      if (waitsForReplacement(m)) this.armed.set(`${m.metadata.namespace}/${m.metadata.name}`, m.status!.steer!.owner.uid);
    await this.sync();
  }

  /**
   * Set by the webhook server that manages its own certificate: puts its CA bundle back into
   * the configuration if something took it out (a re-applied manifest), before arming.
   */
  ensureServing?: () => Promise<unknown>;

  async arm(migration: string, ownerUid: string): Promise<void> {
    await this.ensureServing?.().catch((e: unknown) =>
      this.o.log.warn({ err: String(e) }, 'could not check the webhook CA bundle before arming'),
    );
    this.armed.set(migration, ownerUid);
    await this.sync();
  }

  async disarm(migration: string): Promise<void> {
    if (this.armed.delete(migration)) await this.sync();
  }

  /** Writes the configuration if it does not say what `armed` does; one write at a time. */
  sync(): Promise<void> {
    const run = this.last.then(() => this.write());
    this.last = run.catch(() => undefined);
    return run;
  }

  private async write(): Promise<void> {
    const expression = armedExpression(this.armed.values());
    for (let attempt = 1; ; attempt++) {
      const config = await this.o.client.get<WebhookConfiguration>(this.path);
      let changed = false;
      for (const w of config.webhooks ?? []) {
        const conditions = w.matchConditions ?? [];
        const current = conditions.find((c) => c.name === ARMED_CONDITION);
        if (current?.expression === expression) continue;
        w.matchConditions = [...conditions.filter((c) => c.name !== ARMED_CONDITION), { name: ARMED_CONDITION, expression }];
        changed = true;
      }
      if (!changed) return;
      try {
        await this.o.client.replace(this.path, config);
        this.o.log.info(
          { webhookConfiguration: this.o.configName, owners: [...new Set(this.armed.values())] },
          'armed the webhook for the owners migrations wait on',
        );
        return;
      } catch (e) {
        if (!isConflict(e) || attempt >= 5) throw e;
      }
    }
  }
}
