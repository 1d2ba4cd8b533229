// Steer: the pod of an owner trusted to recreate it (a StatefulSet, a Job, kinds named in
// --steer-owner-kinds). The operator cannot make a pod such an owner would accept, so the
// owner makes it. Step 3 arms the admission webhook for the owner, shows with a dry run that
// the API server calls it and that it steers the replacement, then evicts the source (its
// intent persisted first, budgets respected). The webhook pins the owner's replacement of
// the source (recognised for certain: the same name, the same completion index...) to the
// target node and marks it as this migration's; the step waits for it to be Ready. The pod
// is down from the eviction until its replacement is Ready.
//
// A pinned replacement the scheduler cannot place never keeps the workload down: once the
// webhook is disarmed it is removed (it never ran), and the owner recreates it unpinned.
import type { V1Pod } from '@kubernetes/client-node';
import { ANNOTATION_STEER_PROBE, type PodMigration, withDefaults } from '../api/types';
import { claimSourcePod, releaseClaim } from '../actions/claim';
import { evictOnce, evictPod } from '../actions/evict';
import { classNotSeenYet, neverPreempting } from '../actions/priority';
import { ApiError, MigrationFailure, isRefusal } from '../errors';
import { paths } from '../kube/client';
import type { StepContext, StepOutcome, UndoContext, UndoResult } from '../migration/context';
import { markedBy } from '../migration/marks';
import { describeDestination, destinationOf, restorablePod } from '../migration/optimizedPod';
import { describeReplacement, isReplacement } from '../migration/owners';
import { describePod, isPodReady, targetPodState } from '../migration/podState';
import { canRollBack, remainingMs, stepStartTime } from '../migration/status';
import type { Mode } from './mode';
import { recordTargetPod, retireByEviction } from './shared';

/** How long the dry run may show the webhook not yet steering (the API server reloads its configuration) before that is a failure. */
const ARMING_GRACE_MS = 15_000;
/** How long a rollback waits for the owner to recreate an evicted pod before saying it has not. */
const RECREATE_GRACE_MS = 30_000;

const keyOf = (m: PodMigration) => `${m.metadata.namespace}/${m.metadata.name}`;

export const steer: Mode = {
  place: steerReplacement,
  async retire(ctx) {
    await ctx.env.arming?.disarm(keyOf(ctx.migration));
    return retireByEviction(ctx, false);
  },
  undo,
  // Once the source is asked to go, its owner recreates it: there is nothing to undo.
  cancellable: (status) =>
    (!status.phase || status.phase === 'Pending' || canRollBack(status.phase)) && !status.sourcePod?.evictionRequestedAt,
};

