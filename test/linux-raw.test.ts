/**
 * src/kernel/linux/raw.ts between namespaces: two nodes on a bridge exchange CARP-sized protocol
 * 112 payloads over multicast and unicast, IPv4 and IPv6, through the fixture
 * test/fixtures/linux/peer.ts running inside each node's namespace.
 *
 * "Not received" is never asserted by waiting: a packet that must not arrive is followed by a
 * packet that must, sent later on the same path, and the test checks the first one is absent
 * once the second one is there.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { FREEBSD_ERRNO } from '../src/kernel/errno.js';
import { internetChecksum, pseudoHeaderSum } from '../src/wire/checksum.js';
import { requireAddress } from '../src/wire/ip.js';
import { Peer, type PacketEvent } from './helpers/linux-peer.js';
import { createLan, netnsUnavailable, type Lan } from './helpers/netns.js';

const skip = netnsUnavailable();

/** A 36-byte CARP-sized payload starting with version 2 / type 1, unique per call. */
function carpSized(): string {
  const b = randomBytes(36);
  b[0] = 0x21;
  return b.toString('hex');
}

async function setup(t: TestContext, opts: { attach?: boolean } = {}): Promise<{ lan: Lan; a: Peer; b: Peer }> {
  const lan = await createLan({ nodes: 2, ipv6: true });
  t.after(() => lan.destroy());
  const [a, b] = await Promise.all(lan.nodes.map((n, i) => Peer.start(lan, n.ns, `node${i}`)));
  if (opts.attach !== false) await Promise.all([a, b].map((p) => p.call('attach', { iface: 'lan0', v4: true, v6: true })));
  return { lan, a, b };
}

async function linkLocal(lan: Lan, ns: string): Promise<string> {
  const ll = (await lan.addresses(ns)).find((x) => x.startsWith('fe80:'));
  assert.ok(ll, `${ns} has a link-local address`);
  return ll.split('/')[0];
}

/** a sends `hex`, b then sends a marker that a must receive: a's own packet must not be among a's packets before it. */
async function assertNotLoopedBack(a: Peer, b: Peer, family: 4 | 6, destination: string, hex: string): Promise<void> {
  const marker = carpSized();
  await b.call('send', { iface: 'lan0', family, destination, payloadHex: marker });
  await a.waitPacket(marker, `marker from the other node (IPv${family})`);
  assert.ok(!a.packets().some((p) => p.payloadHex === hex), `IPv${family}: the sender received its own packet`);
}

