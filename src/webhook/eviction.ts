// The validating admission webhook for evictions (pods/eviction, CREATE), which makes
// drains migrate instead of evict, as KubeVirt's does for its VMs. An eviction of a pod that
// opted in (annotation, or its namespace's label, `on-eviction: migrate`) and that a
// migration moves without downtime (Copy or Surge mode) is answered 429 TooManyRequests,
// naming the PodMigration that moves it: one per pod, named from the pod's UID, so every
// retry finds it. `kubectl drain` and the autoscalers retry on 429; once the pod has moved
// it is gone, and their next attempt passes.
//
// Everything else passes unchanged: pods not opted in; pods only their owner can recreate
// (Steer mode: a migration gains nothing over the eviction); DaemonSet, mirror and
// opted-out pods; the operator's own evictions (step 4's); a pod whose migration ended
// without moving it, so a drain is never stuck behind us. Budgets still apply, as to any
// eviction. The configuration has failurePolicy Ignore and a short timeout, and here any
// error, or anything it cannot read, lets the eviction pass.
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  ANNOTATION_CLAIM,
  ANNOTATION_EVICTED_BY,
  API_VERSION,
  KIND,
  LABEL_CREATED_BY,
  ON_EVICTION,
  type PodMigration,
  TERMINAL_PHASES,
  withDefaults,
} from '../api/types';
import { unfinishedHolder } from '../actions/claim';
import { MigrationFailure, isAlreadyExists, isNotFound } from '../errors';
import { type KubeClient, paths } from '../kube/client';
import type { Environment } from '../migration/context';
import { chooseMode } from '../modes/chooseMode';

export const EVICTION_WEBHOOK_PATH = '/validate-v1-pod-eviction';

export interface EvictionDeps {
  client: KubeClient;
  env: Environment;
  log: Logger;
  /** The operator's own user name: its evictions (step 4's) pass. Undefined until known. */
  self: () => string | undefined;
  /** The one namespace the operator watches, if it watches one: evictions elsewhere pass (nothing would carry out a migration there). */
  namespace?: string;
  /** The time (tests inject their own). */
  now?: () => number;
  /** The PodMigrations of a namespace, as the operator's cache holds them (the API server is asked when unset). */
  migrations?: (namespace: string) => readonly PodMigration[];
}

/** The PodMigration an eviction of the pod starts: deterministic, so retries find it. */
export const evictionMigrationName = (podUid: string) => `eviction-${podUid}`;

/** Whether the pod asks that its evictions become migrations: its annotation, or else its namespace's label. */
export function optedIn(pod: V1Pod, namespaceLabels: Readonly<Record<string, string>> | undefined): boolean {
  return (pod.metadata?.annotations?.[ON_EVICTION] ?? namespaceLabels?.[ON_EVICTION]) === 'migrate';
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

type Answer = { allowed: true } | { allowed: false; message: string };

/** The AdmissionReview answering `body`. Never throws; whatever goes wrong lets the eviction pass. */
export async function reviewEviction(deps: EvictionDeps, body: unknown): Promise<object> {
  const req = isObject(body) && isObject(body.request) ? body.request : undefined;
  const respond = (a: Answer) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: typeof req?.uid === 'string' ? req.uid : '',
      allowed: a.allowed,
      ...(a.allowed ? {} : { status: { code: 429, reason: 'TooManyRequests', message: a.message } }),
    },
  });
  try {
    const { namespace, name, operation, subResource } = req ?? {};
    if (operation !== 'CREATE' || subResource !== 'eviction') return respond({ allowed: true });
    if (typeof namespace !== 'string' || !DNS_LABEL.test(namespace) || typeof name !== 'string' || !DNS_SUBDOMAIN.test(name))
      return respond({ allowed: true });
    const user = isObject(req!.userInfo) && typeof req!.userInfo.username === 'string' ? req!.userInfo.username : '';
    // A dry run is asked for in the request's query (dryRun) or in the Eviction's own
    // deleteOptions, where kubectl drain --dry-run=server puts it.
    const options = isObject(req!.object) && isObject(req!.object.deleteOptions) ? req!.object.deleteOptions : undefined;
    const dryRun = req!.dryRun === true || (Array.isArray(options?.dryRun) && options.dryRun.length > 0);
    return respond(await decide(deps, namespace, name, user, dryRun));
  } catch (e) {
    deps.log.warn({ err: String(e) }, 'eviction webhook could not decide; letting the eviction pass');
    return respond({ allowed: true });
  }
}

