/**
 * GET /v1/cluster/diagnostics: each finding provoked on a pair of in-process nodes (sim, memory
 * backend on manual clocks, real mutual TLS) or, where the pair cannot show it, on diagnose()
 * with its inputs; a healthy pair gives nothing above info; not-checked is never pass.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { systemClock, type Clock } from '../src/clock.js';
import { loadOrCreateIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { test } from 'node:test';
import { CLOCK_SKEW_LIMIT_MS, DIAG_CHECKS, diagnose, inSubnet, type DiagnosticsInput, type Diagnostics } from '../src/sync/diagnostics.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { SimBackend } from '../src/kernel/sim.js';
import { encodeSimFrame } from '../src/runtime/frame.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { carpBytes } from '../src/wire/carp.js';
import { ManualClock, makeHarness, READ_TOKEN } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { startSyncNodeInProcess } from './helpers/sync-inprocess.js';
import { HEARD_SOURCES_PER_VHID } from '../src/runtime/driver.js';

type Node = Awaited<ReturnType<typeof startSyncNodeInProcess>>;

async function pair(t: test.TestContext) {
  const a = await startSyncNodeInProcess('fw-a', 'carpd-diag');
  const b = await startSyncNodeInProcess('fw-b', 'carpd-diag');
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  const link = async (self: Node, other: Node, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.syncPort, fingerprint: other.identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(b, a, 'secondary', '192.0.2.11/24');
  await link(a, b, 'primary', '192.0.2.10/24');
  const r = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, password: 'diag-pw' });
  assert.equal(r.status, 201, r.text);
  await pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (rev) => rev === a.h.service.desired().revision);
  return { a, b };
}

const force = (n: Node, state: 'MASTER' | 'BACKUP') => (n.h.service.backend as MemoryBackend).forceState('em0', 1, state);
const diag = async (n: Node): Promise<Diagnostics> => {
  const r = await n.h.api.get('/v1/cluster/diagnostics', { token: READ_TOKEN });
  assert.equal(r.status, 200, r.text);
  return r.body;
};
const check = (d: Diagnostics, code: string) => d.checks.find((c) => c.code === code)!;
const RANK = { info: 0, warning: 1, error: 2, critical: 3 } as const;

test('diagnostics: a healthy pair gives nothing above info; every check listed; what cannot be checked says why', async (t) => {
  const { a, b } = await pair(t);
  await force(a, 'MASTER');
  await force(b, 'BACKUP');
  for (const n of [a, b]) {
    const d = await diag(n);
    assert.deepEqual(d.findings.filter((f) => RANK[f.severity] >= RANK.warning), [], JSON.stringify(d.findings));
    assert.equal(d.node, n === a ? 'fw-a' : 'fw-b');
    assert.deepEqual(d.checks.map((c) => c.code), [...DIAG_CHECKS]);
    for (const code of ['CARPD_DIAG_SPLIT_BRAIN', 'CARPD_DIAG_CLOCK_SKEW', 'CARPD_DIAG_PEER_UNREACHABLE', 'CARPD_DIAG_PREEMPT_DIFFERS', 'CARPD_DIAG_SECONDARY_IS_MASTER', 'CARPD_DIAG_NO_OWN_ADDRESS', 'CARPD_DIAG_CARP_BAD_AUTH']) {
      assert.equal(check(d, code).status, 'pass', code);
    }
    const foreign = check(d, 'CARPD_DIAG_FOREIGN_ADVERTISER');
    assert.equal(foreign.status, 'not-checked');
    assert.match(foreign.reason!, /does not record the senders/);
  }
  // The secondary checks the skews (primary 0 + 100): pass there, not-checked on the primary.
  assert.equal(check(await diag(b), 'CARPD_DIAG_SKEW_NOT_PREFERRED').status, 'pass');
  assert.equal(check(await diag(a), 'CARPD_DIAG_SKEW_NOT_PREFERRED').status, 'not-checked');
});

test('diagnostics: split brain (MASTER on both) is critical with both nodes\' states as evidence and unicast as the fix', async (t) => {
  const { a, b } = await pair(t);
  await force(a, 'MASTER');
  await force(b, 'MASTER');
  const d = await diag(a);
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_SPLIT_BRAIN');
  assert.ok(f, JSON.stringify(d.findings));
  assert.equal(f.severity, 'critical');
  assert.equal(d.worst, 'critical');
  assert.deepEqual(f.objects, [{ interface: 'em0', vhid: 1 }]);
  assert.deepEqual(f.evidence.map((e) => [e.node, e.values.state]), [['fw-a', 'MASTER'], ['fw-b', 'MASTER']]);
  assert.match(f.fix, /unicast/);
  assert.equal(check(d, 'CARPD_DIAG_SPLIT_BRAIN').status, 'finding');
  assert.equal(d.findings[0]!.code, 'CARPD_DIAG_SPLIT_BRAIN', 'worst first');
});

test('diagnostics: the secondary MASTER while the primary is BACKUP (neither demoted) is a warning naming the vhid', async (t) => {
  const { a, b } = await pair(t);
  await force(a, 'BACKUP');
  await force(b, 'MASTER');
  const d = await diag(b);
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_SECONDARY_IS_MASTER');
  assert.ok(f, JSON.stringify(d.findings));
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.objects, [{ interface: 'em0', vhid: 1 }]);
  assert.deepEqual(f.evidence.map((e) => [e.node, e.values.role, e.values.state]), [['fw-b', 'secondary', 'MASTER'], ['fw-a', 'primary', 'BACKUP']]);
});

test('diagnostics: clocks further apart than half the sync window are an error with both times and the offset', async (t) => {
  // fw-b's sync runs on a clock whose wall time is ahead (inside the envelope's window, beyond half of it).
  let ahead = CLOCK_SKEW_LIMIT_MS + 30_000;
  const clock: Clock = { ...systemClock, wall: () => systemClock.wall() + ahead };
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-diag-clock-'));
  const mc = new ManualClock();
  const h = await makeHarness({ dir, clock: mc, backend: new MemoryBackend({ clock: mc, interfaces: ['em0', 'em1'] }) });
  const identity = await loadOrCreateIdentity(dir, 'fw-b');
  const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: 'fw-b', listen: { host: '127.0.0.1', port: 0 }, timeoutMs: 2000, clock, splitBrainIntervalMs: 0 });
  h.attachSync(sync);
  const a = await startSyncNodeInProcess('fw-a', 'carpd-diag');
  t.after(async () => {
    await a.stop();
    await sync.close();
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal((await h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: a.syncPort, fingerprint: a.identity.fingerprint } })).status, 200);
  assert.equal((await a.h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: sync.port!, fingerprint: identity.fingerprint } })).status, 200);
  const d = await diag(a);
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_CLOCK_SKEW');
  assert.ok(f, JSON.stringify(d.findings));
  assert.equal(f.severity, 'error');
  assert.equal(f.evidence[0]!.node, 'fw-a');
  const off = f.evidence[0]!.values.offsetMs as number;
  assert.ok(Math.abs(off - ahead) < 5_000, `offset ${off}`);
  assert.equal(f.evidence[1]!.node, 'fw-b');
  // Under the limit: pass.
  ahead = 10_000;
  assert.equal(check(await diag(a), 'CARPD_DIAG_CLOCK_SKEW').status, 'pass');
});

test('diagnostics: a peer gone is an error, the push failure a sync error, and the checks that need the peer are not-checked', async (t) => {
  const { a, b } = await pair(t);
  await b.stop();
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'] })).status, 201);
  const d = await pollUntil('a sync error found', () => diag(a), (x) => x.findings.some((f) => f.code === 'CARPD_DIAG_SYNC_ERROR'));
  const un = d.findings.find((f) => f.code === 'CARPD_DIAG_PEER_UNREACHABLE');
  assert.ok(un);
  assert.equal(un.severity, 'error');
  assert.equal(un.evidence[0]!.node, 'fw-a');
  assert.equal(typeof un.evidence[0]!.values.error, 'string');
  const se = d.findings.find((f) => f.code === 'CARPD_DIAG_SYNC_ERROR')!;
  assert.equal(se.evidence[0]!.values.role, 'primary');
  for (const code of ['CARPD_DIAG_SPLIT_BRAIN', 'CARPD_DIAG_CLOCK_SKEW', 'CARPD_DIAG_PREEMPT_DIFFERS']) {
    const c = check(d, code);
    assert.equal(c.status, 'not-checked', code);
    assert.match(c.reason!, /could not be reached|could not be read/);
  }
});

test('diagnostics: unknown query parameters are 400 problem+json; without sync 409; no token 401', async (t) => {
  const a = await startSyncNodeInProcess('fw-a', 'carpd-diag');
  t.after(() => a.stop());
  const bad = await a.h.api.get('/v1/cluster/diagnostics?verbose=1', { token: READ_TOKEN });
  assert.equal(bad.status, 400);
  assert.match(bad.headers['content-type'], /application\/problem\+json/);
  assert.equal(bad.body.code, 'CARPD_ERR_VALIDATION');
  assert.equal((await a.h.api.get('/v1/cluster/diagnostics', { token: null })).status, 401);
  // Standalone with sync running: the peer checks are not-checked, never passed.
  const d = await diag(a);
  assert.equal(check(d, 'CARPD_DIAG_SPLIT_BRAIN').status, 'not-checked');
  assert.match(check(d, 'CARPD_DIAG_SPLIT_BRAIN').reason!, /no sync peer/);
  const h = await makeHarness();
  t.after(() => h.close());
  const none = await h.api.get('/v1/cluster/diagnostics');
  assert.equal(none.status, 409);
  assert.equal(none.body.code, 'CARPD_ERR_SYNC_NOT_CONFIGURED');
});

// --- findings the in-process pair cannot show, on diagnose() with their inputs ---------------------

const NOW = '2026-01-01T00:00:00.000Z';
function nodeOf(name: string, role: 'primary' | 'secondary', over: { preempt?: boolean; state?: 'MASTER' | 'BACKUP'; pfsync?: Partial<{ enabled: boolean; running: boolean; bulkUpdateDone: boolean }> } = {}) {
  return {
    node: name,
    role,
    revision: 3,
    appliedRevision: role === 'secondary' ? 3 : 0,
    carp: { enabled: true, preempt: over.preempt ?? true, maintenance: false, demotion: 0 },
    pfsync: { enabled: false, running: false, syncdev: null, syncpeer: null, bulkUpdateDone: false, ...over.pfsync },
    vhids: [{ interface: 'em0', vhid: 1, state: over.state ?? (role === 'primary' ? 'MASTER' : 'BACKUP'), since: NOW, reason: 'test' }],
  } as const;
}
function input(over: Partial<DiagnosticsInput> = {}, nodes = [nodeOf('fw-a', 'primary'), nodeOf('fw-b', 'secondary')]): DiagnosticsInput {
  return {
    node: 'fw-a',
    generatedAt: NOW,
    cluster: { nodes: nodes.map((n, i) => ({ ...n, vhids: [...n.vhids], self: i === 0, reachable: true as const, error: null })), splitBrain: [] },
    sync: {
      role: nodes[0]!.role,
      peer: { address: '192.0.2.11', port: 8443, fingerprint: 'x' },
      lag: { revisions: 0, seconds: 0 },
      lastError: null,
      lastSuccess: NOW,
      detached: { vips: [], carp: false },
      advskewRule: { add: 100, cap: 254 },
      overrides: [],
      localAddresses: ['192.0.2.10/24'],
      peerRevision: 3,
      localRevision: 3,
    },
    vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, protocol: 'carp' }],
    listeners: { api: [{ name: 'api', host: '192.0.2.10', port: 8080 }], sync: { name: 'sync', host: '192.0.2.10', port: 8443 } },
    carpStats: { badauth: 0, badaddrs: 0, badvhid: 0 },
    clockOffset: { offsetMs: 5, peerAt: NOW, localAt: NOW },
    ...over,
  };
}
const codes = (d: Diagnostics) => d.findings.map((f) => f.code);

test('diagnose: the healthy inputs give no finding', () => {
  const d = diagnose(input());
  assert.deepEqual(d.findings, []);
  assert.equal(d.worst, null);
});

test('diagnose: the API or the sync listener on a VIP is an error naming listener and vhid', () => {
  const d = diagnose(input({ listeners: { api: [{ name: 'api', host: '192.0.2.50', port: 8080 }], sync: { name: 'sync', host: '192.0.2.50', port: 8443 } } }));
  const fs = d.findings.filter((f) => f.code === 'CARPD_DIAG_LISTENER_ON_VIP');
  assert.deepEqual(fs.map((f) => f.objects), [
    [{ listener: 'api', address: '192.0.2.50:8080' }, { interface: 'em0', vhid: 1 }],
    [{ listener: 'sync', address: '192.0.2.50:8443' }, { interface: 'em0', vhid: 1 }],
  ]);
  assert.equal(fs[0]!.severity, 'error');
  assert.match(fs[0]!.fix, /--listen/);
  assert.match(fs[1]!.fix, /--sync-listen/);
  // Without the API's address: not-checked, with why.
  const n = diagnose(input({ listeners: { sync: null } }));
  assert.equal(n.checks.find((c) => c.code === 'CARPD_DIAG_LISTENER_ON_VIP')!.status, 'not-checked');
});

test('diagnose: refused advertisements (bad HMAC) from the counters name the interface and the counts', () => {
  const d = diagnose(input({ carpStats: { badauth: 7, badaddrs: 0, badvhid: 0 } }));
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_CARP_BAD_AUTH')!;
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.objects, [{ node: 'fw-a', interface: 'em0' }]);
  assert.equal(f.evidence[0]!.values.badauth, 7);
  assert.equal(f.evidence[0]!.values.perVhid, false);
  const n = diagnose(input({ carpStats: { error: 'EOPNOTSUPP' } }));
  assert.match(n.checks.find((c) => c.code === 'CARPD_DIAG_CARP_BAD_AUTH')!.reason!, /EOPNOTSUPP/);
});

test('diagnose: no own address in a VIP subnet; unknown own addresses are not-checked', () => {
  const d = diagnose(input({ vips: [{ interface: 'em1', vhid: 2, addresses: ['198.51.100.50/24'], advskew: 0, protocol: 'carp' }] }));
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_NO_OWN_ADDRESS')!;
  assert.deepEqual(f.objects, [{ node: 'fw-a', interface: 'em1', vhid: 2, address: '198.51.100.50/24' }]);
  assert.equal(f.evidence[0]!.values.localAddresses, '192.0.2.10/24');
  const base = input();
  const n = diagnose({ ...base, sync: { ...base.sync, localAddresses: [] } });
  assert.equal(n.checks.find((c) => c.code === 'CARPD_DIAG_NO_OWN_ADDRESS')!.status, 'not-checked');
  assert.equal(inSubnet('192.0.2.10', '192.0.2.50/24'), true);
  assert.equal(inSubnet('192.0.3.10', '192.0.2.50/23'), true);
  assert.equal(inSubnet('192.0.4.10', '192.0.2.50/23'), false);
  assert.equal(inSubnet('2001:db8::1', '2001:db8::50/64'), true);
  assert.equal(inSubnet('2001:db8:1::1', '2001:db8::50/64'), false);
});

test('diagnose: preempt differing, equal skews on the secondary, sync lag, detached objects', () => {
  const pre = diagnose(input({}, [nodeOf('fw-a', 'primary'), nodeOf('fw-b', 'secondary', { preempt: false })]));
  const p = pre.findings.find((x) => x.code === 'CARPD_DIAG_PREEMPT_DIFFERS')!;
  assert.deepEqual(p.evidence, [{ node: 'fw-a', values: { preempt: true } }, { node: 'fw-b', values: { preempt: false } }]);

  const sec = input({ node: 'fw-b' }, [nodeOf('fw-b', 'secondary'), nodeOf('fw-a', 'primary')]);
  const skew = diagnose({ ...sec, sync: { ...sec.sync, role: 'secondary', advskewRule: { add: 0, cap: 254 } }, vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 10, protocol: 'carp' }] });
  const s = skew.findings.find((x) => x.code === 'CARPD_DIAG_SKEW_NOT_PREFERRED')!;
  assert.deepEqual(s.evidence[0]!.values, { add: 0, cap: 254 });

  const base = input();
  const lag = diagnose({ ...base, sync: { ...base.sync, lag: { revisions: 2, seconds: 120 }, peerRevision: 1, detached: { vips: ['em0/1'], carp: true } } });
  assert.deepEqual(codes(lag).sort(), ['CARPD_DIAG_SYNC_DETACHED', 'CARPD_DIAG_SYNC_LAG']);
  assert.equal(lag.findings.find((f) => f.code === 'CARPD_DIAG_SYNC_LAG')!.evidence[0]!.values.lagRevisions, 2);
  assert.deepEqual(lag.findings.find((f) => f.code === 'CARPD_DIAG_SYNC_DETACHED')!.objects, [{ interface: 'em0', vhid: 1 }]);
  // A short lag (a push under way) is not a finding.
  assert.deepEqual(codes(diagnose({ ...base, sync: { ...base.sync, lag: { revisions: 1, seconds: 2 } } })), []);
});

test('diagnose: pfsync not running, enabled on one node only, bulk update pending', () => {
  const d = diagnose(input({}, [nodeOf('fw-a', 'primary', { pfsync: { enabled: true, running: true, bulkUpdateDone: false } }), nodeOf('fw-b', 'secondary', { pfsync: { enabled: false } })]));
  assert.deepEqual(codes(d).sort(), ['CARPD_DIAG_PFSYNC_BULK_PENDING', 'CARPD_DIAG_PFSYNC_DIFFERS']);
  const n = diagnose(input({}, [nodeOf('fw-a', 'primary', { pfsync: { enabled: true, running: false } }), nodeOf('fw-b', 'secondary', { pfsync: { enabled: true, running: true, bulkUpdateDone: true } })]));
  const f = n.findings.find((x) => x.code === 'CARPD_DIAG_PFSYNC_NOT_RUNNING')!;
  assert.equal(f.severity, 'error');
  assert.deepEqual(f.objects, [{ node: 'fw-a' }]);
  assert.equal(n.checks.find((c) => c.code === 'CARPD_DIAG_PFSYNC_VERSION')!.status, 'not-checked');
});

// --- the sim engine's record of senders heard per vhid ------------------------------------------

/** A sim backend with em0 vhid 1 (key 'pw') and senders on its segment: each a raw endpoint named as it sends. */
async function simWithSenders(t: test.TestContext) {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const b = await SimBackend.open({ clock, transport: net.endpoint(), interfaces: ['em0'], node: 'fw-a' });
  t.after(() => b.close());
  await b.setVhid('em0', 1, { advbaseSec: 1, advskew: 0, key: 'pw' });
  await b.addAddress('em0', 1, '192.0.2.50/24');
  const send = async (node: string, key = 'pw', vhid = 1) => {
    const ep = net.endpoint(node);
    await ep.open(() => {});
    await ep.send(encodeSimFrame({ family: 4, instance: Buffer.alloc(8, node.length), node, iface: 'em0', carp: carpBytes({ vhid, advbaseSec: 1, advskew: 100, counter: 1n, key, addresses: ['192.0.2.50'] }) }));
    clock.advance(0);
    await ep.close();
  };
  return { b, send };
}

