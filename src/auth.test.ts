import type { IncomingMessage } from 'node:http';
import pino from 'pino';
import { ALLOW_TTL_MS, REVIEW_TTL_MS, delegatedAuth } from './auth';

/** An API server that knows two tokens; only the reader may get /metrics. */
function apiServer() {
  const calls: string[] = [];
  let down = false;
  const users: Record<string, string> = {
    'reader-token': 'system:serviceaccount:mon:prometheus',
    'other-token': 'system:serviceaccount:ml:trainer',
  };
  const create = async <T>(path: string, body: unknown): Promise<T> => {
    const spec = (body as { spec: { token?: string; user?: string; nonResourceAttributes?: { path: string; verb: string } } }).spec;
    calls.push(path.split('/').pop()!);
    if (down) throw new Error('connect ECONNREFUSED');
    if (path.endsWith('/tokenreviews')) {
      const username = users[spec.token!];
      return {
        status: username ? { authenticated: true, user: { username, groups: ['system:authenticated'] } } : { authenticated: false },
      } as T;
    }
    const { path: p, verb } = spec.nonResourceAttributes!;
    return { status: { allowed: spec.user === users['reader-token'] && p === '/metrics' && verb === 'get' } } as T;
  };
  return { calls, create, setDown: (d: boolean) => (down = d) };
}

const request = (token?: string, method = 'GET', url = '/metrics') =>
  ({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {} }) as unknown as IncomingMessage;

describe('delegatedAuth (TokenReview + SubjectAccessReview)', () => {
  let now = 0;
  const clock = () => now;
  const log = pino({ level: 'silent' });

  it('refuses no token and unknown tokens (401), identities without the right (403), and lets the reader through', async () => {
    const api = apiServer();
    const guard = delegatedAuth(api, log, clock);
    expect(await guard(request())).toEqual({ status: 401, body: 'Unauthorized\n' });
    expect(await guard(request('forged'))).toEqual({ status: 401, body: 'Unauthorized\n' });
    expect(await guard(request('other-token'))).toEqual({
      status: 403,
      body: 'Authorization denied for user system:serviceaccount:ml:trainer\n',
    });
    expect(await guard(request('reader-token'))).toBeUndefined();
    // The verb and the path are the request's.
    expect(await guard(request('reader-token', 'POST'))).toMatchObject({ status: 403 });
    expect(await guard(request('reader-token', 'GET', '/debug?x=1'))).toMatchObject({ status: 403 });
    // No token, no request to the API server.
    expect(api.calls.filter((c) => c === 'tokenreviews')).toHaveLength(3);
  });

  it('keeps answers as controller-runtime does: a review a minute, an allow five, a deny 30 s', async () => {
    const api = apiServer();
    const guard = delegatedAuth(api, log, clock);
    now = 0;
    await guard(request('reader-token'));
    await guard(request('other-token'));
    expect(api.calls).toEqual(['tokenreviews', 'subjectaccessreviews', 'tokenreviews', 'subjectaccessreviews']);
    api.calls.length = 0;
    now = REVIEW_TTL_MS - 1;
    expect(await guard(request('reader-token'))).toBeUndefined();
    expect(await guard(request('other-token'))).toMatchObject({ status: 403 });
    expect(api.calls).toEqual(['subjectaccessreviews']); // the deny expired at 30 s
    now = REVIEW_TTL_MS + 1;
    await guard(request('reader-token'));
    expect(api.calls).toEqual(['subjectaccessreviews', 'tokenreviews']);
    now = ALLOW_TTL_MS + 1;
    await guard(request('reader-token'));
    expect(api.calls.slice(2)).toEqual(['tokenreviews', 'subjectaccessreviews']);
  });

  it('answers 500 when the API server cannot be asked, and caches nothing then', async () => {
    const api = apiServer();
    const guard = delegatedAuth(api, log, clock);
    api.setDown(true);
    expect(await guard(request('reader-token'))).toEqual({ status: 500, body: 'Authentication failed\n' });
    api.setDown(false);
    expect(await guard(request('reader-token'))).toBeUndefined();
  });
});
