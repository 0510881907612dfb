/**
 * The kinds of sync message (src/sync/messages.ts), on both sides of the link.
 *
 *  - The listener reads every verified message as one of its kinds before any handler runs: for
 *    push, plan, status and states, a body of the wrong type, with a field missing, with an unknown
 *    field, or with a malformed VIP inside, and a message of an unknown type, are each refused
 *    with 400 CARPD_ERR_SYNC_BAD_MESSAGE, counted as `malformed`, logged at warn, and the handler
 *    is not called. On a real secondary the configuration is unchanged and /v1/sync counts them.
 *  - Real bodies (a snapshot with every kind of VIP, a node's report) pass.
 *  - The client reads every answer the same way: an answer that is not what its kind answers, or
 *    a refusal that is not a problem, is an error that says so, and on a primary it shows as the
 *    last error, a 502 of /v1/sync/run and /v1/sync/plan, and an unreachable peer in /v1/cluster.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { SCHEMA_VERSION } from '../src/config/model.js';
import { createLogger } from '../src/daemon/logger.js';
import { snapshotOf, type Snapshot } from '../src/sync/derive.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { SYNC_KINDS, exchange, type InboundMessage } from '../src/sync/messages.js';
import { SyncClient, SyncServer, SyncTransportError, type RejectReason } from '../src/sync/transport.js';
import { makeHarness, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';

let P: SyncIdentity; // stands in for a primary
let S: SyncIdentity; // a listener
const dirs: string[] = [];
const tmp = (name: string) => {
  const d = mkdtempSync(path.join(tmpdir(), `carpd-sync-msg-${name}-`));
  dirs.push(d);
  return d;
};

before(async () => {
  [P, S] = await Promise.all([loadOrCreateIdentity(tmp('p'), 'fw-p'), loadOrCreateIdentity(tmp('s'), 'fw-s')]);
});
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A client whose answers these tests read as they come: SyncClient.request leaves them unchecked. */
type RawClient = Pick<SyncClient, 'close'> & { request(type: string, body: unknown): Promise<{ status: number; body: any }> };

function clientFor(t: test.TestContext, id: SyncIdentity, port: number, pin: string): SyncClient {
  const c = new SyncClient({ identity: id, peer: { host: '127.0.0.1', port, fingerprint: pin }, schemaVersion: SCHEMA_VERSION });
  t.after(() => c.close());
  return c;
}

