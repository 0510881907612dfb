/**
 * Planning (pure): the backend steps that turn one live snapshot into another. The same
 * function plans a change (target = desired state) and its undo (target = the snapshot taken
 * before the change), so a half-applied change is rolled back with the machinery that made it.
 *
 * Order matters to the kernel: a vhid must exist before its addresses (carp(4) answers
 * ENOPROTOOPT/ENOENT otherwise), and removing a vhid's last address removes the vhid. The
 * planner simulates that as it goes, so it never asks for an address on a vhid it just lost.
 * A vhid's protocol (carp, vrrpv3) cannot change in place either: a change of protocol removes
 * the vhid and creates it again, its addresses re-added after it.
 */
import { cidrOf } from '../config/cidr-cache.js';
import { VIP_DEFAULTS, type DesiredState, type VipConfig } from '../config/model.js';
import type { CarpGlobals, PfsyncSettings, VhidParams } from '../kernel/backend.js';

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

export type Step =
  | { op: 'vhid.set'; interface: string; vhid: number; params: VhidParams; create: boolean }
  | { op: 'vhid.remove'; interface: string; vhid: number; reason?: string }
  | { op: 'address.add'; interface: string; vhid: number; address: string }
  | { op: 'address.remove'; interface: string; vhid: number; address: string }
  | { op: 'carp.set'; globals: CarpGlobals }
  | { op: 'maintenance.set'; enabled: boolean }
  | { op: 'pfsync.set'; settings: PfsyncSettings };

/** What the backend should look like for one VIP. */
export function vhidTarget(v: VipConfig): SnapshotVhid {
  return {
    interface: v.interface,
    vhid: v.vhid,
    params: {
      advbaseSec: v.advbaseSec,
      advskew: v.advskew,
      key: v.password,
      peer: v.mode === 'unicast' ? v.peer : undefined,
      peer6: v.mode === 'unicast' ? v.peer6 : undefined,
      // carp leaves protocol out (absent = carp), as backends report carp vhids.
      ...(v.protocol === 'vrrpv3'
        ? { protocol: 'vrrpv3' as const, vrrpPriority: v.vrrpPriority ?? VIP_DEFAULTS.vrrpPriority, vrrpIntervalCs: v.vrrpInterval ?? VIP_DEFAULTS.vrrpInterval }
        : {}),
    },
    addresses: [...v.addresses],
  };
}

/** What the backend's globals should be for a desired state. */
function globalsTarget(s: DesiredState): Omit<Snapshot, 'vhids'> {
  return {
    carp: { allow: s.carp.enabled, preempt: s.carp.preempt },
    maintenance: s.carp.maintenance,
    pfsync: s.pfsync.enabled
      ? { syncdev: s.pfsync.syncdev, syncpeer: s.pfsync.syncpeer, maxupd: s.pfsync.maxupd, defer: s.pfsync.defer, version: s.pfsync.version }
      : { syncdev: undefined, syncpeer: undefined, maxupd: s.pfsync.maxupd, defer: s.pfsync.defer, version: s.pfsync.version },
  };
}

/** What the backend should look like for a desired state. */
export function targetOf(s: DesiredState): Snapshot {
  return { vhids: s.vips.map(vhidTarget), ...globalsTarget(s) };
}

const keyOf = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;
const addr = (cidr: string) => cidrOf(cidr)?.address ?? cidr;

export const protocolOf = (p: VhidParams) => p.protocol ?? 'carp';

function sameParams(a: VhidParams, b: VhidParams): boolean {
  if (protocolOf(a) !== protocolOf(b)) return false;
  // The VRRP fields of a carp vhid mean nothing (a kernel may still report them).
  if (protocolOf(a) === 'vrrpv3' && (a.vrrpPriority !== b.vrrpPriority || a.vrrpIntervalCs !== b.vrrpIntervalCs)) return false;
  return a.advbaseSec === b.advbaseSec && a.advskew === b.advskew && a.key === b.key && a.peer === b.peer && a.peer6 === b.peer6;
}

function samePfsync(a: PfsyncSettings, b: PfsyncSettings): boolean {
  if (a.syncdev === undefined && b.syncdev === undefined) return true; // detached: the rest is inert
  return a.syncdev === b.syncdev && a.syncpeer === b.syncpeer && a.maxupd === b.maxupd && a.defer === b.defer && a.version === b.version;
}

