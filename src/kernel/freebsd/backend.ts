/**
 * The FreeBSD backend: carp(4) and pfsync(4) driven in-process through libc over koffi (ioctl,
 * sysctl, generic netlink), without forking ifconfig (freebsd-kernel-abi.md throughout).
 *
 *  version     kern.osreldate picks the paths: 13 = ioctls only (SIOCSVH/SIOCGVH, legacy
 *              pfsync); 14 = the carp netlink family (unicast peers) and the pfsync nvlist
 *              ioctls; 15 = the same plus VRRPv3 attributes and pfsync 1500.
 *  sockets     one AF_INET datagram socket for the ioctls (and an AF_INET6 one for the IPv6
 *              address requests, which the kernel routes to in6_control only from an AF_INET6
 *              socket), one netlink socket on 14+.
 *  truth       vhids, their parameters and states are read from the kernel every time; which
 *              interfaces to look at and which addresses carpd bound come from the ledger
 *              (ledger.ts), because carp(4) has no request that lists a vhid's addresses.
 *  events      devd's CARP notifications (devd.ts) are hints: each one makes the backend read
 *              that vhid again, and every (re)connection re-reads all of them, so a dropped
 *              event only delays a report. The kernel keeps neither when a state began nor why;
 *              `since` and `reason` are what this process saw.
 *
 * Ledger order. An address change is written to the ledger before the kernel is asked, and
 * taken back if the kernel refuses. A crash in between leaves the ledger one step ahead of the
 * kernel in a change the service had not committed yet, and the next reconcile converges: an
 * address recorded but never bound is "removed" (EADDRNOTAVAIL from the kernel counts as done),
 * an address recorded as removed but still bound is bound again (SIOCAIFADDR replaces it).
 *
 * Destroying a vhid. carp(4) has no request for it: a vhid goes away with its last address
 * (carp_detach). A vhid without addresses (created by SIOCSVH or netlink SET and never bound,
 * or whose bind failed) is destroyed by binding a placeholder /32 from 169.254.0.0/24 (the block
 * RFC 3927 reserves and autoconfiguration never picks) and removing it at once; a vhid that is
 * being bound is still in INIT, so the placeholder is never announced.
 *
 * Clearing a key. Neither SIOCSVH nor netlink SET can (T10: an empty key means "keep"). When
 * the new parameters have no key and the kernel has one, the vhid is destroyed and created
 * again without it, with the same addresses. The VIP is down on this node for that moment;
 * as the peers' HMACs stop matching the moment one side's key changes, a key change is a
 * cluster-wide event anyway, and the contract (backend.ts: "a missing key keeps no key") holds.
 */
import { EventEmitter } from 'node:events';
import pino, { type Logger } from 'pino';
import { canonicalIp, formatCidr, parseCidr, type Cidr } from '../../wire/address.js';
import { carpParamsFault, pfsyncParamsFault } from '../../wire/limits.js';
import type {
  CarpGlobals,
  CarpState,
  Capabilities,
  KernelBackend,
  KernelStats,
  LiveVhid,
  PfsyncLive,
  PfsyncSettings,
  StateChange,
  VhidParams,
} from '../backend.js';
import { FREEBSD_ERRNO, KernelError, type ErrnoName } from '../errno.js';
import { type CarpSet, type CarpTransport, IoctlCarp, type KernelVhid, NetlinkCarp, openNetlinkSocket } from './carp.js';
import type { NetlinkSocket } from '../netlink-socket.js';
import { DEFAULT_DEVD_PIPE, type DevdCarpEvent, DevdClient } from './devd.js';
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  type AbiVersion,
  IFNAMSIZ,
  NETLINK_GENERIC,
  SIOCAIFADDR,
  SIOCAIFADDR_IN6,
  SIOCDIFADDR,
  SIOCDIFADDR_IN6,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_RAW,
  ifreqBytes,
} from './layout.js';
import { in6AliasreqBytes, in6IfreqBytes, inAliasreqBytes } from './layout-addr.js';
import { carpKeyText } from './layout-carp.js';
import { decodeCarpstats, decodePfsyncstats } from './layout-pfsync.js';
import { AddressLedger } from './ledger.js';
import { type Libc, loadLibc } from './libc.js';
import { type Libnv, loadLibnv } from './libnv.js';
import { Maintenance } from './maintenance.js';
import { PFSYNC_IF, PfsyncControl, defaultPfsyncVersion, pfsyncVersionsFor } from './pfsync.js';

export interface FreebsdBackendOptions {
  /** Where the ledger and the demotion record live (carpd's state directory). */
  stateDir: string;
  logger?: Logger;
  /** libc to bind; default CARPD_FREEBSD_LIBC, then libc.so.7. */
  libcPath?: string;
  /** An already bound libc, used instead of binding libcPath (a wrapper that counts the calls, say). */
  libc?: Libc;
  /** libnv to bind (14+); default CARPD_FREEBSD_LIBNV, then libnv.so.1 / libnv.so.0. */
  libnvPath?: string;
  /** devd's stream socket; default CARPD_DEVD_PIPE, then /var/run/devd.pipe. */
  devdPipe?: string;
  /** Reconnection backoff towards devd (tests shorten it). */
  devdBackoffMs?: { min: number; max: number };
}

export async function openFreebsdBackend(opts: FreebsdBackendOptions): Promise<KernelBackend> {
  return FreebsdBackend.open(opts);
}

/** carp(4) version attribute (15.0, netlink): plain CARP, not VRRPv3. */
const CARP_VERSION_CARP = 2;
const PLACEHOLDER_NET = '169.254.0.';

const isErrno = (e: unknown, name: ErrnoName) => e instanceof KernelError && e.errno === FREEBSD_ERRNO[name];
const keyOf = (iface: string, vhid: number) => `${iface}/${vhid}`;

