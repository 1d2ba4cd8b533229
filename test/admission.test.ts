// Invalid specs are refused by the API server at `kubectl apply` time, with a message
// that names the field, and nothing is stored.
import { createNamespace, deleteNamespace, kubectl } from './helpers';

let ns: string;
beforeAll(async () => {
  ns = await createNamespace('admission');
});
afterAll(async () => {
  await deleteNamespace(ns);
});

function manifest(name: string, specLines: string): string {
  return `apiVersion: migration.ai-storage.io/v1alpha1
kind: PodMigration
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${specLines}`;
}

const valid = '  podName: p\n  sourceNode: node-1\n  targetNode: node-2\n';

it.each([
  ['a missing podName', 'no-pod', '  sourceNode: node-1\n  targetNode: node-2\n', /spec\.podName: Required value/],
  [
    'targetNode equal to sourceNode',
    'same-node',
    '  podName: p\n  sourceNode: node-1\n  targetNode: node-1\n',
    /spec\.targetNode: .*must differ from spec\.sourceNode/,
  ],
  [
    'a negative timeout',
    'neg-timeout',
    `${valid}  timeoutSeconds: -5\n`,
    /spec\.timeoutSeconds: Invalid value: -5: .*greater than or equal to 1/,
  ],
  ['a zero timeout', 'zero-timeout', `${valid}  timeoutSeconds: 0\n`, /spec\.timeoutSeconds: Invalid value: 0/],
  [
    'a checkpoint size that is not a quantity',
    'bad-size',
    `${valid}  preservePV: true\n  checkpoint:\n    size: lots\n`,
    /spec\.checkpoint\.size: .*positive quantity/,
  ],
  ['a zero checkpoint size', 'zero-size', `${valid}  checkpoint:\n    size: "0"\n`, /spec\.checkpoint\.size: .*positive quantity/],
  [
    'avoidSourceNode false beside a target node',
    'avoid-named',
    `${valid}  avoidSourceNode: false\n`,
    /spec\.avoidSourceNode: .*applies only when spec\.targetNode is unset/,
  ],
  ['a missing sourceNode', 'no-source', '  podName: p\n', /spec\.sourceNode: Required value/],
  ['an unknown field', 'unknown', `${valid}  targetNodes: node-3\n`, /unknown field "spec\.targetNodes"/],
  [
    'a pod name that is not a DNS name',
    'bad-pod',
    '  podName: My_Pod\n  sourceNode: node-1\n  targetNode: node-2\n',
    /spec\.podName: Invalid value: "My_Pod"/,
  ],
  ['an unknown strategy', 'bad-strategy', `${valid}  strategy: YOLO\n`, /spec\.strategy: Unsupported value: "YOLO"/],
  ['a wrong type', 'bad-type', `${valid}  preservePV: "yes please"\n`, /spec\.preservePV: Invalid value: "string"/],
  ['a name too long for a label value', 'n'.repeat(64), valid, /metadata\.name must be at most 63 characters/],
])('refuses %s', (_what, name, spec, message) => {
  const r = kubectl(['apply', '-f', '-'], manifest(name, spec));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(kubectl(['get', 'podmigration', name, '-n', ns]).stderr).toMatch(/NotFound/);
});

it('refuses any change to the spec after creation', () => {
  expect(kubectl(['apply', '-f', '-'], manifest('immutable', valid)).code).toBe(0);
  const r = kubectl(['apply', '-f', '-'], manifest('immutable', '  podName: p\n  sourceNode: node-1\n  targetNode: node-3\n'));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/spec: Invalid value: .*spec is immutable/);
  const stored = kubectl(['get', 'podmigration', 'immutable', '-n', ns, '-o', 'jsonpath={.spec.targetNode}']);
  expect(stored.stdout).toBe('node-2');
});

it('fills in the documented defaults', () => {
  expect(kubectl(['apply', '-f', '-'], manifest('defaults', valid)).code).toBe(0);
  const r = kubectl(['get', 'podmigration', 'defaults', '-n', ns, '-o', 'json']);
  const spec = JSON.parse(r.stdout).spec;
  expect(spec).toEqual({
    podName: 'p',
    sourceNode: 'node-1',
    targetNode: 'node-2',
    preservePV: false,
    checkpoint: { size: '1Gi' },
    timeoutSeconds: 600,
    readyTimeoutSeconds: 300,
    metricsDelaySeconds: 30,
    strategy: 'CreateBeforeDelete',
    allowPreemption: false,
    dropCrashedContainers: false,
    avoidSourceNode: true,
  });
});

it('takes a migration without a target node (kube-scheduler chooses)', () => {
  expect(kubectl(['apply', '-f', '-'], manifest('anywhere', '  podName: p\n  sourceNode: node-1\n')).code).toBe(0);
  const spec = JSON.parse(kubectl(['get', 'podmigration', 'anywhere', '-n', ns, '-o', 'json']).stdout).spec;
  expect(spec.targetNode).toBeUndefined();
  expect(spec.avoidSourceNode).toBe(true);
});

it('answers to its short names and explains its fields', () => {
  expect(kubectl(['get', 'pm', '-n', ns]).code).toBe(0);
  expect(kubectl(['get', 'podmig', '-n', ns]).code).toBe(0);
  const explain = kubectl(['explain', 'podmigration.spec']);
  expect(explain.code).toBe(0);
  for (const field of ['podName', 'sourceNode', 'targetNode', 'preservePV', 'timeoutSeconds', 'checkpoint']) {
    expect(explain.stdout).toContain(field);
  }
  expect(explain.stdout).toMatch(/immutable/);
});
