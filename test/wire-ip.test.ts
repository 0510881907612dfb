import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldSum, internetChecksum, ipv4PseudoHeaderSum, ipv6PseudoHeaderSum, onesSum } from '../src/wire/checksum.js';
import {
  TOS_FREEBSD,
  TOS_UCARP,
  addressBytes,
  decodeIpv4,
  decodeIpv6,
  encodeIpv4Header,
  encodeIpv6Header,
  formatAddress,
  ipv4Packet,
  ipv6Packet,
} from '../src/wire/ip.js';
import type { Ipv4Result } from '../src/wire/ip.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const C1_IP = '451000386ba54000ff706d8cc0000201e0000012';
const C1_CARP = '210700070001808ee70d0ba2d8bb3f0ac7df6b0dfc70e451e39a56c894082b39854fc147';

test('RFC 1071 checksum: the RFC example, odd lengths, and the CARP worked example of §3', () => {
  const rfc = hex('0001f203f4f5f6f7');
  assert.equal(foldSum(onesSum(rfc)), 0xddf2);
  assert.equal(internetChecksum(rfc), 0x220d);
  assert.equal(onesSum(hex('0102 03')), 0x0102 + 0x0300);
  const zeroed = hex(C1_CARP);
  zeroed.writeUInt16BE(0, 6);
  assert.equal(onesSum(zeroed), 0x87f69);
  assert.equal(foldSum(0x87f69), 0x7f71);
  assert.equal(internetChecksum(zeroed), 0x808e);
  assert.equal(internetChecksum(hex(C1_CARP)), 0, 'a valid message sums to 0xffff');
  assert.equal(foldSum(0xffffffff * 300), foldSum(foldSum(0xffffffff) * 300), 'folding is exact beyond 32 bits');
  // Pseudo-headers of §13: IPv4 c0000201 e0000012 00 70 000c; IPv6 src dst 00000018 000000 70.
  assert.equal(foldSum(ipv4PseudoHeaderSum(hex('c0000201'), hex('e0000012'), 112, 12)), foldSum(onesSum(hex('c0000201e0000012 0070 000c'))));
  const s6 = addressBytes('fe80::ff:fe00:a01')!;
  const d6 = addressBytes('ff02::12')!;
  assert.equal(foldSum(ipv6PseudoHeaderSum(s6, d6, 112, 24)), foldSum(onesSum(Buffer.concat([s6, d6, hex('00000018 000000 70')]))));
  assert.equal(foldSum(ipv6PseudoHeaderSum(s6, d6, 58, 0x12345)), foldSum(onesSum(Buffer.concat([s6, d6, hex('00012345 000000 3a')]))));
  assert.throws(() => ipv4PseudoHeaderSum(s6, d6, 112, 1), RangeError);
});

test('IPv4 header: golden bytes of capture C1 at a non-zero offset of a 0xa5 buffer', () => {
  const buf = Buffer.alloc(30, 0xa5);
  const n = encodeIpv4Header({ src: '192.0.2.1', dst: '224.0.0.18', proto: 112, tos: TOS_UCARP, id: 0x6ba5 }, 36, buf, 5);
  assert.equal(n, 20);
  assert.equal(buf.subarray(5, 25).toString('hex'), C1_IP);
  assert.ok(buf.subarray(0, 5).every((x) => x === 0xa5) && buf.subarray(25).every((x) => x === 0xa5));
  const fb = ipv4Packet({ src: '192.0.2.1', dst: '224.0.0.18', proto: 112, tos: TOS_FREEBSD }, hex(C1_CARP));
  assert.equal(fb.subarray(0, 10).toString('hex'), '45e000380000' + '4000ff70');
  assert.equal(internetChecksum(fb, 0, 20), 0);
  assert.throws(() => encodeIpv4Header({ src: '2001:db8::1', dst: '224.0.0.18', proto: 112 }, 0, buf), TypeError);
  assert.throws(() => encodeIpv4Header({ src: '192.0.2.1', dst: '224.0.0.18', proto: 112, ttl: 256 }, 0, Buffer.alloc(20)), RangeError);
  assert.throws(() => encodeIpv4Header({ src: '192.0.2.1', dst: '224.0.0.18', proto: 112 }, 0, Buffer.alloc(19)), RangeError);
});

