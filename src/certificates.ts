// Serving certificates the operator issues itself: a CA, and a certificate it signs for a
// server's names (the webhook's, the metrics endpoint's), with their renewal rule.
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';

export interface ServingCert {
  ca: string;
  cert: string;
  key: string;
}

const CA_DAYS = 3650;
const CERT_DAYS = 365;

/** PEM certificate's notAfter, in ms. */
function notAfter(pem: string): number {
  return forge.pki.certificateFromPem(pem).validity.notAfter.getTime();
}

const generateRsa = promisify(generateKeyPair);

/** An RSA key pair, generated off the event loop (2048 bits take hundreds of ms of CPU). */
async function keyPair(): Promise<{ privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string }> {
  const { privateKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e), pem: privateKey };
}

function certificate(o: {
  subject: string;
  publicKey: forge.pki.PublicKey;
  signer: forge.pki.rsa.PrivateKey;
  issuer: forge.pki.CertificateField[];
  days: number;
  ca: boolean;
  dnsNames?: string[];
}): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = o.publicKey;
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 5 * 60_000);
  cert.validity.notAfter = new Date(now + o.days * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: o.subject }]);
  cert.setIssuer(o.issuer);
  cert.setExtensions(
    o.ca
      ? [
          { name: 'basicConstraints', cA: true, critical: true },
          { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        ]
      : [
          { name: 'basicConstraints', cA: false },
          { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
          { name: 'extKeyUsage', serverAuth: true },
          {
            name: 'subjectAltName',
            altNames: (o.dnsNames ?? []).map((n) => (/^[\d.]+$/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })),
          },
        ],
  );
  cert.sign(o.signer, forge.md.sha256.create());
  return cert;
}

/** A new CA (named `caName`) and a serving certificate for `dnsNames` signed by it. */
export async function issue(dnsNames: string[], caName = 'podmigration-webhook-ca'): Promise<ServingCert> {
  const [ca, leaf] = await Promise.all([keyPair(), keyPair()]);
  const caCert = certificate({
    subject: caName,
    publicKey: ca.publicKey,
    signer: ca.privateKey,
    issuer: [{ name: 'commonName', value: caName }],
    days: CA_DAYS,
    ca: true,
  });
  const cert = certificate({
    subject: dnsNames[0],
    publicKey: leaf.publicKey,
    signer: ca.privateKey,
    issuer: caCert.subject.attributes,
    days: CERT_DAYS,
    ca: false,
    dnsNames,
  });
  return { ca: forge.pki.certificateToPem(caCert), cert: forge.pki.certificateToPem(cert), key: leaf.pem };
}

/** Renew once less than a third of the certificate's lifetime is left. */
export function needsRenewal(c: ServingCert | undefined, now = Date.now()): boolean {
  if (!c?.ca || !c.cert || !c.key) return true;
  try {
    return notAfter(c.cert) - now < (CERT_DAYS * 86_400_000) / 3;
  } catch {
    return true;
  }
}
