import type { V1Pod } from '@kubernetes/client-node';
import { countItems, nodeBound, selectorMatches } from './scope';

describe('selectorMatches', () => {
  it('reads a label selector as Kubernetes does: omitted or empty matches all, terms all hold', () => {
    expect(selectorMatches(undefined, { a: '1' })).toBe(true);
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'web' } }, { app: 'web', x: 'y' })).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'web' } }, { app: 'db' })).toBe(false);
    const expr = (operator: string, values?: string[]) => ({ matchExpressions: [{ key: 'tier', operator, values }] });
    expect(selectorMatches(expr('In', ['gpu', 'cpu']), { tier: 'gpu' })).toBe(true);
    expect(selectorMatches(expr('In', ['gpu']), {})).toBe(false);
    expect(selectorMatches(expr('NotIn', ['gpu']), {})).toBe(true);
    expect(selectorMatches(expr('NotIn', ['gpu']), { tier: 'gpu' })).toBe(false);
    expect(selectorMatches(expr('Exists'), { tier: '' })).toBe(true);
    expect(selectorMatches(expr('DoesNotExist'), { tier: '' })).toBe(false);
    expect(selectorMatches(expr('Bogus'), { tier: 'gpu' })).toBe(false);
  });
});

describe('nodeBound', () => {
  const pod = (metadata: V1Pod['metadata']): V1Pod => ({ metadata });
  it('names DaemonSet and mirror pods, which belong to their node, and nothing else', () => {
    expect(
      nodeBound(pod({ ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'u', controller: true }] })),
    ).toMatch(/DaemonSet agent/);
    expect(nodeBound(pod({ annotations: { 'kubernetes.io/config.mirror': 'x' } }))).toMatch(/mirror of a static pod/);
    expect(
      nodeBound(pod({ ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'u', controller: true }] })),
    ).toBeUndefined();
    expect(nodeBound(pod({}))).toBeUndefined();
  });
});

describe('countItems', () => {
  it('counts each pod once, by its result; no result is pending', () => {
    const item = (result?: 'Migrated' | 'Evicted' | 'Failed' | 'Skipped') => ({
      namespace: 'n',
      name: 'p',
      uid: 'u',
      action: 'Migrate' as const,
      result,
    });
    expect(countItems([item('Migrated'), item('Migrated'), item('Evicted'), item(), item('Failed'), item('Skipped')])).toEqual({
      total: 6,
      migrated: 2,
      evicted: 1,
      pending: 1,
      failed: 1,
      skipped: 1,
    });
    expect(countItems([])).toEqual({ total: 0, migrated: 0, evicted: 0, pending: 0, failed: 0, skipped: 0 });
  });
});
