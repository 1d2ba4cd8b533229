// The kubectl experience, with the real kubectl: get -w, describe, wait, explain.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DOWNLOADER_DONE, TRAINING_CONTAINERS, createRunningPod, env, kubectl, operatorNamespace, podManifest } from './helpers';

const { ns, operator } = operatorNamespace('kubectl');

const manifest = (name: string, pod: string, extra = '') => `apiVersion: migration.ai-storage.io/v1alpha1
kind: PodMigration
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  podName: ${pod}
  sourceNode: node-1
  targetNode: node-2
  metricsDelaySeconds: 1
${extra}`;

it('shows the phases as they advance with get -w, and waits for Ready', async () => {
  await createRunningPod(podManifest(ns, 'watched', 'node-1', TRAINING_CONTAINERS, DOWNLOADER_DONE));
  const watch = spawn(join(env.bin, 'kubectl'), ['--kubeconfig', env.kubeconfig, 'get', 'podmigrations', '-n', ns, '-w']);
  let out = '';
  watch.stdout.on('data', (d: Buffer) => (out += d.toString()));
  expect(kubectl(['apply', '-f', '-'], manifest('watched', 'watched')).code).toBe(0);

  const wait = kubectl(['wait', '--for=condition=Ready', 'podmigration/watched', '-n', ns, '--timeout=60s']);
  expect(wait.stderr).toBe('');
  expect(wait.stdout).toMatch(/condition met/);
  await new Promise((r) => setTimeout(r, 500));
  watch.kill();

  const lines = out.trim().split('\n');
  expect(lines[0].split(/\s+/)).toEqual(['NAME', 'POD', 'SOURCE', 'TARGET', 'PHASE', 'STEP', 'CPU-SAVED', 'MEM-SAVED', 'AGE']);
  const phases = lines.slice(1).map((l) => l.split(/\s+/)[4]);
  // Steps 1 and 2 end within the reconcile that starts the migration: what the watch shows
  // first is the step that waits (3, for the copy to be Ready).
  for (const p of ['CreatingTargetPod', 'Completed']) expect(phases).toContain(p);
  expect(lines.some((l) => /CreatingTargetPod\s+3\/5/.test(l))).toBe(true);
  expect(lines[lines.length - 1]).toMatch(/^watched\s+watched\s+node-1\s+node-2\s+Completed\s+5\/5\s+33\.3%\s+66\.7%\s+\S+$/);
});

it('describes status and an Event per step', () => {
  const d = kubectl(['describe', 'podmigration', 'watched', '-n', ns]);
  expect(d.code).toBe(0);
  expect(d.stdout).toMatch(/Phase:\s+Completed/);
  expect(d.stdout).toMatch(/Progress:\s+5\/5/);
  for (const step of ['CaptureState', 'CreateTargetPod', 'DeleteSourcePod']) {
    expect(d.stdout).toMatch(new RegExp(`StepSucceeded\\s+.*step \\d/5 ${step} succeeded`));
  }
  expect(d.stdout).toMatch(/StepSkipped\s+.*Checkpoint skipped/);
  // The last step's Event is the migration's.
  expect(d.stdout).toMatch(/MigrationCompleted\s+.*step 5\/5 CollectMetrics succeeded: migration complete/);
  // In the order they happened, although several fall within one second.
  const events = d.stdout
    .slice(d.stdout.indexOf('Events:'))
    .split('\n')
    .map((l) => /^\s+Normal\s+(\w+)\s+\S+\s+\S+\s+(?:step (\d)\/5)?/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]}${m[2] ? ` ${m[2]}` : ''}`);
  expect(events).toEqual(['StepSucceeded 1', 'StepSkipped 2', 'StepSucceeded 3', 'StepSucceeded 4', 'MigrationCompleted 5']);
});

it('waits for either outcome in one command (the README recipe)', () => {
  expect(kubectl(['apply', '-f', '-'], manifest('doomed', 'no-such-pod')).code).toBe(0);
  const either = ['wait', '--for=jsonpath={.status.conditions[?(@.type=="Reconciling")].status}=False', '-n', ns, '--timeout=60s'];
  expect(kubectl([...either, 'podmigration/doomed']).code).toBe(0);
  expect(kubectl(['get', 'podmigration', 'doomed', '-n', ns, '-o', 'jsonpath={.status.phase}/{.status.reason}']).stdout).toBe(
    'Failed/PodNotFound',
  );
  expect(kubectl([...either, 'podmigration/watched']).code).toBe(0);
  // And `wait --for=condition=Ready` does not mistake a failure for success.
  const ready = kubectl(['wait', '--for=condition=Ready', 'podmigration/doomed', '-n', ns, '--timeout=2s']);
  expect(ready.code).not.toBe(0);
});

it('logs JSON lines that name the migration, phase and step, and never a credential', () => {
  const lines = operator
    .log()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const about = lines.filter((l) => l.migration !== undefined);
  expect(about.length).toBeGreaterThan(2); // at least a status write per phase that waited
  for (const l of about) {
    expect(l.migration).toMatch(new RegExp(`^${ns}/`));
    expect(typeof l.phase).toBe('string');
    expect(typeof l.step).toBe('number');
  }
  expect(operator.log()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|Bearer |client-key|"token"/i);
});
