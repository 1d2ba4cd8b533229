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
