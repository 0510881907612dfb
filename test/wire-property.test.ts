import assert from 'node:assert/strict';
import { test } from 'node:test';
import { carpBytes, decodeCarp, decodeCarpIpv4 } from '../src/wire/carp.js';
import type { CarpAdvert } from '../src/wire/carp.js';
import { decodeVrrp, vrrpBytes } from '../src/wire/vrrp.js';
import { decodeArp, decodeNeighborAdvert } from '../src/wire/arp.js';
import { decodeEthernet } from '../src/wire/mac.js';
import { addressBytes, decodeIpv4, decodeIpv6, ipv4Packet } from '../src/wire/ip.js';
import { internetChecksum, pseudoHeaderSum } from '../src/wire/checksum.js';
import { CARP_STAT_NAMES } from '../src/wire/counters.js';
import { prng } from './helpers/prng.js';


const SEED = 0xc0ffee;

function tools(seed: number) {
  const rnd = prng(seed);
  const int = (min: number, max: number): number => min + Math.floor(rnd() * (max - min + 1));
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  const pick = <T>(list: readonly T[]): T => list[int(0, list.length - 1)];
  const shuffle = <T>(list: readonly T[]): T[] => {
    const out = [...list];
    for (let i = out.length - 1; i > 0; i--) {
      const j = int(0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  };
  const docV4 = (): string => `${pick(['192.0.2', '198.51.100', '203.0.113'])}.${int(0, 255)}`;
  const docV6 = (): string => `2001:db8:${int(0, 0xffff).toString(16)}::${int(0, 0xffff).toString(16)}`;
  const password = (): string => Array.from({ length: int(1, 19) }, () => String.fromCharCode(int(0x21, 0x7e))).join('');
  return { rnd, int, bytes, pick, shuffle, docV4, docV6, password };
}

const canonical = (a: string): string => addressBytes(a)!.toString('hex');
const CARP_ERRORS = new Set(['badlen', 'badsum', 'badvhid', 'badver', 'badttl', 'badauth']);

test('no decoder throws on 10 000 random byte strings (lengths 0..100), and every error is a known kind', () => {
  const { rnd, int, bytes, docV4, docV6, password } = tools(SEED);
  const seen = new Map<string, number>();
  const note = (r: { ok: boolean; error?: string }): void => {
    const k = r.ok ? 'ok' : String(r.error);
    seen.set(k, (seen.get(k) ?? 0) + 1);
  };
  const vips = ['192.0.2.100', '2001:db8::100'];
  for (let n = 0; n < 10_000; n++) {
    const b = bytes(int(0, 100));
    // Half the CARP-sized samples get a valid version byte and checksum, so the later checks run too.
    if (b.length >= 36 && rnd() < 0.5) {
      b[0] = rnd() < 0.9 ? 0x21 : b[0];
      b.writeUInt16BE(0, 6);
      b.writeUInt16BE(internetChecksum(b, 0, 36), 6);
    }
    const v4 = { src: docV4(), dst: '224.0.0.18' };
    const v6 = { src: docV6(), dst: 'ff02::12' };
    const vr = Buffer.from(b);
    if (vr.length >= 8 && rnd() < 0.5) {
      vr[0] = 0x31;
      vr[3] = int(0, 3);
      vr.writeUInt16BE(0, 6);
      vr.writeUInt16BE(internetChecksum(vr, 0, vr.length, pseudoHeaderSum(addressBytes(v4.src)!, addressBytes(v4.dst)!, 112, vr.length)), 6);
    }
    try {
      const ctx = { key: rnd() < 0.5 ? password() : bytes(int(0, 22)), addresses: rnd() < 0.9 ? vips : ['bogus'], ttl: rnd() < 0.8 ? 255 : int(0, 255) };
      const carp = decodeCarp(b, rnd() < 0.5 ? ctx : { lookup: (v) => (v % 2 ? ctx : undefined), ttl: ctx.ttl });
      assert.ok(carp.ok || CARP_ERRORS.has(carp.error));
      note(carp);
      const withIp = decodeCarpIpv4(b, ctx);
      assert.ok(withIp.ok || withIp.error === 'hdrops' || CARP_ERRORS.has(withIp.error));
      note(decodeIpv4(b));
      note(decodeIpv6(b));
      const vrrp = decodeVrrp(vr, { ...v4, vrid: rnd() < 0.5 ? undefined : int(0, 255), acceptMessageOnlyChecksum: rnd() < 0.5 });
      assert.ok(vrrp.ok || (CARP_STAT_NAMES as readonly string[]).includes(vrrp.error));
      note(vrrp);
      note(decodeVrrp(b, { ...v6, ttl: int(250, 255) }));
      note(decodeVrrp(b, { src: 'junk', dst: '224.0.0.18' }));
      note(decodeArp(b));
      note(decodeEthernet(b));
      note(decodeNeighborAdvert(b, { src: 'fe80::1', dst: 'ff02::1' }));
    } catch (e) {
      assert.fail(`a decoder threw on ${b.toString('hex')}: ${String(e)}`);
    }
  }
  // The biasing above really drives the decoders past their first checks.
  for (const kind of ['badlen', 'badsum', 'badvhid', 'badver', 'badttl', 'badauth', 'badaddrs', 'truncated', 'ok']) {
    assert.ok((seen.get(kind) ?? 0) > 0, `no sample produced ${kind}: ${JSON.stringify([...seen])}`);
  }
});

test('CARP encode -> decode round-trips 2 000 random valid advertisements', () => {
  const { rnd, int, pick, shuffle, docV4, docV6, password } = tools(SEED + 1);
  for (let n = 0; n < 2_000; n++) {
    const addresses = Array.from({ length: int(1, 5) }, () => (rnd() < 0.5 ? docV4() : docV6()));
    const adv: CarpAdvert = {
      vhid: int(1, 255),
      advskew: int(0, 254),
      advbaseSec: int(1, 255),
      counter: (BigInt(int(0, 0xffffffff)) << 32n) | BigInt(int(0, 0xffffffff)),
      key: password(),
      addresses,
    };
    const bytes = carpBytes(adv);
    assert.equal(bytes.length, 36);
    const ctx = { key: adv.key, addresses: shuffle(addresses), vhid: adv.vhid, ttl: 255 };
    const r = decodeCarp(bytes, ctx);
    assert.ok(r.ok, r.ok ? undefined : `${r.error}: ${r.detail}`);
    assert.deepEqual(
      [r.advert.version, r.advert.type, r.advert.vhid, r.advert.advskew, r.advert.authlen, r.advert.demote, r.advert.advbaseSec, r.advert.counter],
      [2, 1, adv.vhid, adv.advskew, 7, 0, adv.advbaseSec, adv.counter],
    );
    // Through IPv4 framing as a raw socket would deliver it.
    const ip = ipv4Packet({ src: docV4(), dst: '224.0.0.18', proto: 112, tos: pick([0xe0, 0x10]), id: int(0, 0xffff) }, bytes);
    assert.ok(decodeCarpIpv4(ip, ctx).ok);
    // Any change of the VIP set or the password is caught by the digest.
    const changed = rnd() < 0.5 ? { ...ctx, addresses: [...addresses, docV6()] } : { ...ctx, key: `${String(adv.key).slice(0, 18)}\u0001` };
    const bad = decodeCarp(bytes, changed);
    if (bad.ok) {
      // Only possible when the "new" address was already in the set or the key did not change.
      assert.ok(changed.addresses.length !== addresses.length ? addresses.includes(changed.addresses.at(-1) as string) : changed.key === adv.key);
    } else {
      assert.equal(bad.error, 'badauth');
    }
  }
});

test('VRRPv3 encode -> decode round-trips 2 000 random valid advertisements of both families', () => {
  const { rnd, int, docV4, docV6 } = tools(SEED + 2);
  for (let n = 0; n < 2_000; n++) {
    const v6 = rnd() < 0.5;
    const addresses = Array.from({ length: int(1, 5) }, () => (v6 ? docV6() : docV4()));
    const adv = { vrid: int(1, 255), priority: int(0, 255), maxAdvertIntervalCs: int(1, 4095), addresses };
    const ip = v6 ? { src: `fe80::${int(1, 0xffff).toString(16)}`, dst: 'ff02::12' } : { src: docV4(), dst: '224.0.0.18' };
    const bytes = vrrpBytes(adv, ip);
    const r = decodeVrrp(bytes, { ...ip, ttl: 255, vrid: adv.vrid });
    assert.ok(r.ok, r.ok ? undefined : r.detail);
    assert.deepEqual(
      [r.advert.vrid, r.advert.priority, r.advert.maxAdvertIntervalCs, r.advert.count, r.advert.family, r.advert.addresses.map(canonical)],
      [adv.vrid, adv.priority, adv.maxAdvertIntervalCs, addresses.length, v6 ? 6 : 4, addresses.map(canonical)],
    );
  }
});