/** A snapshot with every kind of VIP the API makes: carp with password, unicast with peers of both families, IPv6, vrrpv3. */
async function realSnapshot(t: test.TestContext) {
  const h = await makeHarness();
  t.after(() => h.close());
  const vips = [
    { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24', '2001:db8::50/64'], advskew: 10, password: 's3cret', description: 'web' },
    { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24', '2001:db8::51/64'], mode: 'unicast', peer: '192.0.2.11', peer6: '2001:db8::11' },
    { interface: 'em1', vhid: 3, addresses: ['198.51.100.50/24'], protocol: 'vrrpv3', vrrpPriority: 200, vrrpInterval: 50 },
  ];
  for (const v of vips) assert.equal((await h.api.post('/v1/vips', v)).status, 201);
  // The primary's own addresses, which the unicast VIP's peers are swapped for on a secondary.
  return { ...snapshotOf(h.service.desired()), localAddresses: ['192.0.2.10/24', '2001:db8::10/64'] };
}

/**
 * Bodies that are not what push and plan carry, each with what is wrong with it: of the wrong
 * type, with a field missing, with an unknown field, with a malformed VIP inside.
 */
function badSnapshots(good: Snapshot): [string, unknown][] {
  const vip = good.vips[0];
  const withVip = (v: unknown) => ({ ...good, vips: [v, ...good.vips.slice(1)] });
  const { carp: _carp, ...noCarp } = good;
  const { addresses: _addresses, ...vipNoAddresses } = vip;
  return [
    ['the body is an array', [good]],
    ['the body is a string', 'snapshot'],
    ['revision is a string', { ...good, revision: String(good.revision) }],
    ['revision is negative', { ...good, revision: -1 }],
    ['vips is an object', { ...good, vips: { 0: vip } }],
    ['carp is missing', noCarp],
    ['carp.preempt is missing', { ...good, carp: { enabled: true } }],
    ['an unknown field', { ...good, pfsync: { enabled: true } }],
    ['an unknown field in carp', { ...good, carp: { ...good.carp, maintenance: true } }],
    ['a local address without prefix', { ...good, localAddresses: ['192.0.2.10'] }],
    ['a VIP whose vhid is a string', withVip({ ...vip, vhid: String(vip.vhid) })],
    ['a VIP without addresses', withVip(vipNoAddresses)],
    ['a VIP with an address that is not one', withVip({ ...vip, addresses: ['192.0.2.300/24'] })],
    ['a VIP with the API\'s name advbase instead of advbaseSec', withVip({ ...vip, advbase: 1 })],
    ['a VIP with an unknown mode', withVip({ ...vip, mode: 'broadcast' })],
    ['a VIP with a peer that is not an address', withVip({ ...vip, mode: 'unicast', peer: 'fw2' })],
    ['a VIP with a null password', withVip({ ...vip, password: null })],
    ['a VIP that is a string', withVip('em0/1')],
  ];
}

const badStatus: [string, unknown][] = [
  ['the body is null', null],
  ['the body is an array', []],
  ['the body is a string', 'status'],
  ['an unknown field', { revision: 3 }],
];

const goodStates = { node: 'fw-p', at: '2026-01-01T00:00:00.000Z', vhids: [{ interface: 'em0', vhid: 1, state: 'MASTER' }, { interface: 'em1', vhid: 3, state: 'BACKUP' }] };
const badStates: [string, unknown][] = [
  ['the body is null', null],
  ['the body is an array', [goodStates]],
  ['node is missing', { at: goodStates.at, vhids: goodStates.vhids }],
  ['vhids is missing', { node: 'fw-p', at: goodStates.at }],
  ['at is missing', { node: 'fw-p', vhids: [] }],
  ['at is not a time', { ...goodStates, at: 'yesterday' }],
  ['an unknown field', { ...goodStates, revision: 3 }],
  ['a vhid whose state is unknown', { ...goodStates, vhids: [{ interface: 'em0', vhid: 1, state: 'LEADER' }] }],
  ['a vhid out of range', { ...goodStates, vhids: [{ interface: 'em0', vhid: 256, state: 'MASTER' }] }],
  ['a vhid that is a string', { ...goodStates, vhids: [{ interface: 'em0', vhid: '1', state: 'MASTER' }] }],
  ['a vhid without interface', { ...goodStates, vhids: [{ vhid: 1, state: 'MASTER' }] }],
  ['an empty interface', { ...goodStates, vhids: [{ interface: '', vhid: 1, state: 'MASTER' }] }],
  ['an unknown field in a vhid', { ...goodStates, vhids: [{ interface: 'em0', vhid: 1, state: 'MASTER', since: 'now' }] }],
  ['too many vhids', { ...goodStates, vhids: Array.from({ length: 4097 }, (_, i) => ({ interface: `em${i >> 8}`, vhid: (i % 255) + 1, state: 'BACKUP' })) }],
];

interface LogLine {
  level: number;
  event?: string;
  reason?: string;
  detail?: string;
}

function recordingLogger() {
  const lines: LogLine[] = [];
  return { lines, logger: createLogger('debug', { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) }) };
}

function assertRefused(r: { status: number; body: any }, what: string): void {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, 'CARPD_ERR_SYNC_BAD_MESSAGE', what);
  assert.equal(r.body.reason, 'malformed', what);
  assert.equal(typeof r.body.detail, 'string', what);
}

