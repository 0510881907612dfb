/**
 * How the runtime's datagrams travel. A transport is one shared segment: every datagram sent
 * reaches every endpoint attached to it, the sender included (as multicast with loopback on
 * does), and the receiver drops its own. Two implementations:
 *
 *   - UdpMulticastTransport (udp.ts): UDP multicast confined to 127.0.0.1, so several carpd
 *     processes on one unprivileged machine hear each other;
 *   - MemoryNetwork (below): in-process, delivered through the injected clock, so a test with a
 *     manual clock sees every datagram arrive at the simulated time it was sent.
 */
import type { Clock } from '../clock.js';
import { systemClock } from '../clock.js';

export interface DatagramInfo {
  /**
   * The datagram came from this machine. A transport that can receive from elsewhere says so
   * instead of dropping it silently, so that the runtime counts it (carpstats badif: a packet
   * on an interface that is not CARP's).
   */
  local: boolean;
}

export type DatagramHandler = (bytes: Uint8Array, info: DatagramInfo) => void;

export interface PacketTransport {
  /** Where datagrams go, in words ("UDP multicast 239.255.0.112:11200 on 127.0.0.1"). */
  readonly description: string;
  /** Starts receiving; resolves once datagrams can be sent. Called once. */
  open(onDatagram: DatagramHandler): Promise<void>;
  /** Sends one datagram to the segment; rejects when the system refuses it. */
  send(bytes: Uint8Array): Promise<void>;
  /** Stops receiving and releases the socket; datagrams already handed to send() are flushed first. */
  close(): Promise<void>;
}

export interface MemoryNetworkOptions {
  clock?: Clock;
  /** One-way delay of every datagram; 0 delivers on the clock's next turn. */
  latencyMs?: number;
}

/**
 * An in-process segment. Delivery goes through clock timers, never synchronously inside
 * send(): a node that sends while handling a datagram is not re-entered by its peer's reply,
 * and on a manual clock a datagram sent at t arrives at t + latency during advance().
 */
export class MemoryNetwork {
  private readonly clock: Clock;
  private readonly latencyMs: number;
  private readonly endpoints = new Set<MemoryTransport>();
  /** Datagrams handed to the segment so far (for tests that want to see traffic). */
  sent = 0;

  constructor(opts: MemoryNetworkOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.latencyMs = opts.latencyMs ?? 0;
  }

  /** A new transport attached to this segment. */
  endpoint(name = `mem${this.endpoints.size + 1}`): MemoryTransport {
    return new MemoryTransport(this, name);
  }

  /** @internal */
  attach(t: MemoryTransport): void {
    this.endpoints.add(t);
  }

  /** @internal */
  detach(t: MemoryTransport): void {
    this.endpoints.delete(t);
  }

  /** @internal */
  broadcast(bytes: Uint8Array): void {
    this.sent++;
    for (const t of this.endpoints) {
      const copy = Uint8Array.from(bytes);
      this.clock.setTimeout(() => t.deliver(copy), this.latencyMs);
    }
  }
}

export class MemoryTransport implements PacketTransport {
  readonly description: string;
  private handler?: DatagramHandler;
  private closed = false;
  /** While true, datagrams to and from this endpoint are lost (a cut cable). */
  partitioned = false;

  constructor(private readonly network: MemoryNetwork, name: string) {
    this.description = `in-memory segment (${name})`;
  }

  async open(onDatagram: DatagramHandler): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.handler = onDatagram;
    this.network.attach(this);
  }

  async send(bytes: Uint8Array): Promise<void> {
    if (this.closed || !this.handler) throw new Error('transport not open');
    if (!this.partitioned) this.network.broadcast(bytes);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handler = undefined;
    this.network.detach(this);
  }

  /** @internal */
  deliver(bytes: Uint8Array): void {
    if (!this.closed && !this.partitioned) this.handler?.(bytes, { local: true });
  }
}
