// The benchmark's options (test/bench/options.ts), and the README's make bench commands.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions, UsageError } from '../bench/options';

const root = join(__dirname, '../..');

it('reads values as they are, switches, and the defaults', () => {
  expect(parseOptions(['--n', '', '--costs', '--node-options', '--max-old-space-size=96', '--keep'], 'dist')).toEqual({
    sizes: [],
    drain: [],
    memory: [],
    stranded: [],
    dist: 'dist',
    keep: true,
    breakdown: false,
    timeline: false,
    costs: true,
    defaults: false,
    nodeOptions: '--max-old-space-size=96',
  });
  expect(parseOptions([], 'dist')).toMatchObject({ sizes: [1, 100], memory: [], dist: 'dist', nodeOptions: undefined });
  expect(parseOptions(['--n', '1,20', '--memory', '200', '--n', '5'], 'dist')).toMatchObject({ sizes: [1, 20], memory: [200] });
  expect(parseOptions(['--drain', '100,500'], 'dist')).toMatchObject({ drain: [100, 500] });
  expect(parseOptions(['--n', '', '--stranded', '10000'], 'dist')).toMatchObject({ sizes: [], stranded: [10000] });
  expect(parseOptions(['--help'], 'dist')).toBeUndefined();
});

it('refuses unknown options, missing values and sizes that are not counts', () => {
  for (const argv of [['--bogus'], ['-n', '1'], ['--n'], ['--n', '1,x'], ['--memory', '0'], ['--drain', '-5'], ['--stranded', 'x']]) {
    expect(() => parseOptions(argv, 'dist')).toThrow(UsageError);
  }
});

it("accepts the README's make bench commands", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Benchmark'), readme.indexOf('\n## ', readme.indexOf('## Benchmark') + 1));
  const args = [...section.matchAll(/make bench ARGS=(?:'([^']*)'|"([^"]*)"|(\S+))/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  expect(args.length).toBeGreaterThan(3);
  for (const a of args) {
    // Words as the shell splits these: '' is an empty word.
    const argv = a.split(/\s+/).map((w) => (w === "''" ? '' : w));
    expect(() => parseOptions(argv, 'dist')).not.toThrow();
  }
});
