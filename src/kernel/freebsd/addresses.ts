/**
 * VIP addresses on a vhid: SIOCAIFADDR[_IN6] with ifra_vhid to bind, SIOCDIFADDR[_IN6] to unbind
 * (freebsd-kernel-abi.md §4, T1, T3, T7), each recorded in the ledger (ledger.ts), because
 * carp(4) has no request that lists a vhid's addresses. IPv6 requests go through an AF_INET6
 * socket, opened on first use: the kernel routes them to in6_control only from one.
 *
 * Ledger order. An address change is written to the ledger before the kernel is asked, and
 * taken back if the kernel refuses. A crash in between leaves the ledger one step ahead of the
 * kernel in a change the service had not committed yet, and the next reconcile converges: an
 * address recorded but never bound is "removed" (EADDRNOTAVAIL from the kernel counts as done),
 * an address recorded as removed but still bound is bound again (SIOCAIFADDR replaces it).
 */
import type { Logger } from 'pino';
import { formatCidr, parseCidr, type Cidr } from '../../wire/address.js';
import { KernelError } from '../errno.js';
import { type CarpChannel, type CarpTransport, sameParams } from './carp.js';
import { type ErrnoHints, HINTS, checkIfName, fail, isErrno } from './failure.js';
import { AF_INET6, SIOCAIFADDR, SIOCAIFADDR_IN6, SIOCDIFADDR, SIOCDIFADDR_IN6, SOCK_CLOEXEC, SOCK_DGRAM, ifreqBytes } from './layout.js';
import { in6AliasreqBytes, in6IfreqBytes, inAliasreqBytes } from './layout-addr.js';
import { carpKeyText } from './layout-carp.js';
import type { AddressLedger } from './ledger.js';
import type { Libc } from './libc.js';
import type { StateTracker } from './tracker.js';

export const ADD_HINTS: ErrnoHints = {
  ...HINTS,
  ENOPROTOOPT: 'the interface has no vhid at all; set the vhid before its addresses',
  ENOENT: 'that vhid does not exist on the interface (other vhids do); set it first',
  EADDRNOTAVAIL: 'the address cannot be assigned here',
  EINVAL: 'the kernel refused the address or its prefix length',
};

/** The address ioctls, and the ledger kept in step with them. */
export class AddressBinder {
  private inet6Fd?: number;

  constructor(
    private readonly libc: Libc,
    private readonly inetFd: number,
    private readonly ledger: AddressLedger,
    private readonly logger: Logger,
  ) {}

  close(): void {
    if (this.inet6Fd === undefined) return;
    try {
      this.libc.close(this.inet6Fd);
    } catch { /* nothing to do */ }
  }

  private inet6(): number {
    this.inet6Fd ??= this.libc.socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return this.inet6Fd;
  }

  private scopeOf(iface: string, c: Cidr): number | undefined {
    // KAME-style link-local addresses name their interface in sin6_scope_id.
    return c.family === 6 && /^fe[89ab]/i.test(c.address) ? this.libc.ifNameToIndex(iface) : undefined;
  }

  /** SIOCAIFADDR / SIOCAIFADDR_IN6 with ifra_vhid, always with a mask (§4, T3, T7). */
  kernelAdd(iface: string, vhid: number, c: Cidr): void {
    if (c.family === 4) {
      this.libc.ioctl(this.inetFd, SIOCAIFADDR, inAliasreqBytes({ name: iface, address: c.address, prefix: c.prefix, vhid }), iface);
    } else {
      const scopeId = this.scopeOf(iface, c);
      this.libc.ioctl(this.inet6(), SIOCAIFADDR_IN6, in6AliasreqBytes({ name: iface, address: c.address, prefix: c.prefix, vhid, ...(scopeId ? { scopeId } : {}) }), iface);
    }
  }

  /** SIOCDIFADDR / SIOCDIFADDR_IN6; the sockaddr carries its length byte (T1). */
  kernelDel(iface: string, c: Cidr): void {
    if (c.family === 4) {
      this.libc.ioctl(this.inetFd, SIOCDIFADDR, ifreqBytes({ name: iface, addr: c.address }), iface);
    } else {
      const scopeId = this.scopeOf(iface, c);
      this.libc.ioctl(this.inet6(), SIOCDIFADDR_IN6, in6IfreqBytes({ name: iface, address: c.address, ...(scopeId ? { scopeId } : {}) }), iface);
    }
  }

