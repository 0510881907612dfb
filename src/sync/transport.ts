/**
 * The sync transport: one HTTPS endpoint, `POST /sync/v1/message`, on a listener of its own
 * (never the management API's), authenticated both ways by pinned certificate fingerprints.
 *
 * Server. TLS 1.3 only; every client must present a certificate (`requestCert`), which is not
 * checked against any CA (`rejectUnauthorized: false`: the certificates are self-signed) but
 * by its SHA-256 fingerprint against `pinned()`, read at every request so that a config change
 * takes effect at once, on open connections too. A connection without a certificate, or with
 * one that is not pinned, is refused before its body is read and never reaches the handler.
 * Then the body (at most 4 MiB) is opened as a signed envelope (see envelope.ts) with the
 * client certificate as the only key that may have signed it. Every refusal is answered as
 * RFC 9457 problem+json with carpd's error code for its reason and `reason` as an extension
 * member, counted per reason (`rejected()`), and logged at warn with the reason, the peer's
 * address and fingerprint, never the body. A verified message is then read as one of the kinds
 * the listener takes (`kinds`, messages.ts for carpd's): an unknown type or a body that is not
 * what its type carries is refused, counted and logged the same way (malformed). Only a message
 * read that way is passed to `handle`, whose `{status, body}` is sent as JSON (problem+json when
 * the body is a problem).
 *
 * Connections are kept open between requests (HTTP/1.1 keep-alive) and counted per peer: the
 * pinned fingerprint a connection presented, or its address when it presented none that is
 * pinned. A peer holds at most MAX_CONNECTIONS_PER_PEER; a connection is closed after idleMs
 * (default LISTENER_IDLE_MS) without a request, or after headersTimeout when it never sends one.
 *
 * Client. One TLS connection to the peer, kept open and used by one request after the other
 * (pushes, plans and status reads alike) through Node's keep-alive http.Agent with one socket.
 * HTTP/1.1 rather than HTTP/2: the sync link carries one request at a time anyway (one push in
 * flight), the wire stays what carpd nodes of the previous version send and answer (a mixed
 * pair during an upgrade keeps syncing), and the listener's per-connection checks and
 * `Connection: close` refusals stay as they are.
 *
 * A connection is opened in two steps so that nothing is sent to the wrong server: connect and
 * handshake (presenting this node's certificate, no TLS session resumption: every connection
 * shows both certificates), compare the server certificate's fingerprint with the pinned one
 * on `secureConnect`, and only then hand the socket to the agent, which writes the request. A
 * reused connection is one that was checked that way when it was opened; a client is made for
 * one pinned fingerprint and never changes it (the manager makes a new client, closing the old
 * connection, when the peer or its fingerprint changes). An idle connection is closed after
 * idleMs (default CLIENT_IDLE_MS, shorter than the listener's). A request that finds its reused
 * connection dead before any byte of the answer is retried once on a new one (exchange(), which
 * says what that relies on); any other failure is the caller's.
 *
 * Transport failures reject with SyncTransportError; any HTTP answer, 2xx or a problem,
 * resolves with its status and parsed JSON body, unchecked (messages.ts's exchange() checks it
 * against the kind of request). The timeout and the time sealed into each message come from
 * the injected Clock; the idle timeouts are the sockets' own (inactivity of the connection).
 */
import http from 'node:http';
import https from 'node:https';
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import { CarpdError, problemOf, type ErrorCode } from '../errors.js';
import { REJECT_REASONS, ReplayGuard, SyncRejection, open, seal, type RejectReason, type SyncMessage } from './envelope.js';
import { parseFingerprint, type SyncIdentity } from './identity.js';

export type { RejectReason, SyncMessage };

export const SYNC_PATH = '/sync/v1/message';
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** How long the listener keeps a connection open with no request after its last answer (default). */
export const LISTENER_IDLE_MS = 60_000;
/**
 * Connections one peer may hold open on the listener. A primary keeps one; the rest is room for
 * a reconnect that overlaps a connection the listener has not seen die yet.
 */
export const MAX_CONNECTIONS_PER_PEER = 4;

export interface VerifiedMessage<T = unknown> extends SyncMessage<T> {}

/** The message kinds a listener takes: every verified message is read by `read` before `handle` sees it. */
export interface MessageKinds<M extends SyncMessage> {
  /** The message as one of the kinds, or why it is none (naming the type and the field, never a value). */
  read(m: VerifiedMessage): { ok: true; message: M } | { ok: false; detail: string };
}

