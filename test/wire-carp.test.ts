import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CARP_BOWOUT,
  CARP_HEADER_LEN,
  carpBytes,
  carpDigest,
  carpHmacAddresses,
  carpHmacMessage,
  carpIpv4Packet,
  carpIpv6Packet,
  carpKey,
  decodeCarp,
  decodeCarpIpv4,
  encodeCarp,
} from '../src/wire/carp.js';
import type { CarpAdvert } from '../src/wire/carp.js';
import { INITIAL_ADVERT_COUNTER, acceptPeerCounter, counterFromWords, isOwnEcho, nextAdvertCounter, readCounter } from '../src/wire/advert-counter.js';
import { CARP_STAT_NAMES, CarpCounters, countDecode } from '../src/wire/counters.js';
import { TOS_UCARP, decodeIpv6 } from '../src/wire/ip.js';
import { ETHERTYPE_IPV4, ethernetFrame, multicastMac, ucarpAdvertMac } from '../src/wire/mac.js';
import { internetChecksum } from '../src/wire/checksum.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// carp-protocol.md §13, captured from real ucarp.
interface Vector {
  id: string;
  vhid: number;
  pass: string;
  vip: string;
  advbaseSec: number;
  advskew: number;
  carp: string;
  message: string;
  digest: string;
}
const VECTORS: Vector[] = [
  { id: 'C1', vhid: 7, pass: 's3cret', vip: '192.0.2.100', advbaseSec: 1, advskew: 0, carp: '210700070001808ee70d0ba2d8bb3f0ac7df6b0dfc70e451e39a56c894082b39854fc147', message: '020107c0000264e70d0ba2d8bb3f0a', digest: 'c7df6b0dfc70e451e39a56c894082b39854fc147' },
  { id: 'C2', vhid: 7, pass: 's3cret', vip: '192.0.2.100', advbaseSec: 1, advskew: 0, carp: '21070007000168a7539128f9e8569edc445c19e173fae945747dd1f8891fca1cd5544806', message: '020107c0000264539128f9e8569edc', digest: '445c19e173fae945747dd1f8891fca1cd5544806' },
  { id: 'C3', vhid: 200, pass: 'nineteen-char-pass!', vip: '198.51.100.10', advbaseSec: 2, advskew: 240, carp: '21c8f0070002e9e61cc0b44a9201aa3fda265955588d1945d697762da7ff65f41b93db5f', message: '0201c8c633640a1cc0b44a9201aa3f', digest: 'da265955588d1945d697762da7ff65f41b93db5f' },
  { id: 'C4', vhid: 7, pass: 's3cret', vip: '192.0.2.100', advbaseSec: 1, advskew: 0, carp: '210700070001d0c44fe6f55a15bef39412e14daed6ac159fa04debb0b23c64e1a802279d', message: '020107c00002644fe6f55a15bef394', digest: '12e14daed6ac159fa04debb0b23c64e1a802279d' },
  { id: 'C5', vhid: 7, pass: 's3cret', vip: '192.0.2.100', advbaseSec: 1, advskew: 100, carp: '21076407000175454fe6f55a15bef3957dd052b989b3b6171b7d3d6cde58748090276ad6', message: '020107c00002644fe6f55a15bef395', digest: '7dd052b989b3b6171b7d3d6cde58748090276ad6' },
  { id: 'C6', vhid: 9, pass: 'tiebreak', vip: '198.51.100.50', advbaseSec: 1, advskew: 0, carp: '210900070001a7308cb21a640c4bc73993c982aaee3a2bf90d773198ebe73d94bf0e64e0', message: '020109c63364328cb21a640c4bc739', digest: '93c982aaee3a2bf90d773198ebe73d94bf0e64e0' },
];

const counterOf = (v: Vector): bigint => hex(v.carp).readBigUInt64BE(8);
const advertOf = (v: Vector): CarpAdvert => ({ vhid: v.vhid, advskew: v.advskew, advbaseSec: v.advbaseSec, counter: counterOf(v), key: v.pass, addresses: [v.vip] });

