/**
 * Out of file descriptors: a real carpd started with `ulimit -n 100` is held at its limit by
 * 200 idle TCP connections to its API. It stays up while they are held (it says so in its log
 * and keeps running), and once they close it answers again: /healthz and an authenticated GET.
 * Only outcomes are asserted. And a listener whose accept(2) fails (Node's 'error' on the
 * server) keeps listening and says so, once per 10 s; the sync listener is guarded the same way.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { keepListening } from '../src/daemon/listen-guard.js';
import { loadOrCreateIdentity } from '../src/sync/identity.js';
import { SyncServer } from '../src/sync/server.js';
import { SYNC_KINDS } from '../src/sync/messages.js';
import { SCHEMA_VERSION } from '../src/config/model.js';
import { call, daemonArgs, startDaemon } from './helpers/daemon.js';
import { capturingLogger } from './helpers/log-capture.js';
import { pollUntil } from './helpers/poll.js';

// Not lower: Node's ES module loader reads the module files concurrently at start-up, and under
// about 70 descriptors it fails to load carpd at all (EMFILE, reported as ERR_MODULE_NOT_FOUND).
const LIMIT = 100;
const HELD = 200;

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

test('descriptors exhausted: carpd under ulimit -n 100 stays up while 200 idle API connections are held, and answers once they close', { timeout: 60_000, skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-fd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const d = await startDaemon(t, daemonArgs(dir), { shell: `ulimit -n ${LIMIT}` });
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  const pid = d.child.pid!;
  assert.equal((await call(d.port, 'GET', '/v1/status', { token })).status, 200);

  const sockets: Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  let connected = 0;
  let closedByCarpd = 0;
  await Promise.all(
    Array.from({ length: HELD }, () => {
      const s = connect(d.port, '127.0.0.1');
      sockets.push(s);
      s.on('error', () => undefined);
      s.once('close', () => closedByCarpd++);
      return new Promise<void>((resolve) => {
        s.once('connect', () => {
          connected++;
          resolve();
        });
        s.once('close', () => resolve());
      });
    }),
  );
  assert.ok(connected > LIMIT, `the kernel completed more connections (${connected}) than carpd may hold`);

  // carpd reaches its limit: it holds what it can and closes the connections it cannot accept
  // (libuv's reserve descriptor), and carries on.
  await pollUntil('carpd at its descriptor limit', async () => openFds(pid), (n) => n >= LIMIT - 2);
  await pollUntil('carpd closing the connections beyond its limit', async () => closedByCarpd, (n) => n > 0);
  const held = sockets.filter((s) => !s.destroyed).length;
  assert.ok(held > LIMIT / 2, `carpd holds connections (${held}) while at its limit`);
  assert.ok(d.running, `carpd is still running while the connections are held\n${d.output}`);
  process.kill(pid, 0);
  // A request on a held connection is answered: carpd is alive, not merely not dead.
  const alive = sockets.find((s) => !s.destroyed)!;
  const answer = new Promise<string>((resolve) => {
    let text = '';
    alive.setEncoding('utf8').on('data', (c: string) => {
      text += c;
      if (text.includes('"status":"ok"')) resolve(text);
    });
  });
  alive.write('GET /healthz HTTP/1.1\r\nHost: carpd\r\n\r\n');
  assert.match(await answer, /^HTTP\/1\.1 200 /);

  for (const s of sockets) s.destroy();
  const health = await pollUntil(
    'carpd answering /healthz again',
    () => call(d.port, 'GET', '/healthz').catch(() => undefined),
    (r) => r?.status === 200,
  );
  assert.deepEqual(health!.body, { status: 'ok' });
  const status = await call(d.port, 'GET', '/v1/status', { token });
  assert.equal(status.status, 200);
  assert.equal((await call(d.port, 'GET', '/v1/status', { token: 'carpd_wrong_token_0123456789abcdef' })).status, 401, 'and still checks tokens');
  await pollUntil('the descriptors of the closed connections given back', async () => openFds(pid), (n) => n < LIMIT - 10);
  assert.equal(d.logs.filter((l) => (l.level ?? 0) >= 60).length, 0, 'nothing fatal');
});

test('keepListening: an accept error is logged (once per 10 s, counting the rest) and the listener keeps answering', async (t) => {
  const { logger, lines } = capturingLogger();
  const server = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  let now = 1_000_000;
  keepListening(server, logger, '--listen', () => now);
  const fail = (code: string) => server.emit('error', Object.assign(new Error(`accept ${code}`), { code, syscall: 'accept' }));
  fail('ENOBUFS');
  now += 5000;
  fail('EMFILE');
  fail('EMFILE');
  now += 5001;
  fail('EMFILE');
  assert.deepEqual(
    lines.map((l) => [l.level, l.event, l.code, l.suppressed]),
    [
      [50, 'listen.accept.failed', 'ENOBUFS', 0],
      [50, 'listen.accept.failed', 'EMFILE', 2],
    ],
  );
  assert.match(lines[1]!.msg, /^cannot accept a connection on --listen: out of file descriptors \(EMFILE\); still listening \(2 more since the last such line\)$/);
  const r = await call((server.address() as AddressInfo).port, 'GET', '/');
  assert.equal(r.text, 'ok');
});

test('the sync listener gives keepListening its server: a failed accept is logged and it still takes TLS connections', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-fd-sync-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const identity = await loadOrCreateIdentity(dir, 'fw-a');
  const server = await SyncServer.start({
    identity,
    host: '127.0.0.1',
    port: 0,
    pinned: () => [],
    schemaVersion: SCHEMA_VERSION,
    kinds: SYNC_KINDS,
    handle: async () => ({ status: 200, body: {} }),
  });
  t.after(() => server.close());
  const { logger, lines } = capturingLogger();
  keepListening(server.listener, logger, '--sync-listen');
  server.listener.emit('error', Object.assign(new Error('accept ENOBUFS'), { code: 'ENOBUFS', syscall: 'accept' }));
  assert.deepEqual(lines.map((l) => [l.event, l.listener, l.code]), [['listen.accept.failed', '--sync-listen', 'ENOBUFS']]);
  // A TLS handshake completes: the listener is still there (it presents this node's certificate).
  const socket = tlsConnect({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false });
  t.after(() => socket.destroy());
  const cert = await new Promise<string>((resolve, reject) => {
    socket.once('secureConnect', () => resolve(socket.getPeerX509Certificate()!.fingerprint256));
    socket.once('error', reject);
  });
  assert.equal(cert, identity.fingerprint);
});
