// Step 3: a Ready pod on the target node, as the migration's mode makes it: a copy of the
// pod with only its running containers (Copy, Surge; DeleteFirst evicts the source first),
// or the owner's replacement steered there (Steer). It waits (by watch, with a deadline
// kept in status) until that pod is Ready; a pod that fails or cannot start fails the
// migration at once.
import type { Step } from '../migration/context';
import { modeOf } from '../modes/mode';

export const createTargetPod: Step = (ctx) => modeOf(ctx.status, ctx.migration.spec).place(ctx);
