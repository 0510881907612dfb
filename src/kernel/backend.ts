/**
 * The contract every backend (freebsd, linux, sim, memory) fulfils. The service is written
 * against this interface only; a contract test suite runs against each implementation.
 *
 * Errors: every method rejects with KernelError carrying FreeBSD errno numbers:
 *   ENXIO            the interface does not exist
 *   EINVAL           a value out of range (vhid 1..255, advbase 1..255, advskew 0..254,
 *                    key over 20 bytes, maxupd 0..255, unknown pfsync version, unknown syncdev)
 *   ENOPROTOOPT      an address added to an interface that has no vhid at all
 *   ENOENT           an address added to a vhid that does not exist (other vhids do), or a
 *                    vhid or address to remove/force that does not exist
 *   EADDRNOTAVAIL    removing an address that is not on the interface
 *   EOPNOTSUPP       the backend lacks the capability (unicast peers, forced state; protocol
 *                    vrrpv3 on a backend whose capabilities().vrrpv3 is false)
 *   EPERM            not privileged
 *
 * VRRPv3: setVhid with protocol 'vrrpv3' creates a VRRPv3 (RFC 5798) vhid, timed by
 * vrrpPriority (1..254, default 100) and vrrpIntervalCs (1..4095 centiseconds, default 100);
 * out of range is EINVAL. advbaseSec/advskew are still passed (valid, at their defaults) but not
 * used. A vhid's protocol is fixed at creation, as in FreeBSD 15 carp(4): setVhid on an
 * existing vhid with another protocol is EINVAL and changes nothing; remove the vhid and set
 * it again. Changing vrrpPriority/vrrpIntervalCs of a vrrpv3 vhid is an ordinary setVhid.
 */
import { carpParamsFault, vrrpParamsFault } from '../wire/limits.js';
import { VRRP_DEFAULT_INTERVAL_CS, VRRP_DEFAULT_PRIORITY } from '../wire/vrrp.js';
import { KernelError } from './errno.js';
import type { CarpState } from '../engine/types.js';
import { CARP_MAXSKEW } from '../engine/timing.js';

export type { CarpState };


export type VhidProtocol = 'carp' | 'vrrpv3';

/**
 * The link-layer address a vhid's VIPs answer with: `virtual` is carp(4)'s 00:00:5e:00:01:<vhid>
 * (VRRPv3: 00:00:5e:00:01:<vrid> for IPv4, 00:00:5e:00:02:<vrid> for IPv6, RFC 5798 §7.3);
 * `interface` is the parent interface's own MAC, as ucarp does.
 */
export type MacMode = 'virtual' | 'interface';
export const MAC_MODES: readonly MacMode[] = ['virtual', 'interface'];

export interface VhidParams {
  /** CARP advertisement base, seconds. Not used by a vrrpv3 vhid. */
  advbaseSec: number;
  /** CARP skew, 1/256 s. Not used by a vrrpv3 vhid. */
  advskew: number;
  /** Passphrase, at most 20 bytes (carpd itself allows 19, as ifconfig does). */
  key?: string;
  /** Unicast IPv4 peer; undefined = multicast 224.0.0.18. */
  peer?: string;
  /** Unicast IPv6 peer; undefined = multicast ff02::12. */
  peer6?: string;
  /** undefined = carp. Fixed once the vhid exists (EINVAL); EOPNOTSUPP without the capability. */
  protocol?: VhidProtocol;
  /** vrrpv3: priority 1..254, higher wins (255, the address owner, is not supported); default 100. */
  vrrpPriority?: number;
  /** vrrpv3: Max Advert Interval in centiseconds, 1..4095; default 100 (1 s). */
  vrrpIntervalCs?: number;
  /** How the VIPs' MAC is chosen; undefined = the node's default. EOPNOTSUPP for a mode not in capabilities().macModes. */
  macMode?: MacMode;
}

export interface LiveVhid extends VhidParams {
  interface: string;
  vhid: number;
  state: CarpState;
  /** When the state last changed. */
  since: Date;
  /** Why it last changed, in words ("master-down timer expired: no advertisement for 3.000 s"). */
  reason: string;
  /** Canonical CIDRs bound to this vhid. */
  addresses: string[];
  /**
   * The MAC the vhid's VIPs answer with (ARP, neighbour advertisements, announcements): its
   * IPv4 addresses', or all of them when one MAC serves both families. Absent where the
   * backend does not know it (memory).
   */
  mac?: string;
  /** Only for a VRRPv3 vhid whose IPv6 addresses use another MAC than `mac` (00:00:5e:00:02:<vrid>). */
  mac6?: string;
  /** Whether `mac` is the virtual MAC (true) or the interface's own (false); absent with `mac`. */
  virtualMac?: boolean;
}

