/**
 * src/kernel/linux/announce.ts between namespaces: a node's gratuitous ARP / unsolicited
 * neighbour advertisement for a VIP makes the client's neighbour entry point at the MAC it names,
 * and a second node's announcement moves it (the take-over case). The client namespace accepts
 * unsolicited announcements (arp_accept, accept_untracked_na: test/helpers/netns.ts), so the
 * entry is created by the first announcement and overridden by the second.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FREEBSD_ERRNO } from '../src/kernel/errno.js';
import { Peer, WAIT_MS } from './helpers/linux-peer.js';
import { createLan, netnsUnavailable, type Lan } from './helpers/netns.js';

const skip = netnsUnavailable();

/** Resolves once the client's neighbour entry for address is `mac`; the error shows the last value seen. */
async function neighbourBecomes(lan: Lan, address: string, mac: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let last: string | undefined;
  while (Date.now() < deadline) {
    last = await lan.neighbour(lan.client.ns, address);
    if (last === mac) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`the client's neighbour entry for ${address} is ${last ?? 'absent'}, expected ${mac}`);
}

test('gratuitous ARP and unsolicited NA set the client neighbour entry to the announcing MAC; a second node takes it over', { skip }, async (t) => {
  const lan = await createLan({ nodes: 2, ipv6: true });
  t.after(() => lan.destroy());
  const peers = await Promise.all(lan.nodes.map((n, i) => Peer.start(lan, n.ns, `node${i}`)));
  const macs = await Promise.all(lan.nodes.map((n) => lan.mac(n.ns)));
  assert.notEqual(macs[0], macs[1]);

  assert.equal(await lan.neighbour(lan.client.ns, '192.0.2.50'), undefined, 'no entry before the announcement');
  await peers[0].call('garp', { iface: 'lan0', address: '192.0.2.50', mac: macs[0] });
  await neighbourBecomes(lan, '192.0.2.50', macs[0]);
  await peers[1].call('garp', { iface: 'lan0', address: '192.0.2.50', mac: macs[1] });
  await neighbourBecomes(lan, '192.0.2.50', macs[1]);

  assert.equal(await lan.neighbour(lan.client.ns, '2001:db8::50'), undefined, 'no IPv6 entry before the announcement');
  await peers[0].call('na', { iface: 'lan0', address: '2001:db8::50', mac: macs[0] });
  await neighbourBecomes(lan, '2001:db8::50', macs[0]);
  await peers[1].call('na', { iface: 'lan0', address: '2001:db8::50', mac: macs[1] });
  await neighbourBecomes(lan, '2001:db8::50', macs[1]);

  // The MAC in the packet is what counts (a virtual MAC works the same way).
  await peers[0].call('garp', { iface: 'lan0', address: '192.0.2.51', mac: '00:00:5e:00:01:07' });
  await neighbourBecomes(lan, '192.0.2.51', '00:00:5e:00:01:07');

  const missing = await peers[0].callError('garp', { iface: 'nope0', address: '192.0.2.50', mac: macs[0] });
  assert.deepEqual({ errnoName: missing.errnoName, errno: missing.errno, iface: missing.iface }, { errnoName: 'ENXIO', errno: FREEBSD_ERRNO.ENXIO, iface: 'nope0' });
  assert.equal((await peers[0].callError('na', { iface: 'nope0', address: '2001:db8::50', mac: macs[0] })).errnoName, 'ENXIO');

  for (const p of peers) assert.deepEqual(await p.close(), { code: 0, signal: null }, p.diagnostics());
});
