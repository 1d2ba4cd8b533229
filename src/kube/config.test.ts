import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubeConfig } from './config';

const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
const b64 = (s: string) => Buffer.from(s).toString('base64');

function file(user: object, cluster: object = { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA') }): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [
        { name: 'ctx', context: { cluster: 'c', user: 'u' } },
        { name: 'other', context: { cluster: 'c' } },
      ],
      'current-context': 'ctx',
    }),
  );
  return path;
}

describe('KubeConfig', () => {
  it('reads the current context: server, CA, client certificate (inline or from files beside it)', async () => {
    writeFileSync(join(dir, 'client.crt'), 'CERT');
    const kc = KubeConfig.fromFile(file({ 'client-certificate': 'client.crt', 'client-key-data': b64('KEY') }));
    expect(kc.cluster).toEqual({
      server: 'https://127.0.0.1:6443',
      ca: Buffer.from('CA'),
      insecureSkipTLSVerify: false,
      tlsServerName: undefined,
    });
    expect(await kc.credentials()).toEqual({ cert: Buffer.from('CERT'), key: Buffer.from('KEY') });
  });

  it('reads a token, and a token file again after a minute (rotated tokens)', async () => {
    expect(await KubeConfig.fromFile(file({ token: 'abc' })).credentials()).toEqual({ token: 'abc' });
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'first\n');
    const kc = KubeConfig.fromFile(file({ tokenFile }));
    expect(await kc.credentials()).toEqual({ token: 'first' });
    writeFileSync(tokenFile, 'second\n');
    expect(await kc.credentials()).toEqual({ token: 'first' }); // cached
    jest.useFakeTimers({ now: Date.now() + 61_000, doNotFake: ['setTimeout', 'setImmediate', 'nextTick'] });
    try {
      expect(await kc.credentials()).toEqual({ token: 'second' });
    } finally {
      jest.useRealTimers();
    }
  });

  it('runs an exec credential plugin, with its env and KUBERNETES_EXEC_INFO, and keeps its answer until it expires', async () => {
    const plugin = join(dir, 'plugin.sh');
    const count = join(dir, 'runs');
    writeFileSync(
      plugin,
      `#!/bin/sh\necho run >> ${count}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s-%s","expirationTimestamp":"2999-01-01T00:00:00Z"}}' "$PREFIX" "$(echo "$KUBERNETES_EXEC_INFO" | grep -c ExecCredential)"\n`,
    );
    chmodSync(plugin, 0o755);
    const kc = KubeConfig.fromFile(
      file({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, env: [{ name: 'PREFIX', value: 'tok' }] } }),
    );
    expect(await kc.credentials()).toEqual({ token: 'tok-1', cert: undefined, key: undefined });
    await kc.credentials();
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(count, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('keeps an exec credential that does not say when it expires until it is refused', async () => {
    const plugin = join(dir, 'plugin-no-expiry.sh');
    const count = join(dir, 'runs-no-expiry');
    writeFileSync(
      plugin,
      `#!/bin/sh\necho run >> ${count}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t"}}'\n`,
    );
    chmodSync(plugin, 0o755);
    const kc = KubeConfig.fromFile(file({ exec: { command: plugin } }));
    const { readFileSync } = await import('node:fs');
    const runs = () => readFileSync(count, 'utf8').trim().split('\n').length;
    expect((await kc.credentials()).token).toBe('t');
    await kc.credentials();
    expect(runs()).toBe(1);
    kc.invalidate(); // the API server answered 401
    await kc.credentials();
    expect(runs()).toBe(2);
  });

  it('says clearly what it does not support, and what is missing', () => {
    expect(() => KubeConfig.fromFile(file({ 'auth-provider': { name: 'gcp' } }))).toThrow(
      /auth-provider gcp is not supported.*exec credential plugin/,
    );
    expect(() => KubeConfig.fromFile(file({ token: 'x' }, { server: 'https://a', 'proxy-url': 'http://proxy' }))).toThrow(
      /proxy-url is not supported/,
    );
    expect(() => KubeConfig.fromFile(file({}), 'nope')).toThrow(/no context "nope"/);
    expect(() => KubeConfig.inCluster(dir, {})).toThrow(/not running in a cluster/);
  });

  it('uses the ServiceAccount the kubelet mounts, in a cluster', async () => {
    const sa = mkdtempSync(join(tmpdir(), 'sa-'));
    writeFileSync(join(sa, 'ca.crt'), 'CA');
    writeFileSync(join(sa, 'token'), 'pod-token');
    const kc = KubeConfig.inCluster(sa, { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' });
    expect(kc.cluster).toEqual({ server: 'https://10.0.0.1:443', ca: Buffer.from('CA') });
    expect(await kc.credentials()).toEqual({ token: 'pod-token' });
    expect(KubeConfig.inCluster(sa, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }).cluster.server).toBe(
      'https://[fd00::1]:443',
    );
    expect(await kc.anonymous().credentials()).toEqual({});
  });
});
