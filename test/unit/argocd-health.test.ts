// The Argo CD health check shipped in config/argocd/resource_customizations, run on the
// cases of its health_test.yaml (testdata captured from the cluster) in a Lua VM here
// (fengari); test/argocd.test.ts runs the same cases in gopher-lua, the VM Argo CD embeds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { lua, lauxlib, lualib, to_luastring } = require('fengari');

const argocd = join(__dirname, '../../config/argocd');
const dir = join(argocd, 'resource_customizations/migration.ai-storage.io/PodMigration');
const script = readFileSync(join(dir, 'health.lua'), 'utf8');

/** JSON -> a Lua table constructor. */
function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  return `{${Object.entries(v as object)
    .map(([k, x]) => `[${JSON.stringify(k)}] = ${toLua(x)}`)
    .join(', ')}}`;
}

function health(obj: object): { status: string; message: string } {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const code = `obj = ${toLua(obj)}\nlocal function check()\n${script}\nend\nlocal hs = check()\nreturn hs.status, hs.message`;
  if (lauxlib.luaL_dostring(L, to_luastring(code)) !== lua.LUA_OK) throw new Error(lua.lua_tojsstring(L, -1));
  return { status: lua.lua_tojsstring(L, -2), message: lua.lua_tojsstring(L, -1) };
}

interface HealthTest {
  tests: { healthStatus: { status: string; message: string }; inputPath: string }[];
}
const cases = (parse(readFileSync(join(dir, 'health_test.yaml'), 'utf8')) as HealthTest).tests;

describe('Argo CD health check for PodMigration', () => {
  it('covers every state a PodMigration ends or waits in', () => {
    expect(cases.map((c) => c.healthStatus.status).sort()).toEqual([
      'Degraded',
      'Degraded',
      'Healthy',
      'Healthy',
      'Progressing',
      'Progressing',
    ]);
  });
  it.each(cases.map((c) => [c.inputPath, c.healthStatus] as const))('%s is %j', (inputPath, expected) => {
    expect(health(parse(readFileSync(join(dir, inputPath), 'utf8')))).toEqual(expected);
  });
  it('is Progressing before any status exists', () => {
    expect(health({ spec: {} }).status).toBe('Progressing');
  });
  it('ships the same script in the argocd-cm patch', () => {
    const patch = readFileSync(join(argocd, 'argocd-cm-patch.yaml'), 'utf8');
    const block = patch.split('resource.customizations.health.migration.ai-storage.io_PodMigration: |\n')[1];
    const embedded = block
      .split('\n')
      .map((l) => l.replace(/^ {4}/, ''))
      .join('\n')
      .trim();
    expect(embedded).toBe(script.trim());
  });
});
