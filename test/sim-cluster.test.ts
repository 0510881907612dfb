/**
 * Sim clusters: several sim backends on one in-memory segment with a manual clock really elect
 * a master, fail over, bow out and preempt — every time in this file is simulated and exact.
 * The last test does the same with two real carpd processes on the UDP loopback segment, where
 * only the outcome is checked, never how long it took.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { CarpState, StateChange, VhidParams } from '../src/kernel/backend.js';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork, type MemoryTransport } from '../src/runtime/transport.js';
import { ManualClock } from './helpers/harness.js';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { pollUntil } from './helpers/poll.js';

interface Node {
  name: string;
  backend: SimBackend;
  transport: MemoryTransport;
  changes: StateChange[];
}

async function cluster(t: { after(fn: () => unknown): void }, names: string[], opts: { preempt?: boolean } = {}) {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  let seed = 1n;
  const nodes: Node[] = [];
  for (const name of names) {
    const transport = net.endpoint(name);
    const backend = await SimBackend.open({ clock, transport, interfaces: ['em0', 'em1'], node: name, random: () => (seed = seed * 6364136223846793005n + 1442695040888963407n) });
    const changes: StateChange[] = [];
    backend.onStateChange((c) => changes.push(c));
    await backend.setCarpGlobals({ allow: true, preempt: opts.preempt ?? false });
    t.after(() => backend.close());
    nodes.push({ name, backend, transport, changes });
  }
  const start = clock.now();
  return {
    clock,
    nodes,
    /** Simulated ms since the cluster was made. */
    elapsed: () => clock.now() - start,
    advance: (ms: number) => clock.advance(ms),
    async vip(n: Node, params: Partial<VhidParams> & { advskew: number }, iface = 'em0', vhid = 1) {
      await n.backend.setVhid(iface, vhid, { advbaseSec: 1, key: 'secret', ...params });
      await n.backend.addAddress(iface, vhid, '192.0.2.10/24');
    },
    async states(iface = 'em0', vhid = 1): Promise<CarpState[]> {
      return Promise.all(nodes.map(async (n) => (await n.backend.listVhids()).find((v) => v.interface === iface && v.vhid === vhid)?.state ?? 'INIT'));
    },
    /** Lost on the segment from now on, without a word: a crash or a pulled cable. */
    kill(n: Node) {
      n.transport.partitioned = true;
    },
  };
}

const live = async (n: Node, iface = 'em0', vhid = 1) => (await n.backend.listVhids()).find((v) => v.interface === iface && v.vhid === vhid)!;

test('two nodes: the smaller skew wins the election and only the master holds the VIP', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(b, { advskew: 100 });
  await c.vip(a, { advskew: 0 });
  c.advance(2999);
  assert.deepEqual(await c.states(), ['BACKUP', 'BACKUP']);
  c.advance(1);
  // a's master-down (3 s) ends before b's (3 + 100/256 s); its first advertisement resets b's.
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  c.advance(30_000);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  assert.deepEqual(a.backend.installedVips(), [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] }]);
  assert.deepEqual(b.backend.installedVips(), []);
  assert.match((await live(a)).reason, /master-down timer expired/);
  assert.deepEqual(b.changes.map((x) => x.state), ['BACKUP']);
  const [sa, sb] = [(await a.backend.stats()).carp, (await b.backend.stats()).carp];
  assert.ok(sa.opackets >= 30 && sb.ipackets >= 30 && sb.opackets === 0, JSON.stringify({ sa, sb }));
  assert.equal(sa.badauth + sb.badauth, 0);
});

