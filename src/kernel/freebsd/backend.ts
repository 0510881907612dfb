/**
 * The FreeBSD backend: carp(4) and pfsync(4) driven in-process through libc over koffi (ioctl,
 * sysctl, generic netlink), without forking ifconfig (freebsd-kernel-abi.md throughout). This
 * file holds the parts together and keeps one kernel conversation at a time; the parts are
 *
 *  open.ts       which FreeBSD this is (kern.osreldate) and the sockets and files to use
 *  carp.ts       the two carp(4) transports (netlink on 14+, ioctl) and the choice between them
 *  vhids.ts      vhids set, recreated without a key, destroyed, forced to a state
 *  addresses.ts  VIP addresses bound and unbound, in step with the ledger (ledger.ts)
 *  tracker.ts    what carpd saw of each vhid's state (since when, why) and reading them all
 *  batch.ts      many changes at once: read once, written together, the ledger written once
 *  settings.ts   net.inet.carp.* globals, maintenance demotion, pfsync0, statistics
 *  pf.ts         pf's status on /dev/pf (state count and state-table counters)
 *  devd.ts       devd's CARP notifications
 *
 * Events. devd's CARP notifications are hints: each one makes the backend read that vhid again,
 * and every (re)connection re-reads all of them, so a dropped event only delays a report.
 */
import pino, { type Logger } from 'pino';
import type {
  BackendStep,
  CarpGlobals,
  CarpState,
  Capabilities,
  KernelBackend,
  KernelStats,
  LiveVhid,
  PfStatus,
  PfsyncLive,
  PfsyncSettings,
  StateChange,
  VhidParams,
} from '../backend.js';
import { checkedDemotion } from '../backend.js';
import { KernelError } from '../errno.js';
import { carpVirtualMac, formatMac } from '../../wire/mac.js';
import { AddressBinder, AddressControl } from './addresses.js';
import { FreebsdBatch } from './batch.js';
import { CarpChannel } from './carp.js';
import { DEFAULT_DEVD_PIPE, type DevdCarpEvent, DevdClient } from './devd.js';
import { IFF_RUNNING, IFF_UP, SIOCGIFFLAGS, decodeIfreqFlags, ifreqBytes, type AbiVersion } from './layout.js';
import type { Libc } from './libc.js';
import { closeAll, openKernel, type OpenKernel } from './open.js';
import { KernelSettings } from './settings.js';
import { FIRST_SEEN, StateTracker } from './tracker.js';
import { VhidControl } from './vhids.js';

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

export class FreebsdBackend implements KernelBackend {
  readonly name = 'freebsd' as const;
  readonly description: string;
  readonly osreldate: number;
  readonly major: AbiVersion;
  private readonly carp: CarpChannel;
  private readonly tracker: StateTracker;
  private readonly binder: AddressBinder;
  private readonly vhids: VhidControl;
  private readonly addresses: AddressControl;
  private readonly settings: KernelSettings;
  private devd?: DevdClient;
  private tail: Promise<unknown> = Promise.resolve();
  private closing = false;

  private constructor(
    private readonly k: OpenKernel,
    private readonly logger: Logger,
  ) {
    this.osreldate = k.osreldate;
    this.major = k.major;
    this.carp = new CarpChannel(k.libc, k.inetFd, k.major, k.nlSock);
    this.tracker = new StateTracker(k.ledger, logger);
    this.binder = new AddressBinder(k.libc, k.inetFd, k.ledger, logger);
    this.vhids = new VhidControl(this.carp, this.binder, k.ledger, this.tracker, logger);
    this.addresses = new AddressControl(this.carp, this.binder, k.ledger, this.tracker);
    this.settings = new KernelSettings(k.libc, k.major, k.pfsync, k.maintenance);
    const via = k.nlSock ? 'ioctl/sysctl/netlink' : 'ioctl/sysctl';
    this.description = `FreeBSD ${k.major} kernel (osreldate ${k.osreldate}) via ${via} (koffi)`;
  }

  static async open(opts: FreebsdBackendOptions): Promise<FreebsdBackend> {
    const logger = opts.logger ?? pino({ level: 'silent' });
    const k = await openKernel(opts, logger);
    try {
      const b = new FreebsdBackend(k, logger);
      await b.start(opts);
      return b;
    } catch (e) {
      closeAll(k.libc, [k.inetFd, k.nlSock?.fd]);
      throw e;
    }
  }

