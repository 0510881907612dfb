/**
 * The FFI binding to glibc for the Linux backend: sockets (raw IP, netlink, packet), poll, a
 * self-pipe and interface names. Every failure becomes a KernelError carrying the FreeBSD errno of
 * the same NAME as the Linux errno (errno.ts: the rest of carpd speaks FreeBSD numbers only);
 * a Linux errno whose name FreeBSD does not have becomes an UnmappedErrnoError.
 *
 * Prototypes (glibc, LP64: x86_64 and aarch64 share every layout below):
 *   int     socket(int domain, int type, int protocol)        type may carry SOCK_NONBLOCK|SOCK_CLOEXEC
 *   int     close(int fd)
 *   int     setsockopt(int fd, int level, int name, const void *val, socklen_t len)
 *   int     getsockopt(int fd, int level, int name, void *val, socklen_t *len)
 *   int     bind(int fd, const struct sockaddr *addr, socklen_t len)
 *   ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
 *   ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *fromlen)
 *   ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
 *   int     poll(struct pollfd *fds, nfds_t n, int timeout)    also called through koffi's .async
 *   int     pipe2(int fds[2], int flags)
 *   ssize_t write(int fd, const void *buf, size_t n), read(int fd, void *buf, size_t n)
 *   u_int   if_nametoindex(const char *name)                  0 + ENODEV when absent
 *   char   *if_indextoname(u_int index, char *name)            NULL + ENXIO when absent
 *
 * Structures built here as plain bytes (LP64 glibc):
 *
 *   struct pollfd (8)      +0 i32 fd, +4 i16 events, +6 i16 revents
 *   struct sockaddr_in (16)  +0 u16 family (2), +2 be16 port, +4 addr[4], +8 zero[8]
 *   struct sockaddr_in6 (28) +0 u16 family (10), +2 be16 port, +4 u32 flowinfo, +8 addr[16], +24 u32 scope_id
 *   struct sockaddr_nl (12)  +0 u16 family (16), +2 pad, +4 u32 pid, +8 u32 groups
 *   struct sockaddr_ll (20)  +0 u16 family (17), +2 be16 protocol, +4 i32 ifindex, +8 u16 hatype,
 *                            +10 u8 pkttype, +11 u8 halen, +12 addr[8]
 *   struct ip_mreqn (12)     +0 multiaddr[4], +4 address[4], +8 i32 ifindex
 *   struct ipv6_mreq (20)    +0 addr[16], +16 i32 ifindex
 *   struct in6_pktinfo (20)  +0 addr[16], +16 i32 ifindex
 *   struct iovec (16)        +0 void *base, +8 size_t len
 *   struct msghdr (56)       +0 void *name, +8 u32 namelen, +16 iovec *iov, +24 size_t iovlen,
 *                            +32 void *control, +40 size_t controllen, +48 i32 flags
 *   struct cmsghdr (16 + data, 8-aligned)  +0 size_t len, +8 i32 level, +12 i32 type, +16 data
 *   struct sock_fprog (16)   +0 u16 len, +8 sock_filter *filter;  sock_filter (8): u16 code, u8 jt, u8 jf, u32 k
 *
 * Memory: a Buffer passed as an argument is handed to C in place for the duration of the call; a
 * pointer stored inside a struct (msghdr, iovec, sock_fprog) comes from addressOf(buffer), and the
 * owner keeps that Buffer referenced (the calls are synchronous, except poll.async whose pollfd
 * Buffer the Poller keeps until the call completes).
 */
import { promisify } from 'node:util';
import { FREEBSD_ERRNO, KernelError, type ErrnoName } from '../errno.js';
import { bind, loadKoffi, type Koffi } from '../koffi.js';

// ---- constants (Linux, all architectures carpd runs on) ------------------------------------------

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_BINDTODEVICE = 25;
export const SO_ATTACH_FILTER = 26;
export const SO_RCVBUFFORCE = 33;