test('the same vhid on two interfaces is two separate elections', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0 }, 'em0');
  await c.vip(b, { advskew: 100 }, 'em0');
  await a.backend.setVhid('em1', 1, { advbaseSec: 1, advskew: 100, key: 'secret' });
  await a.backend.addAddress('em1', 1, '198.51.100.10/24');
  await b.backend.setVhid('em1', 1, { advbaseSec: 1, advskew: 0, key: 'secret' });
  await b.backend.addAddress('em1', 1, '198.51.100.10/24');
  c.advance(10_000);
  assert.deepEqual(await c.states('em0'), ['MASTER', 'BACKUP']);
  assert.deepEqual(await c.states('em1'), ['BACKUP', 'MASTER']);
});

test('master death: the backup takes over exactly one master-down interval after the last advertisement', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0 });
  await c.vip(b, { advskew: 100 });
  c.advance(3000); // a is MASTER at 3000 and advertises at 3000, 4000, ...
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  c.advance(5500); // last advertisement heard by b: 8000
  c.kill(a);
  const lastHeard = c.clock.now() - 500;
  c.advance(2890); // 8000 + 3390.625 is not reached yet
  assert.equal((await live(b)).state, 'BACKUP');
  c.advance(10);
  const v = await live(b);
  assert.equal(v.state, 'MASTER');
  assert.match(v.reason, /master-down timer expired: no advertisement for 3\.391 s/);
  const takeover = b.changes.at(-1)!;
  assert.equal(takeover.previous, 'BACKUP');
  assert.ok(Math.abs(takeover.at.getTime() - (lastHeard + 3390.625)) < 1, `took over at +${takeover.at.getTime() - lastHeard} ms`);
  assert.deepEqual(b.backend.installedVips().map((x) => x.vhid), [1]);
});

test('three nodes: the next best backup takes over from a dead master; the third stays BACKUP', async (t) => {
  const c = await cluster(t, ['a', 'b', 'c']);
  const [a, b, n3] = c.nodes;
  await c.vip(n3, { advskew: 100 });
  await c.vip(b, { advskew: 50 });
  await c.vip(a, { advskew: 0 });
  c.advance(10_000);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP', 'BACKUP']);
  c.kill(a);
  c.advance(3500);
  // b's master-down (3 + 50/256 s) ends first; its advertisement resets c's.
  assert.deepEqual((await c.states()).slice(1), ['MASTER', 'BACKUP']);
  c.advance(30_000);
  assert.deepEqual((await c.states()).slice(1), ['MASTER', 'BACKUP']);
  assert.match((await live(b)).reason, /master-down/);
});

test('graceful leave: a closing master bows out and the backup takes over at once', async (t) => {
  const c = await cluster(t, ['a', 'b', 'c']);
  const [a, b, n3] = c.nodes;
  await c.vip(a, { advskew: 0 });
  await c.vip(b, { advskew: 100 });
  await c.vip(n3, { advskew: 200 });
  c.advance(10_500);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP', 'BACKUP']);
  const before = c.clock.now();
  await a.backend.close();
  c.advance(0);
  assert.equal(c.clock.now(), before);
  // Both backups take over on the bow-out; the next advertisement settles it (b's skew is smaller).
  const vb = await live(b);
  assert.equal(vb.state, 'MASTER');
  assert.match(vb.reason, /bow-out from a/);
  c.advance(5000);
  assert.deepEqual((await c.states()).slice(1), ['MASTER', 'BACKUP']);
  assert.equal((await live(a)).state, 'INIT');
});

test('removing the master\'s VIP bows out too: the peer takes over without waiting', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0 });
  await c.vip(b, { advskew: 100 });
  c.advance(5000);
  await a.backend.removeVhid('em0', 1);
  c.advance(0);
  assert.equal((await live(b)).state, 'MASTER');
  assert.deepEqual(await a.backend.listVhids(), []);
});

test('wrong password on one side: advertisements are counted as badauth and both become MASTER', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0, key: 'secret' });
  await c.vip(b, { advskew: 100, key: 'not-the-secret' });
  c.advance(10_000);
  assert.deepEqual(await c.states(), ['MASTER', 'MASTER']);
  const [sa, sb] = [(await a.backend.stats()).carp, (await b.backend.stats()).carp];
  assert.ok(sa.badauth > 0 && sb.badauth > 0, JSON.stringify({ sa, sb }));
  assert.equal(sa.badauth, sa.ipackets);
  assert.equal(sb.badauth, sb.ipackets);
  assert.match((await live(b)).reason, /master-down/);
});

