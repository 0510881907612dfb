/** The differences between two desired states in words, for dry runs. Secrets are named, never shown. */
import { sortVips, type DesiredState, type VipConfig } from '../config/model.js';

const FIELDS: (keyof VipConfig)[] = ['addresses', 'protocol', 'advbaseSec', 'advskew', 'vrrpPriority', 'vrrpInterval', 'mode', 'peer', 'peer6', 'description', 'nosync', 'macMode'];
const show = (v: unknown) => (v === undefined ? '(none)' : Array.isArray(v) ? v.join(', ') : String(v));

export function describeChanges(from: DesiredState, to: DesiredState): string[] {
  const out: string[] = [];
  eachChange(from, to, true, (words) => out.push(words()));
  return out;
}

/** How many lines describeChanges would write, without writing them. */
export function countChanges(from: DesiredState, to: DesiredState): number {
  let n = 0;
  eachChange(from, to, false, () => n++);
  return n;
}

/** Each difference, in words made only when asked for; VIPs in their sorted order when `sorted`. */
function eachChange(from: DesiredState, to: DesiredState, sorted: boolean, emit: (words: () => string) => void): void {
  const key = (v: VipConfig) => `${v.interface} vhid ${v.vhid}`;
  const before = new Map(from.vips.map((v) => [key(v), v]));
  const after = new Map(to.vips.map((v) => [key(v), v]));
  for (const v of sorted ? sortVips(from.vips) : from.vips) if (!after.has(key(v))) emit(() => `remove VIP ${key(v)} (${v.addresses.join(', ')})`);
  for (const v of sorted ? sortVips(to.vips) : to.vips) {
    const old = before.get(key(v));
    if (!old) {
      emit(() => `add VIP ${key(v)} (${v.addresses.join(', ')})`);
      continue;
    }
    if (old === v) continue;
    for (const f of FIELDS) {
      if (JSON.stringify(old[f]) !== JSON.stringify(v[f])) emit(() => `${key(v)}: ${f === 'advbaseSec' ? 'advbase' : f} ${show(old[f])} -> ${show(v[f])}`);
    }
    if (old.password !== v.password) emit(() => `${key(v)}: password ${v.password === undefined ? 'removed' : old.password === undefined ? 'set' : 'changed'}`);
  }
  for (const f of ['enabled', 'preempt', 'maintenance'] as const) {
    if (from.carp[f] !== to.carp[f]) emit(() => `carp.${f}: ${from.carp[f]} -> ${to.carp[f]}`);
  }
  for (const f of ['enabled', 'syncdev', 'syncpeer', 'maxupd', 'defer', 'version'] as const) {
    if (from.pfsync[f] !== to.pfsync[f]) emit(() => `pfsync.${f}: ${show(from.pfsync[f])} -> ${show(to.pfsync[f])}`);
  }
  const names = (s: DesiredState) => new Map(s.api.tokens.map((t) => [t.name, t.role]));
  const tb = names(from);
  const ta = names(to);
  for (const [n] of tb) if (!ta.has(n)) emit(() => `remove token ${n}`);
  for (const [n, r] of ta) if (!tb.has(n)) emit(() => `add token ${n} (${r})`);
  eachNamed('hook', from.hooks ?? [], to.hooks ?? [], (h) => h.command.join(' '), emit);
  eachNamed('webhook', from.webhooks ?? [], to.webhooks ?? [], (w) => w.url, emit);
  eachNamed('track', from.tracks ?? [], to.tracks ?? [], (t) => t.kind, emit);
}

/** Hooks or webhooks added, removed or changed (a webhook's secret named, never shown). */
function eachNamed<T extends { name: string }>(what: string, from: readonly T[], to: readonly T[], label: (x: T) => string, emit: (words: () => string) => void): void {
  if (from === to) return;
  const before = new Map(from.map((x) => [x.name, x]));
  const after = new Map(to.map((x) => [x.name, x]));
  for (const x of from) if (!after.has(x.name)) emit(() => `remove ${what} ${x.name}`);
  for (const x of to) {
    const old = before.get(x.name);
    if (!old) emit(() => `add ${what} ${x.name} (${label(x)})`);
    else if (old !== x) {
      const rec = (o: T) => o as unknown as Record<string, unknown>;
      for (const f of Object.keys({ ...rec(old), ...rec(x) })) {
        if (f === 'name' || JSON.stringify(rec(old)[f]) === JSON.stringify(rec(x)[f])) continue;
        emit(() => (f === 'secret' ? `${what} ${x.name}: secret changed` : `${what} ${x.name}: ${f} ${JSON.stringify(rec(old)[f])} -> ${JSON.stringify(rec(x)[f])}`));
      }
    }
  }
}
