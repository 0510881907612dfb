/**
 * PUT /v1/config: a whole desired state applied as one revision and one backend batch. The
 * backend is wrapped to count the calls the service makes to it (never timed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VipConfig } from '../src/config/model.js';
import type { BackendStep, KernelBackend } from '../src/kernel/backend.js';
import { applyStepwise } from '../src/kernel/batch.js';
import { KernelError } from '../src/kernel/errno.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { ManualClock, makeHarness, storedBytes, type Harness } from './helpers/harness.js';

/** A memory backend whose every call from outside is counted by method name; `failOn` makes addAddress of that address fail. */
function counted(clock: ManualClock) {
  const inner = new MemoryBackend({ clock, interfaces: ['em0', 'em1', 'em2'] });
  const calls: string[] = [];
  const state = { failOn: undefined as string | undefined };
  const backend = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        if (prop === 'addAddress' && args[2] === state.failOn) return Promise.reject(KernelError.of('EADDRNOTAVAIL', `add address ${String(args[2])} to vhid ${String(args[1])}`, String(args[0]), 'injected failure'));
        // A batch made of this wrapper's own steps, so that the injected failure happens inside it.
        if (prop === 'apply') return applyStepwise(backend, args[0] as BackendStep[]);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as KernelBackend;
  return { backend, calls, state };
}

async function setup(t: test.TestContext): Promise<{ h: Harness; calls: string[]; state: { failOn?: string }; commits: number[] }> {
  const clock = new ManualClock();
  const { backend, calls, state } = counted(clock);
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  const commits: number[] = [];
  h.service.onCommit((s) => commits.push(s.revision));
  calls.length = 0;
  return { h, calls, state, commits };
}

const DOC = {
  vips: [
    { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24', '2001:db8::10/64'], advskew: 0, password: 's3cret-one' },
    { interface: 'em1', vhid: 2, addresses: ['198.51.100.10/24'], advskew: 100, description: 'LAN' },
    { interface: 'em1', vhid: 3, addresses: ['198.51.100.11/24'], protocol: 'vrrpv3', vrrpPriority: 150 },
  ],
  carp: { enabled: true, preempt: false },
  pfsync: { enabled: true, syncdev: 'em2', syncpeer: '203.0.113.2' },
};

const single = ['setVhid', 'removeVhid', 'addAddress', 'removeAddress', 'setCarpGlobals', 'setMaintenance', 'setPfsync'];

test('PUT /v1/config applies a whole document as one revision, one backend batch and one commit', async (t) => {
  const { h, calls, commits } = await setup(t);
  const res = await h.api.put('/v1/config', DOC);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers.etag, '"1"');
  assert.equal(res.body.revision, 1);
  assert.deepEqual(res.body.vips.map((v: { interface: string; vhid: number; hasPassword: boolean }) => [v.interface, v.vhid, v.hasPassword]), [['em0', 1, true], ['em1', 2, false], ['em1', 3, false]]);
  assert.equal(res.body.carp.preempt, false);
  assert.equal(res.body.pfsync.syncdev, 'em2');
  assert.ok(!res.text.includes('s3cret-one'), 'the password is never answered');
  assert.deepEqual(commits, [1], 'the commit listeners (config sync) heard one revision');
  assert.equal(calls.filter((c) => c === 'apply').length, 1, 'one batch');
  // Inside the wrapper the batch is made of single steps; from the service, none was called directly.
  const live = await h.backend.listVhids();
  assert.deepEqual(live.map((v) => [v.interface, v.vhid, v.addresses]), [['em0', 1, ['192.0.2.10/24', '2001:db8::10/64']], ['em1', 2, ['198.51.100.10/24']], ['em1', 3, ['198.51.100.11/24']]]);
  assert.equal(h.service.desired().vips[0].password, 's3cret-one');
  const rev = h.service.revisions()[0];
  assert.equal(rev.revision, 1);
  assert.match(rev.summary, /apply a declared desired state \(\d+ changes\)/);

  // The next document removes a VIP, changes one and adds one: again one revision.
  const next = { vips: [DOC.vips[0], { ...DOC.vips[1], advskew: 50 }, { interface: 'em0', vhid: 4, addresses: ['192.0.2.40/24'] }] };
  const res2 = await h.api.put('/v1/config', next);
  assert.equal(res2.status, 200, res2.text);
  assert.equal(res2.body.revision, 2);
  assert.deepEqual(commits, [1, 2]);
  assert.deepEqual((await h.backend.listVhids()).map((v) => [v.interface, v.vhid, v.advskew]), [['em0', 1, 0], ['em0', 4, 0], ['em1', 2, 50]]);
  // Sections not given stay as they are.
  assert.equal(res2.body.pfsync.syncdev, 'em2');
  assert.equal(res2.body.carp.preempt, false);
});

