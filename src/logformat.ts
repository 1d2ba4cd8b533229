// --log-format text: pino's JSON lines rewritten for a person at a terminal, as
// `time LEVEL message key=value ...` (values with spaces quoted).
import type { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'component']);

function value(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

export function formatLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const fields = Object.entries(o)
    .filter(([k, v]) => !SKIP.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`);
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString() : '';
  return `${time} ${(LEVELS[o.level as number] ?? String(o.level)).padEnd(5)} ${String(o.msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}\n`;
}

/** A pino destination that writes text lines to `out`. */
export function textLines(out: Writable): { write(line: string): void } {
  return { write: (line: string) => void out.write(formatLine(line.trimEnd())) };
}
