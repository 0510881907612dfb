import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness, storedBytes } from './helpers/harness.js';

test('GET /v1/carp answers the globals with the ETag; PATCH changes only what it names', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const carp = await h.api.get('/v1/carp');
  assert.equal(carp.status, 200);
  assert.equal(carp.headers.etag, '"0"');
  assert.deepEqual(carp.body, { enabled: true, preempt: true, maintenance: false, demotion: 0, temporarilyDisabled: false, contributors: [] });

  const patched = await h.api.patch('/v1/carp', { preempt: false });
  assert.equal(patched.status, 200);
  assert.equal(patched.headers.etag, '"1"');
  assert.deepEqual(patched.body, { enabled: true, preempt: false, maintenance: false, demotion: 0, temporarilyDisabled: false, contributors: [] });
  assert.deepEqual(await h.backend.getCarpGlobals(), { allow: true, preempt: false, demotion: 0 });
  assert.equal((await h.api.get('/v1/config')).body.carp.preempt, false);
});

test('CARP disabled puts every vhid in INIT, enabled again brings them back to BACKUP', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] });
  await h.api.post('/v1/vips', { interface: 'em1', addresses: ['198.51.100.10/24'] });
  h.clock.advance(3000);
  assert.deepEqual((await h.api.get('/v1/status')).body.vhids.map((v: { state: string }) => v.state), ['MASTER', 'MASTER']);

  const off = await h.api.patch('/v1/carp', { enabled: false });
  assert.equal(off.body.enabled, false);
  const status = await h.api.get('/v1/status');
  assert.equal(status.body.carp.enabled, false);
  assert.deepEqual(status.body.vhids.map((v: { state: string }) => v.state), ['INIT', 'INIT']);
  assert.match(status.body.vhids[0].reason, /allow/);

  // INIT vhids cannot be forced.
  const forced = await h.api.put('/v1/vips/em0/1/state', { state: 'master' });
  assert.equal(forced.status, 409);
  assert.equal(forced.body.code, 'CARPD_ERR_VHID_NOT_RUNNING');

  await h.api.patch('/v1/carp', { enabled: true });
  assert.deepEqual((await h.api.get('/v1/status')).body.vhids.map((v: { state: string }) => v.state), ['BACKUP', 'BACKUP']);
});

test('maintenance demotes by 240, caps the effective skew at 240, and is taken back', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], advskew: 0 });
  await h.api.post('/v1/vips', { interface: 'em1', addresses: ['198.51.100.10/24'], advskew: 100 });

  const on = await h.api.put('/v1/carp/maintenance', { enabled: true });
  assert.equal(on.status, 200);
  assert.equal(on.headers.etag, '"3"');
  assert.deepEqual(on.body, { enabled: true, preempt: true, maintenance: true, demotion: 240, temporarilyDisabled: false, contributors: [{ name: "maintenance", value: 240 }] });
  let status = await h.api.get('/v1/status');
  assert.equal(status.body.carp.demotion, 240);
  assert.equal(status.body.carp.maintenance, true);
  assert.deepEqual(
    status.body.vhids.map((v: { advskew: number; effectiveSkew: number }) => [v.advskew, v.effectiveSkew]),
    [
      [0, 240],
      [100, 240],
    ],
  );
  assert.equal(await h.backend.getMaintenance(), true);

  const off = await h.api.put('/v1/carp/maintenance', { enabled: false });
  assert.equal(off.body.maintenance, false);
  assert.equal(off.body.demotion, 0);
  status = await h.api.get('/v1/status');
  assert.equal(status.body.carp.demotion, 0);
  assert.deepEqual(
    status.body.vhids.map((v: { effectiveSkew: number }) => v.effectiveSkew),
    [0, 100],
  );
  assert.equal(await h.backend.getMaintenance(), false);
});

test('maintenance survives a restart on the same state dir: the new backend is demoted by reconcile', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], advskew: 10 });
  await h.api.put('/v1/carp/maintenance', { enabled: true });
  await h.service.close();
  await h.backend.close();

  const again = await makeHarness({ dir: h.dir });
  t.after(() => again.close());
  assert.notEqual(again.backend, h.backend);
  assert.equal(await again.backend.getMaintenance(), true);
  const status = await again.api.get('/v1/status');
  assert.equal(status.body.reconcile.ok, true);
  assert.equal(status.body.revision, 2);
  assert.equal(status.body.carp.maintenance, true);
  assert.equal(status.body.carp.demotion, 240);
  assert.equal(status.body.vhids.length, 1);
  assert.equal(status.body.vhids[0].effectiveSkew, 240);
  assert.equal((await again.api.get('/v1/carp')).body.maintenance, true);

  // Leaving maintenance after the restart takes the demotion back from the new backend.
  const off = await again.api.put('/v1/carp/maintenance', { enabled: false });
  assert.equal(off.body.demotion, 0);
  assert.equal(await again.backend.getMaintenance(), false);
});

