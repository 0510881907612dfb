/**
 * Two carpd processes with `--backend linux` in two network namespaces joined by a bridge,
 * with a third namespace as a client on the same LAN. Every check reads the kernel's own view
 * (`ip addr`, `ip neigh`), never carpd's word for it:
 *
 *   - election: exactly one node holds the VIP on lan0, the other none;
 *   - kill -9 of the master: the backup installs the VIP and the client resolves it to the
 *     backup's MAC (the gratuitous ARP, or an ARP reply from the backup);
 *   - the old master returns: it preempts (net.inet.carp.preempt on) or stays BACKUP (off), and
 *     the address it left installed when it was killed is removed from its interface;
 *   - graceful stop (SIGTERM) of the master: the VIP leaves its interface and the peer takes over.
 *
 * Only outcomes are asserted, never how long they took (bench/failover.bench.ts measures that).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holdsAddress, setUpLan, startLinuxNode, type LinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable();
const VIP = '192.0.2.50';

function startNode(t: test.TestContext, lan: Lan, root: string, i: number): Promise<LinuxNode> {
  return startLinuxNode(t, lan, root, i, { name: `node${i + 1}` });
}

async function vipHolders(lan: Lan): Promise<number[]> {
  const held: number[] = [];
  for (let i = 0; i < lan.nodes.length; i++) if (await holdsAddress(lan, i, VIP)) held.push(i);
  return held;
}

/**
 * Makes the client resolve the VIP afresh: its neighbour entry is flushed, one UDP datagram to
 * the discard port makes the kernel send an ARP request, and the entry that comes back names
 * the MAC of whoever answered.
 */
async function resolveVip(lan: Lan): Promise<string | undefined> {
  await lan.exec(lan.client.ns, ['ip', 'neigh', 'flush', 'to', VIP, 'dev', 'lan0']);
  const send = `require('node:dgram').createSocket('udp4').send('x', 9, '${VIP}', (e, n) => process.exit(e ? 1 : 0))`;
  const r = await lan.exec(lan.client.ns, [process.execPath, '-e', send]);
  assert.equal(r.code, 0, r.stderr);
  return pollUntil('ARP reply', () => lan.neighbour(lan.client.ns, VIP), (m) => m !== undefined);
}

const state = (n: LinuxNode) => n.state(1);

/**
 * A LAN of two nodes (with IPv6 when asked), each with vhid 1 on lan0: its VIP fields from
 * vip(n), after PATCH /v1/carp when preempt is given.
 */
async function setUp(t: test.TestContext, opts: { preempt?: boolean; ipv6?: boolean; vip: (n: LinuxNode) => Record<string, unknown> }) {
  const { lan, root } = await setUpLan(t, { nodes: 2, ipv6: opts.ipv6 }, 'carpd-linux-');
  const nodes = await Promise.all([0, 1].map((i) => startNode(t, lan, root, i)));
  for (const n of nodes) {
    if (opts.preempt !== undefined) {
      const g = await n.api('PATCH', '/v1/carp', { preempt: opts.preempt });
      assert.equal(g.status, 200, g.text);
    }
    await n.addVip({ interface: 'lan0', vhid: 1, ...opts.vip(n) });
  }
  return { lan, root, nodes };
}

/** node1 (advskew 0) wins the election over node2 (advskew 100). */
const vip = (n: LinuxNode) => ({ addresses: [`${VIP}/24`], password: 'ns-secret', advskew: n.i === 0 ? 0 : 100 });

test('linux backend in namespaces: election, kill -9 takeover with ARP, preemption on return', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root, nodes } = await setUp(t, { preempt: true, vip });
  // advskew 0 on node1, 100 on node2: node1 wins the election.
  await pollUntil('election', () => Promise.all(nodes.map(state)), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  assert.deepEqual(await pollUntil('VIP on the master only', () => vipHolders(lan), (h) => h.length === 1), [0]);

  const macs = await Promise.all(lan.nodes.map((n) => lan.mac(n.ns, 'lan0')));
  // The client resolves the VIP to the master's MAC.
  assert.equal(await resolveVip(lan), macs[0]);

  // The master dies: carpd killed, and the box off the LAN (its kernel would still answer ARP).
  nodes[0].d.kill('SIGKILL');
  await nodes[0].d.exited;
  await lan.cut(0);
  await pollUntil('takeover', () => state(nodes[1]), (s) => s === 'MASTER');
  const holders = await pollUntil('VIP on the backup', () => vipHolders(lan), (h) => h.includes(1));
  // The killed carpd could not remove its address: both interfaces carry it until it returns.
  assert.deepEqual(holders, [0, 1]);
  // The client's neighbour entry moves to the backup's MAC (gratuitous ARP), and a fresh ARP
  // request is answered by the backup.
  await pollUntil('client neighbour entry', () => lan.neighbour(lan.client.ns, VIP), (m) => m === macs[1]);
  assert.equal(await resolveVip(lan), macs[1]);
  assert.match((await nodes[1].vhid(1))!.reason, /master-down timer expired/);

  // node1 returns with preemption on: it removes the address it left behind, starts as BACKUP,
  // and takes the vhid back on node2's first advertisement (skew 0 < 100).
  await lan.heal();
  const back = await startNode(t, lan, root, 0);
  await pollUntil('preemption', () => Promise.all([state(back), state(nodes[1])]), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  assert.deepEqual(await pollUntil('VIP back on node1 only', () => vipHolders(lan), (h) => h.length === 1), [0]);
  await pollUntil('client neighbour entry back to node1', () => lan.neighbour(lan.client.ns, VIP), (m) => m === macs[0]);
  const carp = await nodes[1].carp();
  assert.ok(carp.ipackets > 0 && carp.opackets > 0, JSON.stringify(carp));
  assert.equal(carp.badauth + carp.badttl + carp.badsum, 0);
});

