/**
 * The node-wide settings and counters: net.inet.carp.{allow,preempt,demotion} (§3.3), carpd's
 * maintenance demotion (maintenance.ts), pfsync0 (pfsync.ts, §5) and the statistics sysctls
 * (§3.3, §5.5). freebsd-kernel-abi.md throughout.
 */
import { canonicalIp } from '../../wire/address.js';
import { pfsyncParamsFault } from '../../wire/limits.js';
import type { CarpGlobals, KernelStats, PfsyncLive, PfsyncSettings } from '../backend.js';
import { KernelError } from '../errno.js';
import { HINTS, checkIfName, fail, isErrno } from './failure.js';
import type { AbiVersion } from './layout.js';
import { decodeCarpstats, decodePfsyncstats } from './layout-pfsync.js';
import type { Libc } from './libc.js';
import type { Maintenance } from './maintenance.js';
import { PFSYNC_IF, type PfsyncControl, defaultPfsyncVersion, pfsyncVersionsFor } from './pfsync.js';
import { carpSysctl, ifPresent, readInt, readOpaque, writeInt } from './sysctl.js';

/**
 * u64 counters as numbers: exact below 2^53 (285 years at a million increments a second),
 * rounded above, which a report can live with and JSON cannot carry otherwise.
 */
function toNumbers<K extends string>(counters: Record<K, bigint>): Record<K, number> {
  return Object.fromEntries(Object.entries<bigint>(counters).map(([k, v]) => [k, Number(v)])) as Record<K, number>;
}

export class KernelSettings {
  private pfsyncLoaded: boolean;

  constructor(
    private readonly libc: Libc,
    private readonly major: AbiVersion,
    private readonly pfsync: PfsyncControl,
    private readonly maintenance: Maintenance,
  ) {
    this.pfsyncLoaded = pfsync.available();
  }

  /** pfsync0 exists (pfsync.ko is loaded), as last seen. */
  get pfsyncAvailable(): boolean {
    return this.pfsyncLoaded;
  }

  /** What SET can ask for: the legacy request carries no version, so without NV only the default. */
  pfsyncVersions(): number[] {
    if (!this.pfsyncLoaded) return [];
    return this.settableVersions();
  }

  private settableVersions(): number[] {
    return this.major >= 14 && this.pfsync.transport === 'legacy' ? [defaultPfsyncVersion(this.major)] : pfsyncVersionsFor(this.major);
  }

  getCarpGlobals(): CarpGlobals & { demotion: number } {
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
      return fail(e, 'read net.inet.carp');
    }
  }

  /** Writes the sysctls only; the vhids' states that follow are the backend's to read. */
  setCarpGlobals(g: CarpGlobals): void {
    try {
      carpSysctl(() => {
        writeInt(this.libc, 'net.inet.carp.allow', g.allow ? 1 : 0);
        writeInt(this.libc, 'net.inet.carp.preempt', g.preempt ? 1 : 0);
      }, 'write net.inet.carp');
    } catch (e) {
      fail(e, 'write net.inet.carp');
    }
  }

  async getMaintenance(): Promise<boolean> {
    try {
      return await this.maintenance.get();
    } catch (e) {
      return fail(e, 'read the maintenance demotion');
    }
  }

  async setMaintenance(on: boolean): Promise<void> {
    const op = on ? 'enter maintenance (net.inet.carp.demotion +240)' : 'leave maintenance (net.inet.carp.demotion -240)';
    try {
      await this.maintenance.set(on);
    } catch (e) {
      fail(e, op);
    }
  }

  async demotions(): Promise<Map<string, number>> {
    try {
      return await this.maintenance.named();
    } catch (e) {
      return fail(e, 'read the named demotions');
    }
  }

  async setDemotion(name: string, amount: number): Promise<void> {
    try {
      await this.maintenance.setNamed(name, amount);
    } catch (e) {
      fail(e, `set the ${name} demotion to ${amount} (net.inet.carp.demotion)`);
    }
  }

  getPfsync(): PfsyncLive {
    let live: PfsyncLive | undefined;
    try {
      live = this.pfsync.get();
    } catch (e) {
      fail(e, 'read pfsync0', PFSYNC_IF, { EPERM: HINTS.EPERM });
    }
    this.pfsyncLoaded = live !== undefined;
    // No pfsync0 (pfsync.ko not loaded): nothing is synchronised, which is "detached".
    return live ?? { maxupd: 128, defer: false, version: defaultPfsyncVersion(this.major), running: false, bulkUpdateDone: false };
  }

  setPfsync(s: PfsyncSettings): void {
    const op = 'configure pfsync0';
    const bad = (why: string) => KernelError.of('EINVAL', op, PFSYNC_IF, why);
    const fault = pfsyncParamsFault(s);
    if (fault) throw bad(fault);
    const supported = this.settableVersions();
    if (s.syncdev !== undefined) {
      checkIfName(op, s.syncdev);
      if (!supported.includes(s.version)) throw bad(`pfsync version ${s.version} needs a newer FreeBSD; FreeBSD ${this.major} speaks ${supported.join(', ')}`);
    }
    if (s.syncpeer !== undefined && !canonicalIp(s.syncpeer)) throw bad(`syncpeer ${s.syncpeer} is not an address`);
    // Detaching: the version is inert; send one the kernel accepts (0 = its default).
    const version = supported.includes(s.version) ? s.version : 0;
    try {
      this.pfsync.set(s, version);
    } catch (e) {
      if (isErrno(e, 'ENXIO') && s.syncdev === undefined) return; // no pfsync0: already detached
      fail(e, op, PFSYNC_IF, {
        EPERM: HINTS.EPERM,
        ENXIO: 'pfsync(4) is not loaded: kldload pfsync, or pfsync_load="YES" in /boot/loader.conf',
        EINVAL: s.syncdev !== undefined ? `the kernel refused the settings (does ${s.syncdev} exist?)` : 'the kernel refused the settings',
      });
    }
    this.pfsyncLoaded = true;
  }

  /**
   * net.inet.carp.{stats,log,*_demotion_factor} and net.pfsync.{stats,carp_demotion_factor}
   * (§3.3, §5.5). carp.ko missing fails the read (EPROTONOSUPPORT); pfsync.ko missing only
   * leaves its part out.
   */
  stats(): KernelStats {
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
      return fail(e, 'read the CARP statistics');
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
      return fail(e, 'read the pfsync statistics');
    }
    return pfsync ? { carp, pfsync, sysctls } : { carp, sysctls };
  }
}
