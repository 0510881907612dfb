/**
 * VRRPv3 as a per-VIP protocol: created and read back, every refusal with its code and field,
 * a protocol change recreating the vhid, and a document stored before `protocol` existed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ErrorCode } from '../src/errors.js';
import type { Capabilities } from '../src/kernel/backend.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { hashToken } from '../src/service/service.js';
import { ADMIN_TOKEN, READ_TOKEN, ManualClock, makeHarness, storedBytes, type Harness } from './helpers/harness.js';

const revisionOf = async (h: Harness): Promise<number> => (await h.api.get('/v1/config')).body.revision;
const liveOf = async (h: Harness, iface: string, vhid: number) => (await h.backend.listVhids()).find((v) => v.interface === iface && v.vhid === vhid);

test('a vrrpv3 VIP is created with the RFC defaults, read back, applied and reported in the status', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], protocol: 'vrrpv3' });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.headers.location, '/v1/vips/em0/1');
  assert.equal(created.body.protocol, 'vrrpv3');
  assert.equal(created.body.vrrpPriority, 100);
  assert.equal(created.body.vrrpInterval, 100);
  assert.equal('advbase' in created.body, false, 'a vrrpv3 VIP has no advbase');
  assert.equal('advskew' in created.body, false, 'a vrrpv3 VIP has no advskew');
  assert.equal(created.body.hasPassword, false);
  assert.equal(created.body.live.state, 'BACKUP');

  const explicit = await h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.7/24'], protocol: 'vrrpv3', vrrpPriority: 254, vrrpInterval: 50, mode: 'unicast', peer: '192.0.2.2' });
  assert.equal(explicit.status, 201, explicit.text);
  const one = await h.api.get('/v1/vips/em0/7');
  assert.deepEqual(
    [one.body.protocol, one.body.vrrpPriority, one.body.vrrpInterval, one.body.mode, one.body.peer],
    ['vrrpv3', 254, 50, 'unicast', '192.0.2.2'],
  );
  const list = await h.api.get('/v1/vips');
  assert.deepEqual(list.body.items.map((v: { vhid: number; protocol: string }) => [v.vhid, v.protocol]), [[1, 'vrrpv3'], [7, 'vrrpv3']]);
  const config = await h.api.get('/v1/config');
  assert.equal(config.body.vips[1].vrrpPriority, 254);

  // The backend got the protocol, the priority and the interval in centiseconds.
  const live = await liveOf(h, 'em0', 7);
  assert.deepEqual([live?.protocol, live?.vrrpPriority, live?.vrrpIntervalCs, live?.peer, live?.key], ['vrrpv3', 254, 50, '192.0.2.2', undefined]);

  // Master-down: 3 × 50 + 2 × 50/256 cs = 1.50390625 s for vhid 7; 3.609375 s for vhid 1.
  h.clock.advance(1504);
  const status = await h.api.get('/v1/status');
  const byVhid = new Map(status.body.vhids.map((v: { vhid: number }) => [v.vhid, v]));
  const { since: _since, ...seven } = byVhid.get(7) as Record<string, unknown>;
  assert.deepEqual(seven, {
    interface: 'em0',
    vhid: 7,
    protocol: 'vrrpv3',
    vrrpPriority: 254,
    vrrpInterval: 50,
    state: 'MASTER',
    reason: 'master-down timer expired: no advertisement heard for 1.504 s',
    addresses: ['192.0.2.7/24'],
  });
  assert.equal((byVhid.get(1) as { state: string }).state, 'BACKUP');
  h.clock.advance(3609.375 - 1504);
  assert.equal((await liveOf(h, 'em0', 1))?.state, 'MASTER');
});

test('carp VIPs report protocol carp with advbase and advskew, and no VRRP fields', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], advskew: 20 });
  assert.equal(created.status, 201);
  assert.deepEqual([created.body.protocol, created.body.advbase, created.body.advskew], ['carp', 1, 20]);
  assert.equal('vrrpPriority' in created.body, false);
  assert.equal('vrrpInterval' in created.body, false);
  h.clock.advance(4000);
  const [v] = (await h.api.get('/v1/status')).body.vhids;
  assert.deepEqual([v.protocol, v.advbase, v.advskew, v.effectiveSkew, 'vrrpPriority' in v], ['carp', 1, 20, 20, false]);
  // A carp vhid is set without a protocol (absent = carp), as before.
  assert.equal('protocol' in (await liveOf(h, 'em0', 1))!, false);
});

interface Refusal {
  name: string;
  method: 'post' | 'put' | 'patch';
  url: string;
  body: Record<string, unknown>;
  status: number;
  code: ErrorCode;
  /** The field in errors[] (semantic refusals). */
  path?: string;
  detail?: RegExp;
}