test('IPv4 multicast and unicast: TTL 255, source and destination, own packets not looped back', { skip }, async (t) => {
  const { lan, a, b } = await setup(t);
  const [n0, n1] = lan.nodes;

  const m = carpSized();
  await a.call('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: m });
  const got = await b.waitPacket(m, 'IPv4 multicast advertisement');
  assert.deepEqual(
    { iface: got.iface, family: got.family, source: got.source, destination: got.destination, ttl: got.ttl },
    { iface: 'lan0', family: 4, source: n0.address, destination: '224.0.0.18', ttl: 255 },
  );
  await assertNotLoopedBack(a, b, 4, '224.0.0.18', m);

  const u = carpSized();
  await b.call('send', { iface: 'lan0', family: 4, destination: n0.address, payloadHex: u });
  const gotU = await a.waitPacket(u, 'IPv4 unicast advertisement');
  assert.deepEqual({ source: gotU.source, destination: gotU.destination, ttl: gotU.ttl }, { source: n1.address, destination: n0.address, ttl: 255 });
});

test('IPv6 multicast and unicast: hop limit 255, link-local source towards ff02::12, own packets not looped back', { skip }, async (t) => {
  const { lan, a, b } = await setup(t);
  const [n0, n1] = lan.nodes;
  const ll0 = await linkLocal(lan, n0.ns);

  const m = carpSized();
  await a.call('send', { iface: 'lan0', family: 6, destination: 'ff02::12', payloadHex: m });
  const got = await b.waitPacket(m, 'IPv6 multicast advertisement');
  assert.deepEqual(
    { iface: got.iface, family: got.family, source: got.source, destination: got.destination, ttl: got.ttl },
    { iface: 'lan0', family: 6, source: ll0, destination: 'ff02::12', ttl: 255 },
  );
  await assertNotLoopedBack(a, b, 6, 'ff02::12', m);

  const u = carpSized();
  await b.call('send', { iface: 'lan0', family: 6, destination: n0.address6, payloadHex: u });
  const gotU = await a.waitPacket(u, 'IPv6 unicast advertisement');
  assert.deepEqual({ source: gotU.source, destination: gotU.destination, ttl: gotU.ttl }, { source: n1.address6, destination: n0.address6, ttl: 255 });

  // Unicast to a link-local peer (scope from the interface).
  const l = carpSized();
  await b.call('send', { iface: 'lan0', family: 6, destination: ll0, payloadHex: l });
  const gotL = await a.waitPacket(l, 'IPv6 link-local unicast advertisement');
  assert.equal(gotL.destination, ll0);
  assert.equal(gotL.ttl, 255);
});

test('pseudo-header checksums (VRRPv3): computed over source, destination, 112 and length; plain sends untouched', { skip }, async (t) => {
  const { a, b } = await setup(t);
  const verify = (p: PacketEvent) => {
    const payload = Buffer.from(p.payloadHex, 'hex');
    const sum = pseudoHeaderSum(requireAddress(p.source, 'src'), requireAddress(p.destination, 'dst'), 112, payload.length);
    return internetChecksum(payload, 0, payload.length, sum);
  };
  const vrrp = (): string => {
    const b = Buffer.alloc(16);
    b[0] = 0x31; // VRRPv3 advertisement
    b[1] = 7;
    b[2] = 100;
    b[3] = 1;
    b.writeUInt16BE(100, 4);
    b.writeUInt16BE(0xbeef, 6); // garbage the sender must replace
    randomBytes(8).copy(b, 8);
    return b.toString('hex');
  };
  for (const [family, destination] of [[4, '224.0.0.18'], [6, 'ff02::12'], [4, '192.0.2.11'], [6, '2001:db8::11']] as const) {
    const hex = vrrp();
    await a.call('send', { iface: 'lan0', family, destination, payloadHex: hex, checksumAt: 6 });
    const got = await b.waitEvent<PacketEvent>((e) => e.event === 'packet' && (e as PacketEvent).payloadHex.slice(16) === hex.slice(16), `VRRPv3 packet to ${destination}`);
    assert.equal(got.payloadHex.slice(0, 12), hex.slice(0, 12), 'bytes before the checksum unchanged');
    assert.equal(verify(got), 0, `checksum over the IPv${family} pseudo-header verifies (to ${destination})`);
  }
  // The receiving IPv6 socket does not verify pseudo-header checksums: CARP packets, whose
  // checksum has none, still arrive after the VRRPv3 sends above.
  const c = carpSized();
  await a.call('send', { iface: 'lan0', family: 6, destination: 'ff02::12', payloadHex: c });
  const got = await b.waitPacket(c, 'CARP packet after VRRPv3 sends');
  assert.equal(got.payloadHex, c, 'payload sent as is without pseudoHeaderChecksumAt');
});

test('IPv4 source: the first address that is not excluded; none left is EADDRNOTAVAIL', { skip }, async (t) => {
  const { lan, a, b } = await setup(t);
  const n0 = lan.nodes[0];
  assert.equal(await a.call('source', { iface: 'lan0' }), n0.address);

  const add = await lan.exec(n0.ns, ['ip', 'addr', 'add', '192.0.2.60/24', 'dev', 'lan0']);
  assert.equal(add.code, 0, add.stderr);
  await a.call('exclude', { iface: 'lan0', addresses: [`${n0.address}/24`] });
  assert.equal(await a.call('source', { iface: 'lan0' }), '192.0.2.60');
  const m = carpSized();
  await a.call('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: m });
  assert.equal((await b.waitPacket(m, 'advertisement from the second address')).source, '192.0.2.60');

  await a.call('exclude', { iface: 'lan0', addresses: [n0.address, '192.0.2.60'] });
  const e = await a.callError('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: carpSized() });
  assert.deepEqual(
    { name: e.name, errnoName: e.errnoName, errno: e.errno, operation: e.operation, iface: e.iface },
    { name: 'KernelError', errnoName: 'EADDRNOTAVAIL', errno: FREEBSD_ERRNO.EADDRNOTAVAIL, operation: 'send to 224.0.0.18', iface: 'lan0' },
  );

  await a.call('exclude', { iface: 'lan0', addresses: [] });
  assert.equal(await a.call('source', { iface: 'lan0' }), n0.address);
});

test('attach errors, detach and re-attach while the poller runs, close lets the process exit', { skip }, async (t) => {
  const { lan, a, b } = await setup(t, { attach: false });
  const n0 = lan.nodes[0];

  const missing = await a.callError('attach', { iface: 'nope0', v4: true, v6: true });
  assert.deepEqual({ errnoName: missing.errnoName, errno: missing.errno, iface: missing.iface }, { errnoName: 'ENXIO', errno: FREEBSD_ERRNO.ENXIO, iface: 'nope0' });
  const unattached = await a.callError('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: carpSized() });
  assert.equal(unattached.errnoName, 'ENOTCONN');

  await b.call('attach', { iface: 'lan0', v4: true, v6: false });
  await a.call('attach', { iface: 'lan0', v4: true, v6: false });
  await a.call('attach', { iface: 'lan0', v4: true, v6: false }); // idempotent
  const first = carpSized();
  await a.call('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: first });
  await b.waitPacket(first, 'packet before re-attach');
  const v6missing = await a.callError('send', { iface: 'lan0', family: 6, destination: 'ff02::12', payloadHex: carpSized() });
  assert.equal(v6missing.errnoName, 'ENOTCONN', 'IPv6 was not attached');

  // New sockets while b's poll is blocked on the old ones: only received if the poller refreshes.
  await b.call('detach', { iface: 'lan0' });
  await b.call('attach', { iface: 'lan0', v4: true, v6: true });
  await a.call('attach', { iface: 'lan0', v4: true, v6: true }); // adds IPv6 to the attached IPv4
  const ll0 = await linkLocal(lan, n0.ns);
  for (const [family, destination] of [[4, '224.0.0.18'], [6, 'ff02::12'], [4, lan.nodes[1].address]] as const) {
    const hex = carpSized();
    await a.call('send', { iface: 'lan0', family, destination, payloadHex: hex });
    const got = await b.waitPacket(hex, `IPv${family} packet to ${destination} after re-attach`);
    assert.equal(got.source, family === 4 ? n0.address : ll0);
  }
  assert.ok(!b.events.some((e) => e.event === 'error' || e.event === 'drop'), b.diagnostics());

  for (const p of [a, b]) {
    const exit = await p.close();
    assert.deepEqual(exit, { code: 0, signal: null }, `${p.label} ends by itself after closing\n${p.diagnostics()}`);
  }
});

test('drainAll: with the event loop blocked, a packet queued on the socket is read synchronously (what a master-down timer asks for)', { skip }, async (t) => {
  const { lan, a, b } = await setup(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-drain-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const flag = path.join(dir, 'sent');
  const m = carpSized();
  // a blocks its event loop: its poller cannot hand it anything until it returns.
  const stalled = a.call('stallThenDrain', { flag, timeoutMs: 10_000 });
  await a.waitEvent((e) => e.event === 'stalling', 'a stalling');
  await b.call('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: m });
  writeFileSync(flag, '');
  assert.deepEqual(await stalled, { drained: 1 });
  const got = await a.waitPacket(m, 'the packet read by drainAll');
  assert.equal((got as PacketEvent & { viaDrain?: boolean }).viaDrain, true);
  assert.equal(got.source, lan.nodes[1].address);
});
