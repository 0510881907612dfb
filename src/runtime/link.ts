/**
 * How advertisements reach the runtime and leave it. The runtime (driver.ts) speaks CARP
 * payloads — the 36 bytes after the IP header — and a link carries them:
 *
 *   - SimLink (below): over a PacketTransport (UDP multicast on loopback, or an in-memory
 *     segment in tests), each payload wrapped in a sim frame (frame.ts) naming the sender and
 *     the interface. No IP header, so no TTL.
 *   - the linux backend's raw-socket link (src/kernel/linux/): IP protocol 112 on real
 *     interfaces, with the TTL / hop limit, the source and the destination of every packet.
 *
 * A link never throws at the runtime for what a peer sent: a datagram it cannot even frame is
 * handed up as a drop under its carpstats name.
 */
import { writePseudoHeaderChecksum } from '../wire/checksum.js';
import type { CarpStatName } from '../wire/counters.js';
import { IPPROTO_VRRP, carpGroup, requireAddress } from '../wire/ip.js';
import { decodeSimFrame, encodeSimFrame } from './frame.js';
import type { DatagramInfo, PacketTransport } from './transport.js';

export interface IncomingAdvert {
  iface: string;
  family: 4 | 6;
  /** The bytes after the IP header: the CARP (or VRRP) header onwards. */
  payload: Uint8Array;
  /** The sender, for reasons and logs: its source address, or its node name on the sim segment. */
  from: string;
  /**
   * The sender's source address. On the sim segment, which has no IP header, a stand-in
   * derived from the sender's instance id (see SimLink), used by VRRPv3's checksum and tie-break.
   */
  source?: string;
  /** The packet's IP destination (the group or this node's address); absent on the sim segment (the group). */
  destination?: string;
  /** IPv4 TTL or IPv6 hop limit as received; absent where the link has no IP header. */
  ttl?: number;
}

export interface OutgoingAdvert {
  iface: string;
  /** The vhid (VRID) sending it. */
  vhid?: number;
  family: 4 | 6;
  payload: Buffer;
  /** A unicast peer (carp(4) peer / peer6); absent = the group (224.0.0.18 / ff02::12). */
  destination?: string;
  /** The payload offset of a checksum to compute over an IP pseudo-header (VRRPv3), if any. */
  pseudoHeaderChecksumAt?: number;
}

export interface LinkDrop {
  family: 4 | 6;
  counter: CarpStatName;
  detail: string;
  iface?: string;
  vhid?: number;
  from?: string;
}

export interface LinkHandlers {
  advert(a: IncomingAdvert): void;
  drop(d: LinkDrop): void;
}

export interface AdvertLink {
  /** Where advertisements go, in words. */
  readonly description: string;
  /** Starts receiving; resolves once advertisements can be sent. Called once. */
  open(handlers: LinkHandlers): Promise<void>;
  /** Sends one advertisement; rejects when the system refuses it. */
  send(a: OutgoingAdvert): Promise<void>;
  /** This node's own address on the interface (the source it sends from), if it has one. */
  primaryAddress(iface: string, family: 4 | 6): string | undefined;
  /** Stops receiving; advertisements already handed to send() are on the wire first. */
  close(): Promise<void>;
  /**
   * Optional: delivers now, synchronously, every datagram already queued on the link's sockets
   * (non-blocking reads until there is none). The runtime calls it before a master-down timer
   * acts, so that a stall of the event loop never passes for a silent master.
   */
  drainNow?(): void;
}

export interface SimLinkOptions {
  transport: PacketTransport;
  /** This node's name, carried in every frame. */
  node: string;
  /** 8 bytes telling this process's frames, looped back by the segment, from a peer's. */
  instanceId: Buffer;
  /** Whether this node is attached to the segment of an interface; frames for others are not for it. */
  attached: (iface: string) => boolean;
}

/**
 * CARP (and VRRPv3) payloads in sim frames over a PacketTransport. The segment has no IP
 * addresses; where a protocol needs one (VRRPv3 checksums over a pseudo-header and breaks ties
 * by the larger sender address) each node stands for 127.x.y.z, x.y.z the last three bytes of
 * its instance id. It is never used as an address, only computed with.
 */
export class SimLink implements AdvertLink {
  readonly description: string;
  private readonly self: string;

  constructor(private readonly opts: SimLinkOptions) {
    this.description = opts.transport.description;
    this.self = standIn(opts.instanceId);
  }

  primaryAddress(_iface: string, family: 4 | 6): string {
    return family === 4 ? this.self : `::ffff:${this.self}`;
  }

  open(h: LinkHandlers): Promise<void> {
    return this.opts.transport.open((bytes, info) => this.receive(bytes, info, h));
  }

  send(a: OutgoingAdvert): Promise<void> {
    let payload = a.payload;
    if (a.pseudoHeaderChecksumAt !== undefined) {
      payload = Buffer.from(a.payload);
      const src = requireAddress(this.primaryAddress(a.iface, a.family), 'source');
      writePseudoHeaderChecksum(payload, a.pseudoHeaderChecksumAt, src, requireAddress(carpGroup(a.family), 'group'), IPPROTO_VRRP);
    }
    // The sim segment reaches every node on the interface: on two nodes, exactly the peer.
    return this.opts.transport.send(encodeSimFrame({ family: a.family, instance: this.opts.instanceId, node: this.opts.node, iface: a.iface, carp: payload }));
  }

  close(): Promise<void> {
    return this.opts.transport.close();
  }

  private receive(bytes: Uint8Array, info: DatagramInfo, h: LinkHandlers): void {
    const decoded = decodeSimFrame(bytes);
    if (decoded.ok && this.opts.instanceId.equals(decoded.frame.instance)) return;
    if (!info.local) return h.drop({ family: 4, counter: 'badif', detail: 'datagram from outside this machine' });
    if (!decoded.ok) return h.drop({ family: 4, counter: 'hdrops', detail: decoded.detail });
    const { frame } = decoded;
    // Another segment's traffic: on a real network it would never arrive here.
    if (!this.opts.attached(frame.iface)) return;
    const source = standIn(frame.instance);
    h.advert({ iface: frame.iface, family: frame.family, payload: frame.carp, from: frame.node, source: frame.family === 4 ? source : `::ffff:${source}` });
  }
}

function standIn(instance: Uint8Array): string {
  return `127.${instance[5]}.${instance[6]}.${instance[7]}`;
}