export interface SyncServerOptions<M extends SyncMessage = VerifiedMessage> {
  identity: SyncIdentity;
  /** The sync listener's own address (never the management API's); port 0 = any free port. */
  host: string;
  port: number;
  /** Fingerprints accepted, read at every request (the config can change). */
  pinned: () => string[];
  schemaVersion: number;
  kinds: MessageKinds<M>;
  handle: (m: M, peer: { fingerprint: string; address: string }) => Promise<{ status: number; body: unknown }>;
  logger?: Logger;
  /** ms since the epoch, for the freshness and replay checks (default Date.now). */
  clock?: () => number;
  /** How long a connection stays open with no request after an answer (default LISTENER_IDLE_MS). */
  idleMs?: number;
}

interface PeerCert {
  fingerprint: string;
  publicKey: KeyObject;
}

export class SyncServer<M extends SyncMessage = VerifiedMessage> {
  private readonly counts: Record<RejectReason, number> = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
  private readonly replay = new ReplayGuard();
  private readonly certs = new WeakMap<TLSSocket, PeerCert | null>();
  private readonly clock: () => number;
  /** Open connections by peer: the pinned fingerprint that opened them, or the address of an untrusted client. */
  private readonly peers = new Map<string, Set<TLSSocket>>();
  private readonly peerOf = new WeakMap<TLSSocket, string>();
  /** Requests being answered on a connection right now, and taken on it in all. */
  private readonly busy = new WeakMap<TLSSocket, number>();
  private readonly served = new WeakMap<TLSSocket, number>();
  private accepted = 0;

  private constructor(
    private readonly opts: SyncServerOptions<M>,
    private readonly server: https.Server,
    readonly port: number,
  ) {
    this.clock = opts.clock ?? Date.now;
  }

