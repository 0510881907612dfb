/**
 * The virtual MAC on the linux backend, across network namespaces: two carpd processes with
 * `--backend linux --mac-mode virtual` on a bridge (the bridge namespace of netns.ts) with a
 * client. The VIP answers ARP with 00:00:5e:00:01:<vhid> from a macvlan on the master; after
 * the master is killed with SIGKILL the bridge learns the same MAC on the survivor's port
 * (`bridge fdb`) and the client's neighbour entry still holds that MAC; traffic from the VIP
 * works on the master and is refused on the backup; the macvlan the killed node left behind is
 * removed when it starts again; switching the MASTER's VIP to macMode interface and back moves
 * its addresses between lan0 and the macvlan. Every wait polls for the positive outcome;
 * nothing sleeps. IPv4 and IPv6 VIPs on one vhid.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setUpLan, startLinuxNode, type LinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable();
const VHID = 7;
const VMAC = '00:00:5e:00:01:07';
const VIP = '192.0.2.50';
const VIP6 = '2001:db8::50';

/** The macvlans in a namespace: name -> MAC. */
async function macvlans(lan: Lan, ns: string): Promise<Record<string, string>> {
  const r = await lan.exec(ns, ['ip', '-j', 'link', 'show', 'type', 'macvlan']);
  assert.equal(r.code, 0, r.stderr);
  const links = (r.stdout.trim() ? JSON.parse(r.stdout) : []) as { ifname: string; address: string }[];
  return Object.fromEntries(links.map((l) => [l.ifname, l.address]));
}

/** The bridge ports the bridge has learnt `mac` on (`bridge fdb show`), e.g. ['v0']. */
async function fdbPorts(lan: Lan, mac: string): Promise<string[]> {
  const r = await lan.exec(`cdl-${lan.id}-br`, ['bridge', '-j', 'fdb', 'show', 'br', 'br0']);
  assert.equal(r.code, 0, r.stderr);
  const entries = JSON.parse(r.stdout || '[]') as { mac: string; ifname: string; flags?: string[]; state?: string }[];
  return entries.filter((e) => e.mac === mac && e.state !== 'permanent').map((e) => e.ifname);
}

/**
 * Two-way reachability without ping(8): a UDP datagram from `src` (any address when '') to a
 * closed port of `dst`, repeated until `dst` answers with ICMP port unreachable, which the
 * connected socket reports as ECONNREFUSED (exit 0). EADDRNOTAVAIL (exit 2): `src` is not an
 * address of this node. Nothing back within 3 s: exit 3.
 */
const PROBE = `
const d = require('dgram');
const [src, dst] = process.argv.slice(-2);
const s = d.createSocket(dst.includes(':') ? 'udp6' : 'udp4');
s.on('error', (e) => { console.log(e.code); process.exit(e.code === 'ECONNREFUSED' ? 0 : 2); });
s.bind({ address: src || undefined, port: 0 }, () => s.connect(9, dst, () => { s.send('x'); setInterval(() => s.send('x'), 100); }));
setTimeout(() => { console.log('no answer'); process.exit(3); }, 3000);
`;
const reach = (lan: Lan, ns: string, src: string, dst: string) => lan.exec(ns, [process.execPath, '-e', PROBE, src || (dst.includes(':') ? '::' : '0.0.0.0'), dst]);