export const IPPROTO_IP = 0;
export const IP_TOS = 1;
export const IP_TTL = 2;
export const IP_HDRINCL = 3;
export const IP_MULTICAST_IF = 32;
export const IP_MULTICAST_TTL = 33;
export const IP_MULTICAST_LOOP = 34;
export const IP_ADD_MEMBERSHIP = 35;
export const IP_DROP_MEMBERSHIP = 36;

export const IPPROTO_IPV6 = 41;
export const IPV6_CHECKSUM = 7;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_IF = 17;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_LOOP = 19;
export const IPV6_JOIN_GROUP = 20;
export const IPV6_LEAVE_GROUP = 21;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_RECVHOPLIMIT = 51;
export const IPV6_HOPLIMIT = 52;
export const IPV6_TCLASS = 67;

export const IPPROTO_ICMPV6 = 58;
export const ICMP6_FILTER = 1;

export const SOL_NETLINK = 270;
export const NETLINK_ROUTE = 0;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;

export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;

export const POLLIN = 0x1;
export const POLLPRI = 0x2;
export const POLLOUT = 0x4;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;

export const ETH_P_ARP = 0x0806;
export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;

export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;
export const SOCKADDR_NL_LEN = 12;
export const SOCKADDR_LL_LEN = 20;
export const POLLFD_LEN = 8;
const MSGHDR_LEN = 56;
const IOVEC_LEN = 16;
const CMSGHDR_LEN = 16;
export const IFNAMSIZ = 16;

// ---- errno ---------------------------------------------------------------------------------------

/** Linux errno numbers (asm-generic/errno-base.h, asm-generic/errno.h; x86 and arm64 use these). */
export const LINUX_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28,
  ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36,
  ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EIDRM: 43, ENOSTR: 60, ENODATA: 61,
  ETIME: 62, ENOSR: 63, ENONET: 64, ENOLINK: 67, EPROTO: 71, EMULTIHOP: 72, EBADMSG: 74, EOVERFLOW: 75,
  EILSEQ: 84, EUSERS: 87, ENOTSOCK: 88, EDESTADDRREQ: 89, EMSGSIZE: 90, EPROTOTYPE: 91, ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93, ESOCKTNOSUPPORT: 94, EOPNOTSUPP: 95, EPFNOSUPPORT: 96, EAFNOSUPPORT: 97,
  EADDRINUSE: 98, EADDRNOTAVAIL: 99, ENETDOWN: 100, ENETUNREACH: 101, ENETRESET: 102, ECONNABORTED: 103,
  ECONNRESET: 104, ENOBUFS: 105, EISCONN: 106, ENOTCONN: 107, ESHUTDOWN: 108, ETOOMANYREFS: 109,
  ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTDOWN: 112, EHOSTUNREACH: 113, EALREADY: 114, EINPROGRESS: 115,
  ESTALE: 116, EDQUOT: 122, ECANCELED: 125, EOWNERDEAD: 130, ENOTRECOVERABLE: 131, ERFKILL: 132,
  EHWPOISON: 133,
  // Aliases: the same numbers under a second name (the first name wins when decoding).
  EWOULDBLOCK: 11, EDEADLOCK: 35, ENOTSUP: 95,
} as const;

export type LinuxErrnoName = keyof typeof LINUX_ERRNO;

const LINUX_NAMES = new Map<number, LinuxErrnoName>();
for (const [name, n] of Object.entries(LINUX_ERRNO) as [LinuxErrnoName, number][]) if (!LINUX_NAMES.has(n)) LINUX_NAMES.set(n, name);

/** The Linux name of an errno number, or undefined for a number this table does not know. */
export function linuxErrnoName(n: number): LinuxErrnoName | undefined {
  return LINUX_NAMES.get(n);
}

/**
 * A Linux errno that has no same-named FreeBSD errno in FREEBSD_ERRNO (ENODATA, ELOOP, ...) or no
 * name at all. There is no FreeBSD number to carry, so `errno` is 0; errnoName is the Linux name
 * (or "errno N") and the message names the Linux number.
 */