export function plan(target: Snapshot, live: Snapshot): Step[] {
  const steps: Step[] = [];
  // The simulated kernel: vhid key -> { params, addresses }.
  const sim = new Map(live.vhids.map((v) => [keyOf(v), { params: v.params, addresses: [...v.addresses] }]));
  const wanted = new Map(target.vhids.map((v) => [keyOf(v), v]));
  const holder = (iface: string, address: string): string | undefined => {
    for (const [k, v] of sim) if (k.startsWith(`${iface}/`) && v.addresses.some((a) => addr(a) === addr(address))) return k;
    return undefined;
  };
  const setVhid = (t: SnapshotVhid) => {
    let cur = sim.get(keyOf(t));
    if (cur && sameParams(cur.params, t.params)) return;
    if (cur && protocolOf(cur.params) !== protocolOf(t.params)) {
      // The backend refuses a protocol change in place (EINVAL): recreate the vhid.
      const reason = `its protocol changes from ${protocolOf(cur.params)} to ${protocolOf(t.params)}, which needs a new vhid`;
      steps.push({ op: 'vhid.remove', interface: t.interface, vhid: t.vhid, reason });
      sim.delete(keyOf(t));
      cur = undefined;
    }
    steps.push({ op: 'vhid.set', interface: t.interface, vhid: t.vhid, params: t.params, create: !cur });
    if (cur) cur.params = t.params;
    else sim.set(keyOf(t), { params: t.params, addresses: [] });
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
    }
  }
  // 2. Remove what should not be there; vhids that are not wanted go whole.
  for (const [k, cur] of [...sim]) {
    const [iface, vhidText] = [k.slice(0, k.lastIndexOf('/')), k.slice(k.lastIndexOf('/') + 1)];
    const vhid = Number(vhidText);
    const t = wanted.get(k);
    if (!t) {
      steps.push({ op: 'vhid.remove', interface: iface, vhid });
      sim.delete(k);
      continue;
    }
    for (const a of [...cur.addresses]) {
      if (t.addresses.includes(a)) continue;
      steps.push({ op: 'address.remove', interface: iface, vhid, address: a });
      cur.addresses = cur.addresses.filter((x) => x !== a);
      if (cur.addresses.length === 0) sim.delete(k);
    }
  }
  // 3. Addresses that had to leave another vhid first; recreate a vhid that emptied on the way.
  for (const t of deferred) {
    setVhid(t);
    for (const a of t.addresses) {
      if (has(keyOf(t), a)) continue;
      steps.push({ op: 'address.add', interface: t.interface, vhid: t.vhid, address: a });
      sim.get(keyOf(t))!.addresses.push(a);
    }
  }
  // 4. Globals.
  if (target.carp.allow !== live.carp.allow || target.carp.preempt !== live.carp.preempt) steps.push({ op: 'carp.set', globals: target.carp });
  if (!target.maintenance && live.maintenance) steps.push({ op: 'maintenance.set', enabled: false });
  if (!samePfsync(target.pfsync, live.pfsync)) steps.push({ op: 'pfsync.set', settings: target.pfsync });
  return steps;
}

/**
 * The target for one change: what the change touches comes from the new desired state, what
 * it leaves alone stays as it is live. A change is then planned and undone on its own, and a
 * drift elsewhere (an interface that vanished) neither blocks it nor is repaired by it: that
 * is the reconciler's job.
 */
export function changeTarget(before: DesiredState, after: DesiredState, live: Snapshot): Snapshot {
  const next = targetOf(after);
  const prev = targetOf(before);
  const prevByKey = new Map(prev.vhids.map((v) => [keyOf(v), v]));
  const liveByKey = new Map(live.vhids.map((v) => [keyOf(v), v]));
  const nextKeys = new Set(next.vhids.map(keyOf));
  const vhids: SnapshotVhid[] = [];
  for (const v of next.vhids) {
    const old = prevByKey.get(keyOf(v));
    const unchanged = old !== undefined && JSON.stringify(old) === JSON.stringify(v);
    if (!unchanged) vhids.push(v);
    else if (liveByKey.has(keyOf(v))) vhids.push(liveByKey.get(keyOf(v))!);
  }
  // Live vhids the change does not remove stay, whether carpd configured them or not.
  for (const v of live.vhids) if (!nextKeys.has(keyOf(v)) && !prevByKey.has(keyOf(v))) vhids.push(v);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return {
    vhids,
    carp: same(prev.carp, next.carp) ? live.carp : next.carp,
    maintenance: prev.maintenance === next.maintenance ? live.maintenance : next.maintenance,
    pfsync: same(prev.pfsync, next.pfsync) ? live.pfsync : next.pfsync,
  };
}

/** What planning one change needs to know of the live kernel (the service keeps it: live-cache.ts). */
export interface LiveLookup {
  vhid(key: string): SnapshotVhid | undefined;
  /** Keys of the live vhids on `iface` that hold `address` (without its prefix length). */
  holders(iface: string, address: string): readonly string[];
  readonly carp: CarpGlobals;
  readonly maintenance: boolean;
  readonly pfsync: PfsyncSettings;
}