test('linux backend in namespaces: without preemption the returning node stays BACKUP; SIGTERM hands over at once', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root, nodes } = await setUp(t, { preempt: false, vip });
  await pollUntil('election', () => Promise.all(nodes.map(state)), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  nodes[0].d.kill('SIGKILL');
  await nodes[0].d.exited;
  await pollUntil('takeover', () => state(nodes[1]), (s) => s === 'MASTER');
  const back = await startNode(t, lan, root, 0);
  // Stale address removed, BACKUP, and it stays so: node2 keeps the vhid for several intervals.
  await pollUntil('returning node in BACKUP without the stale VIP', () => vipHolders(lan), (h) => h.length === 1 && h[0] === 1);
  assert.equal(await state(back), 'BACKUP');
  const before = (await nodes[1].carp()).opackets;
  await pollUntil('three more advertisements from node2', () => nodes[1].carp(), (c) => c.opackets >= before + 3);
  assert.equal(await state(back), 'BACKUP');
  assert.equal(await state(nodes[1]), 'MASTER');

  // An orderly stop: node2 bows out and removes its VIP; node1 takes over without waiting out master-down.
  nodes[1].d.kill('SIGTERM');
  const exit = await nodes[1].d.waitForExit();
  assert.equal(exit.code, 0, nodes[1].d.output);
  await pollUntil('handover', () => state(back), (s) => s === 'MASTER');
  assert.match((await back.vhid(1))!.reason, /bow-out|time out/i);
  assert.deepEqual(await pollUntil('VIP on node1 only', () => vipHolders(lan), (h) => h.length === 1), [0]);
});

test('linux backend: a wrong password is dropped as badauth and both nodes claim the vhid', { skip, timeout: 120_000 }, async (t) => {
  const { nodes } = await setUp(t, { vip: (n) => ({ addresses: [`${VIP}/24`], password: n.i === 0 ? 'right-secret' : 'wrong-secret', advskew: n.i * 100 }) });
  const s = await pollUntil('both MASTER', () => Promise.all(nodes.map(state)), (x) => x[0] === 'MASTER' && x[1] === 'MASTER');
  assert.deepEqual(s, ['MASTER', 'MASTER']);
  for (const n of nodes) {
    const c = await pollUntil('badauth counted', () => n.carp(), (x) => x.badauth > 0);
    // ipackets counts every packet received, refused ones included: every one was refused.
    assert.equal(c.badauth, c.ipackets, JSON.stringify(c));
  }
});

test('linux backend: an interface that does not exist is refused with the interface error, nothing stored', { skip, timeout: 60_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 1 }, 'carpd-linux-');
  const n = await startNode(t, lan, root, 0);
  const r = await n.api('POST', '/v1/vips', { interface: 'nosuch0', vhid: 1, addresses: [`${VIP}/24`] });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.code, 'CARPD_ERR_INTERFACE_NOT_FOUND');
  const list = await n.api('GET', '/v1/vips');
  assert.deepEqual(list.body.items, []);
});

test('linux backend: IPv4 + IPv6 VIPs move together; a link going down hands the vhid over and demotes the node until it is back', { skip, timeout: 120_000 }, async (t) => {
  const VIP6 = '2001:db8::50';
  const { lan, nodes } = await setUp(t, { ipv6: true, vip: (n) => ({ ...vip(n), addresses: [`${VIP}/24`, `${VIP6}/64`] }) });
  // Both families read from one listing of the interface.
  const holds = async (i: number) => {
    const a = await lan.addresses(lan.nodes[i].ns, 'lan0');
    return [VIP, VIP6].map((v) => a.some((x) => x.startsWith(`${v}/`)));
  };
  await pollUntil('election', () => Promise.all(nodes.map(state)), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  assert.deepEqual(await pollUntil('both VIPs on node1', () => holds(0), (h) => h[0] && h[1]), [true, true]);
  assert.deepEqual(await holds(1), [false, false]);
  // One advertisement per family, as carp(4) sends.
  const c1 = await pollUntil('IPv4 and IPv6 advertisements', () => nodes[1].carp(), (x) => x.ipackets > 2 && x.ipackets6 > 2);
  assert.equal(c1.badauth + c1.badttl + c1.badsum, 0, JSON.stringify(c1));

  await lan.exec(lan.nodes[0].ns, ['ip', 'link', 'set', 'lan0', 'down']);
  const down = await pollUntil('INIT on link down', () => nodes[0].vhid(1), (v) => v?.state === 'INIT');
  assert.match(down!.reason, /link down/);
  await pollUntil('node2 takes over', () => state(nodes[1]), (s) => s === 'MASTER');
  assert.deepEqual(await pollUntil('both VIPs on node2', () => holds(1), (h) => h[0] && h[1]), [true, true]);
  assert.deepEqual(await holds(0), [false, false]);
  const st = await nodes[0].api('GET', '/v1/status');
  assert.equal(st.body.vhids[0].effectiveSkew, 240, 'demoted by the ifdown factor while the link is down');

  // Link back: node1 returns as BACKUP with its demotion gone, and preempts (skew 0 < 100).
  await lan.exec(lan.nodes[0].ns, ['ip', 'link', 'set', 'lan0', 'up']);
  await pollUntil('node1 MASTER again', () => Promise.all(nodes.map(state)), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  assert.deepEqual(await pollUntil('both VIPs back on node1', () => holds(0), (h) => h[0] && h[1]), [true, true]);
  assert.deepEqual(await pollUntil('none left on node2', () => holds(1), (h) => !h[0] && !h[1]), [false, false]);
  const after = await nodes[0].api('GET', '/v1/status');
  assert.equal(after.body.vhids[0].effectiveSkew, 0);
});
