import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness, type Harness } from './helpers/harness.js';

const revisionOf = async (h: Harness): Promise<number> => (await h.api.get('/v1/config')).body.revision;
const liveOf = async (h: Harness, iface: string, vhid: number) => (await h.backend.listVhids()).find((v) => v.interface === iface && v.vhid === vhid);

test('an empty list, then a created VIP answers 201 with Location and ETag and is listed', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const empty = await h.api.get('/v1/vips');
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.body.items, []);
  assert.equal(empty.body.revision, 0);
  assert.equal(empty.headers.etag, '"0"');

  const created = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], description: 'uplink' });
  assert.equal(created.status, 201);
  assert.equal(created.headers.location, '/v1/vips/em0/1');
  assert.equal(created.headers.etag, '"1"');
  assert.equal(created.body.vhid, 1);
  assert.equal(created.body.advbase, 1);
  assert.equal(created.body.advskew, 0);
  assert.equal(created.body.mode, 'multicast');
  assert.equal(created.body.hasPassword, false);
  assert.equal(created.body.live.state, 'BACKUP');

  const list = await h.api.get('/v1/vips');
  assert.equal(list.headers.etag, '"1"');
  assert.equal(list.body.revision, 1);
  assert.equal(list.body.items.length, 1);
  assert.equal(list.body.items[0].description, 'uplink');
  assert.deepEqual(list.body.items[0].addresses, ['192.0.2.10/24']);
  const live = await liveOf(h, 'em0', 1);
  assert.deepEqual(live?.addresses, ['192.0.2.10/24']);
});

test('an explicit vhid is used as given; without one the lowest free vhid is taken', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const seven = await h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.7/24'] });
  assert.equal(seven.status, 201);
  assert.equal(seven.headers.location, '/v1/vips/em0/7');
  assert.equal(seven.body.vhid, 7);

  const first = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.1/24'] });
  assert.equal(first.headers.location, '/v1/vips/em0/1');
  const second = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.2/24'] });
  assert.equal(second.body.vhid, 2);

  const free = await h.api.get('/v1/vhids/free?interface=em0');
  assert.equal(free.status, 200);
  assert.deepEqual(free.body, { interface: 'em0', vhid: 3 });
  const elsewhere = await h.api.get('/v1/vhids/free?interface=em1');
  assert.deepEqual(elsewhere.body, { interface: 'em1', vhid: 1 });
  assert.deepEqual(
    (await h.backend.listVhids()).map((v) => v.vhid),
    [1, 2, 7],
  );
});

test('GET of one VIP answers it with the ETag, and 404 CARPD_ERR_VIP_NOT_FOUND when absent', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 5, addresses: ['192.0.2.5/24'], advskew: 20 });
  const one = await h.api.get('/v1/vips/em0/5');
  assert.equal(one.status, 200);
  assert.equal(one.headers.etag, '"1"');
  assert.equal(one.body.advskew, 20);

  const missing = await h.api.get('/v1/vips/em0/6');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'CARPD_ERR_VIP_NOT_FOUND');
  assert.match(missing.headers['content-type'], /^application\/problem\+json/);
  const otherIface = await h.api.get('/v1/vips/em1/5');
  assert.equal(otherIface.body.code, 'CARPD_ERR_VIP_NOT_FOUND');
});

test('PUT replaces the settings, keeps an omitted password, removes it with null, and creates with 201', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], password: 'hunter2', advskew: 50, description: 'old' });

  const kept = await h.api.put('/v1/vips/em0/1', { addresses: ['192.0.2.11/24'], advskew: 10 });
  assert.equal(kept.status, 200);
  assert.equal(kept.headers.etag, '"2"');
  assert.equal(kept.body.hasPassword, true);
  assert.equal(kept.body.advskew, 10);
  // Replace semantics: the description not given returns to its default.
  assert.equal(kept.body.description, '');
  assert.deepEqual(kept.body.addresses, ['192.0.2.11/24']);
  let live = await liveOf(h, 'em0', 1);
  assert.equal(live?.key, 'hunter2');
  assert.deepEqual(live?.addresses, ['192.0.2.11/24']);

  const removed = await h.api.put('/v1/vips/em0/1', { addresses: ['192.0.2.11/24'], password: null });
  assert.equal(removed.status, 200);
  assert.equal(removed.body.hasPassword, false);
  live = await liveOf(h, 'em0', 1);
  assert.equal(live?.key, undefined);

  const created = await h.api.put('/v1/vips/em1/9', { addresses: ['198.51.100.9/24'] });
  assert.equal(created.status, 201);
  assert.equal(created.headers.location, '/v1/vips/em1/9');
  assert.equal(created.body.vhid, 9);
  assert.ok(await liveOf(h, 'em1', 9));
});