export interface CarpGlobals {
  /** net.inet.carp.allow */
  allow: boolean;
  /** net.inet.carp.preempt */
  preempt: boolean;
}

export interface PfsyncSettings {
  /** undefined = detached (pfsync off). */
  syncdev?: string;
  /** undefined = multicast 224.0.0.240 / ff12::f0. */
  syncpeer?: string;
  maxupd: number;
  defer: boolean;
  version: number;
}

export interface PfsyncLive extends PfsyncSettings {
  running: boolean;
  /** PFSYNCF_OK: the bulk update from the peer has completed. */
  bulkUpdateDone: boolean;
}

export interface Capabilities {
  unicast: boolean;
  ipv6: boolean;
  pfsync: boolean;
  pfsyncVersions: number[];
  forceState: boolean;
  vrrpv3: boolean;
  /** The MAC modes a vhid may ask for (VhidParams.macMode); absent: none may be asked for. */
  macModes?: MacMode[];
}

export interface StateChange {
  interface: string;
  vhid: number;
  state: CarpState;
  previous: CarpState;
  reason: string;
  at: Date;
}

/**
 * The counters of struct carpstats (net.inet.carp.stats), by their FreeBSD names without the
 * `carps_` prefix, in the kernel's order: packets received (IPv4, IPv6), received packets
 * dropped (wrong interface, TTL not 255, short header, bad checksum, bad version, bad length,
 * bad HMAC, unknown vhid, bad address list), packets sent (IPv4, IPv6), send failures (no
 * memory), state updates sent, and preemptions (net.inet.carp.preempt).
 */
export const CARP_COUNTERS = [
  'ipackets', 'ipackets6', 'badif', 'badttl', 'hdrops', 'badsum', 'badver', 'badlen', 'badauth',
  'badvhid', 'badaddrs', 'opackets', 'opackets6', 'onomem', 'ostates', 'preempt',
] as const;
export type CarpCounter = (typeof CARP_COUNTERS)[number];

/** A sender of advertisements for one vhid as a backend heard it: accepted and refused ones, and how long ago. */
export interface AdvertSource {
  iface: string;
  vhid: number;
  /** Its node name on the sim segment, its source address on a real one. */
  from: string;
  accepted: number;
  refused: number;
  /** The carpstats name of the last refusal (badauth: a wrong password or address list). */
  lastRefusal?: string;
  /** Milliseconds since it was last heard. */
  ageMs: number;
}

/**
 * Kernel statistics and the tunables that explain a demotion, read for reporting only.
 *
 * Counters are u64 in the kernel and numbers here: they stay exact up to 2^53, which a counter
 * incremented a million times a second reaches after 285 years; beyond it they lose precision
 * but do not wrap or fail. They count from boot (or from the last write to the sysctl, which
 * zeroes them) and are not reset by carpd.
 */
export interface KernelStats {
  /** net.inet.carp.stats, every counter of CARP_COUNTERS. */
  carp: Record<CarpCounter, number>;
  /**
   * net.pfsync.stats; absent when pfsync is not available (pfsync.ko not loaded). `counters`
   * holds struct pfsyncstats's counters by FreeBSD name without `pfsyncs_` (ipackets ...
   * oerrors); `actMax` is PFSYNC_ACT_MAX of the running kernel (13 / 15 / 17 on FreeBSD
   * 13 / 14 / 15), derived from the size the kernel reports, 0 when the backend keeps no
   * per-action counters. The per-action counters themselves are not reported.
   */
  pfsync?: { counters: Record<string, number>; actMax: number };
  sysctls: {
    /** net.inet.carp.log: 0 silent, 1 state changes, >1 also bad packets. */
    carpLog: number;
    /** net.pfsync.carp_demotion_factor: demotion held while pfsync's bulk update is pending; absent without pfsync. */
    pfsyncCarpDemotionFactor?: number;
    /** net.inet.carp.senderr_demotion_factor: demotion added after 3 consecutive send errors. */
    senderrDemotionFactor?: number;
    /** net.inet.carp.ifdown_demotion_factor: demotion added while a parent interface is down. */
    ifdownDemotionFactor?: number;
  };
}