test('maintenance on the master: the peer with preempt takes over at once, and gives back after', async (t) => {
  const c = await cluster(t, ['a', 'b'], { preempt: true });
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0 });
  await c.vip(b, { advskew: 100 });
  c.advance(5000);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  await a.backend.setMaintenance(true);
  c.advance(0);
  // a advertised at once with skew 240; b (100) preempted, and a yielded to b's advertisement.
  assert.deepEqual(await c.states(), ['BACKUP', 'MASTER']);
  assert.match((await live(b)).reason, /preempting a slower master: a/);
  assert.match((await live(a)).reason, /more frequent advertisement from b/);
  assert.equal((await b.backend.stats()).carp.preempt, 1);
  c.advance(10_000);
  assert.deepEqual(await c.states(), ['BACKUP', 'MASTER']);
  await a.backend.setMaintenance(false);
  c.advance(1500); // b's next advertisement (skew 100) is slower than a's 0: a preempts
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
});

test('without preempt a better node that comes later stays BACKUP', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(b, { advskew: 100 });
  c.advance(5000);
  await c.vip(a, { advskew: 0 });
  c.advance(20_000);
  assert.deepEqual(await c.states(), ['BACKUP', 'MASTER']);
});

// --- two real carpd processes on the UDP loopback segment -------------------------------------

async function vhidState(d: RunningDaemon, token: string): Promise<{ state: string; reason: string } | undefined> {
  const r = await call(d.port, 'GET', '/v1/status', { token });
  assert.equal(r.status, 200, r.text);
  const v = (r.body.vhids as { interface: string; vhid: number; state: string; reason: string }[]).find((x) => x.interface === 'em0' && x.vhid === 1);
  return v && { state: v.state, reason: v.reason };
}

test('two carpd processes (--backend sim) elect a master over UDP on loopback and fail over when it is killed', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-sim-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const group = `239.255.0.112:${20000 + Math.floor(Math.random() * 40000)}`;
  const start = (name: string) =>
    startDaemon(t, ['--listen', '127.0.0.1:0', '--state-dir', path.join(root, name), '--backend', 'sim', '--sim-group', group, '--node-name', name]);
  const [a, b] = await Promise.all([start('node-a'), start('node-b')]);
  const token = (name: string) => readFileSync(path.join(root, name, 'admin.token'), 'utf8').trim();
  const nodes = [
    { name: 'node-a', d: a, token: token('node-a') },
    { name: 'node-b', d: b, token: token('node-b') },
  ];
  await Promise.all(
    nodes.map(async (n, i) => {
      const r = await call(n.d.port, 'POST', '/v1/vips', { token: n.token, body: { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], password: 'sim-secret', advskew: i === 0 ? 0 : 100 } });
      assert.equal(r.status, 201, r.text);
    }),
  );
  const both = () => Promise.all(nodes.map((n) => vhidState(n.d, n.token)));
  const elected = await pollUntil('election', both, (s) => s.map((x) => x?.state).sort().join() === 'BACKUP,MASTER');
  const m = elected.findIndex((x) => x?.state === 'MASTER');
  const master = nodes[m];
  const backup = nodes[1 - m];
  master.d.kill('SIGKILL');
  await master.d.exited;
  const after = await pollUntil('takeover', () => vhidState(backup.d, backup.token), (s) => s?.state === 'MASTER');
  assert.match(after!.reason, /master-down timer expired/);
  const stats = await call(backup.d.port, 'GET', '/v1/stats', { token: backup.token });
  assert.equal(stats.status, 200);
  assert.ok(stats.body.carp.ipackets > 0, JSON.stringify(stats.body.carp));
  assert.equal(stats.body.carp.badauth, 0);
});

