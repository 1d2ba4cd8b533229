// The tests run on the Node.js major the image ships (make fetches it when the machine's
// is another), and package.json's engines allows it.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '../..');

it('runs on the Node.js major of the image', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const majors = [...dockerfile.matchAll(/^FROM (?:node:|gcr\.io\/distroless\/nodejs)(\d+)/gm)].map((m) => m[1]);
  expect(majors.length).toBe(2); // build and run stages
  expect(new Set(majors).size).toBe(1);
  expect(process.versions.node.split('.')[0]).toBe(majors[0]);
});

it('declares an engines range the shipped runtime satisfies, and loads the ESM-only dependencies it needs', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
  const min = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node);
  expect(min).not.toBeNull();
  const [major, minor] = process.versions.node.split('.').map(Number);
  expect(major > Number(min![1]) || (major === Number(min![1]) && minor >= Number(min![2]))).toBe(true);
  // require() of an ES module without a flag, as the compiled operator does with client-node.
  const r = spawnSync(process.execPath, ['-e', 'require("@kubernetes/client-node"); console.log("loaded")'], {
    cwd: root,
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('loaded');
});
