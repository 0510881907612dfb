/**
 * The administrative demotion adjustment (`admin`, PUT/GET/DELETE /v1/carp/demotion/admin) on
 * userspace backends: two sim nodes in this process on one in-memory segment and a manual
 * clock; persistence across a reopen of the same state dir; bad input.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { decodeSimFrame } from '../src/runtime/frame.js';
import { CarpdMetrics } from '../src/api/metrics.js';
import { ADMIN_DEMOTION_FILE } from '../src/service/admin-demotion.js';
import { ManualClock, makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';
import { parsePrometheusText } from './helpers/prom-text.js';
import { pollUntil } from './helpers/poll.js';

test('advskew 0 at admin demotion -1 stays the only MASTER and advertises 0, never 255; +120 moves mastership, clearing moves it back', async (t) => {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  // What node a puts on the segment: the advskew of each of its advertisements.
  const skews: number[] = [];
  const tap = net.endpoint('tap');
  await tap.open((bytes) => {
    const f = decodeSimFrame(bytes);
    if (f.ok && f.frame.node === 'a' && f.frame.carp.length >= 36 && f.frame.carp[1] === 1) skews.push(f.frame.carp[2]);
  });
  t.after(() => tap.close());
  let seed = 11n;
  const nodes: Harness[] = [];
  for (const name of ['a', 'b']) {
    const backend = await SimBackend.open({ clock, transport: net.endpoint(name), interfaces: ['em0'], node: name, random: () => (seed = seed * 6364136223846793005n + 1442695040888963407n) });
    const h = await makeHarness({ backend, clock });
    t.after(() => h.close());
    nodes.push(h);
  }
  const [a, b] = nodes as [Harness, Harness];
  for (const [h, advskew] of [[a, 0], [b, 100]] as const) {
    assert.equal((await h.api.patch('/v1/carp', { preempt: true })).status, 200);
    const r = await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], advskew, password: 'admin-test' });
    assert.equal(r.status, 201, r.text);
  }
  const set = await a.api.put('/v1/carp/demotion/admin', { value: -1 });
  assert.equal(set.status, 200, set.text);
  assert.deepEqual(set.body, { value: -1 });
  const state = async (h: Harness) => (await h.service.liveVhid('em0', 1))?.state;
  clock.advance(4000);
  for (let i = 0; i < 5; i++) clock.advance(1000);
  assert.equal(await state(a), 'MASTER');
  assert.equal(await state(b), 'BACKUP');
  assert.ok(skews.length >= 3, `a advertised ${skews.length} times`);
  assert.deepEqual([...new Set(skews)], [0], 'advskew 0 + demotion -1 is clamped to 0, never wraps to 255');

  // The demotion view names it.
  assert.equal((await a.api.get('/v1/carp/demotion/admin', { token: READ_TOKEN })).body.value, -1);
  const carp = await a.api.get('/v1/carp', { token: READ_TOKEN });
  assert.equal(carp.body.demotion, -1);
  assert.deepEqual(carp.body.contributors, [{ name: 'admin', value: -1 }]);
  assert.deepEqual((await a.api.get('/v1/status', { token: READ_TOKEN })).body.carp.contributors, carp.body.contributors);
  const metrics = new CarpdMetrics({ service: a.service });
  t.after(() => metrics.close());
  const fam = parsePrometheusText(await metrics.metrics());
  assert.equal(fam.get('carpd_demotion_contributor')?.samples.find((s) => s.labels.name === 'admin')?.value, -1);

  // More than the gap: b (preempt) takes over.
  skews.length = 0;
  assert.equal((await a.api.put('/v1/carp/demotion/admin', { value: 120 })).status, 200);
  for (let i = 0; i < 6; i++) clock.advance(1000);
  assert.equal(await state(b), 'MASTER');
  assert.equal(await state(a), 'BACKUP');
  assert.ok(skews.includes(120), `a advertised ${skews.join(',')} before stepping down`);
  assert.deepEqual(a.service.namedDemotions(), new Map([['admin', 120]]));

  // Cleared: a (preempt) takes it back.
  const cleared = await a.api.delete('/v1/carp/demotion/admin');
  assert.equal(cleared.status, 200);
  assert.deepEqual(cleared.body, { value: 0 });
  for (let i = 0; i < 6; i++) clock.advance(1000);
  assert.equal(await state(a), 'MASTER');
  assert.equal(await state(b), 'BACKUP');
  assert.deepEqual((await a.api.get('/v1/carp', { token: READ_TOKEN })).body.contributors, []);
  assert.equal(existsSync(path.join(a.dir, ADMIN_DEMOTION_FILE)), false);
  // b never held one: the adjustment is per node.
  assert.equal((await b.api.get('/v1/carp/demotion/admin', { token: READ_TOKEN })).body.value, 0);
});

test('the adjustment survives a restart on a userspace backend (same state dir, fresh backend)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-admin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await makeHarness({ backend: new MemoryBackend(), dir });
  assert.equal((await first.api.put('/v1/carp/demotion/admin', { value: -7 })).status, 200);
  assert.equal((await first.service.liveCarp()).demotion, -7);
  // The demotion event names it among the contributors.
  const ev = await pollUntil('the demotion event', async () => first.service.events.since(0).events.filter((e) => e.type === 'demotion'), (l) => l.length > 0);
  assert.deepEqual(ev.at(-1)!.data, { total: -7, previous: 0, contributors: [{ name: 'admin', value: -7 }] });
  await first.close();
  const again = await makeHarness({ backend: new MemoryBackend(), dir });
  t.after(() => again.close());
  // A fresh backend holds nothing until the start brings the stored value back.
  assert.equal((await again.service.liveCarp()).demotion, 0);
  assert.equal(await again.service.restoreAdminDemotion(), -7);
  assert.equal((await again.service.liveCarp()).demotion, -7);
  assert.deepEqual((await again.api.get('/v1/carp/demotion/admin', { token: READ_TOKEN })).body, { value: -7 });
  assert.deepEqual(await again.service.demotions(), new Map([['admin', -7]]));
});

test('bad input is refused with problem+json and changes nothing; a read token may not set it', async (t) => {
  const h = await makeHarness({ backend: new MemoryBackend() });
  t.after(() => h.close());
  assert.equal((await h.api.put('/v1/carp/demotion/admin', { value: 5 })).status, 200);
  const bad: unknown[] = [{ value: 241 }, { value: -241 }, { value: 1.5 }, { value: '5' }, { value: 'x' }, {}, { value: 1, extra: true }];
  for (const body of bad) {
    const r = await h.api.put('/v1/carp/demotion/admin', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/problem\+json/);
    assert.equal(r.body.code, 'CARPD_ERR_VALIDATION');
  }
  const malformed = await h.api.call('put', '/v1/carp/demotion/admin', { raw: '{"value":' });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.body.code, 'CARPD_ERR_MALFORMED_JSON');
  const ro = await h.api.put('/v1/carp/demotion/admin', { value: 1 }, { token: READ_TOKEN });
  assert.equal(ro.status, 403);
  assert.equal(ro.body.code, 'CARPD_ERR_FORBIDDEN');
  assert.equal((await h.api.delete('/v1/carp/demotion/admin', { token: READ_TOKEN })).status, 403);
  assert.deepEqual((await h.api.get('/v1/carp/demotion/admin', { token: READ_TOKEN })).body, { value: 5 });
  assert.equal((await h.service.liveCarp()).demotion, 5);
});
