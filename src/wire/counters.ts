/**
 * Packet statistics named like FreeBSD's `struct carpstats` (`netstat -s -p carp`), so that
 * counts from a Linux node and a FreeBSD peer can be read side by side (carp-protocol.md §2.1,
 * DESIGN.md habit 5: bad packets are counted, not thrown).
 *
 * ```
 *  struct carpstats: 16 x uint64 = 128 bytes
 *  offset  field        offset  field
 *     0    ipackets        64   badauth
 *     8    ipackets6       72   badvhid
 *    16    badif           80   badaddrs
 *    24    badttl          88   opackets
 *    32    hdrops          96   opackets6
 *    40    badsum         104   onomem
 *    48    badver         112   ostates
 *    56    badlen         120   preempt
 * ```
 *
 * Decoders in this directory return `{ ok: false, error }` where `error` is one of these names
 * (or an IPv4 framing error, filed under `hdrops`), so counting is a lookup, not a mapping table.
 */

/** The carpstats fields in kernel order (freebsd-kernel-abi.md §3.1). */
export const CARP_STAT_NAMES = [
  'ipackets',
  'ipackets6',
  'badif',
  'badttl',
  'hdrops',
  'badsum',
  'badver',
  'badlen',
  'badauth',
  'badvhid',
  'badaddrs',
  'opackets',
  'opackets6',
  'onomem',
  'ostates',
  'preempt',
] as const;

export type CarpStatName = (typeof CARP_STAT_NAMES)[number];
export type CarpStats = Record<CarpStatName, number>;

/** The input-side drop reasons a decoder can report. */
export type CarpDropReason = Exclude<CarpStatName, 'ipackets' | 'ipackets6' | 'opackets' | 'opackets6' | 'onomem' | 'ostates' | 'preempt'>;

const DROP_REASONS: ReadonlySet<string> = new Set<CarpDropReason>([
  'badif',
  'badttl',
  'hdrops',
  'badsum',
  'badver',
  'badlen',
  'badauth',
  'badvhid',
  'badaddrs',
]);

/** The counter a decode error is filed under: a carpstats drop name as is, anything else (IP framing) as hdrops. */
export function dropCounterFor(error: string): CarpDropReason {
  return DROP_REASONS.has(error) ? (error as CarpDropReason) : 'hdrops';
}

/** A decode result of any codec here: success, or an error kind. */
export type CountableResult = { ok: true } | { ok: false; error: string };

export class CarpCounters {
  private readonly values: CarpStats;

  constructor() {
    this.values = CarpCounters.zero();
  }

  static zero(): CarpStats {
    return Object.fromEntries(CARP_STAT_NAMES.map((n) => [n, 0])) as CarpStats;
  }

  get(name: CarpStatName): number {
    return this.values[name];
  }

  add(name: CarpStatName, n = 1): void {
    this.values[name] += n;
  }

  /**
   * Counts one received packet the way carp_input does: ipackets/ipackets6 for every packet that
   * reached the CARP input path, plus the drop counter when it was refused.
   */
  countInput(family: 4 | 6, result: CountableResult): void {
    this.values[family === 4 ? 'ipackets' : 'ipackets6']++;
    if (!result.ok) this.values[dropCounterFor(result.error)]++;
  }

  /** Counts one sent advertisement. */
  countOutput(family: 4 | 6): void {
    this.values[family === 4 ? 'opackets' : 'opackets6']++;
  }

  /** A copy of every counter, in kernel order. */
  snapshot(): CarpStats {
    return { ...this.values };
  }

  reset(): void {
    for (const n of CARP_STAT_NAMES) this.values[n] = 0;
  }
}

/** Counts a decode result into `counters` (see CarpCounters.countInput). */
export function countDecode(counters: CarpCounters, family: 4 | 6, result: CountableResult): void {
  counters.countInput(family, result);
}