test('diagnostics: advertisements from a sender that is neither node are an error naming it and a free vhid (sim engine record)', async (t) => {
  const { b, send } = await simWithSenders(t);
  await send('fw-b');
  await send('isp-router');
  await send('isp-router');
  const sources = await b.advertSources();
  assert.deepEqual(sources.map((h) => [h.from, h.accepted, h.refused]).sort(), [['fw-b', 1, 0], ['isp-router', 2, 0]]);
  const d = diagnose(input({ advertSources: sources }));
  const f = d.findings.find((x) => x.code === 'CARPD_DIAG_FOREIGN_ADVERTISER')!;
  assert.ok(f, JSON.stringify(d.findings));
  assert.equal(f.severity, 'error');
  assert.deepEqual(f.objects, [{ interface: 'em0', vhid: 1 }, { address: 'isp-router' }]);
  assert.deepEqual(f.evidence.map((e) => [e.values.from, e.values.knownPeer]).sort(), [['fw-b', true], ['isp-router', false]]);
  assert.match(f.fix, /2 is unused on em0/);
  // The peer alone: no finding, and the check passed.
  const one = diagnose(input({ advertSources: sources.filter((h) => h.from === 'fw-b') }));
  assert.equal(one.checks.find((c) => c.code === 'CARPD_DIAG_FOREIGN_ADVERTISER')!.status, 'pass');
});