export class UnmappedErrnoError extends KernelError {
  constructor(
    operation: string,
    readonly linuxErrno: number,
    iface?: string,
    why?: string,
  ) {
    super(operation, 0, iface, why);
    const label = linuxErrnoName(linuxErrno) ?? `errno ${linuxErrno}`;
    Object.defineProperty(this, 'errnoName', { value: label, enumerable: true, writable: false });
    this.message = `${operation}${iface ? ` on ${iface}` : ''} failed: ${label} (Linux errno ${linuxErrno}${why ? `; ${why}` : ''})`;
  }
}

/**
 * The KernelError for a Linux errno: the FreeBSD errno of the same name (ENOTSUP and EWOULDBLOCK
 * decode as EOPNOTSUPP and EAGAIN, their first names), or an UnmappedErrnoError.
 */
export function linuxKernelError(errno: number, operation: string, iface?: string, why?: string): KernelError {
  const name = linuxErrnoName(errno);
  if (name !== undefined && Object.hasOwn(FREEBSD_ERRNO, name)) return KernelError.of(name as ErrnoName, operation, iface, why);
  return new UnmappedErrnoError(operation, errno, iface, why ?? (errno === 0 ? 'failed without setting errno' : undefined));
}

/** A reusable receive area for recvmsg: data, source address and control buffers, and the msghdr over them. */
export class RecvMsgBuffers {
  readonly data: Buffer;
  readonly name: Buffer;
  readonly control: Buffer;
  readonly msghdr = Buffer.alloc(MSGHDR_LEN);
  private readonly iov = Buffer.alloc(IOVEC_LEN);

  constructor(libc: LinuxLibc, dataSize: number, nameSize: number, controlSize: number) {
    this.data = Buffer.alloc(dataSize);
    this.name = Buffer.alloc(nameSize);
    this.control = Buffer.alloc(controlSize);
    this.iov.writeBigUInt64LE(libc.addressOf(this.data), 0);
    this.iov.writeBigUInt64LE(BigInt(dataSize), 8);
    this.msghdr.writeBigUInt64LE(libc.addressOf(this.name), 0);
    this.msghdr.writeBigUInt64LE(libc.addressOf(this.iov), 16);
    this.msghdr.writeBigUInt64LE(1n, 24);
    this.msghdr.writeBigUInt64LE(libc.addressOf(this.control), 32);
    this.reset();
  }

  /** Restores the lengths recvmsg overwrites; called before every recvmsg. */
  reset(): void {
    this.msghdr.writeUInt32LE(this.name.length, 8);
    this.msghdr.writeBigUInt64LE(BigInt(this.control.length), 40);
    this.msghdr.writeInt32LE(0, 48);
  }

  /** msg_flags after recvmsg (MSG_TRUNC, MSG_CTRUNC). */
  get flags(): number {
    return this.msghdr.readInt32LE(48);
  }

  get nameLength(): number {
    return this.msghdr.readUInt32LE(8);
  }

  /** The control messages recvmsg returned. */
  cmsgs(): { level: number; type: number; data: Buffer }[] {
    const out: { level: number; type: number; data: Buffer }[] = [];
    const total = Number(this.msghdr.readBigUInt64LE(40));
    let off = 0;
    while (off + CMSGHDR_LEN <= total) {
      const len = Number(this.control.readBigUInt64LE(off));
      if (len < CMSGHDR_LEN || off + len > total) break;
      out.push({ level: this.control.readInt32LE(off + 8), type: this.control.readInt32LE(off + 12), data: this.control.subarray(off + CMSGHDR_LEN, off + len) });
      off += (len + 7) & ~7;
    }
    return out;
  }
}

