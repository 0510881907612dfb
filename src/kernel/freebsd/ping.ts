/**
 * ICMP echo for health tracks of kind `ping` on FreeBSD, in-process: raw sockets
 * (AF_INET/IPPROTO_ICMP, AF_INET6=28/IPPROTO_ICMPV6) through koffi, as on Linux, with FreeBSD's
 * constants (SOCK_NONBLOCK 0x20000000, SOCK_CLOEXEC 0x10000000, EAGAIN 35) and socket addresses
 * that start with their length (sin_len 16, sin6_len 28; freebsd-kernel-abi.md).
 *
 * libc's socket, close, sendto and recvfrom are bound here on the first ping, apart from the
 * backend's bindings (libc.ts), so a node without ping tracks binds nothing more. There is no
 * poller on FreeBSD: while a request waits, the socket is read (non-blocking) every few
 * milliseconds until its reply, its timeout or its abort. Replies are matched by identifier,
 * sequence and source; the IPv4 checksum is checked (the kernel checks ICMPv6's).
 */
import { EchoRequests, type PingResult } from '../echo-requests.js';
import { canonicalIp, ipBytes } from '../../wire/address.js';
import { decodeEchoReply } from '../../wire/icmp.js';
import { errnoName } from '../errno.js';
import { bind, loadKoffi } from '../koffi.js';
import { AF_INET, AF_INET6, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, ipText } from './layout.js';

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;
const EINTR = 4;
const READ_EVERY_MS = 5;
const RECV_SIZE = 2048;

/** struct sockaddr_in (16 B: sin_len, sin_family, port, address) or sockaddr_in6 (28 B) for an address. */
export function freebsdSockaddr(address: string): Buffer {
  const ip = canonicalIp(address);
  if (!ip) throw new RangeError(`"${address}" is not an IP address`);
  const bytes = ipBytes(ip.address);
  if (ip.family === 4) {
    const b = Buffer.alloc(16);
    b[0] = 16;
    b[1] = AF_INET;
    bytes.copy(b, 4);
    return b;
  }
  const b = Buffer.alloc(28);
  b[0] = 28;
  b[1] = AF_INET6;
  bytes.copy(b, 8);
  return b;
}

/** The address of a sockaddr_in or sockaddr_in6 as recvfrom filled it, or undefined. */
export function freebsdSockaddrAddress(sa: Buffer): string | undefined {
  if (sa[1] === AF_INET) return ipText(sa.subarray(4, 8));
  if (sa[1] === AF_INET6) return canonicalIp(ipText(sa.subarray(8, 24)))?.address;
  return undefined;
}

/** The libc calls a pinger makes (koffi's bindings; a test hands in its own). */
export interface PingCalls {
  socket(domain: number, type: number, protocol: number): unknown;
  close(fd: number): unknown;
  sendto(fd: number, msg: Buffer, len: number, flags: number, to: Buffer, tolen: number): unknown;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, from: Buffer, fromlen: Buffer): unknown;
  errno(): number;
}
type Calls = PingCalls;

export class FreebsdPinger {
  private calls?: Calls;
  private readonly fds = new Map<4 | 6, number>();
  private readonly requests = new EchoRequests();
  private timer?: NodeJS.Timeout;
  private readonly buf = Buffer.alloc(RECV_SIZE);
  private readonly from = Buffer.alloc(28);
  private readonly fromLen = Buffer.alloc(4);

  private readonly libcPath: string;

  constructor(opts: { libcPath?: string; calls?: PingCalls } = {}) {
    this.libcPath = opts.libcPath ?? process.env.CARPD_FREEBSD_LIBC ?? 'libc.so.7';
    this.calls = opts.calls;
  }

  private libc(): Calls {
    if (!this.calls) {
      const koffi = loadKoffi('ping tracks');
      const lib = koffi.load(this.libcPath);
      const fn = (decl: string) => bind(lib, this.libcPath, 'CARPD_FREEBSD_LIBC', decl);
      const socket = fn('int socket(int domain, int type, int protocol)');
      const close = fn('int close(int fd)');
      const sendto = fn('intptr_t sendto(int s, const void *msg, size_t len, int flags, const void *to, unsigned int tolen)');
      const recvfrom = fn('intptr_t recvfrom(int s, void *buf, size_t len, int flags, void *from, void *fromlen)');
      this.calls = {
        socket: (d, t, p) => socket(d, t, p),
        close: (fd) => close(fd),
        sendto: (fd, msg, len, flags, to, tolen) => sendto(fd, msg, len, flags, to, tolen),
        recvfrom: (fd, buf, len, flags, from, fromlen) => recvfrom(fd, buf, len, flags, from, fromlen),
        errno: () => koffi.errno(),
      };
    }
    return this.calls;
  }

  private socketOf(family: 4 | 6): number {
    let fd = this.fds.get(family);
    if (fd === undefined) {
      const c = this.libc();
      fd = Number(c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6));
      if (fd < 0) throw new Error(`cannot open an ICMP${family === 6 ? 'v6' : ''} socket: ${errnoName(c.errno())}`);
      this.fds.set(family, fd);
    }
    return fd;
  }

  /** Reads every waiting packet of both sockets; stops the reading timer when nothing waits. */
  private drain(): void {
    const c = this.calls!;
    for (const [family, fd] of this.fds) {
      for (;;) {
        this.fromLen.writeUInt32LE(this.from.length, 0);
        const n = Number(c.recvfrom(fd, this.buf, this.buf.length, 0, this.from, this.fromLen));
        if (n < 0) {
          const e = c.errno();
          if (e === EINTR) continue;
          break; // EAGAIN (35): nothing more; anything else: the next round tries again
        }
        const reply = decodeEchoReply(family, this.buf.subarray(0, n));
        this.requests.answer(family, reply, family === 4 ? reply?.source : freebsdSockaddrAddress(this.from));
      }
    }
    if (this.requests.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  ping(target: string, timeoutMs: number, signal?: AbortSignal): Promise<PingResult> {
    const answer = this.requests.ping(
      target,
      timeoutMs,
      (family, message, address) => {
        const fd = this.socketOf(family);
        const c = this.libc();
        const to = freebsdSockaddr(address);
        if (Number(c.sendto(fd, message, message.length, 0, to, to.length)) < 0) throw new Error(errnoName(c.errno()));
      },
      signal,
    );
    if (this.requests.size > 0) this.timer ??= setInterval(() => this.drain(), READ_EVERY_MS);
    return answer;
  }

  close(): void {
    this.requests.close();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const fd of this.fds.values()) this.calls?.close(fd);
    this.fds.clear();
  }
}
