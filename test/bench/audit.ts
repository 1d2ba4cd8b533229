// Reading the API server's audit log (hack/cluster.sh with AUDIT=1: one event per request,
// at Metadata level): the operator identity's requests within a window, by kind, and the
// moment it has gone quiet.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { OPERATOR_USER, sleep } from './cluster';

/** The fields of an audit.k8s.io/v1 Event the bench reads. */
interface AuditEvent {
  verb: string;
  requestURI: string;
  requestReceivedTimestamp: string;
  user?: { username?: string };
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

export interface Requests {
  count: number;
  /** `verb resource[/subresource] code` (the URI when no resource) -> how many. */
  kinds: Map<string, number>;
}

/** The operator identity's requests within [t0, t1], and how many of each kind. */
export function requests(log: string, t0: number, t1: number): Requests {
  let count = 0;
  const kinds = new Map<string, number>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line.includes(OPERATOR_USER)) continue;
    const e = JSON.parse(line) as AuditEvent;
    const at = Date.parse(e.requestReceivedTimestamp);
    if (e.user?.username !== OPERATOR_USER || at < t0 || at > t1) continue;
    count++;
    const r = e.objectRef ?? {};
    const kind = `${e.verb} ${r.resource ?? e.requestURI}${r.subresource ? `/${r.subresource}` : ''} ${e.responseStatus?.code ?? ''}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return { count, kinds };
}

/** The time of the operator's last request once it has sent none for 3 s (from the audit log). */
export async function quiet(log: string, since: number): Promise<number> {
  // From a little before its end now: its lines are written asynchronously, and any older
  // than `since` change nothing.
  let offset = Math.max(0, statSync(log).size - 4 * 1024 * 1024);
  let skipFirst = offset > 0;
  let last = since;
  let partial = '';
  for (;;) {
    await sleep(1_000);
    const size = statSync(log).size;
    if (size > offset) {
      const buf = Buffer.alloc(size - offset);
      const fd = openSync(log, 'r');
      readSync(fd, buf, 0, buf.length, offset);
      closeSync(fd);
      offset = size;
      const lines = (partial + buf.toString()).split('\n');
      partial = lines.pop() ?? '';
      if (skipFirst) lines.shift(); // begun mid-line
      skipFirst = false;
      for (const line of lines) {
        if (!line.includes(OPERATOR_USER)) continue;
        const at = Date.parse((JSON.parse(line) as AuditEvent).requestReceivedTimestamp);
        if (at > last) last = at;
      }
    }
    if (Date.now() - last > 3_000 + 1_500) return last; // + the audit log's own delay
  }
}
