/**
 * Signed sync messages. mTLS says which pinned peer holds the connection; the envelope makes
 * every message stand on its own on top of that: it is signed by the sender's certificate key,
 * addressed to one recipient by fingerprint, stamped with a time and a random nonce, and
 * carries the sender's schema version. So a message that was altered, replayed, redirected to
 * another node or relayed by a different peer is refused even though it arrives over a valid
 * TLS connection.
 *
 * Wire form (the HTTP body): `{"message": "<SyncMessage as JSON text>", "signature": "<base64>"}`
 * where the signature is ECDSA with SHA-256 (DER-encoded, as OpenSSL makes it) over the UTF-8
 * bytes of the message string exactly as sent: the receiver verifies the string it got and
 * only then trusts what it parses from it, so no canonical JSON form is needed.
 *
 * `open` checks, in this order, and names the first failure (one reason per counter):
 *   malformed        not an envelope, not JSON, or a field of the wrong type or form
 *   sender-mismatch  message.from is not the fingerprint of the TLS client certificate
 *   bad-signature    the signature does not verify with that certificate's key
 *   wrong-recipient  message.to is not this node's fingerprint
 *   stale            issuedAt is more than MAX_SKEW_MS from now, either way
 *   replay           the nonce was seen within the window (see ReplayGuard)
 *   schema           message.schemaVersion is not this node's
 * The connection-level checks (no-client-cert, unknown-peer) come before all of these and are
 * the transport's: an untrusted connection's body is never read. After all of them the listener
 * reads the message as one of the kinds it takes (messages.ts); an unknown type or a body that
 * is not what its type carries is refused as malformed too.
 */
import { KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { CarpdError, type ErrorCode } from '../errors.js';
import { parseFingerprint, type SyncIdentity } from './identity.js';

export const PROTOCOL = 1 as const;
/** How far issuedAt may be from the receiver's clock, either way. */
export const MAX_SKEW_MS = 300_000;

export interface SyncMessage<T = unknown> {
  protocol: 1;
  type: string;
  /** The sender's certificate fingerprint. */
  from: string;
  /** The recipient's certificate fingerprint. */
  to: string;
  /** 128 random bits, 32 lowercase hex digits. */
  nonce: string;
  /** ISO 8601, when the sender sealed it. */
  issuedAt: string;
  schemaVersion: number;
  body: T;
}

export interface Envelope {
  message: string;
  signature: string;
}

export type RejectReason =
  | 'no-client-cert'
  | 'unknown-peer'
  | 'sender-mismatch'
  | 'bad-signature'
  | 'wrong-recipient'
  | 'stale'
  | 'replay'
  | 'schema'
  | 'malformed';

export const REJECT_REASONS: readonly RejectReason[] = [
  'no-client-cert',
  'unknown-peer',
  'sender-mismatch',
  'bad-signature',
  'wrong-recipient',
  'stale',
  'replay',
  'schema',
  'malformed',
];

export const REJECT_CODES: Record<RejectReason, ErrorCode> = {
  'no-client-cert': 'CARPD_ERR_SYNC_UNTRUSTED',
  'unknown-peer': 'CARPD_ERR_SYNC_UNTRUSTED',
  'sender-mismatch': 'CARPD_ERR_SYNC_UNTRUSTED',
  'bad-signature': 'CARPD_ERR_SYNC_UNTRUSTED',
  'wrong-recipient': 'CARPD_ERR_SYNC_BAD_MESSAGE',
  stale: 'CARPD_ERR_SYNC_REPLAY',
  replay: 'CARPD_ERR_SYNC_REPLAY',
  schema: 'CARPD_ERR_SYNC_SCHEMA',
  malformed: 'CARPD_ERR_SYNC_BAD_MESSAGE',
};

/** A refused message: a CarpdError (so it answers as problem+json) that also names the reason. */
export class SyncRejection extends CarpdError {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, detail: string) {
    super(REJECT_CODES[reason], detail);
    this.name = 'SyncRejection';
    this.reason = reason;
  }
}