const zero = (): Record<RejectReason, number> => ({ 'no-client-cert': 0, 'unknown-peer': 0, 'sender-mismatch': 0, 'bad-signature': 0, 'wrong-recipient': 0, stale: 0, replay: 0, schema: 0, malformed: 0 });

test('the listener refuses every malformed push, plan and status body, and unknown types, before the handler: 400, counted, logged', async (t) => {
  const good = await realSnapshot(t);
  const { lines, logger } = recordingLogger();
  const calls: InboundMessage[] = [];
  const server = await SyncServer.start({
    identity: S,
    host: '127.0.0.1',
    port: 0,
    pinned: () => [P.fingerprint],
    schemaVersion: SCHEMA_VERSION,
    kinds: SYNC_KINDS,
    handle: async (m) => {
      calls.push(m);
      return { status: 200, body: {} };
    },
    logger,
  });
  t.after(() => server.close());
  const c: RawClient = clientFor(t, P, server.port, S.fingerprint);

  const cases: [string, string, unknown][] = [
    ...badSnapshots(good).flatMap(([what, body]): [string, string, unknown][] => [
      ['push', what, body],
      ['plan', what, body],
    ]),
    ...badStatus.map(([what, body]): [string, string, unknown] => ['status', what, body]),
    ...badStates.map(([what, body]): [string, string, unknown] => ['states', what, body]),
    ['restore', 'an unknown type', {}],
  ];
  let n = 0;
  for (const [type, what, body] of cases) {
    const r = await c.request(type, body);
    n++;
    assertRefused(r, `${type}: ${what}`);
    assert.deepEqual(server.rejected(), { ...zero(), malformed: n }, `${type}: ${what}`);
    const warns = lines.filter((l) => l.level === 40 && l.event === 'sync.rejected');
    assert.equal(warns.length, n, `${type}: ${what}: one warn line each`);
    assert.equal(warns[n - 1].reason, 'malformed');
    assert.equal(warns[n - 1].detail, r.body.detail);
  }
  assert.equal(calls.length, 0, 'the handler never saw a malformed message');
  assert.ok(!lines.some((l) => JSON.stringify(l).includes('s3cret')), 'no body value is logged');

  // The real bodies pass, to the handler, typed by their kind.
  for (const [type, body] of [
    ['push', good],
    ['plan', good],
    ['status', {}],
    ['states', goodStates],
    ['states', { node: 'fw-p', at: goodStates.at, vhids: [] }],
  ] as const) {
    assert.equal((await c.request(type, body)).status, 200, type);
  }
  assert.deepEqual(
    calls.map((m) => m.type),
    ['push', 'plan', 'status', 'states', 'states'],
  );
  assert.deepEqual(calls[0].body, JSON.parse(JSON.stringify(good)));
  assert.deepEqual(server.rejected(), { ...zero(), malformed: n });
});