const V = 'CARPD_ERR_VALIDATION';
const I = 'CARPD_ERR_INVALID_VALUE';
const vrrp = (extra: Record<string, unknown> = {}) => ({ interface: 'em0', vhid: 5, addresses: ['192.0.2.50/24'], protocol: 'vrrpv3', ...extra });
const REFUSALS: Refusal[] = [
  { name: 'vrrpv3 with a password', method: 'post', url: '/v1/vips', body: vrrp({ password: 'secret' }), status: 422, code: I, path: '/vips/em0/5/password', detail: /no authentication/ },
  { name: 'vrrpv3 with advbase', method: 'post', url: '/v1/vips', body: vrrp({ advbase: 2 }), status: 422, code: I, path: '/vips/em0/5/advbase', detail: /vrrpInterval/ },
  { name: 'vrrpv3 with advbase at its default', method: 'post', url: '/v1/vips', body: vrrp({ advbase: 1 }), status: 422, code: I, path: '/vips/em0/5/advbase', detail: /vrrpInterval/ },
  { name: 'vrrpv3 with advskew', method: 'post', url: '/v1/vips', body: vrrp({ advskew: 0 }), status: 422, code: I, path: '/vips/em0/5/advskew', detail: /vrrpPriority/ },
  { name: 'vrrpv3 with priority 255', method: 'post', url: '/v1/vips', body: vrrp({ vrrpPriority: 255 }), status: 422, code: I, path: '/vips/em0/5/vrrpPriority', detail: /address owner/ },
  { name: 'vrrpv3 with priority 0', method: 'post', url: '/v1/vips', body: vrrp({ vrrpPriority: 0 }), status: 400, code: V },
  { name: 'vrrpv3 with priority 256', method: 'post', url: '/v1/vips', body: vrrp({ vrrpPriority: 256 }), status: 400, code: V },
  { name: 'vrrpv3 with interval 0', method: 'post', url: '/v1/vips', body: vrrp({ vrrpInterval: 0 }), status: 400, code: V },
  { name: 'vrrpv3 with interval 4096', method: 'post', url: '/v1/vips', body: vrrp({ vrrpInterval: 4096 }), status: 400, code: V },
  { name: 'vrrpv3 with interval 1.5', method: 'post', url: '/v1/vips', body: vrrp({ vrrpInterval: 1.5 }), status: 400, code: V },
  { name: 'protocol "vrrpv2"', method: 'post', url: '/v1/vips', body: vrrp({ protocol: 'vrrpv2' }), status: 400, code: V },
  { name: 'carp with vrrpPriority', method: 'post', url: '/v1/vips', body: vrrp({ protocol: 'carp', vrrpPriority: 100 }), status: 422, code: I, path: '/vips/em0/5/vrrpPriority', detail: /only used with protocol vrrpv3/ },
  { name: 'no protocol (carp) with vrrpInterval', method: 'post', url: '/v1/vips', body: { interface: 'em0', vhid: 5, addresses: ['192.0.2.50/24'], vrrpInterval: 100 }, status: 422, code: I, path: '/vips/em0/5/vrrpInterval' },
  { name: 'PUT vrrpv3 with advskew', method: 'put', url: '/v1/vips/em0/2', body: { addresses: ['192.0.2.2/24'], protocol: 'vrrpv3', advskew: 10 }, status: 422, code: I, path: '/vips/em0/2/advskew' },
  { name: 'PUT vrrpv3 over a carp VIP whose password is kept', method: 'put', url: '/v1/vips/em0/1', body: { addresses: ['192.0.2.1/24'], protocol: 'vrrpv3' }, status: 422, code: I, path: '/vips/em0/1/password', detail: /password: null/ },
  { name: 'PATCH a carp VIP with a password to vrrpv3', method: 'patch', url: '/v1/vips/em0/1', body: { protocol: 'vrrpv3' }, status: 422, code: I, path: '/vips/em0/1/password' },
  { name: 'PATCH a carp VIP to vrrpv3 with advbase', method: 'patch', url: '/v1/vips/em0/1', body: { protocol: 'vrrpv3', password: null, advbase: 3 }, status: 422, code: I, path: '/vips/em0/1/advbase' },
  { name: 'PATCH advskew of a vrrpv3 VIP', method: 'patch', url: '/v1/vips/em0/2', body: { advskew: 10 }, status: 422, code: I, path: '/vips/em0/2/advskew' },
  { name: 'PATCH a password onto a vrrpv3 VIP', method: 'patch', url: '/v1/vips/em0/2', body: { password: 'secret' }, status: 422, code: I, path: '/vips/em0/2/password' },
  { name: 'PATCH vrrpPriority of a carp VIP', method: 'patch', url: '/v1/vips/em0/1', body: { vrrpPriority: 120 }, status: 422, code: I, path: '/vips/em0/1/vrrpPriority' },
  { name: 'PATCH a vrrpv3 VIP to priority 255', method: 'patch', url: '/v1/vips/em0/2', body: { vrrpPriority: 255 }, status: 422, code: I, path: '/vips/em0/2/vrrpPriority', detail: /address owner/ },
];

