import { formatLine } from './logformat';

describe('formatLine', () => {
  it('writes time, level, message and the fields, quoting values with spaces', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2026, 10, 27, 12),
      pid: 1,
      hostname: 'h',
      component: 'podmigration-operator',
      migration: 'ns/m',
      step: 3,
      msg: 'status updated',
      message: 'waiting for pod x',
    });
    expect(formatLine(line)).toBe('2026-11-27T12:00:00.000Z INFO  status updated migration=ns/m step=3 message="waiting for pod x"\n');
  });

  it('passes through what is not JSON', () => {
    expect(formatLine('plain')).toBe('plain');
  });
});