/** Why an errno happened, in carp(4) terms, for the operations that can meet it. */
const HINTS: Partial<Record<ErrnoName, string>> = {
  EPERM: 'not privileged: carpd must run as root',
  EPROTONOSUPPORT: 'carp(4) is not loaded: kldload carp, or carp_load="YES" in /boot/loader.conf',
  ENXIO: 'no such interface',
  EOPNOTSUPP: 'carp(4) runs only on Ethernet, VLAN and bridge interfaces',
  EADDRNOTAVAIL: 'the interface is not multicast-capable',
};

interface SeenState {
  state: CarpState;
  since: Date;
  reason: string;
}

export class FreebsdBackend implements KernelBackend {
  readonly name = 'freebsd' as const;
  readonly description: string;
  private readonly events = new EventEmitter();
  private readonly seen = new Map<string, SeenState>();
  private inet6Fd?: number;
  private nlCarp?: NetlinkCarp;
  private readonly ioctlCarp: IoctlCarp;
  private pfsyncAvailable: boolean;
  private devd?: DevdClient;
  private tail: Promise<unknown> = Promise.resolve();
  private closing = false;

  private constructor(
    private readonly libc: Libc,
    readonly osreldate: number,
    readonly major: AbiVersion,
    private readonly inetFd: number,
    private readonly nlSock: NetlinkSocket | undefined,
    private readonly pfsync: PfsyncControl,
    private readonly ledger: AddressLedger,
    private readonly maintenance: Maintenance,
    private readonly logger: Logger,
  ) {
    // On 14 the list-all form of SIOCGVH is broken (T11); it is only trusted on 13.
    this.ioctlCarp = new IoctlCarp(libc, inetFd, major === 13);
    this.pfsyncAvailable = pfsync.available();
    const via = nlSock ? 'ioctl/sysctl/netlink' : 'ioctl/sysctl';
    this.description = `FreeBSD ${major} kernel (osreldate ${osreldate}) via ${via} (koffi)`;
  }

  static async open(opts: FreebsdBackendOptions): Promise<FreebsdBackend> {
    const logger = opts.logger ?? pino({ level: 'silent' });
    const libc = opts.libc ?? loadLibc(opts.libcPath ?? process.env.CARPD_FREEBSD_LIBC ?? 'libc.so.7');
    const osreldate = readInt(libc, 'kern.osreldate');
    const release = Math.floor(osreldate / 100000);
    if (release < 13) throw new Error(`FreeBSD ${release} (kern.osreldate ${osreldate}) is not supported; carpd needs 13.0 or later`);
    if (release > 15) logger.warn({ event: 'freebsd.newer', osreldate }, `FreeBSD ${release} is newer than this backend knows; using the FreeBSD 15 paths`);
    const major: AbiVersion = release >= 15 ? 15 : (release as AbiVersion);

    const fds: number[] = [];
    let nlSock: NetlinkSocket | undefined;
    try {
      const inetFd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      fds.push(inetFd);
      let libnv: Libnv | undefined;
      if (major >= 14) {
        try {
          libnv = loadLibnv(libc, opts.libnvPath ?? process.env.CARPD_FREEBSD_LIBNV);
        } catch (e) {
          // CARP does not need libnv; pfsync falls back to the legacy ioctls (no version choice).
          logger.error({ event: 'freebsd.libnv', err: (e as Error).message }, `${(e as Error).message}; pfsync is configured through the legacy ioctls, at the kernel's default version`);
        }
        try {
          nlSock = openNetlinkSocket(libc);
          fds.push(nlSock.fd);
        } catch (e) {
          logger.warn({ event: 'freebsd.netlink', err: (e as Error).message }, `no netlink socket (${(e as Error).message}); carp(4) is driven through ioctls, without unicast peers`);
        }
      }
      const ledger = await AddressLedger.open(opts.stateDir);
      const maintenance = await Maintenance.open(
        opts.stateDir,
        {
          boottime: () => readBoottime(libc),
          demotion: () => carpSysctl(() => readInt(libc, 'net.inet.carp.demotion'), 'read net.inet.carp.demotion'),
          addDemotion: (d) => carpSysctl(() => writeInt(libc, 'net.inet.carp.demotion', d), 'write net.inet.carp.demotion'),
        },
        logger,
      );
      const pfsync = new PfsyncControl(libc, inetFd, major, libnv);
      const b = new FreebsdBackend(libc, osreldate, major, inetFd, nlSock, pfsync, ledger, maintenance, logger);
      await b.start(opts);
      return b;
    } catch (e) {
      for (const fd of fds) {
        try {
          libc.close(fd);
        } catch { /* already failing */ }
      }
      throw e;
    }
  }

  private async start(opts: FreebsdBackendOptions): Promise<void> {
    await this.resolveNetlink().catch((e: unknown) => {
      this.logger.warn({ event: 'freebsd.carp', err: (e as Error).message }, `carp(4) is not usable yet: ${(e as Error).message}`);
    });
    await this.locked(() => this.readAll(undefined, 'state found at carpd start')).catch((e: unknown) => {
      this.logger.warn({ event: 'freebsd.initial', err: (e as Error).message }, `could not read the vhids at start: ${(e as Error).message}`);
    });
    const path = opts.devdPipe ?? process.env.CARPD_DEVD_PIPE ?? DEFAULT_DEVD_PIPE;
    this.devd = new DevdClient({
      path,
      logger: this.logger,
      minBackoffMs: opts.devdBackoffMs?.min,
      maxBackoffMs: opts.devdBackoffMs?.max,
      onEvent: (ev) => this.onDevdEvent(ev),
      onConnect: () => this.onDevdConnect(),
    });
    this.devd.start();
    this.logger.info(
      { event: 'freebsd.open', osreldate: this.osreldate, carp: this.nlCarp ? 'netlink' : 'ioctl', pfsync: this.pfsync.transport, devd: path },
      `${this.description}; carp via ${this.nlCarp ? 'netlink' : 'ioctl'}, pfsync via ${this.pfsync.transport === 'nv' ? 'nvlist' : 'legacy'} ioctls, devd events from ${path}`,
    );
  }

