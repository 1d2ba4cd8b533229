import { X509Certificate, createPrivateKey } from 'node:crypto';
import { type ServingCert, issue, needsRenewal } from './certificates';

describe('webhook serving certificates', () => {
  let c: ServingCert;
  let ca: X509Certificate;
  let leaf: X509Certificate;
  beforeAll(async () => {
    c = await issue(['podmigration-webhook-service.podmigration-system.svc', '127.0.0.1']);
    ca = new X509Certificate(c.ca);
    leaf = new X509Certificate(c.cert);
  });

  it('issues a serving certificate for the names asked, signed by its own CA', () => {
    expect(ca.ca).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.subjectAltName).toContain('DNS:podmigration-webhook-service.podmigration-system.svc');
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.checkPrivateKey(createPrivateKey(c.key))).toBe(true);
  });

  it('generates its keys off the event loop: other work goes on meanwhile', async () => {
    let turns = 0;
    let done = false;
    const spin = () => {
      turns += 1;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    await issue(['localhost']).finally(() => (done = true));
    // Generated on the event loop, the keys would be ready before a single turn.
    expect(turns).toBeGreaterThan(1);
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
