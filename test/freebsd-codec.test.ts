/**
 * Golden bytes for every FreeBSD struct codec, both ways. The hex is written from the tables of
 * freebsd-kernel-abi.md §2-§5 (offsets, little-endian integers, network-order addresses); each
 * encode goes into a buffer pre-filled with 0xa5 at a non-zero offset, so a write outside the
 * struct shows up.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeIfreqAddr,
  decodeIfreqCapNv,
  decodeIfreqData,
  decodeIfreqFlags,
  decodeIfreqName,
  decodeSockaddrIn,
  decodeSockaddrIn6,
  encodeIfreq,
  encodeSockaddrIn,
  encodeSockaddrIn6,
  ifreqBytes,
  maskPrefix,
  prefixMask,
} from '../src/kernel/freebsd/layout.js';
import {
  decodeIn6Aliasreq,
  decodeIn6Ifreq,
  decodeInAliasreq,
  encodeIn6Aliasreq,
  encodeIn6Ifreq,
  encodeInAliasreq,
  in6AliasreqBytes,
} from '../src/kernel/freebsd/layout-addr.js';
import { carpKeyBytes, carpKeyRaw, carpKeyText, carpreqBytes, decodeCarpreq, encodeCarpreq } from '../src/kernel/freebsd/layout-carp.js';
import {
  type CarpStats,
  decodeCarpstats,
  decodePfsyncreq,
  decodePfsyncstats,
  encodeCarpstats,
  encodePfsyncreq,
  encodePfsyncstats,
  pfsyncreqBytes,
} from '../src/kernel/freebsd/layout-pfsync.js';

const OFF = 5;
const hex = (s: string) => s.replace(/\s+/g, '');
const zeros = (n: number) => '00'.repeat(n);
const u64le = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b.toString('hex');
};

/** Encodes at OFF into a 0xa5-filled buffer, checks nothing outside was touched, returns the struct. */
function encodeAt(size: number, encode: (buf: Buffer, off: number) => void): Buffer {
  const buf = Buffer.alloc(OFF + size + 7, 0xa5);
  encode(buf, OFF);
  assert.ok(buf.subarray(0, OFF).every((b) => b === 0xa5), 'bytes before the struct were written');
  assert.ok(buf.subarray(OFF + size).every((b) => b === 0xa5), 'bytes after the struct were written');
  return buf;
}

/** The same bytes placed at OFF in a 0xa5 buffer, for decoding at a non-zero offset. */
function placed(h: string): Buffer {
  const b = Buffer.from(hex(h), 'hex');
  return Buffer.concat([Buffer.alloc(OFF, 0xa5), b, Buffer.alloc(3, 0xa5)]);
}

const IFNAME_EM0 = `656d3000${zeros(12)}`;

test('sockaddr_in: 16 bytes, sin_len 16, family 2, port and address in network order', () => {
  const want = hex('10 02 0050 c0000201 0000000000000000');
  const buf = encodeAt(16, (b, o) => encodeSockaddrIn({ address: '192.0.2.1', port: 80 }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 16).toString('hex'), want);
  assert.deepEqual(decodeSockaddrIn(placed(want), OFF), { address: '192.0.2.1', port: 80 });
  assert.equal(decodeSockaddrIn(placed(zeros(16)), OFF), undefined, 'an unset slot');
  assert.throws(() => decodeSockaddrIn(placed(`101c${zeros(14)}`), OFF), /bad header/, 'family 28 in a sockaddr_in');
  assert.throws(() => decodeSockaddrIn(placed(`0802${zeros(14)}`), OFF), /sin_len 8/, 'sin_len 8');
  assert.throws(() => decodeSockaddrIn(Buffer.alloc(10), 0), RangeError, 'short buffer');
  assert.throws(() => encodeSockaddrIn({ address: '2001:db8::1' }, Buffer.alloc(16), 0), /not an IPv4/);
});

test('sockaddr_in6: 28 bytes, sin6_len 28, family 28, scope id in host order', () => {
  const want = hex('1c 1c 0000 00000000 20010db8000000000000000000000001 05000000');
  const buf = encodeAt(28, (b, o) => encodeSockaddrIn6({ address: '2001:db8::1', scopeId: 5 }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 28).toString('hex'), want);
  assert.deepEqual(decodeSockaddrIn6(placed(want), OFF), { address: '2001:db8::1', port: 0, flowinfo: 0, scopeId: 5 });
  assert.throws(() => decodeSockaddrIn6(placed(`1c02${zeros(26)}`), OFF), /bad header/, 'family 2 in a sockaddr_in6');
  assert.throws(() => decodeSockaddrIn6(placed(`1000${zeros(26)}`), OFF), /sin6_len 16/);
});

