/**
 * What config sync moves, and what a secondary makes of it. Pure functions over desired-state
 * documents; the transport (transport.ts) and the push loop (manager.ts) carry the results.
 *
 *   primary:   snapshotOf(state)            -> Snapshot (every synced object, whole)
 *   secondary: applySnapshot(local, snap)   -> the local document with the synced parts
 *                                              replaced and this node's values derived
 *
 * Synced: every VIP, hook and webhook without `nosync` (passwords and webhook secrets included: the link is mutually authenticated
 * TLS with pinned certificates), and CARP's enabled/preempt. Never synced: maintenance, pfsync
 * (syncdev and syncpeer are per node by nature), API tokens, the sync section itself.
 *
 * Per-node values instead of fixed rules:
 *   - advskew (carp) = override ?? min(primary's + rule.add, rule.cap); vrrpPriority (vrrpv3)
 *     = override ?? max(primary's − rule.add, 1): the secondary stays the less preferred node;
 *   - a unicast VIP's peer/peer6 on the secondary is the primary's own address in the subnet
 *     of the primary's peer (which is the secondary's address): swapped, not copied. The
 *     primary sends its localAddresses for that;
 *   - objects detached on the secondary by a forced local edit, and its nosync VIPs, are kept.
 * Every snapshot is whole, so a secondary that missed any number of pushes converges on the
 * next one, and applying the same snapshot twice changes nothing.
 */
import { CarpdError } from '../errors.js';
import { canonicalIp, ipBytes, parseCidr } from '../wire/address.js';
import { sortVips, vipKey, type CarpConfig, type DesiredState, type HookConfig, type TrackConfig, type VipConfig, type WebhookConfig } from '../config/model.js';
import { hookKey, trackKey, webhookKey } from '../config/managed.js';

export interface Snapshot {
  /** The primary's revision this snapshot is. */
  revision: number;
  vips: VipConfig[];
  carp: Pick<CarpConfig, 'enabled' | 'preempt'>;
  /** The primary's own addresses with prefixes (sync.localAddresses), for unicast peers. */
  localAddresses: string[];
  /** Hooks and webhooks without nosync; absent from an older primary (the secondary's are then kept). */
  hooks?: HookConfig[];
  webhooks?: WebhookConfig[];
  /** Tracks without nosync; absent from an older primary (the secondary's are then kept). */
  tracks?: TrackConfig[];
}

export function snapshotOf(s: DesiredState): Snapshot {
  return {
    revision: s.revision,
    vips: sortVips(s.vips.filter((v) => !v.nosync)).map((v) => structuredClone(v)),
    carp: { enabled: s.carp.enabled, preempt: s.carp.preempt },
    localAddresses: [...s.sync.localAddresses],
    hooks: (s.hooks ?? []).filter((h) => !h.nosync).map((h) => structuredClone(h)),
    webhooks: (s.webhooks ?? []).filter((w) => !w.nosync).map((w) => structuredClone(w)),
    tracks: (s.tracks ?? []).filter((t) => !t.nosync).map((t) => structuredClone(t)),
  };
}

/** The secondary's list after the primary's: its own (nosync) and detached ones kept, by name, the rest the primary's. */
function mergeNamed<T extends { name: string; nosync: boolean }>(local: readonly T[], incoming: readonly T[], detached: ReadonlySet<string>, key: (n: string) => string): T[] {
  const kept = local.filter((x) => x.nosync || detached.has(key(x.name)));
  const names = new Set(kept.map((x) => x.name));
  return [...kept, ...incoming.filter((x) => !names.has(x.name) && !detached.has(key(x.name))).map((x) => structuredClone(x))];
}

/** The address in `addresses` (CIDRs) whose subnet contains `target`, of target's family. */
function inSubnetOf(addresses: readonly string[], target: string): string | undefined {
  const t = canonicalIp(target);
  if (!t) return undefined;
  for (const a of addresses) {
    const c = parseCidr(a);
    if (c && c.family === t.family && sameSubnet(c.address, t.address, c.prefix)) return c.address;
  }
  return undefined;
}

