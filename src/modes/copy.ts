// Copy: a bare pod (no owner to recreate it). The copy is made on the target node while the
// source runs; once it is Ready the source is evicted. Nothing is down at any moment.
import type { Mode } from './mode';
import { cancellableUntilStep4Eviction, placeCopy, retireByEviction, undoWhileSourceRuns } from './shared';

export const copy: Mode = {
  place: placeCopy,
  retire: (ctx) => retireByEviction(ctx, true),
  undo: (ctx) =>
    undoWhileSourceRuns(
      ctx,
      (state) => `source pod ${ctx.ref.name} ${state}, so it is all that is left of the workload; delete it when it is no longer needed`,
    ),
  cancellable: cancellableUntilStep4Eviction,
};