  capabilities(): Capabilities {
    return {
      unicast: this.nlCarp !== undefined,
      ipv6: true,
      pfsync: this.pfsyncAvailable,
      pfsyncVersions: this.pfsyncVersions(),
      forceState: true,
      // carp(4) of FreeBSD 15 has a VRRP mode, but carpd does not drive it yet: setVhid refuses it.
      vrrpv3: false,
    };
  }

  /** What SET can ask for: the legacy request carries no version, so without NV only the default. */
  private pfsyncVersions(): number[] {
    if (!this.pfsyncAvailable) return [];
    if (this.major >= 14 && this.pfsync.transport === 'legacy') return [defaultPfsyncVersion(this.major)];
    return pfsyncVersionsFor(this.major);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.devd?.close();
    await this.tail.catch(() => undefined);
    for (const fd of [this.inetFd, this.inet6Fd]) {
      if (fd === undefined) continue;
      try {
        this.libc.close(fd);
      } catch { /* nothing to do */ }
    }
    try {
      this.nlSock?.close();
    } catch { /* nothing to do */ }
    this.events.removeAllListeners();
  }

  /** One kernel conversation at a time: reads and state bookkeeping never interleave. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(KernelError.of('EBADF', 'freebsd backend', undefined, 'closed'));
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  // ---- errors ---------------------------------------------------------------------------

  /** A failure in carpd's terms: the operation, then the syscall that failed, with the errno. */
  private fail(e: unknown, operation: string, iface?: string, hints: Partial<Record<ErrnoName, string>> = HINTS): never {
    if (e instanceof KernelError) {
      const inner = e.operation === operation || e.operation.startsWith(`${operation} (`) ? undefined : e.operation;
      const hint = hints[e.errnoName as ErrnoName];
      const why = [hint, e.message.match(/\((.*)\)$/)?.[1]].filter((x, i, a) => x && a.indexOf(x) === i).join('; ');
      throw new KernelError(inner ? `${operation} (${inner})` : operation, e.errno, e.iface ?? iface, why || undefined);
    }
    if (e instanceof RangeError || e instanceof TypeError) throw KernelError.of('EINVAL', operation, iface, e.message);
    throw e;
  }

  private checkIfName(operation: string, iface: string): void {
    const n = Buffer.byteLength(iface);
    if (n === 0 || n >= IFNAMSIZ || iface.includes('\0')) throw KernelError.of('ENXIO', operation, iface, `no such interface (names are 1..${IFNAMSIZ - 1} bytes)`);
  }

  // ---- carp transport -------------------------------------------------------------------

  /** Resolves the carp netlink family (14+). Retried on use while carp.ko is not loaded. */
  private async resolveNetlink(): Promise<void> {
    if (this.nlCarp || !this.nlSock) return;
    this.nlCarp = await NetlinkCarp.open(this.libc, this.nlSock);
  }

  private async carp(operation: string, iface?: string): Promise<CarpTransport> {
    if (!this.nlSock) return this.ioctlCarp;
    try {
      await this.resolveNetlink();
    } catch (e) {
      this.fail(e, operation, iface);
    }
    return this.nlCarp!;
  }

  // ---- state bookkeeping -----------------------------------------------------------------

  /**
   * Records the state the kernel reports. The first sight of a vhid starts its history with
   * `firstReason`; a different state than the last one seen is a change, reported with `reason`.
   */
  private observe(iface: string, vhid: number, state: CarpState, reason: (s: CarpState) => string, firstReason: string, at = new Date()): SeenState {
    const k = keyOf(iface, vhid);
    const cur = this.seen.get(k);
    if (!cur) {
      const e = { state, since: at, reason: firstReason };
      this.seen.set(k, e);
      return e;
    }
    if (cur.state !== state) {
      const previous = cur.state;
      cur.state = state;
      cur.since = at;
      cur.reason = reason(state);
      const change: StateChange = { interface: iface, vhid, state, previous, reason: cur.reason, at };
      for (const l of this.events.listeners('state') as ((c: StateChange) => void)[]) {
        try {
          l(change);
        } catch (e) {
          this.logger.error({ event: 'freebsd.listener', err: String(e) }, `a state-change listener threw: ${String(e)}`);
        }
      }
    }
    return cur;
  }

  private forget(iface: string, vhid?: number): void {
    if (vhid !== undefined) this.seen.delete(keyOf(iface, vhid));
    else for (const k of [...this.seen.keys()]) if (k.slice(0, k.lastIndexOf('/')) === iface) this.seen.delete(k);
  }

  private toLive(iface: string, k: KernelVhid, s: SeenState): LiveVhid {
    return {
      interface: iface,
      vhid: k.vhid,
      advbaseSec: k.advbase,
      advskew: k.advskew,
      key: k.key ? carpKeyText(k.key) : undefined,
      peer: k.peer,
      peer6: k.peer6,
      state: k.state,
      since: s.since,
      reason: s.reason,
      addresses: this.ledger.addresses(iface, k.vhid),
    };
  }