/** Seals one message from `identity` to the node whose certificate has fingerprint `to`. */
export function seal<T>(identity: SyncIdentity, to: string, type: string, body: T, schemaVersion: number, now: number = Date.now()): string {
  const recipient = parseFingerprint(to);
  if (!recipient) throw new TypeError(`not a SHA-256 certificate fingerprint: "${to}"`);
  if (typeof type !== 'string' || type.length === 0) throw new TypeError('a sync message needs a type');
  if (!Number.isSafeInteger(schemaVersion) || schemaVersion < 0) throw new TypeError(`not a schema version: ${schemaVersion}`);
  const message: SyncMessage<T> = {
    protocol: PROTOCOL,
    type,
    from: identity.fingerprint,
    to: recipient,
    nonce: randomBytes(16).toString('hex'),
    issuedAt: new Date(now).toISOString(),
    schemaVersion,
    body,
  };
  const text = JSON.stringify(message);
  const signature = sign('sha256', Buffer.from(text, 'utf8'), identity.privateKey).toString('base64');
  return JSON.stringify({ message: text, signature } satisfies Envelope);
}

export interface OpenContext {
  /** The TLS client certificate the message came with (already checked to be pinned). */
  sender: { fingerprint: string; publicKey: KeyObject };
  /** This node's fingerprint. */
  self: string;
  schemaVersion: number;
  replay: ReplayGuard;
  /** ms since the epoch. */
  now: number;
}

/** Verifies a received envelope; throws SyncRejection naming the first check that failed. */
export function open<T = unknown>(raw: string, ctx: OpenContext): SyncMessage<T> {
  const env = parseEnvelope(raw);
  const m = parseMessage(env.message);
  if (m.from !== ctx.sender.fingerprint) {
    throw new SyncRejection('sender-mismatch', `the message says it is from ${m.from} but came over a connection authenticated as ${ctx.sender.fingerprint}`);
  }
  if (!verifies(env, ctx.sender.publicKey)) {
    throw new SyncRejection('bad-signature', 'the signature does not match the message and the sender certificate; the message was altered or not signed by the sender');
  }
  if (m.to !== ctx.self) {
    throw new SyncRejection('wrong-recipient', `the message is addressed to ${m.to}, not to this node (${ctx.self})`);
  }
  const issued = Date.parse(m.issuedAt);
  const skew = issued - ctx.now;
  if (Math.abs(skew) > MAX_SKEW_MS) {
    const s = Math.round(Math.abs(skew) / 1000);
    throw new SyncRejection('stale', `the message was issued at ${m.issuedAt}, ${s} s ${skew < 0 ? 'ago' : 'in the future'} (at most ${MAX_SKEW_MS / 1000} s either way); check that both nodes' clocks are synchronised`);
  }
  if (!ctx.replay.accept(m.from, m.nonce, issued, ctx.now)) {
    throw new SyncRejection('replay', `nonce ${m.nonce} from ${m.from} was already received; the message is a replay`);
  }
  if (m.schemaVersion !== ctx.schemaVersion) {
    throw new SyncRejection('schema', `peer speaks schema version ${m.schemaVersion}, this node ${ctx.schemaVersion}; run the same carpd version on both nodes`);
  }
  return m as SyncMessage<T>;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const NONCE = /^[0-9a-f]{32}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 date-time (what toISOString writes, or with an offset) that names a real instant. */
export function isIsoTime(s: string): boolean {
  return ISO.test(s) && Number.isFinite(Date.parse(s));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseEnvelope(raw: string): Envelope {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    // JSON.parse's message quotes the input: it must not reach the log.
    throw new SyncRejection('malformed', 'the body is not JSON; send {"message": "...", "signature": "..."}');
  }
  if (!isObject(v) || typeof v.message !== 'string' || typeof v.signature !== 'string') {
    throw new SyncRejection('malformed', 'the body is not a sync envelope: it needs the strings "message" and "signature"');
  }
  if (v.signature.length === 0 || !BASE64.test(v.signature)) throw new SyncRejection('malformed', 'the signature is not base64');
  return { message: v.message, signature: v.signature };
}

function parseMessage(text: string): SyncMessage {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw new SyncRejection('malformed', 'the envelope\'s "message" is not JSON');
  }
  if (!isObject(m)) throw new SyncRejection('malformed', 'the envelope\'s "message" is not a JSON object');
  const bad = (field: string, want: string) => new SyncRejection('malformed', `message.${field} must be ${want}`);
  if (m.protocol !== PROTOCOL) throw bad('protocol', `${PROTOCOL} (this node speaks sync protocol ${PROTOCOL})`);
  if (typeof m.type !== 'string' || m.type.length === 0) throw bad('type', 'a non-empty string');
  if (typeof m.from !== 'string' || parseFingerprint(m.from) !== m.from) throw bad('from', 'a SHA-256 fingerprint "AB:CD:…"');
  if (typeof m.to !== 'string' || parseFingerprint(m.to) !== m.to) throw bad('to', 'a SHA-256 fingerprint "AB:CD:…"');
  if (typeof m.nonce !== 'string' || !NONCE.test(m.nonce)) throw bad('nonce', '32 lowercase hex digits');
  if (typeof m.issuedAt !== 'string' || !isIsoTime(m.issuedAt)) throw bad('issuedAt', 'an ISO 8601 time');
  if (typeof m.schemaVersion !== 'number' || !Number.isSafeInteger(m.schemaVersion) || m.schemaVersion < 0) throw bad('schemaVersion', 'a non-negative integer');
  if (!('body' in m)) throw bad('body', 'present');
  return m as unknown as SyncMessage;
}

