/**
 * The sync client, the client half of the sync transport (transport.ts says what the transport
 * is; server.ts is the listener): the kept-alive pinned connection, the retry rule for a
 * reused connection that died unanswered, and the idle close.
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
import type { Duplex } from 'node:stream';
import tls, { type TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '../clock.js';
import { seal } from './envelope.js';
import { parseFingerprint, type SyncIdentity } from './identity.js';
import { MAX_BODY_BYTES, SYNC_PATH, SyncTransportError } from './transport-shared.js';

export interface SyncPeer {
  host: string;
  port: number;
  fingerprint: string;
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
   * SyncTransportError for transport failures. The timeout (opts.timeoutMs, else the client's)
   * counts from this call: the wait for the requests made before it is part of it.
   */
  async request(type: string, body: unknown, opts?: { timeoutMs?: number }): Promise<RawAnswer> {
    if (this.closed) throw closedError();
    const timeoutMs = opts?.timeoutMs ?? this.timeoutMs;
    const where = this.address;
    let current: http.ClientRequest | undefined;
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.clock.setTimeout(() => {
        const e = new SyncTransportError('timeout', `the sync peer ${where} did not answer within ${timeoutMs} ms`);
        // Its connection is not used again (a late answer would be read as the next request's),
        // and a handshake that hangs is not left behind.
        current?.destroy(e);
        for (const s of this.connecting) s.destroy();
        reject(e);
      }, timeoutMs);
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
      const payload = seal(this.identity, this.pinned, type, body, this.schemaVersion, this.clock.wall());
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
