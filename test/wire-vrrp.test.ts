import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeVrrp, encodeVrrp, vrrpBytes, vrrpPacket } from '../src/wire/vrrp.js';
import type { VrrpDecodeResult } from '../src/wire/vrrp.js';
import { internetChecksum, pseudoHeaderSum } from '../src/wire/checksum.js';
import { addressBytes, decodeIpv4, decodeIpv6 } from '../src/wire/ip.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const err = (r: VrrpDecodeResult): string => (r.ok ? 'ok' : r.error);

// carp-protocol.md §13, keepalived 2.2.7 capture 06.
const VECTORS = [
  { id: 'V1', src: '192.0.2.1', dst: '224.0.0.18', msg: '3133c8010064a10dc00002c8', vrid: 51, priority: 200, cs: 100, addr: '192.0.2.200', messageOnly: '439e' },
  { id: 'V2', src: '192.0.2.1', dst: '224.0.0.18', msg: '313300010064690ec00002c8', vrid: 51, priority: 0, cs: 100, addr: '192.0.2.200', messageOnly: '0b9f' },
  { id: 'V3', src: '192.0.2.2', dst: '224.0.0.18', msg: '313364010064050dc00002c8', vrid: 51, priority: 100, cs: 100, addr: '192.0.2.200', messageOnly: 'a79e' },
  { id: 'V4', src: 'fe80::ff:fe00:a01', dst: 'ff02::12', msg: '3134c8010032cfbf20010db8000000000000000000000200', vrid: 52, priority: 200, cs: 50, addr: '2001:db8::200', messageOnly: 'd6de' },
  { id: 'V5', src: 'fe80::ff:fe00:b02', dst: 'ff02::12', msg: '31346401003232bf20010db8000000000000000000000200', vrid: 52, priority: 100, cs: 50, addr: '2001:db8::200', messageOnly: '3adf' },
];

for (const v of VECTORS) {
  test(`${v.id}: encode reproduces the keepalived advertisement (pseudo-header checksum)`, () => {
    const adv = { vrid: v.vrid, priority: v.priority, maxAdvertIntervalCs: v.cs, addresses: [v.addr] };
    assert.equal(vrrpBytes(adv, { src: v.src, dst: v.dst }).toString('hex'), v.msg);
    assert.equal(vrrpBytes(adv, { src: v.src }).toString('hex'), v.msg, 'the group is the default destination');
    const zeroed = hex(v.msg);
    zeroed.writeUInt16BE(0, 6);
    assert.equal(internetChecksum(zeroed).toString(16).padStart(4, '0'), v.messageOnly, 'the message-only checksum differs');
  });

  test(`${v.id}: decode accepts the capture and refuses a flipped byte or another IP source`, () => {
    const bytes = hex(v.msg);
    const r = decodeVrrp(bytes, { src: v.src, dst: v.dst, ttl: 255, vrid: v.vrid });
    assert.ok(r.ok, r.ok ? undefined : r.detail);
    assert.deepEqual(r.advert, {
      version: 3,
      type: 1,
      vrid: v.vrid,
      priority: v.priority,
      count: 1,
      reserved: 0,
      maxAdvertIntervalCs: v.cs,
      checksum: bytes.readUInt16BE(6),
      family: v.addr.includes(':') ? 6 : 4,
      addresses: [v.addr],
      messageOnlyChecksum: false,
    });
    for (let i = 0; i < bytes.length; i++) {
      const bad = Buffer.from(bytes);
      bad[i] ^= 0x04;
      const want = i === 0 ? 'badver' : i === 3 ? 'badlen' : 'badsum'; // version nibble, address count
      assert.equal(err(decodeVrrp(bad, { src: v.src, dst: v.dst })), want, `byte ${i}`);
    }
    const otherSrc = v.src.includes(':') ? 'fe80::1' : '192.0.2.9';
    assert.equal(err(decodeVrrp(bytes, { src: otherSrc, dst: v.dst })), 'badsum');
  });
}

test('golden bytes: encodeVrrp at a non-zero offset of a 0xa5 buffer, several addresses', () => {
  const buf = Buffer.alloc(40, 0xa5);
  const n = encodeVrrp({ vrid: 51, priority: 200, maxAdvertIntervalCs: 100, addresses: ['192.0.2.200'] }, { src: '192.0.2.1', dst: '224.0.0.18' }, buf, 9);
  assert.equal(n, 12);
  assert.equal(buf.subarray(9, 21).toString('hex'), VECTORS[0].msg);
  assert.ok(buf.subarray(0, 9).every((x) => x === 0xa5) && buf.subarray(21).every((x) => x === 0xa5));

  const multi = vrrpBytes({ vrid: 9, priority: 255, maxAdvertIntervalCs: 4095, addresses: ['192.0.2.1', '198.51.100.7/24'] }, { src: '192.0.2.1' });
  assert.equal(multi.length, 16);
  assert.equal(multi.subarray(0, 6).toString('hex'), '3109ff020fff');
  assert.equal(multi.subarray(8).toString('hex'), 'c0000201c6336407');
  const d = decodeVrrp(multi, { src: '192.0.2.1', dst: '224.0.0.18' });
  assert.ok(d.ok && d.advert.addresses.join() === '192.0.2.1,198.51.100.7' && d.advert.maxAdvertIntervalCs === 4095);
});

