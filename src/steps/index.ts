// The five steps, by the name the step table (migration/status.ts) gives each, in the order
// the phases run them.
import type { Step } from '../migration/context';
import type { StepName } from '../migration/status';
import { captureState } from './captureState';
export { refusal } from './captureState';
import { checkpoint } from './checkpoint';
import { collectMetrics } from './collectMetrics';
import { createTargetPod } from './createTargetPod';
import { deleteSourcePod } from './deleteSourcePod';

export const STEPS: Readonly<Record<StepName, Step>> = {
  CaptureState: captureState,
  Checkpoint: checkpoint,
  CreateTargetPod: createTargetPod,
  DeleteSourcePod: deleteSourcePod,
  CollectMetrics: collectMetrics,
};