test('decodeIpv4 reads what a Linux raw socket delivers and names each fault', () => {
  const pkt = hex(C1_IP + C1_CARP);
  const r = decodeIpv4(pkt);
  assert.ok(r.ok);
  const { payload, ...fields } = r.packet;
  assert.deepEqual(fields, { src: '192.0.2.1', dst: '224.0.0.18', ttl: 255, proto: 112, tos: 0x10, id: 0x6ba5, dontFragment: true, headerLength: 20 });
  assert.equal(payload.toString('hex'), C1_CARP);

  const err = (x: Ipv4Result): string => (x.ok ? 'ok' : x.error);
  const fix = (b: Buffer, hl = 20): Buffer => {
    b.writeUInt16BE(0, 10);
    b.writeUInt16BE(internetChecksum(b, 0, hl), 10);
    return b;
  };
  assert.equal(err(decodeIpv4(pkt.subarray(0, 19))), 'truncated');
  assert.equal(err(decodeIpv4(pkt.subarray(0, 55))), 'truncated');
  const v6 = Buffer.from(pkt);
  v6[0] = 0x65;
  assert.equal(err(decodeIpv4(v6)), 'badversion');
  const ihl4 = Buffer.from(pkt);
  ihl4[0] = 0x44;
  assert.equal(err(decodeIpv4(ihl4)), 'badhdrlen');
  const shortTotal = fix(Buffer.from(pkt));
  shortTotal.writeUInt16BE(19, 2);
  assert.equal(err(decodeIpv4(fix(shortTotal))), 'badhdrlen');
  const sum = Buffer.from(pkt);
  sum[8] = 254;
  assert.equal(err(decodeIpv4(sum)), 'badhdrsum');
  const frag = Buffer.from(pkt);
  frag.writeUInt16BE(0x2000, 6);
  assert.equal(err(decodeIpv4(fix(frag))), 'fragment');
  // Trailing bytes past the total length are not payload; options are skipped.
  const trailing = decodeIpv4(Buffer.concat([pkt, hex('eeee')]));
  assert.ok(trailing.ok && trailing.packet.payload.length === 36);
  const withOpt = Buffer.concat([pkt.subarray(0, 20), hex('01010100'), pkt.subarray(20)]);
  withOpt[0] = 0x46;
  withOpt.writeUInt16BE(60, 2);
  const o = decodeIpv4(fix(withOpt, 24));
  assert.ok(o.ok && o.packet.headerLength === 24 && o.packet.payload.toString('hex') === C1_CARP);
});

test('IPv6 header: golden bytes, decode, faults', () => {
  const buf = Buffer.alloc(50, 0xa5);
  encodeIpv6Header({ src: 'fe80::ff:fe00:a01', dst: 'ff02::12', nextHeader: 112, trafficClass: TOS_FREEBSD, flowLabel: 0x12345 }, 36, buf, 3);
  assert.equal(
    buf.subarray(3, 43).toString('hex'),
    '6e012345' + '0024' + '70' + 'ff' + 'fe80000000000000000000fffe000a01' + 'ff020000000000000000000000000012',
  );
  assert.ok(buf.subarray(0, 3).every((x) => x === 0xa5) && buf.subarray(43).every((x) => x === 0xa5));
  const pkt = ipv6Packet({ src: '2001:db8::1', dst: 'ff02::12', nextHeader: 112, hopLimit: 254 }, hex(C1_CARP));
  const r = decodeIpv6(pkt);
  assert.ok(r.ok);
  const { payload, ...fields } = r.packet;
  assert.deepEqual(fields, { src: '2001:db8::1', dst: 'ff02::12', hopLimit: 254, nextHeader: 112, trafficClass: 0, flowLabel: 0 });
  assert.equal(payload.toString('hex'), C1_CARP);
  assert.equal(decodeIpv6(pkt.subarray(0, 39)).ok, false);
  const cut = decodeIpv6(pkt.subarray(0, 75));
  assert.ok(!cut.ok && cut.error === 'truncated');
  const v4 = Buffer.from(pkt);
  v4[0] = 0x45;
  const bv = decodeIpv6(v4);
  assert.ok(!bv.ok && bv.error === 'badversion');
  assert.throws(() => encodeIpv6Header({ src: '192.0.2.1', dst: 'ff02::12', nextHeader: 112 }, 0, Buffer.alloc(40)), TypeError);
  assert.throws(() => encodeIpv6Header({ src: '::1', dst: 'ff02::12', nextHeader: 112, flowLabel: 1 << 20 }, 0, Buffer.alloc(40)), RangeError);
});

test('address bytes and canonical text', () => {
  assert.equal(addressBytes('192.0.2.100')?.toString('hex'), 'c0000264');
  assert.equal(addressBytes('192.0.2.100/24')?.toString('hex'), 'c0000264');
  assert.equal(addressBytes('2001:DB8::1/64')?.toString('hex'), '20010db8000000000000000000000001');
  assert.equal(addressBytes(hex('c0000264'))?.toString('hex'), 'c0000264');
  for (const bad of ['192.0.2.300', 'fe80::1%eth0', '', 'x/24']) assert.equal(addressBytes(bad), undefined, bad);
  assert.equal(addressBytes(new Uint8Array(5)), undefined);
  assert.equal(formatAddress(hex('c0000264')), '192.0.2.100');
  assert.equal(formatAddress(hex('20010db8000000000000000000000200')), '2001:db8::200');
  assert.equal(formatAddress(hex('fe80000000000000000000fffe000a01')), 'fe80::ff:fe00:a01');
  assert.equal(formatAddress(new Uint8Array(16)), '::');
});