for (const v of VECTORS) {
  test(`${v.id}: encode reproduces the captured ucarp advertisement`, () => {
    const adv = advertOf(v);
    assert.equal(carpHmacMessage(v.vhid, [v.vip], adv.counter).toString('hex'), v.message);
    assert.equal(carpDigest(v.pass, v.vhid, [v.vip], adv.counter).toString('hex'), v.digest);
    assert.equal(carpBytes(adv).toString('hex'), v.carp);
  });

  test(`${v.id}: decode accepts the capture, refuses a wrong key, a wrong VIP set and every flipped byte`, () => {
    const bytes = hex(v.carp);
    const r = decodeCarp(bytes, { key: v.pass, addresses: [v.vip], vhid: v.vhid, ttl: 255 });
    assert.ok(r.ok, r.ok ? undefined : r.detail);
    assert.equal(r.advert.version, 2);
    assert.equal(r.advert.type, 1);
    assert.equal(r.advert.vhid, v.vhid);
    assert.equal(r.advert.advskew, v.advskew);
    assert.equal(r.advert.advbaseSec, v.advbaseSec);
    assert.equal(r.advert.authlen, 7);
    assert.equal(r.advert.demote, 0);
    assert.equal(r.advert.counter, counterOf(v));
    assert.equal(r.advert.checksum, bytes.readUInt16BE(6));
    assert.equal(r.advert.digest.toString('hex'), v.digest);

    // One character more: a different key, except past 19 characters where ifconfig-style truncation drops it.
    const appended = decodeCarp(bytes, { key: v.pass + 'x', addresses: [v.vip] });
    assert.equal(appended.ok ? 'ok' : appended.error, v.pass.length < 19 ? 'badauth' : 'ok');
    const wrong = decodeCarp(bytes, { key: 'wrong-password', addresses: [v.vip] });
    assert.equal(wrong.ok ? 'ok' : wrong.error, 'badauth');
    const otherVips = decodeCarp(bytes, { key: v.pass, addresses: [v.vip, '203.0.113.77'] });
    assert.equal(otherVips.ok ? 'ok' : otherVips.error, 'badauth');

    for (let i = 0; i < CARP_HEADER_LEN; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(bytes);
        bad[i] ^= bit;
        const rb = decodeCarp(bad, { key: v.pass, addresses: [v.vip] });
        assert.equal(rb.ok ? 'ok' : rb.error, 'badsum', `byte ${i} ^ ${bit}`);
      }
    }
  });
}

test('C1: the full captured frame is rebuilt from its inputs (Ethernet + IPv4 TOS 0x10 + CARP)', () => {
  const c1 = VECTORS[0];
  const ip = carpIpv4Packet(advertOf(c1), { src: '192.0.2.1', tos: TOS_UCARP, id: 0x6ba5 });
  assert.equal(ip.length, 56);
  const frame = ethernetFrame({ dst: multicastMac('224.0.0.18'), src: ucarpAdvertMac(7), etherType: ETHERTYPE_IPV4 }, ip);
  assert.equal(
    frame.toString('hex'),
    '01005e00001200005e0000070800451000386ba54000ff706d8cc0000201e0000012210700070001808ee70d0ba2d8bb3f0ac7df6b0dfc70e451e39a56c894082b39854fc147',
  );
  const r = decodeCarpIpv4(ip, { key: 's3cret', addresses: ['192.0.2.100'] });
  assert.ok(r.ok);
  assert.deepEqual(r.ip, { src: '192.0.2.1', dst: '224.0.0.18', ttl: 255 });
  assert.equal(r.advert.counter, 0xe70d0ba2d8bb3f0an);

  const ttl254 = Buffer.from(ip);
  ttl254[8] = 254;
  ttl254.writeUInt16BE(0, 10);
  ttl254.writeUInt16BE(internetChecksum(ttl254, 0, 20), 10);
  const t = decodeCarpIpv4(ttl254, { key: 's3cret', addresses: ['192.0.2.100'] });
  assert.equal(t.ok ? 'ok' : t.error, 'badttl');
  assert.ok(decodeCarpIpv4(ttl254, { key: 's3cret', addresses: ['192.0.2.100'], checkTtl: false }).ok, 'unicast mode skips the TTL check');
  const notCarp = Buffer.from(ip);
  notCarp[9] = 17;
  notCarp.writeUInt16BE(0, 10);
  notCarp.writeUInt16BE(internetChecksum(notCarp, 0, 20), 10);
  const n = decodeCarpIpv4(notCarp, { key: 's3cret', addresses: ['192.0.2.100'] });
  assert.equal(n.ok ? 'ok' : n.error, 'hdrops');
  const short = decodeCarpIpv4(ip.subarray(0, 19), { key: 's3cret', addresses: [] });
  assert.equal(short.ok ? 'ok' : short.error, 'hdrops');
});