test('a secondary refuses malformed pushes and plans from its pinned primary: configuration unchanged, /v1/sync counts them, the handler never runs', async (t) => {
  const good = await realSnapshot(t);
  const dir = tmp('secondary');
  const h: Harness = await makeHarness({ dir });
  const identity = await loadOrCreateIdentity(dir, 'fw-b');
  const { lines, logger } = recordingLogger();
  const sync = await SyncManager.start({ service: h.service, identity, logger, node: 'fw-b', listen: { host: '127.0.0.1', port: 0 } });
  h.attachSync(sync);
  t.after(async () => {
    await sync.close();
    await h.close();
  });
  const r = await h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: 9, fingerprint: P.fingerprint }, localAddresses: ['192.0.2.11/24', '2001:db8::11/64'] });
  assert.equal(r.status, 200, r.text);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em1', vhid: 9, addresses: ['198.51.100.9/24'], nosync: true })).status, 201);
  const before = JSON.stringify(h.service.desired());
  const revisionsBefore = h.service.revisions().length;
  const c: RawClient = clientFor(t, P, sync.port!, identity.fingerprint);

  let n = 0;
  for (const [what, body] of badSnapshots(good)) {
    for (const type of ['push', 'plan']) {
      assertRefused(await c.request(type, body), `${type}: ${what}`);
      n++;
    }
  }
  for (const [what, body] of badStatus) {
    assertRefused(await c.request('status', body), `status: ${what}`);
    n++;
  }
  assert.equal(JSON.stringify(h.service.desired()), before, 'the configuration is unchanged');
  assert.equal(h.service.revisions().length, revisionsBefore, 'no revision was made');
  const st = (await h.api.get('/v1/sync')).body;
  assert.deepEqual(st.rejected, { ...zero(), malformed: n });
  assert.equal(st.peerRevision, 0, 'nothing applied');
  assert.equal(lines.filter((l) => l.event === 'sync.rejected' && l.reason === 'malformed').length, n);
  assert.equal(lines.filter((l) => l.event === 'sync.received').length, 0, 'no message reached the handler');

  // The same snapshot, well formed, is applied.
  const ok = await c.request('push', good);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(h.service.desired().sync.appliedRevision, good.revision);
});

/** A stand-in peer that answers every message with `answer(type)`, checked on the way in like carpd's. */
async function fakePeer(t: test.TestContext, answer: (type: string) => { status: number; body: unknown }) {
  const server = await SyncServer.start({
    identity: S,
    host: '127.0.0.1',
    port: 0,
    pinned: () => [P.fingerprint],
    schemaVersion: SCHEMA_VERSION,
    kinds: SYNC_KINDS,
    handle: async (m) => answer(m.type),
    logger: pino({ level: 'silent' }),
  });
  t.after(() => server.close());
  return server;
}

test('an answer that is not what its kind answers is a protocol error naming the field, never a crash', async (t) => {
  const good = await realSnapshot(t);
  const problem = { type: 'urn:carpd:error:CARPD_ERR_SYNC_OLDER_REVISION', title: 't', status: 409, code: 'CARPD_ERR_SYNC_OLDER_REVISION', detail: 'older', appliedRevision: 7 };
  const report = { node: 'fw-s', role: 'secondary', revision: 3, appliedRevision: 2, carp: { enabled: true, preempt: true, maintenance: false, demotion: 0 }, pfsync: { enabled: false, running: false, syncdev: null, syncpeer: null, bulkUpdateDone: false }, vhids: [{ interface: 'em0', vhid: 1, state: 'BACKUP', since: '2026-01-01T00:00:00.000Z', reason: 'r' }] };
  const plan = { plan: { dryRun: true, fromRevision: 3, changes: ['c'], steps: [{ op: 'vhid.set', target: 'em0 vhid 1', detail: 'd' }] } };
  let answers: Record<string, { status: number; body: unknown }> = {};
  const server = await fakePeer(t, (type) => answers[type]);
  const c = clientFor(t, P, server.port, S.fingerprint);

  // Well-formed answers of each kind are read, typed.
  answers = { push: { status: 200, body: { detail: 'applied as revision 4', appliedRevision: 3 } }, plan: { status: 200, body: plan }, status: { status: 200, body: report } };
  assert.deepEqual(await exchange(c, 'push', good), { ok: true, status: 200, body: { detail: 'applied as revision 4', appliedRevision: 3 } });
  assert.deepEqual(await exchange(c, 'plan', good), { ok: true, status: 200, body: plan });
  assert.deepEqual(await exchange(c, 'status', {}), { ok: true, status: 200, body: report });
  answers.push = { status: 409, body: problem };
  assert.deepEqual(await exchange(c, 'push', good), { ok: false, status: 409, problem });

  const send = (type: 'push' | 'plan' | 'status') => (type === 'status' ? exchange(c, type, {}) : exchange(c, type, good));
  const bad: ['push' | 'plan' | 'status', { status: number; body: unknown }, RegExp][] = [
    ['push', { status: 200, body: { detail: 'applied' } }, /not an acknowledgement of a push.*appliedRevision/],
    ['push', { status: 200, body: { detail: 5, appliedRevision: 3 } }, /\/detail must be string/],
    ['push', { status: 409, body: { error: 'older' } }, /HTTP 409 and no problem body/],
    ['push', { status: 500, body: undefined }, /HTTP 500 and no problem body/],
    ['plan', { status: 200, body: { plan: { ...plan.plan, steps: [{ op: 'reboot', target: 'x', detail: 'y' }] } } }, /not a plan.*\/plan\/steps\/0\/op must be one of/],
    ['plan', { status: 200, body: plan.plan }, /not a plan/],
    ['status', { status: 200, body: { ...report, vhids: [{ ...report.vhids[0], state: 'PRIMARY' }] } }, /not a node report.*\/vhids\/0\/state/],
    ['status', { status: 200, body: { ...report, carp: { ...report.carp, demotion: '0' } } }, /\/carp\/demotion must be integer/],
    ['status', { status: 200, body: { ...report, extra: true } }, /unknown field "extra"/],
    ['status', { status: 200, body: { ...report, vhids: [{ ...report.vhids[0], since: 'yesterday' }] } }, /\/vhids\/0\/since must match format "date-time"/],
  ];
  for (const [type, a, words] of bad) {
    answers = { [type]: a };
    await assert.rejects(send(type), (e: unknown) => {
      assert.ok(e instanceof SyncTransportError, String(e));
      assert.equal(e.kind, 'protocol');
      assert.equal(e.status, a.status);
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
      assert.match(e.message, words);
      return true;
    });
  }
});

