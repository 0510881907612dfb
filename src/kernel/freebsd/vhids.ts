/**
 * Vhids: set (create or change), remove, force a state (carp(4), freebsd-kernel-abi.md §3.2,
 * §3.5), through whichever transport the kernel offers (carp.ts).
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
import type { Logger } from 'pino';
import { canonicalIp, parseCidr, type Cidr } from '../../wire/address.js';
import { carpParamsFault } from '../../wire/limits.js';
import type { CarpState, VhidParams } from '../backend.js';
import type { AbiVersion } from './layout.js';
import { KernelError } from '../errno.js';
import type { AddressBinder } from './addresses.js';
import { type CarpChannel, type CarpSet, type CarpTransport, type KernelVhid, sameParams, vrrpAttrs } from './carp.js';
import { checkIfName, fail } from './failure.js';
import type { AddressLedger } from './ledger.js';
import { CREATED, FIRST_SEEN, READ_BY_CARPD, type StateTracker } from './tracker.js';

export const PLACEHOLDER_NET = '169.254.0.';

/**
 * setVhid's checks before the kernel is asked. advbase/advskew are checked here, not left to
 * the kernel: SIOCSVH and netlink SET create the vhid before they validate them (§12.6).
 */
export function checkVhidParams(operation: string, iface: string, vhid: number, p: VhidParams): void {
  const bad = (why: string) => KernelError.of('EINVAL', operation, iface, why);
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

/**
 * setVhid's checks that need no kernel: the name, the values, and the VRRP mode carpd does not
 * drive yet. The single step (VhidControl.set) and the batch (batch.ts) make them in this order.
 */
export function checkVhidSet(operation: string, iface: string, vhid: number, p: VhidParams, major: AbiVersion): void {
  checkIfName(operation, iface);
  checkVhidParams(operation, iface, vhid, p);
  if (p.protocol === 'vrrpv3') {
    throw KernelError.of('EOPNOTSUPP', operation, iface, `carpd does not drive the VRRP mode of carp(4) yet (FreeBSD ${major}); use protocol carp`);
  }
  if (p.macMode !== undefined && p.macMode !== 'virtual') {
    throw KernelError.of('EOPNOTSUPP', operation, iface, 'carp(4) always answers with the virtual MAC 00:00:5e:00:01:<vhid>; macMode interface is not possible');
  }
}

/** Unicast peers exist only in the netlink SET (§3.5): refused on the ioctl transport. */
export function checkPeersCarried(operation: string, iface: string, p: VhidParams, t: CarpTransport, carp: CarpChannel): void {
  if (t.kind === 'ioctl' && (p.peer !== undefined || p.peer6 !== undefined)) {
    throw KernelError.of('EOPNOTSUPP', operation, iface, `unicast peers need the carp netlink family of FreeBSD 14 or later; this is FreeBSD ${carp.major}${carp.sock ? '' : ' without netlink'}`);
  }
}

/** The SET of a vhid's parameters, keeping the VRRP attributes the vhid has (`current`). */
export function carpSetOf(iface: string, vhid: number, p: VhidParams, t: CarpTransport, major: AbiVersion, current: KernelVhid | undefined): CarpSet {
  return {
    iface,
    vhid,
    advbase: p.advbaseSec,
    advskew: p.advskew,
    ...(p.key !== undefined ? { key: p.key } : {}),
    ...(p.peer !== undefined ? { peer: p.peer } : {}),
    ...(p.peer6 !== undefined ? { peer6: p.peer6 } : {}),
    ...vrrpAttrs(t, major, current),
  };
}

export class VhidControl {
  constructor(
    private readonly carp: CarpChannel,
    private readonly binder: AddressBinder,
    private readonly ledger: AddressLedger,
    private readonly tracker: StateTracker,
    private readonly logger: Logger,
  ) {}

  async set(iface: string, vhid: number, p: VhidParams): Promise<void> {
    const op = `set vhid ${vhid}`;
    const major = this.carp.major;
    checkVhidSet(op, iface, vhid, p, major);
    const t = await this.carp.get(op, iface);
    checkPeersCarried(op, iface, p, t, this.carp);
    const cur = await this.kernelVhid(t, op, iface, vhid);
    if (this.ledger.addInterface(iface)) await this.ledger.save(op);
    const set = carpSetOf(iface, vhid, p, t, major, cur);
    if (cur?.key && cur.key[0] !== 0 && p.key === undefined) {
      await this.recreateWithoutKey(t, op, set);
      return;
    }
    try {
      await t.set(set);
    } catch (e) {
      if (!cur) await this.destroyIfPresent(t, iface, vhid).catch(() => undefined);
      fail(e, op, iface);
    }
    const reason = (s: CarpState) => `kernel reports ${s} after the vhid's parameters were set`;
    if (cur) {
      await this.tracker.refresh(t, iface, vhid, reason, FIRST_SEEN);
    } else {
      // Nothing to read back: a vhid SET has just created is in INIT, where carp_alloc puts it,
      // until its first address attaches (carp_ioctl_set does not start it; ip_carp.c).
      this.tracker.observe(iface, vhid, 'INIT', reason, CREATED);
    }
  }

  async remove(iface: string, vhid: number): Promise<void> {
    const op = `remove vhid ${vhid}`;
    checkIfName(op, iface);
    const t = await this.carp.get(op, iface);
    const cur = await this.kernelVhid(t, op, iface, vhid);
    if (!cur) throw KernelError.of('ENOENT', op, iface, 'no such vhid');
    await this.destroy(t, op, iface, vhid);
  }

  async force(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    const op = `force vhid ${vhid} to ${state}`;
    checkIfName(op, iface);
    const t = await this.carp.get(op, iface);
    const cur = await this.kernelVhid(t, op, iface, vhid);
    if (!cur) throw KernelError.of('ENOENT', op, iface, 'no such vhid');
    // A transition devd has not told about yet is recorded first, so "forced" names only the force.
    this.tracker.observe(iface, vhid, cur.state, READ_BY_CARPD, FIRST_SEEN);
    if (cur.state === 'INIT') return; // carp(4) forces only a running vhid (§3.2)
    try {
      // Netlink zero-fills what is left out (T11): send the current parameters back with STATE.
      await t.set(sameParams(t, this.carp.major, iface, vhid, cur, { forceState: state }));
    } catch (e) {
      fail(e, op, iface);
    }
    await this.tracker.refresh(t, iface, vhid, (s) => (s === state ? `forced to ${state} by the administrator` : `kernel reports ${s} after being forced to ${state}`));
  }

  /** The kernel's view of one vhid (undefined when absent); failures become the operation's KernelError. */
  private async kernelVhid(t: CarpTransport, op: string, iface: string, vhid: number): Promise<KernelVhid | undefined> {
    try {
      return await t.get(iface, vhid);
    } catch (e) {
      return fail(e, op, iface);
    }
  }

  /** See "Clearing a key" at the top of this file. */
  private async recreateWithoutKey(t: CarpTransport, op: string, set: CarpSet): Promise<void> {
    const { iface, vhid } = set;
    const addresses = this.ledger.addresses(iface, vhid);
    this.logger.info({ event: 'freebsd.vhid.recreate', interface: iface, vhid, addresses }, `${iface} vhid ${vhid}: carp(4) cannot clear a key in place; recreating the vhid without one`);
    await this.destroy(t, op, iface, vhid);
    try {
      await t.set(set);
    } catch (e) {
      fail(e, op, iface);
    }
    for (const a of addresses) await this.binder.bind(op, iface, vhid, parseCidr(a)!);
    await this.tracker.refresh(t, iface, vhid, (s) => `kernel reports ${s} after the vhid was recreated without a key`, 'vhid recreated without a key');
  }

  /** Removes every address carpd bound to the vhid, then the vhid itself (see "Destroying a vhid"). */
  private async destroy(t: CarpTransport, op: string, iface: string, vhid: number): Promise<void> {
    for (const a of this.ledger.addresses(iface, vhid)) await this.binder.unbind(op, iface, vhid, parseCidr(a)!);
    await this.destroyIfPresent(t, iface, vhid, op);
    this.tracker.forget(iface, vhid);
  }

  private async destroyIfPresent(t: CarpTransport, iface: string, vhid: number, op = `remove vhid ${vhid}`): Promise<void> {
    const exists = async () => (await this.kernelVhid(t, op, iface, vhid)) !== undefined;
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
      this.binder.kernelAdd(iface, vhid, placeholder);
      this.binder.kernelDel(iface, placeholder);
    } catch (e) {
      fail(e, pop, iface);
    }
    if (await exists()) {
      throw KernelError.of('EBUSY', op, iface, `vhid ${vhid} still has addresses carpd did not bind; remove them with ifconfig ${iface} inet ADDRESS -alias`);
    }
  }
}
