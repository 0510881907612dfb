import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeArp,
  decodeNeighborAdvert,
  encodeArp,
  encodeNeighborAdvert,
  gratuitousArp,
  gratuitousArpFrame,
  neighborAdvertPacket,
  unsolicitedNaFrame,
} from '../src/wire/arp.js';
import type { NeighborAdvertResult } from '../src/wire/arp.js';
import { decodeIpv6 } from '../src/wire/ip.js';
import {
  carpVirtualMac,
  decodeEthernet,
  encodeEthernet,
  formatMac,
  multicastMac,
  parseMac,
  ucarpAdvertMac,
  vrrpVirtualMac,
} from '../src/wire/mac.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** An independent RFC 1071 sum over explicit bytes (pseudo-header built by hand). */
function referenceChecksumOk(bytes: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

test('virtual and multicast MACs (§1, §11.1)', () => {
  assert.equal(formatMac(carpVirtualMac(7)), '00:00:5e:00:01:07');
  assert.equal(formatMac(carpVirtualMac(255)), '00:00:5e:00:01:ff');
  assert.equal(formatMac(ucarpAdvertMac(7)), '00:00:5e:00:00:07');
  assert.equal(formatMac(vrrpVirtualMac(51, 4)), '00:00:5e:00:01:33');
  assert.equal(formatMac(vrrpVirtualMac(52, 6)), '00:00:5e:00:02:34');
  assert.equal(formatMac(multicastMac('224.0.0.18')), '01:00:5e:00:00:12');
  assert.equal(formatMac(multicastMac('239.255.1.1')), '01:00:5e:7f:01:01');
  assert.equal(formatMac(multicastMac('ff02::12')), '33:33:00:00:00:12');
  assert.equal(formatMac(multicastMac('ff02::1')), '33:33:00:00:00:01');
  for (const bad of [0, 256, 1.5]) assert.throws(() => carpVirtualMac(bad), RangeError);
  assert.throws(() => multicastMac('192.0.2.1'), TypeError);
  assert.throws(() => multicastMac('2001:db8::1'), TypeError);
  assert.equal(parseMac('00-00-5E-00-01-07')?.toString('hex'), '00005e000107');
  for (const bad of ['00:00:5e:00:01', '00:00:5e:00:01:0g', '0:0:5e:0:1:7']) assert.equal(parseMac(bad), undefined, bad);
  const buf = Buffer.alloc(20, 0xa5);
  assert.equal(encodeEthernet({ dst: 'ff:ff:ff:ff:ff:ff', src: carpVirtualMac(7), etherType: 0x0806 }, buf, 3), 14);
  assert.equal(buf.toString('hex'), 'a5a5a5' + 'ffffffffffff00005e0001070806' + 'a5a5a5');
  assert.equal(decodeEthernet(hex('ffff')).ok, false);
});

test('gratuitous ARP frame for an IPv4 VIP: golden bytes and every field', () => {
  const frame = gratuitousArpFrame({ mac: carpVirtualMac(7), vip: '192.0.2.100' });
  assert.equal(frame.length, 42);
  assert.equal(
    frame.toString('hex'),
    'ffffffffffff' + '00005e000107' + '0806' + '0001' + '0800' + '06' + '04' + '0001' + '00005e000107' + 'c0000264' + '000000000000' + 'c0000264',
  );
  const eth = decodeEthernet(frame);
  assert.ok(eth.ok);
  assert.equal(eth.frame.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(eth.frame.src, '00:00:5e:00:01:07');
  assert.equal(eth.frame.etherType, 0x0806);
  const arp = decodeArp(eth.frame.payload);
  assert.ok(arp.ok);
  assert.deepEqual(arp.arp, { op: 1, senderMac: '00:00:5e:00:01:07', senderIp: '192.0.2.100', targetMac: '00:00:00:00:00:00', targetIp: '192.0.2.100' });

  // keepalived style: target MAC broadcast; reply variant; real MAC as ucarp does.
  const ka = decodeArp(gratuitousArp({ mac: '02:00:00:00:00:01', vip: '198.51.100.7', targetMac: 'ff:ff:ff:ff:ff:ff', op: 'reply' }));
  assert.ok(ka.ok);
  assert.deepEqual(ka.arp, { op: 2, senderMac: '02:00:00:00:00:01', senderIp: '198.51.100.7', targetMac: 'ff:ff:ff:ff:ff:ff', targetIp: '198.51.100.7' });

  const buf = Buffer.alloc(40, 0xa5);
  assert.equal(encodeArp({ op: 1, senderMac: carpVirtualMac(7), senderIp: '192.0.2.100', targetMac: new Uint8Array(6), targetIp: '192.0.2.100' }, buf, 6), 28);
  assert.equal(buf.subarray(6, 34).toString('hex'), frame.subarray(14).toString('hex'));
  assert.ok(buf.subarray(0, 6).every((x) => x === 0xa5) && buf.subarray(34).every((x) => x === 0xa5));

  assert.throws(() => gratuitousArp({ mac: carpVirtualMac(7), vip: '2001:db8::1' }), TypeError);
  assert.throws(() => gratuitousArp({ mac: 'nope', vip: '192.0.2.1' }), TypeError);
  const short = decodeArp(frame.subarray(14, 41));
  assert.ok(!short.ok && short.error === 'truncated');
  const ipv6Arp = Buffer.from(frame.subarray(14));
  ipv6Arp.writeUInt16BE(0x86dd, 2);
  const unsupported = decodeArp(ipv6Arp);
  assert.ok(!unsupported.ok && unsupported.error === 'unsupported');
});

test('unsolicited neighbour advertisement to ff02::1: every field and the ICMPv6 checksum', () => {
  const frame = unsolicitedNaFrame({ target: '2001:db8::100', mac: carpVirtualMac(7) });
  assert.equal(frame.length, 86);
  const eth = decodeEthernet(frame);
  assert.ok(eth.ok);
  assert.deepEqual([eth.frame.dst, eth.frame.src, eth.frame.etherType], ['33:33:00:00:00:01', '00:00:5e:00:01:07', 0x86dd]);

  const ip = decodeIpv6(eth.frame.payload);
  assert.ok(ip.ok);
  assert.deepEqual(
    [ip.packet.src, ip.packet.dst, ip.packet.nextHeader, ip.packet.hopLimit, ip.packet.payload.length],
    ['2001:db8::100', 'ff02::1', 58, 255, 32],
  );
  const na = ip.packet.payload;
  assert.equal(na[0], 136, 'type');
  assert.equal(na[1], 0, 'code');
  assert.equal(na[4], 0x20, 'only the Override flag');
  assert.equal(na.readUInt32BE(4) & 0x1fffffff, 0, 'reserved bits');
  assert.equal(na.subarray(8, 24).toString('hex'), '20010db8000000000000000000000100', 'target');
  assert.equal(na.subarray(24, 26).toString('hex'), '0201', 'target link-layer option, 8 bytes');
  assert.equal(na.subarray(26, 32).toString('hex'), '00005e000107');
  // Golden checksum (computed independently) and an independent check with a hand-built pseudo-header.
  assert.equal(na.toString('hex'), '88009a262000000020010db8000000000000000000000100020100005e000107');
  const pseudo = Buffer.concat([hex('20010db8000000000000000000000100'), hex('ff020000000000000000000000000001'), hex('00000020'), hex('0000003a')]);
  assert.ok(referenceChecksumOk(Buffer.concat([pseudo, na])));

  const d = decodeNeighborAdvert(na, { src: '2001:db8::100', dst: 'ff02::1' });
  assert.ok(d.ok);
  assert.deepEqual(d.na, { router: false, solicited: false, override: true, target: '2001:db8::100', mac: '00:00:5e:00:01:07', checksum: 0x9a26 });
});

test('neighbour advertisement options and refusals', () => {
  const err = (r: NeighborAdvertResult): string => (r.ok ? 'ok' : r.error);
  const ip = { src: 'fe80::1', dst: 'ff02::1' };
  const buf = Buffer.alloc(40, 0xa5);
  assert.equal(encodeNeighborAdvert({ target: '2001:db8::100', mac: carpVirtualMac(7), router: true }, ip, buf, 4), 32);
  assert.ok(buf.subarray(0, 4).every((x) => x === 0xa5) && buf.subarray(36).every((x) => x === 0xa5));
  const na = buf.subarray(4, 36);
  assert.equal(na[4], 0xa0, 'Router + Override');
  const r = decodeNeighborAdvert(na, ip);
  assert.ok(r.ok && r.na.router && r.na.override && !r.na.solicited);
  assert.equal(err(decodeNeighborAdvert(na, { src: 'fe80::2', dst: 'ff02::1' })), 'badsum', 'the source is in the checksum');
  for (let i = 0; i < 32; i++) {
    const bad = Buffer.from(na);
    bad[i] ^= 0x10;
    assert.notEqual(err(decodeNeighborAdvert(bad, ip)), 'ok', `byte ${i}`);
  }
  assert.equal(err(decodeNeighborAdvert(na.subarray(0, 23), ip)), 'truncated');
  assert.equal(err(decodeNeighborAdvert(na, { src: '192.0.2.1', dst: 'ff02::1' })), 'badaddrs');

  // Solicited towards a multicast destination is invalid (RFC 4861 §7.1.2); to a unicast address it is fine.
  const sol = neighborAdvertPacket({ target: '2001:db8::100', mac: carpVirtualMac(7), solicited: true, override: false, src: 'fe80::1', dst: 'fe80::2' });
  const solIp = decodeIpv6(sol);
  assert.ok(solIp.ok);
  const s = decodeNeighborAdvert(solIp.packet.payload, { src: 'fe80::1', dst: 'fe80::2' });
  assert.ok(s.ok && s.na.solicited && !s.na.override);
  const mc = Buffer.alloc(32);
  encodeNeighborAdvert({ target: '2001:db8::100', mac: carpVirtualMac(7), solicited: true }, ip, mc);
  assert.equal(err(decodeNeighborAdvert(mc, ip)), 'badtype');
  assert.throws(() => encodeNeighborAdvert({ target: '192.0.2.1', mac: carpVirtualMac(7) }, ip, Buffer.alloc(32)), TypeError);
  assert.throws(() => encodeNeighborAdvert({ target: '2001:db8::1', mac: carpVirtualMac(7) }, ip, Buffer.alloc(31)), RangeError);
});
