import { X509Certificate } from 'node:crypto';
import { issue, needsRenewal } from './certs';

describe('webhook serving certificates', () => {
  const c = issue(['podmigration-webhook-service.podmigration-system.svc', '127.0.0.1']);
  const ca = new X509Certificate(c.ca);
  const leaf = new X509Certificate(c.cert);

  it('issues a serving certificate for the names asked, signed by its own CA', () => {
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.subjectAltName).toContain('DNS:podmigration-webhook-service.podmigration-system.svc');
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.checkPrivateKey(require('node:crypto').createPrivateKey(c.key))).toBe(true);
  });

  it('renews once less than a third of the lifetime is left, and when anything is missing', () => {
    const expires = Date.parse(leaf.validTo);
    expect(needsRenewal(c)).toBe(false);
    expect(needsRenewal(c, expires - 200 * 86_400_000)).toBe(false);
    expect(needsRenewal(c, expires - 100 * 86_400_000)).toBe(true);
    expect(needsRenewal(undefined)).toBe(true);
    expect(needsRenewal({ ...c, key: '' })).toBe(true);
    expect(needsRenewal({ ...c, cert: 'garbage' })).toBe(true);
  });
});