async function steerReplacement(ctx: StepContext): Promise<StepOutcome> {
  const { migration, status, client, now } = ctx;
  const { namespace } = migration.metadata;
  const spec = withDefaults(migration.spec);
  const ref = status.sourcePod!;
  const { owner, replacement } = status.steer!;
  const ownerName = `${owner.kind} ${owner.name}`;
  const dest = describeDestination(destinationOf(spec));

  const all = (await client.get<{ items: V1Pod[] }>(paths.pods(namespace))).items;
  const steered = all.find((p) => markedBy(p, migration.metadata));
  if (steered) {
    recordTargetPod(status, steered, spec.targetNode);
    const state = targetPodState(steered, Date.parse(now));
    if (state.kind === 'failed') {
      const unpin = !steered.spec?.nodeName
        ? `; it never ran, and is removed once the webhook is disarmed, so that ${ownerName} recreates it unpinned`
        : '';
      throw new MigrationFailure(state.reason, `${state.message}${unpin}`);
    }
    if (state.kind === 'ready')
      return {
        done: true,
        message: `${ownerName} recreated pod ${steered.metadata!.name}, steered to ${steered.spec?.nodeName ?? dest}, and it is Ready`,
      };
    return waitForReady(ctx, `${state.message} (${ownerName}'s replacement, steered to ${dest})`, state.retryAfterMs);
  }

  const source = all.find((p) => p.metadata?.uid === ref.uid);
  if (source && !source.metadata?.deletionTimestamp) {
    await claimSourcePod(client, migration, source);
    if (!ref.evictionRequestedAt) {
      const ready = await armWebhook(ctx, source);
      if (ready) return ready;
    }
    const r = await evictOnce(ctx, namespace, 'CreateTargetPod');
    if (!('kind' in r)) return r;
    if (r.kind === 'gone') {
      // It was there a moment ago, and this request did not remove it.
      throw new MigrationFailure(
        'SourcePodChanged',
        `source pod ${ref.name} was removed by someone other than this migration while it was being evicted`,
      );
    }
    return {
      done: false,
      requeueAfterMs: 1_000,
      message: `evicted source pod ${ref.name}; waiting for ${ownerName} to recreate it on ${dest}`,
    };
  }
  if (!ref.evictionRequestedAt) {
    throw new MigrationFailure(
      'SourcePodChanged',
      `source pod ${ref.name} was removed by someone other than this migration before it evicted it`,
    );
  }
  // Evicted. The owner's replacement, made without the webhook's marks, went elsewhere.
  const unsteered = replacementsOf(migration, all).find((p) => !markedBy(p, migration.metadata));
  if (unsteered) {
    const where = unsteered.spec?.nodeName ? `runs on ${unsteered.spec.nodeName}` : 'is not scheduled yet';
    throw new MigrationFailure(
      'ReplacementNotSteered',
      `${ownerName} recreated the pod as ${unsteered.metadata!.name}, which the admission webhook did not steer (was it reachable?); it ${where}, not necessarily on ${dest}`,
    );
  }
  return waitForReady(
    ctx,
    `source pod ${ref.name} evicted; waiting for ${ownerName} to recreate ${describeReplacement(replacement)} (steered to ${dest})`,
  );
}

/**
 * Arms the webhook for the owner (on record first, so that a restarted operator disarms
 * it), then creates the replacement as a dry run: the API server calls the webhook, which
 * steers it, and nothing is stored. Returns what to wait for, or undefined when the source
 * may be evicted. A dry run the API server refuses for a reason of its own (a quota full
 * while the source counts) proves nothing either way; the eviction then goes ahead armed.
 */
async function armWebhook(ctx: StepContext, source: V1Pod): Promise<StepOutcome | undefined> {
  const { migration, status, client, now, env } = ctx;
  const { namespace, name, uid } = migration.metadata;
  const steer = status.steer!;
  const ownerName = `${steer.owner.kind} ${steer.owner.name}`;
  if (!steer.armedAt) {
    // The class the replacement gets so that it never preempts (made now: the webhook makes nothing).
    if (!migration.spec.allowPreemption && source.spec?.preemptionPolicy !== 'Never')
      steer.priorityClassName = (await neverPreempting(client, source)).spec!.priorityClassName;
    steer.armedAt = now;
    await ctx.persist();
  }
  try {
    await env.arming?.arm(keyOf(migration), steer.owner.uid);
  } catch (e) {
    if (!(e instanceof ApiError) || ![403, 404].includes(e.code)) throw e;
    throw new MigrationFailure(
      'ReplacementNotSteered',
      `could not arm the admission webhook for ${ownerName}: ${e.message}; nothing was evicted`,
    );
  }
  const probe = restorablePod(source);
  delete probe.metadata!.name;
  probe.metadata!.generateName = `${source.metadata!.name!.slice(0, 40)}-steer-probe-`;
  probe.metadata!.annotations = { ...probe.metadata!.annotations, [ANNOTATION_STEER_PROBE]: uid };
  probe.metadata!.ownerReferences = (source.metadata?.ownerReferences ?? []).map(({ blockOwnerDeletion: _, ...r }) => r);
  probe.spec!.affinity = source.spec?.affinity;
  try {
    const answer = await client.create<V1Pod>(paths.pods(namespace), probe, { dryRun: 'All' });
    if (markedBy(answer, { name, uid })) return undefined;
  } catch (e) {
    if (e instanceof ApiError && e.code === 403 && /exceeded quota/.test(e.message)) {
      ctx.log.info(
        { err: e.message },
        'the dry run of the replacement was refused by a quota; evicting with the webhook armed, unverified',
      );
      return undefined;
    }
    if (classNotSeenYet(e))
      return { done: false, requeueAfterMs: 500, message: `waiting for the API server to know PriorityClass ${steer.priorityClassName}` };
    if (isRefusal(e)) {
      throw new MigrationFailure(
        'TargetPodRejected',
        `the API server refused a dry run of ${ownerName}'s replacement for pod ${source.metadata!.name}: ${(e as Error).message}; nothing was evicted`,
      );
    }
    throw e;
  }
  if (Date.parse(now) - Date.parse(steer.armedAt) < ARMING_GRACE_MS) {
    return {
      done: false,
      requeueAfterMs: 1_000,
      message: `armed the admission webhook for ${ownerName}; waiting for the API server to call it before evicting ${source.metadata!.name}`,
    };
  }
  throw new MigrationFailure(
    'ReplacementNotSteered',
    `the admission webhook did not steer a dry run of ${ownerName}'s replacement within ${ARMING_GRACE_MS / 1000}s of being armed (is it registered and reachable?); nothing was evicted`,
  );
}

