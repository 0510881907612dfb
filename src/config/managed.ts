/**
 * Which objects of a document a sync primary manages on its secondary: every VIP, hook and
 * webhook without `nosync` and CARP's enabled/preempt, minus what was detached here by a forced local edit.
 * The service's guard on a secondary asks this before it commits a local change; sync/derive.ts
 * moves the same objects.
 */
import { vipKey, type DesiredState, type VipConfig } from './model.js';

/**
 * The key of a hook or webhook among the detached objects (sync.detached.vips, beside the VIPs'
 * `interface/vhid` keys, which never hold a colon).
 */
export const hookKey = (name: string) => `hook:${name}`;
export const webhookKey = (name: string) => `webhook:${name}`;
export const trackKey = (name: string) => `track:${name}`;

/** The synced hooks and webhooks two documents hold differently, as detached-object keys. */
export function managedNotifyChanges(before: DesiredState, after: DesiredState): string[] {
  const detached = new Set(before.sync.detached.vips);
  const out: string[] = [];
  const compare = <T extends { name: string; nosync: boolean }>(a: readonly T[], b: readonly T[], key: (n: string) => string) => {
    if (a === b) return;
    const managed = (list: readonly T[]) => new Map(list.filter((x) => !x.nosync && !detached.has(key(x.name))).map((x) => [x.name, JSON.stringify(x)]));
    const was = managed(a ?? []);
    const is = managed(b ?? []);
    for (const n of new Set([...was.keys(), ...is.keys()])) if (was.get(n) !== is.get(n)) out.push(key(n));
  };
  compare(before.hooks, after.hooks, hookKey);
  compare(before.webhooks, after.webhooks, webhookKey);
  compare(before.tracks, after.tracks, trackKey);
  return out.sort();
}

/** Whether two documents differ in anything a secondary takes from its primary (for the 409 guard). */
export function managedChanges(before: DesiredState, after: DesiredState): { vips: string[]; carp: boolean } {
  const detached = new Set(before.sync.detached.vips);
  const managed = (s: DesiredState) => new Map(s.vips.filter((v) => !v.nosync && !detached.has(vipKey(v.interface, v.vhid))).map((v) => [vipKey(v.interface, v.vhid), JSON.stringify(v)]));
  const a = managed(before);
  const b = managed(after);
  const vips = new Set<string>();
  for (const [k, v] of a) if (b.get(k) !== v) vips.add(k);
  for (const [k, v] of b) if (a.get(k) !== v) vips.add(k);
  // A VIP turned nosync locally leaves sync too: that is a change of a managed object.
  for (const k of a.keys()) if (!b.has(k) && after.vips.some((v) => vipKey(v.interface, v.vhid) === k)) vips.add(k);
  const carp = !before.sync.detached.carp && (before.carp.enabled !== after.carp.enabled || before.carp.preempt !== after.carp.preempt);
  return { vips: [...[...vips].sort(), ...managedNotifyChanges(before, after)], carp };
}

/**
 * managedChanges for one change, from the VIPs it removed and added (as diffStates reports
 * them) instead of both whole documents: the same answer, at the cost of what changed.
 */
export function managedChangesOf(before: DesiredState, after: DesiredState, change: { removed: readonly VipConfig[]; added: readonly VipConfig[] }): { vips: string[]; carp: boolean } {
  const detached = new Set(before.sync.detached.vips);
  const key = (v: VipConfig) => vipKey(v.interface, v.vhid);
  const managed = (v: VipConfig | undefined) => (v && !v.nosync && !detached.has(key(v)) ? JSON.stringify(v) : undefined);
  const was = new Map(change.removed.map((v) => [key(v), v]));
  const is = new Map(change.added.map((v) => [key(v), v]));
  const vips = new Set<string>();
  for (const k of new Set([...was.keys(), ...is.keys()])) if (managed(was.get(k)) !== managed(is.get(k))) vips.add(k);
  const carp = !before.sync.detached.carp && (before.carp.enabled !== after.carp.enabled || before.carp.preempt !== after.carp.preempt);
  return { vips: [...[...vips].sort(), ...managedNotifyChanges(before, after)], carp };
}
