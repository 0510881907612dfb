/**
 * MAC addresses, the virtual MACs of CARP and VRRP, and the Ethernet II header.
 *
 * ```
 *  Ethernet II header, 14 bytes
 *  +-----------------------+-----------------------+-----------+
 *  | destination MAC (6)   | source MAC (6)        | type (2)  |
 *  +-----------------------+-----------------------+-----------+
 *  0                       6                       12          14
 *
 *  virtual MACs (IANA 00:00:5e block)
 *    FreeBSD carp(4)       00:00:5e:00:01:<vhid>   (§1, §7.4)
 *    ucarp advertisements  00:00:5e:00:00:<vhid>   (§1, trap 11: not a VIP MAC)
 *    VRRP IPv4             00:00:5e:00:01:<vrid>   (§11.1)
 *    VRRP IPv6             00:00:5e:00:02:<vrid>   (§11.1)
 *  multicast MACs
 *    IPv4 group            01:00:5e + low 23 bits  (224.0.0.18 -> 01:00:5e:00:00:12)
 *    IPv6 group            33:33 + low 32 bits     (ff02::12   -> 33:33:00:00:00:12)
 * ```
 */
import { bufferView, checkInt, checkRoom, requireAddress } from './ip.js';
import type { AddressInput } from './ip.js';

export const ETHERNET_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

/** "00:00:5e:00:01:07" (also with "-" separators) or 6 bytes. */
export type MacInput = string | Uint8Array;

/** 6 bytes of a MAC, or undefined. Never throws. */
export function parseMac(input: MacInput): Buffer | undefined {
  if (typeof input !== 'string') return input.length === 6 ? Buffer.from(input) : undefined;
  if (!/^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i.test(input)) return undefined;
  return Buffer.from(input.split(/[:-]/).map((h) => parseInt(h, 16)));
}

/** Like parseMac, for encoders: throws a TypeError naming `what`. */
export function requireMac(input: MacInput, what: string): Buffer {
  const m = parseMac(input);
  if (!m) throw new TypeError(`${what}: not a MAC address: ${String(input)}`);
  return m;
}

/** Lower-case colon form. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}

function ianaMac(fifth: number, id: number, what: string): Buffer {
  checkInt(id, 1, 255, what);
  return Buffer.from([0x00, 0x00, 0x5e, 0x00, fifth, id]);
}

/** FreeBSD carp(4)'s virtual MAC 00:00:5e:00:01:<vhid>. */
export function carpVirtualMac(vhid: number): Buffer {
  return ianaMac(0x01, vhid, 'vhid');
}

/** The source MAC ucarp uses for its advertisements, 00:00:5e:00:00:<vhid> (observed, §1). */
export function ucarpAdvertMac(vhid: number): Buffer {
  return ianaMac(0x00, vhid, 'vhid');
}

/** RFC 5798 §7.3: 00:00:5e:00:01:<vrid> for IPv4, 00:00:5e:00:02:<vrid> for IPv6. */
export function vrrpVirtualMac(vrid: number, family: 4 | 6): Buffer {
  return ianaMac(family === 4 ? 0x01 : 0x02, vrid, 'vrid');
}

/** The Ethernet destination for an IPv4 or IPv6 multicast group (RFC 1112 §6.4, RFC 2464 §7). */
export function multicastMac(group: AddressInput): Buffer {
  const a = requireAddress(group, 'multicast group');
  if (a.length === 4) {
    if ((a[0] & 0xf0) !== 0xe0) throw new TypeError(`not an IPv4 multicast group: ${String(group)}`);
    return Buffer.from([0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]]);
  }
  if (a[0] !== 0xff) throw new TypeError(`not an IPv6 multicast group: ${String(group)}`);
  return Buffer.from([0x33, 0x33, a[12], a[13], a[14], a[15]]);
}

export interface EthernetHeader {
  dst: MacInput;
  src: MacInput;
  etherType: number;
}

/** Writes the 14-byte header; returns 14. */
export function encodeEthernet(h: EthernetHeader, buf: Uint8Array, offset = 0): number {
  checkRoom(buf, offset, ETHERNET_HEADER_LEN, 'Ethernet header');
  checkInt(h.etherType, 0, 0xffff, 'EtherType');
  const b = bufferView(buf);
  requireMac(h.dst, 'Ethernet destination').copy(b, offset);
  requireMac(h.src, 'Ethernet source').copy(b, offset + 6);
  b.writeUInt16BE(h.etherType, offset + 12);
  return ETHERNET_HEADER_LEN;
}

/** Header + payload as one new buffer (no padding to the 60-byte minimum: the NIC adds it). */
export function ethernetFrame(h: EthernetHeader, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(ETHERNET_HEADER_LEN + payload.length);
  encodeEthernet(h, out, 0);
  out.set(payload, ETHERNET_HEADER_LEN);
  return out;
}

export type EthernetResult =
  | { ok: true; frame: { dst: string; src: string; etherType: number; payload: Buffer } }
  | { ok: false; error: 'truncated'; detail: string };

/** Splits an Ethernet II frame (no VLAN tag handling). Never throws. */
export function decodeEthernet(bytes: Uint8Array): EthernetResult {
  if (bytes.length < ETHERNET_HEADER_LEN) return { ok: false, error: 'truncated', detail: `${bytes.length} bytes, an Ethernet header needs 14` };
  const b = bufferView(bytes);
  return {
    ok: true,
    frame: { dst: formatMac(b.subarray(0, 6)), src: formatMac(b.subarray(6, 12)), etherType: b.readUInt16BE(12), payload: b.subarray(14) },
  };
}
