/**
 * The wall clock set an hour forward, then two hours back (ntpd, an administrator), under two
 * carpd processes (`--backend sim`, paired for config sync): libfaketime (LD_PRELOAD, with
 * FAKETIME_DONT_FAKE_MONOTONIC=1 so that only the wall clock moves, FAKETIME_NO_CACHE=1 and a
 * FAKETIME_TIMESTAMP_FILE the test rewrites: "+0", "+1h", "-1h") steps what both processes read as
 * the time of day, and nothing else. carpd's timers and durations are on the monotonic clock, so:
 *
 *   - no state changes (the master stays MASTER, the backup BACKUP, no transition logged) while
 *     the backup hears more advertisements than its master-down interval holds;
 *   - a vhid's `since` in GET /v1/status follows the wall clock (it is shown as the wall time of
 *     its monotonic instant) and its reason is unchanged;
 *   - the sync lag in seconds of a revision the secondary has not received stays the time it has
 *     really waited: not an hour more after the step forward, not zero (or negative) after the
 *     step back.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pollUntil } from './helpers/poll.js';
import { SyncNode, converged, freeTcpPort, freeUdpPort, pair } from './helpers/sync-node.js';

const LIBS = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1', '/usr/lib/faketime/libfaketimeMT.so.1'];
const lib = LIBS.find((p) => existsSync(p));
const skip = process.platform !== 'linux' ? 'libfaketime: Linux only' : lib ? false : 'libfaketime is not installed (Debian package faketime)';
const HOUR = 3_600_000;

const stateLines = (n: SyncNode) => n.logs().filter((l) => /vhid 1: \w+ -> \w+/.test(String(l.msg))).length;

test('a wall-clock step of +1 h and -1 h: no state change, since follows the wall clock, sync lag stays the real wait', { skip, timeout: 90_000 }, async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-clock-step-'));
  const stamp = path.join(root, 'faketime');
  const setWall = (spec: string) => writeFileSync(stamp, `${spec}\n`);
  setWall('+0');
  // The children inherit these (cleanEnv copies the environment); this process is not affected.
  const saved = { ...process.env };
  Object.assign(process.env, { LD_PRELOAD: lib!, FAKETIME_TIMESTAMP_FILE: stamp, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' });
  t.after(() => {
    for (const k of ['LD_PRELOAD', 'FAKETIME_TIMESTAMP_FILE', 'FAKETIME_NO_CACHE', 'FAKETIME_DONT_FAKE_MONOTONIC']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  const group = `239.255.0.112:${await freeUdpPort()}`;
  const node = async (name: string, local: string) =>
    new SyncNode(t, { name, stateDir: path.join(root, name), apiHost: '127.0.0.1', syncHost: '127.0.0.1', syncPort: await freeTcpPort(), localAddress: `${local}/24`, args: ['--backend', 'sim', '--sim-group', group] });
  const a = await node('node-a', '192.0.2.10');
  const b = await node('node-b', '192.0.2.11');
  t.after(async () => {
    await Promise.all([a.kill(), b.kill()]);
    rmSync(root, { recursive: true, force: true });
  });
  await Promise.all([a.start(), b.start()]);
  // libfaketime is really in effect: the processes read the file.
  setWall('+1h');
  const shifted = await a.api('GET', '/v1/status');
  assert.ok(Math.abs(Date.parse(String(shifted.headers.date)) - Date.now() - HOUR) < 5000, `Date header ${shifted.headers.date}: libfaketime is not in effect`);
  setWall('+0');

  await pair(a, b);
  assert.equal((await a.api('POST', '/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, password: 'step' })).status, 201);
  await converged(a, b);
  const vhid = async (n: SyncNode) => ((await n.get('/v1/status')).vhids as any[]).find((v) => v.interface === 'em0' && v.vhid === 1);
  await pollUntil('a MASTER, b BACKUP', () => Promise.all([vhid(a), vhid(b)]), ([x, y]) => x?.state === 'MASTER' && y?.state === 'BACKUP');
  const received = async () => {
    const c = (await b.get('/v1/stats')).carp;
    return (c.ipackets ?? 0) + (c.ipackets6 ?? 0);
  };

  let before = await Promise.all([vhid(a), vhid(b)]);
  const lines = [stateLines(a), stateLines(b)];
  for (const [spec, stepMs] of [
    ['+1h', HOUR],
    ['-1h', -2 * HOUR],
  ] as const) {
    setWall(spec);
    // Enough time for a wrong takeover: more advertisements than b's master-down (3.39 s) holds.
    const n0 = await received();
    await pollUntil(`${spec}: b hears 5 more advertisements`, received, (n) => n >= n0 + 5);
    const after = await Promise.all([vhid(a), vhid(b)]);
    for (const i of [0, 1]) {
      assert.equal(after[i].state, before[i].state, `${spec}: node ${i} changed state: ${after[i].reason}`);
      assert.equal(after[i].reason, before[i].reason, spec);
      const moved = Date.parse(after[i].since) - Date.parse(before[i].since);
      assert.ok(Math.abs(moved - stepMs) < 50, `${spec}: since moved by ${moved} ms, the wall clock by ${stepMs} ms`);
    }
    assert.deepEqual([stateLines(a), stateLines(b)], lines, `${spec}: a transition was logged`);
    before = after;
  }

  // Sync lag: the secondary gone, a change on the primary waits; its lag is the real wait.
  setWall('+0');
  await b.kill();
  assert.equal((await a.api('PATCH', '/v1/vips/em0/1', { description: 'waiting for the secondary' })).status, 200);
  const lag = async () => (await a.sync()).lag as { revisions: number; seconds: number };
  let last = await pollUntil('a revision waiting', lag, (l) => l.revisions === 1 && l.seconds > 0);
  for (const spec of ['+1h', '-1h']) {
    setWall(spec);
    const seen = await pollUntil(`${spec}: the lag grows`, lag, (l) => l.seconds > last.seconds);
    assert.ok(seen.seconds < 60, `${spec}: lag ${seen.seconds} s after the wall clock was set`);
    last = seen;
  }
});
