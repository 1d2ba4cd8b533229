// The folders of src/ are layers: a file imports only from its own folder and the layers
// below it, never from one above or beside it, so that every piece can be read (and
// tested) with what lies beneath it alone.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

const SRC = __dirname;

/** Lower first. Files directly in src/ are named by their base name. */
const LAYERS: string[][] = [
  ['api', 'version'],
  ['errors', 'metrics', 'logformat', 'certificates'],
  ['tls'],
  ['http'],
  ['kube'],
  ['auth', 'migration'],
  ['actions'],
  ['modes'],
  ['steps'],
  ['controller', 'drain', 'reclaim', 'webhook', 'facade'],
  ['options', 'leaderelection'],
  ['main'],
];

const unitOf = (file: string) => relative(SRC, file).split(sep)[0].replace(/\.ts$/, '');
const rank = (unit: string) => LAYERS.findIndex((l) => l.includes(unit));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

it('knows every folder and file of src/', () => {
  const unknown = [...new Set(sources(SRC).map(unitOf))].filter((u) => rank(u) < 0);
  expect(unknown).toEqual([]);
});

it('imports only downwards', () => {
  const upward: string[] = [];
  for (const file of sources(SRC)) {
    const from = unitOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)[^'"]*?from '(\.[^']+)'/gm)) {
      const to = unitOf(join(dirname(file), m[1]));
      if (to === from) continue;
      if (rank(to) >= rank(from)) upward.push(`${relative(SRC, file)} imports ${m[1]} (${to})`);
    }
  }
  expect(upward).toEqual([]);
});
