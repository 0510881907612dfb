/**
 * The management API's TLS certificate: the operator's files (--tls-cert/--tls-key), or a
 * self-signed certificate made on first start in `<stateDir>/api/` by the same code and with
 * the same rules as the sync identity (sync/identity.ts: ECDSA P-256, key.pem 0600, files
 * written crash-safely and never overwritten). Either way carpd logs the certificate's
 * SHA-256 fingerprint at start, which carpctl pins (--fingerprint / CARPD_FINGERPRINT).
 *
 * Everything here runs before carpd touches the backend or listens, so a missing, unreadable,
 * world-readable or mismatched file stops the start with a message naming the file.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CERT_FILE, loadOrCreateIdentity } from '../sync/identity.js';

export const API_TLS_DIR = 'api';

export interface ApiTls {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the (first) certificate, "AB:CD:…". */
  fingerprint: string;
  /** The certificate file, for the log. */
  certFile: string;
  selfSigned: boolean;
}

/** A start-up failure about the API's certificate or key; its message names the file and the fix. */
export class ApiTlsError extends Error {}

export async function loadApiTls(opts: { apiTls: { certFile: string; keyFile: string } | 'self-signed'; stateDir: string; nodeName: string }): Promise<ApiTls> {
  if (opts.apiTls === 'self-signed') {
    try {
      const id = await loadOrCreateIdentity(opts.stateDir, opts.nodeName, API_TLS_DIR);
      return { certPem: id.certPem, keyPem: id.keyPem, fingerprint: id.fingerprint, certFile: path.join(opts.stateDir, API_TLS_DIR, CERT_FILE), selfSigned: true };
    } catch (e) {
      throw new ApiTlsError(`the management API's certificate (--tls): ${(e as Error).message}`, { cause: e });
    }
  }
  const { certFile, keyFile } = opts.apiTls;
  const certPem = await readPem(certFile, '--tls-cert');
  const keyPem = await readPem(keyFile, '--tls-key');
  const mode = (await fs.stat(keyFile)).mode & 0o777;
  if (mode & 0o004) {
    throw new ApiTlsError(`--tls-key ${keyFile}: readable by every user (mode ${mode.toString(8).padStart(4, '0')}); make it readable by carpd only: chmod 600 ${keyFile}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new ApiTlsError(`--tls-cert ${certFile}: not a PEM certificate (${(e as Error).message})`, { cause: e });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch (e) {
    throw new ApiTlsError(`--tls-key ${keyFile}: not a PEM private key, or one with a passphrase (${(e as Error).message})`, { cause: e });
  }
  if (!cert.checkPrivateKey(key)) {
    throw new ApiTlsError(`--tls-cert ${certFile} does not belong to the key in --tls-key ${keyFile}: give the certificate made for that key`);
  }
  return { certPem, keyPem, fingerprint: cert.fingerprint256, certFile, selfSigned: false };
}

async function readPem(file: string, flag: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ApiTlsError(`${flag} ${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}