export interface LinuxLibc {
  /** The library actually loaded. */
  readonly path: string;
  /** Every call below names `operation` (and `iface`) in the KernelError it throws. */
  socket(domain: number, type: number, protocol: number, operation?: string, iface?: string): number;
  close(fd: number): void;
  setsockopt(fd: number, level: number, name: number, value: Buffer | number, operation: string, iface?: string): void;
  /** Reads an int option. */
  getsockoptInt(fd: number, level: number, name: number, operation: string, iface?: string): number;
  bind(fd: number, addr: Buffer, operation: string, iface?: string): void;
  /** Bytes sent. EAGAIN throws like any other errno (a send that would block is a failed send). */
  sendto(fd: number, buf: Buffer, flags: number, addr: Buffer | null, operation: string, iface?: string): number;
  /** Bytes received, or null when nothing is waiting (EAGAIN). `from` receives the source address when given. */
  recvfrom(fd: number, buf: Buffer, flags: number, from: Buffer | null, operation: string, iface?: string): number | null;
  /** Bytes received into m.data, or null when nothing is waiting (EAGAIN). Resets m before the call. */
  recvmsg(fd: number, m: RecvMsgBuffers, flags: number, operation: string, iface?: string): number | null;
  /** Synchronous poll(2); returns the number of ready entries (0 on timeout). */
  poll(fds: Buffer, timeoutMs: number): number;
  /**
   * poll(2) on one of koffi's worker threads; resolves with its result (-1 on failure: errno is
   * not observable from the main thread after an asynchronous call). `fds` must stay untouched
   * until the promise settles.
   */
  pollAsync(fds: Buffer, timeoutMs: number): Promise<number>;
  /** [read end, write end]. */
  pipe2(flags: number): [number, number];
  /** Bytes written, or null when the descriptor would block. */
  write(fd: number, buf: Buffer): number | null;
  /** Bytes read (0 at end of file), or null when the descriptor would block. */
  read(fd: number, buf: Buffer): number | null;
  /** ENXIO when the interface does not exist. */
  ifNameToIndex(name: string): number;
  /** undefined when no interface has this index. */
  ifIndexToName(index: number): string | undefined;
  /** The address of a Buffer's first byte, for pointers inside structs. */
  addressOf(buf: Buffer): bigint;
}

type Fn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

let shared: LinuxLibc | undefined;

/** The process-wide binding (libc.so.6, or CARPD_LINUX_LIBC). */
export function linuxLibc(): LinuxLibc {
  shared ??= loadLinuxLibc();
  return shared;
}

