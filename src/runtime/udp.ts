/**
 * The sim segment between carpd processes on one machine: UDP multicast that never leaves
 * loopback. Every socket binds the group's port on the group address, joins the group on the
 * 127.0.0.1 interface only, sends through 127.0.0.1 (IP_MULTICAST_IF) with TTL 0 — a datagram
 * with TTL 0 is delivered to local members and never transmitted (RFC 1112 §6.1) — and keeps
 * multicast loopback on, which is what delivers it to the other processes. Datagrams from any
 * other source are handed up marked as foreign, for the runtime to count and drop.
 *
 * Why multicast rather than unicast to a list of ports: with SO_REUSEADDR every process binds
 * the same port and each receives every datagram, so nodes need no list of each other and a
 * third node joins by starting. (Unicast to a shared port reaches one socket only.)
 *
 * The default group 239.255.0.112 is in the IPv4 Local Scope (239.255.0.0/16, RFC 2365), the
 * administratively scoped range meant for exactly this; 112 is CARP's IP protocol number.
 */
import dgram from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { DatagramHandler, PacketTransport } from './transport.js';

export const DEFAULT_SIM_GROUP = { address: '239.255.0.112', port: 11200 } as const;
export const SIM_LOOPBACK = '127.0.0.1';

export interface SimGroup {
  address: string;
  port: number;
}

/**
 * "239.255.0.112:11200" → { address, port }. Only administratively scoped groups (239.0.0.0/8,
 * RFC 2365) are taken: the datagrams stay on loopback anyway, and a group from that range
 * cannot collide with a protocol that a real network uses. Throws RangeError with a readable text.
 */
export function parseSimGroup(text: string): SimGroup {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !isIPv4(m[1]) || !(port >= 1 && port <= 65535)) {
    throw new RangeError(`"${text}" is not ADDR:PORT with an IPv4 multicast group (for example ${DEFAULT_SIM_GROUP.address}:${DEFAULT_SIM_GROUP.port})`);
  }
  if (Number(m[1].split('.')[0]) !== 239) {
    throw new RangeError(`${m[1]} is not an administratively scoped multicast group (239.0.0.0/8, RFC 2365); use for example ${DEFAULT_SIM_GROUP.address}`);
  }
  return { address: m[1], port };
}

export function formatSimGroup(g: SimGroup): string {
  return `${g.address}:${g.port}`;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

export class UdpMulticastTransport implements PacketTransport {
  readonly description: string;
  private socket?: dgram.Socket;
  private readonly pending = new Set<Promise<void>>();
  private closing?: Promise<void>;

  constructor(
    private readonly group: SimGroup = DEFAULT_SIM_GROUP,
    private readonly onError: (e: Error) => void = () => {},
  ) {
    this.description = `UDP multicast ${formatSimGroup(group)} on ${SIM_LOOPBACK}`;
  }

  async open(onDatagram: DatagramHandler): Promise<void> {
    if (this.socket) throw new Error('transport already open');
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    this.socket = s;
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        // Bound to the group address, the socket receives only datagrams sent to the group,
        // not unicast sent to the port.
        s.bind({ port: this.group.port, address: this.group.address, exclusive: false }, () => {
          s.off('error', reject);
          resolve();
        });
      });
      s.addMembership(this.group.address, SIM_LOOPBACK);
      s.setMulticastInterface(SIM_LOOPBACK);
      s.setMulticastTTL(0);
      s.setMulticastLoopback(true);
    } catch (e) {
      this.socket = undefined;
      s.close();
      const err = e as NodeJS.ErrnoException;
      throw new Error(`cannot join multicast group ${formatSimGroup(this.group)} on ${SIM_LOOPBACK}: ${err.code ?? err.message}`);
    }
    s.on('error', (e) => this.onError(e));
    s.on('message', (msg, rinfo) => onDatagram(msg, { local: isLoopback(rinfo.address) }));
  }

  send(bytes: Uint8Array): Promise<void> {
    const s = this.socket;
    if (!s || this.closing) return Promise.reject(new Error('transport not open'));
    const p = new Promise<void>((resolve, reject) => {
      s.send(bytes, this.group.port, this.group.address, (e) => (e ? reject(e) : resolve()));
    });
    const tracked = p.catch(() => {}).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
    return p;
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      // A leaving master's bow-out is among these: it must be on the wire before the socket goes.
      await Promise.all([...this.pending]);
      const s = this.socket;
      this.socket = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    })());
  }
}
