/**
 * HTTPS to carpd with the trust the operator chose: the certificate's pinned SHA-256
 * fingerprint (--fingerprint / CARPD_FINGERPRINT: carpd's self-signed certificate), a CA file
 * (--ca / CARPD_CA: a certificate signed by the operator's CA, name checked), or else the
 * system's CAs.
 *
 * Node's fetch takes no TLS options, so requests to an https:// URL go through this small
 * fetch over node:tls + node:http instead: the TLS connection is made and its certificate
 * checked first, and only then is the request (and its bearer token) written to it. A
 * certificate that is not the pinned one therefore never sees the token. One connection per
 * request: carpctl makes a few.
 */
import { X509Certificate } from "node:crypto";
import { request } from "node:http";
import { isIP } from "node:net";
import { Readable } from "node:stream";
import { connect, type TLSSocket } from "node:tls";
import { CliError } from "./io.js";

export interface TlsTrust {
  /** Canonical "AB:CD:…" (see parseFingerprint). */
  fingerprint?: string;
  /** PEM CA certificates, and the file they came from (for messages). */
  ca?: { pem: string; file: string };
}

/** What tells the operator how to trust carpd's certificate. */
export const TRUST_HINT =
  "pin carpd's certificate with --fingerprint FP or CARPD_FINGERPRINT=FP (carpd logs it at start; " +
  "'carpctl tls fingerprint' prints it on the firewall), or give --ca FILE for a certificate signed by your CA";

/**
 * A SHA-256 fingerprint as carpd prints it ("AB:CD:…", 32 uppercase hex pairs), from any usual
 * spelling: with or without colons, any case, or prefixed by `sha256:` or `SHA256 Fingerprint=`
 * (openssl x509 -fingerprint -sha256). The same spellings the sync peer fingerprint accepts.
 */
export function parseFingerprint(text: string): string | undefined {
  const s = text.trim().replace(/^(?:sha-?256\s+fingerprint\s*=|sha-?256\s*:)\s*/i, "");
  const hex = /^[0-9a-f]{64}$/i.test(s) ? s : /^[0-9a-f]{2}(?::[0-9a-f]{2}){31}$/i.test(s) ? s.replaceAll(":", "") : undefined;
  return hex?.toUpperCase().match(/../g)!.join(":");
}

/** The fingerprint of the first certificate of a PEM file's text. */
export function fingerprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/** TLS verification failures, which say "not trusted" rather than "unreachable". */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;

function tlsConnect(url: URL, trust: TlsTrust, signal: AbortSignal): Promise<TLSSocket> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || 443);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      ...(trust.ca ? { ca: trust.ca.pem } : {}),
      // A pin alone replaces the CA check (carpd's certificate is self-signed); with --ca too, both must hold.
      rejectUnauthorized: trust.fingerprint === undefined || trust.ca !== undefined,
      ALPNProtocols: ["http/1.1"],
    });
    const onAbort = () => socket.destroy(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      signal.removeEventListener("abort", onAbort);
      if (e.code && UNTRUSTED.test(e.code)) {
        const via = trust.ca ? `the CA in ${trust.ca.file}` : "the system's CAs";
        reject(new CliError(`carpd's certificate at ${url.origin} is not trusted by ${via} (${e.code}: ${e.message}); nothing was sent\nhint: ${TRUST_HINT}`));
      } else {
        reject(e);
      }
    });
    socket.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      const presented = socket.getPeerCertificate().fingerprint256;
      if (trust.fingerprint !== undefined && presented !== trust.fingerprint) {
        socket.destroy();
        reject(
          new CliError(
            `carpd at ${url.origin} presented a certificate with SHA-256 fingerprint ${presented}, not the pinned ` +
              `${trust.fingerprint} (--fingerprint / CARPD_FINGERPRINT); nothing was sent\n` +
              "hint: if carpd's certificate was replaced on purpose, pin the new fingerprint (carpd logs it at start; " +
              "'carpctl tls fingerprint' prints it on the firewall); otherwise something else answers at that address",
          ),
        );
        return;
      }
      resolve(socket);
    });
  });
}

/** A fetch for https:// URLs with the given trust; http:// URLs go to `plain`. */
export function trustedFetch(trust: TlsTrust, plain: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    if (url.protocol !== "https:") return plain(req);
    const socket = await tlsConnect(url, trust, req.signal);
    const body = req.body ? Buffer.from(await req.arrayBuffer()) : undefined;
    const headers: Record<string, string> = { host: url.host };
    req.headers.forEach((v, k) => (headers[k] = v));
    if (body) headers["content-length"] = String(body.length);
    return new Promise<Response>((resolve, reject) => {
      const r = request(
        { createConnection: () => socket, method: req.method, path: `${url.pathname}${url.search}`, headers, signal: req.signal },
        (res) => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (Array.isArray(v)) v.forEach((x) => h.append(k, x));
            else if (v !== undefined) h.set(k, v);
          }
          const status = res.statusCode ?? 502;
          const empty = status === 204 || status === 304 || req.method === "HEAD";
          if (empty) res.resume();
          resolve(
            new Response(empty ? null : (Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>), {
              status,
              statusText: res.statusMessage,
              headers: h,
            }),
          );
        },
      );
      r.once("error", reject);
      r.end(body);
    });
  };
}
