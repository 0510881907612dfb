/**
 * The only FFI binding to libc: socket, close, ioctl, sysctlbyname, if_nametoindex, send, recv,
 * free. Every failure becomes a KernelError carrying errno as koffi.errno() reads it right after
 * the call: FreeBSD numbers on FreeBSD, and the fake libc of native/ sets FreeBSD numbers too.
 *
 * Prototypes (FreeBSD, LP64, freebsd-kernel-abi.md §1, §3.3, §5.4):
 *   int     socket(int domain, int type, int protocol)
 *   int     close(int fd)
 *   int     open(const char *path, int flags, ...)           FreeBSD flags (O_CLOEXEC 0x00100000); /dev/pf
 *   int     ioctl(int fd, unsigned long request, ...)       variadic; request never sign-extended (T4)
 *   int     sysctlbyname(const char *name, void *oldp, size_t *oldlenp, const void *newp, size_t newlen)
 *   u_int   if_nametoindex(const char *ifname)               0 on failure
 *   ssize_t send(int fd, const void *buf, size_t len, int flags)
 *   ssize_t recv(int fd, void *buf, size_t len, int flags)
 *   void    free(void *ptr)                                  releases what libnv's nvlist_pack returns
 *
 * Memory: a Buffer passed as an argument is handed to C in place for the duration of the call.
 * A pointer stored inside a struct (ifr_data, ifr_cap_nv.buffer) comes from addressOf(buffer);
 * the caller keeps that Buffer referenced until the ioctl returns (the call is synchronous).
 */
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import { bind, loadKoffi, type Fn, type Koffi } from '../koffi.js';
import { IOCPARM_MASK, IOC_IN, IOC_OUT, ioctlName } from './layout.js';


export interface Libc {
  /** The library actually loaded. */
  readonly path: string;
  socket(domain: number, type: number, protocol: number): number;
  close(fd: number): void;
  /** open(2) without O_CREAT (no mode): FreeBSD flag values. */
  open(path: string, flags: number): number;
  /**
   * ioctl(fd, request, arg). arg must hold at least the size encoded in the request (the kernel
   * copies that many bytes both ways). iface names the interface in errors; by default it is
   * read from the first 16 bytes of arg, where every request carpd sends keeps ifr_name.
   */
  ioctl(fd: number, request: bigint | number, arg: Buffer, iface?: string): void;
  /**
   * sysctlbyname(3). oldp receives the value and oldlen is its capacity (oldp.length when null
   * with a buffer). A size query passes oldp = null and oldlen = 0. With both null, only newp is
   * written. Returns *oldlenp after the call: bytes returned, or needed by a size query.
   */
  sysctlbyname(name: string, oldp: Buffer | null, oldlen: number | null, newp: Buffer | null): number;
  ifNameToIndex(name: string): number;
  send(fd: number, buf: Buffer, flags?: number): number;
  recv(fd: number, buf: Buffer, flags: number): number;
  /** The address of a Buffer's first byte, for pointers inside structs. */
  addressOf(buf: Buffer): bigint;
  free(ptr: bigint | null): void;
}

const EINTR = FREEBSD_ERRNO.EINTR;

/** Reads a NUL-terminated name from the first 16 bytes, for error messages only. */
function nameIn(arg: Buffer): string | undefined {
  const head = arg.subarray(0, 16);
  const end = head.indexOf(0);
  if (end <= 0) return undefined;
  const s = head.toString('latin1', 0, end);
  return /^[\x21-\x7e]+$/.test(s) ? s : undefined;
}

