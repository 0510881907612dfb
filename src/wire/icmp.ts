/**
 * ICMP and ICMPv6 echo (RFC 792, RFC 4443 §4): the request a health track's ping sends and the
 * reply it waits for. Pure bytes; the raw sockets are the kernel layer's (kernel/linux/ping.ts).
 *
 *   0 type (8 request / 0 reply; v6: 128 / 129)  1 code 0  2 checksum  4 identifier  6 sequence  8 data
 *
 * IPv4's checksum covers the ICMP message; ICMPv6's also a pseudo-header, which the kernel fills
 * in for a raw ICMPv6 socket (and checks on receipt), so an IPv6 request leaves it 0.
 */
import { internetChecksum } from './checksum.js';

export const ICMP_ECHO_REQUEST = 8;
export const ICMP_ECHO_REPLY = 0;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
export const ICMP_HEADER_LEN = 8;

/** An echo request of `family` with its identifier, sequence and data. */
export function encodeEchoRequest(family: 4 | 6, id: number, seq: number, data: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(ICMP_HEADER_LEN + data.length);
  b[0] = family === 4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
  b[1] = 0;
  b.writeUInt16BE(id & 0xffff, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  b.set(data, ICMP_HEADER_LEN);
  if (family === 4) b.writeUInt16BE(internetChecksum(b), 2);
  return b;
}

export interface EchoReply {
  id: number;
  seq: number;
  /** IPv4 only, when the IP header came with it: the source address (dotted). */
  source?: string;
}

/**
 * An echo reply from what a raw socket received, or undefined for anything else (requests,
 * errors, other messages, a bad checksum, a truncated packet). IPv4 raw sockets deliver the IP
 * header first (`withIpHeader`); IPv6 ones deliver the ICMPv6 message alone, its checksum
 * already checked by the kernel.
 */
export function decodeEchoReply(family: 4 | 6, packet: Uint8Array, withIpHeader = family === 4): EchoReply | undefined {
  let off = 0;
  let source: string | undefined;
  if (withIpHeader) {
    if (packet.length < 20 || packet[0] >> 4 !== 4) return undefined;
    off = (packet[0] & 0x0f) * 4;
    if (off < 20 || packet.length < off + ICMP_HEADER_LEN) return undefined;
    source = `${packet[12]}.${packet[13]}.${packet[14]}.${packet[15]}`;
  }
  if (packet.length < off + ICMP_HEADER_LEN) return undefined;
  const msg = packet.subarray(off);
  if (msg[0] !== (family === 4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY) || msg[1] !== 0) return undefined;
  if (family === 4 && internetChecksum(msg) !== 0) return undefined;
  const view = Buffer.from(msg.buffer, msg.byteOffset, msg.length);
  const r: EchoReply = { id: view.readUInt16BE(4), seq: view.readUInt16BE(6) };
  if (source !== undefined) r.source = source;
  return r;
}
