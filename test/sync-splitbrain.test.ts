/**
 * The split-brain watch (src/sync/splitbrain.ts).
 *
 *  - On its own, with a manual clock and a fake peer: a vhid MASTER on both is detected once at
 *    the first exchange after it happened, cleared once when a side leaves MASTER or the vhid is
 *    gone (with how long it lasted); nothing is claimed or cleared while the peer does not
 *    answer, however long; the peer's own states message decides like an answer; an older peer
 *    that does not know the message is logged once and not asked again for minutes.
 *  - Two in-process sim nodes that sync, whose CARP passwords differ so that each drops the
 *    other's advertisements and both become MASTER: splitbrain.detected on both within 10 s,
 *    GET /v1/sync and /v1/cluster list it; the same password again: splitbrain.cleared on both.
 *  - The demote policy: the secondary's demotion rises by 240 (a `demotion` event names
 *    splitbrain) while the split lasts and is taken back after; the primary never demotes.
 *  - A peer whose carpd predates the states message: its refusal is logged once, nothing claimed.
 *  - The policy is stored and survives a restart.
 *  - PATCH /v1/sync with an unknown policy, or demote on a backend without named demotions:
 *    a problem, nothing stored.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { SCHEMA_VERSION, type SplitBrainPolicy } from '../src/config/model.js';
import { KernelError } from '../src/kernel/errno.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { EventBus, type AnyEvent, type CarpdEvent, type EventType } from '../src/service/events.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { SyncServer } from '../src/sync/transport.js';
import type { VhidStates } from '../src/sync/messages.js';
import { SplitBrainWatch, UNSUPPORTED_RETRY_MS, type VhidStateEntry } from '../src/sync/splitbrain.js';
import { ManualClock, READ_TOKEN, makeHarness, storedBytes, type Harness } from './helpers/harness.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';
import { capturingLogger } from './helpers/log-capture.js';
import { pollUntil } from './helpers/poll.js';

// ---- the watch on its own ----------------------------------------------------------------------

const settle = () => new Promise((r) => setImmediate(r));

function fakeWatch(opts: { policy?: SplitBrainPolicy } = {}) {
  const clock = new ManualClock();
  const { logger, lines } = capturingLogger('debug');
  const events = new EventBus({ now: () => clock.now(), logger });
  const published: AnyEvent[] = [];
  events.subscribe((e) => published.push(e));
  const f = {
    clock,
    published,
    lines,
    mine: [] as VhidStateEntry[],
    theirs: [] as VhidStateEntry[],
    reachable: true,
    unsupported: false,
    active: true,
    asked: [] as VhidStates[],
    changes: 0,
    /** Replaces the read of this node's states (default: `mine`). */
    local: undefined as (() => VhidStateEntry[]) | undefined,
  };
  const watch = new SplitBrainWatch({
    clock,
    events,
    logger,
    node: 'fw1',
    active: () => f.active,
    local: async () => (f.local ? f.local() : f.mine.map((v) => ({ ...v }))),
    ask: async (mine) => {
      f.asked.push(mine);
      if (!f.reachable) throw new Error('connect ECONNREFUSED');
      if (f.unsupported) return 'unsupported';
      return { node: 'fw2', at: new Date(clock.now()).toISOString(), vhids: f.theirs.map((v) => ({ ...v })) };
    },
    peerName: () => '198.51.100.2:8443',
    policy: () => opts.policy ?? 'alert',
    onChange: () => f.changes++,
  });
  /** Moves the clock by whole intervals, letting each exchange finish. */
  const intervals = async (n: number) => {
    for (let i = 0; i < n; i++) {
      clock.advance(watch.intervalMs);
      await settle();
    }
  };
  return { f, watch, intervals };
}

const v = (iface: string, vhid: number, state: VhidStateEntry['state']): VhidStateEntry => ({ interface: iface, vhid, state });
const types = (es: AnyEvent[]) => es.map((e) => e.type);

