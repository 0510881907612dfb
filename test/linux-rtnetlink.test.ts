/**
 * src/kernel/linux/rtnetlink.ts inside a node namespace (through test/fixtures/linux/peer.ts),
 * checked against the kernel's own view as iproute2 reports it (`ip -j addr`, `ip -j link`).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { FREEBSD_ERRNO } from '../src/kernel/errno.js';
import type { InterfaceAddress, LinkInfo } from '../src/kernel/linux/rtnetlink.js';
import { Peer, type PeerEvent } from './helpers/linux-peer.js';
import { createLan, netnsUnavailable, type Lan } from './helpers/netns.js';

const skip = netnsUnavailable();

async function setup(t: TestContext): Promise<{ lan: Lan; p: Peer; ns: string }> {
  const lan = await createLan({ nodes: 1, ipv6: true });
  t.after(() => lan.destroy());
  const p = await Peer.start(lan, lan.nodes[0].ns, 'node0');
  return { lan, p, ns: lan.nodes[0].ns };
}

async function ipJson<T>(lan: Lan, ns: string, args: string[]): Promise<T> {
  const r = await lan.exec(ns, ['ip', '-j', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

test('linkInfo and listAddresses agree with ip -j link / addr; a missing interface is ENXIO', { skip }, async (t) => {
  const { lan, p, ns } = await setup(t);
  const [link] = await ipJson<{ ifindex: number; address: string; mtu: number }[]>(lan, ns, ['link', 'show', 'dev', 'lan0']);
  const info = await p.call<LinkInfo>('linkInfo', { name: 'lan0' });
  assert.deepEqual(info, { index: link.ifindex, name: 'lan0', mac: link.address, up: true, mtu: link.mtu });
  assert.equal(info.mac, await lan.mac(ns));

  const lo = await p.call<LinkInfo>('linkInfo', { name: 'lo' });
  assert.equal(lo.up, true);
  assert.equal(lo.mac, '00:00:00:00:00:00');

  const e = await p.callError('linkInfo', { name: 'nope0' });
  assert.deepEqual({ errnoName: e.errnoName, errno: e.errno, iface: e.iface }, { errnoName: 'ENXIO', errno: FREEBSD_ERRNO.ENXIO, iface: 'nope0' });

  const mine = await p.call<InterfaceAddress[]>('listAddresses', { iface: 'lan0' });
  assert.deepEqual(
    mine.map((a) => `${a.address}/${a.prefix}`).sort(),
    (await lan.addresses(ns)).sort(),
    'the same addresses as ip addr show dev lan0',
  );
  assert.ok(mine.every((a) => a.iface === 'lan0'));
  assert.deepEqual(mine.find((a) => a.family === 4), { iface: 'lan0', family: 4, address: '192.0.2.10', prefix: 24 });
  assert.ok(mine.some((a) => a.family === 6 && a.address === '2001:db8::10' && a.prefix === 64));

  const all = await p.call<InterfaceAddress[]>('listAddresses', {});
  assert.ok(all.some((a) => a.iface === 'lo' && a.address === '127.0.0.1' && a.prefix === 8), 'lo is listed by name');
  assert.ok(all.some((a) => a.iface === 'lo' && a.address === '::1'), 'IPv6 addresses are named too (no IFA_LABEL)');
  assert.ok(all.some((a) => a.iface === 'mgmt0' && a.address === lan.nodes[0].mgmtAddress));
  assert.equal((await p.callError('listAddresses', { iface: 'nope0' })).errnoName, 'ENXIO');
});

test('addAddress / removeAddress as the kernel sees them; EEXIST and EADDRNOTAVAIL as named KernelErrors', { skip }, async (t) => {
  const { lan, p, ns } = await setup(t);
  const has = async (cidr: string) => (await lan.addresses(ns)).includes(cidr);

  await p.call('addAddress', { iface: 'lan0', cidr: '192.0.2.50/24' });
  assert.ok(await has('192.0.2.50/24'), 'IPv4 address added');
  const [addr] = await ipJson<{ addr_info: { local: string; broadcast?: string; secondary?: boolean }[] }[]>(lan, ns, ['addr', 'show', 'dev', 'lan0']);
  const v4 = addr.addr_info.find((a) => a.local === '192.0.2.50');
  assert.equal(v4?.broadcast, '192.0.2.255', 'broadcast address set');
  assert.equal(v4?.secondary, true, 'a second address of the subnet is secondary');

  const dup = await p.callError('addAddress', { iface: 'lan0', cidr: '192.0.2.50/24' });
  assert.deepEqual(
    { name: dup.name, errnoName: dup.errnoName, errno: dup.errno, operation: dup.operation, iface: dup.iface },
    { name: 'KernelError', errnoName: 'EEXIST', errno: FREEBSD_ERRNO.EEXIST, operation: 'add address 192.0.2.50/24', iface: 'lan0' },
  );
  await p.call('addAddress', { iface: 'lan0', cidr: '192.0.2.50/24', replace: true }); // NLM_F_REPLACE: no EEXIST

  await p.call('removeAddress', { iface: 'lan0', cidr: '192.0.2.50/24' });
  assert.ok(!(await has('192.0.2.50/24')), 'IPv4 address removed');
  assert.ok(await has('192.0.2.10/24'), 'the primary address stays');
  const gone = await p.callError('removeAddress', { iface: 'lan0', cidr: '192.0.2.50/24' });
  assert.deepEqual(
    { errnoName: gone.errnoName, errno: gone.errno, operation: gone.operation, iface: gone.iface },
    { errnoName: 'EADDRNOTAVAIL', errno: FREEBSD_ERRNO.EADDRNOTAVAIL, operation: 'remove address 192.0.2.50/24', iface: 'lan0' },
  );

  // IPv6 with IFA_F_NODAD: usable at once, never tentative.
  await p.call('addAddress', { iface: 'lan0', cidr: '2001:db8::50/64', noDad: true, proto: 112 });
  const [addr6] = await ipJson<{ addr_info: { local: string; prefixlen: number; tentative?: boolean; nodad?: boolean }[] }[]>(lan, ns, ['addr', 'show', 'dev', 'lan0']);
  const v6 = addr6.addr_info.find((a) => a.local === '2001:db8::50');
  assert.ok(v6, 'IPv6 address added');
  assert.equal(v6.prefixlen, 64);
  assert.equal(v6.nodad, true, 'nodad flag set');
  assert.notEqual(v6.tentative, true);
  const listed = (await p.call<InterfaceAddress[]>('listAddresses', { iface: 'lan0' })).find((a) => a.address === '2001:db8::50');
  assert.equal(listed?.proto, 112, 'the IFA_PROTO tag comes back');
  assert.equal((await p.callError('addAddress', { iface: 'lan0', cidr: '2001:db8::50/64', noDad: true })).errnoName, 'EEXIST');
  await p.call('removeAddress', { iface: 'lan0', cidr: '2001:db8::50/64' });
  assert.ok(!(await has('2001:db8::50/64')), 'IPv6 address removed');
  assert.equal((await p.callError('removeAddress', { iface: 'lan0', cidr: '2001:db8::50/64' })).errnoName, 'EADDRNOTAVAIL');

  assert.equal((await p.callError('addAddress', { iface: 'nope0', cidr: '192.0.2.51/24' })).errnoName, 'ENXIO');
  assert.equal((await p.callError('addAddress', { iface: 'lan0', cidr: '192.0.2.51' })).errnoName, 'EINVAL');
});

test('watchLinks reports ip link set lan0 down / up, and unsubscribes', { skip }, async (t) => {
  const { lan, p, ns } = await setup(t);
  const links = () => p.events.filter((e) => e.event === 'link' && e.iface === 'lan0');
  await p.call('watch');

  const down = await lan.exec(ns, ['ip', 'link', 'set', 'lan0', 'down']);
  assert.equal(down.code, 0, down.stderr);
  await p.waitEvent((e) => e.event === 'link' && e.iface === 'lan0' && e.up === false, 'lan0 down');
  const up = await lan.exec(ns, ['ip', 'link', 'set', 'lan0', 'up']);
  assert.equal(up.code, 0, up.stderr);
  await p.waitEvent((e) => e.event === 'link' && e.iface === 'lan0' && e.up === true, 'lan0 up');
  assert.deepEqual(links().map((e: PeerEvent) => e.up), [false, true], 'one report per change, no repeats');

  // A new interface appearing and going up is reported as well.
  const add = await lan.exec(ns, ['ip', 'link', 'add', 'extra0', 'type', 'veth', 'peer', 'name', 'extra1']);
  assert.equal(add.code, 0, add.stderr);
  await p.waitEvent((e) => e.event === 'link' && e.iface === 'extra0' && e.up === false, 'extra0 created down');
  for (const i of ['extra0', 'extra1']) assert.equal((await lan.exec(ns, ['ip', 'link', 'set', i, 'up'])).code, 0);
  await p.waitEvent((e) => e.event === 'link' && e.iface === 'extra0' && e.up === true, 'extra0 up (both ends up: carrier)');
  assert.equal((await lan.exec(ns, ['ip', 'link', 'del', 'extra0'])).code, 0);
  await p.waitEvent((e) => e.event === 'link' && e.iface === 'extra1' && e.up === false, 'extra1 gone with its peer');

  await p.call('unwatch');
  const exit = await p.close();
  assert.deepEqual(exit, { code: 0, signal: null }, p.diagnostics());
  assert.ok(!p.events.some((e) => e.event === 'error'), p.diagnostics());
});