export function loadLinuxLibc(path: string = process.env.CARPD_LINUX_LIBC ?? 'libc.so.6'): LinuxLibc {
  const koffi = loadKoffi('the linux backend');
  if (koffi.sizeof('void *') !== 8) throw new Error('the linux backend supports 64-bit Linux only (LP64 struct layouts)');
  let lib: ReturnType<Koffi['load']>;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new Error(`cannot load the C library "${path}" (set CARPD_LINUX_LIBC to its path): ${(e as Error).message}`);
  }
  const fn = (decl: string) => bind(lib, path, 'CARPD_LINUX_LIBC', decl) as Fn;
  const c = {
    socket: fn('int socket(int domain, int type, int protocol)'),
    close: fn('int close(int fd)'),
    setsockopt: fn('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    getsockopt: fn('int getsockopt(int fd, int level, int name, void *val, void *len)'),
    bind: fn('int bind(int fd, const void *addr, uint32_t len)'),
    sendto: fn('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *to, uint32_t tolen)'),
    recvfrom: fn('intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *from, void *fromlen)'),
    recvmsg: fn('intptr_t recvmsg(int fd, void *msg, int flags)'),
    poll: fn('int poll(void *fds, unsigned long nfds, int timeout)'),
    pipe2: fn('int pipe2(void *fds, int flags)'),
    write: fn('intptr_t write(int fd, const void *buf, size_t n)'),
    read: fn('intptr_t read(int fd, void *buf, size_t n)'),
    if_nametoindex: fn('unsigned int if_nametoindex(const char *name)'),
    if_indextoname: fn('void *if_indextoname(unsigned int index, void *name)'),
  };
  const pollAsync = promisify((fds: Buffer, n: number, timeout: number, cb: (err: unknown, rc: number) => void) => c.poll.async(fds, n, timeout, cb));
  const { EINTR, EAGAIN } = LINUX_ERRNO;

  /** Runs a call returning < 0 on failure, retrying EINTR; errno is read before anything else runs. */
  const sys = (operation: string, iface: string | undefined, call: () => unknown, wouldBlock?: true): number => {
    for (;;) {
      const rc = Number(call());
      if (rc >= 0) return rc;
      const errno = koffi.errno();
      if (errno === EINTR) continue;
      if (wouldBlock && errno === EAGAIN) return -1;
      throw linuxKernelError(errno, operation, iface);
    }
  };
  const orNull = (n: number): number | null => (n < 0 ? null : n);

  return {
    path,
    socket: (domain, type, protocol, operation = 'socket', iface) => sys(operation, iface, () => c.socket(domain, type, protocol)),
    close: (fd) => {
      // close(2) is not retried: after EINTR the descriptor is gone on Linux.
      if (Number(c.close(fd)) < 0) {
        const errno = koffi.errno();
        if (errno !== EINTR) throw linuxKernelError(errno, 'close');
      }
    },
    setsockopt: (fd, level, name, value, operation, iface) => {
      let v: Buffer;
      if (typeof value === 'number') {
        v = Buffer.alloc(4);
        v.writeInt32LE(value);
      } else {
        v = value;
      }
      sys(operation, iface, () => c.setsockopt(fd, level, name, v, v.length));
    },
    getsockoptInt: (fd, level, name, operation, iface) => {
      const v = Buffer.alloc(4);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(4);
      sys(operation, iface, () => c.getsockopt(fd, level, name, v, len));
      return v.readInt32LE(0);
    },
    bind: (fd, addr, operation, iface) => {
      sys(operation, iface, () => c.bind(fd, addr, addr.length));
    },
    sendto: (fd, buf, flags, addr, operation, iface) => sys(operation, iface, () => c.sendto(fd, buf, buf.length, flags, addr, addr?.length ?? 0)),
    recvfrom: (fd, buf, flags, from, operation, iface) => {
      let lenp: Buffer | null = null;
      if (from) {
        lenp = Buffer.alloc(4);
        lenp.writeUInt32LE(from.length);
      }
      return orNull(sys(operation, iface, () => c.recvfrom(fd, buf, buf.length, flags, from, lenp), true));
    },
    recvmsg: (fd, m, flags, operation, iface) => {
      m.reset();
      return orNull(sys(operation, iface, () => c.recvmsg(fd, m.msghdr, flags), true));
    },
    poll: (fds, timeoutMs) => {
      if (fds.length % POLLFD_LEN !== 0) throw new RangeError(`pollfd array of ${fds.length} bytes`);
      return sys('poll', undefined, () => c.poll(fds, fds.length / POLLFD_LEN, timeoutMs));
    },
    pollAsync: (fds, timeoutMs) => {
      if (fds.length % POLLFD_LEN !== 0) return Promise.reject(new RangeError(`pollfd array of ${fds.length} bytes`));
      return pollAsync(fds, fds.length / POLLFD_LEN, timeoutMs).then(Number);
    },
    pipe2: (flags) => {
      const fds = Buffer.alloc(8);
      sys('pipe2', undefined, () => c.pipe2(fds, flags));
      return [fds.readInt32LE(0), fds.readInt32LE(4)];
    },
    write: (fd, buf) => orNull(sys('write', undefined, () => c.write(fd, buf, buf.length), true)),
    read: (fd, buf) => orNull(sys('read', undefined, () => c.read(fd, buf, buf.length), true)),
    ifNameToIndex: (name) => {
      if (Buffer.byteLength(name) >= IFNAMSIZ || name.length === 0 || name.includes('\0')) {
        throw KernelError.of('ENXIO', 'if_nametoindex', name, 'not a valid interface name');
      }
      const idx = Number(c.if_nametoindex(name));
      if (idx !== 0) return idx;
      // glibc reports ENODEV; carpd (like FreeBSD) calls a missing interface ENXIO.
      const errno = koffi.errno();
      if (errno === 0 || errno === LINUX_ERRNO.ENODEV || errno === LINUX_ERRNO.ENXIO) throw KernelError.of('ENXIO', 'if_nametoindex', name);
      throw linuxKernelError(errno, 'if_nametoindex', name);
    },
    ifIndexToName: (index) => {
      const out = Buffer.alloc(IFNAMSIZ);
      const p = c.if_indextoname(index, out);
      if (p === null) return undefined;
      const end = out.indexOf(0);
      return out.toString('utf8', 0, end < 0 ? out.length : end);
    },
    addressOf: (buf) => koffi.address(buf),
  };
}

