/**
 * Config sync between two carpd nodes in one process: each with its own state dir, memory
 * backend, service, API and SyncManager whose listener is real mutual TLS on 127.0.0.1. Only
 * outcomes are asserted (waiting for them with a bound), never how long they took.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { MemoryBackend } from '../src/kernel/memory.js';
import { SCHEMA_VERSION } from '../src/config/model.js';
import { snapshotOf } from '../src/sync/derive.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { SyncClient } from '../src/sync/transport.js';
import { ManualClock, makeHarness, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';

interface SyncNode {
  name: string;
  dir: string;
  h: Harness;
  identity: SyncIdentity;
  sync: SyncManager;
  port: number;
}

const silent = pino({ level: 'silent' });

/** A client whose answers these tests read as they come: SyncClient.request leaves them unchecked. */
type RawClient = Pick<SyncClient, 'close'> & { request(type: string, body: unknown): Promise<{ status: number; body: any }> };

async function startNode(name: string, dir: string, port = 0): Promise<SyncNode> {
  const clock = new ManualClock();
  const h = await makeHarness({ dir, clock, backend: new MemoryBackend({ clock, interfaces: ['em0', 'em1'] }) });
  const identity = await loadOrCreateIdentity(dir, name);
  const sync = await SyncManager.start({ service: h.service, identity, logger: silent, node: name, listen: { host: '127.0.0.1', port }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000 });
  h.attachSync(sync);
  return { name, dir, h, identity, sync, port: sync.port! };
}

async function stopNode(n: SyncNode): Promise<void> {
  await n.sync.close();
  await n.h.close();
}

/** Two nodes pinned to each other: a primary and a secondary, with their own addresses on em0. */
async function pair(t: test.TestContext) {
  const dirs = [mkdtempSync(path.join(tmpdir(), 'carpd-sync-a-')), mkdtempSync(path.join(tmpdir(), 'carpd-sync-b-'))];
  t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const a = await startNode('node-a', dirs[0]);
  const b = await startNode('node-b', dirs[1]);
  const nodes = { a, b };
  t.after(async () => {
    await stopNode(nodes.a);
    await stopNode(nodes.b);
  });
  const link = async (self: SyncNode, other: SyncNode, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.port, fingerprint: other.identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(b, a, 'secondary', '192.0.2.11/24');
  await link(a, b, 'primary', '192.0.2.10/24');
  return { nodes, dirs };
}

const vipOn = async (n: SyncNode, key: string) => (await n.h.api.get(`/v1/vips/${key}`)).body;
const synced = (a: SyncNode, b: SyncNode) => pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (r) => r === a.h.service.desired().revision);

test('sync: a change on the primary is applied on the secondary with its own skew and the unicast peer swapped', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  // A per-VIP override on the secondary for em0/3.
  assert.equal((await b.h.api.patch('/v1/sync', { overrides: [{ interface: 'em0', vhid: 3, advskew: 42 }] })).status, 200);
  let r = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, password: 'sync-pw', mode: 'unicast', peer: '192.0.2.11' });
  assert.equal(r.status, 201, r.text);
  r = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'], advskew: 200 });
  assert.equal(r.status, 201, r.text);
  r = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.52/24'], advskew: 10 });
  assert.equal(r.status, 201, r.text);
  r = await a.h.api.post('/v1/vips', { interface: 'em1', vhid: 4, addresses: ['198.51.100.50/24'], protocol: 'vrrpv3', vrrpPriority: 200 });
  assert.equal(r.status, 201, r.text);
  r = await a.h.api.post('/v1/vips', { interface: 'em1', vhid: 5, addresses: ['198.51.100.51/24'], nosync: true });
  assert.equal(r.status, 201, r.text);
  await synced(a, b);

  const v1 = await vipOn(b, 'em0/1');
  assert.equal(v1.advskew, 100, 'primary 0 + 100');
  assert.equal(v1.peer, '192.0.2.10', 'the primary\'s own address, not a copy of the primary\'s peer');
  assert.equal((await vipOn(a, 'em0/1')).peer, '192.0.2.11');
  assert.equal((await vipOn(b, 'em0/2')).advskew, 254, '200 + 100 capped at 254');
  assert.equal((await vipOn(b, 'em0/3')).advskew, 42, 'per-VIP override');
  assert.equal((await vipOn(b, 'em1/4')).vrrpPriority, 100, 'VRRP: primary 200 − 100');
  assert.equal((await b.h.api.get('/v1/vips/em1/5')).status, 404, 'nosync stays on the primary');
  // The password travelled (the secondary's VIP authenticates with it) but is never shown.
  assert.equal(b.h.service.desired().vips.find((v) => v.vhid === 1)!.password, 'sync-pw');
  assert.equal(JSON.stringify(await vipOn(b, 'em0/1')).includes('sync-pw'), false);

  const st = (await a.h.api.get('/v1/sync')).body;
  assert.equal(st.role, 'primary');
  assert.equal(st.peerRevision, a.h.service.desired().revision);
  assert.deepEqual(st.lag, { revisions: 0, seconds: 0 });
  assert.equal(st.lastError, null);
  const sb = (await b.h.api.get('/v1/sync')).body;
  assert.equal(sb.peerRevision, a.h.service.desired().revision);
});

