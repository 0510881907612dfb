/**
 * What the two ends of the sync transport share: the one path the listener serves, the body
 * limit both hold the other to, and SyncTransportError, the client's failure (server.ts and
 * client.ts both import from here; transport.ts re-exports it all, so neither of them needs
 * transport.ts and there is no import cycle).
 */
import { CarpdError, type ErrorCode } from '../errors.js';

export const SYNC_PATH = '/sync/v1/message';
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type SyncTransportErrorKind = 'unreachable' | 'fingerprint' | 'timeout' | 'rejected' | 'protocol';

/**
 * A request that got no HTTP answer from the pinned peer:
 *   unreachable  no connection (code is the errno name, e.g. ECONNREFUSED)
 *   fingerprint  the server's certificate is not the pinned one; nothing was sent
 *   timeout      no complete answer within timeoutMs
 *   rejected     the peer refused the TLS handshake (code is OpenSSL's, e.g. an alert)
 *   protocol     the peer answered, but not with TLS 1.3 / HTTP / JSON (status when it had one)
 */
export class SyncTransportError extends Error {
  readonly kind: SyncTransportErrorKind;
  declare readonly status?: number;
  declare readonly code?: string;

  constructor(kind: SyncTransportErrorKind, message: string, extra: { status?: number; code?: string; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'SyncTransportError';
    this.kind = kind;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.code !== undefined) this.code = extra.code;
  }

  /** The same failure as carpd's API error (502 CARPD_ERR_SYNC_PEER_UNREACHABLE). */
  toCarpdError(): CarpdError {
    const code: ErrorCode = 'CARPD_ERR_SYNC_PEER_UNREACHABLE';
    return new CarpdError(code, this.message, { cause: this });
  }
}
