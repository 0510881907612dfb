/**
 * What the running kernel is and how to talk to it (freebsd-kernel-abi.md §1, §3.4, §9):
 *
 *  version   kern.osreldate picks the paths: 13 = ioctls only (SIOCSVH/SIOCGVH, legacy
 *            pfsync); 14 = the carp netlink family (unicast peers) and the pfsync nvlist
 *            ioctls; 15 = the same plus VRRPv3 attributes and pfsync 1500. Newer releases get
 *            the 15 paths, with a warning.
 *  sockets   one AF_INET datagram socket for the ioctls (addresses.ts opens an AF_INET6 one for
 *            the IPv6 address requests), one netlink socket on 14+. Without libnv pfsync falls
 *            back to the legacy ioctls; without the netlink socket carp(4) is driven through
 *            the ioctls, without unicast peers.
 *  state     the ledger and the maintenance record in carpd's state directory.
 */
import type { Logger } from 'pino';
import type { NetlinkSocket } from '../netlink-socket.js';
import { openNetlinkSocket } from './carp.js';
import { AF_INET, type AbiVersion, SOCK_CLOEXEC, SOCK_DGRAM } from './layout.js';
import { AddressLedger } from './ledger.js';
import { type Libc, loadLibc } from './libc.js';
import { type Libnv, loadLibnv } from './libnv.js';
import { Maintenance } from './maintenance.js';
import { PfControl } from './pf.js';
import { PfsyncControl } from './pfsync.js';
import { carpSysctl, readBoottime, readInt, writeInt } from './sysctl.js';

export interface KernelOpenOptions {
  stateDir: string;
  libcPath?: string;
  libc?: Libc;
  libnvPath?: string;
}

/** Everything the backend holds open; the descriptors are closed by the backend. */
export interface OpenKernel {
  libc: Libc;
  osreldate: number;
  major: AbiVersion;
  inetFd: number;
  nlSock?: NetlinkSocket;
  pfsync: PfsyncControl;
  /** pf's status on /dev/pf, opened on first use (pf.ts). */
  pf: PfControl;
  ledger: AddressLedger;
  maintenance: Maintenance;
}

export async function openKernel(opts: KernelOpenOptions, logger: Logger): Promise<OpenKernel> {
  const libc = opts.libc ?? loadLibc(opts.libcPath ?? process.env.CARPD_FREEBSD_LIBC ?? 'libc.so.7');
  const osreldate = readInt(libc, 'kern.osreldate');
  const release = Math.floor(osreldate / 100000);
  if (release < 13) throw new Error(`FreeBSD ${release} (kern.osreldate ${osreldate}) is not supported; carpd needs 13.0 or later`);
  if (release > 15) logger.warn({ event: 'freebsd.newer', osreldate }, `FreeBSD ${release} is newer than this backend knows; using the FreeBSD 15 paths`);
  const major: AbiVersion = release >= 15 ? 15 : (release as AbiVersion);

  const fds: number[] = [];
  let ledger: AddressLedger | undefined;
  try {
    const inetFd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    fds.push(inetFd);
    let libnv: Libnv | undefined;
    let nlSock: NetlinkSocket | undefined;
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
    ledger = await AddressLedger.open(opts.stateDir);
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
    // pf's nvlist status request exists from 13.1 on: on 13, libnv (.so.0) is loaded for it alone.
    let pfLibnv = libnv;
    if (major === 13) {
      try {
        pfLibnv = loadLibnv(libc, opts.libnvPath ?? process.env.CARPD_FREEBSD_LIBNV);
      } catch { /* DIOCGETSTATUS alone, as 13.0 offers */ }
    }
    const pf = new PfControl(libc, major, pfLibnv);
    return { libc, osreldate, major, inetFd, ...(nlSock ? { nlSock } : {}), pfsync, pf, ledger, maintenance };
  } catch (e) {
    closeAll(libc, fds);
    await ledger?.close();
    throw e;
  }
}

/** Closes descriptors on the way out of a failure or at close; errors there change nothing. */
export function closeAll(libc: Libc, fds: (number | undefined)[]): void {
  for (const fd of fds) {
    if (fd === undefined) continue;
    try {
      libc.close(fd);
    } catch { /* nothing to do */ }
  }
}
