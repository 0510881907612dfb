/**
 * The two ways to read and configure carp(4) vhids (freebsd-kernel-abi.md §3.2, §3.5):
 *
 *  netlink (14.0+)  generic netlink family "carp": GET dumps an interface's vhids, SET takes the
 *                   whole attribute set (omitted attributes are zero-filled, T11). The only way
 *                   to set unicast peers.
 *  ioctl            SIOCGVH / SIOCSVH with a struct carpreq behind ifr_data (T5). On 13 the
 *                   list-all form (vhid 0) is correct; on 14 it returns garbage after slot 0
 *                   (T11), so there every vhid is queried on its own.
 *
 * Both answer in the same terms (KernelVhid / CarpSet), so the backend does not care which one
 * the running kernel offers (CarpChannel picks it). Failures are the KernelErrors of the libc
 * binding; the backend names the operation around them.
 */
import type { CarpState } from '../backend.js';
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import { NetlinkSocket } from '../netlink-socket.js';
import { AF_NETLINK, type AbiVersion, CARP_MAXVHID, CARP_STATE, NETLINK_GENERIC, SIOCGVH, SIOCSVH, SIZEOF, SOCK_CLOEXEC, SOCK_RAW, carpStateName, ifreqBytes } from './layout.js';
import { carpKeyBytes, carpreqBytes, decodeCarpreq, encodeCarpreq } from './layout-carp.js';
import { fail, isErrno } from './failure.js';
import type { Libc } from './libc.js';
import { NetlinkFormatError, buildGetFamilyRequest, decodeFamilyMessage, familyNotRegistered, freebsdNetlinkPlatform } from './netlink.js';
import { CARP_NL_FAMILY_NAME, CarpGetReplyParser, type CarpNlVhid, buildCarpGetRequest, buildCarpSetRequest } from './netlink-carp.js';

/** A vhid as the kernel reports it: the netlink attribute set, which the ioctl path fills as far as carpreq goes. */
export type KernelVhid = CarpNlVhid;

export interface CarpSet {
  iface: string;
  vhid: number;
  advbase: number;
  advskew: number;
  /** undefined: the kernel keeps its key (neither transport can clear one, T10). */
  key?: string;
  forceState?: 'BACKUP' | 'MASTER';
  /** undefined: multicast. The ioctl transport cannot carry peers at all. */
  peer?: string;
  peer6?: string;
  version?: number;
  vrrpPriority?: number;
  vrrpAdvInterCs?: number;
}

export interface CarpTransport {
  readonly kind: 'netlink' | 'ioctl';
  /** Every vhid of the interface; [] when it has no carp at all. ENXIO when it does not exist. */
  list(iface: string): Promise<KernelVhid[]>;
  /** One vhid, or undefined when it does not exist. */
  get(iface: string, vhid: number): Promise<KernelVhid | undefined>;
  set(p: CarpSet): Promise<void>;
  close(): void;
}

/** carp(4) version attribute (15.0, netlink): plain CARP, not VRRPv3. */
const CARP_VERSION_CARP = 2;

/**
 * 15.0: the VRRP attributes are zero-filled like the others (T11): send back what GET returned,
 * and plain CARP for a new vhid.
 */
export function vrrpAttrs(t: CarpTransport, major: AbiVersion, cur: KernelVhid | undefined): Pick<CarpSet, 'version' | 'vrrpPriority' | 'vrrpAdvInterCs'> {
  if (t.kind !== 'netlink' || major < 15) return {};
  if (!cur) return { version: CARP_VERSION_CARP };
  return {
    ...(cur.version !== undefined ? { version: cur.version } : { version: CARP_VERSION_CARP }),
    ...(cur.vrrpPriority !== undefined ? { vrrpPriority: cur.vrrpPriority } : {}),
    ...(cur.vrrpAdvInterCs !== undefined ? { vrrpAdvInterCs: cur.vrrpAdvInterCs } : {}),
  };
}

/**
 * A SET that gives a vhid back the parameters GET read, with `extra` on top (a state to force,
 * a key to set again): netlink SET zero-fills whatever it is not given (T11).
 */
export function sameParams(t: CarpTransport, major: AbiVersion, iface: string, vhid: number, cur: KernelVhid, extra: Pick<CarpSet, 'key' | 'forceState'>): CarpSet {
  return {
    iface,
    vhid,
    advbase: cur.advbase,
    advskew: cur.advskew,
    ...extra,
    ...(cur.peer ? { peer: cur.peer } : {}),
    ...(cur.peer6 ? { peer6: cur.peer6 } : {}),
    ...vrrpAttrs(t, major, cur),
  };
}

/**
 * The transport of the running kernel (§3.4): netlink on 14+ when its socket opened, the ioctls
 * otherwise. The netlink family is resolved on first use and again on later uses while carp.ko
 * is not loaded.
 */
export class CarpChannel {
  private nl?: NetlinkCarp;
  private readonly ioctl: IoctlCarp;

