/**
 * The administrative demotion adjustment on the freebsd backend over the fake FreeBSD libc
 * (native/): one net.inet.carp.demotion delta through carpd's maintenance ledger, applied
 * exactly once across a SIGKILL and a restart, and taken back exactly when cleared (a negative
 * one too).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { buildNative, fakeDaemonEnv, fakeKernelControls, useFakeKernel } from './helpers/fakebsd.js';

const WORK = useFakeKernel('carpd-fbsd-admin-');
const unavailable = buildNative();
const skip = unavailable ?? false;

const fake = unavailable ? undefined : fakeKernelControls();

test('freebsd: the admin adjustment is one demotion delta, applied once across SIGKILL and restart, taken back exactly', { skip, timeout: 60_000 }, async (t) => {
  fake!.reset();
  const stateDir = mkdtempSync(path.join(WORK, 'daemon-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const start = () =>
    startDaemon(t, ['--backend', 'freebsd', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
      env: fakeDaemonEnv(WORK),
    });
  let d: RunningDaemon = await start();
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(d.port, method, url, { token, body });
  assert.equal(fake!.demotion(), 0);

  // Negative: the kernel's sum goes to -1, and the view names it.
  const set = await api('PUT', '/v1/carp/demotion/admin', { value: -1 });
  assert.equal(set.status, 200, set.text);
  assert.equal(fake!.demotion(), -1);
  assert.deepEqual((await api('GET', '/v1/carp')).body.contributors, [{ name: 'admin', value: -1 }]);
  // The same value again adds nothing.
  assert.equal((await api('PUT', '/v1/carp/demotion/admin', { value: -1 })).status, 200);
  assert.equal(fake!.demotion(), -1);

  d.kill('SIGKILL');
  await d.exited;
  assert.equal(fake!.demotion(), -1, 'the kernel keeps the delta while carpd is down');
  d = await start();
  assert.equal(fake!.demotion(), -1, 'the restart did not apply it a second time');
  assert.deepEqual((await api('GET', '/v1/carp/demotion/admin')).body, { value: -1 });
  assert.deepEqual((await api('GET', '/v1/carp')).body.contributors, [{ name: 'admin', value: -1 }]);

  // Changed: exactly the difference; cleared: exactly taken back.
  assert.equal((await api('PUT', '/v1/carp/demotion/admin', { value: 30 })).status, 200);
  assert.equal(fake!.demotion(), 30);
  assert.equal((await api('DELETE', '/v1/carp/demotion/admin')).status, 200);
  assert.equal(fake!.demotion(), 0);

  // Negative, SIGKILL, restart, then cleared: back to 0, not to +1 or -2.
  assert.equal((await api('PUT', '/v1/carp/demotion/admin', { value: -5 })).status, 200);
  assert.equal(fake!.demotion(), -5);
  d.kill('SIGKILL');
  await d.exited;
  d = await start();
  assert.equal(fake!.demotion(), -5);
  const cleared = await api('DELETE', '/v1/carp/demotion/admin');
  assert.equal(cleared.status, 200);
  assert.deepEqual(cleared.body, { value: 0 });
  assert.equal(fake!.demotion(), 0);
  assert.deepEqual((await api('GET', '/v1/carp')).body.contributors, []);
});
