// The operator against a floor, side by side in one run on a local control plane of its own
// (kwok pods are Ready in milliseconds, so what shows is the control plane's cost). `make
// bench` builds it (tsconfig.bench.json) and runs it; ./options.ts lists its options.
//
// For each N, N pods on node-1 are moved to node-2 twice: first by the floor client
// (./floor.ts), then by the operator (./operator.ts); both with the operator's identity and
// N at once. Requests are counted by identity from the API server's audit log, within each
// run's window (./audit.ts). Prints wall time, p50/p99 latency (record created ->
// Completed), requests per migration, the operator's CPU per migration and RSS, and the
// ratios to the floor (./report.ts); then --drain (./drain.ts), --costs (./costs.ts),
// --memory (./memory.ts) and --stranded (./stranded.ts).
import { join } from 'node:path';
import { requests } from './audit';
import { BenchCluster, ROOT, sleep } from './cluster';
import { costsRun } from './costs';
import { type DrainRow, drainRun } from './drain';
import { floor } from './floor';
import { memoryRun, type MemoryRow } from './memory';
import { OperatorBuild, killOperators, operatorRun } from './operator';
import { type BenchOptions, USAGE, UsageError, parseOptions } from './options';
import { type StrandedRow, strandedRun } from './stranded';
import { printBreakdown, printTimeline, type SizeRow, sizeRow } from './report';
import { podsOnNode1 } from './workload';

async function bench(o: BenchOptions): Promise<void> {
  const cluster = BenchCluster.up();
  const build = new OperatorBuild(o.dist);
  // --node-options: NODE_OPTIONS for the operator only (this process reads whole audit logs).
  const env = { ...process.env, NODE_OPTIONS: o.nodeOptions ?? process.env.NODE_OPTIONS ?? '' };
  const run = Date.now().toString(36); // a kept cluster can be benched again

  const rows: SizeRow[] = [];
  for (const n of o.sizes) {
    const floorNs = `bench-floor-${n}-${run}`;
    const opNs = `bench-op-${n}-${run}`;
    await podsOnNode1(cluster, floorNs, n);
    const fr = await floor(cluster, floorNs, n);
    await sleep(1_500); // the audit log is written asynchronously
    const fAudit = requests(cluster.auditLog, fr.t0, fr.t1);
    await podsOnNode1(cluster, opNs, n);
    const or = await operatorRun(cluster, build, opNs, n, { defaults: o.defaults, timeline: o.timeline, env });
    if (or.records) printTimeline(or.records, or.created);
    await sleep(1_500);
    const oAudit = requests(cluster.auditLog, or.t0, or.tEnd);
    if (o.breakdown) printBreakdown(n, oAudit);
    // Room on the nodes for the next N (deleted in the background).
    for (const ns of [floorNs, opNs]) await cluster.deleteNamespace(ns);
    rows.push(sizeRow(n, fr, fAudit, or, oAudit));
  }
  if (rows.length) console.table(rows);

  if (o.drain.length) {
    const drains: DrainRow[] = [];
    for (const n of o.drain) drains.push(await drainRun(cluster, build, n, run, env));
    console.table(drains);
  }

  if (o.costs) console.table(await costsRun(cluster, run));

  if (o.memory.length) {
    const mem: MemoryRow[] = [];
    for (const k of o.memory) mem.push(await memoryRun(cluster, build, k, run));
    console.table(mem);
  }

  if (o.stranded.length) {
    const rows: StrandedRow[] = [];
    for (const p of o.stranded) rows.push(await strandedRun(cluster, build, p, run));
    console.table(rows);
  }
}

/** Operators never outlive the bench; its control plane does only with --keep. */
function cleanUp(keep: boolean): void {
  killOperators();
  if (!keep) BenchCluster.down();
}

function main(): void {
  let parsed: BenchOptions | undefined;
  try {
    parsed = parseOptions(process.argv.slice(2), join(ROOT, 'dist'));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  if (!parsed) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const options = parsed;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      cleanUp(options.keep);
      process.exit(code);
    });
  }
  bench(options).then(
    () => {
      cleanUp(options.keep);
      process.exit(0);
    },
    (e: unknown) => {
      console.error(e);
      cleanUp(options.keep);
      process.exit(1);
    },
  );
}

main();
