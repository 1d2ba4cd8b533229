// The five steps, in the order the phases run them.
import { captureState } from './captureState';
import { checkpoint } from './checkpoint';
import { collectMetrics } from './collectMetrics';
import type { Step } from './context';
import { createTargetPod } from './createTargetPod';
import { deleteSourcePod } from './deleteSourcePod';

export const STEPS: readonly Step[] = [captureState, checkpoint, createTargetPod, deleteSourcePod, collectMetrics];