test('a primary whose peer answers malformed: the push fails with the reason, run and plan answer 502, cluster lists the peer unreachable', async (t) => {
  const server = await fakePeer(t, (type) =>
    type === 'push' ? { status: 200, body: { detail: 'applied', appliedRevision: 'latest' } } : type === 'plan' ? { status: 200, body: { steps: [] } } : { status: 200, body: { node: 'fw-s' } },
  );
  const dir = tmp('primary');
  const h = await makeHarness({ dir });
  const sync = await SyncManager.start({ service: h.service, identity: P, logger: pino({ level: 'silent' }), node: 'fw-a' });
  h.attachSync(sync);
  t.after(async () => {
    await sync.close();
    await h.close();
  });
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  const r = await h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: server.port, fingerprint: S.fingerprint } });
  assert.equal(r.status, 200, r.text);

  const failing = await pollUntil('the push to fail', async () => (await h.api.get('/v1/sync')).body, (s) => s.lastError !== null);
  assert.match(failing.lastError, /answered the push request with something that is not an acknowledgement of a push \(\/appliedRevision must be integer\)/);
  assert.equal(failing.peerRevision, null, 'an answer that was not read says nothing about the peer');
  assert.equal(failing.pending, true);

  const run = await h.api.post('/v1/sync/run');
  assert.equal(run.status, 502, run.text);
  assert.equal(run.body.code, 'CARPD_ERR_SYNC_PEER_UNREACHABLE');
  assert.match(run.body.detail, /not an acknowledgement of a push/);

  const plan = await h.api.get('/v1/sync/plan');
  assert.equal(plan.status, 502, plan.text);
  assert.match(plan.body.detail, /answered the plan request with something that is not a plan/);

  const cluster = await h.api.get('/v1/cluster');
  assert.equal(cluster.status, 200, cluster.text);
  assert.equal(cluster.body.nodes.length, 2);
  assert.deepEqual(
    { reachable: cluster.body.nodes[1].reachable, node: cluster.body.nodes[1].node },
    { reachable: false, node: null },
  );
  assert.match(cluster.body.nodes[1].error, /answered the status request with something that is not a node report/);
});
