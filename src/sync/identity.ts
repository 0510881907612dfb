/**
 * A node's sync identity: an ECDSA P-256 key pair and a self-signed certificate, created on
 * first start in `<stateDir>/sync/` and pinned by the peer by the certificate's SHA-256
 * fingerprint. No CA is involved: trust is exactly "this peer presented the certificate whose
 * fingerprint the operator configured", so names, chains and validity dates are never checked
 * (the certificate is valid for 20 years only so that tools which do look at it stay quiet).
 *
 * Dependency: @peculiar/x509 (pinned at 1.14.3) builds the certificate. Node's crypto makes
 * keys and parses certificates but cannot create one, and hand-encoding the DER of a
 * certificate with its extensions is where subtle bugs live. @peculiar/x509 is TypeScript,
 * MIT, actively maintained by Peculiar Ventures, pure JavaScript on the platform's WebCrypto
 * (no native code, no openssl binary), and is needed once in a node's lifetime, so it is
 * loaded lazily. 1.14.3, the last 1.x, rather than 2.x: 2.x requires the application to load
 * a Reflect polyfill (reflect-metadata) itself before the library, a second direct dependency
 * and an import-order trap at every entry point; 1.14.3 depends on reflect-metadata and loads
 * it itself. Everything else (parsing, fingerprints, key checks, TLS) is node:crypto/node:tls.
 *
 * Files: key.pem (PKCS#8, mode 0600) and cert.pem, each written crash-safely (temporary file,
 * fsync, rename, directory fsync). The key is written first; a crash before the certificate is
 * written leaves a key without certificate, and the next start creates the missing
 * certificate for that key (nobody can have pinned a certificate that was never written).
 * Existing files are never overwritten: a corrupt file, a key of another type or a certificate
 * that does not belong to the key stops the start with an error naming the file.
 */
import { KeyObject, X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '../config/atomic.js';

export interface SyncIdentity {
  /** This node's name, the certificate's CN when carpd created it. */
  node: string;
  certPem: string;
  keyPem: string;
  /** SHA-256 of the DER certificate, "AB:CD:…" (see parseFingerprint). */
  fingerprint: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export const SYNC_DIR = 'sync';
export const KEY_FILE = 'key.pem';
export const CERT_FILE = 'cert.pem';
export const CERT_VALIDITY_YEARS = 20;

const RECOVER_HINT = 'carpd never overwrites it: restore the file, or remove both key.pem and cert.pem to create a new identity (the peer must then pin the new fingerprint)';

/** The canonical fingerprint text, as node:crypto's X509Certificate.fingerprint256 prints it. */
export function fingerprintOf(cert: X509Certificate): string {
  return cert.fingerprint256;
}

/**
 * A SHA-256 fingerprint in any usual spelling, in canonical form ("AB:CD:…", 32 uppercase hex
 * pairs), or undefined when it is not one. Accepted: with or without colons, any case, and
 * prefixed by `sha256:` or `SHA256 Fingerprint=` (what `openssl x509 -fingerprint -sha256`
 * prints, any case).
 */
export function parseFingerprint(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  let s = text.trim();
  const prefix = /^(?:sha-?256\s+fingerprint\s*=|sha-?256\s*:)\s*/i.exec(s);
  if (prefix) s = s.slice(prefix[0].length);
  let hex: string;
  if (/^[0-9a-f]{64}$/i.test(s)) hex = s;
  else if (/^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/i.test(s)) hex = s.replaceAll(':', '');
  else return undefined;
  return hex.toUpperCase().match(/../g)!.join(':');
}

/**
 * Loads this node's identity, creating the key and certificate on first start. `subdir` is the
 * folder of the state directory it lives in: `sync` for the sync identity, `api` for the
 * management API's self-signed certificate (the same files, rules and recovery).
 */
export async function loadOrCreateIdentity(stateDir: string, node: string, subdir: string = SYNC_DIR): Promise<SyncIdentity> {
  if (typeof node !== 'string' || node.length === 0) throw new Error('the sync identity needs a node name');
  const dir = path.join(stateDir, subdir);
  const keyFile = path.join(dir, KEY_FILE);
  const certFile = path.join(dir, CERT_FILE);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await removeStaleTemps(dir);

  let keyPem = await readIfExists(keyFile);
  let certPem = await readIfExists(certFile);
  if (keyPem === undefined && certPem !== undefined) {
    throw new Error(`${keyFile}: missing, but ${certFile} exists and is useless without its key; ${RECOVER_HINT}`);
  }
  if (keyPem === undefined) {
    keyPem = newPrivateKey().export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFileAtomic(keyFile, keyPem);
  }
  const privateKey = parseKey(keyFile, keyPem);
  if (certPem === undefined) {
    certPem = await selfSignedCertificate(node, privateKey);
    await writeFileAtomic(certFile, certPem);
  }
  const cert = parseCert(certFile, certPem);
  if (!cert.checkPrivateKey(privateKey)) {
    throw new Error(`${certFile}: the certificate does not belong to the key in ${keyFile}; ${RECOVER_HINT}`);
  }
  return { node, certPem, keyPem, fingerprint: fingerprintOf(cert), publicKey: cert.publicKey, privateKey };
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file}: cannot be read (${(e as Error).message})`, { cause: e });
  }
}

function parseKey(file: string, pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    throw new Error(`${file}: not a PEM private key (${(e as Error).message}); ${RECOVER_HINT}`, { cause: e });
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new Error(`${file}: not an ECDSA P-256 key (found ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}); ${RECOVER_HINT}`);
  }
  return key;
}

function parseCert(file: string, pem: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`${file}: not a PEM certificate (no BEGIN CERTIFICATE line); ${RECOVER_HINT}`);
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new Error(`${file}: not a readable certificate (${(e as Error).message}); ${RECOVER_HINT}`, { cause: e });
  }
}

function newPrivateKey(): KeyObject {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

/** A self-signed end-entity certificate for the key: CN = node, 20 years, random serial. */
async function selfSignedCertificate(node: string, privateKey: KeyObject): Promise<string> {
  // Loaded only here: it takes ~150 ms to load, and is needed once in a node's lifetime.
  const x509 = await import('@peculiar/x509');
  const alg = { name: 'ECDSA', namedCurve: 'P-256' };
  const keys: CryptoKeyPair = {
    privateKey: await crypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']),
    publicKey: await crypto.subtle.importKey('spki', createPublicKey(privateKey).export({ type: 'spki', format: 'der' }), alg, true, ['verify']),
  };
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x40; // positive, and exactly 16 bytes long
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CERT_VALIDITY_YEARS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      // The JSON form, so that a node name with ',' '=' or '+' stays one CN value.
      name: [{ CN: [node] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      ],
    },
    crypto,
  );
  return cert.toString('pem') + '\n';
}
