// How a pod moves. Step 1 chooses the mode once (chooseMode.ts) and records it in
// status.mode; from then on steps 3 and 4 and the rollback ask the mode what to do, and
// nothing else branches on the owner or the strategy:
//
//   Copy         a bare pod: a copy is made on the target, Ready, then the source is evicted
//   DeleteFirst  a bare pod with strategy DeleteBeforeCreate: the source is evicted first,
//                then the copy is made (ReadWriteOnce claims); status.mode says Copy
//   Surge        a ReplicaSet's pod: the ReplicaSet adopts the Ready copy and removes the source
//   Steer        another owner's pod: the source is evicted and the owner's replacement is
//                steered to the target at admission
import type { PodMigrationSpec, PodMigrationStatus } from '../api/types';
import type { StepContext, StepOutcome, UndoContext, UndoResult } from '../migration/context';
import { copy } from './copy';
import { deleteFirst } from './deleteFirst';
import { steer } from './steer';
import { surge } from './surge';

export interface Mode {
  /** Step 3: puts a Ready pod on the target node (and, in some modes, evicts the source first). */
  place(ctx: StepContext): Promise<StepOutcome>;
  /** Step 4: the source goes, now that the pod on the target is Ready (or confirms it went). */
  retire(ctx: StepContext): Promise<StepOutcome>;
  /** After a failure or a cancellation: undoes what is safe to undo, and says what is left. */
  undo(ctx: UndoContext): Promise<UndoResult>;
  /** Whether a cancellation is still honoured (it rolls back as a failure does). */
  cancellable(status: PodMigrationStatus): boolean;
}

/** The mode a migration runs in, from what step 1 recorded (Copy until it has). */
export function modeOf(status: PodMigrationStatus, spec: Pick<PodMigrationSpec, 'strategy'>): Mode {
  switch (status.mode) {
    case 'Surge':
      return surge;
    case 'Steer':
      return steer;
    default:
      return spec.strategy === 'DeleteBeforeCreate' ? deleteFirst : copy;
  }
}
