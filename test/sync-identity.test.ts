import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPrivateKey, sign, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { loadOrCreateIdentity, makeCertificate, parseFingerprint } from '../src/sync/identity.js';

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-sync-id-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
const files = (dir: string) => ({ key: path.join(dir, 'sync', 'key.pem'), cert: path.join(dir, 'sync', 'cert.pem') });

test('the first start creates a P-256 key (0600) and a self-signed certificate; the next one reloads them', async (t) => {
  const dir = tmp(t);
  const a = await loadOrCreateIdentity(dir, 'fw-a');
  const f = files(dir);
  assert.equal(statSync(f.key).mode & 0o777, 0o600);
  assert.equal(statSync(f.cert).mode & 0o777, 0o600);
  assert.equal(statSync(path.join(dir, 'sync')).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(path.join(dir, 'sync')).sort(), ['cert.pem', 'key.pem']);

  const cert = new X509Certificate(readFileSync(f.cert));
  assert.equal(a.fingerprint, cert.fingerprint256);
  assert.match(a.fingerprint, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
  assert.equal(a.fingerprint, createHash('sha256').update(cert.raw).digest('hex').toUpperCase().match(/../g)!.join(':'));
  assert.equal(cert.subject, 'CN=fw-a');
  assert.equal(cert.issuer, 'CN=fw-a');
  assert.ok(cert.checkPrivateKey(a.privateKey));
  assert.ok(cert.verify(a.publicKey), 'self-signed');
  assert.equal(a.privateKey.asymmetricKeyType, 'ec');
  assert.equal(a.privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.deepEqual(cert.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // serverAuth, clientAuth
  const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 86400_000);
  assert.ok(Math.abs(years - 20) < 0.01, `validity ${years} years`);
  assert.match(cert.serialNumber, /^[0-9A-F]{32}$/);
  const parsed = new x509.X509Certificate(a.certPem);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(ku?.critical, true);
  assert.equal(parsed.getExtension(x509.BasicConstraintsExtension)?.ca, false);
  assert.equal(a.node, 'fw-a');
  assert.equal(a.keyPem, readFileSync(f.key, 'utf8'));
  assert.equal(a.certPem, readFileSync(f.cert, 'utf8'));

  const keyBefore = readFileSync(f.key, 'utf8');
  const certBefore = readFileSync(f.cert, 'utf8');
  const again = await loadOrCreateIdentity(dir, 'fw-a');
  assert.equal(again.fingerprint, a.fingerprint);
  assert.equal(readFileSync(f.key, 'utf8'), keyBefore);
  assert.equal(readFileSync(f.cert, 'utf8'), certBefore);
  const sig = sign('sha256', Buffer.from('x'), again.privateKey);
  assert.ok(verify('sha256', Buffer.from('x'), a.publicKey, sig), 'the reloaded key is the same key');

  const other = await loadOrCreateIdentity(tmp(t), 'fw-a');
  assert.notEqual(other.fingerprint, a.fingerprint, 'every node has its own key');
});

test('the certificate is made in a process of its own: the one that asks never loads @peculiar/x509', async (t) => {
  // A fresh process (this one imports @peculiar/x509 for its checks): the library's Reflect
  // polyfill (reflect-metadata) would be the trace of it.
  const dir = tmp(t);
  const identity = new URL('../src/sync/identity.ts', import.meta.url).href;
  const code = `const { loadOrCreateIdentity } = await import(${JSON.stringify(identity)}); const id = await loadOrCreateIdentity(${JSON.stringify(dir)}, 'fw-a'); process.stdout.write(JSON.stringify({ fingerprint: id.fingerprint, polyfill: typeof Reflect.getMetadata }));`;
  const out = JSON.parse(execFileSync(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--test')), '--input-type=module', '-e', code], { encoding: 'utf8' })) as { fingerprint: string; polyfill: string };
  assert.equal(out.polyfill, 'undefined');
  const cert = new X509Certificate(readFileSync(files(dir).cert));
  assert.equal(out.fingerprint, cert.fingerprint256);
  assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(files(dir).key, 'utf8'))));
});

test('a certificate that cannot be made is an error naming the file and the reason, and nothing is written', async (t) => {
  const dir = tmp(t);
  const f = files(dir);
  mkdirSync(path.dirname(f.key), { recursive: true });
  await assert.rejects(makeCertificate(f.key, f.cert, 'fw-a'), (e: Error) => {
    assert.ok(e.message.startsWith(`${f.cert}: the certificate could not be made (`), e.message);
    assert.ok(e.message.includes(`${f.key}: cannot be read as a private key`), e.message);
    return true;
  });
  assert.deepEqual(readdirSync(path.dirname(f.key)), []);
});

test('a node name with DN special characters stays one CN', async (t) => {
  const id = await loadOrCreateIdentity(tmp(t), 'fw,b=1+x');
  const cert = new X509Certificate(id.certPem);
  assert.equal(cert.subject, 'CN=fw\\,b=1\\+x'); // one RDN, its value escaped as Node prints it
});

test('a corrupt key is an error naming the file, and nothing is overwritten', async (t) => {
  const dir = tmp(t);
  await loadOrCreateIdentity(dir, 'fw-a');
  const f = files(dir);
  const cert = readFileSync(f.cert, 'utf8');
  writeFileSync(f.key, '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => {
    assert.ok(e.message.includes(f.key), e.message);
    assert.match(e.message, /not a PEM private key/);
    assert.match(e.message, /never overwrites/);
    return true;
  });
  assert.equal(readFileSync(f.key, 'utf8'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
  assert.equal(readFileSync(f.cert, 'utf8'), cert);
});

test('a corrupt certificate is an error naming the file, and nothing is overwritten', async (t) => {
  const dir = tmp(t);
  await loadOrCreateIdentity(dir, 'fw-a');
  const f = files(dir);
  const key = readFileSync(f.key, 'utf8');
  const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  writeFileSync(f.cert, broken);
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => e.message.includes(f.cert) && /not a readable certificate/.test(e.message));
  writeFileSync(f.cert, 'garbage');
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => e.message.includes(f.cert) && /not a PEM certificate/.test(e.message));
  assert.equal(readFileSync(f.cert, 'utf8'), 'garbage');
  assert.equal(readFileSync(f.key, 'utf8'), key);
});

