/**
 * Generic netlink for carp(4): golden request bytes written from freebsd-kernel-abi.md §3.5 (and
 * ip_carp.c's attribute set), hand-built replies, both errno signs (§12.1), malformed input,
 * and a seeded fuzz run showing the reply parsers only ever throw their own errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelError } from '../src/kernel/errno.js';
import {
  CarpGetReplyParser,
  buildCarpGetRequest,
  buildCarpSetRequest,
  parseCarpGetReply,
} from '../src/kernel/freebsd/netlink-carp.js';
import {
  NetlinkFormatError,
  NetlinkStream,
  buildGetFamilyRequest,
  parseAck,
  parseGetFamilyReply,
  splitMessages,
} from '../src/kernel/freebsd/netlink.js';
import { prng } from './helpers/prng.js';

// Hand-rolled builders, independent of the module under test.
const hex = (s: string) => s.replace(/\s+/g, '');
const le16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b.toString('hex'); };
const le32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b.toString('hex'); };
const pad4 = (h: string) => h + '00'.repeat((4 - ((h.length / 2) % 4)) % 4);
const attr = (type: number, payload: string) => pad4(le16(4 + hex(payload).length / 2) + le16(type) + hex(payload));
const msg = (type: number, flags: number, seq: number, payload: string) => le32(16 + hex(payload).length / 2) + le16(type) + le16(flags) + le32(seq) + le32(0) + hex(payload);
const bytes = (...parts: string[]) => Buffer.from(parts.join(''), 'hex');

const FAMILY = 0x1e;
const SEQ = 42;
const MULTI = 2;
const KEY20 = `736563726574${'00'.repeat(14)}`;

/** A kernel-style GET reply entry (carp_nl_send order: VHID STATE ADVBASE ADVSKEW ADDR ADDR6 [KEY]). */
function vhidMsg(seq: number, vhid: number, state: number, advbase: number, advskew: number, addr: string, addr6: string, key?: string, extra = ''): string {
  return msg(FAMILY, MULTI, seq, '01000000' + attr(1, le32(vhid)) + attr(2, le32(state)) + attr(3, le32(advbase)) + attr(4, le32(advskew)) + attr(7, addr) + attr(8, addr6) + (key ? attr(5, key) : '') + extra);
}
const done = (seq: number, errno = 0) => msg(3, MULTI, seq, le32(errno));
const REPLY = bytes(
  vhidMsg(SEQ, 1, 2, 1, 0, 'e0000012', 'ff020000000000000000000000000012', KEY20),
  vhidMsg(SEQ, 2, 1, 2, 100, 'c0000202', '20010db8000000000000000000000002'),
  done(SEQ),
);
const EXPECTED = [
  { vhid: 1, state: 'MASTER', advbase: 1, advskew: 0, key: Buffer.from(KEY20, 'hex') },
  { vhid: 2, state: 'BACKUP', advbase: 2, advskew: 100, peer: '192.0.2.2', peer6: '2001:db8::2' },
];

test('GETFAMILY request for "carp": golden bytes', () => {
  const want = hex(`20000000 1000 0100 01000000 00000000  03000000  0900 0200 6361727000 000000`);
  assert.equal(buildGetFamilyRequest(1).toString('hex'), want);
});

test('GETFAMILY reply: family id, stale sequence numbers, missing family', () => {
  const reply = msg(16, 0, 7, '01020000' + attr(2, '6361727000') + attr(1, '1e00') + attr(3, le32(1)));
  assert.equal(parseGetFamilyReply(bytes(reply), { seq: 7 }), 0x1e);
  assert.equal(parseGetFamilyReply(bytes(reply), { seq: 8 }), undefined, 'not ours: read again');
  const enoent = bytes(msg(2, 0, 7, le32(2) + msg(16, 1, 7, '')));
  assert.throws(() => parseGetFamilyReply(enoent, { seq: 7 }), (e: unknown) => e instanceof KernelError && e.errno === 43 && /not registered/.test(e.message));
  const other = bytes(msg(16, 0, 7, '01020000' + attr(2, '6e6c73797365766e7400') + attr(1, '1f00')));
  assert.throws(() => parseGetFamilyReply(other, { seq: 7 }), NetlinkFormatError);
  assert.throws(() => parseGetFamilyReply(bytes(msg(16, 0, 7, '01020000' + attr(1, '1e000000'))), { seq: 7 }), /want 2/);
});