test('golden bytes: encodeCarp writes exactly 36 bytes at a non-zero offset of a 0xa5 buffer', () => {
  const buf = Buffer.alloc(64, 0xa5);
  assert.equal(encodeCarp(advertOf(VECTORS[2]), buf, 11), 36);
  assert.equal(buf.subarray(11, 47).toString('hex'), VECTORS[2].carp);
  assert.ok(buf.subarray(0, 11).every((x) => x === 0xa5));
  assert.ok(buf.subarray(47).every((x) => x === 0xa5));
  // A Uint8Array view with its own byteOffset works the same.
  const view = new Uint8Array(buf.buffer, buf.byteOffset + 3, 50).fill(0xa5);
  encodeCarp(advertOf(VECTORS[0]), view, 5);
  assert.equal(Buffer.from(view.subarray(5, 41)).toString('hex'), VECTORS[0].carp);
  assert.equal(view[4], 0xa5);
  assert.equal(view[41], 0xa5);
  assert.throws(() => encodeCarp(advertOf(VECTORS[0]), buf, 29), RangeError);
});

test('S1–S3: the FreeBSD multi-address HMAC (sorting, IPv4 before IPv6, scope bytes, no addresses)', () => {
  const counter = 0x0123456789abcdefn;
  const s1 = ['198.51.100.20', '192.0.2.10', '203.0.113.5', '2001:db8::20', 'fe80::1', '2001:db8::3'];
  const s1Message = '02012a c000020a c6336414 cb007105 20010db8000000000000000000000003 20010db8000000000000000000000020 fe800000000000000000000000000001 0123456789abcdef';
  assert.equal(carpHmacMessage(42, s1, counter).toString('hex'), s1Message.replace(/ /g, ''));
  assert.equal(carpDigest('multi-vip', 42, s1, counter).toString('hex'), 'fc8e988c4b3b56afa0fea684e1f0d0fce6cf6ae0');
  // Order, duplicates, prefix lengths, spelling and a kernel-embedded scope id do not matter.
  const same = ['2001:DB8:0::3/64', 'fe80:7::1', '203.0.113.5/24', '192.0.2.10', '2001:db8::20', '198.51.100.20', '192.0.2.10/32', Buffer.from([198, 51, 100, 20])];
  assert.equal(carpDigest('multi-vip', 42, same, counter).toString('hex'), 'fc8e988c4b3b56afa0fea684e1f0d0fce6cf6ae0');
  assert.equal(carpDigest('multi-vip', 42, ['198.51.100.20'], counter).toString('hex'), '76e8bd4d72b850cae1d744d50f6570379c7d4bd2');
  assert.equal(carpHmacMessage(42, [], counter).toString('hex'), '02012a0123456789abcdef');
  assert.equal(carpDigest('multi-vip', 42, [], counter).toString('hex'), '03fb68d73543099c15371c844f8d251236cb6a85');
  // The selection loop's strict bounds never hash all-zeros / all-ones; numeric IPv4 order.
  assert.equal(carpHmacAddresses(['0.0.0.0', '255.255.255.255', '::', '10.0.0.2', '9.255.255.255']).toString('hex'), '09ffffff0a000002');
  // ff02::/16 (link-local multicast) and ff01:: (interface-local) are scope-cleared too; global multicast is not.
  assert.equal(carpHmacAddresses(['ff02:3::1']).toString('hex'), 'ff020000000000000000000000000001');
  assert.equal(carpHmacAddresses(['ff0e:3::1']).toString('hex'), 'ff0e0003000000000000000000000001');
  assert.throws(() => carpHmacAddresses(['192.0.2.300']), TypeError);

  // Encode/decode with the S1 set, in both families' framing: the HMAC ignores the carrier.
  const adv: CarpAdvert = { vhid: 42, advskew: 17, advbaseSec: 3, counter, key: 'multi-vip', addresses: s1 };
  const bytes = carpBytes(adv);
  assert.equal(bytes.subarray(16).toString('hex'), 'fc8e988c4b3b56afa0fea684e1f0d0fce6cf6ae0');
  assert.ok(decodeCarp(bytes, { key: 'multi-vip', addresses: same }).ok);
  const v6 = decodeIpv6(carpIpv6Packet(adv, { src: 'fe80::1' }));
  assert.ok(v6.ok);
  assert.equal(v6.packet.dst, 'ff02::12');
  assert.equal(v6.packet.hopLimit, 255);
  assert.equal(v6.packet.trafficClass, 0xe0);
  assert.ok(decodeCarp(v6.packet.payload, { key: 'multi-vip', addresses: s1, ttl: v6.packet.hopLimit }).ok);
});