test('PATCH merges: null removes a peer, switching to multicast drops the peers', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', {
    interface: 'em1',
    vhid: 3,
    addresses: ['2001:db8::5/64'],
    mode: 'unicast',
    peer: '198.51.100.2',
    peer6: '2001:db8::2',
    advskew: 40,
    description: 'dual',
  });
  assert.equal(created.status, 201);

  const noPeer = await h.api.patch('/v1/vips/em1/3', { peer: null });
  assert.equal(noPeer.status, 200);
  assert.equal(noPeer.body.peer, undefined);
  assert.equal(noPeer.body.peer6, '2001:db8::2');
  assert.equal(noPeer.body.advskew, 40, 'fields not in the patch stay');
  assert.equal(noPeer.body.description, 'dual');
  let live = await liveOf(h, 'em1', 3);
  assert.equal(live?.peer, undefined);
  assert.equal(live?.peer6, '2001:db8::2');

  const multicast = await h.api.patch('/v1/vips/em1/3', { mode: 'multicast' }, { contentType: 'application/merge-patch+json' });
  assert.equal(multicast.status, 200);
  assert.equal(multicast.body.mode, 'multicast');
  assert.equal(multicast.body.peer6, undefined);
  live = await liveOf(h, 'em1', 3);
  assert.equal(live?.peer6, undefined);

  const stored = (await h.api.get('/v1/config')).body.vips[0];
  assert.equal(stored.mode, 'multicast');
  assert.ok(!('peer' in stored) && !('peer6' in stored));
});

test('DELETE answers 204, then the VIP is gone (404) and the backend has no vhid', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24', '192.0.2.11/24'] });
  const del = await h.api.delete('/v1/vips/em0/1');
  assert.equal(del.status, 204);
  assert.equal(del.headers.etag, '"2"');
  assert.equal(del.text, '');
  assert.deepEqual(await h.backend.listVhids(), []);
  assert.equal((await h.api.get('/v1/vips/em0/1')).status, 404);
  const again = await h.api.delete('/v1/vips/em0/1');
  assert.equal(again.status, 404);
  assert.equal(again.body.code, 'CARPD_ERR_VIP_NOT_FOUND');
  assert.equal(await revisionOf(h), 2);
});

test('several addresses, IPv6 included, are stored and applied in canonical form', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'vlan10', addresses: ['192.0.2.10/24', '2001:DB8::A/64', '2001:db8:0:0::b/64'] });
  assert.equal(created.status, 201);
  assert.deepEqual(created.body.addresses, ['192.0.2.10/24', '2001:db8::a/64', '2001:db8::b/64']);
  assert.deepEqual((await liveOf(h, 'vlan10', 1))?.addresses, ['192.0.2.10/24', '2001:db8::a/64', '2001:db8::b/64']);
  const config = await h.api.get('/v1/config');
  assert.deepEqual(config.body.vips[0].addresses, ['192.0.2.10/24', '2001:db8::a/64', '2001:db8::b/64']);
  // The same address in another spelling is the same address.
  const dup = await h.api.post('/v1/vips', { interface: 'vlan10', addresses: ['2001:db8::A/64'] });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.code, 'CARPD_ERR_ADDRESS_IN_USE');
});

test('the same vhid on two different interfaces is allowed and listed per interface', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const a = await h.api.post('/v1/vips', { interface: 'em0', vhid: 10, addresses: ['192.0.2.10/24'] });
  const b = await h.api.post('/v1/vips', { interface: 'em1', vhid: 10, addresses: ['198.51.100.10/24'] });
  assert.equal(a.status, 201);
  assert.equal(b.status, 201);
  assert.equal(b.headers.location, '/v1/vips/em1/10');
  const em1 = await h.api.get('/v1/vips?interface=em1');
  assert.equal(em1.body.items.length, 1);
  assert.equal(em1.body.items[0].interface, 'em1');
  assert.equal((await h.api.get('/v1/vips')).body.items.length, 2);
  assert.equal((await h.backend.listVhids()).filter((v) => v.vhid === 10).length, 2);
});

test('forcing the state moves a MASTER to BACKUP with the administrator as the reason; a missing VIP is 404', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], advskew: 0 });
  h.clock.advance(3000);
  assert.equal((await h.api.get('/v1/vips/em0/1')).body.live.state, 'MASTER');
  const revision = await revisionOf(h);

  const backup = await h.api.put('/v1/vips/em0/1/state', { state: 'backup' });
  assert.equal(backup.status, 200);
  assert.equal(backup.body.state, 'BACKUP');
  assert.match(backup.body.reason, /administrator/);
  assert.equal(backup.body.interface, 'em0');
  assert.equal((await liveOf(h, 'em0', 1))?.state, 'BACKUP');

  const master = await h.api.put('/v1/vips/em0/1/state', { state: 'master' });
  assert.equal(master.body.state, 'MASTER');
  assert.equal(await revisionOf(h), revision, 'a forced state is not stored');

  const missing = await h.api.put('/v1/vips/em0/2/state', { state: 'backup' });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'CARPD_ERR_VIP_NOT_FOUND');
});

