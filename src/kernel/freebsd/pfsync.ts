/**
 * pfsync0 configuration (freebsd-kernel-abi.md §5, T12, T14).
 *
 *  14+  SIOCGETPFSYNCNV / SIOCSETPFSYNCNV: a packed nvlist through ifr_cap_nv. GET needs a buffer
 *       large enough (EFBIG otherwise, without telling the size: §12.8), so it starts small and
 *       doubles up to IFR_CAP_NV_MAXBUFSIZE. SET always carries every key: a 14-era kernel reads
 *       `version` without checking that it exists and panics when it does not (T12).
 *  13   the NV requests answer ENOTTY; SIOCGETPFSYNC / SIOCSETPFSYNC with a struct pfsyncreq,
 *       whose defer field is a boolean on 13 and a flag word on 14+ (written as PFSYNCF_DEFER,
 *       which means "on" to both).
 *
 * pfsync0 exists as soon as pfsync.ko is loaded (T14); ENXIO on it means the module is absent.
 */
import type { PfsyncLive, PfsyncSettings } from '../backend.js';
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import {
  AF_INET,
  AF_INET6,
  type AbiVersion,
  IFF_UP,
  IFR_CAP_NV_MAXBUFSIZE,
  INADDR_PFSYNC_GROUP,
  PFSYNCF_DEFER,
  PFSYNCF_OK,
  SIOCGETPFSYNC,
  SIOCGETPFSYNCNV,
  SIOCGIFFLAGS,
  SIOCSETPFSYNC,
  SIOCSETPFSYNCNV,
  SIOCSIFFLAGS,
  SIZEOF,
  decodeIfreqCapNv,
  decodeIfreqFlags,
  decodeSockaddrIn,
  decodeSockaddrIn6,
  encodeSockaddrIn,
  encodeSockaddrIn6,
  ifreqBytes,
} from './layout.js';
import { decodePfsyncreq, pfsyncreqBytes } from './layout-pfsync.js';
import type { Libc } from './libc.js';
import { PFSYNC_NV_SCHEMA, type Libnv, type NvObject } from './libnv.js';
import { canonicalIp } from '../../wire/address.js';

export const PFSYNC_IF = 'pfsync0';
const IN6ADDR_PFSYNC_GROUP = 'ff12::f0';
const NV_FIRST_BUFFER = 4096;

/** Wire formats each release can speak (§5.3): 13 only its own, 14 adds 1400, 15 adds 1500. */
export function pfsyncVersionsFor(major: AbiVersion): number[] {
  return major === 13 ? [1301] : major === 14 ? [1301, 1400] : [1301, 1400, 1500];
}

/** The version a kernel uses when told 0 (PFSYNC_MSG_VERSION_DEFAULT). */
export function defaultPfsyncVersion(major: AbiVersion): number {
  return major === 13 ? 1301 : major === 14 ? 1400 : 1500;
}

const isErrno = (e: unknown, name: keyof typeof FREEBSD_ERRNO) => e instanceof KernelError && e.errno === FREEBSD_ERRNO[name];

/** undefined for the multicast group or an unset peer. */
function peerText(address: string | undefined): string | undefined {
  if (address === undefined || address === '0.0.0.0' || address === '::' || address === INADDR_PFSYNC_GROUP || address === IN6ADDR_PFSYNC_GROUP) return undefined;
  return address;
}

export class PfsyncControl {
  /** Cleared for good when the kernel answers the NV requests with ENOTTY (13). */
  private nv: boolean;

  constructor(
    private readonly libc: Libc,
    private readonly fd: number,
    private readonly major: AbiVersion,
    private readonly libnv: Libnv | undefined,
  ) {
    this.nv = libnv !== undefined;
  }

  get transport(): 'nv' | 'legacy' {
    return this.nv ? 'nv' : 'legacy';
  }

  /** Whether pfsync0 exists and answers the legacy GET (the capability probe). */
  available(): boolean {
    try {
      this.legacyGet();
      return true;
    } catch {
      return false;
    }
  }

