/**
 * parseCidr with a memory: a change looks at the same few addresses many times (building the
 * VIP, validating it, indexing it, planning it), and parsing an IPv6 address is the costly part
 * of that. Results are frozen and shared; the memory is bounded and simply starts over when full.
 */
import { parseCidr, type Cidr } from '../wire/address.js';

const MAX_ENTRIES = 4096;
const seen = new Map<string, Readonly<Cidr> | null>();

export function cidrOf(text: string): Readonly<Cidr> | undefined {
  let c = seen.get(text);
  if (c === undefined) {
    if (seen.size >= MAX_ENTRIES) seen.clear();
    const parsed = parseCidr(text);
    c = parsed ? Object.freeze(parsed) : null;
    seen.set(text, c);
  }
  return c ?? undefined;
}