test('GET /v1/vhids/free skips used vhids and needs the interface', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.get('/v1/vhids/free?interface=em0')).body.vhid, 1);
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] });
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'] });
  assert.equal((await h.api.get('/v1/vhids/free?interface=em0')).body.vhid, 2);
  const noIface = await h.api.get('/v1/vhids/free');
  assert.equal(noIface.status, 400);
  assert.equal(noIface.body.code, 'CARPD_ERR_VALIDATION');
});

test('dryRun=true answers the plan and changes neither the revision nor the backend', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const plan = await h.api.post('/v1/vips?dryRun=true', { interface: 'em0', vhid: 4, addresses: ['192.0.2.4/24', '2001:db8::4/64'], password: 'pw' });
  assert.equal(plan.status, 200);
  assert.equal(plan.headers.location, undefined);
  assert.equal(plan.body.dryRun, true);
  assert.equal(plan.body.fromRevision, 0);
  assert.deepEqual(
    plan.body.steps.map((s: { op: string }) => s.op),
    ['vhid.set', 'address.add', 'address.add'],
  );
  assert.equal(plan.body.steps[0].target, 'em0 vhid 4');
  assert.match(plan.body.steps[0].detail, /password set/);
  assert.ok(plan.body.changes.some((c: string) => c.includes('add VIP em0 vhid 4')), JSON.stringify(plan.body.changes));
  assert.equal(await revisionOf(h), 0);
  assert.deepEqual(await h.backend.listVhids(), []);
  assert.deepEqual((await h.api.get('/v1/vips')).body.items, []);

  await h.api.post('/v1/vips', { interface: 'em0', vhid: 4, addresses: ['192.0.2.4/24'] });
  const before = JSON.stringify(await h.backend.listVhids());
  const patchPlan = await h.api.patch('/v1/vips/em0/4?dryRun=true', { advskew: 99 });
  assert.equal(patchPlan.body.dryRun, true);
  assert.deepEqual(patchPlan.body.changes, ['em0 vhid 4: advskew 0 -> 99']);
  assert.equal(patchPlan.body.steps[0].op, 'vhid.set');
  const deletePlan = await h.api.delete('/v1/vips/em0/4?dryRun=true');
  assert.equal(deletePlan.status, 200);
  assert.deepEqual(deletePlan.body.steps.map((s: { op: string }) => s.op), ['vhid.remove']);
  const forcePlan = await h.api.put('/v1/vips/em0/4/state?dryRun=true', { state: 'master' });
  assert.equal(forcePlan.body.steps[0].op, 'state.force');
  assert.equal(JSON.stringify(await h.backend.listVhids()), before);
  assert.equal(await revisionOf(h), 1);
  assert.equal((await h.api.get('/v1/vips/em0/4')).body.advskew, 0);
});

test('passwords never appear in any response body', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const secret = 'Zq9-unique-secret';
  const newSecret = 'Other-secret-77';
  const texts: string[] = [];
  const keep = (r: { text: string }) => {
    texts.push(r.text);
    return r;
  };
  keep(await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], password: secret }));
  keep(await h.api.post('/v1/vips?dryRun=true', { interface: 'em1', addresses: ['198.51.100.1/24'], password: newSecret }));
  keep(await h.api.get('/v1/vips'));
  keep(await h.api.get('/v1/vips/em0/1'));
  keep(await h.api.get('/v1/config'));
  keep(await h.api.get('/v1/config/revisions'));
  keep(await h.api.get('/v1/status'));
  keep(await h.api.patch('/v1/vips/em0/1?dryRun=true', { password: newSecret }));
  keep(await h.api.put('/v1/vips/em0/1?dryRun=true', { addresses: ['192.0.2.10/24'], password: newSecret }));
  keep(await h.api.patch('/v1/vips/em0/1', { password: newSecret }));
  keep(await h.api.put('/v1/vips/em0/1', { addresses: ['192.0.2.10/24'] }));
  keep(await h.api.post('/v1/config/rollback?dryRun=true', { revision: 1 }));
  keep(await h.api.post('/v1/config/rollback', { revision: 1 }));
  keep(await h.api.patch('/v1/vips/em0/1', { password: '01234567890123456789' }));
  keep(await h.api.patch('/v1/vips/em0/1', { password: 'éééééééééé' }));
  for (const text of texts) {
    assert.ok(!text.includes(secret), text);
    assert.ok(!text.includes(newSecret), text);
    assert.ok(!text.includes('01234567890123456789'), text);
    assert.ok(!text.includes('éééééééééé'), text);
  }
  // The secrets did reach the backend, so the checks above looked at answers about them.
  assert.equal((await liveOf(h, 'em0', 1))?.key, secret);
  assert.ok(texts[7].includes('password changed'), texts[7]);
});

