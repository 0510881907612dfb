/**
 * The bookkeeping both in-process pingers share (linux/ping.ts, freebsd/ping.ts): one random
 * identifier per pinger, a sequence per request, the requests waiting for their reply, and the
 * end of each (its reply, its timeout, an abort, a refused send, or carpd stopping). How a request
 * is sent and how the socket is read stay with each system's pinger.
 */
import { randomInt } from 'node:crypto';
import { KernelError } from './errno.js';
import { canonicalIp } from '../wire/address.js';
import { encodeEchoRequest, type EchoReply } from '../wire/icmp.js';

/** How a ping ended: `ok` with the round trip in `ms`, or why not in `detail`. */
export interface PingResult {
  ok: boolean;
  ms: number;
  detail: string;
}

interface Pending {
  target: string;
  start: number;
  resolve: (r: PingResult) => void;
}

/** Sends one echo request (already encoded) to `address` of `family`; throws if the kernel refuses it. */
export type EchoSend = (family: 4 | 6, message: Buffer, address: string) => void;

const PAYLOAD = (() => {
  const b = Buffer.alloc(16);
  b.write('carpd-track', 0, 'latin1');
  return b;
})();

export class EchoRequests {
  /** The identifier of this pinger's requests. */
  readonly id = randomInt(1, 0xffff);
  private seq = 0;
  private readonly pending = new Map<string, Pending>();

  /** Requests waiting for their reply. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * A reply read from `family`'s socket: it ends its request when its identifier, sequence and
   * source (where the socket tells it) are that request's. Anything else is ignored.
   */
  answer(family: 4 | 6, reply: EchoReply | undefined, source: string | undefined): void {
    if (!reply || reply.id !== this.id) return;
    const p = this.pending.get(`${family}:${reply.seq}`);
    if (!p || (source !== undefined && source !== p.target)) return;
    const ms = Math.round((performance.now() - p.start) * 1000) / 1000;
    p.resolve({ ok: true, ms, detail: `echo reply from ${p.target} in ${ms} ms` });
  }

  /** One echo request to `target` (an IP address) through `send`; resolves at the reply, the timeout, or an abort. */
  ping(target: string, timeoutMs: number, send: EchoSend, signal?: AbortSignal): Promise<PingResult> {
    const ip = canonicalIp(target);
    const start = performance.now();
    if (!ip) return Promise.resolve({ ok: false, ms: 0, detail: `"${target}" is not an IP address` });
    const family = ip.family;
    const seq = (this.seq = (this.seq + 1) & 0xffff);
    const key = `${family}:${seq}`;
    return new Promise<PingResult>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const end = (r: PingResult) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(key);
        resolve(r);
      };
      const onAbort = () => end({ ok: false, ms: Math.round(performance.now() - start), detail: `no echo reply from ${ip.address} within ${timeoutMs} ms` });
      try {
        this.pending.set(key, { target: ip.address, start, resolve: end });
        send(family, encodeEchoRequest(family, this.id, seq, PAYLOAD), ip.address);
      } catch (e) {
        const why = e instanceof KernelError ? (e.errnoName ?? e.message) : (e as Error).message;
        end({ ok: false, ms: Math.round(performance.now() - start), detail: `cannot send an echo request to ${ip.address}: ${why}` });
        return;
      }
      timer = setTimeout(onAbort, timeoutMs);
      signal?.addEventListener('abort', onAbort);
    });
  }

  /** Ends every waiting request: carpd is stopping. */
  close(): void {
    for (const p of [...this.pending.values()]) p.resolve({ ok: false, ms: 0, detail: 'carpd is stopping' });
    this.pending.clear();
  }
}
