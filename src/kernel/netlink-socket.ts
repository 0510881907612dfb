/**
 * A netlink request socket, for both kernels carpd drives: FreeBSD 14+'s generic netlink
 * family "carp" (freebsd/carp.ts) and Linux's NETLINK_ROUTE (linux/rtnetlink.ts). It owns the
 * descriptor and the sequence numbers, sends a request, reads its reply and tells the reply
 * apart from anything else queued (wire/netlink.ts NetlinkReply). What differs between the two
 * kernels is handed in as a NetlinkPlatform: the libc calls, the sign of NLMSG_DONE's errno
 * (freebsd-kernel-abi.md §12.1) and the errno numbering.
 *
 * Both kernels queue the reply before send() returns (§3.5; rtnetlink answers in the sending
 * thread too), so the first non-blocking read normally finds it. Should it not, a request waits
 * in bounded steps and then fails with ETIMEDOUT; it never blocks the event loop for long:
 *
 *   request()      waits on timers between non-blocking reads, at most `idleReads` empty reads
 *                  in a row (FreeBSD: its libc binding has no poll(2), and its callers are async)
 *   requestSync()  waits with poll(2) slices up to `deadlineMs` after the send (Linux: rtnetlink's
 *                  callers are synchronous)
 *
 * Requests are serialized, so the replies of two requests never interleave. A reply read to its
 * end leaves nothing behind (NLMSG_DONE and the acknowledgement are the last messages the kernel
 * queues for a request); after any other outcome (a timeout, a reply completed early by its
 * first message, a reply that did not parse) whatever is still queued is read and dropped
 * before the next send.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NLMSG_ERROR, NetlinkReply, NetlinkStream, decodeNlmsgerr, type NlMessage } from '../wire/netlink.js';
import { KernelError } from './errno.js';

/** The platform's calls and numbering; every failure is the platform's KernelError. */
export interface NetlinkPlatform {
  send(fd: number, msg: Buffer, operation: string, iface?: string): void;
  /** A non-blocking recv(2): the bytes read, or undefined when nothing is queued (EAGAIN). */
  recv(fd: number, buf: Buffer, operation: string, iface?: string): number | undefined;
  close(fd: number): void;
  /** NLMSG_DONE's int payload as a positive errno, 0 for success. */
  doneErrno(raw: number): number;
  /** The KernelError for an errno a reply carries (a Linux errno is translated by its name). */
  replyError(errno: number, operation: string, iface: string | undefined, message?: string): KernelError;
  /** poll(2) for POLLIN on fd, at most timeoutMs; needed by requestSync only. */
  waitReadable?(fd: number, timeoutMs: number): void;
}

export interface NetlinkSocketOptions {
  /** request(): ETIMEDOUT after this many empty reads in a row. Default 20 (about 150 ms of waits). */
  idleReads?: number;
  /** requestSync(): ETIMEDOUT when the reply is not complete this long after the send. Default 2000. */
  deadlineMs?: number;
  /** requestSync(): each poll(2) wait. Default 5. */
  pollSliceMs?: number;
}

export interface NetlinkRequest {
  /** Names the failure ("add address 192.0.2.10/24", "netlink carp GET"). */
  operation: string;
  iface?: string;
  /**
   * Each message of the reply before its end (NLMSG_ERROR or NLMSG_DONE). Returning true
   * completes the reply early: a request that asks for no acknowledgement is answered by one message.
   */
  onMessage?: (m: NlMessage) => boolean | void;
}

export interface NetlinkOutcome {
  /** A message of the reply carried NLM_F_DUMP_INTR: the dump may be inconsistent, read it again. */
  interrupted: boolean;
}

const RECV_BUFFER_BYTES = 64 * 1024;
/**
 * requestMany(): bytes per send. Well under the socket buffers netlink gives a socket by
 * default on FreeBSD and Linux, so that a send is taken whole and its acknowledgements fit.
 */