  constructor(
    libc: Libc,
    inetFd: number,
    readonly major: AbiVersion,
    readonly sock: NetlinkSocket | undefined,
  ) {
    // On 14 the list-all form of SIOCGVH is broken (T11); it is only trusted on 13.
    this.ioctl = new IoctlCarp(libc, inetFd, major === 13);
  }

  /** Whether netlink is in use (so unicast peers can be set). */
  get netlink(): boolean {
    return this.nl !== undefined;
  }

  /** Resolves the carp netlink family (14+). Retried on use while carp.ko is not loaded. */
  async resolve(): Promise<void> {
    if (this.nl || !this.sock) return;
    this.nl = await NetlinkCarp.open(this.sock);
  }

  /** The transport; a failure to resolve the family is named after `operation`. */
  async get(operation: string, iface?: string): Promise<CarpTransport> {
    if (!this.sock) return this.ioctl;
    try {
      await this.resolve();
    } catch (e) {
      fail(e, operation, iface);
    }
    return this.nl!;
  }

  close(): void {
    this.sock?.close();
  }
}

function stateOf(n: number): CarpState {
  const s = carpStateName(n);
  if (!s) throw new KernelError('decode carpreq', FREEBSD_ERRNO.EBADMSG, undefined, `carpr_state ${n} is not 0..2`);
  return s;
}

// ---- ioctl --------------------------------------------------------------------------------

export class IoctlCarp implements CarpTransport {
  readonly kind = 'ioctl' as const;

  /**
   * @param listAll use SIOCGVH with vhid 0 to read every vhid at once: correct on 13 (§3.2),
   *                broken on 14 (T11), where the backend passes false.
   */
  constructor(
    private readonly libc: Libc,
    private readonly fd: number,
    private readonly listAll: boolean,
  ) {}

  private getvh(iface: string, buf: Buffer): void {
    // ifr_data points at buf for the duration of the (synchronous) call; buf stays referenced.
    this.libc.ioctl(this.fd, SIOCGVH, ifreqBytes({ name: iface, data: this.libc.addressOf(buf) }), iface);
  }

  private decode(buf: Buffer, off: number): KernelVhid {
    const cr = decodeCarpreq(buf, off);
    return { vhid: cr.vhid, state: stateOf(cr.state), advbase: cr.advbase, advskew: cr.advskew, key: cr.key };
  }

  async get(iface: string, vhid: number): Promise<KernelVhid | undefined> {
    const cr = carpreqBytes({ count: 1, vhid, state: 0, advskew: 0, advbase: 0, key: Buffer.alloc(0) });
    try {
      this.getvh(iface, cr);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw e;
    }
    return this.decode(cr, 0);
  }

  async list(iface: string): Promise<KernelVhid[]> {
    if (this.listAll) {
      const all = this.readAll(iface);
      if (all) return all;
    }
    // One SIOCGVH per possible vhid, as `ifconfig IF carp` does on 14.
    const out: KernelVhid[] = [];
    for (let v = 1; v <= CARP_MAXVHID; v++) {
      const got = await this.get(iface, v);
      if (got) out.push(got);
    }
    return out;
  }

  /** 13.x list-all: slot i holds vhid i, each slot's carpr_count the total. undefined if the answer does not add up. */
  private readAll(iface: string): KernelVhid[] | undefined {
    const buf = Buffer.alloc(SIZEOF.carpreq * CARP_MAXVHID);
    encodeCarpreq({ count: CARP_MAXVHID, vhid: 0, state: 0, advskew: 0, advbase: 0, key: Buffer.alloc(0) }, buf, 0);
    try {
      this.getvh(iface, buf);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return []; // the interface has no carp at all
      throw e;
    }
    const n = buf.readInt32LE(0);
    if (!Number.isInteger(n) || n < 1 || n > CARP_MAXVHID) return undefined;
    const out: KernelVhid[] = [];
    const seen = new Set<number>();
    for (let i = 0; i < n; i++) {
      const cr = decodeCarpreq(buf, i * SIZEOF.carpreq);
      if (cr.count !== n || cr.vhid < 1 || cr.vhid > CARP_MAXVHID || seen.has(cr.vhid) || !carpStateName(cr.state)) return undefined;
      seen.add(cr.vhid);
      out.push(this.decode(buf, i * SIZEOF.carpreq));
    }
    return out;
  }

  async set(p: CarpSet): Promise<void> {
    if (p.peer !== undefined || p.peer6 !== undefined) {
      throw KernelError.of('EOPNOTSUPP', `set vhid ${p.vhid}`, p.iface, 'struct carpreq has no peer field; unicast needs the carp netlink family (FreeBSD 14+)');
    }
    const cr = carpreqBytes({
      count: 1,
      vhid: p.vhid,
      // carpr_state 0 (INIT) asks for no change; only BACKUP/MASTER force one (§3.2).
      state: p.forceState === undefined ? 0 : CARP_STATE[p.forceState],
      advskew: p.advskew,
      advbase: p.advbase,
      // An all-zero key keeps the current key (§3.2: replaced only when carpr_key[0] != 0).
      key: p.key === undefined ? Buffer.alloc(0) : carpKeyBytes(p.key),
    });
    this.libc.ioctl(this.fd, SIOCSVH, ifreqBytes({ name: p.iface, data: this.libc.addressOf(cr) }), p.iface);
  }

