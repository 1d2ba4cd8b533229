// Step 4: the source goes, only while the pod on the target is Ready, as the mode removes
// it: through the Eviction API, so PodDisruptionBudgets hold (Copy), or by its ReplicaSet
// once it adopts the copy (Surge); in DeleteFirst and Steer the source was evicted in step 3,
// and this step confirms it. Before the first eviction request the migration persists that
// it is about to evict (status.sourcePod.evictionRequestedAt), so a source found gone later
// counts as moved only if this migration evicted it. A budget (429) or any other refusal is
// retried with backoff; at the migration's deadline it is rolled back like any failure
// before the source is gone.
import type { Step } from '../migration/context';
import { modeOf } from '../modes/mode';

export const deleteSourcePod: Step = (ctx) => modeOf(ctx.status, ctx.migration.spec).retire(ctx);