test('ifreq: 32 bytes; name, then ifr_data / ifr_flags / ifr_addr / ifr_cap_nv in the union at 16', () => {
  const data = hex(`${IFNAME_EM0} bc9a785634120000 ${zeros(8)}`);
  let buf = encodeAt(32, (b, o) => encodeIfreq({ name: 'em0', data: 0x123456789abcn }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 32).toString('hex'), data);
  assert.equal(decodeIfreqName(placed(data), OFF), 'em0');
  assert.equal(decodeIfreqData(placed(data), OFF), 0x123456789abcn);

  // ifr_flags holds the low 16 bits, ifr_flagshigh the high 16 (SIOCSIFFLAGS).
  const flags = hex(`${IFNAME_EM0} 4380 0100 ${zeros(12)}`);
  buf = encodeAt(32, (b, o) => encodeIfreq({ name: 'em0', flags: 0x18043 }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 32).toString('hex'), flags);
  assert.equal(decodeIfreqFlags(placed(flags), OFF), 0x18043);

  const addr = hex(`${IFNAME_EM0} 10020000 c000020a 0000000000000000`);
  buf = encodeAt(32, (b, o) => encodeIfreq({ name: 'em0', addr: '192.0.2.10' }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 32).toString('hex'), addr);
  assert.equal(decodeIfreqAddr(placed(addr), OFF), '192.0.2.10');

  const nv = hex(`706673796e633000${zeros(8)} 00002000 44000000 443322110 07f0000`);
  buf = encodeAt(32, (b, o) => encodeIfreq({ name: 'pfsync0', capNv: { bufLength: 0x200000, length: 0x44, buffer: 0x7f0011223344n } }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 32).toString('hex'), nv);
  assert.deepEqual(decodeIfreqCapNv(placed(nv), OFF), { bufLength: 0x200000, length: 0x44, buffer: 0x7f0011223344n });

  assert.equal(ifreqBytes({ name: 'em0' }).toString('hex'), hex(`${IFNAME_EM0} ${zeros(16)}`));
  assert.throws(() => ifreqBytes({ name: 'em0', data: 1n, flags: 1 }), /at most one/, 'one union, one member');
});

test('interface names: 15 bytes fit, 16 are refused, never cut', () => {
  const fifteen = 'abcdefghijklmno';
  const b = ifreqBytes({ name: fifteen, flags: 0 });
  assert.equal(b[15], 0);
  assert.equal(decodeIfreqName(b, 0), fifteen);
  assert.throws(() => ifreqBytes({ name: `${fifteen}p` }), RangeError);
  assert.throws(() => ifreqBytes({ name: 'ém0ém0ém0ém0' }), RangeError, '12 characters but 16 UTF-8 bytes');
  assert.throws(() => ifreqBytes({ name: '' }), RangeError);
  assert.throws(() => ifreqBytes({ name: 'em\u00000' }), RangeError);
  assert.throws(() => decodeIfreqName(Buffer.alloc(32, 0x41), 0), /not NUL-terminated/);
  assert.throws(() => encodeIfreq({ name: 'em0' }, Buffer.alloc(40), 9), RangeError, 'struct past the buffer end');
});

test('carpreq: 40 bytes, five int32 then the zero-padded 20-byte key', () => {
  const want = hex(`01000000 07000000 02000000 64000000 01000000 736563726574${zeros(14)}`);
  const value = { count: 1, vhid: 7, state: 2, advskew: 100, advbase: 1, key: carpKeyBytes('secret') };
  const buf = encodeAt(40, (b, o) => encodeCarpreq(value, b, o));
  assert.equal(buf.subarray(OFF, OFF + 40).toString('hex'), want);
  assert.deepEqual(decodeCarpreq(placed(want), OFF), value);
  assert.equal(carpreqBytes({ ...value, key: Buffer.alloc(0) }).subarray(20).toString('hex'), zeros(20));
  assert.throws(() => carpreqBytes({ ...value, key: Buffer.alloc(21) }), RangeError);
  assert.throws(() => carpreqBytes({ ...value, vhid: 2 ** 31 }), RangeError);
  assert.throws(() => decodeCarpreq(Buffer.alloc(39), 0), RangeError);
});

test('CARP key: the UTF-8 passphrase zero-padded to 20 bytes (T10)', () => {
  assert.equal(carpKeyBytes('pass').toString('hex'), `70617373${zeros(16)}`);
  assert.equal(carpKeyBytes('x'.repeat(20)).length, 20);
  assert.equal(carpKeyRaw('clé').toString('hex'), '636cc3a9');
  assert.throws(() => carpKeyBytes('x'.repeat(21)), RangeError);
  assert.throws(() => carpKeyBytes('éééééééééé1'), RangeError, '11 characters, 21 bytes');
  assert.throws(() => carpKeyBytes('a\u0000b'), RangeError);
  assert.equal(carpKeyText(carpKeyBytes('secret')), 'secret');
  assert.equal(carpKeyText(Buffer.alloc(20)), undefined, 'no key');
});