/** Whether a and b (same family) agree in their first `prefix` bits. */
function sameSubnet(a: string, b: string, prefix: number): boolean {
  const x = ipBytes(a);
  const y = ipBytes(b);
  const whole = prefix >> 3;
  if (!x.subarray(0, whole).equals(y.subarray(0, whole))) return false;
  const rest = prefix & 7;
  return rest === 0 || (x[whole] ^ y[whole]) >> (8 - rest) === 0;
}

/**
 * The secondary's document after `snap`: synced objects replaced, per-node values derived,
 * detached and nosync objects kept, appliedRevision recorded. Throws CarpdError
 * (CARPD_ERR_INVALID_VALUE) when a unicast peer cannot be swapped; the caller then keeps the
 * previous revision.
 */
export function applySnapshot(local: DesiredState, snap: Snapshot): DesiredState {
  const next = structuredClone(local);
  const y = local.sync;
  const detached = new Set(y.detached.vips);
  const kept = local.vips.filter((v) => v.nosync || detached.has(vipKey(v.interface, v.vhid)));
  const keptKeys = new Set(kept.map((v) => vipKey(v.interface, v.vhid)));
  const problems: string[] = [];
  const incoming = snap.vips
    .filter((v) => !keptKeys.has(vipKey(v.interface, v.vhid)) && !detached.has(vipKey(v.interface, v.vhid)))
    .map((v) => {
      const d = structuredClone(v);
      const override = y.overrides.find((o) => o.interface === v.interface && o.vhid === v.vhid);
      if (d.protocol === 'vrrpv3') {
        d.vrrpPriority = override?.vrrpPriority ?? Math.max((v.vrrpPriority ?? 100) - y.advskewRule.add, 1);
      } else {
        d.advskew = override?.advskew ?? Math.min(v.advskew + y.advskewRule.add, y.advskewRule.cap);
      }
      if (d.mode === 'unicast') {
        for (const field of ['peer', 'peer6'] as const) {
          const theirPeer = v[field];
          if (theirPeer === undefined) continue;
          const mine = inSubnetOf(snap.localAddresses, theirPeer);
          if (!mine) {
            problems.push(`${vipKey(v.interface, v.vhid)} is unicast with ${field} ${theirPeer}, but the primary's sync.localAddresses has no address in that subnet to give this node as its ${field}`);
            continue;
          }
          if (y.localAddresses.length > 0 && !y.localAddresses.some((a) => parseCidr(a)?.address === canonicalIp(theirPeer)?.address)) {
            problems.push(`${vipKey(v.interface, v.vhid)}: the primary's ${field} is ${theirPeer}, which is not one of this node's sync.localAddresses (${y.localAddresses.join(', ')})`);
            continue;
          }
          d[field] = mine;
        }
      }
      return d;
    });
  if (problems.length > 0) throw new CarpdError('CARPD_ERR_INVALID_VALUE', `the primary's revision ${snap.revision} cannot be applied here: ${problems.join('; ')}`);
  next.vips = sortVips([...kept, ...incoming]);
  if (!y.detached.carp) {
    next.carp.enabled = snap.carp.enabled;
    next.carp.preempt = snap.carp.preempt;
  }
  if (snap.hooks) next.hooks = mergeNamed(local.hooks ?? [], snap.hooks, detached, hookKey);
  if (snap.webhooks) next.webhooks = mergeNamed(local.webhooks ?? [], snap.webhooks, detached, webhookKey);
  // A nosync track is this node's own (a gateway only it reaches); the rest are the primary's.
  if (snap.tracks) next.tracks = mergeNamed(local.tracks ?? [], snap.tracks, detached, trackKey);
  next.sync.appliedRevision = snap.revision;
  return next;
}