  private legacyGet(): ReturnType<typeof decodePfsyncreq> {
    const pr = Buffer.alloc(SIZEOF.pfsyncreq);
    this.libc.ioctl(this.fd, SIOCGETPFSYNC, ifreqBytes({ name: PFSYNC_IF, data: this.libc.addressOf(pr) }), PFSYNC_IF);
    return decodePfsyncreq(pr, 0, this.major);
  }

  private nvGet(): NvObject {
    for (let size = NV_FIRST_BUFFER; ; size *= 2) {
      const buf = Buffer.alloc(size);
      const ifr = ifreqBytes({ name: PFSYNC_IF, capNv: { bufLength: size, length: 0, buffer: this.libc.addressOf(buf) } });
      try {
        this.libc.ioctl(this.fd, SIOCGETPFSYNCNV, ifr, PFSYNC_IF);
      } catch (e) {
        if (isErrno(e, 'EFBIG') && size < IFR_CAP_NV_MAXBUFSIZE) continue;
        throw e;
      }
      const { length } = decodeIfreqCapNv(ifr, 0);
      if (length > size) throw KernelError.of('EMSGSIZE', 'ioctl SIOCGETPFSYNCNV', PFSYNC_IF, `the kernel reports ${length} bytes in a ${size}-byte buffer`);
      return this.libnv!.unpackNvlist(buf.subarray(0, length), PFSYNC_NV_SCHEMA);
    }
  }

  private isUp(): boolean {
    const ifr = ifreqBytes({ name: PFSYNC_IF, flags: 0 });
    try {
      this.libc.ioctl(this.fd, SIOCGIFFLAGS, ifr, PFSYNC_IF);
    } catch (e) {
      if (isErrno(e, 'ENOTTY')) return true; // flags not readable here: go by syncdev alone
      throw e;
    }
    return (decodeIfreqFlags(ifr, 0) & IFF_UP) !== 0;
  }

  /** rc.d/pfsync does `ifconfig pfsync0 syncdev D ... up`: the interface is brought up after configuring it (§5.1). */
  private bringUp(): void {
    const ifr = ifreqBytes({ name: PFSYNC_IF, flags: 0 });
    try {
      this.libc.ioctl(this.fd, SIOCGIFFLAGS, ifr, PFSYNC_IF);
      const flags = decodeIfreqFlags(ifr, 0);
      if (flags & IFF_UP) return;
      this.libc.ioctl(this.fd, SIOCSIFFLAGS, ifreqBytes({ name: PFSYNC_IF, flags: flags | IFF_UP }), PFSYNC_IF);
    } catch (e) {
      if (!isErrno(e, 'ENOTTY')) throw e;
    }
  }

  /** undefined when pfsync(4) is not loaded (no pfsync0). */
  get(): PfsyncLive | undefined {
    try {
      if (this.nv) {
        try {
          return this.fromNv(this.nvGet());
        } catch (e) {
          if (!isErrno(e, 'ENOTTY')) throw e;
          this.nv = false;
        }
      }
      return this.fromLegacy();
    } catch (e) {
      if (isErrno(e, 'ENXIO')) return undefined;
      throw e;
    }
  }

  private fromNv(o: NvObject): PfsyncLive {
    const syncdev = typeof o.syncdev === 'string' && o.syncdev !== '' ? o.syncdev : undefined;
    let syncpeer: string | undefined;
    const sp = o.syncpeer;
    if (sp && typeof sp === 'object' && !Buffer.isBuffer(sp) && !Array.isArray(sp) && Buffer.isBuffer(sp.address)) {
      const addr = sp.address;
      if (sp.af === AF_INET && addr.length === SIZEOF.sockaddr_in) syncpeer = peerText(decodeSockaddrIn(addr, 0)?.address);
      else if (sp.af === AF_INET6 && addr.length === SIZEOF.sockaddr_in6) syncpeer = peerText(decodeSockaddrIn6(addr, 0)?.address);
    }
    const flags = typeof o.flags === 'number' ? o.flags : 0;
    const version = typeof o.version === 'number' && o.version !== 0 ? o.version : defaultPfsyncVersion(this.major);
    const running = syncdev !== undefined && this.isUp();
    return {
      ...(syncdev !== undefined ? { syncdev } : {}),
      ...(syncpeer !== undefined ? { syncpeer } : {}),
      maxupd: typeof o.maxupdates === 'number' ? o.maxupdates : 128,
      defer: (flags & PFSYNCF_DEFER) !== 0,
      version,
      running,
      bulkUpdateDone: running && (flags & PFSYNCF_OK) !== 0,
    };
  }