test('in_aliasreq: 68 bytes, mask always present, vhid at 64', () => {
  const want = hex(`766c616e3130${zeros(10)} 10020000c000020a${zeros(8)} ${zeros(16)} 10020000ffffff00${zeros(8)} 07000000`);
  const buf = encodeAt(68, (b, o) => encodeInAliasreq({ name: 'vlan10', address: '192.0.2.10', prefix: 24, vhid: 7 }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 68).toString('hex'), want);
  assert.deepEqual(decodeInAliasreq(placed(want), OFF), { name: 'vlan10', address: '192.0.2.10', prefix: 24, vhid: 7 });
  const withBroadcast = encodeAt(68, (b, o) => encodeInAliasreq({ name: 'em0', address: '192.0.2.10', prefix: 32, broadcast: '192.0.2.255', vhid: 1 }, b, o));
  assert.deepEqual(decodeInAliasreq(withBroadcast, OFF), { name: 'em0', address: '192.0.2.10', prefix: 32, broadcast: '192.0.2.255', vhid: 1 });
  assert.throws(() => encodeInAliasreq({ name: 'em0', address: '192.0.2.10', prefix: 33, vhid: 1 }, Buffer.alloc(68), 0), RangeError);
  const holey = Buffer.from(want, 'hex');
  holey.writeUInt32BE(0xff00ff00, 52);
  assert.throws(() => decodeInAliasreq(holey, 0), /non-contiguous/);
  const unset = Buffer.from(want, 'hex');
  unset.fill(0, 16, 32);
  assert.throws(() => decodeInAliasreq(unset, 0), /unset/);
});

test('in6_aliasreq: 136 bytes, prefixmask sin6_len 28, both lifetimes infinite (T7), vhid at 128, tail padding', () => {
  const want = hex(`${IFNAME_EM0}
    1c1c0000 00000000 20010db8000000000000000000000010 00000000
    ${zeros(28)}
    1c1c0000 00000000 ffffffffffffffff0000000000000000 00000000
    00000000
    ${zeros(8)} ${zeros(8)} ffffffff ffffffff
    07000000 00000000`);
  const buf = encodeAt(136, (b, o) => encodeIn6Aliasreq({ name: 'em0', address: '2001:db8::10', prefix: 64, vhid: 7 }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 136).toString('hex'), want);
  assert.deepEqual(decodeIn6Aliasreq(placed(want), OFF), {
    name: 'em0', address: '2001:db8::10', scopeId: 0, prefix: 64, flags: 0, vltime: 0xffffffff, pltime: 0xffffffff, vhid: 7,
  });
  const ll = decodeIn6Aliasreq(in6AliasreqBytes({ name: 'em0', address: 'fe80::1', scopeId: 3, prefix: 128, flags: 0x20, vhid: 9 }), 0);
  assert.deepEqual([ll.scopeId, ll.prefix, ll.flags, ll.vhid], [3, 128, 0x20, 9]);
  const nomask = Buffer.from(want, 'hex');
  nomask[72] = 0;
  assert.throws(() => decodeIn6Aliasreq(nomask, 0), /prefixmask sin6_len 0/);
  const badFamily = Buffer.from(want, 'hex');
  badFamily[17] = 2;
  assert.throws(() => decodeIn6Aliasreq(badFamily, 0), /bad header/);
  assert.throws(() => in6AliasreqBytes({ name: 'em0', address: '192.0.2.1', prefix: 24, vhid: 1 }), /not an IPv6/);
});

test('in6_ifreq: 288 bytes, sockaddr_in6 at 16 and zeros to the end', () => {
  const want = hex(`${IFNAME_EM0} 1c1c0000 00000000 20010db8000000000000000000000010 00000000 ${zeros(244)}`);
  const buf = encodeAt(288, (b, o) => encodeIn6Ifreq({ name: 'em0', address: '2001:db8::10' }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 288).toString('hex'), want);
  assert.deepEqual(decodeIn6Ifreq(placed(want), OFF), { name: 'em0', address: '2001:db8::10', scopeId: 0 });
  assert.throws(() => decodeIn6Ifreq(Buffer.alloc(287), 0), RangeError);
});

