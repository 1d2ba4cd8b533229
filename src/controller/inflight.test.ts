import type { PodMigration } from '../api/types';
import { InFlight } from './inflight';

let seq = 0;
function pm(name: string, source: string, target: string, phase?: string): PodMigration {
  return {
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: {
      name,
      namespace: 'ns',
      creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, seq++)).toISOString(),
    } as PodMigration['metadata'],
    spec: { podName: `p-${name}`, sourceNode: source, targetNode: target },
    status: phase ? ({ phase } as PodMigration['status']) : undefined,
  } as PodMigration;
}

function setup(cluster: number, perNode: number, records: PodMigration[]) {
  const byName = new Map(records.map((r) => [r.metadata.name, r]));
  const woken: string[] = [];
  const f = new InFlight({ cluster, perNode }, { list: () => [...byName.values()], get: (n) => byName.get(n) }, (k) => woken.push(k));
  return { f, byName, woken };
}

describe('InFlight', () => {
  it('counts started migrations from the cache and refuses past the cluster-wide limit', () => {
    const { f } = setup(2, 10, [pm('a', 'n1', 'n2', 'CreatingTargetPod'), pm('b', 'n3', 'n4', 'Completed')]);
    expect(f.admit(pm('c', 'n5', 'n6'))).toEqual({ admitted: true });
    const d = f.admit(pm('d', 'n7', 'n8'));
    expect(d).toEqual({
      admitted: false,
      message: expect.stringMatching(/2 migrations are in flight, the most --max-migrations-in-flight \(2\) allows/),
    });
    expect(f.size).toBe(2);
  });

  it('limits per source node and per target node separately', () => {
    const { f } = setup(100, 1, [pm('a', 'n1', 'n2', 'DeletingSourcePod')]);
    expect(f.admit(pm('out', 'n1', 'n9'))).toMatchObject({
      admitted: false,
      message: 'waiting for a migration slot: 1 out of node n1, the most --max-migrations-per-node (1) allows',
    });
    expect(f.admit(pm('in', 'n8', 'n2'))).toMatchObject({ admitted: false, message: expect.stringMatching(/into node n2/) });
    expect(f.admit(pm('other', 'n2', 'n1'))).toEqual({ admitted: true }); // n2 has nothing going out, n1 nothing coming in
  });

  it('keeps a migration it let in counted before the cache shows it started, and lets it in again', () => {
    const { f } = setup(1, 10, []);
    const a = pm('a', 'n1', 'n2');
    expect(f.admit(a).admitted).toBe(true);
    expect(f.admit(pm('b', 'n3', 'n4')).admitted).toBe(false);
    expect(f.admit(a).admitted).toBe(true);
  });

  it('on release wakes the longest waiting that fit, oldest first, and keeps their slots for them', () => {
    const running = pm('a', 'n1', 'n2', 'CreatingTargetPod');
    const w1 = pm('w1', 'n1', 'n3'); // older, same source node
    const w2 = pm('w2', 'n4', 'n5');
    const w3 = pm('w3', 'n1', 'n6');
    const { f, woken } = setup(2, 1, [running, w1, w2, w3]);
    // w3 first: the order of arrival in the queue is not the order of creation.
    for (const m of [w3, w1]) expect(f.admit(m).admitted).toBe(false);
    expect(f.admit(w2).admitted).toBe(true); // fits beside a
    f.release('ns/a', true); // before the cache shows a's end
    expect(woken).toEqual(['ns/w1']); // oldest; w3 shares n1 with it
    expect(f.admit(pm('late', 'n7', 'n8')).admitted).toBe(false); // w1's slot is kept for it
    expect(f.admit(w1).admitted).toBe(true);
  });

  it('forgets a waiting migration that was deleted or ended meanwhile', () => {
    const running = pm('a', 'n1', 'n2', 'CreatingTargetPod');
    const w = pm('w', 'n3', 'n4');
    const { f, byName, woken } = setup(1, 5, [running, w]);
    expect(f.admit(w).admitted).toBe(false);
    byName.delete('w');
    byName.set('a', { ...running, status: { phase: 'Failed' } } as PodMigration);
    f.release('ns/a', true);
    expect(woken).toEqual([]);
    expect(f.size).toBe(0);
  });
});