  private async start(opts: FreebsdBackendOptions): Promise<void> {
    await this.carp.resolve().catch((e: unknown) => {
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
    const carpVia = this.carp.netlink ? 'netlink' : 'ioctl';
    const pfsyncVia = this.k.pfsync.transport;
    this.logger.info(
      { event: 'freebsd.open', osreldate: this.osreldate, carp: carpVia, pfsync: pfsyncVia, devd: path },
      `${this.description}; carp via ${carpVia}, pfsync via ${pfsyncVia === 'nv' ? 'nvlist' : 'legacy'} ioctls, devd events from ${path}`,
    );
  }

  capabilities(): Capabilities {
    return {
      unicast: this.carp.netlink,
      ipv6: true,
      pfsync: this.settings.pfsyncAvailable,
      pfsyncVersions: this.settings.pfsyncVersions(),
      forceState: true,
      // carp(4) of FreeBSD 15 has a VRRP mode, but carpd does not drive it yet: setVhid refuses it.
      vrrpv3: false,
      // carp(4)'s own behaviour, the only one it has.
      macModes: ['virtual'],
    };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.devd?.close();
    await this.tail.catch(() => undefined);
    closeAll(this.k.libc, [this.k.inetFd]);
    this.k.pf.close();
    this.binder.close();
    try {
      this.carp.close();
    } catch { /* nothing to do */ }
    this.tracker.close();
    await this.k.ledger.close();
  }

  /** One kernel conversation at a time: reads and state bookkeeping never interleave. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(KernelError.of('EBADF', 'freebsd backend', undefined, 'closed'));
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private readAll(reason: ((s: CarpState) => string) | undefined, firstReason: string): Promise<LiveVhid[]> {
    return this.tracker.readAll((op) => this.carp.get(op), reason, firstReason);
  }

  // ---- devd --------------------------------------------------------------------------------

  private onDevdEvent(ev: DevdCarpEvent): void {
    const at = new Date();
    if (this.closing) return;
    if (!this.k.ledger.hasInterface(ev.iface)) {
      this.logger.debug({ event: 'devd.ignored', line: ev.line }, `devd: ${ev.line} (an interface carpd does not manage)`);
      return;
    }
    this.locked(async () => {
      const t = await this.carp.get('read vhid after a devd event', ev.iface);
      const k = await t.get(ev.iface, ev.vhid);
      if (!k) {
        this.tracker.forget(ev.iface, ev.vhid);
        return;
      }
      const reason = (s: CarpState) => (s === ev.state ? `kernel reported ${s} (devd)` : `kernel reports ${s} (read after a devd event for ${ev.state})`);
      this.tracker.observe(ev.iface, ev.vhid, k.state, reason, FIRST_SEEN, at);
    }).catch((e: unknown) => this.logger.warn({ event: 'devd.read.failed', line: ev.line, err: (e as Error).message }, `devd: ${ev.line}: cannot read the vhid: ${(e as Error).message}`));
  }

  private onDevdConnect(): void {
    if (this.closing) return;
    this.locked(() => this.readAll((s) => `kernel reports ${s} (read after connecting to devd; its event may have been missed)`, FIRST_SEEN)).catch((e: unknown) =>
      this.logger.warn({ event: 'devd.resync.failed', err: (e as Error).message }, `could not re-read the vhids after connecting to devd: ${(e as Error).message}`),
    );
  }

  // ---- the contract (kernel/backend.ts) -------------------------------------------------------

  /**
   * carp(4) always answers with the virtual MAC 00:00:5e:00:01:<vhid>: every vhid shows it, and
   * a vhid set with macMode `virtual` (which changes nothing in the kernel) reports it back, as
   * the planner compares it (remembered in memory: after a restart the next reconcile sets it again).
   */
  async listVhids(): Promise<LiveVhid[]> {
    const all = await this.locked(() => this.readAll(undefined, FIRST_SEEN));
    return all.map((v) => ({
      ...v,
      ...(this.virtualAsked.has(`${v.interface}/${v.vhid}`) ? { macMode: 'virtual' as const } : {}),
      mac: formatMac(carpVirtualMac(v.vhid)),
      virtualMac: true,
    }));
  }

  setVhid(iface: string, vhid: number, p: VhidParams): Promise<void> {
    return this.locked(() => this.vhids.set(iface, vhid, p)).then(() => this.noteMacMode(iface, vhid, p));
  }

  removeVhid(iface: string, vhid: number): Promise<void> {
    return this.locked(() => this.vhids.remove(iface, vhid)).then(() => void this.virtualAsked.delete(`${iface}/${vhid}`));
  }

  /** The vhids set with macMode `virtual` (listVhids). */
  private readonly virtualAsked = new Set<string>();

  private noteMacMode(iface: string, vhid: number, p: VhidParams): void {
    if (p.macMode === 'virtual') this.virtualAsked.add(`${iface}/${vhid}`);
    else this.virtualAsked.delete(`${iface}/${vhid}`);
  }

  forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    return this.locked(() => this.vhids.force(iface, vhid, state));
  }

  addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    return this.locked(() => this.addresses.add(iface, vhid, cidr));
  }

  removeAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    return this.locked(() => this.addresses.remove(iface, vhid, cidr));
  }

  getCarpGlobals(): Promise<CarpGlobals & { demotion: number }> {
    return this.locked(async () => this.settings.getCarpGlobals());
  }

  setCarpGlobals(g: CarpGlobals): Promise<void> {
    return this.locked(async () => {
      this.settings.setCarpGlobals(g);
      // allow=0 pushes every vhid to INIT and allow=1 restarts them: report that as its cause.
      await this.readAll((s) => `net.inet.carp.allow set to ${g.allow ? 1 : 0}; kernel reports ${s}`, FIRST_SEEN).catch((e: unknown) =>
        this.logger.warn({ event: 'freebsd.refresh', err: (e as Error).message }, `cannot read the vhids back after setting net.inet.carp: ${(e as Error).message}`),
      );
    });
  }

  getMaintenance(): Promise<boolean> {
    return this.locked(() => this.settings.getMaintenance());
  }

  setMaintenance(on: boolean): Promise<void> {
    return this.locked(() => this.settings.setMaintenance(on));
  }

  demotions(): Promise<Map<string, number>> {
    return this.locked(() => this.settings.demotions());
  }

  /** Recorded crash-safely beside maintenance (maintenance.ts): the sum moves by exactly the difference. */
  async setDemotion(name: string, amount: number): Promise<void> {
    checkedDemotion(name, amount);
    return this.locked(() => this.settings.setDemotion(name, amount));
  }

  /** SIOCGIFFLAGS on the interface: up when IFF_UP and IFF_RUNNING (ENXIO when it does not exist). */
  linkUp(iface: string): Promise<boolean> {
    return this.locked(async () => {
      const ifr = ifreqBytes({ name: iface, flags: 0 });
      this.k.libc.ioctl(this.k.inetFd, SIOCGIFFLAGS, ifr, iface);
      const flags = decodeIfreqFlags(ifr, 0);
      return (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0;
    });
  }

  getPfsync(): Promise<PfsyncLive> {
    return this.locked(async () => this.settings.getPfsync());
  }

  setPfsync(s: PfsyncSettings): Promise<void> {
    return this.locked(async () => this.settings.setPfsync(s));
  }

  stats(): Promise<KernelStats> {
    return this.locked(async () => this.settings.stats());
  }

  /** pf's status (pf.ts) and pfsync's bulk update, read under the lock; null without /dev/pf. */
  pfStatus(): Promise<PfStatus | null> {
    return this.locked(async () => {
      const pf = this.k.pf.read();
      if (!pf) return null;
      const pfsync = this.k.pfsync.get();
      return { ...pf, pfsyncBulkUpdateDone: pfsync?.running ? pfsync.bulkUpdateDone : null };
    });
  }

  /** One batch under the lock: read once, vhid SETs in one netlink send, ioctls back to back, the ledger written once (batch.ts). */
  apply(steps: readonly BackendStep[]): Promise<void> {
    if (steps.length === 0) return Promise.resolve();
    return this.locked(() =>
      new FreebsdBatch({ carp: this.carp, binder: this.binder, ledger: this.k.ledger, tracker: this.tracker, settings: this.settings, logger: this.logger }, steps).run(),
    ).then(() => {
      for (const s of steps) {
        if (s.op === 'vhid.set') this.noteMacMode(s.interface, s.vhid, s.params);
        else if (s.op === 'vhid.remove') this.virtualAsked.delete(`${s.interface}/${s.vhid}`);
      }
    });
  }

  onStateChange(listener: (c: StateChange) => void): () => void {
    return this.tracker.onStateChange(listener);
  }
}