export function loadLibc(path: string = process.env.CARPD_FREEBSD_LIBC ?? 'libc.so.7'): Libc {
  const koffi = loadKoffi('the FreeBSD backend');
  let lib: ReturnType<Koffi['load']>;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new Error(`cannot load the C library "${path}" (set CARPD_FREEBSD_LIBC to its path): ${(e as Error).message}`);
  }
  const fn = (decl: string) => bind(lib, path, 'CARPD_FREEBSD_LIBC', decl);
  const c = {
    socket: fn('int socket(int domain, int type, int protocol)'),
    close: fn('int close(int fd)'),
    open: fn('int open(const char *path, int flags, ...)'),
    ioctl: fn('int ioctl(int fd, unsigned long request, ...)'),
    sysctlbyname: fn('int sysctlbyname(const char *name, void *oldp, void *oldlenp, const void *newp, size_t newlen)'),
    if_nametoindex: fn('unsigned int if_nametoindex(const char *ifname)'),
    send: fn('intptr_t send(int fd, const void *buf, size_t len, int flags)'),
    recv: fn('intptr_t recv(int fd, void *buf, size_t len, int flags)'),
    free: fn('void free(void *ptr)'),
  };

  /**
   * Runs a call returning < 0 on failure, retrying EINTR; errno is read before anything else
   * runs. The operation is named (and the interface found) only when there is a failure to name.
   */
  const sys = (operation: string | (() => string), iface: string | undefined | (() => string | undefined), call: () => unknown): number => {
    for (;;) {
      const rc = Number(call());
      if (rc >= 0) return rc;
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      throw new KernelError(typeof operation === 'string' ? operation : operation(), errno, typeof iface === 'function' ? iface() : iface, errno === 0 ? 'failed without setting errno' : undefined);
    }
  };

  return {
    path,
    socket: (domain, type, protocol) => sys('socket', undefined, () => c.socket(domain, type, protocol)),
    close: (fd) => {
      // close(2) is not retried: after EINTR the descriptor state is unspecified.
      if (Number(c.close(fd)) < 0) throw new KernelError('close', koffi.errno());
    },
    open: (p, flags) => sys(`open ${p}`, undefined, () => c.open(p, flags)),
    ioctl: (fd, request, arg, iface) => {
      const req = typeof request === 'bigint' ? request : BigInt(request);
      if (req < 0n || req > 0xffffffffn) throw new RangeError(`ioctl request ${request} is not an unsigned 32-bit value (T4)`);
      const r = Number(req);
      const size = (r >>> 16) & IOCPARM_MASK;
      if ((r & (IOC_IN | IOC_OUT)) !== 0 && arg.length < size) {
        throw new RangeError(`ioctl 0x${r.toString(16)} moves ${size} bytes; argument buffer has ${arg.length}`);
      }
      // sys() inlined: no closures per call (a batch makes hundreds); a failure is named as sys() names it.
      for (;;) {
        if (Number(c.ioctl(fd, req, 'void *', arg)) >= 0) return;
        const errno = koffi.errno();
        if (errno === EINTR) continue;
        throw new KernelError(`ioctl ${ioctlName(r) ?? `0x${r.toString(16)}`}`, errno, iface ?? nameIn(arg), errno === 0 ? 'failed without setting errno' : undefined);
      }
    },
    sysctlbyname: (name, oldp, oldlen, newp) => {
      const cap = oldlen ?? oldp?.length ?? null;
      if (oldp && cap !== null && cap > oldp.length) throw new RangeError(`sysctl ${name}: oldlen ${cap} exceeds the ${oldp.length}-byte buffer`);
      const lenp = cap === null ? null : Buffer.alloc(8);
      lenp?.writeBigUInt64LE(BigInt(cap!), 0);
      sys(`sysctl ${name}`, undefined, () => c.sysctlbyname(name, oldp, lenp, newp, newp?.length ?? 0));
      return lenp ? Number(lenp.readBigUInt64LE(0)) : 0;
    },
    ifNameToIndex: (name) => {
      const idx = Number(c.if_nametoindex(name));
      if (idx !== 0) return idx;
      const errno = koffi.errno();
      throw new KernelError('if_nametoindex', errno === 0 ? FREEBSD_ERRNO.ENXIO : errno, name);
    },
    send: (fd, buf, flags = 0) => sys('netlink send', undefined, () => c.send(fd, buf, buf.length, flags)),
    recv: (fd, buf, flags) => sys('netlink recv', undefined, () => c.recv(fd, buf, buf.length, flags)),
    addressOf: (buf) => koffi.address(buf),
    free: (ptr) => {
      if (ptr !== null && ptr !== 0n) c.free(ptr);
    },
  };
}