test('PUT /v1/config with the document GET answers (in any VIP order) is a no-op: 200, same ETag, no revision, no backend call', async (t) => {
  const { h, calls, commits } = await setup(t);
  assert.equal((await h.api.put('/v1/config', DOC)).status, 200);
  const got = await h.api.get('/v1/config');
  calls.length = 0;
  commits.length = 0;
  const before = storedBytes(h.dir);

  const again = await h.api.put('/v1/config', got.body);
  assert.equal(again.status, 200, again.text);
  assert.equal(again.headers.etag, got.headers.etag);
  assert.deepEqual(again.body, got.body);
  const reordered = await h.api.put('/v1/config', { ...got.body, vips: [...got.body.vips].reverse() }, { headers: { 'If-Match': got.headers.etag } });
  assert.equal(reordered.status, 200, reordered.text);
  assert.equal(reordered.headers.etag, got.headers.etag);
  // Server-owned fields are ignored.
  assert.equal((await h.api.put('/v1/config', { ...got.body, revision: 999, updatedAt: '2000-01-01T00:00:00.000Z' })).headers.etag, got.headers.etag);
  const plan = await h.api.put('/v1/config?dryRun=true', got.body);
  assert.deepEqual(plan.body, { dryRun: true, fromRevision: 1, changes: [], steps: [] });

  assert.deepEqual(calls, [], 'the backend was not called, not even read');
  assert.deepEqual(commits, []);
  assert.equal(h.service.desired().revision, 1);
  assert.deepEqual(storedBytes(h.dir), before);
});

test('PUT /v1/config?dryRun=true answers the plan and applies nothing', async (t) => {
  const { h, calls, commits } = await setup(t);
  const res = await h.api.put('/v1/config?dryRun=true', DOC);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.dryRun, true);
  assert.equal(res.body.fromRevision, 0);
  assert.ok(res.body.changes.includes('add VIP em0 vhid 1 (192.0.2.10/24, 2001:db8::10/64)'), res.body.changes.join('\n'));
  assert.ok(res.body.changes.includes('pfsync.syncdev: (none) -> em2'));
  assert.deepEqual(res.body.steps.filter((s: { op: string }) => s.op === 'vhid.set').map((s: { target: string }) => s.target), ['em0 vhid 1', 'em1 vhid 2', 'em1 vhid 3']);
  assert.ok(!res.text.includes('s3cret-one'));
  assert.equal(calls.includes('apply'), false);
  assert.ok(!calls.some((c) => single.includes(c)), calls.join(', '));
  assert.deepEqual(commits, []);
  assert.deepEqual(await h.backend.listVhids(), []);
  assert.equal(h.service.desired().revision, 0);
});

test('PUT /v1/config with a stale If-Match is 412 and changes nothing', async (t) => {
  const { h, calls } = await setup(t);
  assert.equal((await h.api.put('/v1/config', DOC)).status, 200);
  calls.length = 0;
  const res = await h.api.put('/v1/config', { vips: [] }, { headers: { 'If-Match': '"0"' } });
  assert.equal(res.status, 412);
  assert.equal(res.body.code, 'CARPD_ERR_PRECONDITION_FAILED');
  assert.equal(res.body.currentRevision, 1);
  assert.deepEqual(calls, []);
  assert.equal(h.service.desired().vips.length, 3);
  assert.equal((await h.api.put('/v1/config', { vips: [] }, { headers: { 'If-Match': '"1"' } })).status, 200);
  assert.deepEqual(await h.backend.listVhids(), []);
});