test('carp GET request: REQUEST|DUMP, IFINDEX/IFNAME, optional VHID', () => {
  const all = hex(`1c000000 1e00 0103 09000000 00000000 01000000  0800 0900 656d3000`);
  assert.equal(buildCarpGetRequest({ familyId: FAMILY, seq: 9, ifname: 'em0' }).toString('hex'), all);
  const one = hex(`30000000 1e00 0103 0a000000 00000000 01000000  0800 0100 05000000  0800 0600 02000000  0b00 0900 766c616e3130 0000`);
  assert.equal(buildCarpGetRequest({ familyId: FAMILY, seq: 10, ifname: 'vlan10', ifindex: 2, vhid: 5 }).toString('hex'), one);
  assert.throws(() => buildCarpGetRequest({ familyId: FAMILY, seq: 1 }), RangeError);
});

test('carp SET request carries the full attribute set: golden bytes', () => {
  const want = hex(`6c000000 1e00 0500 07000000 00000000  02000000
    0800 0100 05000000
    0800 0200 00000000
    0800 0300 01000000
    0800 0400 64000000
    0a00 0500 736563726574 0000
    0800 0600 02000000
    0800 0700 c0000202
    1400 0800 ff020000000000000000000000000012
    0800 0900 656d3000`);
  const got = buildCarpSetRequest({ familyId: FAMILY, seq: 7, ifname: 'em0', ifindex: 2, vhid: 5, advbase: 1, advskew: 100, key: 'secret', peer: '192.0.2.2' });
  assert.equal(got.toString('hex'), want);
});

test('carp SET: no key, back to multicast, forced MASTER, VRRP attributes', () => {
  const want = hex(`6c000000 1e00 0500 08000000 00000000  02000000
    0800 0100 ff000000
    0800 0200 02000000
    0800 0300 00000000
    0800 0400 fe000000
    0400 0500
    0800 0600 03000000
    0800 0700 e0000012
    1400 0800 ff020000000000000000000000000012
    0d00 0900 766c616e302e3130 00000000
    0500 0a00 03 000000
    0500 0b00 c8 000000
    0600 0c00 6400 0000`.replace('6c000000', '84000000'));
  const got = buildCarpSetRequest({
    familyId: FAMILY, seq: 8, ifname: 'vlan0.10', ifindex: 3, vhid: 255, advbase: 0, advskew: 254, forceState: 'MASTER',
    version: 3, vrrpPriority: 200, vrrpAdvInterCs: 100,
  });
  assert.equal(got.length, 0x84);
  assert.equal(got.toString('hex'), want);
  const base = { familyId: FAMILY, seq: 1, ifname: 'em0', ifindex: 1, vhid: 1, advbase: 1, advskew: 0 };
  assert.throws(() => buildCarpSetRequest({ ...base, advskew: 255 }), RangeError, 'advskew 255 would leave a new vhid behind (§12.6)');
  assert.throws(() => buildCarpSetRequest({ ...base, vhid: 0 }), RangeError);
  assert.throws(() => buildCarpSetRequest({ ...base, key: 'x'.repeat(21) }), RangeError);
  assert.throws(() => buildCarpSetRequest({ ...base, key: Buffer.alloc(21, 1) }), RangeError);
  assert.throws(() => buildCarpSetRequest({ ...base, peer: '0.0.0.0' }), /unspecified/);
  assert.throws(() => buildCarpSetRequest({ ...base, peer6: '::' }), /unspecified/);
  assert.throws(() => buildCarpSetRequest({ ...base, peer6: '192.0.2.1' }), /not an IPv6/);
  assert.throws(() => buildCarpSetRequest({ ...base, ifname: 'abcdefghijklmnop' }), RangeError);
});