function verifies(env: Envelope, key: KeyObject): boolean {
  try {
    return verify('sha256', Buffer.from(env.message, 'utf8'), key, Buffer.from(env.signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * Nonces seen within the acceptance window. A nonce is remembered until its message would be
 * stale anyway (issuedAt + MAX_SKEW_MS), so memory is bounded by the message rate in that
 * window, and in any case by `capacity`. When full, the oldest entry is dropped and its issue
 * time becomes a floor: any later message issued at or before the floor is refused as a
 * possible replay, because the guard can no longer tell. That fails closed without blocking
 * fresh messages (which are issued after the floor).
 */
export class ReplayGuard {
  private readonly seen = new Map<string, { issued: number; expires: number }>();
  private floor = -Infinity;
  private lastSweep = -Infinity;

  constructor(
    private readonly capacity = 65_536,
    private readonly windowMs = MAX_SKEW_MS,
  ) {}

  /** Records the nonce; false when it was seen before (or cannot be ruled out). */
  accept(sender: string, nonce: string, issued: number, now: number): boolean {
    this.sweep(now);
    const key = `${sender}/${nonce}`;
    const prior = this.seen.get(key);
    if (prior && prior.expires >= now) return false;
    if (issued <= this.floor) return false;
    if (this.seen.size >= this.capacity) {
      this.sweep(now, true);
      while (this.seen.size >= this.capacity) {
        const [oldest, entry] = this.seen.entries().next().value as [string, { issued: number }];
        this.seen.delete(oldest);
        this.floor = Math.max(this.floor, entry.issued);
      }
      if (issued <= this.floor) return false;
    }
    this.seen.delete(key);
    this.seen.set(key, { issued, expires: issued + this.windowMs });
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number, force = false): void {
    if (!force && now - this.lastSweep < 10_000 && now >= this.lastSweep) return;
    this.lastSweep = now;
    for (const [k, v] of this.seen) if (v.expires < now) this.seen.delete(k);
  }
}