test('watch: a vhid MASTER on both is detected once, at the next exchange; cleared once when one side leaves, with how long it lasted', async (t) => {
  const { f, watch, intervals } = fakeWatch();
  t.after(() => watch.stop());
  f.mine = [v('em0', 1, 'MASTER'), v('em0', 2, 'MASTER'), v('em1', 3, 'BACKUP')];
  f.theirs = [v('em0', 1, 'MASTER'), v('em0', 2, 'BACKUP'), v('em1', 3, 'MASTER')];
  watch.start();
  f.clock.advance(watch.intervalMs - 1);
  await settle();
  assert.equal(f.asked.length, 0, 'the first exchange is one interval after the start');
  const start = f.clock.now() + 1;
  f.clock.advance(1);
  await settle();
  assert.equal(f.asked.length, 1);
  assert.deepEqual(f.asked[0], { node: 'fw1', at: new Date(start).toISOString(), vhids: f.mine }, 'this node sends its name, when it read its states, and them');
  assert.deepEqual(types(f.published), ['splitbrain.detected']);
  assert.deepEqual(f.published[0].data, { interface: 'em0', vhid: 1, peer: '198.51.100.2:8443', policy: 'alert', since: new Date(start).toISOString() });
  assert.deepEqual(watch.now(), [{ interface: 'em0', vhid: 1, since: new Date(start).toISOString() }]);
  const warn = f.lines.find((l) => l.event === 'splitbrain.detected');
  assert.equal(warn?.level, 40, 'logged at warn');
  assert.match(warn!.msg, /em0 vhid 1 is MASTER on this node and on its peer fw2/);

  await intervals(3);
  assert.equal(f.asked.length, 4);
  assert.deepEqual(types(f.published), ['splitbrain.detected'], 'published once while it lasts');
  assert.equal(f.changes, 1);

  f.theirs = [v('em0', 1, 'BACKUP')];
  await intervals(1);
  assert.deepEqual(types(f.published), ['splitbrain.detected', 'splitbrain.cleared']);
  assert.deepEqual(f.published[1].data, { interface: 'em0', vhid: 1, peer: '198.51.100.2:8443', seconds: (4 * watch.intervalMs) / 1000, since: new Date(start).toISOString() });
  assert.deepEqual(watch.now(), []);
  assert.equal(f.changes, 2);
  await intervals(2);
  assert.equal(f.published.length, 2);
});

test('watch: a vhid gone on one side ends the split; several vhids each have their own events', async (t) => {
  const { f, watch, intervals } = fakeWatch({ policy: 'demote' });
  t.after(() => watch.stop());
  f.mine = [v('em0', 1, 'MASTER'), v('em1', 7, 'MASTER')];
  f.theirs = [v('em0', 1, 'MASTER'), v('em1', 7, 'MASTER')];
  watch.start();
  await intervals(1);
  assert.deepEqual(
    watch.now().map((s) => `${s.interface}/${s.vhid}`),
    ['em0/1', 'em1/7'],
  );
  assert.deepEqual(
    f.published.map((e) => [e.type, (e.data as { vhid: number }).vhid, (e.data as { policy?: string }).policy]),
    [
      ['splitbrain.detected', 1, 'demote'],
      ['splitbrain.detected', 7, 'demote'],
    ],
  );
  f.mine = [v('em0', 1, 'MASTER')]; // em1/7 removed here
  await intervals(1);
  assert.deepEqual(
    watch.now().map((s) => `${s.interface}/${s.vhid}`),
    ['em0/1'],
  );
  assert.deepEqual(types(f.published.slice(2)), ['splitbrain.cleared']);
  assert.equal((f.published[2].data as { vhid: number }).vhid, 7);
});

