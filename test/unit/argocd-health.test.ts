// The Argo CD health check shipped in config/argocd, run in a Lua VM as Argo CD runs it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { lua, lauxlib, lualib, to_luastring } = require('fengari');

const dir = join(__dirname, '../../config/argocd');
const script = readFileSync(join(dir, 'podmigration-health.lua'), 'utf8');

/** JSON -> a Lua table constructor. */
function toLua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(toLua).join(', ')}}`;
  return `{${Object.entries(v as object).map(([k, x]) => `[${JSON.stringify(k)}] = ${toLua(x)}`).join(', ')}}`;
}

function health(obj: object): { status: string; message: string } {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  const code = `obj = ${toLua(obj)}\nlocal function check()\n${script}\nend\nlocal hs = check()\nreturn hs.status, hs.message`;
  if (lauxlib.luaL_dostring(L, to_luastring(code)) !== lua.LUA_OK) throw new Error(lua.lua_tojsstring(L, -1));
  return { status: lua.lua_tojsstring(L, -2), message: lua.lua_tojsstring(L, -1) };
}

describe('Argo CD health check for PodMigration', () => {
  it('is Progressing before the operator has written a status', () => {
    expect(health({ spec: {} }).status).toBe('Progressing');
  });
  it.each(['Pending', 'CapturingState', 'Checkpointing', 'CreatingTargetPod', 'DeletingSourcePod', 'CollectingMetrics'])(
    'is Progressing in %s',
    (phase) => {
      const hs = health({ status: { phase, progress: '3/5', message: 'waiting' } });
      expect(hs).toEqual({ status: 'Progressing', message: `${phase} (3/5): waiting` });
    },
  );
  it('is Healthy when Completed', () => {
    expect(health({ status: { phase: 'Completed', message: 'done' } })).toEqual({ status: 'Healthy', message: 'Completed: done' });
  });
  it.each(['Failed', 'Cancelled'])('is Degraded when %s, with the reason', (phase) => {
    expect(health({ status: { phase, reason: 'PodNotFound', message: 'gone' } })).toEqual({ status: 'Degraded', message: `${phase}: PodNotFound: gone` });
  });
  it('ships the same script in the argocd-cm patch', () => {
    const patch = readFileSync(join(dir, 'argocd-cm-patch.yaml'), 'utf8');
    const block = patch.split('resource.customizations.health.migration.ai-storage.io_PodMigration: |\n')[1];
    const embedded = block.split('\n').map((l) => l.replace(/^ {4}/, '')).join('\n').trim();
    expect(embedded).toBe(script.trim());
  });
});
