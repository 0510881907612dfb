/**
 * Address parsing for VIPs, peers and pfsync. Addresses are compared in canonical form
 * (IPv6 per RFC 5952, IPv4 dotted quad without leading zeros) so that `2001:db8::a` and
 * `2001:0DB8:0:0::A` are recognised as the same address.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  address: string;
  prefix: number;
}

/**
 * A parser with a memory: a change looks at the same addresses many times (the document, its
 * validation, the plan, the kernel structs), and telling an address from text is the costly
 * part. Answers are frozen and shared; the memory is bounded and simply starts over when full.
 */
const MAX_REMEMBERED = 4096;
/**
 * `canonical`: the canonical text of an answer, remembered beside the text parsed, so that the
 * canonical form a change stores (and then looks at again) is not parsed a second time.
 */
function remembering<T extends object>(parse: (text: string) => T | undefined, canonical: (v: T) => string): (text: string) => Readonly<T> | undefined {
  const seen = new Map<string, Readonly<T> | null>();
  return (text) => {
    let v = seen.get(text);
    if (v === undefined) {
      if (seen.size >= MAX_REMEMBERED - 1) seen.clear();
      const parsed = parse(text);
      v = parsed ? Object.freeze(parsed) : null;
      seen.set(text, v);
      if (v) {
        const c = canonical(v);
        if (c !== text && !seen.has(c)) seen.set(c, v);
      }
    }
    return v ?? undefined;
  };
}

/** Canonical text of an IP address, or undefined when it is not one. Zone ids are refused. */
export const canonicalIp = remembering(parseIp, (ip) => ip.address);

function parseIp(text: string): { family: Family; address: string } | undefined {
  if (isIPv4(text)) {
    return { family: 4, address: text.split('.').map((o) => String(Number(o))).join('.') };
  }
  if (text.includes('%') || !isIPv6(text)) return undefined;
  return { family: 6, address: formatIpv6(parseIpv6(text)) };
}

export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = canonicalIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, address: ip.address, prefix };
}

/** parseCidr with the same memory as canonicalIp: frozen, shared answers. */
export const cidrOf = remembering(parseCidr, (c) => `${c.address}/${c.prefix}`);

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** Canonical CIDR text, or undefined. */
export function canonicalCidr(text: string): string | undefined {
  const c = parseCidr(text);
  return c ? formatCidr(c) : undefined;
}

/**
 * Whether a CIDR in canonical form (canonicalCidr) is of the canonical `address`, whatever its
 * prefix length. A comparison of text, without parsing: for the backends, which hold their
 * addresses canonical and compare every address they hold for each address they add.
 */
export function canonicalCidrHas(cidr: string, address: string): boolean {
  return cidr.length > address.length && cidr.charCodeAt(address.length) === 0x2f /* '/' */ && cidr.startsWith(address);
}

/** Eight 16-bit groups of an address that isIPv6() accepted (embedded IPv4 allowed). */
function parseIpv6(text: string): number[] {
  let t = text;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(t);
  if (dotted) {
    const o = dotted.slice(1).map(Number);
    t = t.slice(0, dotted.index) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const groups = (part: string): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const double = t.indexOf('::');
  if (double < 0) return groups(t);
  const l = groups(t.slice(0, double));
  const r = groups(t.slice(double + 2));
  return [...l, ...new Array(8 - l.length - r.length).fill(0), ...r];
}

function formatIpv6(g: number[]): string {
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** 16 bytes of an IPv6 address or 4 of an IPv4 address, in network order. */
export function ipBytes(text: string): Buffer {
  const ip = canonicalIp(text);
  if (!ip) throw new TypeError(`not an IP address: ${text}`);
  if (ip.family === 4) {
    const out = Buffer.allocUnsafe(4);
    let at = 0;
    let octet = 0;
    const a = ip.address;
    for (let i = 0; i < a.length; i++) {
      const ch = a.charCodeAt(i);
      if (ch === 46) {
        out[at++] = octet;
        octet = 0;
      } else octet = octet * 10 + ch - 48;
    }
    out[at] = octet;
    return out;
  }
  const out = Buffer.alloc(16);
  parseIpv6(ip.address).forEach((v, i) => out.writeUInt16BE(v, i * 2));
  return out;
}

/** A multicast address (224.0.0.0/4, ff00::/8) cannot be a VIP or a unicast peer. */
export function isMulticast(address: string): boolean {
  const b = ipBytes(address);
  return b.length === 4 ? (b[0] & 0xf0) === 0xe0 : b[0] === 0xff;
}

/** Unspecified (0.0.0.0, ::) addresses. */
export function isUnspecified(address: string): boolean {
  return ipBytes(address).every((x) => x === 0);
}