  /** Ledger first, then the kernel; the ledger entry is taken back if the kernel refuses. */
  async bind(op: string, iface: string, vhid: number, c: Cidr): Promise<void> {
    const cidr = formatCidr(c);
    const known = this.ledger.holder(iface, cidr) !== undefined;
    this.ledger.addAddress(iface, vhid, cidr);
    await this.ledger.save(op);
    try {
      this.kernelAdd(iface, vhid, c);
    } catch (e) {
      // in6_control keeps a new IPv6 address whose carp attach failed, without a vhid: remove it.
      if (c.family === 6 && !known) {
        try {
          this.kernelDel(iface, c);
        } catch { /* it was not added */ }
      }
      this.ledger.removeAddress(iface, vhid, cidr);
      await this.ledger.save(op).catch((w: unknown) => this.logger.error({ event: 'freebsd.ledger', err: String(w) }, String(w)));
      fail(e, op, iface, ADD_HINTS);
    }
  }

  /** Ledger first, then the kernel; an address the kernel no longer has counts as removed. */
  async unbind(op: string, iface: string, vhid: number, c: Cidr): Promise<void> {
    const cidr = formatCidr(c);
    const prev = this.ledger.holder(iface, cidr);
    this.ledger.removeAddress(iface, vhid, cidr);
    await this.ledger.save(op);
    try {
      this.kernelDel(iface, c);
    } catch (e) {
      if (isErrno(e, 'EADDRNOTAVAIL')) return;
      if (prev) this.ledger.addAddress(iface, prev.vhid, prev.cidr);
      await this.ledger.save(op).catch((w: unknown) => this.logger.error({ event: 'freebsd.ledger', err: String(w) }, String(w)));
      fail(e, op, iface, { ...HINTS, EADDRNOTAVAIL: 'the address is not on the interface' });
    }
  }
}

/** addAddress and removeAddress of the backend contract (kernel/backend.ts). */
export class AddressControl {
  constructor(
    private readonly carp: CarpChannel,
    private readonly binder: AddressBinder,
    private readonly ledger: AddressLedger,
    private readonly tracker: StateTracker,
  ) {}

  async add(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `add address ${cidr} to vhid ${vhid}`;
    checkIfName(op, iface);
    const c = parseCidr(cidr);
    if (!c) throw KernelError.of('EINVAL', op, iface, 'not an address with a prefix');
    const canonical = formatCidr(c);
    const t = await this.carp.get(op, iface);
    const held = this.ledger.holder(iface, canonical);
    // §12.2: the kernel does not refuse a duplicate, it deletes and re-adds the address,
    // which restarts the vhid (INIT, then BACKUP). Already bound as asked: nothing to do.
    if (held?.vhid === vhid && held.cidr === canonical) return;
    if (held && held.vhid !== vhid) {
      // The address moves: off its old vhid first (which goes away if it was its last).
      await this.binder.unbind(op, iface, held.vhid, parseCidr(held.cidr)!);
      await this.tracker.refresh(t, iface, held.vhid, (s) => `kernel reports ${s} after ${held.cidr} moved to vhid ${vhid}`);
    } else if (held && c.family === 6) {
      // A new prefix length: IPv6 cannot change it in place (IPv4's SIOCAIFADDR can).
      await this.rebindIpv6(t, op, iface, vhid, held.cidr);
    }
    await this.binder.bind(op, iface, vhid, c);
    await this.tracker.refresh(t, iface, vhid, (s) => `address ${canonical} bound; kernel reports ${s}`);
  }

  async remove(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `remove address ${cidr} from vhid ${vhid}`;
    checkIfName(op, iface);
    const c = parseCidr(cidr);
    const held = c ? this.ledger.holder(iface, formatCidr(c)) : undefined;
    // Only what carpd bound: SIOCDIFADDR does not look at vhids and would delete any address.
    if (!c || !held || held.vhid !== vhid) throw KernelError.of('EADDRNOTAVAIL', op, iface, 'the address is not on that vhid');
    const t = await this.carp.get(op, iface);
    await this.binder.unbind(op, iface, vhid, c);
    await this.tracker.refresh(t, iface, vhid, (s) => `address ${held.cidr} removed; kernel reports ${s}`);
  }

  /** Removes an IPv6 address to re-add it with another prefix, recreating the vhid if that emptied it. */
  private async rebindIpv6(t: CarpTransport, op: string, iface: string, vhid: number, old: string): Promise<void> {
    let cur;
    try {
      cur = await t.get(iface, vhid);
    } catch (e) {
      fail(e, op, iface);
    }
    await this.binder.unbind(op, iface, vhid, parseCidr(old)!);
    if (!cur || (await t.get(iface, vhid))) return;
    const key = cur.key ? carpKeyText(cur.key) : undefined;
    try {
      await t.set(sameParams(t, this.carp.major, iface, vhid, cur, key !== undefined ? { key } : {}));
    } catch (e) {
      fail(e, op, iface);
    }
  }
}
