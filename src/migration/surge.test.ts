import { labelsToWithhold, selectorMatches, selectorProblem } from './surge';

describe('selectorMatches', () => {
  const labels = { app: 'web', tier: 'front', 'pod-template-hash': 'abc' };
  it.each([
    [{ matchLabels: { app: 'web' } }, true],
    [{ matchLabels: { app: 'db' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'back'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['front'] }] }, false],
    [{ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, true],
    [{ matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }, false],
  ])('%j -> %s', (selector, expected) => expect(selectorMatches(selector, labels)).toBe(expected));
});

describe('labelsToWithhold', () => {
  it("withholds only a Deployment's pod-template-hash, so Services still select the copy", () => {
    expect(
      labelsToWithhold({ matchLabels: { app: 'web', 'pod-template-hash': 'abc' } }, { app: 'web', 'pod-template-hash': 'abc', v: '1' }),
    ).toEqual({
      'pod-template-hash': 'abc',
    });
  });
  it('withholds the first required label of a plain ReplicaSet', () => {
    expect(labelsToWithhold({ matchLabels: { tier: 'front', app: 'web' } }, { app: 'web', tier: 'front' })).toEqual({ app: 'web' });
    expect(labelsToWithhold({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, { tier: 'x' })).toEqual({ tier: 'x' });
  });
  it('gives up when no single label makes the selector miss', () => {
    expect(labelsToWithhold({ matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }, { app: 'web' })).toBeUndefined();
    expect(labelsToWithhold({ matchLabels: { app: 'db' } }, { app: 'web' })).toBeUndefined();
  });
});

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

describe('selectorProblem', () => {
  it('names what is wrong with a stored selector, and passes a good one', () => {
    expect(selectorProblem(undefined, 's')).toBeUndefined();
    expect(selectorProblem({ matchLabels: { a: 'b' }, matchExpressions: [{ key: 'k', operator: 'Exists' }] }, 's')).toBeUndefined();
    expect(selectorProblem({ matchlabels: { a: 'b' } }, 's')).toMatch(/^s: unknown field "matchlabels"/);
    expect(selectorProblem('x', 's')).toMatch(/must be a label selector/);
    expect(selectorProblem({ matchLabels: { a: 1 } }, 's')).toMatch(/s\.matchLabels must map/);
    expect(selectorProblem({ matchExpressions: 'foo' }, 's')).toMatch(/s\.matchExpressions must be a list/);
    expect(selectorProblem({ matchExpressions: [null] }, 's')).toMatch(/s\.matchExpressions\[0\] must be an object/);
    expect(selectorProblem({ matchExpressions: [{ key: 'k', operator: 'Bogus' }] }, 's')).toMatch(/operator must be one of/);
    expect(selectorProblem({ matchExpressions: [{ key: 'k', operator: 'In' }] }, 's')).toMatch(/values must be non-empty/);
    expect(selectorProblem({ matchExpressions: [{ key: 'k', operator: 'Exists', values: ['x'] }] }, 's')).toMatch(
      /values must be non-empty/,
    );
  });
});
