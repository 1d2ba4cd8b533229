// The Argo CD health check run the way Argo CD runs it: in gopher-lua (the VM Argo CD
// embeds), on every case of its health_test.yaml, by hack/tools/argocd-health.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './cluster/provider';
import { env } from './helpers';

it('passes every case of health_test.yaml in gopher-lua', () => {
  const r = spawnSync(join(env.bin, 'argocd-health'), [join(ROOT, 'config/argocd/resource_customizations')], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/^6 passed, 0 failed$/m);
  expect(r.status).toBe(0);
});
