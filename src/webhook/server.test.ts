// The webhook's decision never throws and never refuses, whatever it is sent: malformed
// bodies from any pod in the cluster must not stop the operator or block a pod.
import pino from 'pino';
import type { PodMigration } from '../api/types';
import { review } from './server';

const log = pino({ level: 'silent' });
const none = { cached: () => [] as PodMigration[], live: async () => [] as PodMigration[] };

/** A deterministic pseudo-random generator, so that a failure can be reproduced. */
function random(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

function value(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 6 : 9));
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return Math.floor(r() * 1e6) - 5e5;
    case 3:
      return ['', 'CREATE', 'DELETE', 'x', 'true', 'apps/v1'][Math.floor(r() * 6)];
    case 4:
      return undefined;
    case 5:
      return 1.5;
    case 6:
      return Array.from({ length: Math.floor(r() * 3) }, () => value(r, depth + 1));
    default: {
      const keys = [
        'request',
        'uid',
        'operation',
        'namespace',
        'object',
        'metadata',
        'spec',
        'ownerReferences',
        'controller',
        'containers',
        'name',
        'annotations',
        'nodeName',
      ];
      return Object.fromEntries(
        Array.from({ length: Math.floor(r() * 5) }, () => [keys[Math.floor(r() * keys.length)], value(r, depth + 1)]),
      );
    }
  }
}

it('admits, unchanged, whatever it cannot read (2,000 malformed bodies)', async () => {
  const r = random(42);
  const owned = {
    request: { uid: 'u', operation: 'CREATE', namespace: 'ns', object: { metadata: { ownerReferences: 'not-a-list' }, spec: {} } },
  };
  const bodies: unknown[] = [
    null,
    0,
    'x',
    [],
    {},
    { request: null },
    { request: [] },
    owned,
    ...Array.from({ length: 2_000 }, () => value(r, 0)),
  ];
  for (const body of bodies) {
    const answer = (await review(none, log, body)) as { response: { allowed: boolean; patch?: string } };
    expect([body, answer.response.allowed, answer.response.patch]).toEqual([body, true, undefined]);
  }
});

it('admits unchanged when looking the migrations up fails', async () => {
  const failing = { cached: () => [], live: async () => Promise.reject(new Error('API server unreachable')) };
  const owned = {
    request: {
      uid: 'u',
      operation: 'CREATE',
      namespace: 'ns',
      object: { metadata: { name: 'a', ownerReferences: [{ uid: 'o', controller: true }] }, spec: { containers: [] } },
    },
  };
  expect(await review(failing, log, owned)).toEqual({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: 'u', allowed: true },
  });
});

it('never puts what it is sent into a request path: a namespace that is not a name is no namespace', async () => {
  const asked: string[] = [];
  const spy = { cached: () => [], live: async (ns: string) => (asked.push(ns), []) };
  const owned = (namespace: string) => ({
    request: {
      uid: 'u',
      operation: 'CREATE',
      namespace,
      object: { metadata: { name: 'a', ownerReferences: [{ uid: 'o', controller: true }] }, spec: { containers: [] } },
    },
  });
  for (const ns of ['../../../api/v1/namespaces/kube-system/secrets?x=', 'a/b', 'UPPER', '']) await review(spy, log, owned(ns));
  expect(asked).toEqual([]);
  await review(spy, log, owned('team-ml'));
  expect(asked).toEqual(['team-ml']);
});

it("steers a one-pod Job's next pod only while the Job still runs one pod at a time", async () => {
  const owner = { apiVersion: 'batch/v1', kind: 'Job', name: 'train', uid: 'job-uid', controller: true };
  const m = {
    metadata: { name: 'move-train', namespace: 'ns', uid: 'pm-uid' },
    spec: { podName: 'train-a', sourceNode: 'node-1', targetNode: 'node-2' },
    status: {
      phase: 'CreatingTargetPod',
      mode: 'Steer',
      steer: { owner, replacement: { onlyNewPod: true }, armedAt: '2026-01-01T00:00:00Z' },
      sourcePod: { name: 'train-a', uid: 'old', node: 'node-1' },
    },
  } as unknown as PodMigration;
  const request = {
    request: {
      uid: 'u',
      operation: 'CREATE',
      namespace: 'ns',
      object: { metadata: { generateName: 'train-', ownerReferences: [owner] }, spec: { containers: [] } },
    },
  };
  const withParallelism = (n: number) => ({ cached: () => [m], live: async () => [m], jobParallelism: async () => n });
  const patched = async (n: number) =>
    ((await review(withParallelism(n), log, request)) as { response: { patch?: string } }).response.patch !== undefined;
  expect(await patched(1)).toBe(true);
  expect(await patched(2)).toBe(false);
});