// ---- socket addresses and option structures ------------------------------------------------------

/** 4 or 16 address bytes into the matching sockaddr; scopeId only for IPv6. */
export function sockaddrIn(addr: Buffer, port = 0, scopeId = 0): Buffer {
  if (addr.length === 4) {
    const b = Buffer.alloc(SOCKADDR_IN_LEN);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    addr.copy(b, 4);
    return b;
  }
  if (addr.length !== 16) throw new RangeError(`an address has 4 or 16 bytes, not ${addr.length}`);
  const b = Buffer.alloc(SOCKADDR_IN6_LEN);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  addr.copy(b, 8);
  b.writeUInt32LE(scopeId >>> 0, 24);
  return b;
}

export function sockaddrNl(groups: number, pid = 0): Buffer {
  const b = Buffer.alloc(SOCKADDR_NL_LEN);
  b.writeUInt16LE(AF_NETLINK, 0);
  b.writeUInt32LE(pid >>> 0, 4);
  b.writeUInt32LE(groups >>> 0, 8);
  return b;
}

export function sockaddrLl(protocol: number, ifindex: number, hwaddr: Buffer): Buffer {
  const b = Buffer.alloc(SOCKADDR_LL_LEN);
  b.writeUInt16LE(AF_PACKET, 0);
  b.writeUInt16BE(protocol, 2);
  b.writeInt32LE(ifindex, 4);
  b[11] = hwaddr.length;
  hwaddr.copy(b, 12, 0, Math.min(8, hwaddr.length));
  return b;
}

export function ipMreqn(group: Buffer, ifindex: number): Buffer {
  const b = Buffer.alloc(12);
  group.copy(b, 0);
  b.writeInt32LE(ifindex, 8);
  return b;
}

export function ipv6Mreq(group: Buffer, ifindex: number): Buffer {
  const b = Buffer.alloc(20);
  group.copy(b, 0);
  b.writeInt32LE(ifindex, 16);
  return b;
}

/** NUL-terminated interface name for SO_BINDTODEVICE. */
export function ifnameBytes(name: string): Buffer {
  return Buffer.concat([Buffer.from(name, 'utf8'), Buffer.alloc(1)]);
}

/**
 * A classic BPF program that accepts nothing ("ret #0"), for send-only raw sockets that must not
 * queue what arrives. The returned fprog points into `insns`, which is returned too so the caller
 * keeps it referenced until setsockopt returns.
 */
export function dropAllFilter(libc: LinuxLibc): { fprog: Buffer; insns: Buffer } {
  const insns = Buffer.alloc(8);
  insns.writeUInt16LE(0x06, 0); // BPF_RET | BPF_K
  insns.writeUInt32LE(0, 4);
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(1, 0);
  fprog.writeBigUInt64LE(libc.addressOf(insns), 8);
  return { fprog, insns };
}
