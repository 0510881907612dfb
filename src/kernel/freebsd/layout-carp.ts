/**
 * struct carpreq, the payload of SIOCSVH (0xc02069f5) and SIOCGVH (0xc02069f6) through ifr_data
 * (freebsd-kernel-abi.md §3.1, §3.2), and the CARP key. 40 bytes, 4-aligned, the same in 13, 14
 * and 15 on amd64 and arm64; asserted against freebsd-abi.json by the layout test. No version
 * has a peer or VRRP field here: those exist only in netlink (§3.5).
 *
 *  struct carpreq (40 B)
 *  +0  i32 carpr_count     SIOCGVH: slots in the buffer (>= 1)
 *  +4  i32 carpr_vhid      1..255 (SIOCGVH: 0 = all, unreliable on 14+, T11)
 *  +8  i32 carpr_state     0 INIT, 1 BACKUP, 2 MASTER
 *  +12 i32 carpr_advskew   0..254
 *  +16 i32 carpr_advbase   1..255 s; 0 keeps the current value
 *  +20 u8  carpr_key[20]   raw passphrase bytes, zero padded (T10)
 */
import { CARP_KEY_LEN, SIZEOF, int32, need } from './layout.js';

/**
 * The passphrase's UTF-8 bytes, unpadded (T10: the key is raw bytes, not a hash). More than 20
 * bytes, or a NUL (ifconfig copies with strlcpy, so a peer could never match), is refused.
 */
export function carpKeyRaw(passphrase: string): Buffer {
  const b = Buffer.from(passphrase, 'utf8');
  if (b.length > CARP_KEY_LEN) throw new RangeError(`CARP key is ${b.length} bytes; at most ${CARP_KEY_LEN}`);
  if (b.includes(0)) throw new RangeError('CARP key contains a NUL byte');
  return b;
}

/** carpr_key: the passphrase zero-padded to 20 bytes, as ifconfig builds it (T10). */
export function carpKeyBytes(passphrase: string): Buffer {
  const out = Buffer.alloc(CARP_KEY_LEN);
  carpKeyRaw(passphrase).copy(out);
  return out;
}

/** The passphrase of a kernel key; undefined when key[0] is 0 (no key, or not privileged). */
export function carpKeyText(key: Buffer): string | undefined {
  if (key.length === 0 || key[0] === 0) return undefined;
  const end = key.indexOf(0);
  return key.toString('utf8', 0, end < 0 ? key.length : end);
}

export interface CarpReq {
  /** SIOCGVH: number of carpreq slots in the buffer (>= 1). */
  count: number;
  vhid: number;
  /** 0 INIT (on SIOCSVH: no forced change), 1 BACKUP, 2 MASTER. */
  state: number;
  advskew: number;
  /** 0 keeps the current value on SIOCSVH. */
  advbase: number;
  /** Up to 20 raw bytes, zero padded; all zero = no key / keep key (§3.2). */
  key: Buffer;
}

export function encodeCarpreq(v: CarpReq, buf: Buffer, off: number): void {
  need(buf, off, SIZEOF.carpreq, 'carpreq');
  if (v.key.length > CARP_KEY_LEN) throw new RangeError(`carpr_key is ${v.key.length} bytes; at most ${CARP_KEY_LEN}`);
  buf.fill(0, off, off + SIZEOF.carpreq);
  buf.writeInt32LE(int32('carpr_count', v.count), off);
  buf.writeInt32LE(int32('carpr_vhid', v.vhid), off + 4);
  buf.writeInt32LE(int32('carpr_state', v.state), off + 8);
  buf.writeInt32LE(int32('carpr_advskew', v.advskew), off + 12);
  buf.writeInt32LE(int32('carpr_advbase', v.advbase), off + 16);
  v.key.copy(buf, off + 20);
}

export function carpreqBytes(v: CarpReq): Buffer {
  const b = Buffer.alloc(SIZEOF.carpreq);
  encodeCarpreq(v, b, 0);
  return b;
}

export function decodeCarpreq(buf: Buffer, off: number): CarpReq {
  need(buf, off, SIZEOF.carpreq, 'carpreq');
  return {
    count: buf.readInt32LE(off),
    vhid: buf.readInt32LE(off + 4),
    state: buf.readInt32LE(off + 8),
    advskew: buf.readInt32LE(off + 12),
    advbase: buf.readInt32LE(off + 16),
    key: Buffer.from(buf.subarray(off + 20, off + 40)),
  };
}