  /**
   * Reads one vhid again after carpd changed something, to attribute a state change to it. Only
   * bookkeeping: the change itself is done, so a failed read is logged, not thrown.
   */
  private async refresh(t: CarpTransport, iface: string, vhid: number, reason: (s: CarpState) => string, firstReason = 'vhid created; waiting for an address'): Promise<void> {
    try {
      const k = await t.get(iface, vhid);
      if (!k) this.forget(iface, vhid);
      else this.observe(iface, vhid, k.state, reason, firstReason);
    } catch (e) {
      this.logger.warn({ event: 'freebsd.refresh', interface: iface, vhid, err: (e as Error).message }, `${iface} vhid ${vhid}: cannot read its state back: ${(e as Error).message}`);
    }
  }

  /**
   * Every vhid of every interface in the ledger, as the kernel has them. Interfaces that no
   * longer exist and vhids the kernel no longer has are dropped from the ledger.
   */
  private async readAll(reason: ((s: CarpState) => string) | undefined, firstReason: string): Promise<LiveVhid[]> {
    const ifaces = this.ledger.interfaces();
    if (ifaces.length === 0) return [];
    const changeReason = reason ?? ((s: CarpState) => `kernel reports ${s} (read by carpd; no devd event seen for it)`);
    const t = await this.carp('list vhids');
    const out: LiveVhid[] = [];
    let pruned = false;
    for (const iface of ifaces) {
      let vhids: KernelVhid[];
      try {
        vhids = await t.list(iface);
      } catch (e) {
        if (isErrno(e, 'ENXIO')) {
          this.logger.info({ event: 'freebsd.interface.gone', interface: iface }, `${iface} no longer exists; its vhids went with it`);
          pruned = this.ledger.dropInterface(iface) || pruned;
          this.forget(iface);
          continue;
        }
        this.fail(e, 'list vhids', iface);
      }
      const present = new Set(vhids.map((v) => v.vhid));
      for (const v of this.ledger.vhidsWithAddresses(iface)) if (!present.has(v)) pruned = this.ledger.dropVhid(iface, v) || pruned;
      for (const k of [...this.seen.keys()]) {
        const slash = k.lastIndexOf('/');
        if (k.slice(0, slash) === iface && !present.has(Number(k.slice(slash + 1)))) this.seen.delete(k);
      }
      for (const k of vhids) out.push(this.toLive(iface, k, this.observe(iface, k.vhid, k.state, changeReason, firstReason)));
    }
    if (pruned) await this.ledger.save('forget vhids the kernel no longer has');
    return out.sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  }

  private onDevdEvent(ev: DevdCarpEvent): void {
    const at = new Date();
    if (this.closing) return;
    if (!this.ledger.hasInterface(ev.iface)) {
      this.logger.debug({ event: 'devd.ignored', line: ev.line }, `devd: ${ev.line} (an interface carpd does not manage)`);
      return;
    }
    this.locked(async () => {
      const t = await this.carp('read vhid after a devd event', ev.iface);
      const k = await t.get(ev.iface, ev.vhid);
      if (!k) {
        this.forget(ev.iface, ev.vhid);
        return;
      }
      const reason = (s: CarpState) => (s === ev.state ? `kernel reported ${s} (devd)` : `kernel reports ${s} (read after a devd event for ${ev.state})`);
      this.observe(ev.iface, ev.vhid, k.state, reason, 'state found when carpd first saw the vhid', at);
    }).catch((e: unknown) => this.logger.warn({ event: 'devd.read.failed', line: ev.line, err: (e as Error).message }, `devd: ${ev.line}: cannot read the vhid: ${(e as Error).message}`));
  }

  private onDevdConnect(): void {
    if (this.closing) return;
    this.locked(() => this.readAll((s) => `kernel reports ${s} (read after connecting to devd; its event may have been missed)`, 'state found when carpd first saw the vhid')).catch((e: unknown) =>
      this.logger.warn({ event: 'devd.resync.failed', err: (e as Error).message }, `could not re-read the vhids after connecting to devd: ${(e as Error).message}`),
    );
  }

  // ---- vhids ------------------------------------------------------------------------------

  listVhids(): Promise<LiveVhid[]> {
    return this.locked(() => this.readAll(undefined, 'state found when carpd first saw the vhid'));
  }

  private validateParams(operation: string, iface: string, vhid: number, p: VhidParams): void {
    const bad = (why: string) => KernelError.of('EINVAL', operation, iface, why);
    // Checked here, not left to the kernel: SIOCSVH and netlink SET create the vhid before
    // they validate advbase/advskew (§12.6).
    const fault = carpParamsFault(vhid, p);
    if (fault) throw bad(fault);
    // The peer's ifconfig ends a passphrase at its first NUL (strlcpy, T10): refuse, never truncate.
    if (p.key?.includes('\0')) throw bad('key contains a NUL byte');
    for (const [name, value, family] of [['peer', p.peer, 4], ['peer6', p.peer6, 6]] as const) {
      if (value === undefined) continue;
      const ip = canonicalIp(value);
      if (ip?.family !== family) throw bad(`${name} ${value} is not an IPv${family} address`);
      if (ip.address === '0.0.0.0' || ip.address === '::') throw bad(`${name} is unspecified; leave it out for multicast`);
    }
  }

