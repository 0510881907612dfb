import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { createLogger } from '../src/daemon/logger.js';
import { MAX_SKEW_MS, ReplayGuard, seal } from '../src/sync/envelope.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { MAX_CONNECTIONS_PER_PEER, SyncClient, SyncServer, SyncTransportError, type MessageKinds, type RejectReason, type SyncServerOptions, type VerifiedMessage } from '../src/sync/transport.js';
import { pollUntil } from './helpers/poll.js';

const SCHEMA = 1;
const SECRET = 'SECRET-BODY-MARKER';
let A: SyncIdentity; // the server
let B: SyncIdentity; // its pinned peer
let C: SyncIdentity; // pinned as well (for relaying)
let D: SyncIdentity; // not pinned anywhere
const dirs: string[] = [];

before(async () => {
  const make = async (name: string) => {
    const d = mkdtempSync(path.join(tmpdir(), `carpd-sync-${name}-`));
    dirs.push(d);
    return loadOrCreateIdentity(d, name);
  };
  [A, B, C, D] = await Promise.all(['fw-a', 'fw-b', 'fw-c', 'fw-d'].map(make));
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface LogLine {
  level: number;
  event?: string;
  reason?: string;
  peer?: { address: string; fingerprint: string | null };
  msg: string;
}

interface Harness {
  server: SyncServer;
  calls: { m: VerifiedMessage; peer: { fingerprint: string; address: string } }[];
  logs: LogLine[];
  raw: string[];
  pinned: string[];
}

/** The transport alone: any message type with any body is passed to the handler (carpd's kinds are messages.ts's, tested in sync-messages.test.ts). */
const anyKind: MessageKinds<VerifiedMessage> = { read: (m) => ({ ok: true, message: m }) };

/** A client whose answers these tests read as they come: SyncClient.request leaves them unchecked. */
type RawClient = Pick<SyncClient, 'close'> & { request(type: string, body: unknown): Promise<{ status: number; body: any }> };

async function startServer(t: { after: (fn: () => Promise<void> | void) => void }, over: Partial<SyncServerOptions> = {}, identity = A): Promise<Harness> {
  const calls: Harness['calls'] = [];
  const raw: string[] = [];
  const logs: LogLine[] = [];
  const pinned = [B.fingerprint, C.fingerprint];
  const logger = createLogger('debug', {
    write(s: string) {
      raw.push(s);
      logs.push(JSON.parse(s));
    },
  });
  const server = await SyncServer.start({
    identity,
    host: '127.0.0.1',
    port: 0,
    pinned: () => pinned,
    schemaVersion: SCHEMA,
    kinds: anyKind,
    handle: async (m, peer) => {
      calls.push({ m, peer });
      return { status: 200, body: { ok: true, type: m.type, echo: m.body } };
    },
    logger,
    ...over,
  });
  t.after(() => server.close());
  return { server, calls, logs, raw, pinned };
}

function clientFor(t: { after: (fn: () => void) => void }, id: SyncIdentity, port: number, pin = A.fingerprint, schemaVersion = SCHEMA, timeoutMs?: number): RawClient {
  const c = new SyncClient({ identity: id, peer: { host: '127.0.0.1', port, fingerprint: pin }, schemaVersion, timeoutMs });
  t.after(() => c.close());
  return c;
}

/** A raw HTTPS POST, with the given client certificate or none. */
function postRaw(port: number, id: SyncIdentity | undefined, body: string, opts: { method?: string; path?: string } = {}): Promise<{ status: number; type: string; body: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'POST',
        path: opts.path ?? '/sync/v1/message',
        agent: false,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
        ...(id ? { key: id.keyPem, cert: id.certPem } : {}),
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function only(reason: RejectReason, n = 1): Record<RejectReason, number> {
  const all: Record<RejectReason, number> = { 'no-client-cert': 0, 'unknown-peer': 0, 'sender-mismatch': 0, 'bad-signature': 0, 'wrong-recipient': 0, stale: 0, replay: 0, schema: 0, malformed: 0 };
  all[reason] = n;
  return all;
}

/** The answer is the reason's problem+json, counted once, logged at warn, and the handler was not called. */
function assertRejected(h: Harness, res: { status: number; type?: string; body: any }, reason: RejectReason, code: string, status: number, fingerprint: string | null, handlerCalls = 0): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  if (res.type !== undefined) assert.match(res.type, /^application\/problem\+json/);
  assert.equal(res.body.code, code);
  assert.equal(res.body.status, status);
  assert.equal(res.body.type, `urn:carpd:error:${code}`);
  assert.equal(res.body.reason, reason);
  assert.equal(typeof res.body.detail, 'string');
  assert.deepEqual(h.server.rejected(), only(reason));
  assert.equal(h.calls.length, handlerCalls, 'the handler is not called for a rejected message');
  const warns = h.logs.filter((l) => l.level === 40 && l.event === 'sync.rejected');
  assert.equal(warns.length, 1);
  assert.equal(warns[0].reason, reason);
  assert.equal(warns[0].peer?.address, '127.0.0.1');
  assert.equal(warns[0].peer?.fingerprint, fingerprint);
  assert.ok(!h.raw.join('').includes(SECRET), 'the body is never logged');
}

test('round trip between two nodes that pin each other', async (t) => {
  const a = await startServer(t, { pinned: () => [B.fingerprint] });
  const b = await startServer(t, { pinned: () => [A.fingerprint] }, B);

  const res = await clientFor(t, B, a.server.port, A.fingerprint).request('push', { revision: 7, secret: SECRET });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { ok: true, type: 'push', echo: { revision: 7, secret: SECRET } });
  assert.equal(a.calls.length, 1);
  const { m, peer } = a.calls[0];
  assert.equal(m.protocol, 1);
  assert.equal(m.type, 'push');
  assert.equal(m.from, B.fingerprint);
  assert.equal(m.to, A.fingerprint);
  assert.equal(m.schemaVersion, SCHEMA);
  assert.match(m.nonce, /^[0-9a-f]{32}$/);
  assert.ok(Math.abs(Date.parse(m.issuedAt) - Date.now()) < MAX_SKEW_MS);
  assert.deepEqual(m.body, { revision: 7, secret: SECRET });
  assert.deepEqual(peer, { fingerprint: B.fingerprint, address: '127.0.0.1' });

  // The other way, with the pinned fingerprint in another spelling.
  const back = await clientFor(t, A, b.server.port, `sha256:${B.fingerprint.replaceAll(':', '').toLowerCase()}`).request('status', null);
  assert.equal(back.status, 200);
  assert.equal(b.calls[0].peer.fingerprint, A.fingerprint);
  assert.equal(b.calls[0].m.body, null);

  // Every request is a new message: the same call twice is no replay.
  assert.equal((await clientFor(t, B, a.server.port).request('push', {})).status, 200);
  assert.equal(a.calls.length, 2);
  assert.deepEqual(a.server.rejected(), { ...only('malformed', 0) });
  assert.deepEqual(b.server.rejected(), { ...only('malformed', 0) });
  assert.ok(!a.raw.join('').includes(SECRET), 'the body is never logged');
});

test("the handler's answers pass through, problems as problem+json; other routes are 404/405", async (t) => {
  const h = await startServer(t, {
    handle: async (m) => {
      if (m.type === 'older') return { status: 409, body: { type: 'urn:carpd:error:CARPD_ERR_SYNC_OLDER_REVISION', title: 't', status: 409, code: 'CARPD_ERR_SYNC_OLDER_REVISION', detail: 'd', appliedRevision: 3 } };
      if (m.type === 'empty') return { status: 204, body: undefined };
      throw new Error('boom');
    },
  });
  const c = clientFor(t, B, h.server.port);
  const older = await c.request('older', {});
  assert.equal(older.status, 409);
  assert.equal(older.body.appliedRevision, 3);
  const empty = await c.request('empty', {});
  assert.deepEqual(empty, { status: 204, body: undefined });
  const boom = await c.request('boom', {});
  assert.equal(boom.status, 500);
  assert.equal(boom.body.code, 'CARPD_ERR_INTERNAL');
  assert.ok(!JSON.stringify(boom.body).includes('boom'), 'internal errors stay in the log');

  const notFound = await postRaw(h.server.port, B, '{}', { path: '/v1/status' });
  assert.equal(notFound.status, 404);
  assert.match(notFound.type, /^application\/problem\+json/);
  assert.equal(notFound.body.code, 'CARPD_ERR_ROUTE_NOT_FOUND');
  const wrongMethod = await postRaw(h.server.port, B, '', { method: 'GET' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.body.code, 'CARPD_ERR_METHOD_NOT_ALLOWED');
  assert.deepEqual(h.server.rejected(), only('malformed', 0));
});

test('a peer whose certificate is not pinned is refused (unknown-peer), until it is pinned', async (t) => {
  const h = await startServer(t);
  const res = await clientFor(t, D, h.server.port).request('push', { secret: SECRET });
  assertRejected(h, res, 'unknown-peer', 'CARPD_ERR_SYNC_UNTRUSTED', 403, D.fingerprint);
  assert.ok(res.body.detail.includes(D.fingerprint));

  // pinned() is read at every request: pinning D (in any spelling) lets it in.
  h.pinned.push(D.fingerprint.replaceAll(':', '').toLowerCase());
  assert.equal((await clientFor(t, D, h.server.port).request('push', {})).status, 200);
  assert.equal(h.calls.length, 1);
});

test('a client without certificate is refused (no-client-cert)', async (t) => {
  const h = await startServer(t);
  const res = await postRaw(h.server.port, undefined, seal(B, A.fingerprint, 'push', { secret: SECRET }, SCHEMA));
  assertRejected(h, res, 'no-client-cert', 'CARPD_ERR_SYNC_UNTRUSTED', 403, null);
});

test('the same sealed message sent twice is a replay the second time', async (t) => {
  const h = await startServer(t);
  const sealed = seal(B, A.fingerprint, 'push', { secret: SECRET }, SCHEMA);
  const first = await postRaw(h.server.port, B, sealed);
  assert.equal(first.status, 200);
  const second = await postRaw(h.server.port, B, sealed);
  assertRejected(h, second, 'replay', 'CARPD_ERR_SYNC_REPLAY', 409, B.fingerprint, 1);
});

test('a message altered after sealing fails the signature (bad-signature)', async (t) => {
  const h = await startServer(t);
  const env = JSON.parse(seal(B, A.fingerprint, 'push', { revision: 1, secret: SECRET }, SCHEMA));
  env.message = env.message.replace('"revision":1', '"revision":2');
  const res = await postRaw(h.server.port, B, JSON.stringify(env));
  assertRejected(h, res, 'bad-signature', 'CARPD_ERR_SYNC_UNTRUSTED', 403, B.fingerprint);
});

test('a message of another schema version is refused, naming both versions (schema)', async (t) => {
  const h = await startServer(t);
  const res = await clientFor(t, B, h.server.port, A.fingerprint, 2).request('push', { secret: SECRET });
  assertRejected(h, res, 'schema', 'CARPD_ERR_SYNC_SCHEMA', 409, B.fingerprint);
  assert.match(res.body.detail, /peer speaks schema version 2, this node 1/);
});

test('a message issued more than 300 s away from the receiver\'s clock is stale, either way', async (t) => {
  const late = await startServer(t, { clock: () => Date.now() + MAX_SKEW_MS + 60_000 });
  const res = await clientFor(t, B, late.server.port).request('push', { secret: SECRET });
  assertRejected(late, res, 'stale', 'CARPD_ERR_SYNC_REPLAY', 409, B.fingerprint);
  assert.match(res.body.detail, /ago/);

  const early = await startServer(t, { clock: () => Date.now() - MAX_SKEW_MS - 60_000 });
  const res2 = await clientFor(t, B, early.server.port).request('push', { secret: SECRET });
  assertRejected(early, res2, 'stale', 'CARPD_ERR_SYNC_REPLAY', 409, B.fingerprint);
  assert.match(res2.body.detail, /in the future/);
});

test('a message addressed to another node is refused (wrong-recipient)', async (t) => {
  const h = await startServer(t);
  const res = await postRaw(h.server.port, B, seal(B, C.fingerprint, 'push', { secret: SECRET }, SCHEMA));
  assertRejected(h, res, 'wrong-recipient', 'CARPD_ERR_SYNC_BAD_MESSAGE', 400, B.fingerprint);
});

test('a pinned peer relaying a message sealed by another pinned node is refused (sender-mismatch)', async (t) => {
  const h = await startServer(t);
  const fromC = seal(C, A.fingerprint, 'push', { secret: SECRET }, SCHEMA);
  const res = await postRaw(h.server.port, B, fromC);
  assertRejected(h, res, 'sender-mismatch', 'CARPD_ERR_SYNC_UNTRUSTED', 403, B.fingerprint);
  // Sent by C itself it is fine: the message was intact.
  assert.equal((await postRaw(h.server.port, C, fromC)).status, 200);
});

test('bodies that are not envelopes are refused (malformed), without quoting them', async (t) => {
  const h = await startServer(t);
  const res = await postRaw(h.server.port, B, `not json{ ${SECRET}`);
  assertRejected(h, res, 'malformed', 'CARPD_ERR_SYNC_BAD_MESSAGE', 400, B.fingerprint);
  assert.ok(!res.body.detail.includes(SECRET));

  const good = JSON.parse(seal(B, A.fingerprint, 'push', {}, SCHEMA));
  const bodies = [
    '{"message": 1, "signature": "AA=="}',
    JSON.stringify({ message: good.message, signature: 'not base64!' }),
    JSON.stringify({ message: 'not json', signature: good.signature }),
    JSON.stringify({ message: good.message.replace(/"nonce":"[0-9a-f]+"/, '"nonce":"x"'), signature: good.signature }),
    JSON.stringify({ message: good.message.replace('"protocol":1', '"protocol":2'), signature: good.signature }),
  ];
  for (const b of bodies) {
    const r = await postRaw(h.server.port, B, b);
    assert.equal(r.status, 400, b);
    assert.equal(r.body.reason, 'malformed', b);
  }
  assert.deepEqual(h.server.rejected(), only('malformed', 1 + bodies.length));
  assert.equal(h.calls.length, 0);
});

test('a body over 4 MiB is refused with 413 and counted as malformed', async (t) => {
  const h = await startServer(t);
  const res = await postRaw(h.server.port, B, JSON.stringify({ message: 'x'.repeat(4 * 1024 * 1024), signature: 'AA==' }));
  assert.equal(res.status, 413);
  assert.equal(res.body.code, 'CARPD_ERR_BODY_TOO_LARGE');
  assert.deepEqual(h.server.rejected(), only('malformed'));
  assert.equal(h.calls.length, 0);
});

test('the client sends nothing to a server whose certificate is not the pinned one', async (t) => {
  // Every TLS connection ends either in a handshake error or, after the handshake, in a close;
  // both are awaited, so the byte count is final when it is checked.
  let bytes = 0;
  let connections = 0;
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const impostor = tls.createServer({ key: D.keyPem, cert: D.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (socket) => {
    connections++;
    socket.on('data', (b: Buffer) => (bytes += b.length));
    socket.on('error', () => undefined);
    socket.on('close', () => ended());
  });
  impostor.on('tlsClientError', () => {
    connections++;
    ended();
  });
  await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
  const port = (impostor.address() as AddressInfo).port;

  const err = await clientFor(t, B, port, A.fingerprint).request('push', { secret: SECRET }).then(
    () => assert.fail('must not succeed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SyncTransportError);
  assert.equal(err.kind, 'fingerprint');
  assert.ok(err.message.includes(D.fingerprint) && err.message.includes(A.fingerprint), err.message);
  await done;
  assert.equal(connections, 1);
  assert.equal(bytes, 0, 'not one byte of the request reached the server');

  // The same with a real sync listener behind the wrong certificate: no request, no handler.
  const h = await startServer(t, { pinned: () => [B.fingerprint] }, D);
  await assert.rejects(clientFor(t, B, h.server.port, A.fingerprint).request('push', {}), (e: unknown) => e instanceof SyncTransportError && e.kind === 'fingerprint');
  assert.equal(h.calls.length, 0);
  assert.deepEqual(h.server.rejected(), only('malformed', 0));
});

test('a port nobody listens on is unreachable, in plain words', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const err = await clientFor(t, B, port).request('push', {}).then(
    () => assert.fail('must not succeed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof SyncTransportError);
  assert.equal(err.kind, 'unreachable');
  assert.equal(err.code, 'ECONNREFUSED');
  assert.match(err.message, /connection refused/);
  assert.ok(err.message.includes(`127.0.0.1:${port}`));
  assert.equal(err.toCarpdError().code, 'CARPD_ERR_SYNC_PEER_UNREACHABLE');
});

test('a peer that accepts but never answers times out', async (t) => {
  const silent = net.createServer((s) => s.on('error', () => undefined).resume());
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => silent.close(() => resolve())));
  const c = clientFor(t, B, (silent.address() as AddressInfo).port, A.fingerprint, SCHEMA, 100);
  await assert.rejects(c.request('push', {}), (e: unknown) => e instanceof SyncTransportError && e.kind === 'timeout');
});

test('a peer that does not speak TLS is a protocol error', async (t) => {
  const plain = net.createServer((s) => {
    s.on('error', () => undefined).resume();
    s.end('HTTP/1.1 400 Bad Request\r\n\r\n');
  });
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => plain.close(() => resolve())));
  const c = clientFor(t, B, (plain.address() as AddressInfo).port);
  await assert.rejects(c.request('push', {}), (e: unknown) => {
    assert.ok(e instanceof SyncTransportError);
    assert.equal(e.kind, 'protocol', e.message);
    return true;
  });
});

test('the replay guard forgets nonces once their messages are stale, and fails closed when full', () => {
  const g = new ReplayGuard(2);
  const t0 = 1_000_000_000;
  assert.equal(g.accept('p', 'n1', t0, t0), true);
  assert.equal(g.accept('p', 'n1', t0, t0 + 1), false);
  assert.equal(g.accept('q', 'n1', t0, t0 + 1), true, 'nonces are per sender');
  // Full: the oldest entry (p/n1, issued t0) is dropped and t0 becomes the floor.
  assert.equal(g.accept('p', 'n2', t0 + 10, t0 + 10), true);
  assert.equal(g.size, 2);
  assert.equal(g.accept('p', 'n1', t0, t0 + 20), false, 'a dropped nonce is still refused');
  assert.equal(g.accept('p', 'n3', t0 - 5, t0 + 20), false, 'anything issued before the floor is refused');
  // After the window every entry has expired and is swept.
  const later = t0 + 10 + MAX_SKEW_MS + 20_000;
  assert.equal(g.accept('p', 'n4', later, later), true);
  assert.equal(g.size, 1);
});

// --- the kept connection -----------------------------------------------------------------------

/** Every envelope's message nonce, to tell a retry (a new message) from the same one sent twice. */
const nonceOf = (env: string) => JSON.parse(JSON.parse(env).message).nonce as string;

test('requests share one kept TLS connection: sequential and concurrent ones, one at a time', async (t) => {
  const h = await startServer(t);
  const c = new SyncClient({ identity: B, peer: { host: '127.0.0.1', port: h.server.port, fingerprint: A.fingerprint }, schemaVersion: SCHEMA });
  t.after(() => c.close());
  for (let i = 0; i < 20; i++) assert.equal((await c.request('push', { revision: i })).status, 200);
  const together = await Promise.all(Array.from({ length: 10 }, (_, i) => c.request(i % 2 ? 'status' : 'plan', { i })));
  assert.deepEqual(
    together.map((r) => r.status),
    Array(10).fill(200),
  );
  assert.equal(h.server.connections().accepted, 1, 'one TLS handshake for 30 requests');
  assert.equal(c.connectionsOpened, 1);
  assert.equal(h.calls.length, 30);
  assert.equal(new Set(h.calls.map((x) => x.m.nonce)).size, 30, 'each request is its own message');
  assert.deepEqual(h.server.rejected(), only('malformed', 0));
});

test('the listener restarting between requests: the next request succeeds on a new connection', async (t) => {
  const first = await startServer(t);
  const port = first.server.port;
  const c = new SyncClient({ identity: B, peer: { host: '127.0.0.1', port, fingerprint: A.fingerprint }, schemaVersion: SCHEMA });
  t.after(() => c.close());
  assert.equal((await c.request('push', { revision: 1 })).status, 200);
  await first.server.close();
  const second = await startServer(t, { port });
  assert.equal((await c.request('push', { revision: 2 })).status, 200);
  assert.equal(second.calls.length, 1);
  assert.equal(second.server.connections().accepted, 1);
  assert.equal(c.connectionsOpened, 2);
});

/**
 * A bare HTTPS listener with A's certificate that keeps connections open and lets a test decide,
 * per request (numbered from 1 across connections), to answer or to drop the connection.
 */
async function keptListener(t: { after: (fn: () => Promise<void> | void) => void }, onRequest: (n: number, req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) {
  const bodies: string[] = [];
  let connections = 0;
  const server = https.createServer({ key: A.keyPem, cert: A.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      onRequest(bodies.length, req, res);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('secureConnection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { port: (server.address() as AddressInfo).port, bodies, connections: () => connections };
}

const answer = (res: import('node:http').ServerResponse) => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');

test('a request whose reused connection dies before any byte of the answer is retried once, on a new connection, as a new message', async (t) => {
  // Request 2 is dropped on arrival, as when the listener closes an idle connection just as the
  // request goes out (or restarts): the client cannot tell whether it was read.
  const l = await keptListener(t, (n, req, res) => (n === 2 ? req.socket.destroy() : answer(res)));
  const c = clientFor(t, B, l.port);
  assert.equal((await c.request('push', { revision: 1 })).status, 200);
  const r = await c.request('push', { revision: 2 });
  assert.deepEqual(r, { status: 200, body: { ok: true } });
  assert.equal(l.bodies.length, 3);
  assert.equal(l.connections(), 2);
  // Sealed again: a listener that did read the first one does not take the retry as a replay.
  assert.notEqual(nonceOf(l.bodies[1]), nonceOf(l.bodies[2]));
  assert.equal(JSON.parse(JSON.parse(l.bodies[2]).message).body.revision, 2);
});

test('not retried: a new connection that dies, one that had begun answering, and a retry that dies too', async (t) => {
  const fails = (p: Promise<unknown>) =>
    assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof SyncTransportError, String(e));
      assert.equal(e.kind, 'unreachable', e.message);
      assert.equal(e.code, 'ECONNRESET', e.message);
      return true;
    });

  // The first request of a client, on a connection just opened: it was sent to a listener that
  // took the connection and then dropped it, which a retry would not change.
  const fresh = await keptListener(t, (_n, req) => req.socket.destroy());
  await fails(clientFor(t, B, fresh.port).request('push', {}));
  assert.equal(fresh.bodies.length, 1);

  // The answer had begun: the request was read, so it is not sent again.
  const begun = await keptListener(t, (n, req, res) => {
    if (n === 1) return answer(res);
    req.socket.write('HTTP/1.1 200 OK\r\n');
    req.socket.destroy();
  });
  const c1 = clientFor(t, B, begun.port);
  assert.equal((await c1.request('push', {})).status, 200);
  await fails(c1.request('push', {}));
  assert.equal(begun.bodies.length, 2);

  // Retried once, and no more.
  const twice = await keptListener(t, (n, req, res) => (n === 1 ? answer(res) : req.socket.destroy()));
  const c2 = clientFor(t, B, twice.port);
  assert.equal((await c2.request('push', {})).status, 200);
  await fails(c2.request('push', {}));
  assert.equal(twice.bodies.length, 3);
  assert.equal(twice.connections(), 2);
});

test('after the pinned listener is replaced by another certificate on its port, the client sends it nothing', async (t) => {
  const h = await startServer(t);
  const port = h.server.port;
  const c = new SyncClient({ identity: B, peer: { host: '127.0.0.1', port, fingerprint: A.fingerprint }, schemaVersion: SCHEMA });
  t.after(() => c.close());
  assert.equal((await c.request('push', {})).status, 200);
  await h.server.close();

  let bytes = 0;
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const impostor = tls.createServer({ key: D.keyPem, cert: D.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (socket) => {
    socket.on('data', (b: Buffer) => (bytes += b.length));
    socket.on('error', () => undefined);
    socket.on('close', () => ended());
  });
  impostor.on('tlsClientError', () => ended());
  await new Promise<void>((resolve) => impostor.listen(port, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => impostor.close(() => resolve())));

  await assert.rejects(c.request('push', { secret: SECRET }), (e: unknown) => e instanceof SyncTransportError && e.kind === 'fingerprint');
  await done;
  assert.equal(bytes, 0, 'not one byte of the request reached the impostor');
  assert.equal(c.connectionsOpened, 1, 'the connection to the impostor was never handed to a request');
});

test('the client closes its connection after idleMs without a request; the next request opens a new one', async (t) => {
  const h = await startServer(t);
  const c = new SyncClient({ identity: B, peer: { host: '127.0.0.1', port: h.server.port, fingerprint: A.fingerprint }, schemaVersion: SCHEMA, idleMs: 50 });
  t.after(() => c.close());
  assert.equal((await c.request('push', {})).status, 200);
  // The listener keeps connections for a minute: the one closing it here is the client.
  await pollUntil('the idle connection to close', async () => h.server.connections().open, (n) => n === 0);
  assert.equal((await c.request('push', {})).status, 200);
  assert.equal(h.server.connections().accepted, 2);
  assert.equal(c.connectionsOpened, 2);
});

test('the listener closes a connection after its idleMs without a request; the next request opens a new one', async (t) => {
  const h = await startServer(t, { idleMs: 50 });
  const c = clientFor(t, B, h.server.port);
  assert.equal((await c.request('push', {})).status, 200);
  await pollUntil('the idle connection to close', async () => h.server.connections().open, (n) => n === 0);
  assert.equal((await c.request('push', {})).status, 200);
  assert.equal(h.server.connections().accepted, 2);
  assert.equal(h.calls.length, 2);
});

test(`a peer holds at most ${MAX_CONNECTIONS_PER_PEER} connections: a new one replaces its oldest idle one, and is closed when all are busy`, async (t) => {
  const h = await startServer(t);
  const clients = Array.from({ length: MAX_CONNECTIONS_PER_PEER + 1 }, () => clientFor(t, B, h.server.port));
  for (const c of clients) assert.equal((await c.request('push', {})).status, 200);
  assert.deepEqual(h.server.connections(), { accepted: MAX_CONNECTIONS_PER_PEER + 1, open: MAX_CONNECTIONS_PER_PEER });
  // The first client's connection was the one closed; it simply connects again.
  assert.equal((await clients[0].request('push', {})).status, 200);
  assert.deepEqual(h.server.connections(), { accepted: MAX_CONNECTIONS_PER_PEER + 2, open: MAX_CONNECTIONS_PER_PEER });
  // Another peer has its own allowance.
  assert.equal((await clientFor(t, C, h.server.port).request('push', {})).status, 200);
  assert.equal(h.server.connections().open, MAX_CONNECTIONS_PER_PEER + 1);

  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let waiting = 0;
  const busy = await startServer(t, {
    handle: async () => {
      waiting++;
      await gate;
      return { status: 200, body: {} };
    },
  });
  const held = Array.from({ length: MAX_CONNECTIONS_PER_PEER }, () => clientFor(t, B, busy.server.port).request('push', {}));
  await pollUntil('every connection to be busy', async () => waiting, (n) => n === MAX_CONNECTIONS_PER_PEER);
  await assert.rejects(clientFor(t, B, busy.server.port).request('push', {}), (e: unknown) => e instanceof SyncTransportError && (e.kind === 'unreachable' || e.kind === 'rejected'));
  const refused = busy.logs.filter((l) => l.event === 'sync.connection.refused');
  assert.equal(refused.length, 1);
  assert.equal(refused[0].level, 40);
  assert.equal(refused[0].peer?.fingerprint, B.fingerprint);
  release();
  assert.deepEqual(
    (await Promise.all(held)).map((r) => r.status),
    Array(MAX_CONNECTIONS_PER_PEER).fill(200),
  );
});