test('virtual MAC: ARP answered with 00:00:5e:00:01:<vhid>, the same MAC after a failover, leftovers removed', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2, ipv6: true }, 'carpd-vmac-');
  const start = (i: number) => startLinuxNode(t, lan, root, i, { args: ['--mac-mode', 'virtual'] });
  const vip = (advskew: number) => ({ interface: 'lan0', vhid: VHID, addresses: [`${VIP}/24`, `${VIP6}/64`], password: 'vmac-secret', advskew });
  const [n0, n1] = [lan.nodes[0].ns, lan.nodes[1].ns];

  let node0: LinuxNode = await start(0);
  // Preemption off: the restarted node0 stays BACKUP, so the macvlan it left is not made again.
  assert.equal((await node0.api('PATCH', '/v1/carp', { preempt: false })).status, 200);
  await node0.addVip(vip(0));
  await pollUntil('node0 MASTER', () => node0.state(VHID), (s) => s === 'MASTER');
  const node1 = await start(1);
  assert.equal((await node1.api('PATCH', '/v1/carp', { preempt: false })).status, 200);
  await node1.addVip(vip(100));
  await pollUntil('node1 BACKUP', () => node1.state(VHID), (s) => s === 'BACKUP');

  // Status: the MAC in use is the virtual one, on both nodes.
  for (const n of [node0, node1]) {
    const v = await n.vhid(VHID);
    assert.equal(v?.mac, VMAC, JSON.stringify(v));
    assert.equal(v?.virtualMac, true);
  }

  // The master holds the VIP on a macvlan with the virtual MAC, not on lan0; the backup has none.
  const vmacs0 = await macvlans(lan, n0);
  const names = Object.keys(vmacs0);
  assert.equal(names.length, 1, JSON.stringify(vmacs0));
  const [vmacName] = names;
  assert.match(vmacName, new RegExp(`^cv\\d+\\.${VHID}$`));
  assert.equal(vmacs0[vmacName], VMAC);
  assert.deepEqual((await lan.addresses(n0, vmacName)).sort(), [`${VIP}/24`, `${VIP6}/64`], 'both VIPs, and no link-local address of its own');
  assert.ok(!(await lan.addresses(n0, 'lan0')).some((a) => a.startsWith(`${VIP}/`)), 'the VIP is not on the parent');
  assert.deepEqual(await macvlans(lan, n1), {});
  // The backup hears the master's advertisements of both families, sent from the macvlan.
  await pollUntil('node1 hears IPv4 and IPv6 advertisements', () => node1.carp(), (c) => c.ipackets >= 2 && c.ipackets6 >= 2);

  // The client reaches the VIP, and its neighbour entry is the virtual MAC (not node0's lan0 MAC).
  await pollUntil('client reaches the VIP', () => reach(lan, lan.client.ns, '', VIP), (r) => r.code === 0);
  assert.equal(await lan.neighbour(lan.client.ns, VIP), VMAC);
  assert.notEqual(await lan.mac(n0), VMAC);
  await pollUntil('client reaches the IPv6 VIP', () => reach(lan, lan.client.ns, '', VIP6), (r) => r.code === 0);
  assert.equal(await lan.neighbour(lan.client.ns, VIP6), VMAC);
  // Traffic from the VIP works on the master; the backup does not hold the address to send from.
  const fromMaster = await reach(lan, n0, VIP, lan.client.address);
  assert.equal(fromMaster.code, 0, fromMaster.stdout + fromMaster.stderr);
  const fromBackup = await reach(lan, n1, VIP, lan.client.address);
  assert.equal(fromBackup.code, 2, `the backup sent from the VIP: ${fromBackup.stdout}`);
  assert.match(fromBackup.stdout, /EADDRNOTAVAIL/);
  // The bridge has learnt the virtual MAC on node0's port (gratuitous ARP, advertisements).
  await pollUntil('fdb: virtual MAC on v0', () => fdbPorts(lan, VMAC), (p) => p.length === 1 && p[0] === 'v0');

  // SIGKILL: node0 cannot take anything down; node1 takes over with the same MAC.
  node0.d.kill('SIGKILL');
  await node0.d.exited;
  await pollUntil('node1 MASTER', () => node1.state(VHID), (s) => s === 'MASTER');
  await pollUntil('fdb: virtual MAC on v1', () => fdbPorts(lan, VMAC), (p) => p.length === 1 && p[0] === 'v1');
  assert.equal(await lan.neighbour(lan.client.ns, VIP), VMAC, 'the client still has the same MAC for the VIP');
  assert.equal(await lan.neighbour(lan.client.ns, VIP6), VMAC, 'and for the IPv6 VIP');
  await pollUntil('client reaches the VIP on node1', () => reach(lan, lan.client.ns, '', VIP), (r) => r.code === 0);
  await pollUntil('client reaches the IPv6 VIP on node1', () => reach(lan, lan.client.ns, '', VIP6), (r) => r.code === 0);
  assert.equal(await lan.neighbour(lan.client.ns, VIP), VMAC);
  assert.equal(await lan.neighbour(lan.client.ns, VIP6), VMAC);
  const vmacs1 = await macvlans(lan, n1);
  assert.deepEqual(Object.values(vmacs1), [VMAC]);
  const fromNew = await reach(lan, n1, VIP, lan.client.address);
  assert.equal(fromNew.code, 0, fromNew.stdout + fromNew.stderr);

  // The killed node left its macvlan (and the VIP on it) behind; a restart removes it.
  assert.deepEqual(await macvlans(lan, n0), { [vmacName]: VMAC });
  node0 = await start(0);
  assert.ok(node0.d.logs.some((l) => l.event === 'linux.vmac.stale' && l.interface === vmacName), node0.d.stdout);
  await pollUntil('restarted node0 BACKUP', () => node0.state(VHID), (s) => s === 'BACKUP');
  assert.deepEqual(await macvlans(lan, n0), {});
  assert.equal(await node1.state(VHID), 'MASTER');

  // The MASTER's VIP switched to macMode interface: the macvlan goes, the VIPs move to lan0 and
  // the status shows lan0's MAC; back to the node's default (virtual), the macvlan comes back.
  const lan0Mac = await lan.mac(n1);
  assert.equal((await node1.api('PATCH', `/v1/vips/lan0/${VHID}`, { macMode: 'interface' })).status, 200);
  assert.deepEqual(await macvlans(lan, n1), {});
  assert.ok((await lan.addresses(n1, 'lan0')).includes(`${VIP}/24`));
  assert.deepEqual([(await node1.vhid(VHID))?.mac, (await node1.vhid(VHID))?.virtualMac], [lan0Mac, false]);
  assert.equal((await node1.api('PATCH', `/v1/vips/lan0/${VHID}`, { macMode: null })).status, 200);
  assert.deepEqual(Object.values(await macvlans(lan, n1)), [VMAC]);
  assert.ok(!(await lan.addresses(n1, 'lan0')).some((a) => a.startsWith(`${VIP}/`)), 'the VIP left lan0 again');
  assert.equal(await node1.state(VHID), 'MASTER');
});