test('diagnostics: advertisements refused for a bad HMAC name the vhid and the sender (sim engine record)', async (t) => {
  const { b, send } = await simWithSenders(t);
  await send('fw-b', 'other-password');
  await send('fw-b', 'other-password');
  const d = diagnose(input({ advertSources: await b.advertSources(), carpStats: { badauth: 2, badaddrs: 0, badvhid: 0 } }));
  const fs = d.findings.filter((x) => x.code === 'CARPD_DIAG_CARP_BAD_AUTH');
  assert.equal(fs.length, 1, JSON.stringify(d.findings));
  assert.deepEqual(fs[0]!.objects, [{ interface: 'em0', vhid: 1 }, { address: 'fw-b' }]);
  assert.deepEqual([fs[0]!.evidence[0]!.values.refused, fs[0]!.evidence[0]!.values.lastRefusal], [2, 'badauth']);
});

test('diagnostics: the sim engine keeps at most HEARD_SOURCES_PER_VHID senders per vhid, the least recent dropped', async (t) => {
  const { b, send } = await simWithSenders(t);
  for (let i = 0; i < HEARD_SOURCES_PER_VHID + 3; i++) await send(`r${i}`);
  const sources = await b.advertSources();
  assert.equal(sources.length, HEARD_SOURCES_PER_VHID);
  assert.equal(sources.some((h) => h.from === 'r0'), false);
  assert.ok(sources.some((h) => h.from === `r${HEARD_SOURCES_PER_VHID + 2}`));
});