const BATCH_SEND_BYTES = 16 * 1024;
/** request(): the wait after the n-th empty read in a row is min(n, this) ms. */
const MAX_IDLE_WAIT_MS = 10;

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = Buffer.alloc(RECV_BUFFER_BYTES);
  private chain: Promise<unknown> = Promise.resolve();
  private inFlight = false;
  /** Something of an earlier reply may still be queued. */
  private stale = false;
  private closed = false;
  private readonly idleReads: number;
  private readonly deadlineMs: number;
  private readonly pollSliceMs: number;

  constructor(
    private readonly platform: NetlinkPlatform,
    readonly fd: number,
    opts: NetlinkSocketOptions = {},
  ) {
    this.idleReads = opts.idleReads ?? 20;
    this.deadlineMs = opts.deadlineMs ?? 2000;
    this.pollSliceMs = opts.pollSliceMs ?? 5;
  }

  /** The next sequence number, never 0 (which the kernel uses for its own notifications). */
  nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  /** Sends `msg` (its nlmsg_seq from nextSeq()) and reads its reply, waiting on timers. */
  request(msg: Buffer, req: NetlinkRequest): Promise<NetlinkOutcome> {
    const run = this.chain.then(() => this.runAsync(msg, req));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Sends requests that each ask for an acknowledgement (NLM_F_ACK, their nlmsg_seq from
   * nextSeq(), all different) as one batch: packed back to back into as few sends as
   * `sendBytes` allows, then every acknowledgement read. The kernel handles each message of a
   * send on its own and acknowledges each (FreeBSD netlink_io.c nl_process_nbuf: "an incoming
   * packet, which can contain multiple netlink messages"; Linux netlink_rcv_skb likewise), and a
   * failed one does not stop the messages after it. Answers, for each request in order,
   * undefined when it was acknowledged or the KernelError of its errno.
   */
  requestMany(msgs: readonly Buffer[], req: NetlinkRequest & { sendBytes?: number }): Promise<(KernelError | undefined)[]> {
    const run = this.chain.then(() => this.runManyAsync(msgs, req));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Sends `msg` and reads its reply, waiting with poll(2); the event loop waits with it. */
  requestSync(msg: Buffer, req: NetlinkRequest): NetlinkOutcome {
    if (this.inFlight) throw new Error('netlink socket: a synchronous request while another one waits for its reply');
    const poll = this.platform.waitReadable;
    if (!poll) throw new Error('netlink socket: requestSync needs the platform to poll');
    const deadline = Date.now() + this.deadlineMs;
    const exchange = this.exchange(msg, req);
    for (;;) {
      const step = exchange.next();
      if (step.done) return step.value;
      if (Date.now() >= deadline) throw KernelError.of('ETIMEDOUT', req.operation, req.iface, `no netlink reply within ${this.deadlineMs} ms`);
      poll(this.fd, this.pollSliceMs);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.platform.close(this.fd);
  }

  private async runAsync(msg: Buffer, req: NetlinkRequest): Promise<NetlinkOutcome> {
    this.inFlight = true;
    try {
      const exchange = this.exchange(msg, req);
      for (;;) {
        const step = exchange.next();
        if (step.done) return step.value;
        const idle = step.value;
        if (idle > this.idleReads) throw KernelError.of('ETIMEDOUT', req.operation, req.iface, `no complete netlink reply after ${this.idleReads} empty reads`);
        await sleep(Math.min(idle, MAX_IDLE_WAIT_MS));
      }
    } finally {
      this.inFlight = false;
    }
  }

  private async runManyAsync(msgs: readonly Buffer[], req: NetlinkRequest & { sendBytes?: number }): Promise<(KernelError | undefined)[]> {
    this.inFlight = true;
    try {
      const exchange = this.exchangeMany(msgs, req);
      for (;;) {
        const step = exchange.next();
        if (step.done) return step.value;
        const idle = step.value;
        if (idle > this.idleReads) throw KernelError.of('ETIMEDOUT', req.operation, req.iface, `acknowledgements missing after ${this.idleReads} empty reads`);
        await sleep(Math.min(idle, MAX_IDLE_WAIT_MS));
      }
    } finally {
      this.inFlight = false;
    }
  }

  /**
   * The batch: sends of at most `sendBytes` (whole messages; a larger message goes alone), each
   * followed by a read of whatever is already queued, so that acknowledgements never pile up in
   * the kernel's receive buffer; then reads until every request is acknowledged.
   */
  private *exchangeMany(msgs: readonly Buffer[], req: NetlinkRequest & { sendBytes?: number }): Generator<number, (KernelError | undefined)[], void> {
    if (this.closed) throw KernelError.of('EBADF', req.operation, req.iface, 'the netlink socket is closed');
    if (this.stale) while ((this.recvNow(req) ?? 0) > 0);
    this.stale = true;
    const limit = req.sendBytes ?? BATCH_SEND_BYTES;
    const index = new Map<number, number>();
    msgs.forEach((m, i) => index.set(m.readUInt32LE(8), i));
    const results: (KernelError | undefined)[] = new Array(msgs.length).fill(undefined);
    let pending = msgs.length;
    const stream = new NetlinkStream();
    const readQueued = (): boolean => {
      const n = this.recvNow(req);
      if (n === undefined || n === 0) return false;
      for (const m of stream.push(this.buf.subarray(0, n))) {
        if (m.type !== NLMSG_ERROR) continue;
        const i = index.get(m.seq);
        if (i === undefined) continue; // the reply to an earlier request that was given up on
        index.delete(m.seq);
        pending--;
        const e = decodeNlmsgerr(m);
        if (e.errno !== 0) results[i] = this.platform.replyError(e.errno, req.operation, req.iface, e.message);
      }
      return true;
    };
    for (let start = 0; start < msgs.length; ) {
      let end = start + 1;
      let bytes = msgs[start].length;
      while (end < msgs.length && bytes + msgs[end].length <= limit) bytes += msgs[end++].length;
      this.platform.send(this.fd, end - start === 1 ? msgs[start] : Buffer.concat(msgs.slice(start, end), bytes), req.operation, req.iface);
      start = end;
      while (readQueued());
    }
    for (let idle = 0; pending > 0; ) {
      if (readQueued()) idle = 0;
      else yield ++idle;
    }
    this.stale = stream.pendingBytes > 0;
    return results;
  }

  private recvNow(req: NetlinkRequest): number | undefined {
    return this.platform.recv(this.fd, this.buf, req.operation, req.iface);
  }

  /**
   * One request: drain, send, then read until the reply ends. Yields the number of empty reads
   * in a row whenever nothing is queued, for the caller to wait as it can (and to give up).
   */
  private *exchange(msg: Buffer, req: NetlinkRequest): Generator<number, NetlinkOutcome, void> {
    if (this.closed) throw KernelError.of('EBADF', req.operation, req.iface, 'the netlink socket is closed');
    if (this.stale) while ((this.recvNow(req) ?? 0) > 0);
    this.stale = true;
    const reply = new NetlinkReply(msg.readUInt32LE(8), (raw) => this.platform.doneErrno(raw));
    const stream = new NetlinkStream();
    this.platform.send(this.fd, msg, req.operation, req.iface);
    for (let idle = 0; ; ) {
      const n = this.recvNow(req);
      if (n === undefined || n === 0) {
        yield ++idle;
        continue;
      }
      idle = 0;
      for (const m of stream.push(this.buf.subarray(0, n))) {
        const content = reply.accept(m);
        const end = reply.ended;
        if (end) {
          this.stale = stream.pendingBytes > 0;
          if (end.errno !== 0) throw this.platform.replyError(end.errno, req.operation, req.iface, end.message);
          return { interrupted: reply.interrupted };
        }
        if (content && req.onMessage?.(m) === true) return { interrupted: reply.interrupted };
      }
    }
  }
}