/**
 * pf's status as `pfctl -si` shows it, and pfsync's bulk update (KernelBackend.pfStatus). The
 * state-table counters (pf's FCNT_STATE_*) count from when pf.ko was loaded; u64 in the kernel,
 * numbers here (exact up to 2^53, as KernelStats's).
 */
export interface PfStatus {
  /** pf is enabled (`pfctl -e`). */
  running: boolean;
  /** Entries in the state table now. */
  states: number;
  /** Source-tracking nodes now. */
  srcNodes: number;
  /** State table lookups, inserts and removals ("searches", "inserts", "removals" of pfctl -si). */
  stateSearches: number;
  stateInserts: number;
  stateRemovals: number;
  /** How the status was read: the binary DIOCGETSTATUS (13), the nvlist DIOCGETSTATUSNV (13.1+, 14, 15), or netlink. */
  via: 'ioctl' | 'nvlist' | 'netlink';
  /**
   * pfsync's bulk update (PFSYNCF_OK): null when pfsync is not running (not loaded, or no
   * syncdev), else whether the state table received from the peer is complete.
   */
  pfsyncBulkUpdateDone: boolean | null;
}

/** The vhids a caller needs (KernelBackend.listVhids): those named, and the holders of these addresses on their interface (compared without prefix length). */
export interface VhidQuery {
  vhids?: readonly { interface: string; vhid: number }[];
  addresses?: readonly { interface: string; address: string }[];
}

export type BackendName = 'memory' | 'sim' | 'linux' | 'freebsd';

export interface KernelBackend {
  readonly name: BackendName;
  readonly description: string;
  capabilities(): Capabilities;
  /** Releases sockets and timers. The live kernel state is left as it is. */
  close(): Promise<void>;

  /**
   * The vhids, ordered by interface then vhid. With a query, at least the vhids it names that
   * exist and those holding one of its addresses; a backend may answer more (one that cannot
   * look a vhid up cheaply answers all of them), so a caller picks what it asked for.
   */
  listVhids(query?: VhidQuery): Promise<LiveVhid[]>;
  /** Creates the vhid or replaces all its parameters (a missing key keeps no key). */
  setVhid(iface: string, vhid: number, params: VhidParams): Promise<void>;
  /** Removes every address of the vhid, which removes the vhid. ENOENT when absent. */
  removeVhid(iface: string, vhid: number): Promise<void>;
  /** The vhid must exist first (ENOPROTOOPT / ENOENT otherwise). */
  addAddress(iface: string, vhid: number, cidr: string): Promise<void>;
  /** Removing a vhid's last address removes the vhid, as carp(4) does. */
  removeAddress(iface: string, vhid: number, cidr: string): Promise<void>;
  /** Like `ifconfig IF vhid N state backup`; has no effect on a vhid in INIT. */
  forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void>;

  getCarpGlobals(): Promise<CarpGlobals & { demotion: number }>;
  setCarpGlobals(g: CarpGlobals): Promise<void>;
  /** Whether carpd's own maintenance demotion (240) is applied. */
  getMaintenance(): Promise<boolean>;
  /**
   * Adds or takes back exactly carpd's maintenance demotion. Idempotent: setting the state it
   * already has changes nothing, across carpd restarts too.
   */
  setMaintenance(on: boolean): Promise<void>;
  /**
   * carpd's named demotions held now, besides maintenance (`splitbrain`, health tracks, `admin`):
   * name -> amount, only those other than 0 (only `admin` is ever negative). EOPNOTSUPP from a backend that cannot hold them (every
   * backend here can; callers ask this before relying on setDemotion).
   */
  demotions(): Promise<Map<string, number>>;
  /**
   * Holds `amount` of demotion under `name`, 0 taking it back: the node's demotion moves by
   * exactly the difference from what that name held, and nothing else of it (the kernel's own
   * demotion, maintenance, other names) is touched. Idempotent, across carpd restarts too where
   * the backend's demotion outlives carpd. EINVAL for a name that is not checkedDemotion's or
   * an amount outside 0..CARP_MAXSKEW (-CARP_MAXSKEW..CARP_MAXSKEW for ADMIN_DEMOTION).
   */
  setDemotion(name: string, amount: number): Promise<void>;
  /**
   * Whether an interface's link is up (administratively up and carrying: IFF_UP and
   * IFF_RUNNING), for health tracks of kind `interface`. ENXIO when there is no such interface.
   * Optional: a backend without it cannot run such tracks.
   */
  linkUp?(iface: string): Promise<boolean>;

