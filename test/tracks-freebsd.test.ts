/**
 * A health track on the freebsd backend over the fake FreeBSD libc (native/): a track down
 * holds its weight in net.inet.carp.demotion through carpd's maintenance ledger, applied exactly
 * once: carpd killed with SIGKILL and started again while the track is still down adds nothing
 * more (the track starts down, holding what the ledger says it holds), and the track up again
 * takes exactly its weight back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { buildNative, fakeDaemonEnv, fakeKernelControls, useFakeKernel } from './helpers/fakebsd.js';
import { pollUntil } from './helpers/poll.js';

const WORK = useFakeKernel('carpd-fbsd-tracks-');
const unavailable = buildNative();
const skip = unavailable ?? false;

const fake = unavailable ? undefined : fakeKernelControls();

test('freebsd: a track down is applied once across SIGKILL and restart, and taken back once', { skip, timeout: 60_000 }, async (t) => {
  fake!.reset();
  const stateDir = mkdtempSync(path.join(WORK, 'daemon-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const okFile = path.join(WORK, 'uplink-ok');
  const start = () =>
    startDaemon(t, ['--backend', 'freebsd', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
      env: fakeDaemonEnv(WORK),
    });
  let d: RunningDaemon = await start();
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(d.port, method, url, { token, body });
  const track = async () => (await api('GET', '/v1/tracks/uplink')).body.status as { state: string; probes: number; demotion: number; reason: string };

  const created = await api('POST', '/v1/tracks', { name: 'uplink', kind: 'script', command: ['/usr/bin/test', '-e', okFile], intervalMs: 100, timeoutMs: 90, rise: 1, fall: 2, weight: 50 });
  assert.equal(created.status, 201, created.text);
  await pollUntil('the track down', track, (s) => s.state === 'down');
  await pollUntil('its weight in the kernel\'s demotion', async () => fake!.demotion(), (v) => v === 50);
  const carp = (await api('GET', '/v1/carp')).body;
  assert.deepEqual(carp.contributors, [{ name: 'track:uplink', value: 50 }]);

  d.kill('SIGKILL');
  await d.exited;
  assert.equal(fake!.demotion(), 50, 'the kernel keeps the demotion while carpd is down');
  d = await start();
  const after = await track();
  assert.equal(after.state, 'down');
  assert.match(after.reason, /still down when carpd stopped/);
  // Several probes later, still down: the demotion was not applied a second time.
  await pollUntil('more probes after the restart', track, (s) => s.probes >= 5);
  assert.equal(fake!.demotion(), 50);
  assert.equal((await track()).demotion, 50);

  writeFileSync(okFile, '');
  t.after(() => rmSync(okFile, { force: true }));
  await pollUntil('the track up', track, (s) => s.state === 'up');
  await pollUntil('the demotion taken back', async () => fake!.demotion(), (v) => v === 0);
  unlinkSync(okFile);
  await pollUntil('down again', track, (s) => s.state === 'down');
  await pollUntil('applied once more', async () => fake!.demotion(), (v) => v === 50);
  // An interface track reads the link with SIOCGIFFLAGS (IFF_UP and IFF_RUNNING); a missing interface is a failed probe.
  assert.equal((await api('POST', '/v1/tracks', { name: 'lan', kind: 'interface', interface: 'em0', intervalMs: 100, timeoutMs: 90, rise: 1, fall: 1, weight: 1 })).status, 201);
  assert.equal((await api('POST', '/v1/tracks', { name: 'gone', kind: 'interface', interface: 'em9', intervalMs: 100, timeoutMs: 90, rise: 1, fall: 1, weight: 1 })).status, 201);
  const lan = await pollUntil('the link track decided', async () => (await api('GET', '/v1/tracks/lan')).body.status, (s) => s.state !== 'unknown');
  assert.equal(lan.state, 'up', JSON.stringify(lan));
  assert.equal(lan.lastProbe.detail, 'link of em0 up');
  const gone = await pollUntil('the missing interface decided', async () => (await api('GET', '/v1/tracks/gone')).body.status, (s) => s.state !== 'unknown');
  assert.equal(gone.state, 'down');
  assert.match(gone.lastProbe.detail, /^link of em9: .*em9 does not exist/);
  assert.equal((await api('DELETE', '/v1/tracks/lan')).status, 204);
  assert.equal((await api('DELETE', '/v1/tracks/gone')).status, 204);
  await pollUntil('the missing interface\'s demotion taken back', async () => fake!.demotion(), (v) => v === 50);
  // Removing the track gives the demotion back.
  assert.equal((await api('DELETE', '/v1/tracks/uplink')).status, 204);
  await pollUntil('removed: taken back', async () => fake!.demotion(), (v) => v === 0);
});