test('watch: while the peer does not answer nothing is claimed or cleared, however long; its next answer decides', async (t) => {
  const { f, watch, intervals } = fakeWatch();
  t.after(() => watch.stop());
  f.mine = [v('em0', 1, 'MASTER'), v('em0', 2, 'BACKUP')];
  f.theirs = [v('em0', 1, 'MASTER'), v('em0', 2, 'MASTER')];
  watch.start();
  await intervals(1);
  assert.deepEqual(types(f.published), ['splitbrain.detected']);

  // The peer goes silent; meanwhile em0/1 leaves MASTER here and em0/2 becomes MASTER here.
  f.reachable = false;
  f.mine = [v('em0', 1, 'BACKUP'), v('em0', 2, 'MASTER')];
  await intervals(20);
  assert.equal(f.asked.length, 21, 'it keeps asking');
  assert.deepEqual(types(f.published), ['splitbrain.detected'], 'no cleared on what was heard before, no detected either');
  assert.deepEqual(
    watch.now().map((s) => s.vhid),
    [1],
  );
  assert.equal(f.lines.filter((l) => l.event === 'splitbrain.exchange.failed').length, 1, 'the same failure is logged once');

  // Back: its states now decide both ways.
  f.reachable = true;
  await intervals(1);
  assert.deepEqual(types(f.published), ['splitbrain.detected', 'splitbrain.detected', 'splitbrain.cleared']);
  assert.deepEqual(
    watch.now().map((s) => s.vhid),
    [2],
  );
});

test("watch: the peer's own states message decides like an answer, even when this node's requests fail", async (t) => {
  const { f, watch, intervals } = fakeWatch();
  t.after(() => watch.stop());
  f.reachable = false;
  f.mine = [v('em0', 1, 'MASTER')];
  watch.start();
  await intervals(2);
  assert.deepEqual(f.published, []);
  watch.heard({ node: 'fw2', vhids: [v('em0', 1, 'MASTER')] }, f.mine);
  assert.deepEqual(types(f.published), ['splitbrain.detected']);
  watch.heard({ node: 'fw2', vhids: [v('em0', 1, 'MASTER')] }, f.mine);
  assert.equal(f.published.length, 1);
  watch.heard({ node: 'fw2', vhids: [] }, f.mine);
  assert.deepEqual(types(f.published), ['splitbrain.detected', 'splitbrain.cleared']);

  // The two ways cross: a reading the peer took before one already used is dropped.
  watch.heard({ node: 'fw2', at: '2026-01-01T00:01:00.000Z', vhids: [] }, f.mine);
  watch.heard({ node: 'fw2', at: '2026-01-01T00:00:59.000Z', vhids: [v('em0', 1, 'MASTER')] }, f.mine);
  assert.equal(f.published.length, 2, 'the older reading claims nothing');
  watch.heard({ node: 'fw2', at: '2026-01-01T00:01:01.000Z', vhids: [v('em0', 1, 'MASTER')] }, f.mine);
  assert.deepEqual(types(f.published), ['splitbrain.detected', 'splitbrain.cleared', 'splitbrain.detected']);
});

test('watch: the answer is compared with this node\'s states read when it arrives, not with those it sent', async (t) => {
  const { f, watch, intervals } = fakeWatch();
  t.after(() => watch.stop());
  f.theirs = [v('em0', 1, 'MASTER')];
  f.mine = [v('em0', 1, 'MASTER')];
  let reads = 0;
  // This node leaves MASTER while its request is out: the first read (sent) says MASTER, the next BACKUP.
  f.local = () => (++reads === 1 ? [v('em0', 1, 'MASTER')] : [v('em0', 1, 'BACKUP')]);
  watch.start();
  await intervals(1);
  assert.equal(f.asked[0].vhids[0].state, 'MASTER');
  assert.equal(reads, 2);
  assert.deepEqual(f.published, [], 'no split claimed on what this node no longer is');
});

