/**
 * The sync listener, the server half of the sync transport (transport.ts says what the
 * transport is; client.ts is the other half). Kept apart from the client because the two share
 * only the path, the body limit and the error type (transport-shared.ts).
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
 */
import http from 'node:http';
import type { EventEmitter } from 'node:events';
import https from 'node:https';
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { CarpdError, problemOf } from '../errors.js';
import { REJECT_REASONS, ReplayGuard, SyncRejection, open, type RejectReason, type SyncMessage } from './envelope.js';
import { parseFingerprint, type SyncIdentity } from './identity.js';
import { MAX_BODY_BYTES, SYNC_PATH } from './transport-shared.js';

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
  /** Told of every message refused (after it is counted and logged). */
  onRejected?: (r: { reason: RejectReason; address: string; fingerprint: string | null; detail: string }) => void;
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
  /** Every TCP connection open now, in its handshake or after. */
  readonly raw = new Set<Socket>();
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
    // Every TCP connection, handshake or not, so that close() ends them all at once: a peer that
    // connected but never finishes its handshake would otherwise hold a stop for handshakeTimeout.
    server.on('connection', (socket: Socket) => {
      s.raw.add(socket);
      socket.once('close', () => s.raw.delete(socket));
    });
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

  /** The listening server, for its 'error' (a failed accept(2)): the daemon keeps it listening. */
  get listener(): EventEmitter {
    return this.server;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const socket of this.raw) socket.destroy();
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
    this.opts.onRejected?.({ reason, address, fingerprint: fingerprint ?? null, detail });
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