// --- VRRPv3 vhids on the same segment ----------------------------------------------------------

test('VRRPv3: the higher priority wins; master death hands over after 3 × interval + Skew_Time; a bow-out after Skew_Time', async (t) => {
  const c = await cluster(t, ['a', 'b'], { preempt: true });
  const [a, b] = c.nodes;
  const vrrp = (n: Node, vrrpPriority: number) => c.vip(n, { advskew: 0, key: undefined, protocol: 'vrrpv3', vrrpPriority, vrrpIntervalCs: 100 });
  await vrrp(a, 200);
  await vrrp(b, 100);
  // a's master-down: 3 s + (256 − 200)/256 s = 3.21875 s; b's: 3.609375 s.
  c.advance(3218);
  assert.deepEqual(await c.states(), ['BACKUP', 'BACKUP']);
  c.advance(1);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  assert.equal((await live(a)).protocol, 'vrrpv3');
  assert.equal((await live(a)).vrrpPriority, 200);
  c.advance(20_000);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  assert.deepEqual(a.backend.installedVips(), [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] }]);
  const [sa, sb] = [(await a.backend.stats()).carp, (await b.backend.stats()).carp];
  assert.ok(sa.opackets >= 20 && sb.ipackets >= 20, JSON.stringify({ sa, sb }));
  assert.equal(sb.badsum + sb.badver + sb.badvhid, 0, JSON.stringify(sb));

  // Silence after a's advertisement at t: b takes over at t + 3.609375 s.
  const lastAdvert = c.clock.now() - ((c.clock.now() - 3219) % 1000);
  c.kill(a);
  c.advance(lastAdvert + 3609 - c.clock.now());
  assert.equal((await live(b)).state, 'BACKUP');
  c.advance(1);
  assert.equal((await live(b)).state, 'MASTER');
  assert.match((await live(b)).reason, /master-down/);
});

test('VRRPv3: a leaving master sends priority 0 and the backup takes over after Skew_Time', async (t) => {
  const c = await cluster(t, ['a', 'b'], { preempt: true });
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0, key: undefined, protocol: 'vrrpv3', vrrpPriority: 200 });
  await c.vip(b, { advskew: 0, key: undefined, protocol: 'vrrpv3', vrrpPriority: 100 });
  c.advance(10_000);
  assert.deepEqual(await c.states(), ['MASTER', 'BACKUP']);
  await a.backend.removeVhid('em0', 1);
  // Skew_Time of priority 100 at 1 s: (256 − 100)/256 s = 609.375 ms.
  c.advance(609);
  assert.equal((await live(b)).state, 'BACKUP');
  c.advance(1);
  assert.equal((await live(b)).state, 'MASTER');
  assert.match((await live(b)).reason, /priority 0|resign/i);
});

test('VRRPv3 and CARP on one segment do not mistake each other: CARP packets for a VRRPv3 vhid are dropped', async (t) => {
  const c = await cluster(t, ['a', 'b']);
  const [a, b] = c.nodes;
  await c.vip(a, { advskew: 0, key: undefined, protocol: 'vrrpv3', vrrpPriority: 100 });
  await c.vip(b, { advskew: 0 });
  c.advance(10_000);
  assert.deepEqual(await c.states(), ['MASTER', 'MASTER']);
  const [sa, sb] = [(await a.backend.stats()).carp, (await b.backend.stats()).carp];
  // carpstats' ipackets counts every packet received, refused ones included: all were refused.
  assert.ok(sa.ipackets > 0 && sb.ipackets > 0, JSON.stringify({ sa, sb }));
  assert.equal(sa.badver, sa.ipackets, 'a (VRRPv3) refuses the CARP version');
  assert.equal(sb.badlen, sb.ipackets, 'b (CARP) refuses a 12-byte VRRP message as too short');
});