test('watch: an older peer that does not know the message is logged once, claims nothing, and is asked again only after minutes', async (t) => {
  const { f, watch, intervals } = fakeWatch();
  t.after(() => watch.stop());
  f.unsupported = true;
  f.mine = [v('em0', 1, 'MASTER')];
  watch.start();
  await intervals(10);
  assert.equal(f.asked.length, 1);
  assert.deepEqual(f.published, []);
  assert.deepEqual(watch.now(), []);
  const said = f.lines.filter((l) => l.event === 'splitbrain.unsupported');
  assert.equal(said.length, 1);
  assert.equal(said[0].level, 40);
  await intervals(UNSUPPORTED_RETRY_MS / watch.intervalMs);
  assert.equal(f.asked.length, 2, 'asked again after UNSUPPORTED_RETRY_MS');
  assert.equal(f.lines.filter((l) => l.event === 'splitbrain.unsupported').length, 1, 'still logged once');
  // Upgraded: it answers, and the split is seen.
  f.unsupported = false;
  f.theirs = [v('em0', 1, 'MASTER')];
  await intervals(UNSUPPORTED_RETRY_MS / watch.intervalMs);
  assert.deepEqual(types(f.published), ['splitbrain.detected']);
});

test('watch: nothing is asked while inactive (no peer, paused); poke asks at once; stop ends the exchanges', async () => {
  const { f, watch, intervals } = fakeWatch();
  f.active = false;
  watch.start();
  await intervals(3);
  assert.equal(f.asked.length, 0);
  f.active = true;
  watch.poke();
  await settle();
  assert.equal(f.asked.length, 1, 'poke: an exchange without waiting for the interval');
  await watch.stop();
  await intervals(3);
  assert.equal(f.asked.length, 1);
  assert.equal(f.clock.pending, 0, 'no timer left armed');
});

// ---- two sim nodes that sync ---------------------------------------------------------------------

interface Node {
  name: string;
  dir: string;
  h: Harness;
  identity: SyncIdentity;
  sync: SyncManager;
  port: number;
  events: AnyEvent[];
}

/**
 * Two nodes on one in-memory CARP segment (sim backends on one manual clock) that sync over real
 * mutual TLS (the sync managers on the system clock): node-a primary, node-b secondary.
 */
async function simPair(t: test.TestContext) {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  let seed = 7n;
  const random = () => (seed = seed * 6364136223846793005n + 1442695040888963407n);
  const nodes: Node[] = [];
  for (const name of ['node-a', 'node-b']) {
    const dir = mkdtempSync(path.join(tmpdir(), `carpd-splitbrain-${name}-`));
    const backend = await SimBackend.open({ clock, transport: net.endpoint(name), interfaces: ['em0', 'em1'], node: name, random });
    const h = await makeHarness({ dir, clock, backend });
    const identity = await loadOrCreateIdentity(dir, name);
    const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: name, listen: { host: '127.0.0.1', port: 0 }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000 });
    h.attachSync(sync);
    const events: AnyEvent[] = [];
    h.service.events.subscribe((e) => events.push(e));
    const n = { name, dir, h, identity, sync, port: sync.port!, events };
    t.after(async () => {
      await n.sync.close();
      await n.h.close();
      rmSync(dir, { recursive: true, force: true });
    });
    nodes.push(n);
  }
  const [a, b] = nodes;
  const link = async (self: Node, other: Node, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.port, fingerprint: other.identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(b, a, 'secondary', '192.0.2.11/24');
  await link(a, b, 'primary', '192.0.2.10/24');
  return { clock, a, b };
}

const vhidState = async (n: Node) => (await n.h.service.liveVhids()).find((x) => x.interface === 'em0' && x.vhid === 1)?.state;
const ofType = <T extends EventType>(n: Node, type: T): CarpdEvent<T>[] => n.events.filter((e) => e.type === type) as CarpdEvent<T>[];
/** Within 10 s of real time, the split-brain watch's bound; no test asserts how long it took. */
const DETECT_MS = 10_000;

/** The same VIP on both nodes, kept out of sync (nosync) with its own password on each: both become MASTER. */
async function provokeSplit(c: Awaited<ReturnType<typeof simPair>>) {
  const { a, b, clock } = c;
  for (const [n, advskew, password] of [
    [a, 0, 'secret-a'],
    [b, 100, 'secret-b'],
  ] as const) {
    const r = await n.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew, password, nosync: true });
    assert.equal(r.status, 201, r.text);
  }
  clock.advance(5000);
  assert.deepEqual([await vhidState(a), await vhidState(b)], ['MASTER', 'MASTER'], 'each drops the other\'s advertisements (bad HMAC)');
}

