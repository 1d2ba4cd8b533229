// Serving certificates for the admission webhook, managed by the operator itself (as
// open-policy-agent/cert-controller does for Gatekeeper): a CA and a serving certificate
// kept in a Secret in the operator's namespace, the CA bundle written into the operator's
// own MutatingWebhookConfiguration, both renewed well before they expire. Every replica
// runs this; the Secret's resourceVersion settles races between them.
import type { Logger } from 'pino';
import { type ServingCert, issue, needsRenewal } from '../certificates';
import { isAlreadyExists, isConflict, isNotFound } from '../errors';
import type { KubeClient } from '../kube/client';

export type { ServingCert } from '../certificates';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString() : '');

interface Secret {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

export interface CertManagerOptions {
  client: KubeClient;
  namespace: string;
  secretName: string;
  /** The webhook configurations whose CA bundle this keeps; an optional one may be absent (not installed). */
  webhookConfigs: { kind: 'mutatingwebhookconfigurations' | 'validatingwebhookconfigurations'; name: string; optional?: boolean }[];
  dnsNames: string[];
  log: Logger;
  /** Called with every certificate in force (first, and after each renewal). */
  onCert: (c: ServingCert) => void;
}

/**
 * Keeps a valid serving certificate in the Secret and its CA in the webhook configuration.
 * `sync` is idempotent; `start` runs it now and then every `periodMs`.
 */
export class CertManager {
  private timer?: NodeJS.Timeout;
  private current = '';

  constructor(private readonly o: CertManagerOptions) {}

  private get secretPath(): string {
    return `/api/v1/namespaces/${this.o.namespace}/secrets/${this.o.secretName}`;
  }

  async sync(): Promise<ServingCert> {
    const { client } = this.o;
    let secret: Secret | undefined;
    try {
      secret = await client.get<Secret>(this.secretPath);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    let c: ServingCert | undefined = secret && {
      ca: unb64(secret.data?.['ca.crt']),
      cert: unb64(secret.data?.['tls.crt']),
      key: unb64(secret.data?.['tls.key']),
    };
    if (needsRenewal(c)) {
      const fresh = await issue(this.o.dnsNames);
      const body: Secret = {
        metadata: {
          name: this.o.secretName,
          namespace: this.o.namespace,
          ...(secret ? { resourceVersion: secret.metadata.resourceVersion } : {}),
        },
        type: 'kubernetes.io/tls',
        data: { 'ca.crt': b64(fresh.ca), 'tls.crt': b64(fresh.cert), 'tls.key': b64(fresh.key) },
      };
      try {
        if (secret) await client.replace(this.secretPath, { apiVersion: 'v1', kind: 'Secret', ...body });
        else await client.create(`/api/v1/namespaces/${this.o.namespace}/secrets`, { apiVersion: 'v1', kind: 'Secret', ...body });
        c = fresh;
        this.o.log.info(
          { secret: `${this.o.namespace}/${this.o.secretName}`, dnsNames: this.o.dnsNames },
          'issued webhook serving certificate',
        );
      } catch (e) {
        // Another replica renewed it first: use theirs.
        if (!isConflict(e) && !isAlreadyExists(e)) throw e;
        return this.sync();
      }
    }
    await this.injectCABundle(c!.ca);
    if (c!.cert !== this.current) {
      this.current = c!.cert;
      this.o.onCert(c!);
    }
    return c!;
  }

  /** Writes the CA into every webhook of the configurations that does not have it yet. */
  private async injectCABundle(ca: string): Promise<void> {
    const bundle = b64(ca);
    for (const { kind, name, optional } of this.o.webhookConfigs) {
      const path = `/apis/admissionregistration.k8s.io/v1/${kind}/${name}`;
      let config: { metadata: { resourceVersion: string }; webhooks?: { clientConfig: { caBundle?: string } }[] };
      try {
        config = await this.o.client.get(path);
      } catch (e) {
        if (optional && isNotFound(e)) continue;
        throw e;
      }
      if ((config.webhooks ?? []).every((w) => w.clientConfig.caBundle === bundle)) continue;
      for (const w of config.webhooks ?? []) w.clientConfig.caBundle = bundle;
      await this.o.client.replace(path, config);
      this.o.log.info({ webhookConfiguration: name, kind }, 'injected the CA bundle');
    }
  }

  /** Syncs now (retrying until it succeeds), then every `periodMs`. */
  async start(periodMs = 3_600_000): Promise<void> {
    for (let delay = 500; ; delay = Math.min(delay * 2, 30_000)) {
      try {
        await this.sync();
        break;
      } catch (e) {
        this.o.log.warn({ err: String(e), retryInMs: delay }, 'could not set up the webhook certificate; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    const again = () => {
      this.timer = setTimeout(() => {
        this.sync()
          .catch((e: unknown) => this.o.log.warn({ err: String(e) }, 'could not renew the webhook certificate'))
          .finally(again);
      }, periodMs);
    };
    again();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