test('a certificate of another key is a mismatch naming the certificate file', async (t) => {
  const dir = tmp(t);
  await loadOrCreateIdentity(dir, 'fw-a');
  const otherDir = tmp(t);
  const other = await loadOrCreateIdentity(otherDir, 'fw-b');
  const f = files(dir);
  const key = readFileSync(f.key, 'utf8');
  writeFileSync(f.cert, other.certPem);
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => e.message.includes(f.cert) && /does not belong to the key/.test(e.message) && e.message.includes(f.key));
  assert.equal(readFileSync(f.key, 'utf8'), key);
  assert.equal(readFileSync(f.cert, 'utf8'), other.certPem);
});

test('a key of another type is refused, naming the file', async (t) => {
  const dir = tmp(t);
  const f = files(dir);
  mkdirSync(path.dirname(f.key), { recursive: true });
  const { generateKeyPairSync } = await import('node:crypto');
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeFileSync(f.key, ed, { mode: 0o600 });
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => e.message.includes(f.key) && /not an ECDSA P-256 key \(found ed25519\)/.test(e.message));
  assert.deepEqual(readdirSync(path.dirname(f.key)), ['key.pem'], 'no certificate made for a refused key');
});

test('a certificate without its key is an error; a key without certificate gets one', async (t) => {
  const dir = tmp(t);
  const first = await loadOrCreateIdentity(dir, 'fw-a');
  const f = files(dir);
  rmSync(f.key);
  await assert.rejects(loadOrCreateIdentity(dir, 'fw-a'), (e: Error) => e.message.includes(f.key) && /missing/.test(e.message));
  assert.equal(readFileSync(f.cert, 'utf8'), first.certPem);

  // A crash between writing the key and the certificate: the key is kept, a certificate made.
  const dir2 = tmp(t);
  const f2 = files(dir2);
  mkdirSync(path.dirname(f2.key), { recursive: true });
  writeFileSync(f2.key, first.keyPem, { mode: 0o600 });
  writeFileSync(`${f2.cert}.tmp-abcdef`, 'half-written');
  const id = await loadOrCreateIdentity(dir2, 'fw-a');
  assert.equal(id.keyPem, first.keyPem);
  assert.ok(new X509Certificate(id.certPem).checkPrivateKey(createPrivateKey(first.keyPem)));
  assert.deepEqual(readdirSync(path.dirname(f2.key)).sort(), ['cert.pem', 'key.pem'], 'the stale temporary file is gone');
});

test('parseFingerprint accepts the usual spellings and returns the canonical one', () => {
  const canonical = '3C:5A:12:30:DE:E8:7E:A3:30:6B:A1:DA:AF:1E:C2:FA:7A:2A:D7:1E:27:62:75:45:16:8A:87:80:51:CD:F1:D3';
  const hex = canonical.replaceAll(':', '');
  for (const s of [
    canonical,
    canonical.toLowerCase(),
    hex,
    hex.toLowerCase(),
    `sha256:${hex.toLowerCase()}`,
    `SHA256:${canonical}`,
    `sha256 Fingerprint=${canonical}`, // openssl 3 x509 -fingerprint -sha256
    `SHA256 Fingerprint=${canonical}`, // openssl 1.1
    `  ${canonical}\n`,
  ]) {
    assert.equal(parseFingerprint(s), canonical, s);
  }
  for (const s of ['', 'sha256:', canonical.slice(3), `${hex}00`, hex.replace('3C', 'G3'), canonical.replace(':', ''), 'sha1:' + hex, `md5 Fingerprint=${canonical}`]) {
    assert.equal(parseFingerprint(s), undefined, s);
  }
});
