/**
 * The live kernel state in planning terms (vhids with their parameters and addresses, CARP
 * globals, maintenance, pfsync settings), kept between changes so that planning one VIP's
 * change does not read every vhid from the backend.
 *
 * Why it may be trusted: the backend contract (kernel/backend.ts) makes the backend the
 * authority, and on the memory, sim and linux backends only carpd changes these settings; on
 * FreeBSD an administrator may also run ifconfig, and an interface that goes away takes its
 * vhids along. So the service uses this copy only while it is fresh: it is read whole from the
 * backend at start and at every reconcile, when it is older than LIVE_MAX_AGE_MS, after any
 * step the backend refused (the copy and the kernel may then differ), and after a vhid went
 * to INIT (an interface went down or away). Between reads every step carpd applies is applied
 * to it as the contract says the kernel applies it (a vhid's last address taken removes the
 * vhid). A change planned against a copy that missed an outside edit fails where the kernel
 * disagrees — the change is then undone from a fresh read and reported — or leaves the drift
 * for the reconciler, as a change planned on a fresh read racing that edit would.
 */
import type { CarpGlobals, PfsyncSettings } from '../kernel/backend.js';
import type { LiveLookup, Snapshot, SnapshotVhid, Step } from './plan.js';
import { cidrOf } from '../wire/address.js';

/** A read older than this is not planned on: the next change reads the backend again. */
export const LIVE_MAX_AGE_MS = 1000;

const keyOf = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;
const addr = (cidr: string) => cidrOf(cidr)?.address ?? cidr;
const byKey = (a: SnapshotVhid, b: SnapshotVhid) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1);

export class LiveCache implements LiveLookup {
  private readonly vhids = new Map<string, SnapshotVhid>();
  /** `${interface} ${address}` -> keys of the vhids holding it. */
  private readonly byAddress = new Map<string, Set<string>>();
  carp: CarpGlobals;
  maintenance: boolean;
  pfsync: PfsyncSettings;

  /** `readAtMs`: when the backend was read (a monotonic clock's milliseconds). */
  constructor(
    s: Snapshot,
    readonly readAtMs: number,
  ) {
    for (const v of s.vhids) this.put(v);
    this.carp = s.carp;
    this.maintenance = s.maintenance;
    this.pfsync = s.pfsync;
  }

  vhid(key: string): SnapshotVhid | undefined {
    return this.vhids.get(key);
  }

  holders(iface: string, address: string): readonly string[] {
    return [...(this.byAddress.get(`${iface} ${address}`) ?? [])];
  }

  /**
   * All of it as a Snapshot. The vhid list is made when it is read (an undo reads it, a
   * successful change does not), from the entries as they are at that moment.
   */
  snapshot(): Snapshot {
    const vhids = this.vhids;
    return {
      get vhids() {
        return [...vhids.values()].sort(byKey);
      },
      carp: this.carp,
      maintenance: this.maintenance,
      pfsync: this.pfsync,
    };
  }

  /** The vhids with these keys (those live), and the globals. */
  partial(keys: Iterable<string>): Snapshot {
    const vhids: SnapshotVhid[] = [];
    for (const k of keys) {
      const v = this.vhids.get(k);
      if (v) vhids.push(v);
    }
    return { vhids: vhids.sort(byKey), carp: this.carp, maintenance: this.maintenance, pfsync: this.pfsync };
  }

  /** What the backend did for a step it accepted. Entries are replaced, never edited: snapshots handed out keep theirs. */
  apply(s: Step): void {
    switch (s.op) {
      case 'vhid.set': {
        const cur = this.vhids.get(keyOf(s));
        this.put(cur ? { ...cur, params: s.params } : { interface: s.interface, vhid: s.vhid, params: s.params, addresses: [] });
        return;
      }
      case 'vhid.remove':
        this.drop(keyOf(s));
        return;
      case 'address.add': {
        const cur = this.vhids.get(keyOf(s));
        if (!cur) return;
        // The same address with another prefix length is replaced, as plan() expects.
        this.put({ ...cur, addresses: [...cur.addresses.filter((a) => addr(a) !== addr(s.address)), s.address] });
        return;
      }
      case 'address.remove': {
        const cur = this.vhids.get(keyOf(s));
        if (!cur) return;
        const addresses = cur.addresses.filter((a) => a !== s.address);
        // carp(4): a vhid's last address gone takes the vhid with it.
        if (addresses.length === 0) this.drop(keyOf(s));
        else this.put({ ...cur, addresses });
        return;
      }
      case 'carp.set':
        this.carp = { allow: s.globals.allow, preempt: s.globals.preempt };
        return;
      case 'maintenance.set':
        this.maintenance = s.enabled;
        return;
      case 'pfsync.set':
        this.pfsync = { ...s.settings };
        return;
    }
  }

  private put(v: SnapshotVhid): void {
    const k = keyOf(v);
    this.unindex(k);
    this.vhids.set(k, v);
    for (const a of v.addresses) {
      const ak = `${v.interface} ${addr(a)}`;
      let set = this.byAddress.get(ak);
      if (!set) this.byAddress.set(ak, (set = new Set()));
      set.add(k);
    }
  }

  private drop(k: string): void {
    this.unindex(k);
    this.vhids.delete(k);
  }

  private unindex(k: string): void {
    const cur = this.vhids.get(k);
    if (!cur) return;
    for (const a of cur.addresses) {
      const ak = `${cur.interface} ${addr(a)}`;
      const set = this.byAddress.get(ak);
      set?.delete(k);
      if (set?.size === 0) this.byAddress.delete(ak);
    }
  }
}
