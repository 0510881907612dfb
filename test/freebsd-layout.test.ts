/**
 * Holds every struct, field offset, ioctl number and constant the FreeBSD layer uses to the
 * compiler-verified manifest reference/freebsd-abi.json (amd64 and arm64, 13/14/15),
 * and checks that the encoders really write each field at the manifest's offset.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ABI_CONSTANTS,
  ABI_CONSTANTS_14,
  ABI_VERSIONS,
  type AbiVersion,
  IOCTLS,
  PFSYNC_ACT_MAX,
  SIOCAIFADDR,
  SIOCGVH,
  SIOCSVH,
  encodeIfreq,
  encodeSockaddrIn,
  encodeSockaddrIn6,
  ioc,
  ioctlsFor,
  structLayouts,
} from '../src/kernel/freebsd/layout.js';
import { encodeIn6Aliasreq, encodeIn6Ifreq, encodeInAliasreq } from '../src/kernel/freebsd/layout-addr.js';
import { carpKeyBytes, encodeCarpreq } from '../src/kernel/freebsd/layout-carp.js';
import { type CarpStats, encodeCarpstats, encodePfsyncreq, encodePfsyncstats } from '../src/kernel/freebsd/layout-pfsync.js';
import { CARP_NL, CARP_NL_CMD_GET, CARP_NL_CMD_SET } from '../src/kernel/freebsd/netlink-carp.js';
import * as nl from '../src/kernel/freebsd/netlink.js';

const ABI_PATH = fileURLToPath(new URL('../reference/freebsd-abi.json', import.meta.url));
assert.ok(existsSync(ABI_PATH), `freebsd-abi.json not found at ${ABI_PATH} (it is part of the repository)`);

interface JsonStruct { size: number; fields: Record<string, { offset: number; size: number }> }
interface JsonAbi {
  structs: Record<string, JsonStruct>;
  ioctls: Record<string, { value: number; hex: string }>;
  constants: Record<string, number>;
  constants_from_source: Record<string, { value: number }>;
}
const manifest = JSON.parse(readFileSync(ABI_PATH, 'utf8')) as { abi: Record<string, Record<string, JsonAbi>> };
const ARCHES = ['amd64', 'arm64'];

function abi(arch: string, v: AbiVersion): JsonAbi {
  const a = manifest.abi[arch]?.[String(v)];
  assert.ok(a, `manifest has no abi.${arch}.${v}`);
  return a;
}

/** Offset of a field as the manifest states it. */
function at(j: JsonAbi, struct: string, field: string): number {
  const fl = j.structs[struct]?.fields[field];
  assert.ok(fl, `manifest lacks ${struct}.${field}`);
  return fl.offset;
}

