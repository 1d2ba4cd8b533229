import { WorkQueue } from './workqueue';

describe('WorkQueue', () => {
  it('collapses duplicate keys waiting to be processed', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key being processed to a second worker, and reprocesses it afterwards', async () => {
    const q = new WorkQueue();
    q.add('a');
    const first = await q.get();
    q.add('a'); // changed while being processed
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(first!);
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('backs off exponentially per key and forgets on success', () => {
    const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('a')]).toEqual([10, 20, 40, 50]);
    expect(q.addRateLimited('b')).toBe(10);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(10);
    q.shutDown();
  });

  it('adds a key after a delay, keeping the earliest', async () => {
    jest.useFakeTimers();
    try {
      const q = new WorkQueue();
      q.addAfter('a', 1000);
      q.addAfter('a', 100);
      q.addAfter('a', 5000);
      jest.advanceTimersByTime(99);
      expect(q.length).toBe(0);
      jest.advanceTimersByTime(1);
      expect(q.length).toBe(1);
      jest.advanceTimersByTime(10_000);
      expect(q.length).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });

  it('releases waiting workers on shutdown', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
  });

  it('hands out work on migrations in flight before new ones, promoting a key that is needed', async () => {
    const q = new WorkQueue();
    q.add('new-1', 'later');
    q.add('new-2', 'later');
    q.add('flying');
    q.add('new-2'); // its copy changed: in flight now
    q.add('new-1', 'later'); // already waiting: no second entry
    expect(q.length).toBe(3);
    expect([await q.get(), await q.get(), await q.get()]).toEqual(['flying', 'new-2', 'new-1']);
    expect(q.length).toBe(0);
    q.done('new-2');
    q.done('new-1');
    q.done('flying');
    q.add('new-1', 'later');
    expect(await q.get()).toBe('new-1');
  });

  it('keeps the lane of a key added while it is processed', async () => {
    const q = new WorkQueue();
    q.add('a', 'later');
    const a = await q.get();
    q.add('a', 'later');
    q.add('b', 'later');
    q.add('a'); // promoted while processed
    q.done(a!);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });
});