test('diagnose: MASTER on both with nothing accepted from the peer is "peer not heard", with unicast as the fix; heard, it is split brain only', () => {
  const both = [nodeOf('fw-a', 'primary', { state: 'MASTER' }), nodeOf('fw-b', 'secondary', { state: 'MASTER' })];
  const d = diagnose(input({ advertSources: [] }, both));
  assert.deepEqual(codes(d), ['CARPD_DIAG_SPLIT_BRAIN', 'CARPD_DIAG_PEER_NOT_HEARD']);
  const f = d.findings[1]!;
  assert.equal(f.severity, 'error');
  assert.deepEqual(f.objects, [{ interface: 'em0', vhid: 1 }, { node: 'fw-b' }]);
  assert.equal(f.evidence[0]!.values.sendersHeard, 0);
  assert.match(f.fix, /--mode unicast --peer/);
  const heard = diagnose(input({ advertSources: [{ iface: 'em0', vhid: 1, from: 'fw-b', accepted: 3, refused: 0, ageMs: 1000 }] }, both));
  assert.deepEqual(codes(heard), ['CARPD_DIAG_SPLIT_BRAIN']);
  assert.equal(heard.checks.find((c) => c.code === 'CARPD_DIAG_PEER_NOT_HEARD')!.status, 'pass');
  // Without the record: not-checked, never pass.
  assert.equal(diagnose(input({}, both)).checks.find((c) => c.code === 'CARPD_DIAG_PEER_NOT_HEARD')!.status, 'not-checked');
});
