/**
 * Planning (pure): the backend steps that turn one live snapshot into another. The service plans
 * a change with it (target = desired state) and the backends plan the undo of a failed batch
 * (target = the state before it), so a half-applied change is taken back with the machinery
 * that made it.
 *
 * Order matters to the kernel: a vhid must exist before its addresses (carp(4) answers
 * ENOPROTOOPT/ENOENT otherwise), and removing a vhid's last address removes the vhid. The
 * planner simulates that as it goes, so it never asks for an address on a vhid it just lost.
 * A vhid's protocol (carp, vrrpv3) cannot change in place either: a change of protocol removes
 * the vhid and creates it again, its addresses re-added after it.
 */
import { parseCidr } from '../wire/address.js';
import type { CarpGlobals, PfsyncSettings, VhidParams } from './backend.js';

export interface SnapshotVhid {
  interface: string;
  vhid: number;
  params: VhidParams;
  addresses: string[];
}

export interface Snapshot {
  vhids: SnapshotVhid[];
  carp: CarpGlobals;
  maintenance: boolean;
  pfsync: PfsyncSettings;
}

/** A backend step (BackendStep) as planned: with whether a vhid.set creates, and why a vhid goes. */
export type Step =
  | { op: 'vhid.set'; interface: string; vhid: number; params: VhidParams; create: boolean }
  | { op: 'vhid.remove'; interface: string; vhid: number; reason?: string }
  | { op: 'address.add'; interface: string; vhid: number; address: string }
  | { op: 'address.remove'; interface: string; vhid: number; address: string }
  | { op: 'carp.set'; globals: CarpGlobals }
  | { op: 'maintenance.set'; enabled: boolean }
  | { op: 'pfsync.set'; settings: PfsyncSettings };

const keyOf = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;

export const protocolOf = (p: VhidParams) => p.protocol ?? 'carp';

function sameParams(a: VhidParams, b: VhidParams): boolean {
  if (protocolOf(a) !== protocolOf(b)) return false;
  // The VRRP fields of a carp vhid mean nothing (a kernel may still report them).
  if (protocolOf(a) === 'vrrpv3' && (a.vrrpPriority !== b.vrrpPriority || a.vrrpIntervalCs !== b.vrrpIntervalCs)) return false;
  return a.advbaseSec === b.advbaseSec && a.advskew === b.advskew && a.key === b.key && a.peer === b.peer && a.peer6 === b.peer6 && a.macMode === b.macMode;
}

function samePfsync(a: PfsyncSettings, b: PfsyncSettings): boolean {
  if (a.syncdev === undefined && b.syncdev === undefined) return true; // detached: the rest is inert
  return a.syncdev === b.syncdev && a.syncpeer === b.syncpeer && a.maxupd === b.maxupd && a.defer === b.defer && a.version === b.version;
}

