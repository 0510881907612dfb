/**
 * The `sim` backend: the userspace CARP engine (userspace.ts) exchanging real CARP
 * advertisements over a segment that needs no privilege — UDP multicast on loopback in carpd,
 * an in-memory segment in tests — with the VIP addresses kept in memory. Several carpd
 * processes on one machine thereby really elect a master, fail over and preempt.
 *
 * Unicast peers (peer/peer6) are accepted and reported, as the service plans with them; the sim
 * segment has no host addresses to aim at, so advertisements still reach every node attached
 * to the interface's segment — on a two-node segment, exactly the peer. pfsync is configured in
 * memory only, so it has no counters (ACT_MAX 0), as in memory.ts.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { vhidKey, type VipEvent } from '../runtime/driver.js';
import { SIM_MAX_IFNAME, SIM_MAX_NODE_NAME } from '../runtime/frame.js';
import type { PacketTransport } from '../runtime/transport.js';
import { createHash } from 'node:crypto';
import type { Capabilities, KernelStats, LiveVhid, MacMode } from './backend.js';
import { carpVirtualMac, formatMac, vrrpVirtualMac } from '../wire/mac.js';
import type { Clock } from '../clock.js';
import { KernelError } from './errno.js';
import { UserspaceBackend, type UserspaceVhid } from './userspace.js';

export interface SimBackendOptions {
  /** The segment: UdpMulticastTransport in carpd, a MemoryNetwork endpoint in tests. */
  transport: PacketTransport;
  clock?: Clock;
  /** Interfaces that exist (the segments this node is attached to); any name when omitted. */
  interfaces?: string[];
  /** This node's name in advertisements (peers' reasons say "from <node>"). Default: the host name. */
  node?: string;
  /** 64-bit random values for counter seeds and the instance id; default crypto. */
  random?: () => bigint;
  logger?: Logger;
  /** The MAC mode of a vhid whose parameters name none (default `interface`), modelled as the linux backend does it. */
  macMode?: MacMode;
}

export class SimBackend extends UserspaceBackend {
  private readonly interfaces?: Set<string>;
  private readonly installed = new Map<string, string[]>();
  private readonly defaultMacMode: MacMode;

  constructor(opts: SimBackendOptions) {
    const interfaces = opts.interfaces ? new Set(opts.interfaces) : undefined;
    const node = opts.node ?? hostname().slice(0, SIM_MAX_NODE_NAME);
    super({
      name: 'sim',
      node,
      description: `userspace CARP engine, node ${node}, over ${opts.transport.description}; VIPs kept in memory`,
      runtime: { transport: opts.transport, attached: (iface) => !interfaces || interfaces.has(iface) },
      clock: opts.clock,
      random: opts.random,
      logger: opts.logger,
      pfsyncInterfaces: interfaces,
    });
    this.interfaces = interfaces;
    this.defaultMacMode = opts.macMode ?? 'interface';
  }

  /** A backend attached to its segment. */
  static async open(opts: SimBackendOptions): Promise<SimBackend> {
    const b = new SimBackend(opts);
    await b.start();
    return b;
  }

  capabilities(): Capabilities {
    return { unicast: true, ipv6: true, pfsync: true, pfsyncVersions: [1301, 1400, 1500], forceState: true, vrrpv3: true, macModes: ['virtual', 'interface'] };
  }

  /**
   * The model of the linux backend's MACs: the virtual MAC (VRRPv3: per family), or the
   * interface's own, a locally administered MAC derived from the node and interface names.
   */
  protected override macsOf(r: UserspaceVhid): Pick<LiveVhid, 'mac' | 'mac6' | 'virtualMac'> {
    if ((r.params.macMode ?? this.defaultMacMode) === 'interface') {
      const h = createHash('sha256').update(`${this.node}/${r.iface}`).digest();
      h[0] = (h[0] & 0xfc) | 0x02;
      return { mac: formatMac(h.subarray(0, 6)), virtualMac: false };
    }
    if (r.params.protocol !== 'vrrpv3') return { mac: formatMac(carpVirtualMac(r.vhid)), virtualMac: true };
    const v4 = r.addresses.some((a) => !a.includes(':')) || r.addresses.length === 0;
    const v6 = r.addresses.some((a) => a.includes(':'));
    const mac = formatMac(vrrpVirtualMac(r.vhid, v4 ? 4 : 6));
    return { mac, ...(v4 && v6 ? { mac6: formatMac(vrrpVirtualMac(r.vhid, 6)) } : {}), virtualMac: true };
  }

  protected requireInterface(op: string, iface: string): void {
    if (this.interfaces ? !this.interfaces.has(iface) : !/^[\x21-\x7e]+$/.test(iface) || iface.length > SIM_MAX_IFNAME) {
      throw KernelError.of('ENXIO', op, iface, 'no such interface');
    }
  }

  protected pfsyncStats(): KernelStats['pfsync'] {
    return { counters: {}, actMax: 0 };
  }

  /** The VIPs this node currently answers for (those of its MASTER vhids), by vhid. */
  installedVips(): { interface: string; vhid: number; addresses: string[] }[] {
    return [...this.installed.entries()].map(([k, addresses]) => {
      const [iface, vhid] = k.split('/');
      return { interface: iface, vhid: Number(vhid), addresses: [...addresses] };
    });
  }

  protected carryVips(e: VipEvent): void {
    const key = vhidKey(e.iface, e.vhid);
    if (e.installed) this.installed.set(key, e.addresses);
    else this.installed.delete(key);
    this.logger?.debug(
      { event: e.installed ? 'sim.vips.installed' : 'sim.vips.removed', interface: e.iface, vhid: e.vhid, addresses: e.addresses },
      `${e.iface} vhid ${e.vhid}: ${e.installed ? 'answering for' : 'no longer answering for'} ${e.addresses.join(', ')} (in memory)`,
    );
  }

  protected override vhidRemoved(r: UserspaceVhid): void {
    this.installed.delete(vhidKey(r.iface, r.vhid));
  }
}