/** The same password again: node-b hears node-a's better advertisements and steps down. */
async function healSplit(c: Awaited<ReturnType<typeof simPair>>) {
  const r = await c.b.h.api.patch('/v1/vips/em0/1', { password: 'secret-a' });
  assert.equal(r.status, 200, r.text);
  c.clock.advance(5000);
  assert.deepEqual([await vhidState(c.a), await vhidState(c.b)], ['MASTER', 'BACKUP']);
}

test('sim pair: different CARP passwords make both MASTER: splitbrain.detected on both within 10 s, listed by /v1/sync and /v1/cluster; the same password clears it on both', async (t) => {
  const c = await simPair(t);
  const { a, b } = c;
  await provokeSplit(c);
  for (const n of [a, b]) {
    await pollUntil(`${n.name}: splitbrain.detected`, async () => ofType(n, 'splitbrain.detected').length, (k) => k > 0, DETECT_MS);
  }
  for (const n of [a, b]) {
    const [e] = ofType(n, 'splitbrain.detected');
    assert.deepEqual({ ...e.data, since: typeof e.data.since }, { interface: 'em0', vhid: 1, peer: `127.0.0.1:${(n === a ? b : a).port}`, policy: 'alert', since: 'string' });
    const s = await n.h.api.get('/v1/sync');
    assert.equal(s.status, 200, s.text);
    assert.deepEqual(n.sync.splitBrainNow(), s.body.splitBrain, 'what the metrics read');
    assert.equal(s.body.splitBrainPolicy, 'alert');
    assert.deepEqual(s.body.splitBrain, [{ interface: 'em0', vhid: 1, since: e.data.since }]);
    const cl = await n.h.api.get('/v1/cluster');
    assert.deepEqual(cl.body.splitBrain, s.body.splitBrain, '/v1/cluster says the same');
    const scrape = parsePrometheusText((await n.h.api.get('/metrics', { token: READ_TOKEN })).text);
    assert.equal(sampleValue(scrape, 'carpd_splitbrain', { interface: 'em0', vhid: '1' }), 1, 'the metric');
  }
  // Policy alert: nobody demotes.
  assert.deepEqual([(await a.h.backend.getCarpGlobals()).demotion, (await b.h.backend.getCarpGlobals()).demotion], [0, 0]);

  await healSplit(c);
  for (const n of [a, b]) {
    await pollUntil(`${n.name}: splitbrain.cleared`, async () => ofType(n, 'splitbrain.cleared').length, (k) => k > 0, DETECT_MS);
    const [e] = ofType(n, 'splitbrain.cleared');
    assert.equal(e.data.interface, 'em0');
    assert.equal(e.data.vhid, 1);
    assert.ok(e.data.seconds >= 0);
    assert.deepEqual((await n.h.api.get('/v1/sync')).body.splitBrain, []);
    const scrape = parsePrometheusText((await n.h.api.get('/metrics', { token: READ_TOKEN })).text);
    assert.notEqual(sampleValue(scrape, 'carpd_splitbrain', { interface: 'em0', vhid: '1' }), 1, 'the metric no longer says so');
    assert.equal(ofType(n, 'splitbrain.detected').length, 1, 'detected once');
  }
});