export function plan(target: Snapshot, live: Snapshot): Step[] {
  const steps: Step[] = [];
  // Each address text parsed once: the planner compares addresses for every address it adds.
  const parsed = new Map<string, string>();
  const addr = (cidr: string) => {
    let a = parsed.get(cidr);
    if (a === undefined) parsed.set(cidr, (a = parseCidr(cidr)?.address ?? cidr));
    return a;
  };
  // The simulated kernel: vhid key -> { params, addresses }.
  const sim = new Map(live.vhids.map((v) => [keyOf(v), { iface: v.interface, params: v.params, addresses: [...v.addresses] }]));
  const wanted = new Map(target.vhids.map((v) => [keyOf(v), v]));
  // Who holds an address: `iface|address` (without prefix) -> the keys of the simulated vhids
  // with it, kept in step with `sim`, so that finding a holder is no scan of every vhid.
  const held = new Map<string, Set<string>>();
  const heldKey = (iface: string, cidr: string) => `${iface}|${addr(cidr)}`;
  const hold = (k: string, iface: string, cidr: string) => {
    const hk = heldKey(iface, cidr);
    const keys = held.get(hk);
    if (keys) keys.add(k);
    else held.set(hk, new Set([k]));
  };
  /** After `cidr` left vhid `k` (or `k` went): `k` no longer holds its address unless another prefix of it stays. */
  const release = (k: string, iface: string, cidr: string) => {
    const a = addr(cidr);
    if (sim.get(k)?.addresses.some((x) => addr(x) === a)) return;
    held.get(`${iface}|${a}`)?.delete(k);
  };
  for (const [k, v] of sim) for (const a of v.addresses) hold(k, v.iface, a);
  const drop = (k: string) => {
    const v = sim.get(k);
    if (!v) return;
    sim.delete(k);
    for (const a of v.addresses) release(k, v.iface, a);
  };
  const holder = (iface: string, address: string): string | undefined => {
    const keys = held.get(heldKey(iface, address));
    if (!keys || keys.size === 0) return undefined;
    if (keys.size === 1) return keys.values().next().value;
    // Held twice (a kernel in disorder): the first in the simulated kernel's order, as ever.
    for (const k of sim.keys()) if (keys.has(k)) return k;
    return undefined;
  };
  const setVhid = (t: SnapshotVhid) => {
    let cur = sim.get(keyOf(t));
    if (cur && sameParams(cur.params, t.params)) return;
    if (cur && protocolOf(cur.params) !== protocolOf(t.params)) {
      // The backend refuses a protocol change in place (EINVAL): recreate the vhid.
      const reason = `its protocol changes from ${protocolOf(cur.params)} to ${protocolOf(t.params)}, which needs a new vhid`;
      steps.push({ op: 'vhid.remove', interface: t.interface, vhid: t.vhid, reason });
      drop(keyOf(t));
      cur = undefined;
    }
    steps.push({ op: 'vhid.set', interface: t.interface, vhid: t.vhid, params: t.params, create: !cur });
    if (cur) cur.params = t.params;
    else sim.set(keyOf(t), { iface: t.interface, params: t.params, addresses: [] });
  };
  const has = (k: string, a: string) => sim.get(k)?.addresses.some((x) => x === a) ?? false;

  // 0. Entering maintenance comes first, so no vhid created below is ever advertised undemoted.
  if (target.maintenance && !live.maintenance) steps.push({ op: 'maintenance.set', enabled: true });
  // 1. Create or update the vhids, then add the addresses nobody else holds.
  for (const t of target.vhids) setVhid(t);
  const deferred: SnapshotVhid[] = [];
  for (const t of target.vhids) {
    for (const a of t.addresses) {
      if (has(keyOf(t), a)) continue;
      const h = holder(t.interface, a);
      if (h !== undefined && h !== keyOf(t)) {
        deferred.push(t);
        continue;
      }
      if (h === keyOf(t)) {
        // Same address, other prefix length: replace it.
        const cur = sim.get(h)!;
        const old = cur.addresses.find((x) => addr(x) === addr(a))!;
        steps.push({ op: 'address.add', interface: t.interface, vhid: t.vhid, address: a });
        cur.addresses = cur.addresses.filter((x) => x !== old).concat(a);
        continue;
      }
      steps.push({ op: 'address.add', interface: t.interface, vhid: t.vhid, address: a });
      sim.get(keyOf(t))!.addresses.push(a);
      hold(keyOf(t), t.interface, a);
    }
  }
  // 2. Remove what should not be there; vhids that are not wanted go whole.
  for (const [k, cur] of [...sim]) {
    const [iface, vhidText] = [k.slice(0, k.lastIndexOf('/')), k.slice(k.lastIndexOf('/') + 1)];
    const vhid = Number(vhidText);
    const t = wanted.get(k);
    if (!t) {
      steps.push({ op: 'vhid.remove', interface: iface, vhid });
      drop(k);
      continue;
    }
    for (const a of [...cur.addresses]) {
      if (t.addresses.includes(a)) continue;
      steps.push({ op: 'address.remove', interface: iface, vhid, address: a });
      cur.addresses = cur.addresses.filter((x) => x !== a);
      release(k, iface, a);
      if (cur.addresses.length === 0) drop(k);
    }
  }
  // 3. Addresses that had to leave another vhid first; recreate a vhid that emptied on the way.
  for (const t of deferred) {
    setVhid(t);
    for (const a of t.addresses) {
      if (has(keyOf(t), a)) continue;
      steps.push({ op: 'address.add', interface: t.interface, vhid: t.vhid, address: a });
      sim.get(keyOf(t))!.addresses.push(a);
      hold(keyOf(t), t.interface, a);
    }
  }
  // 4. Globals.
  if (target.carp.allow !== live.carp.allow || target.carp.preempt !== live.carp.preempt) steps.push({ op: 'carp.set', globals: target.carp });
  if (!target.maintenance && live.maintenance) steps.push({ op: 'maintenance.set', enabled: false });
  if (!samePfsync(target.pfsync, live.pfsync)) steps.push({ op: 'pfsync.set', settings: target.pfsync });
  return steps;
}