  private fromLegacy(): PfsyncLive {
    const r = this.legacyGet();
    const syncdev = r.syncdev !== '' ? r.syncdev : undefined;
    const running = syncdev !== undefined && this.isUp();
    return {
      ...(syncdev !== undefined ? { syncdev } : {}),
      ...(r.syncpeer !== undefined ? { syncpeer: r.syncpeer } : {}),
      maxupd: r.maxupdates,
      defer: r.defer,
      // The legacy request carries no version: 13 speaks only its own format.
      version: defaultPfsyncVersion(this.major),
      running,
      // 13 does not export PFSYNCF_OK through the legacy GET; a running pfsync is reported done.
      bulkUpdateDone: running && (r.bulkUpdateDone ?? true),
    };
  }

  /** `version` must already be one this kernel speaks (or the one to send when detaching). */
  set(s: PfsyncSettings, version: number): void {
    if (this.nv) {
      try {
        this.nvSet(s, version);
        if (s.syncdev !== undefined) this.bringUp();
        return;
      } catch (e) {
        if (!isErrno(e, 'ENOTTY')) throw e;
        this.nv = false;
      }
    }
    const peer = s.syncpeer === undefined ? undefined : canonicalIp(s.syncpeer);
    if (peer?.family === 6) throw KernelError.of('EOPNOTSUPP', 'configure pfsync0', PFSYNC_IF, 'an IPv6 syncpeer needs the nvlist interface of FreeBSD 14+');
    const pr = pfsyncreqBytes({ syncdev: s.syncdev ?? '', ...(peer ? { syncpeer: peer.address } : {}), maxupdates: s.maxupd, defer: s.defer });
    this.libc.ioctl(this.fd, SIOCSETPFSYNC, ifreqBytes({ name: PFSYNC_IF, data: this.libc.addressOf(pr) }), PFSYNC_IF);
    if (s.syncdev !== undefined) this.bringUp();
  }

  private nvSet(s: PfsyncSettings, version: number): void {
    // T12: every key, every time ("" detaches); syncpeer only when set (absent = multicast).
    const obj: NvObject = { syncdev: s.syncdev ?? '', maxupdates: s.maxupd, flags: s.defer ? PFSYNCF_DEFER : 0, version };
    if (s.syncpeer !== undefined) {
      const ip = canonicalIp(s.syncpeer);
      if (!ip) throw KernelError.of('EINVAL', 'configure pfsync0', PFSYNC_IF, `syncpeer ${s.syncpeer} is not an address`);
      const address = Buffer.alloc(ip.family === 4 ? SIZEOF.sockaddr_in : SIZEOF.sockaddr_in6);
      if (ip.family === 4) encodeSockaddrIn({ address: ip.address }, address, 0);
      else encodeSockaddrIn6({ address: ip.address }, address, 0);
      obj.syncpeer = { af: ip.family === 4 ? AF_INET : AF_INET6, address };
    }
    const packed = this.libnv!.packNvlist(obj);
    const ifr = ifreqBytes({ name: PFSYNC_IF, capNv: { bufLength: packed.length, length: packed.length, buffer: this.libc.addressOf(packed) } });
    this.libc.ioctl(this.fd, SIOCSETPFSYNCNV, ifr, PFSYNC_IF);
  }
}