test('sim pair, policy demote: the secondary demotes itself by 240 while the split lasts (a demotion event names splitbrain) and takes it back after; the primary never does', async (t) => {
  const c = await simPair(t);
  const { a, b } = c;
  for (const n of [a, b]) {
    const r = await n.h.api.patch('/v1/sync', { splitBrainPolicy: 'demote' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.splitBrainPolicy, 'demote');
  }
  await provokeSplit(c);
  await pollUntil('node-b demoted', async () => (await b.h.backend.getCarpGlobals()).demotion, (d) => d === 240, DETECT_MS);
  assert.deepEqual([...(await b.h.backend.demotions())], [['splitbrain', 240]]);
  await pollUntil('node-b: a demotion event', async () => ofType(b, 'demotion').length, (k) => k > 0, DETECT_MS);
  const [d] = ofType(b, 'demotion');
  assert.deepEqual(d.data, { total: 240, previous: 0, contributors: [{ name: 'splitbrain', value: 240 }] });
  assert.equal(ofType(a, 'splitbrain.detected').length > 0 || (await pollUntil('node-a detected', async () => ofType(a, 'splitbrain.detected').length, (k) => k > 0, DETECT_MS)) > 0, true);
  assert.equal((await a.h.backend.getCarpGlobals()).demotion, 0, 'the primary does not demote');
  assert.equal(ofType(b, 'splitbrain.detected')[0].data.policy, 'demote');

  await healSplit(c);
  await pollUntil('node-b: demotion taken back', async () => (await b.h.backend.getCarpGlobals()).demotion, (x) => x === 0, DETECT_MS);
  assert.deepEqual([...(await b.h.backend.demotions())], []);
  assert.deepEqual(
    b.events.filter((e) => e.type.startsWith('splitbrain.')).map((e) => e.type),
    ['splitbrain.detected', 'splitbrain.cleared'],
  );
  await pollUntil('node-b: the demotion event back to 0', async () => ofType(b, 'demotion').map((e) => e.data.total), (l) => l.includes(0), DETECT_MS);

  // Demoted again, then the policy set back to alert: taken back at once, though the split lasts.
  await b.h.api.patch('/v1/vips/em0/1', { password: 'secret-b' });
  c.clock.advance(5000);
  await pollUntil('node-b demoted again', async () => (await b.h.backend.getCarpGlobals()).demotion, (x) => x === 240, DETECT_MS);
  assert.equal((await b.h.api.patch('/v1/sync', { splitBrainPolicy: 'alert' })).status, 200);
  await pollUntil('node-b: taken back with the policy', async () => (await b.h.backend.getCarpGlobals()).demotion, (x) => x === 0, DETECT_MS);
  assert.equal(b.sync.splitBrainNow().length, 1, 'the split itself is still there');
  // And back to demote: held again; stopping carpd takes it back.
  assert.equal((await b.h.api.patch('/v1/sync', { splitBrainPolicy: 'demote' })).status, 200);
  await pollUntil('node-b demoted by the policy', async () => (await b.h.backend.getCarpGlobals()).demotion, (x) => x === 240, DETECT_MS);
  await b.sync.close();
  assert.equal((await b.h.backend.getCarpGlobals()).demotion, 0, 'the stop takes it back');
});

test('a peer whose carpd predates the states message refuses it as unknown: logged once, nothing claimed', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-splitbrain-old-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const h = await makeHarness({ backend: new MemoryBackend({ interfaces: ['em0'] }) });
  const identity = await loadOrCreateIdentity(dir, 'fw1');
  const old = await loadOrCreateIdentity(mkdtempSync(path.join(dir, 'old-')), 'fw-old');
  // The listener of an older carpd: its kinds are push, plan and status, and it refuses any
  // other type with the words every version's SYNC_KINDS uses.
  const server = await SyncServer.start({
    identity: old,
    host: '127.0.0.1',
    port: 0,
    pinned: () => [identity.fingerprint],
    schemaVersion: SCHEMA_VERSION,
    kinds: {
      read: (m) => (['push', 'plan', 'status'].includes(m.type) ? { ok: true, message: m } : { ok: false, detail: `unknown sync message type "${m.type}"; this node takes push, plan, status` }),
    },
    handle: async () => ({ status: 200, body: {} }),
  });
  const { logger, lines } = capturingLogger('debug');
  const sync = await SyncManager.start({ service: h.service, identity, logger, node: 'fw1', splitBrainIntervalMs: 50 });
  h.attachSync(sync);
  t.after(async () => {
    await sync.close();
    await server.close();
    await h.close();
  });
  assert.equal((await h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: server.port, fingerprint: old.fingerprint } })).status, 200);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  h.clock.advance(10_000); // MASTER here
  await pollUntil('the refusal heard', async () => lines.filter((l) => l.event === 'splitbrain.unsupported').length, (n) => n === 1);
  assert.match(lines.find((l) => l.event === 'splitbrain.unsupported')!.msg, /does not know the states message \(an older carpd\)/);
  assert.equal(server.rejected().malformed, 1, 'the old peer counted it');
  assert.deepEqual(sync.splitBrainNow(), []);
  assert.deepEqual((await h.api.get('/v1/sync')).body.splitBrain, []);
});