test('sync: an edit of a synced object on the secondary is refused with where to make it; force detaches it, recorded', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  await synced(a, b);
  const before = b.h.service.desired().revision;
  const refused = await b.h.api.patch('/v1/vips/em0/1', { advskew: 7 });
  assert.equal(refused.status, 409);
  assert.equal(refused.body.code, 'CARPD_ERR_SYNC_MANAGED');
  assert.match(refused.body.detail, /primary.*127\.0\.0\.1.*force=true/);
  assert.equal(b.h.service.desired().revision, before, 'nothing stored');
  assert.equal((await b.h.api.patch('/v1/carp', { preempt: false })).body.code, 'CARPD_ERR_SYNC_MANAGED');
  // A local nosync VIP is the secondary's own business.
  assert.equal((await b.h.api.post('/v1/vips', { interface: 'em1', vhid: 9, addresses: ['198.51.100.9/24'], nosync: true })).status, 201);

  const forced = await b.h.api.patch('/v1/vips/em0/1?force=true', { advskew: 7 });
  assert.equal(forced.status, 200, forced.text);
  const rev = b.h.service.revisions()[0];
  assert.match(rev.summary, /detached from sync: VIP em0\/1/);
  assert.deepEqual((await b.h.api.get('/v1/sync')).body.detached, { vips: ['em0/1'], carp: false });
  // The primary changes it: the secondary keeps its own.
  assert.equal((await a.h.api.patch('/v1/vips/em0/1', { advskew: 3 })).status, 200);
  await synced(a, b);
  assert.equal((await vipOn(b, 'em0/1')).advskew, 7);
  assert.equal((await b.h.api.get('/v1/vips/em1/9')).status, 200, 'the local nosync VIP survives pushes');
  // Reattached: the next push brings the primary's value back (3 + 100).
  assert.equal((await b.h.api.patch('/v1/sync', { reattach: ['em0/1'] })).status, 200);
  assert.equal((await a.h.api.post('/v1/sync/run')).status, 200);
  assert.equal((await vipOn(b, 'em0/1')).advskew, 103);
});

test('sync: secondary down during 20 changes, then back: converges; restarts of both lose and repeat nothing', async (t) => {
  const { nodes, dirs } = await pair(t);
  const { a } = nodes;
  await synced(a, nodes.b);
  const bPort = nodes.b.port;
  await stopNode(nodes.b);
  for (let i = 1; i <= 20; i++) {
    const r = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: i, addresses: [`192.0.2.${100 + i}/24`], advskew: i });
    assert.equal(r.status, 201, r.text);
  }
  const down = await pollUntil('push failing', async () => (await a.h.api.get('/v1/sync')).body, (s) => s.lastError !== null);
  assert.match(down.lastError, /ECONNREFUSED|unreachable|connect/i);
  assert.equal(down.pending, true);
  assert.ok(down.lag.revisions >= 20, JSON.stringify(down.lag));

  nodes.b = await startNode('node-b', dirs[1], bPort);
  await synced(a, nodes.b);
  const vips = nodes.b.h.service.desired().vips;
  assert.equal(vips.length, 20);
  assert.deepEqual(vips.map((v) => v.advskew).sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1 + 100));
  assert.equal((await a.h.api.get('/v1/sync')).body.lastError, null);

  // Both restart; the primary pushes again, the secondary acknowledges without a new revision.
  const revB = nodes.b.h.service.desired().revision;
  const aPort = a.port;
  await stopNode(nodes.a);
  await stopNode(nodes.b);
  nodes.b = await startNode('node-b', dirs[1], bPort);
  nodes.a = await startNode('node-a', dirs[0], aPort);
  const st = await pollUntil('primary heard the secondary', async () => (await nodes.a.h.api.get('/v1/sync')).body, (s) => s.peerRevision === nodes.a.h.service.desired().revision);
  assert.equal(st.lastError, null);
  assert.equal(nodes.b.h.service.desired().revision, revB, 'no duplicate apply');
  const applied = nodes.b.h.service.revisions().filter((m) => /^sync: primary's revision/.test(m.summary)).map((m) => m.summary);
  assert.equal(new Set(applied).size, applied.length, 'each primary revision applied once');
});

