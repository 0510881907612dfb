/**
 * How the FreeBSD backend reports a failure: in carpd's terms first (the operation, "set vhid
 * 3"), then the call inside it that failed ("netlink carp SET") with its errno, and a hint that
 * says what the errno means in carp(4) terms for that kind of operation (freebsd-kernel-abi.md
 * §3.2, §7). Every failure is a KernelError carrying the FreeBSD errno (kernel/backend.ts).
 */
import { FREEBSD_ERRNO, KernelError, type ErrnoName } from '../errno.js';
import { IFNAMSIZ } from './layout.js';

export type ErrnoHints = Partial<Record<ErrnoName, string>>;

export const isErrno = (e: unknown, name: ErrnoName): e is KernelError => e instanceof KernelError && e.errno === FREEBSD_ERRNO[name];

/** Why an errno happened, in carp(4) terms, for the operations that can meet it (§3.2). */
export const HINTS: ErrnoHints = {
  EPERM: 'not privileged: carpd must run as root',
  EPROTONOSUPPORT: 'carp(4) is not loaded: kldload carp, or carp_load="YES" in /boot/loader.conf',
  ENXIO: 'no such interface',
  EOPNOTSUPP: 'carp(4) runs only on Ethernet, VLAN and bridge interfaces',
  EADDRNOTAVAIL: 'the interface is not multicast-capable',
};

/** A failure in carpd's terms: the operation, then the syscall that failed, with the errno. */
export function fail(e: unknown, operation: string, iface?: string, hints: ErrnoHints = HINTS): never {
  if (e instanceof KernelError) {
    const inner = e.operation === operation || e.operation.startsWith(`${operation} (`) ? undefined : e.operation;
    const hint = hints[e.errnoName as ErrnoName];
    const why = [hint, e.message.match(/\((.*)\)$/)?.[1]].filter((x, i, a) => x && a.indexOf(x) === i).join('; ');
    throw new KernelError(inner ? `${operation} (${inner})` : operation, e.errno, e.iface ?? iface, why || undefined);
  }
  if (e instanceof RangeError || e instanceof TypeError) throw KernelError.of('EINVAL', operation, iface, e.message);
  throw e;
}

/** An interface name the kernel could know (ifr_name is IFNAMSIZ bytes with its NUL), else ENXIO. */
export function checkIfName(operation: string, iface: string): void {
  const n = Buffer.byteLength(iface);
  if (n === 0 || n >= IFNAMSIZ || iface.includes('\0')) throw KernelError.of('ENXIO', operation, iface, `no such interface (names are 1..${IFNAMSIZ - 1} bytes)`);
}
