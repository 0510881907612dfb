/**
 * sysctl(3) reads and writes through sysctlbyname, as the backend uses them (freebsd-kernel-abi.md
 * §3.3, §5.5): ints, opaque structs read whole (T15), kern.boottime, and the net.inet.carp.*
 * OIDs, which exist only while carp.ko is loaded.
 */
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import { isErrno } from './failure.js';
import type { Libc } from './libc.js';

export function readInt(libc: Libc, name: string): number {
  const b = Buffer.alloc(4);
  libc.sysctlbyname(name, b, null, null);
  return b.readInt32LE(0);
}

export function writeInt(libc: Libc, name: string, v: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  libc.sysctlbyname(name, null, null, b);
}

/**
 * An opaque sysctl read whole: its size is asked first (oldp NULL) and the value is the bytes
 * the kernel returned, so a struct that grew between releases (pfsyncstats, T15) is neither
 * truncated (ENOMEM) nor padded with zeros that look like counters.
 */
export function readOpaque(libc: Libc, name: string): Buffer {
  const size = libc.sysctlbyname(name, null, 0, null);
  const buf = Buffer.alloc(size);
  return buf.subarray(0, libc.sysctlbyname(name, buf, null, null));
}

/** The value, or undefined when the OID does not exist (its module is not loaded). */
export function ifPresent<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** kern.boottime: struct timeval {time_t tv_sec; suseconds_t tv_usec}, 16 bytes on LP64. */
export function readBoottime(libc: Libc): { sec: number; usec: number } {
  const b = Buffer.alloc(16);
  libc.sysctlbyname('kern.boottime', b, null, null);
  return { sec: Number(b.readBigInt64LE(0)), usec: Number(b.readBigInt64LE(8)) };
}

/** net.inet.carp.* exists only while carp.ko is loaded: ENOENT there means EPROTONOSUPPORT. */
export function carpSysctl<T>(fn: () => T, operation: string): T {
  try {
    return fn();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw new KernelError(operation, FREEBSD_ERRNO.EPROTONOSUPPORT, undefined, e.operation);
    throw e;
  }
}