  setVhid(iface: string, vhid: number, p: VhidParams): Promise<void> {
    const op = `set vhid ${vhid}`;
    return this.locked(async () => {
      this.checkIfName(op, iface);
      this.validateParams(op, iface, vhid, p);
      if (p.protocol === 'vrrpv3') {
        throw KernelError.of('EOPNOTSUPP', op, iface, `carpd does not drive the VRRP mode of carp(4) yet (FreeBSD ${this.major}); use protocol carp`);
      }
      const t = await this.carp(op, iface);
      if (t.kind === 'ioctl' && (p.peer !== undefined || p.peer6 !== undefined)) {
        throw KernelError.of('EOPNOTSUPP', op, iface, `unicast peers need the carp netlink family of FreeBSD 14 or later; this is FreeBSD ${this.major}${this.nlSock ? '' : ' without netlink'}`);
      }
      const cur = await this.kernelVhid(t, op, iface, vhid);
      if (this.ledger.addInterface(iface)) await this.ledger.save(op);
      const set: CarpSet = {
        iface,
        vhid,
        advbase: p.advbaseSec,
        advskew: p.advskew,
        ...(p.key !== undefined ? { key: p.key } : {}),
        ...(p.peer !== undefined ? { peer: p.peer } : {}),
        ...(p.peer6 !== undefined ? { peer6: p.peer6 } : {}),
        ...this.vrrpAttrs(t, cur),
      };
      if (cur?.key && cur.key[0] !== 0 && p.key === undefined) {
        await this.recreateWithoutKey(t, op, set);
        return;
      }
      try {
        await t.set(set);
      } catch (e) {
        if (!cur) await this.destroyIfPresent(t, iface, vhid).catch(() => undefined);
        this.fail(e, op, iface);
      }
      await this.refresh(t, iface, vhid, (s) => `kernel reports ${s} after the vhid's parameters were set`, cur ? 'state found when carpd first saw the vhid' : undefined);
    });
  }

  /** 15.0: the VRRP attributes are zero-filled like the others (T11): send back what GET returned. */
  /** The kernel's view of one vhid (undefined when absent); failures become the operation's KernelError. */
  private async kernelVhid(t: CarpTransport, op: string, iface: string, vhid: number): Promise<KernelVhid | undefined> {
    try {
      return await t.get(iface, vhid);
    } catch (e) {
      return this.fail(e, op, iface);
    }
  }

  private vrrpAttrs(t: CarpTransport, cur: KernelVhid | undefined): Pick<CarpSet, 'version' | 'vrrpPriority' | 'vrrpAdvInterCs'> {
    if (t.kind !== 'netlink' || this.major < 15) return {};
    if (!cur) return { version: CARP_VERSION_CARP };
    return {
      ...(cur.version !== undefined ? { version: cur.version } : { version: CARP_VERSION_CARP }),
      ...(cur.vrrpPriority !== undefined ? { vrrpPriority: cur.vrrpPriority } : {}),
      ...(cur.vrrpAdvInterCs !== undefined ? { vrrpAdvInterCs: cur.vrrpAdvInterCs } : {}),
    };
  }

  /** See "Clearing a key" at the top of this file. */
  private async recreateWithoutKey(t: CarpTransport, op: string, set: CarpSet): Promise<void> {
    const { iface, vhid } = set;
    const addresses = this.ledger.addresses(iface, vhid);
    this.logger.info({ event: 'freebsd.vhid.recreate', interface: iface, vhid, addresses }, `${iface} vhid ${vhid}: carp(4) cannot clear a key in place; recreating the vhid without one`);
    await this.destroyVhid(t, op, iface, vhid);
    try {
      await t.set(set);
    } catch (e) {
      this.fail(e, op, iface);
    }
    for (const a of addresses) await this.bind(op, iface, vhid, parseCidr(a)!);
    await this.refresh(t, iface, vhid, (s) => `kernel reports ${s} after the vhid was recreated without a key`, 'vhid recreated without a key');
  }

  removeVhid(iface: string, vhid: number): Promise<void> {
    const op = `remove vhid ${vhid}`;
    return this.locked(async () => {
      this.checkIfName(op, iface);
      const t = await this.carp(op, iface);
      const cur = await this.kernelVhid(t, op, iface, vhid);
      if (!cur) throw KernelError.of('ENOENT', op, iface, 'no such vhid');
      await this.destroyVhid(t, op, iface, vhid);
    });
  }

  /** Removes every address carpd bound to the vhid, then the vhid itself (see "Destroying a vhid"). */
  private async destroyVhid(t: CarpTransport, op: string, iface: string, vhid: number): Promise<void> {
    for (const a of this.ledger.addresses(iface, vhid)) await this.unbind(op, iface, vhid, parseCidr(a)!);
    await this.destroyIfPresent(t, iface, vhid, op);
    this.forget(iface, vhid);
  }

  private async destroyIfPresent(t: CarpTransport, iface: string, vhid: number, op = `remove vhid ${vhid}`): Promise<void> {
    const exists = async () => {
      try {
        return (await t.get(iface, vhid)) !== undefined;
      } catch (e) {
        return this.fail(e, op, iface);
      }
    };
    if (!(await exists())) return;
    // The same placeholder for a vhid every time: one left behind by a crash is reused, not added to.
    let host = vhid;
    for (let tries = 0; this.ledger.holder(iface, `${PLACEHOLDER_NET}${host}/32`); tries++) {
      if (tries >= 254) throw KernelError.of('EBUSY', op, iface, `every placeholder address in ${PLACEHOLDER_NET}0/24 is bound on ${iface}`);
      host = (host % 254) + 1;
    }
    const placeholder: Cidr = { family: 4, address: `${PLACEHOLDER_NET}${host}`, prefix: 32 };
    const pop = `${op}: bind and remove the placeholder ${placeholder.address}/32`;
    try {
      this.kernelAdd(iface, vhid, placeholder);
      this.kernelDel(iface, placeholder);
    } catch (e) {
      this.fail(e, pop, iface);
    }
    if (await exists()) {
      throw KernelError.of('EBUSY', op, iface, `vhid ${vhid} still has addresses carpd did not bind; remove them with ifconfig ${iface} inet ADDRESS -alias`);
    }
  }

  // ---- addresses ----------------------------------------------------------------------------