test('multipart GET reply split across two chunks at every position', () => {
  for (let cut = 0; cut <= REPLY.length; cut++) {
    const got = parseCarpGetReply([REPLY.subarray(0, cut), REPLY.subarray(cut)], { seq: SEQ, familyId: FAMILY });
    assert.deepEqual(got, EXPECTED, `cut at ${cut}`);
  }
  const p = new CarpGetReplyParser({ seq: SEQ, familyId: FAMILY });
  for (let i = 0; i < REPLY.length; i++) assert.equal(p.push(REPLY.subarray(i, i + 1)), i === REPLY.length - 1, `byte ${i}`);
  assert.deepEqual(p.result(), EXPECTED);
});

test('GET reply: stale sequence numbers skipped, 15.0 attributes, unknown attributes ignored', () => {
  const vrrp = attr(10, '03') + attr(11, 'c8') + attr(12, '6400') + attr(99, 'deadbeef');
  const got = parseCarpGetReply([bytes(vhidMsg(SEQ - 1, 9, 2, 1, 0, 'e0000012', '00'.repeat(16)), done(SEQ - 1), vhidMsg(SEQ, 3, 0, 1, 10, '00000000', '00'.repeat(16), undefined, vrrp), done(SEQ))], { seq: SEQ, familyId: FAMILY });
  assert.deepEqual(got, [{ vhid: 3, state: 'INIT', advbase: 1, advskew: 10, version: 3, vrrpPriority: 200, vrrpAdvInterCs: 100 }]);
});

test('NLMSG_ERROR and NLMSG_DONE carry errno of either sign (§12.1)', () => {
  const echo = msg(FAMILY, 5, SEQ, '');
  for (const code of [2, -2]) {
    const isEnoent = (e: unknown) => e instanceof KernelError && e.errno === 2 && e.errnoName === 'ENOENT' && e.operation === 'netlink carp GET' && e.iface === 'em0';
    assert.throws(() => parseCarpGetReply([bytes(msg(2, 0, SEQ, le32(code) + echo))], { seq: SEQ, iface: 'em0' }), isEnoent);
    assert.throws(() => parseCarpGetReply([bytes(done(SEQ, code))], { seq: SEQ, iface: 'em0' }), isEnoent);
    assert.throws(() => parseAck(bytes(msg(2, 0, SEQ, le32(code === 2 ? 1 : -1) + echo)), { seq: SEQ, operation: 'netlink carp SET' }), (e: unknown) => e instanceof KernelError && e.errno === 1 && e.operation === 'netlink carp SET');
  }
  assert.equal(parseAck(bytes(msg(2, 0, SEQ, le32(0) + echo)), { seq: SEQ }), true);
  assert.equal(parseAck(bytes(msg(2, 0, SEQ + 1, le32(0) + echo)), { seq: SEQ }), false, 'an ack of another request');
  assert.deepEqual(parseCarpGetReply([bytes(msg(2, 0, SEQ, le32(0) + echo))], { seq: SEQ }), [], 'an ack ends the dump');
  // Extended ack: the kernel's text decorates the error.
  const ext = bytes(msg(2, 0x300, SEQ, le32(22) + echo + attr(1, Buffer.from('bad advskew\0').toString('hex'))));
  assert.throws(() => parseAck(ext, { seq: SEQ }), (e: unknown) => e instanceof KernelError && e.errno === 22 && /bad advskew/.test(e.message));
});