/**
 * changeTarget and the live state, cut down to what one change concerns: the vhids of the VIPs
 * it removed or changed for the kernel (`removed` and `added` as config/change.ts's diffStates
 * reports them), the live vhids holding an address one of those is to get (the planner takes
 * an address from its holder first), and the globals. plan() over the two gives the steps
 * plan(changeTarget(before, after, live), live) gives over everything — vhids outside the cut
 * are kept as they are live there, so they bring no step — at the cost of what changed.
 * `keys` is the cut, for planning the change back.
 */
export function changeScope(
  before: DesiredState,
  after: DesiredState,
  change: { removed: readonly VipConfig[]; added: readonly VipConfig[] },
  live: LiveLookup,
): { target: Snapshot; live: Snapshot; keys: string[] } {
  const was = new Map(change.removed.map((v) => [keyOf(v), JSON.stringify(vhidTarget(v))]));
  const keys = new Set<string>();
  const vhids: SnapshotVhid[] = [];
  for (const v of change.added) {
    const t = vhidTarget(v);
    // Changed only where the kernel does not look (a description): kept as it is live.
    if (was.get(keyOf(t)) === JSON.stringify(t)) continue;
    keys.add(keyOf(t));
    vhids.push(t);
  }
  // Gone from the desired state: not in the target, so plan() removes it if it is live.
  const addedKeys = new Set(change.added.map(keyOf));
  for (const k of was.keys()) if (!addedKeys.has(k)) keys.add(k);
  for (const t of [...vhids]) {
    for (const a of t.addresses) {
      for (const h of live.holders(t.interface, addr(a))) {
        if (keys.has(h)) continue;
        keys.add(h);
        vhids.push(live.vhid(h)!);
      }
    }
  }
  const liveVhids = [...keys]
    .map((k) => live.vhid(k))
    .filter((v): v is SnapshotVhid => v !== undefined)
    .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  const prev = globalsTarget(before);
  const next = globalsTarget(after);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  return {
    target: {
      vhids,
      carp: same(prev.carp, next.carp) ? live.carp : next.carp,
      maintenance: prev.maintenance === next.maintenance ? live.maintenance : next.maintenance,
      pfsync: same(prev.pfsync, next.pfsync) ? live.pfsync : next.pfsync,
    },
    live: { vhids: liveVhids, carp: live.carp, maintenance: live.maintenance, pfsync: live.pfsync },
    keys: [...keys],
  };
}

/** A step in words, for dry runs and logs. Keys are never shown, only that they change. */
export function describeStep(s: Step): { op: Step['op']; target: string; detail: string } {
  switch (s.op) {
    case 'vhid.set': {
      const p = s.params;
      const peers = [p.peer && `peer ${p.peer}`, p.peer6 && `peer6 ${p.peer6}`].filter(Boolean).join(', ');
      const timing =
        protocolOf(p) === 'vrrpv3'
          ? `VRRPv3 priority ${p.vrrpPriority ?? VIP_DEFAULTS.vrrpPriority}, interval ${p.vrrpIntervalCs ?? VIP_DEFAULTS.vrrpInterval} cs`
          : `advbase ${p.advbaseSec} s, advskew ${p.advskew}, ${p.key === undefined ? 'no password' : 'password set'}`;
      return {
        op: s.op,
        target: `${s.interface} vhid ${s.vhid}`,
        detail: `${s.create ? 'create' : 'update'}: ${timing}, ${peers === '' ? 'multicast' : `unicast ${peers}`}`,
      };
    }
    case 'vhid.remove':
      return { op: s.op, target: `${s.interface} vhid ${s.vhid}`, detail: `remove the vhid and its addresses${s.reason === undefined ? '' : `: ${s.reason}`}` };
    case 'address.add':
      return { op: s.op, target: `${s.interface} vhid ${s.vhid}`, detail: `add ${s.address}` };
    case 'address.remove':
      return { op: s.op, target: `${s.interface} vhid ${s.vhid}`, detail: `remove ${s.address}` };
    case 'carp.set':
      return { op: s.op, target: 'net.inet.carp', detail: `allow=${s.globals.allow ? 1 : 0} preempt=${s.globals.preempt ? 1 : 0}` };
    case 'maintenance.set':
      return { op: s.op, target: 'net.inet.carp.demotion', detail: s.enabled ? 'enter maintenance: demote this node by 240' : 'leave maintenance: take back the 240 demotion' };
    case 'pfsync.set': {
      const p = s.settings;
      return {
        op: s.op,
        target: 'pfsync0',
        detail: p.syncdev === undefined ? 'detach (pfsync off)' : `syncdev ${p.syncdev}, syncpeer ${p.syncpeer ?? 'multicast'}, maxupd ${p.maxupd}, defer ${p.defer ? 'on' : 'off'}, version ${p.version}`,
      };
    }
  }
}