/** The owner's pods that are the source's replacement (never the source itself). */
function replacementsOf(migration: PodMigration, pods: readonly V1Pod[]): V1Pod[] {
  const { sourcePod: ref, steer: s } = migration.status ?? {};
  return replacementsIn(ref!, s!, pods);
}

function replacementsIn(
  ref: NonNullable<PodMigration['status']>['sourcePod'] & object,
  s: NonNullable<PodMigration['status']>['steer'] & object,
  pods: readonly V1Pod[],
): V1Pod[] {
  const since = Date.parse(ref.evictionRequestedAt ?? '') - 1_000;
  return pods.filter(
    (p) =>
      p.metadata?.uid !== ref.uid &&
      !p.metadata?.deletionTimestamp &&
      // The owner, or one of its kind and name made anew (deleted with its pods orphaned, applied again).
      (p.metadata?.ownerReferences ?? []).some(
        (o) => o.controller && (o.uid === s.owner.uid || (o.kind === s.owner.kind && o.name === s.owner.name)),
      ) &&
      isReplacement(p, s.replacement) &&
      // "its next pod": only one made since the eviction was asked for
      ('onlyNewPod' in s.replacement ? Date.parse(String(p.metadata?.creationTimestamp ?? 0)) >= since : true),
  );
}

/** Waits within readyTimeoutSeconds, counted from the start of step 3. */
function waitForReady({ migration, status, now }: StepContext, message: string, retryAfterMs = 2_000): StepOutcome {
  const { readyTimeoutSeconds } = withDefaults(migration.spec);
  const left = remainingMs(stepStartTime(status, 'CreateTargetPod', now), readyTimeoutSeconds, now);
  if (left <= 0) throw new MigrationFailure('TargetPodNotReady', `no Ready replacement within ${readyTimeoutSeconds}s: ${message}`);
  return { done: false, requeueAfterMs: Math.min(left, retryAfterMs, 2_000), message };
}

/**
 * Disarms the webhook, then: a source that still runs is released; a steered replacement
 * that is not Ready (pinned to a node the scheduler refused, or running there but never
 * Ready) is removed through the Eviction API, as the source was, so that the owner recreates
 * it unpinned and a Job's pod failure policy sees a disruption, not a failure; one that is
 * Ready is the owner's pod, and is kept. Says where the owner's pod is now.
 */