  private inet6(): number {
    this.inet6Fd ??= this.libc.socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return this.inet6Fd;
  }

  private scopeOf(iface: string, c: Cidr): number | undefined {
    // KAME-style link-local addresses name their interface in sin6_scope_id.
    return c.family === 6 && /^fe[89ab]/i.test(c.address) ? this.libc.ifNameToIndex(iface) : undefined;
  }

  /** SIOCAIFADDR / SIOCAIFADDR_IN6 with ifra_vhid, always with a mask (§4, T3, T7). */
  private kernelAdd(iface: string, vhid: number, c: Cidr): void {
    if (c.family === 4) {
      this.libc.ioctl(this.inetFd, SIOCAIFADDR, inAliasreqBytes({ name: iface, address: c.address, prefix: c.prefix, vhid }), iface);
    } else {
      const scopeId = this.scopeOf(iface, c);
      this.libc.ioctl(this.inet6(), SIOCAIFADDR_IN6, in6AliasreqBytes({ name: iface, address: c.address, prefix: c.prefix, vhid, ...(scopeId ? { scopeId } : {}) }), iface);
    }
  }

  /** SIOCDIFADDR / SIOCDIFADDR_IN6; the sockaddr carries its length byte (T1). */
  private kernelDel(iface: string, c: Cidr): void {
    if (c.family === 4) {
      this.libc.ioctl(this.inetFd, SIOCDIFADDR, ifreqBytes({ name: iface, addr: c.address }), iface);
    } else {
      const scopeId = this.scopeOf(iface, c);
      this.libc.ioctl(this.inet6(), SIOCDIFADDR_IN6, in6IfreqBytes({ name: iface, address: c.address, ...(scopeId ? { scopeId } : {}) }), iface);
    }
  }

  private static readonly ADD_HINTS: Partial<Record<ErrnoName, string>> = {
    ...HINTS,
    ENOPROTOOPT: 'the interface has no vhid at all; set the vhid before its addresses',
    ENOENT: 'that vhid does not exist on the interface (other vhids do); set it first',
    EADDRNOTAVAIL: 'the address cannot be assigned here',
    EINVAL: 'the kernel refused the address or its prefix length',
  };

  /** Ledger first, then the kernel; the ledger entry is taken back if the kernel refuses. */
  private async bind(op: string, iface: string, vhid: number, c: Cidr): Promise<void> {
    const cidr = formatCidr(c);
    const known = this.ledger.holder(iface, cidr) !== undefined;
    this.ledger.addAddress(iface, vhid, cidr);
    await this.ledger.save(op);
    try {
      this.kernelAdd(iface, vhid, c);
    } catch (e) {
      // in6_control keeps a new IPv6 address whose carp attach failed, without a vhid: remove it.
      if (c.family === 6 && !known) {
        try {
          this.kernelDel(iface, c);
        } catch { /* it was not added */ }
      }
      this.ledger.removeAddress(iface, vhid, cidr);
      await this.ledger.save(op).catch((w: unknown) => this.logger.error({ event: 'freebsd.ledger', err: String(w) }, String(w)));
      this.fail(e, op, iface, FreebsdBackend.ADD_HINTS);
    }
  }

  /** Ledger first, then the kernel; an address the kernel no longer has counts as removed. */
  private async unbind(op: string, iface: string, vhid: number, c: Cidr): Promise<void> {
    const cidr = formatCidr(c);
    const prev = this.ledger.holder(iface, cidr);
    this.ledger.removeAddress(iface, vhid, cidr);
    await this.ledger.save(op);
    try {
      this.kernelDel(iface, c);
    } catch (e) {
      if (isErrno(e, 'EADDRNOTAVAIL')) return;
      if (prev) this.ledger.addAddress(iface, prev.vhid, prev.cidr);
      await this.ledger.save(op).catch((w: unknown) => this.logger.error({ event: 'freebsd.ledger', err: String(w) }, String(w)));
      this.fail(e, op, iface, { ...HINTS, EADDRNOTAVAIL: 'the address is not on the interface' });
    }
  }

  addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `add address ${cidr} to vhid ${vhid}`;
    return this.locked(async () => {
      this.checkIfName(op, iface);
      const c = parseCidr(cidr);
      if (!c) throw KernelError.of('EINVAL', op, iface, 'not an address with a prefix');
      const canonical = formatCidr(c);
      const t = await this.carp(op, iface);
      const held = this.ledger.holder(iface, canonical);
      // §12.2: the kernel does not refuse a duplicate, it deletes and re-adds the address,
      // which restarts the vhid (INIT, then BACKUP). Already bound as asked: nothing to do.
      if (held?.vhid === vhid && held.cidr === canonical) return;
      if (held && held.vhid !== vhid) {
        // The address moves: off its old vhid first (which goes away if it was its last).
        await this.unbind(op, iface, held.vhid, parseCidr(held.cidr)!);
        await this.refresh(t, iface, held.vhid, (s) => `kernel reports ${s} after ${held.cidr} moved to vhid ${vhid}`);
      } else if (held && c.family === 6) {
        // A new prefix length: IPv6 cannot change it in place (IPv4's SIOCAIFADDR can).
        await this.rebindIpv6(t, op, iface, vhid, held.cidr);
      }
      await this.bind(op, iface, vhid, c);
      await this.refresh(t, iface, vhid, (s) => `address ${canonical} bound; kernel reports ${s}`);
    });
  }

  /** Removes an IPv6 address to re-add it with another prefix, recreating the vhid if that emptied it. */
  private async rebindIpv6(t: CarpTransport, op: string, iface: string, vhid: number, old: string): Promise<void> {
    const cur = await this.kernelVhid(t, op, iface, vhid);
    await this.unbind(op, iface, vhid, parseCidr(old)!);
    if (!cur || (await t.get(iface, vhid))) return;
    const key = cur.key ? carpKeyText(cur.key) : undefined;
    try {
      await t.set({
        iface,
        vhid,
        advbase: cur.advbase,
        advskew: cur.advskew,
        ...(key !== undefined ? { key } : {}),
        ...(cur.peer ? { peer: cur.peer } : {}),
        ...(cur.peer6 ? { peer6: cur.peer6 } : {}),
        ...this.vrrpAttrs(t, cur),
      });
    } catch (e) {
      this.fail(e, op, iface);
    }
  }

  removeAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    const op = `remove address ${cidr} from vhid ${vhid}`;
    return this.locked(async () => {
      this.checkIfName(op, iface);
      const c = parseCidr(cidr);
      const held = c ? this.ledger.holder(iface, formatCidr(c)) : undefined;
      // Only what carpd bound: SIOCDIFADDR does not look at vhids and would delete any address.
      if (!c || !held || held.vhid !== vhid) throw KernelError.of('EADDRNOTAVAIL', op, iface, 'the address is not on that vhid');
      const t = await this.carp(op, iface);
      await this.unbind(op, iface, vhid, c);
      await this.refresh(t, iface, vhid, (s) => `address ${held.cidr} removed; kernel reports ${s}`);
    });
  }

  forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    const op = `force vhid ${vhid} to ${state}`;
    return this.locked(async () => {
      this.checkIfName(op, iface);
      const t = await this.carp(op, iface);
      const cur = await this.kernelVhid(t, op, iface, vhid);
      if (!cur) throw KernelError.of('ENOENT', op, iface, 'no such vhid');
      // A transition devd has not told about yet is recorded first, so "forced" names only the force.
      this.observe(iface, vhid, cur.state, (s) => `kernel reports ${s} (read by carpd; no devd event seen for it)`, 'state found when carpd first saw the vhid');
      if (cur.state === 'INIT') return; // carp(4) forces only a running vhid (§3.2)
      try {
        // Netlink zero-fills what is left out (T11): send the current parameters back with STATE.
        await t.set({
          iface,
          vhid,
          advbase: cur.advbase,
          advskew: cur.advskew,
          forceState: state,
          ...(cur.peer ? { peer: cur.peer } : {}),
          ...(cur.peer6 ? { peer6: cur.peer6 } : {}),
          ...this.vrrpAttrs(t, cur),
        });
      } catch (e) {
        this.fail(e, op, iface);
      }
      await this.refresh(t, iface, vhid, (s) => (s === state ? `forced to ${state} by the administrator` : `kernel reports ${s} after being forced to ${state}`));
    });
  }

  // ---- globals -------------------------------------------------------------------------------

  getCarpGlobals(): Promise<CarpGlobals & { demotion: number }> {
    return this.locked(async () => {
      try {
        return carpSysctl(
          () => ({
            allow: readInt(this.libc, 'net.inet.carp.allow') !== 0,
            preempt: readInt(this.libc, 'net.inet.carp.preempt') !== 0,
            demotion: readInt(this.libc, 'net.inet.carp.demotion'),
          }),
          'read net.inet.carp',
        );
      } catch (e) {
        return this.fail(e, 'read net.inet.carp');
      }
    });
  }

  setCarpGlobals(g: CarpGlobals): Promise<void> {
    return this.locked(async () => {
      try {
        carpSysctl(() => {
          writeInt(this.libc, 'net.inet.carp.allow', g.allow ? 1 : 0);
          writeInt(this.libc, 'net.inet.carp.preempt', g.preempt ? 1 : 0);
        }, 'write net.inet.carp');
      } catch (e) {
        this.fail(e, 'write net.inet.carp');
      }
      // allow=0 pushes every vhid to INIT and allow=1 restarts them: report that as its cause.
      await this.readAll((s) => `net.inet.carp.allow set to ${g.allow ? 1 : 0}; kernel reports ${s}`, 'state found when carpd first saw the vhid').catch((e: unknown) =>
        this.logger.warn({ event: 'freebsd.refresh', err: (e as Error).message }, `cannot read the vhids back after setting net.inet.carp: ${(e as Error).message}`),
      );
    });
  }

  getMaintenance(): Promise<boolean> {
    return this.locked(async () => {
      try {
        return await this.maintenance.get();
      } catch (e) {
        return this.fail(e, 'read the maintenance demotion');
      }
    });
  }

  setMaintenance(on: boolean): Promise<void> {
    const op = on ? 'enter maintenance (net.inet.carp.demotion +240)' : 'leave maintenance (net.inet.carp.demotion -240)';
    return this.locked(async () => {
      try {
        await this.maintenance.set(on);
      } catch (e) {
        this.fail(e, op);
      }
    });
  }

  // ---- pfsync -----------------------------------------------------------------------------

  getPfsync(): Promise<PfsyncLive> {
    return this.locked(async () => {
      let live: PfsyncLive | undefined;
      try {
        live = this.pfsync.get();
      } catch (e) {
        this.fail(e, 'read pfsync0', PFSYNC_IF, { EPERM: HINTS.EPERM });
      }
      this.pfsyncAvailable = live !== undefined;
      // No pfsync0 (pfsync.ko not loaded): nothing is synchronised, which is "detached".
      return live ?? { maxupd: 128, defer: false, version: defaultPfsyncVersion(this.major), running: false, bulkUpdateDone: false };
    });
  }

  setPfsync(s: PfsyncSettings): Promise<void> {
    const op = 'configure pfsync0';
    return this.locked(async () => {
      const bad = (why: string) => KernelError.of('EINVAL', op, PFSYNC_IF, why);
      const fault = pfsyncParamsFault(s);
      if (fault) throw bad(fault);
      const supported = this.major >= 14 && this.pfsync.transport === 'legacy' ? [defaultPfsyncVersion(this.major)] : pfsyncVersionsFor(this.major);
      if (s.syncdev !== undefined) {
        this.checkIfName(op, s.syncdev);
        if (!supported.includes(s.version)) throw bad(`pfsync version ${s.version} needs a newer FreeBSD; FreeBSD ${this.major} speaks ${supported.join(', ')}`);
      }
      if (s.syncpeer !== undefined && !canonicalIp(s.syncpeer)) throw bad(`syncpeer ${s.syncpeer} is not an address`);
      // Detaching: the version is inert; send one the kernel accepts (0 = its default).
      const version = supported.includes(s.version) ? s.version : 0;
      try {
        this.pfsync.set(s, version);
      } catch (e) {
        if (isErrno(e, 'ENXIO') && s.syncdev === undefined) return; // no pfsync0: already detached
        this.fail(e, op, PFSYNC_IF, {
          EPERM: HINTS.EPERM,
          ENXIO: 'pfsync(4) is not loaded: kldload pfsync, or pfsync_load="YES" in /boot/loader.conf',
          EINVAL: s.syncdev !== undefined ? `the kernel refused the settings (does ${s.syncdev} exist?)` : 'the kernel refused the settings',
        });
      }
      this.pfsyncAvailable = true;
    });
  }

  // ---- statistics ---------------------------------------------------------------------------

  /**
   * net.inet.carp.{stats,log,*_demotion_factor} and net.pfsync.{stats,carp_demotion_factor}
   * (§3.3, §5.5). carp.ko missing fails the read (EPROTONOSUPPORT); pfsync.ko missing only
   * leaves its part out.
   */
  stats(): Promise<KernelStats> {
    return this.locked(async () => {
      const libc = this.libc;
      let carp: KernelStats['carp'];
      let sysctls: KernelStats['sysctls'];
      try {
        carp = toNumbers(carpSysctl(() => decodeCarpstats(readOpaque(libc, 'net.inet.carp.stats')), 'read net.inet.carp.stats'));
        sysctls = { carpLog: carpSysctl(() => readInt(libc, 'net.inet.carp.log'), 'read net.inet.carp.log') };
        const senderr = ifPresent(() => readInt(libc, 'net.inet.carp.senderr_demotion_factor'));
        const ifdown = ifPresent(() => readInt(libc, 'net.inet.carp.ifdown_demotion_factor'));
        if (senderr !== undefined) sysctls.senderrDemotionFactor = senderr;
        if (ifdown !== undefined) sysctls.ifdownDemotionFactor = ifdown;
      } catch (e) {
        return this.fail(e, 'read the CARP statistics');
      }
      let pfsync: KernelStats['pfsync'];
      try {
        const raw = ifPresent(() => readOpaque(libc, 'net.pfsync.stats'));
        if (raw) {
          const d = decodePfsyncstats(raw);
          pfsync = { counters: toNumbers(d.counters), actMax: d.actMax };
        }
        const factor = ifPresent(() => readInt(libc, 'net.pfsync.carp_demotion_factor'));
        if (factor !== undefined) sysctls.pfsyncCarpDemotionFactor = factor;
      } catch (e) {
        return this.fail(e, 'read the pfsync statistics');
      }
      return pfsync ? { carp, pfsync, sysctls } : { carp, sysctls };
    });
  }

  onStateChange(listener: (c: StateChange) => void): () => void {
    this.events.on('state', listener);
    return () => this.events.off('state', listener);
  }
}