test('PUT /v1/config with several invalid fields is 422 listing each with its JSON pointer; nothing stored', async (t) => {
  const { h, calls } = await setup(t);
  assert.equal((await h.api.put('/v1/config', DOC)).status, 200);
  calls.length = 0;
  const before = storedBytes(h.dir);
  const res = await h.api.put('/v1/config', {
    vips: [
      { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24', 'not-an-address'] },
      { interface: 'em1', vhid: 2, addresses: ['198.51.100.10/24'], mode: 'unicast' },
      { interface: 'em1', vhid: 3, addresses: ['198.51.100.11/24'], protocol: 'vrrpv3', password: 'nope', advskew: 5 },
      { interface: 'em1', vhid: 2, addresses: ['198.51.100.12/24'] },
    ],
    pfsync: { enabled: true },
  });
  assert.equal(res.status, 422, res.text);
  assert.equal(res.body.code, 'CARPD_ERR_INVALID_ADDRESS');
  const pointers = res.body.errors.map((e: { path: string; code: string }) => `${e.path} ${e.code}`).sort();
  assert.deepEqual(pointers, [
    '/pfsync/syncdev CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED',
    '/vips/0/addresses/1 CARPD_ERR_INVALID_ADDRESS',
    '/vips/1/peer CARPD_ERR_PEER_REQUIRED',
    '/vips/2/advskew CARPD_ERR_INVALID_VALUE',
    '/vips/2/password CARPD_ERR_INVALID_VALUE',
    '/vips/3/vhid CARPD_ERR_VHID_EXISTS',
  ]);
  assert.ok(!res.text.includes('nope'));
  assert.deepEqual(storedBytes(h.dir), before, 'the stored config is byte-identical');
  assert.deepEqual(calls, []);
  assert.equal(h.service.desired().revision, 1);

  // The schema's own checks answer 400, also with every problem: an unknown section (sync), a value out of range.
  const schema = await h.api.put('/v1/config', { vips: [{ interface: 'em0', vhid: 300, addresses: ['192.0.2.1/24'] }], sync: { role: 'primary' } });
  assert.equal(schema.status, 400);
  assert.equal(schema.body.code, 'CARPD_ERR_VALIDATION');
  assert.ok(schema.body.errors.length >= 2, JSON.stringify(schema.body.errors));
  assert.deepEqual(storedBytes(h.dir), before);
});

test('PUT /v1/config whose backend step fails is undone entirely: 502, backend and stored config as before', async (t) => {
  const { h, calls, state, commits } = await setup(t);
  assert.equal((await h.api.put('/v1/config', DOC)).status, 200);
  const before = storedBytes(h.dir);
  const live = JSON.stringify((await h.backend.listVhids()).map(({ since: _s, reason: _r, state: _st, ...v }) => v));
  calls.length = 0;
  commits.length = 0;
  state.failOn = '192.0.2.60/24';
  const res = await h.api.put('/v1/config', {
    vips: [
      { ...DOC.vips[0], advskew: 20 },
      { interface: 'em0', vhid: 5, addresses: ['192.0.2.50/24'] },
      { interface: 'em0', vhid: 6, addresses: ['192.0.2.60/24'] },
      { interface: 'em0', vhid: 7, addresses: ['192.0.2.70/24'] },
    ],
    carp: { enabled: true, preempt: true, maintenance: true },
  });
  assert.equal(res.status, 502, res.text);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(res.body.kernel.errnoName, 'EADDRNOTAVAIL');
  assert.match(res.body.detail, /em0 vhid 6/);
  assert.equal(calls.filter((c) => c === 'apply').length, 1);
  assert.ok(calls.includes('removeVhid'), 'the applied steps were taken back');
  assert.equal(JSON.stringify((await h.backend.listVhids()).map(({ since: _s, reason: _r, state: _st, ...v }) => v)), live);
  assert.equal(await h.backend.getMaintenance(), false);
  assert.deepEqual(storedBytes(h.dir), before);
  assert.deepEqual(commits, []);
});

test('PUT /v1/config: an absent password stays as stored, null removes it, hasPassword is checked', async (t) => {
  const { h } = await setup(t);
  assert.equal((await h.api.put('/v1/config', DOC)).status, 200);
  const got = (await h.api.get('/v1/config')).body;
  assert.equal(got.vips[0].hasPassword, true);
  assert.ok(!JSON.stringify(got).includes('s3cret'));

  // Changed without a password: the stored one stays.
  const changed = structuredClone(got);
  changed.vips[0].advskew = 7;
  const res = await h.api.put('/v1/config', changed);
  assert.equal(res.status, 200, res.text);
  assert.equal(h.service.desired().vips[0].password, 's3cret-one');
  assert.equal((await h.backend.listVhids())[0].key, 's3cret-one');

  // hasPassword false while one is stored and kept: refused, pointing at it.
  const contradicts = structuredClone(changed);
  contradicts.vips[0].hasPassword = false;
  const refused = await h.api.put('/v1/config', contradicts);
  assert.equal(refused.status, 422);
  assert.deepEqual(refused.body.errors.map((e: { path: string }) => e.path), ['/vips/0/hasPassword']);
  assert.match(refused.body.errors[0].message, /password: null/);

  // null removes it (hasPassword false now agrees).
  const removed = await h.api.put('/v1/config', { ...contradicts, vips: [{ ...contradicts.vips[0], password: null }, ...contradicts.vips.slice(1)] });
  assert.equal(removed.status, 200, removed.text);
  assert.equal(h.service.desired().vips[0].password, undefined);
  assert.equal(removed.body.vips[0].hasPassword, false);

  // A document claiming a password that this node does not have (copied from another node): refused.
  const copied = structuredClone(got);
  copied.vips.push({ ...copied.vips[0], interface: 'em2', vhid: 9, addresses: ['203.0.113.9/24'], hasPassword: true });
  const claim = await h.api.put('/v1/config', copied);
  assert.equal(claim.status, 422);
  assert.ok(claim.body.errors.some((e: { path: string }) => e.path === '/vips/3/hasPassword'), JSON.stringify(claim.body.errors));
});

test('PUT /v1/config leaves the tokens and the sync section alone; carp.maintenance absent stays as it is', async (t) => {
  const { h } = await setup(t);
  assert.equal((await h.api.put('/v1/carp/maintenance', { enabled: true })).status, 200);
  const res = await h.api.put('/v1/config', { ...DOC, api: { tokens: [] } });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.body.api.tokens.map((x: { name: string }) => x.name), ['admin', 'reader']);
  assert.equal(res.body.carp.maintenance, true, 'maintenance not declared: kept');
  assert.equal(h.service.desired().sync.role, 'standalone');
  const off = await h.api.put('/v1/config', { ...DOC, carp: { ...DOC.carp, maintenance: false } });
  assert.equal(off.body.carp.maintenance, false);
});

