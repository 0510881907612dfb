/**
 * Temporary disable (PUT /v1/carp/temporary-disable): CARP off on this node (allow=0 in the
 * backend) without a revision, shown as `temporarilyDisabled` apart from the persistent
 * `enabled`; kept through changes of the desired state and a reconcile; undone by re-enabling
 * (the stored `enabled` applies) and by a restart of carpd, whose reconcile applies the stored
 * setting to a kernel that still has allow=0.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { run, type CliIO } from '../src/cli/run.js';
import { renderStatus } from '../src/cli/status.js';
import { ADMIN_TOKEN, makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';

const allow = async (h: Harness) => (await h.backend.getCarpGlobals()).allow;

test('temporary disable: allow=0 in the backend, no revision, shown apart from the persistent enabled; re-enable applies the stored setting', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const before = await h.api.get('/v1/config');
  const revision = before.body.revision as number;

  const plan = await h.api.put('/v1/carp/temporary-disable?dryRun=true', { disabled: true });
  assert.equal(plan.status, 200, plan.text);
  assert.equal(plan.body.dryRun, true);
  assert.deepEqual(plan.body.steps.map((s: { op: string; detail: string }) => [s.op, s.detail]), [['carp.set', 'allow=0 preempt=1']]);
  assert.equal(await allow(h), true, 'a dry run applies nothing');

  const off = await h.api.put('/v1/carp/temporary-disable', { disabled: true });
  assert.equal(off.status, 200, off.text);
  assert.equal(off.headers.etag, `"${revision}"`, 'no new revision');
  assert.equal(off.body.enabled, true, 'the persistent setting is unchanged');
  assert.equal(off.body.temporarilyDisabled, true);
  assert.equal(await allow(h), false);
  const config = await h.api.get('/v1/config');
  assert.deepEqual([config.body.revision, config.body.carp.enabled], [revision, true], 'nothing stored');

  const status = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(status.body.carp.enabled, false, 'live: net.inet.carp.allow=0');
  assert.equal(status.body.carp.temporarilyDisabled, true);
  assert.match(renderStatus(status.body), /TEMPORARILY DISABLED/);

  // Changes to the desired state are stored and applied, but CARP stays off; so through a reconcile.
  const patched = await h.api.patch('/v1/carp', { enabled: true, preempt: false }, { contentType: 'application/merge-patch+json' });
  assert.equal(patched.status, 200, patched.text);
  assert.deepEqual(await h.backend.getCarpGlobals().then((g) => [g.allow, g.preempt]), [false, false]);
  await h.service.reconcile();
  assert.equal(await allow(h), false);
  // Again: nothing to do.
  assert.equal((await h.api.put('/v1/carp/temporary-disable', { disabled: true })).body.temporarilyDisabled, true);

  const on = await h.api.put('/v1/carp/temporary-disable', { disabled: false });
  assert.equal(on.status, 200, on.text);
  assert.equal(on.body.temporarilyDisabled, false);
  assert.equal(await allow(h), true);
  const after = await h.api.get('/v1/status');
  assert.deepEqual([after.body.carp.enabled, after.body.carp.temporarilyDisabled], [true, false]);
  assert.doesNotMatch(renderStatus(after.body), /TEMPORARILY/);
});

test('temporary disable with CARP disabled in the stored config: re-enabling leaves it off', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.patch('/v1/carp', { enabled: false }, { contentType: 'application/merge-patch+json' });
  assert.equal(await allow(h), false);
  assert.equal((await h.api.put('/v1/carp/temporary-disable', { disabled: true })).body.temporarilyDisabled, true);
  const on = await h.api.put('/v1/carp/temporary-disable', { disabled: false });
  assert.deepEqual([on.body.enabled, on.body.temporarilyDisabled], [false, false]);
  assert.equal(await allow(h), false);
});

test('temporary disable: a stale If-Match is refused and a read token may not', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const stale = await h.api.put('/v1/carp/temporary-disable', { disabled: true }, { headers: { 'If-Match': '"999"' } });
  assert.equal(stale.status, 412);
  assert.equal(stale.body.code, 'CARPD_ERR_PRECONDITION_FAILED');
  const read = await h.api.put('/v1/carp/temporary-disable', { disabled: true }, { token: READ_TOKEN });
  assert.equal(read.status, 403);
  assert.equal(await allow(h), true);
});

test('a restart clears the temporary disable: the reconcile applies the stored setting to a kernel left at allow=0', async (t) => {
  const h1 = await makeHarness();
  assert.equal((await h1.api.put('/v1/carp/temporary-disable', { disabled: true })).status, 200);
  assert.equal(await allow(h1), false);
  // carpd stops; the kernel (the same backend) keeps allow=0, as FreeBSD's sysctl does.
  await h1.service.close();
  const h2 = await makeHarness({ dir: h1.dir, backend: h1.backend, clock: h1.clock });
  t.after(async () => {
    await h2.close();
    rmSync(h1.dir, { recursive: true, force: true });
  });
  assert.equal(await allow(h2), true);
  const carp = await h2.api.get('/v1/carp');
  assert.deepEqual([carp.body.enabled, carp.body.temporarilyDisabled], [true, false]);
});

test('carpctl carp temporary-disable on|off, and carpctl status shows it', async (t) => {
  const h = await makeHarness();
  const server = createServer(h.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await h.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const carpctl = async (...args: string[]) => {
    let out = '';
    let err = '';
    const io: CliIO = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {} };
    const code = await run([...args, '--url', url, '--token', ADMIN_TOKEN], io);
    return { code, out, err };
  };
  const on = await carpctl('carp', 'temporary-disable', 'on');
  assert.equal(on.code, 0, on.err);
  assert.match(on.out, /CARP temporarily disabled on this node/);
  assert.equal(await allow(h), false);
  assert.match((await carpctl('status')).out, /TEMPORARILY DISABLED/);
  const off = await carpctl('carp', 'temporary-disable', 'off');
  assert.equal(off.code, 0, off.err);
  assert.equal(await allow(h), true);
  assert.doesNotMatch((await carpctl('status')).out, /TEMPORARILY/);
  assert.equal((await carpctl('carp', 'temporary-disable', 'maybe')).code, 2);
});