test('unicast mode with a peer is applied and elects MASTER', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], mode: 'unicast', peer: '198.51.100.2', advskew: 100 });
  assert.equal(created.status, 201);
  assert.equal(created.body.mode, 'unicast');
  assert.equal(created.body.peer, '198.51.100.2');
  const live = await liveOf(h, 'em0', 1);
  assert.equal(live?.peer, '198.51.100.2');
  assert.equal(live?.state, 'BACKUP');
  h.clock.advance(3000 + (100 / 256) * 1000 - 1);
  assert.equal((await liveOf(h, 'em0', 1))?.state, 'BACKUP');
  h.clock.advance(1);
  assert.equal((await h.api.get('/v1/vips/em0/1')).body.live.state, 'MASTER');
});

test('concurrent creates are serialized: each gets its own vhid and revision', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const results = await Promise.all([1, 2, 3, 4, 5].map((i) => h.api.post('/v1/vips', { interface: 'em0', addresses: [`192.0.2.${i}/24`] })));
  assert.deepEqual(results.map((r) => r.status), [201, 201, 201, 201, 201]);
  assert.deepEqual(results.map((r) => r.body.vhid).sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual(results.map((r) => r.headers.etag).sort(), ['"1"', '"2"', '"3"', '"4"', '"5"']);
  assert.equal(await revisionOf(h), 5);
  assert.equal((await h.backend.listVhids()).length, 5);
});

test('a PUT that changes nothing makes no new revision', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const body = { addresses: ['192.0.2.10/24'], advskew: 7, password: 'pw' };
  assert.equal((await h.api.put('/v1/vips/em0/1', body)).status, 201);
  const again = await h.api.put('/v1/vips/em0/1', body);
  assert.equal(again.status, 200);
  assert.equal(again.headers.etag, '"1"');
  const patch = await h.api.patch('/v1/vips/em0/1', { advskew: 7 });
  assert.equal(patch.headers.etag, '"1"');
  assert.equal((await h.api.get('/v1/config/revisions')).body.items.length, 2);
});

test('when all 255 vhids of an interface are used, creating without a vhid is 409 CARPD_ERR_NO_FREE_VHID', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  for (let n = 1; n <= 255; n++) {
    const r = await h.api.post('/v1/vips', { interface: 'vlan10', vhid: n, addresses: [`10.0.${n}.1/24`] });
    assert.equal(r.status, 201);
  }
  const free = await h.api.get('/v1/vhids/free?interface=vlan10');
  assert.equal(free.status, 409);
  assert.equal(free.body.code, 'CARPD_ERR_NO_FREE_VHID');
  const res = await h.api.post('/v1/vips', { interface: 'vlan10', addresses: ['10.1.0.1/24'] });
  assert.equal(res.status, 409);
  assert.equal(res.body.code, 'CARPD_ERR_NO_FREE_VHID');
  assert.equal(await revisionOf(h), 255);
  assert.equal((await h.api.get('/v1/vhids/free?interface=em0')).body.vhid, 1);
});

test('after a restart on a node without the interface, reconcile reports it and the vhid cannot be forced', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] });
  await h.api.post('/v1/vips', { interface: 'em1', addresses: ['198.51.100.10/24'] });
  await h.service.close();
  await h.backend.close();

  const again = await makeHarness({ dir: h.dir, interfaces: ['em0'] });
  t.after(() => again.close());
  const status = await again.api.get('/v1/status');
  assert.equal(status.body.reconcile.ok, false);
  assert.match(status.body.reconcile.error, /em1/);
  // What could be applied was: em0's VIP is up, and changes elsewhere are not blocked.
  assert.deepEqual(status.body.vhids.map((v: { interface: string }) => v.interface), ['em0']);
  const other = await again.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.20/24'] });
  assert.equal(other.status, 201);
  const forced = await again.api.put('/v1/vips/em1/1/state', { state: 'master' });
  assert.equal(forced.status, 409);
  assert.equal(forced.body.code, 'CARPD_ERR_VHID_NOT_RUNNING');
  assert.match(forced.body.detail, /not in the kernel/);
  // Removing the VIP of the missing interface lets the rest of the desired state be applied again.
  const del = await again.api.delete('/v1/vips/em1/1');
  assert.equal(del.status, 204);
  assert.deepEqual((await again.backend.listVhids()).map((v) => v.interface), ['em0', 'em0']);
});
