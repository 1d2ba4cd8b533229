// Who may read the operator's metrics, decided by the API server as controller-runtime's
// filters.WithAuthenticationAndAuthorization decides it (kubebuilder's secure metrics): the
// caller's bearer token is authenticated with a TokenReview, and the identity it names is
// authorized for the request's path and verb with a SubjectAccessReview (a non-resource
// URL: `get` on `/metrics`, which the metrics-reader ClusterRole grants). Answers are kept
// as long as there (a review for a minute, an allow for five, a deny for 30 s), so that a
// scrape every 30 s costs the API server next to nothing.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Guard, Reply } from './http';
import type { KubeClient } from './kube/client';

interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export const REVIEW_TTL_MS = 60_000;
export const ALLOW_TTL_MS = 300_000;
export const DENY_TTL_MS = 30_000;
const MAX_ENTRIES = 1_000;

/** Answers kept until they expire; the oldest goes first when it is full. */
class Answers<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  constructor(private readonly now: () => number) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e && e.expires > this.now()) return e.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, ttlMs: number): void {
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expires: this.now() + ttlMs });
  }
}

const text = (status: number, body: string): Reply => ({ status, body: `${body}\n` });

/** Lets through only requests whose bearer token names an identity the API server authorizes for the path and verb. */
export function delegatedAuth(client: Pick<KubeClient, 'create'>, log: Logger, now: () => number = Date.now): Guard {
  const reviews = new Answers<UserInfo | null>(now);
  const decisions = new Answers<boolean>(now);

  const authenticate = async (token: string): Promise<UserInfo | null> => {
    const key = createHash('sha256').update(token).digest('hex');
    let user = reviews.get(key);
    if (user === undefined) {
      const review = await client.create<{ status?: { authenticated?: boolean; user?: UserInfo } }>(
        '/apis/authentication.k8s.io/v1/tokenreviews',
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token },
        },
      );
      user = review.status?.authenticated && review.status.user?.username ? review.status.user : null;
      reviews.set(key, user, REVIEW_TTL_MS);
    }
    return user;
  };

  const authorize = async (user: UserInfo, path: string, verb: string): Promise<boolean> => {
    const key = JSON.stringify([user, path, verb]);
    let allowed = decisions.get(key);
    if (allowed === undefined) {
      const review = await client.create<{ status?: { allowed?: boolean } }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb } },
      });
      allowed = review.status?.allowed === true;
      decisions.set(key, allowed, allowed ? ALLOW_TTL_MS : DENY_TTL_MS);
    }
    return allowed;
  };

  return async (req: IncomingMessage) => {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    let user: UserInfo | null = null;
    if (token) {
      try {
        user = await authenticate(token);
      } catch (e) {
        log.error({ err: String(e) }, 'metrics: the TokenReview failed');
        return text(500, 'Authentication failed');
      }
    }
    if (!user) return text(401, 'Unauthorized');
    const path = (req.url ?? '/').split('?')[0];
    const verb = (req.method ?? 'GET').toLowerCase();
    try {
      if (await authorize(user, path, verb)) return undefined;
    } catch (e) {
      log.error({ err: String(e), user: user.username }, 'metrics: the SubjectAccessReview failed');
      return text(500, `Authorization for user ${user.username} failed`);
    }
    log.debug({ user: user.username, path, verb }, 'metrics: access denied');
    return text(403, `Authorization denied for user ${user.username}`);
  };
}

/**
 * The user the API server takes this client for (a SelfSubjectReview, which every
 * authenticated user may make), asked until it answers.
 */
export async function whoAmI(client: KubeClient, log: Logger): Promise<string> {
  for (let delay = 500; ; delay = Math.min(delay * 2, 30_000)) {
    try {
      const r = await client.create<{ status?: { userInfo?: UserInfo } }>('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
      });
      const user = r.status?.userInfo?.username ?? '';
      log.info({ user }, 'the API server knows this operator as');
      return user;
    } catch (e) {
      log.warn({ err: String(e), retryInMs: delay }, 'could not learn who the API server takes this operator for; retrying');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