  static async start<M extends SyncMessage = VerifiedMessage>(opts: SyncServerOptions<M>): Promise<SyncServer<M>> {
    const server = https.createServer({
      key: opts.identity.keyPem,
      cert: opts.identity.certPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
      handshakeTimeout: 10_000,
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    // Longer than a client's own idle time (CLIENT_IDLE_MS), so that the client, which knows when
    // it is about to send, is normally the one that closes an idle connection.
    server.keepAliveTimeout = opts.idleMs ?? LISTENER_IDLE_MS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const s = new SyncServer<M>(opts, server, (server.address() as AddressInfo).port);
    server.on('request', (req, res) => {
      s.onRequest(req, res).catch((err) => {
        opts.logger?.error({ event: 'sync.internal', err }, 'sync listener: internal error');
        if (!res.headersSent) send(res, 500, problemOf(new CarpdError('CARPD_ERR_INTERNAL', 'carpd failed to answer this sync message; the error is in its log')));
        else res.destroy();
      });
    });
    server.on('secureConnection', (socket: TLSSocket) => s.onConnection(socket));
    server.on('tlsClientError', (err, socket) => {
      opts.logger?.debug({ event: 'sync.tls.error', address: socket.remoteAddress, err: err.message }, `sync listener: TLS handshake failed: ${err.message}`);
    });
    return s;
  }

  /** Rejections since start, by reason (every reason present, 0 when none). */
  rejected(): Record<RejectReason, number> {
    return { ...this.counts };
  }

  /** TLS connections accepted since start, and open now. */
  connections(): { accepted: number; open: number } {
    let open = 0;
    for (const set of this.peers.values()) open += set.size;
    return { accepted: this.accepted, open };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /**
   * A connection whose TLS handshake completed, counted under its peer: the pinned fingerprint
   * it presented, or else its address (so that made-up certificates do not each count as a new
   * peer). A peer at MAX_CONNECTIONS_PER_PEER loses its oldest idle connection to the new one
   * (a client that sends on it just then retries on a new connection, see SyncClient); when all
   * of them are busy the new one is closed.
   */
  private onConnection(socket: TLSSocket): void {
    this.accepted++;
    // Answers on a kept connection go out at once, not after the ACK of the previous one (Nagle).
    socket.setNoDelay(true);
    const address = plainAddress(socket.remoteAddress);
    const cert = this.peerCert(socket);
    const key = cert && this.isPinned(cert.fingerprint) ? cert.fingerprint : address;
    let open = this.peers.get(key);
    if (!open) this.peers.set(key, (open = new Set()));
    if (open.size >= MAX_CONNECTIONS_PER_PEER) {
      const idle = [...open].find((s) => (this.busy.get(s) ?? 0) === 0);
      if (idle) {
        open.delete(idle);
        idle.destroy();
      } else {
        this.opts.logger?.warn(
          { event: 'sync.connection.refused', peer: { address, fingerprint: cert?.fingerprint ?? null }, open: open.size },
          `sync listener: closed a connection from ${address}: that peer already has ${open.size} connections open, all busy`,
        );
        socket.destroy();
        return;
      }
    }
    open.add(socket);
    this.peerOf.set(socket, key);
    const peer = { address, fingerprint: cert?.fingerprint ?? null };
    socket.once('close', () => {
      open.delete(socket);
      if (open.size === 0 && this.peers.get(key) === open) this.peers.delete(key);
      const requests = this.served.get(socket) ?? 0;
      this.opts.logger?.debug({ event: 'sync.connection.closed', peer, requests }, `sync listener: connection from ${address} closed after ${requests} requests`);
    });
    this.opts.logger?.debug({ event: 'sync.connection', peer, open: open.size }, `sync listener: connection from ${address}`);
  }

  private isPinned(fingerprint: string): boolean {
    return this.opts.pinned().some((f) => parseFingerprint(f) === fingerprint);
  }

  /** Requests of the peer that opened this connection being answered now, on all its connections. */
  private inProgress(socket: TLSSocket): number {
    const key = this.peerOf.get(socket);
    let n = 0;
    for (const s of (key !== undefined && this.peers.get(key)) || [socket]) n += this.busy.get(s) ?? 0;
    return n;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket as TLSSocket;
    this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
    this.served.set(socket, (this.served.get(socket) ?? 0) + 1);
    res.once('close', () => this.busy.set(socket, (this.busy.get(socket) ?? 1) - 1));
    const address = plainAddress(socket.remoteAddress);
    const cert = this.peerCert(socket);
    if (!cert) return this.reject(res, new SyncRejection('no-client-cert', 'the sync listener requires a client certificate; connect with this node\'s sync certificate'), address, undefined);
    const pinned = new Set(this.opts.pinned().map((f) => parseFingerprint(f)).filter((f): f is string => f !== undefined));
    if (!pinned.has(cert.fingerprint)) {
      return this.reject(res, new SyncRejection('unknown-peer', `certificate ${cert.fingerprint} is not pinned on this node; pin it as the sync peer's fingerprint to accept it`), address, cert.fingerprint);
    }

    const url = (req.url ?? '/').split('?')[0];
    if (url !== SYNC_PATH) return sendError(res, new CarpdError('CARPD_ERR_ROUTE_NOT_FOUND', `no such resource; the sync listener serves only POST ${SYNC_PATH}`), req);
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return sendError(res, new CarpdError('CARPD_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${SYNC_PATH}; use POST`), req);
    }

    const raw = await readBody(req);
    if (raw === undefined) {
      this.count('malformed', address, cert.fingerprint, 'the body is larger than 4 MiB');
      res.setHeader('Connection', 'close');
      return sendError(res, new CarpdError('CARPD_ERR_BODY_TOO_LARGE', 'the sync message is larger than 4 MiB'), req);
    }

    let verified: VerifiedMessage;
    try {
      verified = open(raw, { sender: cert, self: this.opts.identity.fingerprint, schemaVersion: this.opts.schemaVersion, replay: this.replay, now: this.clock() });
    } catch (e) {
      if (e instanceof SyncRejection) return this.reject(res, e, address, cert.fingerprint);
      throw e;
    }
    const read = this.opts.kinds.read(verified);
    if (!read.ok) return this.reject(res, new SyncRejection('malformed', read.detail), address, cert.fingerprint);
    const message = read.message;
    this.opts.logger?.debug(
      { event: 'sync.received', type: message.type, peer: { address, fingerprint: cert.fingerprint }, nonce: message.nonce, inProgress: this.inProgress(socket) },
      `sync: ${message.type} from ${address}`,
    );

    let answer: { status: number; body: unknown };
    try {
      answer = await this.opts.handle(message, { fingerprint: cert.fingerprint, address });
    } catch (e) {
      if (!(e instanceof CarpdError)) throw e;
      answer = { status: e.status, body: problemOf(e) };
    }
    send(res, answer.status, answer.body);
  }

  /** The client certificate of a TLS connection, or null when it presented none. */
  private peerCert(socket: TLSSocket): PeerCert | null {
    let c = this.certs.get(socket);
    if (c !== undefined) return c;
    const peer = socket.getPeerCertificate?.();
    c = null;
    if (peer && peer.raw && peer.raw.length > 0) {
      const x = new X509Certificate(peer.raw);
      c = { fingerprint: x.fingerprint256, publicKey: x.publicKey };
    }
    this.certs.set(socket, c);
    return c;
  }

  private count(reason: RejectReason, address: string, fingerprint: string | undefined, detail: string): void {
    this.counts[reason]++;
    this.opts.logger?.warn({ event: 'sync.rejected', reason, peer: { address, fingerprint: fingerprint ?? null }, detail }, `sync message rejected (${reason}) from ${address}: ${detail}`);
  }

  private reject(res: http.ServerResponse, e: SyncRejection, address: string, fingerprint: string | undefined): void {
    this.count(e.reason, address, fingerprint, e.message);
    // An untrusted peer gets no second request on this connection, and its body is not read.
    if (e.reason === 'no-client-cert' || e.reason === 'unknown-peer') res.setHeader('Connection', 'close');
    send(res, e.status, { ...problemOf(e, SYNC_PATH), reason: e.reason });
  }
}

/** The body as text, or undefined when it is larger than MAX_BODY_BYTES. */
function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (b: Buffer) => {
      if (over) return;
      size += b.length;
      if (size > MAX_BODY_BYTES) {
        over = true;
        chunks.length = 0;
        resolve(undefined);
        return;
      }
      chunks.push(b);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

function sendError(res: http.ServerResponse, e: CarpdError, req: http.IncomingMessage): void {
  send(res, e.status, problemOf(e, (req.url ?? '').split('?')[0]));
}

function isProblem(body: unknown): boolean {
  return typeof body === 'object' && body !== null && typeof (body as { type?: unknown }).type === 'string' && typeof (body as { title?: unknown }).title === 'string';
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (body === undefined || status === 204 || status === 304) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': status >= 400 && isProblem(body) ? 'application/problem+json' : 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function plainAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m ? m[1] : a;
}

// --- client --------------------------------------------------------------------------------

export interface SyncPeer {
  host: string;
  port: number;
  fingerprint: string;
}

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

const ERRNO_WORDS: Record<string, string> = {
  ECONNREFUSED: 'connection refused: nothing listens there',
  ECONNRESET: 'the connection was reset by the peer',
  EHOSTUNREACH: 'no route to the host',
  ENETUNREACH: 'the network is unreachable',
  EHOSTDOWN: 'the host is down',
  ENETDOWN: 'the network is down',
  EADDRNOTAVAIL: 'the address is not available on this host',
  EPIPE: 'the peer closed the connection',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved now',
  ETIMEDOUT: 'the connection timed out',
};

/** An HTTP answer of the peer: its status and its body parsed as JSON, not yet checked. */
export interface RawAnswer {
  status: number;
  body: unknown;
}

/** How long a client keeps a connection with nothing to send open (the listener's is LISTENER_IDLE_MS, longer). */
export const CLIENT_IDLE_MS = 30_000;

/**
 * How a reused connection that the peer closed before answering fails: the race of a request
 * sent just as the peer closed an idle connection (its keep-alive timeout, a restart).
 */
const CLOSED_UNANSWERED = new Set(['ECONNRESET', 'EPIPE']);

/** A request on a reused connection that got no byte of an answer before the connection died. */
class Unanswered extends Error {
  constructor(readonly error: SyncTransportError) {
    super(error.message);
  }
}

/**
 * Node's keep-alive agent with one connection to the peer, opened by `connect` (pinned) and
 * handed over only once its certificate is checked: the agent writes a request to a socket the
 * moment it gets one, so the check must come before, not in a 'secureConnect' listener beside it.
 */
class PinnedAgent extends http.Agent {
  constructor(
    idleMs: number,
    private readonly connectPinned: (done: (err: Error | null, socket?: TLSSocket) => void) => void,
  ) {
    // maxSockets 1 is a backstop: SyncClient already sends one request at a time. Idle sockets
    // close after `timeout` ms without traffic (or earlier if the listener announces less).
    super({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: idleMs, scheduling: 'lifo' });
  }

  override createConnection(_options: http.ClientRequestArgs, done?: (err: Error | null, socket: Duplex) => void): undefined {
    this.connectPinned((err, socket) => done?.(err, socket as Duplex));
    return undefined;
  }
}

export class SyncClient {
  private readonly identity: SyncIdentity;
  private readonly peer: SyncPeer;
  private readonly pinned: string;
  private readonly schemaVersion: number;
  private readonly timeoutMs: number;
  private readonly clock: Clock;
  private readonly agent: PinnedAgent;
  /** Every TLS socket of this client, connecting or open, so that close() and a timeout can end them. */
  private readonly sockets = new Set<TLSSocket>();
  private readonly connecting = new Set<TLSSocket>();
  /** Connections that have carried a whole answer: a request on one of them is on a reused connection. */
  private readonly answered = new WeakSet<TLSSocket>();
  /** The last request in line: requests take the connection one at a time, in the order made. */
  private tail: Promise<void> = Promise.resolve();
  private opened = 0;
  /** Built once: parsing the key and certificate for every connection costs more than the push itself. */
  private context?: tls.SecureContext;
  private closed = false;

  constructor(opts: { identity: SyncIdentity; peer: SyncPeer; schemaVersion: number; timeoutMs?: number; idleMs?: number; clock?: Clock }) {
    const pinned = parseFingerprint(opts.peer.fingerprint);
    if (!pinned) throw new TypeError(`the sync peer's fingerprint is not a SHA-256 certificate fingerprint: "${opts.peer.fingerprint}"`);
    this.identity = opts.identity;
    this.peer = opts.peer;
    this.pinned = pinned;
    this.schemaVersion = opts.schemaVersion;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.clock = opts.clock ?? systemClock;
    this.agent = new PinnedAgent(opts.idleMs ?? CLIENT_IDLE_MS, (done) => this.connect(done));
  }

  /** host:port of the peer, for messages. */
  get address(): string {
    return `${this.peer.host}:${this.peer.port}`;
  }

  /** TLS connections this client has opened to its peer (pinned and handed to a request). */
  get connectionsOpened(): number {
    return this.opened;
  }

  /**
   * Seals and POSTs one message. Resolves with the peer's HTTP status and parsed JSON body for
   * 2xx and for 4xx/5xx problem answers alike (the caller decides); rejects with
   * SyncTransportError for transport failures. The timeout counts from this call: the wait for
   * the requests made before it is part of it.
   */
  async request(type: string, body: unknown): Promise<RawAnswer> {
    if (this.closed) throw closedError();
    const where = this.address;
    let current: http.ClientRequest | undefined;
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(() => {
        const e = new SyncTransportError('timeout', `the sync peer ${where} did not answer within ${this.timeoutMs} ms`);
        // Its connection is not used again (a late answer would be read as the next request's),
        // and a handshake that hangs is not left behind.
        current?.destroy(e);
        for (const s of this.connecting) s.destroy();
        reject(e);
      }, this.timeoutMs);
    });
    const before = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.tail = before.then(() => mine);
    try {
      await Promise.race([before, timeout]);
      if (this.closed) throw closedError();
      return await Promise.race([this.exchange(type, body, where, (req) => (current = req)), timeout]);
    } finally {
      this.clock.clearTimeout(timer);
      done();
    }
  }

  /** Aborts requests in flight and closes the connection; the client takes no more. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /**
   * One request, retried once on a new connection when it went out on a reused one that died
   * before any byte of an answer came back: most likely the peer closed it as idle (or
   * restarted) as the request left, so it was never read. Every message kind is safe to take
   * twice should it have been read after all: a push is a whole snapshot (the same revision again
   * is acknowledged without a new commit), a plan applies nothing, status only reads. Each
   * attempt is sealed on its own (new nonce and time), so a retry is never refused as a replay.
   * Any other failure, or a second one, is the caller's: the push loop's retry and backoff.
   */
  private async exchange(type: string, body: unknown, where: string, started: (req: http.ClientRequest) => void): Promise<RawAnswer> {
    for (let attempt = 1; ; attempt++) {
      const payload = seal(this.identity, this.pinned, type, body, this.schemaVersion, this.clock.now());
      try {
        return await this.post(payload, where, started);
      } catch (e) {
        if (this.closed) throw closedError();
        if (e instanceof Unanswered) {
          if (attempt === 1) continue;
          throw e.error;
        }
        throw e;
      }
    }
  }

  /** A TLS 1.3 connection to the peer whose certificate has the pinned fingerprint, or why not. */
  private connect(done: (err: Error | null, socket?: TLSSocket) => void): void {
    const where = this.address;
    if (this.closed) return done(closedError());
    const socket = tls.connect({
      host: this.peer.host,
      port: this.peer.port,
      secureContext: (this.context ??= tls.createSecureContext({ key: this.identity.keyPem, cert: this.identity.certPem, minVersion: 'TLSv1.3' })),
      rejectUnauthorized: false, // self-signed: the fingerprint below is the check
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['http/1.1'],
    });
    // As Node's agent does for the connections it makes itself: on a kept connection a request
    // must not wait for the ACK of the previous answer (Nagle's algorithm).
    socket.setNoDelay(true);
    this.sockets.add(socket);
    this.connecting.add(socket);
    // A socket error is reported by the request that uses the socket, or ends an idle one; it is
    // never thrown at the process (between two requests the socket has no other listener).
    socket.on('error', () => undefined);
    let settled = false;
    const settle = (err: Error | null, s?: TLSSocket) => {
      if (settled) return;
      settled = true;
      this.connecting.delete(socket);
      done(err, s);
    };
    socket.once('error', (e) => {
      socket.destroy();
      settle(transportError(e, where));
    });
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.connecting.delete(socket);
      settle(new SyncTransportError('rejected', `the sync peer ${where} closed the connection during the TLS handshake`));
    });
    socket.once('secureConnect', () => {
      const got = socket.getPeerCertificate()?.fingerprint256;
      if (got !== this.pinned) {
        socket.destroy();
        settle(
          new SyncTransportError(
            'fingerprint',
            got
              ? `the sync peer ${where} presented certificate ${got}, not the pinned ${this.pinned}; nothing was sent (if the peer's identity was recreated, pin its new fingerprint)`
              : `the sync peer ${where} presented no certificate (pinned: ${this.pinned}); nothing was sent`,
          ),
        );
        return;
      }
      this.opened++;
      settle(null, socket);
    });
  }

  private post(payload: string, where: string, started: (req: http.ClientRequest) => void): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      let reused = false;
      let heard = false;
      let socket: TLSSocket | undefined;
      const req = http.request({
        agent: this.agent,
        method: 'POST',
        host: this.peer.host,
        port: this.peer.port,
        path: SYNC_PATH,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), Accept: 'application/json, application/problem+json' },
      });
      started(req);
      req.on('socket', (s: TLSSocket) => {
        socket = s;
        reused = this.answered.has(s);
        const onData = () => (heard = true);
        s.on('data', onData);
        req.once('close', () => s.off('data', onData));
      });
      req.on('error', (e) => {
        const err = transportError(e, where);
        reject(reused && !heard && CLOSED_UNANSWERED.has(err.code ?? '') ? new Unanswered(err) : err);
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > MAX_BODY_BYTES) {
            res.destroy();
            reject(new SyncTransportError('protocol', `the sync peer ${where} answered with more than 4 MiB`, { status }));
            return;
          }
          chunks.push(b);
        });
        res.on('error', (e) => reject(transportError(e, where)));
        res.on('end', () => {
          if (socket) this.answered.add(socket);
          const text = Buffer.concat(chunks).toString('utf8');
          if (text.length === 0) return resolve({ status, body: undefined });
          try {
            resolve({ status, body: JSON.parse(text) as unknown });
          } catch {
            reject(new SyncTransportError('protocol', `the sync peer ${where} answered HTTP ${status} with a body that is not JSON; is that port carpd's sync listener?`, { status }));
          }
        });
      });
      req.end(payload);
    });
  }
}

function closedError(): SyncTransportError {
  return new SyncTransportError('unreachable', 'the sync client is closed');
}

function transportError(e: unknown, where: string): SyncTransportError {
  if (e instanceof SyncTransportError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  if (code && ERRNO_WORDS[code]) {
    const kind = code === 'ETIMEDOUT' ? 'timeout' : 'unreachable';
    return new SyncTransportError(kind, `the sync peer ${where} is unreachable: ${ERRNO_WORDS[code]} (${code})`, { code, cause: e });
  }
  if (code && /^ERR_SSL_.*ALERT/.test(code)) {
    return new SyncTransportError('rejected', `the sync peer ${where} refused the TLS handshake: ${err.message}`, { code, cause: e });
  }
  if (code && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code.startsWith('HPE_'))) {
    return new SyncTransportError('protocol', `the sync peer ${where} does not speak TLS 1.3 and HTTP as carpd's sync listener does: ${err.message}`, { code, cause: e });
  }
  return new SyncTransportError('unreachable', `the sync peer ${where} is unreachable: ${err?.message ?? String(e)}`, { code, cause: e });
}