test('malformed replies are NetlinkFormatError with a clear message', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['nlmsg_len shorter than the header', bytes(le32(8) + '0000'.repeat(6)), /nlmsg_len 8 is shorter/],
    ['attribute overrunning its message', bytes(msg(FAMILY, MULTI, SEQ, '01000000' + le16(64) + le16(1) + le32(1))), /overruns its message/],
    ['nla_len below the header', bytes(msg(FAMILY, MULTI, SEQ, '01000000' + le16(2) + le16(1))), /nla_len 2/],
    ['stray bytes after the attributes', bytes(msg(FAMILY, MULTI, SEQ, '01000000' + attr(1, le32(1)) + 'aa')), /stray bytes/],
    ['missing ADVSKEW', bytes(msg(FAMILY, MULTI, SEQ, '01000000' + attr(1, le32(1)) + attr(2, le32(1)) + attr(3, le32(1)))), /lacks/],
    ['unknown state', bytes(vhidMsg(SEQ, 1, 7, 1, 0, 'e0000012', '00'.repeat(16))), /unknown state 7/],
    ['short VHID', bytes(msg(FAMILY, MULTI, SEQ, '01000000' + attr(1, '0100'))), /CARP_NL_VHID has 2 bytes/],
    ['key over 20 bytes', bytes(vhidMsg(SEQ, 1, 1, 1, 0, 'e0000012', '00'.repeat(16), '11'.repeat(21))), /at most 20/],
    ['wrong command', bytes(msg(FAMILY, MULTI, SEQ, '02000000')), /command 2/],
    ['foreign message type', bytes(msg(FAMILY + 1, MULTI, SEQ, '01000000')), /unexpected message type/],
    ['NLMSG_ERROR without errno', bytes(msg(2, 0, SEQ, '0000')), /at least 4/],
    ['implausible length', bytes(le32(0x7fffffff) + '00'.repeat(12)), /exceeds/],
  ];
  for (const [what, b, re] of cases) {
    assert.throws(() => new CarpGetReplyParser({ seq: SEQ, familyId: FAMILY }).push(b), (e: unknown) => e instanceof NetlinkFormatError && re.test(e.message), what);
  }
  assert.throws(() => splitMessages(REPLY.subarray(0, 30)), /truncated/);
  assert.throws(() => parseCarpGetReply([REPLY.subarray(0, REPLY.length - 20)], { seq: SEQ }), /without NLMSG_DONE/);
  const s = new NetlinkStream();
  assert.deepEqual(s.push(REPLY.subarray(0, 10)), []);
  assert.equal(s.pendingBytes, 10);
});


test('fuzz: random and mutated bytes only ever raise NetlinkFormatError or KernelError', { timeout: 30_000 }, () => {
  const rnd = prng(0xc0ffee);
  const int = (n: number) => Math.floor(rnd() * n);
  const outcomes = { ok: 0, format: 0, kernel: 0 };
  const own = (e: unknown) => {
    if (e instanceof NetlinkFormatError) outcomes.format++;
    else if (e instanceof KernelError) outcomes.kernel++;
    else throw e;
  };
  for (let i = 0; i < 4000; i++) {
    let b: Buffer;
    const kind = i % 3;
    if (kind === 0) b = Buffer.from(Array.from({ length: int(160) }, () => int(256)));
    else if (kind === 1) {
      b = Buffer.from(REPLY);
      for (let k = 1 + int(6); k > 0; k--) b[int(b.length)] = int(256);
    } else {
      // Plausible headers around random attribute soup, to reach the attribute decoders.
      const body = Buffer.from(Array.from({ length: 4 + int(60) }, () => (rnd() < 0.5 ? int(256) : int(16))));
      body[0] = 1;
      b = bytes(msg([FAMILY, 2, 3, 1, int(65536)][int(5)], MULTI, SEQ, body.toString('hex')));
    }
    const cuts = [0, int(b.length + 1), int(b.length + 1)].sort((x, y) => x - y);
    try {
      const p = new CarpGetReplyParser({ seq: rnd() < 0.5 ? SEQ : undefined, familyId: rnd() < 0.5 ? FAMILY : undefined });
      p.push(b.subarray(cuts[0], cuts[1]));
      p.push(b.subarray(cuts[1], cuts[2]));
      p.push(b.subarray(cuts[2]));
      p.result();
      outcomes.ok++;
    } catch (e) {
      own(e);
    }
    for (const f of [() => splitMessages(b), () => parseAck(b, { seq: SEQ }), () => parseGetFamilyReply(b)]) {
      try {
        f();
      } catch (e) {
        own(e);
      }
    }
  }
  assert.ok(outcomes.ok > 0 && outcomes.format > 0 && outcomes.kernel > 0, JSON.stringify(outcomes));
});