const FINGERPRINT = Array.from({ length: 32 }, () => 'AB').join(':');

const vip = (iface: string, vhid: number, address: string, extra: Partial<VipConfig> = {}): VipConfig => ({
  interface: iface,
  vhid,
  addresses: [address],
  advbaseSec: 1,
  advskew: 0,
  mode: 'multicast',
  description: '',
  nosync: false,
  protocol: 'carp',
  ...extra,
});

test('PUT /v1/config on a sync secondary: per-node values need no force and are kept; a synced VIP changed is 409 unless force', async (t) => {
  const { h } = await setup(t);
  // What a push from the primary leaves: the role, the primary's VIP with this node's skew (0 + 100).
  await h.service.mutate({ actor: 'sync', origin: 'sync' }, 'snapshot from the primary', (d) => {
    d.sync.role = 'secondary';
    d.sync.peer = { address: '192.0.2.1', port: 8443, fingerprint: FINGERPRINT };
    d.vips = [vip('em0', 1, '192.0.2.10/24', { advskew: 100, password: 'synced-pw' }), vip('em1', 9, '198.51.100.9/24', { nosync: true })];
  });
  const got = await h.api.get('/v1/config');
  const rev = got.body.revision;

  assert.equal((await h.api.put('/v1/config', got.body)).headers.etag, got.headers.etag, 'its own document back: no-op');

  // Maintenance, pfsync and the node's own nosync VIP: no force needed; the synced VIP keeps this node's skew.
  const own = structuredClone(got.body);
  own.carp.maintenance = true;
  own.pfsync = { enabled: true, syncdev: 'em2' };
  own.vips[1].advskew = 42;
  const ok = await h.api.put('/v1/config', own);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.revision, rev + 1);
  assert.equal(ok.body.vips[0].advskew, 100);
  assert.equal(h.service.desired().vips[0].password, 'synced-pw');
  assert.deepEqual(h.service.desired().sync.detached, { vips: [], carp: false });

  // A synced VIP changed here: refused, nothing stored.
  const synced = structuredClone(ok.body);
  synced.vips[0].advskew = 5;
  const refused = await h.api.put('/v1/config', synced);
  assert.equal(refused.status, 409);
  assert.equal(refused.body.code, 'CARPD_ERR_SYNC_MANAGED');
  assert.match(refused.body.detail, /VIP em0\/1.*force=true/);
  assert.equal(h.service.desired().revision, rev + 1);

  const forced = await h.api.put('/v1/config?force=true', synced);
  assert.equal(forced.status, 200, forced.text);
  assert.equal(forced.body.vips[0].advskew, 5);
  assert.deepEqual(h.service.desired().sync.detached.vips, ['em0/1']);
  assert.match(h.service.revisions()[0].summary, /detached from sync: VIP em0\/1/);
});
