import { countItems } from './scope';

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