  getPfsync(): Promise<PfsyncLive>;
  setPfsync(s: PfsyncSettings): Promise<void>;

  /**
   * CARP and pfsync counters and the demotion tunables (KernelStats). Only reads; EPROTONOSUPPORT
   * when carp(4) is not loaded. A missing pfsync is not an error: `pfsync` is then absent.
   */
  stats(): Promise<KernelStats>;

  /**
   * The senders of advertisements heard per vhid (AdvertSource), bounded, for diagnostics.
   * Optional: a backend without it (carp(4) keeps no such record) cannot tell.
   */
  advertSources?(): Promise<AdvertSource[]>;

  /**
   * pf's status (PfStatus), read, never changed. null when this node has no pf: a backend
   * without pf (memory, sim, linux) or a FreeBSD without pf.ko (no /dev/pf). Kernel errors
   * reject with KernelError (EACCES, EPERM, ...).
   */
  pfStatus(): Promise<PfStatus | null>;

  /**
   * The steps, in order, as one batch: each step means what its method above means and fails
   * with the same errors. All or nothing: when a step fails, every step of the batch already
   * applied is taken back (vhids set back or removed, removed vhids created again with their
   * parameters and addresses, moved addresses moved back, globals, maintenance and pfsync
   * restored) before the promise rejects with a BatchError, which names the failed step and
   * carries its KernelError's operation, errno and interface. Live states are not restored: a
   * vhid created again starts from INIT. A failure of the undo itself is listed in
   * BatchError.undoErrors; the backend then differs from its state before the batch until the
   * next reconcile. Steps that do not depend on each other may reach the kernel together (one
   * netlink send, ioctls back to back): that is what a batch is for. An empty batch does nothing.
   */
  apply(steps: readonly BackendStep[]): Promise<void>;

  /** Subscribes to vhid state changes; returns the unsubscribe function. */
  onStateChange(listener: (c: StateChange) => void): () => void;
}

/** One change of a batch (KernelBackend.apply): a single-step method of the contract, as data. */
export type BackendStep =
  | { op: 'vhid.set'; interface: string; vhid: number; params: VhidParams }
  | { op: 'vhid.remove'; interface: string; vhid: number }
  | { op: 'address.add'; interface: string; vhid: number; address: string }
  | { op: 'address.remove'; interface: string; vhid: number; address: string }
  | { op: 'carp.set'; globals: CarpGlobals }
  | { op: 'maintenance.set'; enabled: boolean }
  | { op: 'pfsync.set'; settings: PfsyncSettings };

/**
 * A batch that failed at `index` and was taken back. It is the failed step's KernelError (same
 * operation, errno, interface and message), so whoever maps kernel errors maps this one too.
 */
export class BatchError extends KernelError {
  constructor(
    readonly index: number,
    readonly step: BackendStep,
    readonly failure: KernelError,
    /** What the undo could not take back; empty when the backend is as it was before the batch. */
    readonly undoErrors: KernelError[] = [],
  ) {
    super(failure.operation, failure.errno, failure.iface);
    this.message = failure.message;
    this.name = 'BatchError';
  }
}

/** A named demotion's name: lower case, digits, `.`, `_`, `-`; not `maintenance` or `other` (the events name those). */
export const DEMOTION_NAME = /^[a-z][a-z0-9._:-]{0,47}$/;

/** The administrative adjustment's name: the one named demotion that may be negative. */
export const ADMIN_DEMOTION = 'admin';