for (const arch of ARCHES) {
  for (const v of ABI_VERSIONS) {
    test(`${arch} FreeBSD ${v}: struct sizes and field offsets match the manifest`, () => {
      const j = abi(arch, v);
      const ours = { ...structLayouts(v), ...nl.netlinkLayouts(v) };
      let fields = 0;
      for (const [name, s] of Object.entries(ours)) {
        const js = j.structs[name];
        assert.ok(js, `${name} missing from the ${v} manifest`);
        assert.equal(s.size, js.size, `sizeof(${name})`);
        for (const [fname, fl] of Object.entries(s.fields)) {
          const jf = js.fields[fname];
          assert.ok(jf, `${name}.${fname} missing from the ${v} manifest`);
          assert.deepEqual({ offset: fl.offset, size: fl.size }, { offset: jf.offset, size: jf.size }, `${name}.${fname}`);
          fields++;
        }
      }
      assert.ok(fields > 70, `only ${fields} fields compared`);
      // ifr_cap_nv exists from 14 on, netlink from 14 on.
      assert.equal('ifr_ifru.ifru_nv.buffer' in structLayouts(v).ifreq.fields, v >= 14);
      assert.equal('ifr_ifru.ifru_nv.buffer' in j.structs.ifreq.fields, v >= 14);
      assert.equal('nlmsghdr' in j.structs, v >= 14);
    });

    test(`${arch} FreeBSD ${v}: ioctl numbers match, and the 14+ ones are absent from 13`, () => {
      const j = abi(arch, v);
      const ours = ioctlsFor(v);
      for (const [name, req] of Object.entries(ours)) {
        assert.ok(j.ioctls[name], `${name} missing from the ${v} manifest`);
        assert.equal(req, j.ioctls[name].value, name);
        assert.equal(`0x${req.toString(16).padStart(8, '0')}`, j.ioctls[name].hex, name);
      }
      for (const [name, info] of Object.entries(IOCTLS)) {
        assert.equal(name in ours, info.versions.includes(v), name);
        assert.equal(name in j.ioctls, info.versions.includes(v), `${name} presence in the ${v} manifest`);
      }
      // T3: the vhid-less FreeBSD 9 request is a different number.
      assert.notEqual(SIOCAIFADDR, j.ioctls.OSIOCAIFADDR.value);
    });

    test(`${arch} FreeBSD ${v}: constants match the manifest`, () => {
      const j = abi(arch, v);
      const lookup = (name: string): number | undefined => j.constants[name] ?? j.constants_from_source[name]?.value;
      for (const [name, value] of Object.entries(ABI_CONSTANTS)) assert.equal(value, lookup(name), name);
      for (const [name, value] of Object.entries(ABI_CONSTANTS_14)) assert.equal(lookup(name), v >= 14 ? value : undefined, name);
      assert.equal(PFSYNC_ACT_MAX[v], j.constants.PFSYNC_ACT_MAX);
      if (v >= 14) {
        const netlink: Record<string, number> = {
          NLMSG_NOOP: nl.NLMSG_NOOP, NLMSG_ERROR: nl.NLMSG_ERROR, NLMSG_DONE: nl.NLMSG_DONE, NLMSG_MIN_TYPE: nl.NLMSG_MIN_TYPE,
          NLM_F_REQUEST: nl.NLM_F_REQUEST, NLM_F_MULTI: nl.NLM_F_MULTI, NLM_F_ACK: nl.NLM_F_ACK, NLM_F_DUMP: nl.NLM_F_DUMP,
          NLM_F_CAPPED: nl.NLM_F_CAPPED, NLM_F_ACK_TLVS: nl.NLM_F_ACK_TLVS, NLMSGERR_ATTR_MSG: nl.NLMSGERR_ATTR_MSG,
          GENL_ID_CTRL: nl.GENL_ID_CTRL, CTRL_CMD_GETFAMILY: nl.CTRL_CMD_GETFAMILY,
          CTRL_ATTR_FAMILY_ID: nl.CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME: nl.CTRL_ATTR_FAMILY_NAME,
          CARP_NL_CMD_GET, CARP_NL_CMD_SET,
        };
        for (const [k, id] of Object.entries(CARP_NL)) if (id <= 9 || v >= 15) netlink[`CARP_NL_${k}`] = id;
        for (const [name, value] of Object.entries(netlink)) assert.equal(value, j.constants[name], name);
        assert.equal(j.constants.CARP_NL_VERSION, v >= 15 ? CARP_NL.VERSION : undefined);
      }
    });

    test(`${arch} FreeBSD ${v}: encoders write every field at the manifest offset`, () => {
      const j = abi(arch, v);
      const S = (name: string) => j.structs[name].size;

      const sin = Buffer.alloc(S('sockaddr_in'));
      encodeSockaddrIn({ address: '198.51.100.7', port: 0x1234 }, sin, 0);
      assert.equal(sin[at(j, 'sockaddr_in', 'sin_len')], 16);
      assert.equal(sin[at(j, 'sockaddr_in', 'sin_family')], 2);
      assert.equal(sin.readUInt16BE(at(j, 'sockaddr_in', 'sin_port')), 0x1234);
      assert.equal(sin.readUInt32BE(at(j, 'sockaddr_in', 'sin_addr')), 0xc6336407);

      const sin6 = Buffer.alloc(S('sockaddr_in6'));
      encodeSockaddrIn6({ address: '2001:db8::7', port: 0x4321, flowinfo: 0x000abcde, scopeId: 0x01020304 }, sin6, 0);
      assert.equal(sin6[at(j, 'sockaddr_in6', 'sin6_len')], 28);
      assert.equal(sin6[at(j, 'sockaddr_in6', 'sin6_family')], 28);
      assert.equal(sin6.readUInt16BE(at(j, 'sockaddr_in6', 'sin6_port')), 0x4321);
      assert.equal(sin6.readUInt32BE(at(j, 'sockaddr_in6', 'sin6_flowinfo')), 0x000abcde);
      assert.equal(sin6.readUInt32BE(at(j, 'sockaddr_in6', 'sin6_addr')), 0x20010db8);
      assert.equal(sin6.readUInt32LE(at(j, 'sockaddr_in6', 'sin6_scope_id')), 0x01020304);

      const ifr = Buffer.alloc(S('ifreq'));
      encodeIfreq({ name: 'em0', data: 0x1122334455667788n }, ifr, 0);
      assert.equal(ifr.toString('latin1', at(j, 'ifreq', 'ifr_name'), 3), 'em0');
      assert.equal(ifr.readBigUInt64LE(at(j, 'ifreq', 'ifr_ifru.ifru_data')), 0x1122334455667788n);
      encodeIfreq({ name: 'em0', flags: 0x00028043 }, ifr, 0);
      assert.equal(ifr.readUInt16LE(at(j, 'ifreq', 'ifr_ifru.ifru_flags')), 0x8043);
      assert.equal(ifr.readUInt16LE(at(j, 'ifreq', 'ifr_ifru.ifru_flags') + 2), 0x0002);
      encodeIfreq({ name: 'em0', addr: '192.0.2.9' }, ifr, 0);
      assert.equal(ifr[at(j, 'ifreq', 'ifr_ifru.ifru_addr')], 16);
      if (v >= 14) {
        encodeIfreq({ name: 'pfsync0', capNv: { bufLength: 0x200000, length: 0x1234, buffer: 0x7f00aabbccddn } }, ifr, 0);
        assert.equal(ifr.readUInt32LE(at(j, 'ifreq', 'ifr_ifru.ifru_nv.buf_length')), 0x200000);
        assert.equal(ifr.readUInt32LE(at(j, 'ifreq', 'ifr_ifru.ifru_nv.length')), 0x1234);
        assert.equal(ifr.readBigUInt64LE(at(j, 'ifreq', 'ifr_ifru.ifru_nv.buffer')), 0x7f00aabbccddn);
      }

      const cr = Buffer.alloc(S('carpreq'));
      encodeCarpreq({ count: 11, vhid: 22, state: 2, advskew: 44, advbase: 55, key: carpKeyBytes('k') }, cr, 0);
      assert.deepEqual(
        ['carpr_count', 'carpr_vhid', 'carpr_state', 'carpr_advskew', 'carpr_advbase'].map((fl) => cr.readInt32LE(at(j, 'carpreq', fl))),
        [11, 22, 2, 44, 55],
      );
      assert.equal(cr[at(j, 'carpreq', 'carpr_key')], 0x6b);

      const ia = Buffer.alloc(S('in_aliasreq'));
      encodeInAliasreq({ name: 'vlan10', address: '192.0.2.10', prefix: 24, broadcast: '192.0.2.255', vhid: 77 }, ia, 0);
      assert.equal(ia.toString('latin1', at(j, 'in_aliasreq', 'ifra_name'), 6), 'vlan10');
      assert.equal(ia.readUInt32BE(at(j, 'in_aliasreq', 'ifra_addr') + 4), 0xc000020a);
      assert.equal(ia.readUInt32BE(at(j, 'in_aliasreq', 'ifra_broadaddr') + 4), 0xc00002ff);
      assert.equal(ia.readUInt32BE(at(j, 'in_aliasreq', 'ifra_mask') + 4), 0xffffff00);
      assert.equal(ia.readInt32LE(at(j, 'in_aliasreq', 'ifra_vhid')), 77);

      const i6 = Buffer.alloc(S('in6_aliasreq'));
      encodeIn6Aliasreq({ name: 'em0', address: '2001:db8::10', prefix: 64, flags: 0x20, vhid: 88 }, i6, 0);
      assert.equal(i6.readUInt32BE(at(j, 'in6_aliasreq', 'ifra_addr') + 8), 0x20010db8);
      assert.equal(i6[at(j, 'in6_aliasreq', 'ifra_dstaddr')], 0);
      assert.equal(i6[at(j, 'in6_aliasreq', 'ifra_prefixmask')], 28);
      assert.equal(i6.readUInt32BE(at(j, 'in6_aliasreq', 'ifra_prefixmask') + 12), 0xffffffff);
      assert.equal(i6.readInt32LE(at(j, 'in6_aliasreq', 'ifra_flags')), 0x20);
      assert.equal(i6.readBigInt64LE(at(j, 'in6_aliasreq', 'ifra_lifetime.ia6t_expire')), 0n);
      assert.equal(i6.readUInt32LE(at(j, 'in6_aliasreq', 'ifra_lifetime.ia6t_vltime')), 0xffffffff);
      assert.equal(i6.readUInt32LE(at(j, 'in6_aliasreq', 'ifra_lifetime.ia6t_pltime')), 0xffffffff);
      assert.equal(i6.readInt32LE(at(j, 'in6_aliasreq', 'ifra_vhid')), 88);

      const i6r = Buffer.alloc(S('in6_ifreq'));
      encodeIn6Ifreq({ name: 'em0', address: '2001:db8::10' }, i6r, 0);
      assert.equal(i6r[at(j, 'in6_ifreq', 'ifr_ifru.ifru_addr')], 28);

      const pr = Buffer.alloc(S('pfsyncreq'));
      encodePfsyncreq({ syncdev: 'em1', syncpeer: '192.0.2.2', maxupdates: 128, defer: true }, pr, 0);
      assert.equal(pr.toString('latin1', at(j, 'pfsyncreq', 'pfsyncr_syncdev'), 3), 'em1');
      assert.equal(pr.readUInt32BE(at(j, 'pfsyncreq', 'pfsyncr_syncpeer')), 0xc0000202);
      assert.equal(pr.readInt32LE(at(j, 'pfsyncreq', 'pfsyncr_maxupdates')), 128);
      assert.equal(pr.readInt32LE(at(j, 'pfsyncreq', 'pfsyncr_defer')), 2);

      const cs = Buffer.alloc(S('carpstats'));
      const names = Object.keys(j.structs.carpstats.fields).map((n) => n.replace(/^carps_/, ''));
      encodeCarpstats(Object.fromEntries(names.map((n, i) => [n, BigInt(i + 1)])) as CarpStats, cs, 0);
      names.forEach((n, i) => assert.equal(cs.readBigUInt64LE(at(j, 'carpstats', `carps_${n}`)), BigInt(i + 1), n));

      const am = PFSYNC_ACT_MAX[v];
      const ps = Buffer.alloc(S('pfsyncstats'));
      const pnames = Object.keys(j.structs.pfsyncstats.fields).filter((n) => !n.endsWith('acts')).map((n) => n.replace(/^pfsyncs_/, ''));
      const counters = Object.fromEntries(pnames.map((n, i) => [n, BigInt(i + 1)]));
      const iacts = Array.from({ length: am }, (_, i) => BigInt(100 + i));
      const oacts = Array.from({ length: am }, (_, i) => BigInt(200 + i));
      encodePfsyncstats({ counters: counters as never, actMax: am, iacts, oacts }, ps, 0);
      pnames.forEach((n, i) => assert.equal(ps.readBigUInt64LE(at(j, 'pfsyncstats', `pfsyncs_${n}`)), BigInt(i + 1), n));
      assert.equal(ps.readBigUInt64LE(at(j, 'pfsyncstats', 'pfsyncs_iacts')), 100n);
      assert.equal(ps.readBigUInt64LE(at(j, 'pfsyncstats', 'pfsyncs_oacts')), 200n);
      assert.equal(ps.readBigUInt64LE(at(j, 'pfsyncstats', 'pfsyncs_oacts') + 8 * (am - 1)), BigInt(200 + am - 1));
    });

    if (v >= 14) {
      test(`${arch} FreeBSD ${v}: netlink headers sit at the manifest offsets`, () => {
        const j = abi(arch, v);
        const m = nl.genlMessage(0x1234, 0x0305, 0xa1b2c3d4, 0x77, [nl.nlattr(0x0abc, Buffer.from([1, 2, 3]))]);
        assert.equal(m.readUInt32LE(at(j, 'nlmsghdr', 'nlmsg_len')), m.length);
        assert.equal(m.readUInt16LE(at(j, 'nlmsghdr', 'nlmsg_type')), 0x1234);
        assert.equal(m.readUInt16LE(at(j, 'nlmsghdr', 'nlmsg_flags')), 0x0305);
        assert.equal(m.readUInt32LE(at(j, 'nlmsghdr', 'nlmsg_seq')), 0xa1b2c3d4);
        assert.equal(m.readUInt32LE(at(j, 'nlmsghdr', 'nlmsg_pid')), 0);
        const g = j.structs.nlmsghdr.size;
        assert.equal(m[g + at(j, 'genlmsghdr', 'cmd')], 0x77);
        assert.equal(m[g + at(j, 'genlmsghdr', 'version')], 0);
        const a = g + j.structs.genlmsghdr.size;
        assert.equal(m.readUInt16LE(a + at(j, 'nlattr', 'nla_len')), j.structs.nlattr.size + 3);
        assert.equal(m.readUInt16LE(a + at(j, 'nlattr', 'nla_type')), 0x0abc);
        const err = Buffer.alloc(j.structs.nlmsgerr.size);
        err.writeInt32LE(-42, at(j, 'nlmsgerr', 'error'));
        nl.encodeNlmsghdr({ len: 99, type: 5, flags: 0, seq: 3, pid: 0 }, err, at(j, 'nlmsgerr', 'msg'));
        const e = nl.decodeNlmsgerr({ len: 16 + err.length, type: nl.NLMSG_ERROR, flags: 0, seq: 3, pid: 0, payload: err });
        assert.deepEqual(e, { errno: 42, echo: { len: 99, type: 5, flags: 0, seq: 3, pid: 0 } });
      });
    }
  }
}

