/**
 * The self-signed certificate of a node's sync identity, made in a process of its own:
 *
 *   node make-certificate.js <key.pem> <cert.pem> <node name>
 *
 * identity.ts runs this file (it is never imported) on a node's first start, when the key
 * exists and the certificate does not. Making a certificate is a once-in-a-lifetime job, and
 * @peculiar/x509 with its Reflect polyfill and WebCrypto keys is about 8–10 MiB of code and
 * heap that the daemon would otherwise carry, unused, until it stops; this process exits and
 * gives it back.
 *
 * It reads the key, writes the certificate crash-safely (0600, temporary file, fsync, rename,
 * directory fsync) and exits 0; on any failure it prints the reason on one line to stderr and
 * exits 1, having written nothing. identity.ts then reads and checks the certificate as it
 * checks one found at start.
 *
 * The certificate: CN = node name, 20 years (CERT_VALIDITY_YEARS), a random positive 16-byte
 * serial, ECDSA with SHA-256, basicConstraints CA:false (critical), keyUsage digitalSignature
 * (critical), extendedKeyUsage serverAuth and clientAuth.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { writeFileAtomic } from '../config/atomic.js';
import { CERT_VALIDITY_YEARS } from './identity.js';

/** A self-signed end-entity certificate for the key: CN = node, 20 years, random serial. */
async function selfSignedCertificate(node: string, privateKey: KeyObject): Promise<string> {
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

async function main(args: string[]): Promise<void> {
  if (args.length !== 3 || args.some((a) => a.length === 0)) throw new Error('usage: make-certificate <key.pem> <cert.pem> <node name>');
  const [keyFile, certFile, node] = args;
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: await fs.readFile(keyFile, 'utf8'), format: 'pem' });
  } catch (e) {
    throw new Error(`${keyFile}: cannot be read as a private key (${(e as Error).message})`, { cause: e });
  }
  const pem = await selfSignedCertificate(node, key);
  try {
    await writeFileAtomic(certFile, pem);
  } catch (e) {
    throw new Error(`${certFile}: cannot be written (${(e as Error).message})`, { cause: e });
  }
}

try {
  await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`${(e as Error).message.replaceAll('\n', ' ')}\n`);
  process.exitCode = 1;
}