test('pfsync: defaults, configured with a syncdev it runs, and turned off it stops', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const initial = await h.api.get('/v1/pfsync');
  assert.equal(initial.status, 200);
  assert.equal(initial.headers.etag, '"0"');
  assert.equal(initial.body.enabled, false);
  assert.equal(initial.body.maxupd, 128);
  assert.equal(initial.body.status.running, false);

  const on = await h.api.put('/v1/pfsync', { enabled: true, syncdev: 'em1', syncpeer: '198.51.100.2', maxupd: 64, defer: true, version: 1500 });
  assert.equal(on.status, 200);
  assert.equal(on.headers.etag, '"1"');
  assert.equal(on.body.enabled, true);
  assert.equal(on.body.syncdev, 'em1');
  assert.equal(on.body.syncpeer, '198.51.100.2');
  assert.equal(on.body.status.running, true);
  assert.equal(on.body.status.syncdev, 'em1');
  assert.equal(on.body.status.maxupd, 64);
  assert.equal(on.body.status.version, 1500);
  assert.equal((await h.api.get('/v1/status')).body.pfsync.running, true);

  // PUT replaces: fields not given return to their defaults.
  const replaced = await h.api.put('/v1/pfsync', { enabled: true, syncdev: 'em1' });
  assert.equal(replaced.body.maxupd, 128);
  assert.equal(replaced.body.defer, false);
  assert.equal(replaced.body.version, 1400);
  assert.equal(replaced.body.syncpeer, undefined);

  const off = await h.api.put('/v1/pfsync', { enabled: false });
  assert.equal(off.body.enabled, false);
  assert.equal(off.body.status.running, false);
  assert.equal((await h.backend.getPfsync()).syncdev, undefined);
});

test('pfsync enabled without a syncdev is 422 CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const res = await h.api.put('/v1/pfsync', { enabled: true });
  assert.equal(res.status, 422);
  assert.equal(res.body.code, 'CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED');
  assert.equal((await h.api.get('/v1/pfsync')).body.enabled, false);
  assert.equal((await h.api.get('/v1/config')).body.revision, 0);
});

test('a syncdev the kernel refuses (EINVAL) is 502 CARPD_ERR_KERNEL and the stored config stays', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.put('/v1/pfsync', { enabled: true, syncdev: 'em1', maxupd: 10 });
  const before = storedBytes(h.dir);

  const res = await h.api.put('/v1/pfsync', { enabled: true, syncdev: 'em9' });
  assert.equal(res.status, 502);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(res.body.kernel.errnoName, 'EINVAL');
  assert.equal(res.body.kernel.errno, 22);
  assert.match(res.body.detail, /em9/);

  assert.deepEqual(storedBytes(h.dir), before);
  const now = await h.api.get('/v1/pfsync');
  assert.equal(now.headers.etag, '"1"');
  assert.equal(now.body.syncdev, 'em1');
  assert.equal(now.body.maxupd, 10);
  assert.equal(now.body.status.syncdev, 'em1');
  assert.equal(now.body.status.maxupd, 10);
});

test('dryRun on the CARP and pfsync endpoints answers plans and applies nothing', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const m = await h.api.put('/v1/carp/maintenance?dryRun=true', { enabled: true });
  assert.equal(m.body.dryRun, true);
  assert.deepEqual(m.body.steps.map((s: { op: string }) => s.op), ['maintenance.set']);
  assert.deepEqual(m.body.changes, ['carp.maintenance: false -> true']);
  const c = await h.api.patch('/v1/carp?dryRun=true', { enabled: false });
  assert.deepEqual(c.body.steps.map((s: { op: string }) => s.op), ['carp.set']);
  const p = await h.api.put('/v1/pfsync?dryRun=true', { enabled: true, syncdev: 'em1' });
  assert.deepEqual(p.body.steps.map((s: { op: string }) => s.op), ['pfsync.set']);
  assert.equal(await h.backend.getMaintenance(), false);
  assert.equal((await h.backend.getCarpGlobals()).allow, true);
  assert.equal((await h.backend.getPfsync()).running, false);
  assert.equal((await h.api.get('/v1/config')).body.revision, 0);
});