test('ioc() implements the §1 encoding, checked against the literal values', () => {
  assert.equal(ioc(0xc0000000, 'i', 245, 32), 0xc02069f5); // the §1 example
  assert.equal(SIOCSVH, 0xc02069f5);
  assert.equal(SIOCGVH, 0xc02069f6);
  assert.equal(SIOCAIFADDR, 0x8044692b); // T3: not 0x8040691a
  const literal: Record<string, number> = {
    SIOCSIFFLAGS: 0x80206910, SIOCGIFFLAGS: 0xc0206911, SIOCDIFADDR: 0x80206919, SIOCAIFADDR: 0x8044692b,
    SIOCDIFADDR_IN6: 0x81206919, SIOCAIFADDR_IN6: 0x8088691b, SIOCSVH: 0xc02069f5, SIOCGVH: 0xc02069f6,
    SIOCSETPFSYNC: 0x802069f7, SIOCGETPFSYNC: 0xc02069f8, SIOCSETPFSYNCNV: 0x802069f9, SIOCGETPFSYNCNV: 0xc02069fa,
  };
  assert.deepEqual(Object.fromEntries(Object.entries(IOCTLS).map(([k, x]) => [k, x.request])), literal);
  for (const x of Object.values(IOCTLS)) assert.ok(x.request > 0x7fffffff, 'unsigned, never sign-extended (T4)');
});