test('sync: older revisions, pushes to a primary and peers with another schema are refused, nothing stored', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'] })).status, 201);
  await synced(a, b);
  const revB = b.h.service.desired().revision;
  const peer = { host: '127.0.0.1', port: b.port, fingerprint: b.identity.fingerprint };
  const old = { ...snapshotOf(a.h.service.desired()), revision: 1 };
  const client: RawClient = new SyncClient({ identity: a.identity, peer, schemaVersion: SCHEMA_VERSION });
  t.after(() => client.close());
  const r1 = await client.request('push', old);
  assert.equal(r1.status, 409);
  assert.equal(r1.body.code, 'CARPD_ERR_SYNC_OLDER_REVISION');
  const future: RawClient = new SyncClient({ identity: a.identity, peer, schemaVersion: SCHEMA_VERSION + 1 });
  t.after(() => future.close());
  const r2 = await future.request('push', snapshotOf(a.h.service.desired()));
  assert.equal(r2.status, 409);
  assert.equal(r2.body.code, 'CARPD_ERR_SYNC_SCHEMA');
  assert.match(r2.body.detail, new RegExp(`${SCHEMA_VERSION + 1}.*${SCHEMA_VERSION}`));
  assert.equal(b.h.service.desired().revision, revB);
  // Loop guard: the secondary pushing to its primary is refused there.
  const back: RawClient = new SyncClient({ identity: b.identity, peer: { host: '127.0.0.1', port: a.port, fingerprint: a.identity.fingerprint }, schemaVersion: SCHEMA_VERSION });
  t.after(() => back.close());
  const r3 = await back.request('push', snapshotOf(b.h.service.desired()));
  assert.equal(r3.status, 409);
  assert.equal(r3.body.code, 'CARPD_ERR_SYNC_ROLE');
  assert.ok((await b.h.api.get('/v1/sync')).body.rejected.schema >= 1);
});

test('sync: plan shows what a push would change on the secondary without applying it; cluster shows both nodes and split brain', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  await synced(a, b);
  // A new per-node override on the secondary: the plan of the next push shows it, nothing is applied.
  assert.equal((await b.h.api.patch('/v1/sync', { overrides: [{ interface: 'em0', vhid: 1, advskew: 42 }] })).status, 200);
  const revB = b.h.service.desired().revision;
  const plan = await a.h.api.get('/v1/sync/plan');
  assert.equal(plan.status, 200, plan.text);
  assert.ok(plan.body.plan.changes.some((c: string) => /advskew.*100.*42/.test(c)), JSON.stringify(plan.body.plan));
  assert.ok(plan.body.plan.steps.length > 0);
  assert.equal(b.h.service.desired().revision, revB, 'a plan applies nothing');
  assert.equal((await vipOn(b, 'em0/1')).advskew, 100);

  // Both memory backends elect themselves after master-down: both MASTER, which /v1/cluster calls split brain.
  a.h.clock.advance(10_000);
  b.h.clock.advance(10_000);
  const c = await a.h.api.get('/v1/cluster');
  assert.equal(c.status, 200, c.text);
  assert.equal(c.body.nodes.length, 2);
  assert.equal(c.body.nodes[0].node, 'node-a');
  assert.equal(c.body.nodes[1].node, 'node-b');
  assert.equal(c.body.nodes[1].reachable, true);
  assert.deepEqual(
    c.body.splitBrain.map((v: { interface: string; vhid: number }) => ({ interface: v.interface, vhid: v.vhid })),
    [{ interface: 'em0', vhid: 1 }],
  );
  assert.ok(!Number.isNaN(Date.parse(c.body.splitBrain[0].since)));
  // The same list as the split-brain watch's in GET /v1/sync.
  assert.deepEqual((await a.h.api.get('/v1/sync')).body.splitBrain, c.body.splitBrain);
});