test('decode refuses in FreeBSD order: badlen, badsum, badvhid, badver, badttl, badauth; trailing bytes are ignored', () => {
  const c1 = hex(VECTORS[0].carp);
  const ctx = { key: 's3cret', addresses: ['192.0.2.100'] };
  const err = (r: ReturnType<typeof decodeCarp>): string => (r.ok ? 'ok' : r.error);
  assert.equal(err(decodeCarp(c1.subarray(0, 35), ctx)), 'badlen');
  assert.equal(err(decodeCarp(Buffer.alloc(0), ctx)), 'badlen');
  assert.equal(err(decodeCarp(Buffer.concat([c1, Buffer.alloc(4, 0xee)]), ctx)), 'ok');
  assert.equal(err(decodeCarp(c1, { ...ctx, vhid: 8 })), 'badvhid');
  assert.equal(err(decodeCarp(c1, { lookup: () => undefined })), 'badvhid');
  assert.equal(err(decodeCarp(c1, { lookup: (v) => (v === 7 ? ctx : undefined), ttl: 255 })), 'ok');
  assert.equal(err(decodeCarp(c1, { lookup: (v) => (v === 7 ? ctx : undefined), ttl: 1 })), 'badttl');
  assert.equal(err(decodeCarp(c1, { lookup: (v) => (v === 7 ? { ...ctx, checkTtl: false } : undefined), ttl: 1 })), 'ok');
  assert.equal(err(decodeCarp(c1, { ...ctx, ttl: 254 })), 'badttl');
  assert.equal(err(decodeCarp(c1, { ...ctx, ttl: 254, checkTtl: false })), 'ok');
  // Version 3 (VRRP) with a valid checksum: badver, before TTL and HMAC.
  const v3 = Buffer.from(c1);
  v3[0] = 0x31;
  v3.writeUInt16BE(0, 6);
  v3.writeUInt16BE(internetChecksum(v3, 0, 36), 6);
  assert.equal(err(decodeCarp(v3, { ...ctx, ttl: 1 })), 'badver');
  // type and authlen are neither checked (FreeBSD does not, §2) nor hashed (the HMAC hashes constant 02 01).
  const odd = Buffer.from(c1);
  odd[0] = 0x22;
  odd[3] = 0;
  odd.writeUInt16BE(0, 6);
  odd.writeUInt16BE(internetChecksum(odd, 0, 36), 6);
  const oddResult = decodeCarp(odd, ctx);
  assert.ok(oddResult.ok && oddResult.advert.type === 2 && oddResult.advert.authlen === 0);
  // A configuration that cannot be hashed refuses as badauth, with the reason in the detail.
  const badConfig = decodeCarp(c1, { key: new Uint8Array(21), addresses: ['192.0.2.100'] });
  assert.equal(err(badConfig), 'badauth');
  const badAddr = decodeCarp(c1, { key: 's3cret', addresses: ['not-an-address'] });
  assert.ok(!badAddr.ok && badAddr.error === 'badauth' && badAddr.detail.includes('not-an-address'));
});

test('keys: raw passphrase bytes, NUL-padded, ifconfig truncation to 19 (§4.1)', () => {
  assert.deepEqual(carpKey('s3cret'), { key: Buffer.from('s3cret'), truncated: false });
  const long = carpKey('nineteen-char-pass!-and-more');
  assert.equal(long.key.toString(), 'nineteen-char-pass!');
  assert.equal(long.truncated, true);
  assert.equal(carpKey('x'.repeat(20), { allowFullLength: true }).key.length, 20);
  assert.equal(carpKey('ab\0cd').key.toString(), 'ab');
  // C3 verifies with a longer passphrase, because ifconfig would have kept only 19 characters.
  assert.ok(decodeCarp(hex(VECTORS[2].carp), { key: 'nineteen-char-pass!EXTRA', addresses: ['198.51.100.10'] }).ok);
  // NUL padding is implicit: the key padded to 20 bytes gives the same digest.
  const padded = Buffer.alloc(20);
  padded.write('s3cret');
  assert.ok(decodeCarp(hex(VECTORS[0].carp), { key: padded, addresses: ['192.0.2.100'] }).ok);
  // The empty passphrase is legal in FreeBSD (all-zero key).
  const empty = carpBytes({ vhid: 1, advskew: 0, advbaseSec: 1, counter: 1n, key: '', addresses: ['192.0.2.1'] });
  assert.ok(decodeCarp(empty, { key: new Uint8Array(20), addresses: ['192.0.2.1'] }).ok);
  assert.throws(() => carpDigest(new Uint8Array(21), 1, [], 0n), RangeError);
});

