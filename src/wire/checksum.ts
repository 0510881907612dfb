/**
 * RFC 1071 Internet checksum and the IPv4/IPv6 pseudo-headers.
 *
 * ```
 *  one's-complement sum of big-endian 16-bit words (an odd last byte is the high half)
 *
 *  IPv4 pseudo-header (12 bytes)            IPv6 pseudo-header (40 bytes)
 *  +--------------------------------+       +-------------------------------------+
 *  | source address          (4)    |       | source address                 (16) |
 *  | destination address     (4)    |       | destination address            (16) |
 *  | zero (1) | proto (1) | len (2) |       | upper-layer length, 32 bits     (4) |
 *  +--------------------------------+       | zero (3)           | next header (1) |
 *                                           +-------------------------------------+
 * ```
 *
 * Who uses which (carp-protocol.md §3, §11.1, trap 4):
 * - CARP: the 36 header bytes only, no pseudo-header, IPv4 and IPv6 alike.
 * - VRRPv3: pseudo-header + message, IPv4 as well as IPv6.
 * - ICMPv6 (the unsolicited neighbour advertisement): IPv6 pseudo-header + message.
 * - IPv4 header checksum: the 20 header bytes.
 */

/**
 * Adds the 16-bit words of bytes[start, end) to `initial` without folding. The result stays an
 * exact integer for any input shorter than a few terabytes. Chain calls only at even offsets.
 */
export function onesSum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) sum += bytes[i] << 8;
  return sum;
}

/** Folds the carries of an unfolded sum into 16 bits (the result is never complemented). */
export function foldSum(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * The checksum to store: the complement of the folded sum of bytes[start, end) plus `initial`
 * (a pseudo-header sum). Compute it with the checksum field zeroed. A receiver that sums the
 * whole message including the stored value gets 0 back from this function (§3: the folded sum
 * is 0xffff).
 */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length, initial = 0): number {
  return ~foldSum(onesSum(bytes, start, end, initial)) & 0xffff;
}

/** The unfolded sum of an IPv4 pseudo-header (RFC 768 layout, used by VRRPv3 over IPv4). */
export function ipv4PseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  if (src.length !== 4 || dst.length !== 4) throw new RangeError('IPv4 pseudo-header needs 4-byte addresses');
  return onesSum(src) + onesSum(dst) + proto + (length & 0xffff);
}

/** The unfolded sum of an IPv6 pseudo-header (RFC 8200 §8.1). */
export function ipv6PseudoHeaderSum(src: Uint8Array, dst: Uint8Array, nextHeader: number, length: number): number {
  if (src.length !== 16 || dst.length !== 16) throw new RangeError('IPv6 pseudo-header needs 16-byte addresses');
  return onesSum(src) + onesSum(dst) + Math.floor(length / 0x10000) + (length & 0xffff) + nextHeader;
}

/** The pseudo-header sum for whichever family the two addresses are (both 4 or both 16 bytes). */
export function pseudoHeaderSum(src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  return src.length === 4 ? ipv4PseudoHeaderSum(src, dst, proto, length) : ipv6PseudoHeaderSum(src, dst, proto, length);
}

/** Writes into `message` the 16-bit checksum at `at`, over the pseudo-header (src, dst, proto) and the whole message. */
export function writePseudoHeaderChecksum(message: Uint8Array, at: number, src: Uint8Array, dst: Uint8Array, proto: number): void {
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  view.setUint16(at, 0);
  view.setUint16(at, internetChecksum(message, 0, message.length, pseudoHeaderSum(src, dst, proto, message.length)));
}
