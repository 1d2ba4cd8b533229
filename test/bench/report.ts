// What the bench prints: a row per N (operator against the floor), the operator's requests
// by kind (--breakdown), and where its migrations spent their time (--timeline).
import type { PodMigration } from '../../src/api/types';
import type { Requests } from './audit';
import type { Run } from './floor';
import type { OperatorRun } from './operator';

/** The p-th percentile (nearest rank) of `xs` (sorted in place). */
export const pct = (xs: number[], p: number): number =>
  xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/** Record created -> Completed, per migration (ms). */
const latencies = (r: Run): number[] => [...r.done].map(([name, at]) => at - r.created.get(name)!);

/** One row of the main table (its column names are what is printed). */
export interface SizeRow {
  N: number;
  'floor wall s': string;
  'operator wall s': string;
  'wall ratio': string;
  'p50 ms floor/op': string;
  'p99 ms floor/op': string;
  'req/migration floor/op': string;
  'op CPU ms/migration': string;
  'apiserver CPU ms/migration floor/op': string;
  'op peak RSS MiB': string;
}

export function sizeRow(n: number, floor: Run, floorRequests: Requests, op: OperatorRun, opRequests: Requests): SizeRow {
  const fl = latencies(floor);
  const ol = latencies(op);
  const fReq = floorRequests.count / n;
  const oReq = opRequests.count / n;
  return {
    N: n,
    'floor wall s': ((floor.t1 - floor.t0) / 1000).toFixed(2),
    'operator wall s': ((op.t1 - op.t0) / 1000).toFixed(2),
    'wall ratio': ((op.t1 - op.t0) / (floor.t1 - floor.t0)).toFixed(1),
    'p50 ms floor/op': `${pct(fl, 50)}/${pct(ol, 50)}`,
    'p99 ms floor/op': `${pct(fl, 99)}/${pct(ol, 99)}`,
    'req/migration floor/op': `${fReq.toFixed(1)}/${oReq.toFixed(1)}`,
    'op CPU ms/migration': (op.cpuMs / n).toFixed(1),
    'apiserver CPU ms/migration floor/op': `${(floor.apiCpuMs / n).toFixed(1)}/${(op.apiCpuMs / n).toFixed(1)}`,
    'op peak RSS MiB': op.rss.toFixed(0),
  };
}

/** --breakdown: the operator's requests per migration, by kind, most first. */
export function printBreakdown(n: number, r: Requests): void {
  console.log(`N=${n}: operator requests per migration, by kind`);
  for (const [kind, c] of [...r.kinds].sort((a, b) => b[1] - a[1])) console.log(`  ${(c / n).toFixed(2).padStart(7)}  ${kind}`);
}

/**
 * --timeline: where a migration's time went, from its status (read after the run, outside
 * the measured window): p50/p90 of the wait before step 1 started, of each step, and in all.
 */
export function printTimeline(records: PodMigration[], created: Map<string, number>): void {
  const spans = new Map<string, number[]>();
  const add = (what: string, ms: number) => spans.set(what, [...(spans.get(what) ?? []), ms]);
  for (const pm of records) {
    const c = created.get(pm.metadata.name)!;
    const status = pm.status ?? {};
    add('created -> started', Date.parse(status.startTime!) - c);
    for (const st of status.steps ?? []) {
      if (st.startTime && st.completionTime) add(st.name, Date.parse(st.completionTime) - Date.parse(st.startTime));
    }
    add('created -> Completed', Date.parse(status.completionTime!) - c);
  }
  const bytes = records.reduce((sum, pm) => sum + JSON.stringify(pm).length, 0) / records.length;
  const statusBytes = records.reduce((sum, pm) => sum + JSON.stringify(pm.status).length, 0) / records.length;
  console.log(
    `timeline of ${created.size} migrations (ms); a completed record is ${bytes.toFixed(0)} bytes of JSON, ${statusBytes.toFixed(0)} of them status`,
  );
  for (const [what, xs] of spans)
    console.log(`  ${what.padEnd(34)} p50 ${String(pct(xs, 50)).padStart(6)}  p90 ${String(pct(xs, 90)).padStart(6)}`);
}
