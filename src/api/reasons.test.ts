// The README is the users' catalogue of reasons: it lists exactly the reasons the operator
// ends migrations with, and the tests it names for each exist.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STEP_TABLE, TOTAL_STEPS } from '../migration/status';
import { END_REASONS } from './reasons';

const ROOT = join(__dirname, '../..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The rows of the markdown table whose header row starts with `header`. */
function table(header: string): string[][] {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  if (start < 0) throw new Error(`no table headed ${header} in README.md`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The reasons a first cell names (`Reason`, or `A` / `B`), without its "(phase `X`)" note. */
const ticked = (cell: string) => [...cell.replace(/\(phase `\w+`\)/, '').matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]);

describe('the README', () => {
  const rows = table('| reason | when | what to do | test |');

  it('lists every reason a migration can end with, and no other', () => {
    const listed = rows.flatMap((r) => ticked(r[0]));
    expect([...listed].sort()).toEqual(Object.keys(END_REASONS).sort());
    expect(new Set(listed).size).toBe(listed.length);
  });

  it('says in which phase each reason ends a migration', () => {
    for (const r of rows) {
      const phase = /\(phase `(\w+)`\)/.exec(r[0])?.[1] ?? 'Failed';
      for (const reason of ticked(r[0]).filter((x) => x in END_REASONS)) {
        expect([reason, END_REASONS[reason as keyof typeof END_REASONS]]).toEqual([reason, phase]);
      }
    }
  });

  it('names tests that exist', () => {
    for (const r of rows) {
      for (const name of r[3].split(/[,;]\s*/).map((t) => t.replace(/\s*\(.*\)$/, '').trim())) {
        if (name === '–' || name === 'unit tests') continue;
        expect([name, existsSync(join(ROOT, 'test', `${name}.test.ts`))]).toEqual([name, true]);
      }
    }
  });

  it('lists the phases of the step table, in order', () => {
    const phases = table('| phase | step | what the operator does |').map((r) => r.slice(0, 2));
    const steps = phases.filter((p) => /^\d\/\d$/.test(p[1]));
    expect(steps).toEqual(STEP_TABLE.map((s, i) => [`\`${s.phase}\``, `${i + 1}/${TOTAL_STEPS}`]));
  });
});
