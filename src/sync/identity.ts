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
 * (no native code, no openssl binary). 1.14.3, the last 1.x, rather than 2.x: 2.x requires the
 * application to load a Reflect polyfill (reflect-metadata) itself before the library, a
 * second direct dependency and an import-order trap at every entry point; 1.14.3 depends on
 * reflect-metadata and loads it itself. It is needed once in a node's lifetime, and loading it
 * costs about 8–10 MiB that a process keeps, so the certificate is made in a short-lived
 * process of its own (make-certificate.ts) and the daemon only reads the file it wrote.
 * Everything else (the key, parsing, fingerprints, key checks, TLS) is node:crypto/node:tls.
 *
 * Files: key.pem (PKCS#8, mode 0600) and cert.pem, each written crash-safely (temporary file,
 * fsync, rename, directory fsync). The key is written first; a crash before the certificate is
 * written leaves a key without certificate, and the next start creates the missing
 * certificate for that key (nobody can have pinned a certificate that was never written).
 * Existing files are never overwritten: a corrupt file, a key of another type or a certificate
 * that does not belong to the key stops the start with an error naming the file.
 */
import { execFile } from 'node:child_process';
import { KeyObject, X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
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
    await makeCertificate(keyFile, certFile, node);
    certPem = await readIfExists(certFile);
    if (certPem === undefined) throw new Error(`${certFile}: missing after it was made (${MAKER} reported success)`);
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

/** The program that makes the certificate: make-certificate.js next to this file, or .ts when carpd runs from its sources. */
const MAKER = fileURLToPath(new URL(`./make-certificate${path.extname(fileURLToPath(import.meta.url))}`, import.meta.url));
/** Generous: the process loads Node and @peculiar/x509, a second or so on a slow, busy box. */
const MAKER_TIMEOUT_MS = 60_000;

/**
 * Of this process's Node flags, those that load modules (--import, --require, --loader): what
 * the process needs to run make-certificate.ts when carpd runs from its TypeScript sources
 * (tsx). Only those: --eval would run this process's code again, --inspect-brk stop it. From the
 * compiled dist/ the process needs no flag at all.
 */
function loaderFlags(execArgv: readonly string[]): string[] {
  const flags = ['--import', '--require', '-r', '--loader', '--experimental-loader'];
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (flags.includes(a) && i + 1 < execArgv.length) out.push(a, execArgv[++i]);
    else if (flags.some((f) => a.startsWith(`${f}=`))) out.push(a);
  }
  return out;
}

/**
 * Makes the self-signed certificate of the key in `keyFile` (CN = node) and writes it to
 * `certFile`, in a short-lived process (make-certificate.ts). Its failure is an error naming
 * the certificate file, with the reason the process gave.
 */
export async function makeCertificate(keyFile: string, certFile: string, node: string): Promise<void> {
  const execArgv = MAKER.endsWith('.ts') ? loaderFlags(process.execArgv) : [];
  const failed = (why: string, cause: unknown) => new Error(`${certFile}: the certificate could not be made (${why})`, { cause });
  await new Promise<void>((resolve, reject) => {
    try {
      execFile(process.execPath, [...execArgv, MAKER, keyFile, certFile, node], { timeout: MAKER_TIMEOUT_MS, encoding: 'utf8' }, (e, _stdout, stderr) => {
        if (!e) return resolve();
        reject(failed(e.killed ? `no answer within ${MAKER_TIMEOUT_MS / 1000} s` : stderr.trim() || e.message, e));
      });
    } catch (e) {
      reject(failed((e as Error).message, e));
    }
  });
}