test('IP framing: TTL 255, protocol 112, TOS 0xc0 by default, both families', () => {
  const adv = { vrid: 51, priority: 200, maxAdvertIntervalCs: 100, addresses: ['192.0.2.200'] };
  const p4 = decodeIpv4(vrrpPacket(adv, { src: '192.0.2.1' }));
  assert.ok(p4.ok);
  assert.deepEqual([p4.packet.dst, p4.packet.ttl, p4.packet.proto, p4.packet.tos, p4.packet.dontFragment], ['224.0.0.18', 255, 112, 0xc0, true]);
  assert.equal(p4.packet.payload.toString('hex'), VECTORS[0].msg);
  const noDf = decodeIpv4(vrrpPacket(adv, { src: '192.0.2.1', dontFragment: false }));
  assert.ok(noDf.ok && !noDf.packet.dontFragment, 'keepalived sends without DF');
  const p6 = decodeIpv6(vrrpPacket({ ...adv, vrid: 52, maxAdvertIntervalCs: 50, addresses: ['2001:db8::200'] }, { src: 'fe80::ff:fe00:a01' }));
  assert.ok(p6.ok);
  assert.deepEqual([p6.packet.dst, p6.packet.hopLimit, p6.packet.nextHeader], ['ff02::12', 255, 112]);
  assert.equal(p6.packet.payload.toString('hex'), VECTORS[3].msg);
});

test('decode refusals: badttl, badlen, badver, badvhid, badaddrs; reserved bits ignored', () => {
  const v1 = hex(VECTORS[0].msg);
  const ip = { src: '192.0.2.1', dst: '224.0.0.18' };
  assert.equal(err(decodeVrrp(v1, { ...ip, ttl: 254 })), 'badttl');
  assert.equal(err(decodeVrrp(v1.subarray(0, 7), ip)), 'badlen');
  assert.equal(err(decodeVrrp(v1.subarray(0, 11), ip)), 'badlen');
  assert.equal(err(decodeVrrp(v1, { ...ip, vrid: 52 })), 'badvhid');
  assert.equal(err(decodeVrrp(v1, { ...ip, vrid: (n) => n === 51 })), 'ok');
  assert.equal(err(decodeVrrp(v1, { ...ip, vrid: () => false })), 'badvhid');
  assert.equal(err(decodeVrrp(v1, { src: '192.0.2.1', dst: 'ff02::12' })), 'badaddrs');
  assert.equal(err(decodeVrrp(v1, { src: 'nonsense', dst: '224.0.0.18' })), 'badaddrs');
  // A CARP advertisement (version 2) on protocol 112 is not VRRPv3.
  assert.equal(err(decodeVrrp(hex('210700070001808ee70d0ba2d8bb3f0ac7df6b0dfc70e451e39a56c894082b39854fc147'), ip)), 'badver');
  const type2 = Buffer.from(v1);
  type2[0] = 0x32;
  assert.equal(err(decodeVrrp(type2, ip)), 'badver');
  // The 4 reserved bits are ignored (and re-checksummed here so only they differ).
  const rsvd = Buffer.from(v1);
  rsvd[4] |= 0xa0;
  rsvd.writeUInt16BE(0, 6);
  const pseudo = pseudoHeaderSum(addressBytes(ip.src)!, addressBytes(ip.dst)!, 112, rsvd.length);
  rsvd.writeUInt16BE(internetChecksum(rsvd, 0, rsvd.length, pseudo), 6);
  const r = decodeVrrp(rsvd, ip);
  assert.ok(r.ok && r.advert.reserved === 0xa && r.advert.maxAdvertIntervalCs === 100);
});

test('message-only IPv4 checksum is accepted only through the compatibility option, never for IPv6', () => {
  const ip = { src: '192.0.2.1', dst: '224.0.0.18' };
  const legacy = hex(VECTORS[0].msg);
  legacy.write(VECTORS[0].messageOnly, 6, 'hex');
  assert.equal(err(decodeVrrp(legacy, ip)), 'badsum');
  const r = decodeVrrp(legacy, { ...ip, acceptMessageOnlyChecksum: true });
  assert.ok(r.ok && r.advert.messageOnlyChecksum);
  const v6 = hex(VECTORS[3].msg);
  v6.write(VECTORS[3].messageOnly, 6, 'hex');
  assert.equal(err(decodeVrrp(v6, { src: VECTORS[3].src, dst: VECTORS[3].dst, acceptMessageOnlyChecksum: true })), 'badsum');
});

test('encode validates its input', () => {
  const ok = { vrid: 1, priority: 100, maxAdvertIntervalCs: 100, addresses: ['192.0.2.200'] };
  const ip = { src: '192.0.2.1' };
  for (const bad of [{ vrid: 0 }, { vrid: 256 }, { priority: 256 }, { maxAdvertIntervalCs: 0 }, { maxAdvertIntervalCs: 4096 }, { addresses: [] }]) {
    assert.throws(() => vrrpBytes({ ...ok, ...bad }, ip), RangeError, JSON.stringify(bad));
  }
  assert.throws(() => vrrpBytes({ ...ok, addresses: ['2001:db8::1'] }, ip), TypeError);
  assert.throws(() => vrrpBytes(ok, { src: '192.0.2.1', dst: 'ff02::12' }), TypeError);
  assert.throws(() => encodeVrrp(ok, ip, Buffer.alloc(11)), RangeError);
});