  close(): void {}
}

// ---- netlink --------------------------------------------------------------------------------

/** A generic netlink socket for the carp family, on the request socket both backends share. */
export function openNetlinkSocket(libc: Libc): NetlinkSocket {
  return new NetlinkSocket(freebsdNetlinkPlatform(libc), libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
}

/** The id of a generic netlink family; EPROTONOSUPPORT when it is not registered (§3.5). */
export async function resolveFamily(sock: NetlinkSocket, name: string): Promise<number> {
  let id: number | undefined;
  try {
    await sock.request(buildGetFamilyRequest(sock.nextSeq(), name), {
      operation: `netlink GETFAMILY ${name}`,
      // The request asks for no acknowledgement: the family message is the whole reply.
      onMessage: (m) => {
        id = decodeFamilyMessage(m, name);
        return true;
      },
    });
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw familyNotRegistered(name);
    throw e;
  }
  if (id === undefined) throw new NetlinkFormatError('ctrl reply without CTRL_ATTR_FAMILY_ID');
  return id;
}

function fromNl(v: CarpNlVhid): KernelVhid {
  // By assignment, not spreads (a dump decodes hundreds): the same fields in the same order.
  const k: KernelVhid = { vhid: v.vhid, state: v.state, advbase: v.advbase, advskew: v.advskew };
  if (v.key) k.key = v.key;
  if (v.peer) k.peer = v.peer;
  if (v.peer6) k.peer6 = v.peer6;
  if (v.version !== undefined) k.version = v.version;
  if (v.vrrpPriority !== undefined) k.vrrpPriority = v.vrrpPriority;
  if (v.vrrpAdvInterCs !== undefined) k.vrrpAdvInterCs = v.vrrpAdvInterCs;
  return k;
}

export class NetlinkCarp implements CarpTransport {
  readonly kind = 'netlink' as const;

  constructor(
    private readonly sock: NetlinkSocket,
    readonly familyId: number,
  ) {}

  static async open(sock: NetlinkSocket): Promise<NetlinkCarp> {
    return new NetlinkCarp(sock, await resolveFamily(sock, CARP_NL_FAMILY_NAME));
  }

  private async dump(iface: string, vhid?: number): Promise<KernelVhid[]> {
    const seq = this.sock.nextSeq();
    const parser = new CarpGetReplyParser({ seq, familyId: this.familyId, operation: 'netlink carp GET', iface });
    try {
      await this.sock.request(buildCarpGetRequest({ familyId: this.familyId, seq, ifname: iface, ...(vhid ? { vhid } : {}) }), {
        operation: 'netlink carp GET',
        iface,
        onMessage: (m) => parser.message(m),
      });
      parser.end();
    } catch (e) {
      // NLMSG_DONE/ERROR with ENOENT: no such vhid, or no carp on the interface (§12.7).
      if (isErrno(e, 'ENOENT')) return [];
      throw e;
    }
    return parser.result().map(fromNl);
  }

  list(iface: string): Promise<KernelVhid[]> {
    return this.dump(iface);
  }

  async get(iface: string, vhid: number): Promise<KernelVhid | undefined> {
    return (await this.dump(iface, vhid)).find((v) => v.vhid === vhid);
  }

  async set(p: CarpSet): Promise<void> {
    const msg = this.setMessage(p, this.sock.nextSeq());
    // Asks for an acknowledgement (NLM_F_ACK): the NLMSG_ERROR that ends the reply is the answer.
    await this.sock.request(msg, { operation: 'netlink carp SET', iface: p.iface });
  }

  private setMessage(p: CarpSet, seq: number): Buffer {
    return buildCarpSetRequest({
      familyId: this.familyId,
      seq,
      ifname: p.iface,
      vhid: p.vhid,
      advbase: p.advbase,
      advskew: p.advskew,
      ...(p.key !== undefined ? { key: p.key } : {}),
      ...(p.forceState ? { forceState: p.forceState } : {}),
      ...(p.peer ? { peer: p.peer } : {}),
      ...(p.peer6 ? { peer6: p.peer6 } : {}),
      ...(p.version !== undefined ? { version: p.version } : {}),
      ...(p.vrrpPriority !== undefined ? { vrrpPriority: p.vrrpPriority } : {}),
      ...(p.vrrpAdvInterCs !== undefined ? { vrrpAdvInterCs: p.vrrpAdvInterCs } : {}),
    });
  }

  /**
   * Several SETs as one batch: one message each, sent together (NetlinkSocket.requestMany), each
   * acknowledged on its own. Answers each SET's failure, or undefined.
   */
  setMany(sets: readonly CarpSet[]): Promise<(KernelError | undefined)[]> {
    const msgs = sets.map((p) => this.setMessage(p, this.sock.nextSeq()));
    return this.sock.requestMany(msgs, { operation: 'netlink carp SET' });
  }

  close(): void {
    this.sock.close();
  }
}