/** setDemotion's argument checks as the contract states them (EINVAL), for every backend. */
export function checkedDemotion(name: string, amount: number): void {
  const op = `set the ${name} demotion`;
  if (!DEMOTION_NAME.test(name) || name === 'maintenance' || name === 'other') throw KernelError.of('EINVAL', op, undefined, `"${name}" is not a demotion name (lower case letters, digits, . _ : -; not maintenance or other)`);
  // Only `admin` (the administrative adjustment) may be negative, as a negative `sysctl
  // net.inet.carp.demotion` delta is: it makes the node more preferred. The advertised skew is
  // clamped to 0..CARP_MAXSKEW whatever the sum (engine/timing.ts effectiveSkew), so it never
  // wraps. Every other name (split brain, tracks, switchover) only ever demotes.
  const min = name === ADMIN_DEMOTION ? -CARP_MAXSKEW : 0;
  if (!Number.isInteger(amount) || amount < min || amount > CARP_MAXSKEW) throw KernelError.of('EINVAL', op, undefined, `demotion ${amount} is outside ${min}..${CARP_MAXSKEW}`);
}

/** The sum of named demotions held, and the map without zeros, as demotions() answers it. */
export function heldDemotions(named: ReadonlyMap<string, number>): { total: number; map: Map<string, number> } {
  const map = new Map([...named].filter(([, v]) => v !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { total: [...map.values()].reduce((a, b) => a + b, 0), map };
}

/** The named demotions a userspace backend holds (memory, sim, linux): setDemotion's checks, demotions()'s answer, their sum. */
export class NamedDemotions {
  private readonly held = new Map<string, number>();

  /** EINVAL for a bad name or amount; 0 takes the name's demotion back. */
  set(name: string, amount: number): void {
    checkedDemotion(name, amount);
    if (amount === 0) this.held.delete(name);
    else this.held.set(name, amount);
  }

  get total(): number {
    return heldDemotions(this.held).total;
  }

  map(): Map<string, number> {
    return heldDemotions(this.held).map;
  }
}

/** RFC 5798's defaults, used when a vrrpv3 vhid is set without them. */
export const VRRP_DEFAULTS = { priority: VRRP_DEFAULT_PRIORITY, intervalCs: VRRP_DEFAULT_INTERVAL_CS } as const;

/**
 * setVhid's argument checks as the contract states them, for the backends that model the
 * kernel (memory, sim, linux): EINVAL for a value outside the ranges of wire/limits.ts or a
 * protocol change in place, EOPNOTSUPP for vrrpv3 without the capability. Returns the
 * parameters to store: for vrrpv3 with the VRRP defaults filled in, for carp without VRRP fields.
 */
export function checkedVhidParams(op: string, iface: string, vhid: number, p: VhidParams, ctx: { vrrpv3: boolean; existing?: VhidProtocol; macModes?: readonly MacMode[] }): VhidParams {
  const carpFault = carpParamsFault(vhid, p);
  if (carpFault) throw KernelError.of('EINVAL', op, iface, carpFault);
  const protocol = p.protocol ?? 'carp';
  if (protocol !== 'carp' && protocol !== 'vrrpv3') throw KernelError.of('EINVAL', op, iface, `unknown protocol ${String(protocol)}`);
  if (ctx.existing !== undefined && ctx.existing !== protocol) {
    throw KernelError.of('EINVAL', op, iface, `vhid ${vhid} is a ${ctx.existing} vhid; its protocol cannot be changed in place (remove the vhid and create it as ${protocol})`);
  }
  if (p.macMode !== undefined) {
    if (!MAC_MODES.includes(p.macMode)) throw KernelError.of('EINVAL', op, iface, `unknown MAC mode ${String(p.macMode)}`);
    if (!ctx.macModes?.includes(p.macMode)) throw KernelError.of('EOPNOTSUPP', op, iface, `MAC mode ${p.macMode} is not supported by this backend`);
  }
  const base: VhidParams = { advbaseSec: p.advbaseSec, advskew: p.advskew, key: p.key, peer: p.peer, peer6: p.peer6, ...(p.macMode !== undefined ? { macMode: p.macMode } : {}) };
  if (protocol === 'carp') return base;
  if (!ctx.vrrpv3) throw KernelError.of('EOPNOTSUPP', op, iface, 'VRRPv3 is not supported by this backend');
  const vrrpPriority = p.vrrpPriority ?? VRRP_DEFAULTS.priority;
  const vrrpIntervalCs = p.vrrpIntervalCs ?? VRRP_DEFAULTS.intervalCs;
  const vrrpFault = vrrpParamsFault(vrrpPriority, vrrpIntervalCs);
  if (vrrpFault) throw KernelError.of('EINVAL', op, iface, vrrpFault);
  return { ...base, protocol, vrrpPriority, vrrpIntervalCs };
}