async function undo(ctx: UndoContext): Promise<UndoResult> {
  const { migration, status, client, log, ref, source, sourceRuns, pods } = ctx;
  const { namespace } = migration.metadata;
  const s = status.steer;
  await ctx.env.arming?.disarm(keyOf(migration));
  const target = describeDestination(destinationOf(migration.spec));
  const unready = pods.filter((p) => !isPodReady(p));
  for (const p of unready) {
    if (p.metadata?.deletionTimestamp) continue;
    const r = await evictPod(client, namespace, p);
    if (r === 'gone') continue;
    if (r !== 'evicted') {
      log.warn({ pod: p.metadata!.name, refusal: r }, 'could not remove the pinned replacement');
      const message = `kept ${p.metadata!.name} on ${p.spec?.nodeName ?? 'no node'} (${describePod(p)}), pinned to ${target}: its eviction was refused (${r}); delete it so that ${s ? `${s.owner.kind} ${s.owner.name}` : 'its owner'} recreates it unpinned`;
      ctx.record('Warning', 'TargetPodKept', message);
      return { done: true, outcome: { ok: false, reason: 'TargetPodKept', message } };
    }
    const how = p.spec?.nodeName ? 'which never became Ready' : 'which never ran';
    log.info({ pod: p.metadata!.name }, `removed the pinned replacement, ${how}`);
    ctx.record(
      'Normal',
      'PinnedReplacementRemoved',
      `removed pod ${p.metadata!.name}, pinned to ${target}, ${how}, so that its owner recreates it unpinned`,
    );
    if (s) s.unpinned = [...new Set([...(s.unpinned ?? []), p.metadata!.name!])];
  }
  if (unready.length) return { done: false, retryAfterMs: 1_000 }; // until they are gone
  const unpinned = s?.unpinned?.length ? `removed pod ${s.unpinned.join(', ')}, pinned to ${target}, which was not Ready; ` : '';
  if (sourceRuns) {
    await releaseClaim(client, migration, source!);
    return {
      done: true,
      outcome: {
        ok: true,
        reason: 'SourcePodRunning',
        message: `${unpinned}source pod ${ref.name} still runs on ${source!.spec?.nodeName}`,
      },
    };
  }
  const ownerName = s ? `${s.owner.kind} ${s.owner.name}` : 'its owner';
  const gone = ref.evictionRequestedAt
    ? `source pod ${ref.name} was evicted`
    : `source pod ${ref.name} was deleted by someone other than this migration`;
  const kept = pods.filter((p) => isPodReady(p));
  if (kept.length) {
    const where = kept.map((p) => `${p.metadata!.name} on ${p.spec!.nodeName} (${describePod(p)})`).join(', ');
    const message = `kept ${where}: it is ${ownerName}'s pod, steered there after ${gone}`;
    ctx.record('Warning', 'TargetPodKept', message);
    return { done: true, outcome: { ok: false, reason: 'TargetPodKept', message } };
  }
  const all = (await client.get<{ items: V1Pod[] }>(paths.pods(namespace))).items;
  const now = s ? replacementsIn(ref, s, all) : [];
  const endedMs = Date.parse(ctx.now) - Date.parse(status.completionTime ?? ctx.now);
  // Said once the owner's pod is placed, so that the status can say where.
  if (now.some((p) => !p.spec?.nodeName) && endedMs < RECREATE_GRACE_MS) return { done: false, retryAfterMs: 1_000 };
  if (now.length) {
    const where = now.map((p) => `${p.metadata!.name} on ${p.spec?.nodeName ?? 'no node yet'} (${describePod(p)})`).join(', ');
    return {
      done: true,
      outcome: { ok: false, reason: 'OwnerRecreatedPod', message: `${unpinned}${gone}; ${ownerName} recreated it, not steered: ${where}` },
    };
  }
  if (s && endedMs < RECREATE_GRACE_MS) return { done: false, retryAfterMs: 2_000 };
  return {
    done: true,
    outcome: { ok: false, reason: 'NoPodLeft', message: `${unpinned}${gone} and ${ownerName} has not recreated it (yet)` },
  };
}
