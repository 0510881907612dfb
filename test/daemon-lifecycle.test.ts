/**
 * carpd as a process that fails to start or is stopped mid-work:
 *
 *   - a start that cannot listen (the port taken, an address not on this host), whose sync
 *     listener cannot listen, whose state dir cannot be used, whose stored configuration is
 *     damaged or whose backend cannot start exits with code 1 and a message saying why, by
 *     itself, before reconciling anything (nothing was planned or applied);
 *   - SIGTERM while a sync push waits on a peer that accepts the connection and never answers:
 *     the push is aborted and carpd exits with code 0.
 *
 * Only outcomes are asserted: that the process exits and how, never how long it took (the
 * helpers bound every wait with a generous safety timeout).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, daemonArgs, spawnDaemon, startDaemon, type DaemonProcess } from './helpers/daemon.js';
import { freeUdpPort } from './helpers/sync-node.js';

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-lifecycle-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

/** A TCP server that accepts connections and never sends a byte; its port, and the connections it got. */
async function silentServer(t: { after: (fn: () => unknown) => void }): Promise<{ server: Server; port: number; connected: Promise<void> }> {
  const sockets = new Set<Socket>();
  let connected!: () => void;
  const got = new Promise<void>((resolve) => (connected = resolve));
  const server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    connected();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { server, port: (server.address() as { port: number }).port, connected: got };
}

async function failedStart(d: DaemonProcess): Promise<string> {
  const exit = await d.waitForExit();
  assert.equal(exit.code, 1, d.output);
  const fatal = d.logs.find((l) => l.event === 'start.failed');
  assert.ok(fatal, `no start.failed line:\n${d.output}`);
  // Nothing was reconciled: the failure came before the backend was changed.
  assert.ok(!d.logs.some((l) => l.event === 'reconcile' || l.event === 'listening'), d.output);
  return String(fatal.err);
}

test('the API port in use: exit code 1 and why, the sim backend never opened, no process left', async (t) => {
  const taken = await silentServer(t);
  const group = `239.255.0.112:${await freeUdpPort()}`;
  const d = spawnDaemon(t, ['--listen', `127.0.0.1:${taken.port}`, '--state-dir', tmp(t), '--backend', 'sim', '--sim-group', group]);
  const err = await failedStart(d);
  assert.match(err, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken.port}: the address is in use \\(--listen\\)`));
  assert.equal(d.running, false);
});

test('an address not on this host, a state dir under a file, a damaged config.json, a backend that cannot start, a sync port in use: exit code 1 and why', async (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'not-a-dir');
  writeFileSync(file, 'x');
  const taken = await silentServer(t);
  const group = `239.255.0.112:${await freeUdpPort()}`;
  const damaged = path.join(dir, 'damaged');
  mkdirSync(damaged);
  writeFileSync(path.join(damaged, 'config.json'), '{"revision": ');
  const cases: [string, string[], RegExp, Record<string, string>?][] = [
    ['a config.json that does not parse', daemonArgs(damaged), /config\.json/],
    // The backend is opened after the API listener: the listener is closed again.
    ['a backend that cannot start', ['--listen', '127.0.0.1:0', '--state-dir', path.join(dir, 'c'), '--backend', 'freebsd'], /the freebsd backend cannot start/, { CARPD_FREEBSD_LIBC: path.join(dir, 'no-such-libc.so') }],
    ['--listen on a documentation address', ['--listen', '192.0.2.1:0', '--insecure-http', '--state-dir', path.join(dir, 'a'), '--backend', 'memory'], /cannot listen on 192\.0\.2\.1:0: the address is not one of this host's \(--listen\)/],
    ['--state-dir under a file', daemonArgs(path.join(file, 'state')), /cannot use the state dir .*not-a-dir\/state \(--state-dir\): a part of the path is not a directory/],
    // The sync listener is bound before the backend is opened, after the API listener: that is closed again.
    [
      '--sync-listen on a port in use',
      ['--listen', '127.0.0.1:0', '--state-dir', path.join(dir, 'b'), '--backend', 'sim', '--sim-group', group, '--sync-listen', `127.0.0.1:${taken.port}`],
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken.port}: the address is in use \\(--sync-listen\\)`),
    ],
  ];
  await Promise.all(
    cases.map(async ([name, args, message, env]) => {
      const d = spawnDaemon(t, args, { env });
      assert.match(await failedStart(d), message, name);
    }),
  );
});

test('SIGTERM while a push waits on a peer that never answers: the push is aborted, exit code 0', { timeout: 60_000 }, async (t) => {
  const peer = await silentServer(t);
  const dir = tmp(t);
  const d = await startDaemon(t, daemonArgs(dir));
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  const r = await call(d.port, 'PATCH', '/v1/sync', {
    token,
    body: { role: 'primary', peer: { address: '127.0.0.1', port: peer.port, fingerprint: 'AB'.repeat(32) } },
  });
  assert.equal(r.status, 200, r.text);
  // The push is under way: its connection reached the peer, which will never answer it.
  await peer.connected;
  d.kill('SIGTERM');
  const exit = await d.waitForExit();
  assert.equal(exit.code, 0, d.output);
  assert.ok(d.logs.some((l) => l.event === 'sync.push.aborted'), `the push was not aborted:\n${d.output}`);
  assert.ok(!d.logs.some((l) => l.event === 'sync.push.failed'), `the push failed before the stop:\n${d.output}`);
  assert.ok(d.logs.some((l) => l.event === 'stopped'), d.output);
});
