/**
 * pf's status read in-process from /dev/pf, as `pfctl -si` reads it (reference/pf-status.md),
 * through the request each release serves:
 *
 *  13    DIOCGETSTATUS (struct pf_status) first: 13.0 has nothing else; 13.1+ also answers the
 *        nvlist request, tried when the binary one is refused.
 *  14    DIOCGETSTATUSNV (nvlist, through libnv) first, DIOCGETSTATUS when libnv is missing.
 *  15    DIOCGETSTATUSNV: DIOCGETSTATUS is gone (EACCES on a read-only descriptor). The netlink
 *        "pfctl" family's GET_STATUS is not used: the nvlist request answers the same counters.
 *
 * A request the kernel refuses as unknown (EACCES on O_RDONLY, ENODEV, ENOTTY) is not asked
 * again. /dev/pf is opened O_RDONLY on first use and kept; without it (pf.ko not loaded, ENOENT)
 * the answer is null, and the next read tries again, so loading pf later is seen.
 *
 * DIOCGETSTATUSNV: a first call with size 0 learns the packed length; a reply that grew
 * meanwhile answers ENOSPC without telling the new length, so the buffer doubles and the call
 * is repeated, up to PF_NV_MAX bytes.
 */
import type { PfStatus } from '../backend.js';
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import type { AbiVersion } from './layout.js';
import {
  DIOCGETSTATUS,
  DIOCGETSTATUSNV,
  O_CLOEXEC,
  O_RDONLY,
  PF_DEVICE,
  PF_STATUS_NV_SCHEMA,
  PF_STATUS_SIZE,
  type PfCounts,
  decodePfStatus,
  decodePfiocNv,
  pfStatusFromNv,
  pfiocNvBytes,
} from './layout-pf.js';
import type { Libc } from './libc.js';
import type { Libnv } from './libnv.js';

/** The largest nvlist reply read (the kernel's is about 2 KiB). */
export const PF_NV_MAX = 1 << 20;

type Via = PfStatus['via'];
const is = (e: unknown, ...names: (keyof typeof FREEBSD_ERRNO)[]) => e instanceof KernelError && names.some((n) => e.errno === FREEBSD_ERRNO[n]);
/** What a kernel answers to a request it does not serve on this descriptor. */
const refused = (e: unknown) => is(e, 'EACCES', 'ENODEV', 'ENOTTY');

export class PfControl {
  private fd?: number;
  private readonly refusedVia = new Set<Via>();

  constructor(
    private readonly libc: Libc,
    private readonly major: AbiVersion,
    private readonly libnv: Libnv | undefined,
  ) {}

  /** The order the requests are tried in on this release. */
  get order(): Via[] {
    const nv: Via[] = this.libnv ? ['nvlist'] : [];
    const all: Via[] = this.major === 13 ? ['ioctl', ...nv] : [...nv, 'ioctl'];
    return all.filter((v) => !this.refusedVia.has(v));
  }

  /** pf's counters and how they were read; null without /dev/pf. */
  read(): (PfCounts & { via: Via }) | null {
    const fd = this.open();
    if (fd === undefined) return null;
    let last: unknown;
    for (const via of this.order) {
      try {
        return { ...(via === 'ioctl' ? this.readBinary(fd) : this.readNv(fd)), via };
      } catch (e) {
        if (is(e, 'ENXIO')) {
          // pf.ko went away under the open descriptor.
          this.close();
          return null;
        }
        if (!refused(e)) throw e;
        this.refusedVia.add(via);
        last = e;
      }
    }
    if (last) throw last;
    throw KernelError.of('EOPNOTSUPP', 'read pf status', undefined, this.libnv ? 'the kernel serves neither DIOCGETSTATUS nor DIOCGETSTATUSNV' : 'this kernel serves only DIOCGETSTATUSNV, which needs libnv');
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      this.libc.close(fd);
    } catch { /* nothing to do */ }
  }

  private open(): number | undefined {
    if (this.fd !== undefined) return this.fd;
    try {
      this.fd = this.libc.open(PF_DEVICE, O_RDONLY | O_CLOEXEC);
    } catch (e) {
      if (is(e, 'ENOENT', 'ENXIO', 'ENODEV')) return undefined;
      throw e;
    }
    return this.fd;
  }

  private readBinary(fd: number): PfCounts {
    const buf = Buffer.alloc(PF_STATUS_SIZE);
    this.libc.ioctl(fd, DIOCGETSTATUS, buf, '');
    return decodePfStatus(buf);
  }

  private readNv(fd: number): PfCounts {
    const probe = pfiocNvBytes({ data: 0n, len: 0, size: 0 });
    this.libc.ioctl(fd, DIOCGETSTATUSNV, probe, '');
    let size = Math.max(decodePfiocNv(probe).len, 64);
    for (;;) {
      const data = Buffer.alloc(size);
      const req = pfiocNvBytes({ data: this.libc.addressOf(data), len: 0, size });
      try {
        this.libc.ioctl(fd, DIOCGETSTATUSNV, req, '');
      } catch (e) {
        if (is(e, 'ENOSPC') && size < PF_NV_MAX) {
          size *= 2;
          continue;
        }
        throw e;
      }
      const { len } = decodePfiocNv(req);
      if (len > size) throw KernelError.of('EMSGSIZE', 'ioctl DIOCGETSTATUSNV', undefined, `the kernel reports ${len} bytes in a ${size}-byte buffer`);
      const obj = this.libnv!.unpackNvlist(data.subarray(0, len), PF_STATUS_NV_SCHEMA);
      try {
        return pfStatusFromNv(obj);
      } catch (e) {
        throw KernelError.of('EBADMSG', 'ioctl DIOCGETSTATUSNV', undefined, (e as Error).message);
      }
    }
  }
}