test('pfsyncreq: 28 bytes; defer written as PFSYNCF_DEFER (2) and read per version (§5.2)', () => {
  const want = hex(`656d3100${zeros(12)} c0000202 80000000 02000000`);
  const buf = encodeAt(28, (b, o) => encodePfsyncreq({ syncdev: 'em1', syncpeer: '192.0.2.2', maxupdates: 128, defer: true }, b, o));
  assert.equal(buf.subarray(OFF, OFF + 28).toString('hex'), want);
  assert.deepEqual(decodePfsyncreq(placed(want), OFF, 14), {
    syncdev: 'em1', syncpeer: '192.0.2.2', maxupdates: 128, defer: true, rawDefer: 2, bulkUpdateDone: false,
  });
  const detach = pfsyncreqBytes({ syncdev: '', maxupdates: 0, defer: false });
  assert.equal(detach.toString('hex'), zeros(28), 'empty syncdev detaches, peer 0 is multicast');
  const raw = (v: number, peer = '00000000') => Buffer.from(hex(`656d3100${zeros(12)} ${peer} 80000000 ${Buffer.from([v, 0, 0, 0]).toString('hex')}`), 'hex');
  // 13 returns defer as 0/1; 14+ return the flag word PFSYNCF_OK | PFSYNCF_DEFER.
  assert.deepEqual([decodePfsyncreq(raw(1), 0, 13).defer, decodePfsyncreq(raw(1), 0, 13).bulkUpdateDone], [true, undefined]);
  assert.deepEqual([decodePfsyncreq(raw(1), 0, 14).defer, decodePfsyncreq(raw(1), 0, 14).bulkUpdateDone], [false, true]);
  assert.deepEqual([decodePfsyncreq(raw(3), 0, 15).defer, decodePfsyncreq(raw(3), 0, 15).bulkUpdateDone], [true, true]);
  assert.equal(decodePfsyncreq(raw(0, 'e00000f0'), 0, 14).syncpeer, undefined, '224.0.0.240 is the default group');
  assert.throws(() => pfsyncreqBytes({ syncdev: 'em1', syncpeer: '2001:db8::1', maxupdates: 1, defer: false }), /not an IPv4/);
});

test('carpstats: 16 little-endian u64 counters in header order', () => {
  const names = ['ipackets', 'ipackets6', 'badif', 'badttl', 'hdrops', 'badsum', 'badver', 'badlen', 'badauth', 'badvhid', 'badaddrs', 'opackets', 'opackets6', 'onomem', 'ostates', 'preempt'];
  const want = names.map((_, i) => u64le(i + 1)).join('');
  const value = Object.fromEntries(names.map((n, i) => [n, BigInt(i + 1)])) as CarpStats;
  const buf = encodeAt(128, (b, o) => encodeCarpstats(value, b, o));
  assert.equal(buf.subarray(OFF, OFF + 128).toString('hex'), want);
  assert.deepEqual(decodeCarpstats(placed(want), OFF), value);
  assert.throws(() => decodeCarpstats(Buffer.alloc(127)), RangeError);
});

test('pfsyncstats: parsed by length, ACT_MAX = (len - 128) / 16 (336 / 368 / 400 bytes)', () => {
  for (const [version, actMax] of [[13, 13], [14, 15], [15, 17]]) {
    const want = [...Array.from({ length: 16 }, (_, i) => u64le(i + 1)), ...Array.from({ length: actMax }, (_, i) => u64le(100 + i)), ...Array.from({ length: actMax }, (_, i) => u64le(200 + i))].join('');
    const bytes = Buffer.from(want, 'hex');
    assert.equal(bytes.length, 128 + 16 * actMax, `FreeBSD ${version}`);
    const s = decodePfsyncstats(bytes);
    assert.equal(s.actMax, actMax);
    assert.equal(s.counters.ipackets, 1n);
    assert.equal(s.counters.oerrors, 16n);
    assert.equal(s.iacts[actMax - 1], BigInt(100 + actMax - 1));
    assert.equal(s.oacts[0], 200n);
    const buf = encodeAt(bytes.length, (b, o) => encodePfsyncstats(s, b, o));
    assert.equal(buf.subarray(OFF, OFF + bytes.length).toString('hex'), want);
  }
  for (const bad of [0, 128, 300, 337]) assert.throws(() => decodePfsyncstats(Buffer.alloc(bad)), /not 128 \+ 16/, `${bad} bytes`);
});

test('prefix masks are contiguous both ways', () => {
  assert.equal(prefixMask(4, 0).toString('hex'), '00000000');
  assert.equal(prefixMask(4, 21).toString('hex'), 'fffff800');
  assert.equal(prefixMask(6, 65).toString('hex'), 'ffffffffffffffff8000000000000000');
  for (let p = 0; p <= 128; p++) assert.equal(maskPrefix(prefixMask(6, p)), p);
  assert.throws(() => prefixMask(6, 129), RangeError);
});