// ---- sysctl helpers ----------------------------------------------------------------------------

function readInt(libc: Libc, name: string): number {
  const b = Buffer.alloc(4);
  libc.sysctlbyname(name, b, null, null);
  return b.readInt32LE(0);
}

function writeInt(libc: Libc, name: string, v: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v);
  libc.sysctlbyname(name, null, null, b);
}

/**
 * An opaque sysctl read whole: its size is asked first (oldp NULL) and the value is the bytes
 * the kernel returned, so a struct that grew between releases (pfsyncstats, T15) is neither
 * truncated (ENOMEM) nor padded with zeros that look like counters.
 */
function readOpaque(libc: Libc, name: string): Buffer {
  const size = libc.sysctlbyname(name, null, 0, null);
  const buf = Buffer.alloc(size);
  return buf.subarray(0, libc.sysctlbyname(name, buf, null, null));
}

/** The value, or undefined when the OID does not exist (its module is not loaded). */
function ifPresent<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/**
 * u64 counters as numbers: exact below 2^53 (285 years at a million increments a second),
 * rounded above, which a report can live with and JSON cannot carry otherwise.
 */
function toNumbers<K extends string>(counters: Record<K, bigint>): Record<K, number> {
  return Object.fromEntries(Object.entries<bigint>(counters).map(([k, v]) => [k, Number(v)])) as Record<K, number>;
}

/** kern.boottime: struct timeval {time_t tv_sec; suseconds_t tv_usec}, 16 bytes on LP64. */
function readBoottime(libc: Libc): { sec: number; usec: number } {
  const b = Buffer.alloc(16);
  libc.sysctlbyname('kern.boottime', b, null, null);
  return { sec: Number(b.readBigInt64LE(0)), usec: Number(b.readBigInt64LE(8)) };
}

/** net.inet.carp.* exists only while carp.ko is loaded: ENOENT there means EPROTONOSUPPORT. */
function carpSysctl<T>(fn: () => T, operation: string): T {
  try {
    return fn();
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw new KernelError(operation, FREEBSD_ERRNO.EPROTONOSUPPORT, undefined, (e as KernelError).operation);
    throw e;
  }
}
