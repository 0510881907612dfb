/**
 * The orchestrated switchover (src/sync/switchover.ts, POST /v1/cluster/switchover, /v1/jobs).
 *
 * Two in-process sim nodes on one in-memory CARP segment (real time, advbase 1 s) that sync over
 * real mutual TLS: node-a primary (advskew 0, MASTER), node-b secondary (advskew 100 by the
 * sync rule). In order:
 *  - bad bodies and an unknown job: 4xx problems, nothing started;
 *  - dryRun: 200 with every check and the plan; nothing changed, no job kept;
 *  - the peer in maintenance: the job fails naming taker.maintenance, nothing changed;
 *  - the switchover: node-b MASTER and node-a BACKUP of the vhid, a handover time for it, the
 *    switchover demotion held on node-a, every step an event; then `back`: node-a MASTER again;
 *  - a peer that cannot take over (its advskew 240 ties with node-a's demoted skew): the job is
 *    rolled back naming the vhid; a second switchover meanwhile is 409 RUNNING.
 * And a node without a sync peer (or without sync at all): 409 CARPD_ERR_SWITCHOVER_STANDALONE.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { run } from '../src/cli/run.js';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import type { AnyEvent } from '../src/service/events.js';
import { loadOrCreateIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { ADMIN_TOKEN, makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { startSyncNodeInProcess } from './helpers/sync-inprocess.js';

interface Node {
  name: string;
  h: Harness;
  sync: SyncManager;
  port: number;
  events: AnyEvent[];
}

async function simPair(t: test.TestContext) {
  const net = new MemoryNetwork();
  const nodes: Node[] = [];
  for (const name of ['node-a', 'node-b']) {
    const dir = mkdtempSync(path.join(tmpdir(), `carpd-switchover-${name}-`));
    const backend = await SimBackend.open({ transport: net.endpoint(name), interfaces: ['em0', 'em1'], node: name });
    const h = await makeHarness({ dir, backend });
    const identity = await loadOrCreateIdentity(dir, name);
    const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: name, listen: { host: '127.0.0.1', port: 0 }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000 });
    h.attachSync(sync);
    const events: AnyEvent[] = [];
    h.service.events.subscribe((e) => events.push(e));
    const n: Node = { name, h, sync, port: sync.port!, events };
    t.after(async () => {
      await n.sync.close();
      await n.h.close();
      rmSync(dir, { recursive: true, force: true });
    });
    nodes.push(n);
  }
  const [a, b] = nodes;
  const link = async (self: Node, other: Node, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.port, fingerprint: other.sync.status().identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(b, a, 'secondary', '192.0.2.11/24');
  await link(a, b, 'primary', '192.0.2.10/24');
  return { a, b };
}

/** carpctl against a node's API over HTTP. */
async function carpctlFor(t: test.TestContext, n: Node) {
  const server = createServer((req, res) => n.h.app(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: ADMIN_TOKEN } });
    return { code, stdout, stderr };
  };
}

const stateOf = async (n: Node) => (await n.h.service.liveVhids()).find((x) => x.interface === 'em0' && x.vhid === 1)?.state;
const held = async (n: Node) => (await n.h.service.demotions()).get('switchover') ?? 0;
const inSync = (a: Node) => pollUntil('the secondary applied the newest revision', async () => (await a.h.api.get('/v1/sync')).body, (s) => s.lag.revisions === 0 && s.pending === false, 10_000);
const roles = async (a: Node, b: Node) => [await stateOf(a), await stateOf(b)];

