/**
 * The sim datagram: a small header naming the sender and the interface, then the CARP
 * advertisement exactly as it travels in IP protocol 112 (src/wire/carp.ts). The interface name
 * makes vhid 1 on em0 and vhid 1 on em1 two separate groups, as two Ethernet segments would.
 *
 * ```
 *  sim datagram (UDP payload): 16 + N + M + 36 bytes
 *   0               1               2               3
 *  +---------------+---------------+---------------+---------------+
 *  |      'C'      |      'S'      |      'I'      |      'M'      |   0  magic
 *  +---------------+---------------+---------------+---------------+
 *  | version = 1   | family 4 | 6  | N = node len  | M = ifname len|   4
 *  +---------------+---------------+---------------+---------------+
 *  | sender instance id, 64 bits (random per running backend)      |   8
 *  |                                                               |  12
 *  +---------------------------------------------------------------+
 *  | node name, N bytes UTF-8 (1..64)                              |  16
 *  +---------------------------------------------------------------+
 *  | interface name, M bytes ASCII (1..15, IFNAMSIZ - 1)           |  16 + N
 *  +---------------------------------------------------------------+
 *  | CARP header, 36 bytes, as on the wire                         |  16 + N + M
 *  +---------------------------------------------------------------+
 * ```
 *
 * - family: the address family the advertisement stands for. carp(4) sends one packet per
 *   family the vhid has addresses in; the sim does the same so that ipackets/ipackets6 and
 *   opackets/opackets6 mean what they mean in carpstats.
 * - instance id: with multicast loopback every process also receives its own datagrams; the id
 *   tells those apart even when two processes were given the same node name.
 * - Anything after the 36 CARP bytes is ignored, as carp(4) ignores bytes after the header.
 */

export const SIM_MAGIC = Buffer.from('CSIM', 'ascii');
export const SIM_VERSION = 1;
export const SIM_FIXED_LEN = 16;
export const SIM_MAX_NODE_NAME = 64;
export const SIM_MAX_IFNAME = 15;

export interface SimFrame {
  family: 4 | 6;
  /** 8 bytes. */
  instance: Uint8Array;
  node: string;
  iface: string;
  /** The CARP header (normally 36 bytes; the decoder hands on what is there for carp to judge). */
  carp: Uint8Array;
}

export type SimFrameResult = { ok: true; frame: SimFrame } | { ok: false; detail: string };

/** Throws RangeError for a name or id that does not fit the header. */
export function encodeSimFrame(f: SimFrame): Buffer {
  const node = Buffer.from(f.node, 'utf8');
  const iface = Buffer.from(f.iface, 'ascii');
  if (node.length < 1 || node.length > SIM_MAX_NODE_NAME) throw new RangeError(`node name is ${node.length} bytes, must be 1..${SIM_MAX_NODE_NAME}`);
  if (iface.length < 1 || iface.length > SIM_MAX_IFNAME) throw new RangeError(`interface name is ${iface.length} bytes, must be 1..${SIM_MAX_IFNAME}`);
  if (f.instance.length !== 8) throw new RangeError('instance id must be 8 bytes');
  if (f.family !== 4 && f.family !== 6) throw new RangeError(`family ${String(f.family)} is not 4 or 6`);
  const head = Buffer.alloc(SIM_FIXED_LEN);
  SIM_MAGIC.copy(head, 0);
  head[4] = SIM_VERSION;
  head[5] = f.family;
  head[6] = node.length;
  head[7] = iface.length;
  Buffer.from(f.instance).copy(head, 8);
  return Buffer.concat([head, node, iface, f.carp]);
}

/** Never throws: a datagram that is not a sim frame is refused with a reason (counted as hdrops). */
export function decodeSimFrame(bytes: Uint8Array): SimFrameResult {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < SIM_FIXED_LEN) return { ok: false, detail: `${b.length} bytes, shorter than the ${SIM_FIXED_LEN}-byte sim header` };
  if (!b.subarray(0, 4).equals(SIM_MAGIC)) return { ok: false, detail: 'not a sim datagram (magic)' };
  if (b[4] !== SIM_VERSION) return { ok: false, detail: `sim header version ${b[4]}, expected ${SIM_VERSION}` };
  const family = b[5];
  if (family !== 4 && family !== 6) return { ok: false, detail: `address family ${family}` };
  const n = b[6];
  const m = b[7];
  if (n < 1 || n > SIM_MAX_NODE_NAME || m < 1 || m > SIM_MAX_IFNAME) return { ok: false, detail: `name lengths ${n}/${m} out of range` };
  if (b.length < SIM_FIXED_LEN + n + m) return { ok: false, detail: 'truncated before the end of the names' };
  const node = b.toString('utf8', SIM_FIXED_LEN, SIM_FIXED_LEN + n);
  const iface = b.toString('latin1', SIM_FIXED_LEN + n, SIM_FIXED_LEN + n + m);
  // The names end up in reasons and logs: control characters there could forge log lines.
  if (/[\x00-\x1f\x7f\ufffd]/.test(node)) return { ok: false, detail: 'node name with control characters or invalid UTF-8' };
  if (!/^[\x21-\x7e]+$/.test(iface)) return { ok: false, detail: 'interface name that is not printable ASCII' };
  return {
    ok: true,
    frame: {
      family,
      instance: Buffer.from(b.subarray(8, 16)),
      node,
      iface,
      carp: b.subarray(SIM_FIXED_LEN + n + m),
    },
  };
}
