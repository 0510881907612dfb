/**
 * ICMP echo for health tracks of kind `ping`, in-process: raw sockets (AF_INET/IPPROTO_ICMP,
 * AF_INET6/IPPROTO_ICMPV6) through koffi, read through the shared Poller (never a forked
 * ping(8)). Needs root (CAP_NET_RAW), as carpd's CARP sockets do.
 *
 * One socket per family, opened on first use and kept; one identifier per pinger (random), a
 * sequence per request. Every raw ICMP socket sees every ICMP packet of its family, so a reply
 * counts only when its identifier, sequence and source are this request's; the IPv4 checksum is
 * checked (the kernel checks ICMPv6's). A send the kernel refuses (ENETUNREACH: no route) fails
 * the probe at once with the errno.
 */
import { EchoRequests, type PingResult } from '../echo-requests.js';
import { canonicalIp, ipBytes } from '../../wire/address.js';
import { decodeEchoReply } from '../../wire/icmp.js';
import { AF_INET, AF_INET6, ICMP6_FILTER, IPPROTO_ICMPV6, SOCKADDR_IN6_LEN, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, linuxLibc, sockaddrIn, type LinuxLibc } from './libc.js';
import { sharedPoller, type Poller } from './poller.js';

const IPPROTO_ICMP = 1;
/** linux/in.h SOL_RAW and linux/icmp.h ICMP_FILTER. */
const SOL_RAW = 255;
const ICMP_FILTER = 1;
const RECV_SIZE = 2048;

export type { PingResult };

export class LinuxPinger {
  private readonly libc: LinuxLibc;
  private readonly poller: Poller;
  private readonly fds = new Map<4 | 6, number>();
  private readonly requests = new EchoRequests();
  private readonly buf = Buffer.alloc(RECV_SIZE);
  private readonly from = Buffer.alloc(SOCKADDR_IN6_LEN);

  constructor(opts: { libc?: LinuxLibc; poller?: Poller } = {}) {
    this.libc = opts.libc ?? linuxLibc();
    this.poller = opts.poller ?? sharedPoller();
  }

  private socketOf(family: 4 | 6): number {
    let fd = this.fds.get(family);
    if (fd === undefined) {
      fd = this.libc.socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, `open an ICMP${family === 6 ? 'v6' : ''} socket`);
      this.fds.set(family, fd);
      this.onlyEchoReplies(family, fd);
      const f = fd;
      this.poller.add(f, () => this.drain(family, f));
    }
    return fd;
  }

  /**
   * A raw ICMP socket hears every ICMP packet of the host: the kernel's ICMP filter (ICMP_FILTER
   * on SOL_RAW, ICMP6_FILTER on IPPROTO_ICMPV6; a set bit blocks that type) lets only echo
   * replies through. Best effort: without it the replies are still matched one by one.
   */
  private onlyEchoReplies(family: 4 | 6, fd: number): void {
    try {
      if (family === 4) {
        this.libc.setsockopt(fd, SOL_RAW, ICMP_FILTER, Buffer.from(Uint32Array.of(~(1 << 0) >>> 0).buffer), 'filter ICMP types');
      } else {
        const f = Buffer.alloc(32, 0xff);
        f.writeUInt32LE(f.readUInt32LE(16) & ~(1 << (129 & 31)) >>> 0, 16);
        this.libc.setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, f, 'filter ICMPv6 types');
      }
    } catch {
      // matched by type, identifier, sequence and source anyway
    }
  }

  private drain(family: 4 | 6, fd: number): void {
    for (;;) {
      let n: number | null;
      try {
        n = this.libc.recvfrom(fd, this.buf, 0, family === 6 ? this.from : null, 'receive ICMP');
      } catch {
        return;
      }
      if (n === null) return;
      const reply = decodeEchoReply(family, this.buf.subarray(0, n));
      this.requests.answer(family, reply, family === 4 ? reply?.source : canonicalIp(ipv6Of(this.from))?.address);
    }
  }

  /** One echo request to `target` (an IP address); resolves at the reply, the timeout, or an abort. */
  ping(target: string, timeoutMs: number, signal?: AbortSignal): Promise<PingResult> {
    return this.requests.ping(
      target,
      timeoutMs,
      (family, message, address) => this.libc.sendto(this.socketOf(family), message, 0, sockaddrIn(ipBytes(address)), `send an echo request to ${address}`),
      signal,
    );
  }

  close(): void {
    this.requests.close();
    for (const fd of this.fds.values()) {
      this.poller.remove(fd);
      try {
        this.libc.close(fd);
      } catch {
        // closed already
      }
    }
    this.fds.clear();
  }
}

/** The IPv6 address of a sockaddr_in6 as text. */
function ipv6Of(sa: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) parts.push(sa.readUInt16BE(8 + i * 2).toString(16));
  return parts.join(':');
}
