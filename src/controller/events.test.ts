import pino from 'pino';
import type { PodMigration } from '../api/types';
import type { KubeClient } from '../kube/client';
import { EventRecorder } from './events';

const pm = (name: string): PodMigration =>
  ({
    apiVersion: 'migration.ai-storage.io/v1alpha1',
    kind: 'PodMigration',
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: {},
  }) as unknown as PodMigration;

/** A client whose creates answer only when the test lets them. */
function slowClient() {
  const sent: { path: string; body: { reason: string; metadata: { name: string } } }[] = [];
  // Events arrive serialized.
  const answers: (() => void)[] = [];
  let inFlight = 0;
  let most = 0;
  const client = {
    create: (path: string, body: Buffer) => {
      sent.push({ path, body: JSON.parse(body.toString()) });
      inFlight++;
      most = Math.max(most, inFlight);
      return new Promise<void>((resolve) =>
        answers.push(() => {
          inFlight--;
          resolve();
        }),
      );
    },
  } as unknown as KubeClient;
  return { client, sent, answers, most: () => most };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('EventRecorder', () => {
  it('sends a few Events at a time, in the order they were recorded, and flush waits for all', async () => {
    const c = slowClient();
    const r = new EventRecorder(c.client, pino({ level: 'silent' }), 'test');
    for (let i = 0; i < 30; i++) r.record(pm(`m-${i}`), 'Normal', `R${i}`, 'note');
    let flushed = false;
    void r.flush().then(() => (flushed = true));
    await tick();
    expect(c.sent).toHaveLength(8);
    while (c.answers.length) {
      c.answers.shift()!();
      await tick();
    }
    expect(c.sent.map((s) => s.body.reason)).toEqual(Array.from({ length: 30 }, (_, i) => `R${i}`));
    expect(c.most()).toBe(8);
    expect(c.sent[0].path).toBe('/apis/events.k8s.io/v1/namespaces/ns/events');
    // Named by the time they were recorded: the names sort in that order.
    const names = c.sent.map((s) => s.body.metadata.name.split('.')[1]);
    expect([...names].sort()).toEqual(names);
    await tick();
    expect(flushed).toBe(true);
  });

  it('flush returns at once when nothing waits', async () => {
    const r = new EventRecorder(slowClient().client, pino({ level: 'silent' }), 'test');
    await expect(r.flush()).resolves.toBeUndefined();
  });
});