async function decide(deps: EvictionDeps, namespace: string, podName: string, user: string, dryRun: boolean): Promise<Answer> {
  const { client, log } = deps;
  const self = deps.self();
  if ((self && user === self) || (deps.namespace && namespace !== deps.namespace)) return { allowed: true };
  let pod: V1Pod;
  try {
    pod = await client.get<V1Pod>(paths.pod(namespace, podName));
  } catch (e) {
    if (isNotFound(e)) return { allowed: true };
    throw e;
  }
  // The namespace as it is now: a label set just before a drain counts.
  const labels = pod.metadata?.annotations?.[ON_EVICTION]
    ? undefined
    : (await client.get<V1Namespace>(`/api/v1/namespaces/${namespace}`)).metadata?.labels;
  if (!optedIn(pod, labels)) return { allowed: true };
  const pass = (why: string): Answer => {
    log.info({ pod: `${namespace}/${podName}`, user }, `eviction passes: ${why}`);
    return { allowed: true };
  };
  if (pod.metadata?.deletionTimestamp) return pass('the pod is being deleted');
  if (pod.status?.phase !== 'Running') return pass(`the pod is ${pod.status?.phase ?? 'in no phase'}, not Running`);

  const migrationName = evictionMigrationName(pod.metadata!.uid!);
  // Another migration moves it already (a user's, a NodeDrain's; holding the pod's claim,
  // or still waiting for a slot): the drain waits for that one, whatever became of ours.
  const claim = pod.metadata?.annotations?.[ANNOTATION_CLAIM];
  const holder = claim ? await unfinishedHolder(client, namespace, claim) : undefined;
  const other = holder
    ? { metadata: { name: holder } }
    : (deps.migrations?.(namespace) ?? (await client.get<{ items: PodMigration[] }>(paths.migrations(namespace))).items).find(
        (m) =>
          m.metadata.name !== migrationName &&
          m.spec.podName === podName &&
          (m.status?.sourcePod?.uid ?? pod.metadata!.uid) === pod.metadata!.uid &&
          !m.metadata.deletionTimestamp &&
          !TERMINAL_PHASES.includes(m.status?.phase ?? 'Pending'),
      );
  if (other) return busy(pod, `${namespace}/${other.metadata.name}`);
  const now = deps.now?.() ?? Date.now();
  const existing = await ended(client, namespace, migrationName, now);
  if (existing)
    return existing === 'running' ? busy(pod, `${namespace}/${migrationName}`) : pass(`PodMigration ${migrationName} ${existing}`);

  const record: PodMigration = {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: migrationName,
      namespace,
      labels: { [LABEL_CREATED_BY]: 'eviction' },
      annotations: { [ANNOTATION_EVICTED_BY]: user },
    },
    spec: { podName, sourceNode: pod.spec!.nodeName! },
  } as unknown as PodMigration;
  try {
    // Only what moves without downtime: the pod copied (no owner), or handed to its ReplicaSet.
    const { mode } = await chooseMode(client, record, pod, { ...deps.env, steering: false });
    if (mode !== 'Copy' && mode !== 'Surge') return pass(`a ${mode} migration gains nothing over the eviction`);
  } catch (e) {
    if (!(e instanceof MigrationFailure)) throw e;
    return pass(`a migration would not move it (${e.reason}: ${e.message})`);
  }
  if (dryRun)
    return {
      allowed: false,
      message: `dry run: pod ${podName} would be moved by PodMigration ${namespace}/${migrationName} instead of evicted`,
    };
  try {
    await client.create(paths.migrations(namespace), record);
    log.info({ pod: `${namespace}/${podName}`, user, migration: migrationName }, 'eviction answered with a migration');
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    // A retry racing this one made it first: answer as it would.
    const raced = await ended(client, namespace, migrationName, now);
    if (raced && raced !== 'running') return pass(`PodMigration ${migrationName} ${raced}`);
  }
  return busy(pod, `${namespace}/${migrationName}`);
}

/**
 * "running" while the migration may still move the pod; otherwise why it will not (it
 * ended, is being deleted, or has not started within its own timeout: no operator is
 * carrying it out, and a drain must not wait on it for ever); undefined when there is none.
 */
async function ended(client: KubeClient, namespace: string, name: string, now: number): Promise<string | undefined> {
  let m: PodMigration;
  try {
    m = await client.get<PodMigration>(paths.migration(namespace, name));
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
  const phase = m.status?.phase;
  if (m.metadata.deletionTimestamp) return 'is being deleted';
  if (TERMINAL_PHASES.includes(phase ?? 'Pending')) return `ended ${phase}${m.status?.reason ? ` (${m.status.reason})` : ''}`;
  const { timeoutSeconds } = withDefaults(m.spec);
  const waited = now - Date.parse(String(m.metadata.creationTimestamp ?? now));
  if (!m.status?.startTime && waited > timeoutSeconds * 1000) return `has not started in ${Math.round(waited / 1000)}s`;
  return 'running';
}

function busy(pod: V1Pod, migration: string): Answer {
  return {
    allowed: false,
    message:
      `pod ${pod.metadata!.name} is being moved by PodMigration ${migration} instead of evicted (${ON_EVICTION}: migrate); ` +
      'retry: the eviction passes once the pod is gone, or at once should the migration fail',
  };
}