test('VRRPv3 refusals: a problem with its code and field, and nothing changes', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], password: 'pw' })).status, 201);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'], protocol: 'vrrpv3' })).status, 201);
  const snapshot = async () => ({ file: storedBytes(h.dir), backend: JSON.stringify(await h.backend.listVhids()) });
  for (const c of REFUSALS) {
    await t.test(c.name, async () => {
      const before = await snapshot();
      const res = await h.api.call(c.method, c.url, { body: c.body });
      assert.equal(res.status, c.status, res.text);
      assert.equal(res.body.code, c.code, res.body.detail);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
      if (c.path !== undefined) assert.ok(res.body.errors.some((e: { path: string }) => e.path === c.path), JSON.stringify(res.body.errors));
      if (c.detail) assert.match(res.body.detail, c.detail);
      const after = await snapshot();
      assert.ok(after.file.equals(before.file), 'config.json or the journal changed');
      assert.equal(after.backend, before.backend, 'the backend changed');
    });
  }
  assert.equal(await revisionOf(h), 2);
  // The refused switch is accepted once the password goes with it.
  const ok = await h.api.patch('/v1/vips/em0/1', { protocol: 'vrrpv3', password: null, vrrpPriority: 90 });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual([ok.body.protocol, ok.body.vrrpPriority, ok.body.vrrpInterval, ok.body.hasPassword], ['vrrpv3', 90, 100, false]);
});

class NoVrrpBackend extends MemoryBackend {
  override capabilities(): Capabilities {
    return { ...super.capabilities(), vrrpv3: false };
  }
}

test('a vrrpv3 VIP on a backend without the capability is CARPD_ERR_UNSUPPORTED', async (t) => {
  const clock = new ManualClock();
  const h = await makeHarness({ clock, backend: new NoVrrpBackend({ clock, interfaces: ['em0'] }) });
  t.after(() => h.close());
  const res = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.1/24'], protocol: 'vrrpv3' });
  assert.equal(res.status, 422);
  assert.equal(res.body.code, 'CARPD_ERR_UNSUPPORTED');
  assert.deepEqual(res.body.errors.map((e: { path: string }) => e.path), ['/vips/em0/1/protocol']);
  assert.match(res.body.detail, /VRRPv3/);
  assert.equal(await revisionOf(h), 0);
  assert.deepEqual(await h.backend.listVhids(), []);
  // carp is unaffected.
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.1/24'] })).status, 201);
});

test('a protocol change removes the vhid and creates it again; priority and interval change in place', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24', '2001:db8::3/64'], advskew: 50 });
  h.clock.advance(4000);
  assert.equal((await liveOf(h, 'em0', 3))?.state, 'MASTER');

  const plan = await h.api.patch('/v1/vips/em0/3?dryRun=true', { protocol: 'vrrpv3' });
  assert.equal(plan.status, 200);
  assert.deepEqual(
    plan.body.steps.map((s: { op: string; detail: string }) => `${s.op}: ${s.detail}`),
    [
      'vhid.remove: remove the vhid and its addresses: its protocol changes from carp to vrrpv3, which needs a new vhid',
      'vhid.set: create: VRRPv3 priority 100, interval 100 cs, multicast',
      'address.add: add 192.0.2.3/24',
      'address.add: add 2001:db8::3/64',
    ],
  );
  assert.deepEqual(plan.body.changes, ['em0 vhid 3: protocol carp -> vrrpv3', 'em0 vhid 3: advskew 50 -> 0', 'em0 vhid 3: vrrpPriority (none) -> 100', 'em0 vhid 3: vrrpInterval (none) -> 100']);
  assert.equal((await liveOf(h, 'em0', 3))?.protocol, undefined, 'a dry run changes nothing');

  const seen: string[] = [];
  h.backend.onStateChange((c) => seen.push(`${c.previous}->${c.state}`));
  const changed = await h.api.patch('/v1/vips/em0/3', { protocol: 'vrrpv3' });
  assert.equal(changed.status, 200, changed.text);
  const live = await liveOf(h, 'em0', 3);
  assert.deepEqual([live?.protocol, live?.vrrpPriority, live?.vrrpIntervalCs, live?.addresses], ['vrrpv3', 100, 100, ['192.0.2.3/24', '2001:db8::3/64']]);
  assert.equal(live?.state, 'BACKUP', 'a new vhid starts over');
  assert.deepEqual(seen, ['INIT->BACKUP']);

  // Priority and interval: one in-place vhid.set, the addresses stay.
  const tune = await h.api.patch('/v1/vips/em0/3?dryRun=true', { vrrpPriority: 200, vrrpInterval: 25 });
  assert.deepEqual(tune.body.steps.map((s: { op: string; detail: string }) => `${s.op}: ${s.detail}`), ['vhid.set: update: VRRPv3 priority 200, interval 25 cs, multicast']);
  assert.equal((await h.api.patch('/v1/vips/em0/3', { vrrpPriority: 200, vrrpInterval: 25 })).status, 200);
  assert.deepEqual([(await liveOf(h, 'em0', 3))?.vrrpPriority, (await liveOf(h, 'em0', 3))?.vrrpIntervalCs], [200, 25]);

  // And back to carp with a PUT: recreated again, with carp's defaults.
  const back = await h.api.put('/v1/vips/em0/3?dryRun=true', { addresses: ['192.0.2.3/24', '2001:db8::3/64'], advskew: 10 });
  assert.deepEqual(back.body.steps.map((s: { op: string }) => s.op), ['vhid.remove', 'vhid.set', 'address.add', 'address.add']);
  const put = await h.api.put('/v1/vips/em0/3', { addresses: ['192.0.2.3/24', '2001:db8::3/64'], advskew: 10 });
  assert.equal(put.status, 200, put.text);
  assert.deepEqual([put.body.protocol, put.body.advbase, put.body.advskew, 'vrrpPriority' in put.body], ['carp', 1, 10, false]);
  const carp = await liveOf(h, 'em0', 3);
  assert.deepEqual([carp?.protocol, carp?.advskew, carp?.addresses], [undefined, 10, ['192.0.2.3/24', '2001:db8::3/64']]);
});

