/**
 * Planning a change (pure): the target a desired state gives the backend, the target of one
 * change, and steps in words. The planner itself (kernel/plan.ts) turns one live snapshot into
 * another: vhids before their addresses, additions before removals, protocol changes as a new vhid.
 */
import { VIP_DEFAULTS, type DesiredState, type VipConfig } from '../config/model.js';
import type { CarpGlobals, PfsyncSettings } from '../kernel/backend.js';
import { plan, protocolOf, type Snapshot, type SnapshotVhid, type Step } from '../kernel/plan.js';
import { cidrOf } from '../wire/address.js';

export { plan, protocolOf, type Snapshot, type SnapshotVhid, type Step };

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
      ...(v.macMode !== undefined ? { macMode: v.macMode } : {}),
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
  const was = new Map(change.removed.map((v) => [keyOf(v), v]));
  const keys = new Set<string>();
  const vhids: SnapshotVhid[] = [];
  for (const v of change.added) {
    const t = vhidTarget(v);
    // Changed only where the kernel does not look (a description): kept as it is live.
    const old = was.get(keyOf(t));
    if (old !== undefined && JSON.stringify(vhidTarget(old)) === JSON.stringify(t)) continue;
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