test('sim pair: dry run, a peer in maintenance, the switchover with a handover time per vhid, back, and a rollback naming the vhid', async (t) => {
  const { a, b } = await simPair(t);
  const vip = await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, password: 'secret' });
  assert.equal(vip.status, 201, vip.text);
  await inSync(a);
  await pollUntil('node-a MASTER, node-b BACKUP', () => roles(a, b), (r) => r[0] === 'MASTER' && r[1] === 'BACKUP', 15_000);

  // Bad bodies and an unknown job: 4xx, nothing started.
  for (const body of [{ marginMs: -1 }, { marginMs: 600_000 }, { to: 5 }, { back: 'yes' }, { dryRun: 1 }, { bogus: true }, { to: '' }, []]) {
    const r = await a.h.api.post('/v1/cluster/switchover', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.code, 'CARPD_ERR_VALIDATION');
  }
  const forbidden = await a.h.api.post('/v1/cluster/switchover', {}, { token: READ_TOKEN });
  assert.equal(forbidden.status, 403);
  const unknown = await a.h.api.get('/v1/jobs/no-such-job');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'CARPD_ERR_JOB_NOT_FOUND');
  assert.deepEqual((await a.h.api.get('/v1/jobs')).body, { jobs: [] });

  // Dry run: every check, the plan, nothing changed, nothing kept.
  const dry = await a.h.api.post('/v1/cluster/switchover', { dryRun: true });
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.body.state, 'succeeded', JSON.stringify(dry.body.checks));
  assert.equal(dry.body.dryRun, true);
  assert.equal(dry.body.to, 'node-b');
  const checks = Object.fromEntries(dry.body.checks.map((c: { name: string; status: string; evidence: string }) => [c.name, c]));
  for (const name of ['peer.reachable', 'taker.maintenance', 'taker.carp', 'taker.demotion', 'taker.tracks', 'sync.lag', 'splitbrain', 'vhids']) assert.equal(checks[name]?.status, 'pass', `${name}: ${JSON.stringify(checks[name])}`);
  assert.deepEqual(checks['pf.states'], { name: 'pf.states', status: 'skipped', evidence: 'no pf on this backend' });
  assert.match(checks['taker.tracks'].evidence, /not reported/);
  assert.ok(dry.body.plan.length > 0);
  assert.deepEqual(dry.body.vhids.map((v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`), ['em0/1']);
  assert.deepEqual(await roles(a, b), ['MASTER', 'BACKUP']);
  assert.equal(await held(a), 0);
  assert.deepEqual((await a.h.api.get('/v1/jobs')).body, { jobs: [] }, 'a dry run keeps no job');
  assert.equal(a.events.filter((e) => e.type.startsWith('switchover.')).length, 0, 'and publishes nothing');

  const wrong = await a.h.api.post('/v1/cluster/switchover', { dryRun: true, to: 'node-x' });
  assert.equal(wrong.body.state, 'failed');
  assert.match(wrong.body.checks.find((c: { name: string }) => c.name === 'peer.name').evidence, /the sync peer is node-b, not node-x/);

  // The peer in maintenance: refused, the failing check named, nothing changed.
  assert.equal((await b.h.api.put('/v1/carp/maintenance', { enabled: true })).status, 200);
  const refused = await a.h.api.post('/v1/cluster/switchover?wait=true', {});
  assert.equal(refused.status, 200, refused.text);
  assert.equal(refused.body.state, 'failed');
  assert.match(refused.body.result.reason, /taker\.maintenance/);
  const m = refused.body.checks.find((c: { name: string }) => c.name === 'taker.maintenance');
  assert.equal(m.status, 'fail');
  assert.match(m.evidence, /node-b\) is in maintenance/);
  assert.equal(refused.body.steps.find((s: { name: string }) => s.name === 'demote').status, 'skipped');
  assert.equal(await held(a), 0);
  assert.deepEqual(await roles(a, b), ['MASTER', 'BACKUP']);
  assert.equal((await b.h.api.put('/v1/carp/maintenance', { enabled: false })).status, 200);

  // The switchover: node-b takes over, with a handover time; node-a holds the demotion.
  const ok = await a.h.api.post('/v1/cluster/switchover?wait=true', { to: 'node-b' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.state, 'succeeded', JSON.stringify(ok.body));
  assert.equal(ok.body.vhids.length, 1);
  const [moved] = ok.body.vhids;
  assert.equal(moved.status, 'moved');
  assert.equal(typeof moved.handoverMs, 'number');
  assert.ok(moved.handoverMs <= moved.deadlineMs);
  t.diagnostic(`handover of em0 vhid 1: ${moved.handoverMs} ms`);
  assert.deepEqual(await roles(a, b), ['BACKUP', 'MASTER']);
  assert.equal(await held(a), 240);
  const types = a.events.filter((e) => e.type.startsWith('switchover.') && (e.data as { job: string }).job === ok.body.id).map((e) => e.type);
  assert.equal(types[0], 'switchover.started');
  assert.equal(types.at(-1), 'switchover.finished');
  assert.ok(types.filter((x) => x === 'switchover.step').length >= ok.body.checks.length + 2, 'every check and step an event');
  const listed = await a.h.api.get(`/v1/jobs/${ok.body.id}`);
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body, ok.body);
  // Not while it holds the demotion: it was switched away.
  const again = await a.h.api.post('/v1/cluster/switchover', { dryRun: true });
  assert.equal(again.body.checks.find((c: { name: string }) => c.name === 'local.switchover').status, 'fail');

  // Back: node-a MASTER again, the demotion taken back.
  const back = await a.h.api.post('/v1/cluster/switchover?wait=true', { back: true });
  assert.equal(back.status, 200, back.text);
  assert.equal(back.body.state, 'succeeded', JSON.stringify(back.body));
  assert.equal(back.body.vhids[0].status, 'moved');
  assert.deepEqual([back.body.from, back.body.to, back.body.back], ['node-a', 'node-a', true]);
  assert.deepEqual(await roles(a, b), ['MASTER', 'BACKUP']);
  assert.equal(await held(a), 0);

  // carpctl: the checks and steps line by line; exit 0 on success, 1 on a failed check; job show.
  const carpctl = await carpctlFor(t, a);
  let c = await carpctl('switchover', '--dry-run');
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^check ok   peer\.reachable: node-b answered over the sync link in \d+ ms$/m);
  assert.match(c.stdout, /^check skip pf\.states: no pf on this backend$/m);
  assert.match(c.stdout, /^dry run: every check passed/m);
  c = await carpctl('switchover', '--to', 'node-x');
  assert.equal(c.code, 1);
  assert.match(c.stdout, /^check FAIL peer\.name: the sync peer is node-b, not node-x/m);
  assert.match(c.stdout, /: failed — a check failed: peer\.name/);
  c = await carpctl('switchover');
  assert.equal(c.code, 0, c.stdout + c.stderr);
  assert.match(c.stdout, /^demote done: this node is demoted by 240/m);
  assert.match(c.stdout, /^  em0 vhid 1 moved in \d+ ms$/m);
  assert.match(c.stdout, /: succeeded — node-b is MASTER of 1 vhid/);
  assert.deepEqual(await roles(a, b), ['BACKUP', 'MASTER']);
  c = await carpctl('switchover', '--back');
  assert.equal(c.code, 0, c.stdout + c.stderr);
  assert.deepEqual(await roles(a, b), ['MASTER', 'BACKUP']);
  const id = /^switchover (\S+): succeeded/m.exec(c.stdout)![1];
  c = await carpctl('job', 'show', id);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, new RegExp(`^job ${id} \\(switchover, back\\) succeeded`, 'm'));
  c = await carpctl('job', 'show', 'nope');
  assert.equal(c.code, 1);
  assert.match(c.stderr, /CARPD_ERR_JOB_NOT_FOUND/);

  // A peer that cannot take over: node-b's advskew 240 ties with node-a's demoted skew (240).
  assert.equal((await a.h.api.patch('/v1/vips/em0/1', { advskew: 140 })).status, 200);
  await inSync(a);
  await pollUntil("node-b's advskew 240", async () => (await b.h.service.liveVhids())[0]?.advskew, (s) => s === 240, 10_000);
  const started = await a.h.api.post('/v1/cluster/switchover', { marginMs: 0 });
  assert.equal(started.status, 202, started.text);
  assert.equal(started.headers.location, `/v1/jobs/${started.body.id}`);
  assert.equal(started.body.state, 'running');
  const busy = await a.h.api.post('/v1/cluster/switchover', {});
  assert.equal(busy.status, 409);
  assert.equal(busy.body.code, 'CARPD_ERR_SWITCHOVER_RUNNING');
  const done = await pollUntil('the job ended', async () => (await a.h.api.get(started.headers.location)).body, (j) => j.state !== 'running', 15_000);
  assert.equal(done.state, 'rolled-back', JSON.stringify(done));
  assert.match(done.result.reason, /em0 vhid 1/);
  assert.equal(done.vhids[0].status, 'stuck');
  assert.match(done.vhids[0].detail, /this node has it MASTER and the peer BACKUP/);
  assert.equal(done.steps.find((s: { name: string }) => s.name === 'rollback').status, 'done');
  assert.equal(await held(a), 0);
  assert.equal(await stateOf(a), 'MASTER');
  const jobs = (await a.h.api.get('/v1/jobs', { token: READ_TOKEN })).body.jobs;
  assert.deepEqual(jobs.map((j: { id: string }) => j.id).slice(0, 2), [done.id, id], 'newest first');
});

test('a node without a sync peer, or without config sync: 409 CARPD_ERR_SWITCHOVER_STANDALONE, nothing started', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  for (const r of [await h.api.post('/v1/cluster/switchover', {}), await h.api.post('/v1/cluster/switchover?wait=true')]) {
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.code, 'CARPD_ERR_SWITCHOVER_STANDALONE');
  }
  const n = await startSyncNodeInProcess('lonely', 'carpd-switchover');
  t.after(() => n.stop());
  for (const body of [{}, { dryRun: true }, { back: true }]) {
    const s = await n.h.api.post('/v1/cluster/switchover', body);
    assert.equal(s.status, 409, s.text);
    assert.equal(s.body.code, 'CARPD_ERR_SWITCHOVER_STANDALONE');
  }
  assert.deepEqual((await n.h.api.get('/v1/jobs')).body, { jobs: [] });
});

test('health sources: the peer reports its tracks down and pf status when it has them; absent is "not reported"; pf states compared within a tolerance', async (t) => {
  const a = await startSyncNodeInProcess('node-a', 'carpd-switchover');
  t.after(() => a.stop());
  const b = await startSyncNodeInProcess('node-b', 'carpd-switchover');
  t.after(() => b.stop());
  assert.equal((await b.h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: a.syncPort, fingerprint: a.identity.fingerprint } })).status, 200);
  assert.equal((await a.h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: b.syncPort, fingerprint: b.identity.fingerprint } })).status, 200);

  const plain = await a.sync.peerHealth();
  assert.equal(plain.node, 'node-b');
  assert.equal('tracksDown' in plain, false);
  assert.equal('pf' in plain, false);
  const check = async (name: string) => {
    const r = await a.h.api.post('/v1/cluster/switchover', { dryRun: true });
    assert.equal(r.status, 200, r.text);
    return r.body.checks.find((c: { name: string }) => c.name === name) as { status: string; evidence: string };
  };
  assert.deepEqual(await check('pf.states'), { name: 'pf.states', status: 'skipped', evidence: 'no pf on this backend' });

  a.sync.setHealthSources({ pfStatus: () => ({ stateCount: 1000, bulkUpdateDone: true }) });
  assert.match((await check('pf.states')).evidence, /not reported: the peer \(node-b\) did not send its pf status/);

  b.sync.setHealthSources({ pfStatus: async () => ({ stateCount: 1500, bulkUpdateDone: true }), tracksDown: () => ['wan-gw'] });
  const health = await a.sync.peerHealth();
  assert.deepEqual([health.tracksDown, health.pf], [['wan-gw'], { stateCount: 1500, bulkUpdateDone: true }]);
  const pf = await check('pf.states');
  assert.equal(pf.status, 'fail');
  assert.match(pf.evidence, /the peer has 1500 states, the other node 1000 \(difference 500, tolerance 100\)/);
  const tracks = await check('taker.tracks');
  assert.equal(tracks.status, 'fail');
  assert.match(tracks.evidence, /wan-gw/);

  b.sync.setHealthSources({ pfStatus: () => ({ stateCount: 1050, bulkUpdateDone: false }), tracksDown: () => [] });
  assert.match((await check('pf.states')).evidence, /bulk update has not completed on the peer/);
  b.sync.setHealthSources({ pfStatus: () => ({ stateCount: 1050, bulkUpdateDone: true }), tracksDown: () => [] });
  assert.equal((await check('pf.states')).status, 'pass');
  assert.deepEqual(await check('taker.tracks'), { name: 'taker.tracks', status: 'pass', evidence: 'no health track is down on the peer (node-b)' });

  // A vhid MASTER on both, read on both at the check: split brain, named.
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.70/24'] })).status, 201);
  await pollUntil('node-b has the VIP', async () => (await b.h.service.liveVhids()).length, (k) => k === 1, 10_000);
  await a.h.backend.forceState('em0', 7, 'MASTER');
  await b.h.backend.forceState('em0', 7, 'MASTER');
  const split = await check('splitbrain');
  assert.equal(split.status, 'fail');
  assert.match(split.evidence, /split brain: em0 vhid 7 MASTER on both nodes/);
  await b.h.backend.forceState('em0', 7, 'BACKUP');
  assert.equal((await check('splitbrain')).status, 'pass', 'a fresh reading, not the watch\'s last one');
  assert.deepEqual(a.sync.splitBrainNow(), [], 'and the watch was told');
});