test('a document stored before protocol existed loads unchanged as carp, and its revisions roll back', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-old-doc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const at = '2025-06-01T00:00:00.000Z';
  const old = {
    schemaVersion: 1,
    revision: 1,
    updatedAt: at,
    vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], advbaseSec: 2, advskew: 30, password: 'pw', mode: 'multicast', description: 'uplink', nosync: false }],
    carp: { enabled: true, preempt: true, maintenance: false },
    pfsync: { enabled: false, maxupd: 128, defer: false, version: 1400 },
    api: {
      tokens: [
        { name: 'admin', role: 'admin', sha256: hashToken(ADMIN_TOKEN), createdAt: at },
        { name: 'reader', role: 'read', sha256: hashToken(READ_TOKEN), createdAt: at },
      ],
    },
  };
  const text = JSON.stringify(old, null, 2) + '\n';
  mkdirSync(path.join(dir, 'revisions'), { mode: 0o700 });
  writeFileSync(path.join(dir, 'config.json'), text, { mode: 0o600 });
  writeFileSync(path.join(dir, 'revisions', '0000000001.json'), JSON.stringify({ meta: { revision: 1, createdAt: at, actor: 'token:admin', summary: 'add VIP em0 vhid 1' }, state: old }), { mode: 0o600 });

  const h = await makeHarness({ dir });
  t.after(() => h.close());
  assert.equal(readFileSync(path.join(dir, 'config.json'), 'utf8'), text, 'loading does not rewrite the file');
  assert.equal(h.service.lastReconcile.ok, true);
  const vip = (await h.api.get('/v1/vips/em0/1')).body;
  assert.deepEqual([vip.protocol, vip.advbase, vip.advskew, vip.hasPassword, vip.description], ['carp', 2, 30, true, 'uplink']);
  assert.equal(h.store.current().vips[0].protocol, 'carp');
  assert.deepEqual([(await liveOf(h, 'em0', 1))?.advbaseSec, (await liveOf(h, 'em0', 1))?.protocol], [2, undefined]);
  // Re-sending the same settings changes nothing: no revision.
  assert.equal((await h.api.patch('/v1/vips/em0/1', { advskew: 30 })).headers.etag, '"1"');

  // Changed to vrrpv3, then rolled back to the old revision: carp again, with its password.
  assert.equal((await h.api.patch('/v1/vips/em0/1', { protocol: 'vrrpv3', password: null })).status, 200);
  assert.equal((await liveOf(h, 'em0', 1))?.protocol, 'vrrpv3');
  const rolled = await h.api.post('/v1/config/rollback', { revision: 1 });
  assert.equal(rolled.status, 200, rolled.text);
  assert.deepEqual([rolled.body.vips[0].protocol, rolled.body.vips[0].advskew, rolled.body.vips[0].hasPassword], ['carp', 30, true]);
  const live = await liveOf(h, 'em0', 1);
  assert.deepEqual([live?.protocol, live?.advskew, live?.key], [undefined, 30, 'pw']);
});