test('encode validates its input; a bow-out advertisement is allowed', () => {
  const base = advertOf(VECTORS[0]);
  for (const bad of [{ vhid: 0 }, { vhid: 256 }, { advskew: -1 }, { advskew: 256 }, { advbaseSec: 0 }, { advbaseSec: 256 }, { demote: 256 }, { counter: -1n }, { counter: 1n << 64n }]) {
    assert.throws(() => carpBytes({ ...base, ...bad }), RangeError, JSON.stringify(bad, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  }
  assert.throws(() => carpBytes({ ...base, addresses: ['192.0.2.1', 'bogus'] }), TypeError);
  const bow = decodeCarp(carpBytes({ ...base, ...CARP_BOWOUT }), { key: 's3cret', addresses: ['192.0.2.100'] });
  assert.ok(bow.ok);
  assert.equal(bow.advert.advbaseSec, 255);
  assert.equal(bow.advert.advskew, 255);
  const openbsd = decodeCarp(carpBytes({ ...base, demote: 3 }), { key: 's3cret', addresses: ['192.0.2.100'] });
  assert.ok(openbsd.ok && openbsd.advert.demote === 3);
});

test('counter (§5): random until a peer is heard, then peer + 1 — reproduces the C4 -> C5 failover', () => {
  const randoms = [0xe70d0ba2d8bb3f0an, 0x539128f9e8569edcn];
  let calls = 0;
  const random = (): bigint => randoms[calls++];
  let s = INITIAL_ADVERT_COUNTER;
  const a = nextAdvertCounter(s, random);
  const b = nextAdvertCounter(a.state, random);
  assert.deepEqual([a.counter, b.counter], randoms, 'a lone master sends a fresh random counter every time (capture 01)');
  assert.ok(isOwnEcho(b.state, randoms[1]));
  assert.ok(!isOwnEcho(b.state, randoms[0]));

  // The new master heard C4 as backup, then sends C4 + 1 in C5.
  s = acceptPeerCounter(b.state, readCounter(hex(VECTORS[3].carp), 8));
  const next = nextAdvertCounter(s, () => assert.fail('no randomness once a peer was heard'));
  assert.equal(next.counter, counterOf(VECTORS[4]));
  const c5 = carpBytes({ ...advertOf(VECTORS[4]), counter: next.counter });
  assert.equal(c5.toString('hex'), VECTORS[4].carp);
  assert.equal(nextAdvertCounter(next.state, random).counter, next.counter + 1n);

  // No replay rejection: an older or equal counter is accepted as is.
  const older = acceptPeerCounter(next.state, 5n);
  assert.equal(older.value, 5n);
  assert.equal(acceptPeerCounter(older, 5n).value, 5n);
  // Wrap-around like ucarp.
  assert.equal(nextAdvertCounter(acceptPeerCounter(s, (1n << 64n) - 1n), random).counter, 0n);
  assert.equal(counterFromWords(0xe70d0ba2, 0xd8bb3f0a), 0xe70d0ba2d8bb3f0an);
  assert.throws(() => counterFromWords(2 ** 32, 0), RangeError);
  assert.throws(() => nextAdvertCounter(INITIAL_ADVERT_COUNTER, () => -1n), RangeError);
});

test('CarpCounters count decode results under carpstats names', () => {
  const c = new CarpCounters();
  const c1 = hex(VECTORS[0].carp);
  const ctx = { key: 's3cret', addresses: ['192.0.2.100'] };
  countDecode(c, 4, decodeCarp(c1, ctx));
  c.countInput(4, decodeCarp(c1, { ...ctx, key: 'nope' }));
  c.countInput(6, decodeCarp(c1.subarray(0, 10), ctx));
  c.countInput(4, decodeCarp(c1, { ...ctx, ttl: 64 }));
  c.countInput(4, decodeCarp(c1, { ...ctx, vhid: 1 }));
  c.countInput(4, decodeCarpIpv4(Buffer.alloc(3), ctx));
  c.countOutput(4);
  c.countOutput(6);
  c.add('preempt');
  const snap = c.snapshot();
  assert.deepEqual(Object.keys(snap), [...CARP_STAT_NAMES]);
  assert.deepEqual(
    Object.fromEntries(Object.entries(snap).filter(([, n]) => n !== 0)),
    { ipackets: 5, ipackets6: 1, badttl: 1, hdrops: 1, badlen: 1, badauth: 1, badvhid: 1, opackets: 1, opackets6: 1, preempt: 1 },
  );
  assert.equal(c.get('badauth'), 1);
  c.reset();
  assert.ok(Object.values(c.snapshot()).every((n) => n === 0));
});