// ---- bad input -----------------------------------------------------------------------------------

test('PATCH /v1/sync: an unknown policy is a 400 problem; demote where the backend has no named demotions is 422 CARPD_ERR_UNSUPPORTED; nothing stored', async (t) => {
  class NoNamedDemotions extends MemoryBackend {
    override async demotions(): Promise<Map<string, number>> {
      throw KernelError.of('EOPNOTSUPP', 'read the named demotions', undefined, 'not supported by this backend');
    }
  }
  for (const backend of [new MemoryBackend({ interfaces: ['em0'] }), new NoNamedDemotions({ interfaces: ['em0'] })]) {
    const dir = mkdtempSync(path.join(tmpdir(), 'carpd-splitbrain-bad-'));
    const h = await makeHarness({ dir, backend });
    const identity = await loadOrCreateIdentity(dir, 'fw1');
    const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: 'fw1' });
    h.attachSync(sync);
    t.after(async () => {
      await sync.close();
      await h.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const before = storedBytes(dir);
    const revision = h.service.desired().revision;
    for (const bad of ['panic', 'Demote', '', 1, null, true]) {
      const r = await h.api.patch('/v1/sync', { splitBrainPolicy: bad });
      assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
      assert.match(r.headers['content-type'], /application\/problem\+json/);
      assert.equal(r.body.code, 'CARPD_ERR_VALIDATION');
    }
    const demote = await h.api.patch('/v1/sync', { splitBrainPolicy: 'demote' });
    if (backend instanceof NoNamedDemotions) {
      assert.equal(demote.status, 422, demote.text);
      assert.equal(demote.body.code, 'CARPD_ERR_UNSUPPORTED');
      assert.match(demote.body.detail, /not supported/);
      assert.equal(h.service.desired().revision, revision);
      assert.deepEqual(storedBytes(dir), before, 'nothing stored');
      assert.equal((await h.api.get('/v1/sync')).body.splitBrainPolicy, 'alert');
    } else {
      assert.equal(demote.status, 200, demote.text);
      assert.equal(demote.body.splitBrainPolicy, 'demote');
      assert.equal(h.service.desired().sync.splitBrainPolicy, 'demote');
    }
  }
});

test('the policy is stored with the node\'s sync section: a restart keeps it; alert is stored as no field', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-splitbrain-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let h = await makeHarness({ dir, backend: new MemoryBackend({ interfaces: ['em0'] }) });
  const identity = await loadOrCreateIdentity(dir, 'fw1');
  let sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: 'fw1' });
  h.attachSync(sync);
  assert.equal((await h.api.patch('/v1/sync', { splitBrainPolicy: 'demote' })).status, 200);
  await sync.close();
  await h.close();

  h = await makeHarness({ dir, backend: new MemoryBackend({ interfaces: ['em0'] }) });
  sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: 'fw1' });
  h.attachSync(sync);
  t.after(async () => {
    await sync.close();
    await h.close();
  });
  assert.equal(h.service.desired().sync.splitBrainPolicy, 'demote');
  assert.equal((await h.api.get('/v1/sync')).body.splitBrainPolicy, 'demote');
  assert.equal((await h.api.patch('/v1/sync', { splitBrainPolicy: 'alert' })).status, 200);
  assert.equal('splitBrainPolicy' in h.service.desired().sync, false);
  assert.equal((await h.api.get('/v1/sync')).body.splitBrainPolicy, 'alert');
});