test('virtual MAC, VRRPv3: one macvlan per family (00:00:5e:00:01:<vrid>, 00:00:5e:00:02:<vrid>), advertisements accepted', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2, ipv6: true }, 'carpd-vmac3-');
  const vrid = 9;
  const vip = (priority: number) => ({ interface: 'lan0', vhid: vrid, protocol: 'vrrpv3', vrrpPriority: priority, vrrpInterval: 10, addresses: ['192.0.2.60/24', '2001:db8::60/64'], macMode: 'virtual' });
  // The node default stays interface: the VIPs ask for the virtual MAC themselves.
  const master = await startLinuxNode(t, lan, root, 0);
  await master.addVip(vip(200));
  await pollUntil('node0 MASTER', () => master.state(vrid), (s) => s === 'MASTER');
  const backup = await startLinuxNode(t, lan, root, 1);
  await backup.addVip(vip(100));
  await pollUntil('node1 BACKUP', () => backup.state(vrid), (s) => s === 'BACKUP');
  // The backup accepts the master's advertisements of both families (VRRPv3 checksum over the
  // parent's source address, sent from the macvlans) and never takes over.
  await pollUntil('node1 hears both families', () => backup.carp(), (c) => c.ipackets >= 5 && c.ipackets6 >= 5);
  const c = await backup.carp();
  assert.equal(c.badsum ?? 0, 0, JSON.stringify(c));
  assert.equal(await backup.state(vrid), 'BACKUP');
  const v = await master.vhid(vrid);
  assert.deepEqual([v?.mac, v?.mac6, v?.virtualMac], ['00:00:5e:00:01:09', '00:00:5e:00:02:09', true]);
  const links = await macvlans(lan, lan.nodes[0].ns);
  assert.deepEqual(Object.values(links).sort(), ['00:00:5e:00:01:09', '00:00:5e:00:02:09']);
  const v6name = Object.keys(links).find((n) => links[n] === '00:00:5e:00:02:09')!;
  assert.match(v6name, /^cv\d+\.9\.6$/);
  assert.deepEqual(await lan.addresses(lan.nodes[0].ns, v6name), ['2001:db8::60/64']);
  await pollUntil('client reaches the IPv4 VIP', () => reach(lan, lan.client.ns, '', '192.0.2.60'), (r) => r.code === 0);
  await pollUntil('client reaches the IPv6 VIP', () => reach(lan, lan.client.ns, '', '2001:db8::60'), (r) => r.code === 0);
  assert.equal(await lan.neighbour(lan.client.ns, '192.0.2.60'), '00:00:5e:00:01:09');
  assert.equal(await lan.neighbour(lan.client.ns, '2001:db8::60'), '00:00:5e:00:02:09');
});
