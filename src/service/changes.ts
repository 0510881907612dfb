/** The differences between two desired states in words, for dry runs. Secrets are named, never shown. */
import { sortVips, type DesiredState, type VipConfig } from '../config/model.js';

const FIELDS: (keyof VipConfig)[] = ['addresses', 'protocol', 'advbaseSec', 'advskew', 'vrrpPriority', 'vrrpInterval', 'mode', 'peer', 'peer6', 'description', 'nosync'];
const show = (v: unknown) => (v === undefined ? '(none)' : Array.isArray(v) ? v.join(', ') : String(v));

export function describeChanges(from: DesiredState, to: DesiredState): string[] {
  const out: string[] = [];
  const key = (v: VipConfig) => `${v.interface} vhid ${v.vhid}`;
  const before = new Map(from.vips.map((v) => [key(v), v]));
  const after = new Map(to.vips.map((v) => [key(v), v]));
  for (const v of sortVips(from.vips)) if (!after.has(key(v))) out.push(`remove VIP ${key(v)} (${v.addresses.join(', ')})`);
  for (const v of sortVips(to.vips)) {
    const old = before.get(key(v));
    if (!old) {
      out.push(`add VIP ${key(v)} (${v.addresses.join(', ')})`);
      continue;
    }
    for (const f of FIELDS) {
      if (JSON.stringify(old[f]) !== JSON.stringify(v[f])) out.push(`${key(v)}: ${f === 'advbaseSec' ? 'advbase' : f} ${show(old[f])} -> ${show(v[f])}`);
    }
    if (old.password !== v.password) out.push(`${key(v)}: password ${v.password === undefined ? 'removed' : old.password === undefined ? 'set' : 'changed'}`);
  }
  for (const f of ['enabled', 'preempt', 'maintenance'] as const) {
    if (from.carp[f] !== to.carp[f]) out.push(`carp.${f}: ${from.carp[f]} -> ${to.carp[f]}`);
  }
  for (const f of ['enabled', 'syncdev', 'syncpeer', 'maxupd', 'defer', 'version'] as const) {
    if (from.pfsync[f] !== to.pfsync[f]) out.push(`pfsync.${f}: ${show(from.pfsync[f])} -> ${show(to.pfsync[f])}`);
  }
  const names = (s: DesiredState) => new Map(s.api.tokens.map((t) => [t.name, t.role]));
  const tb = names(from);
  const ta = names(to);
  for (const [n] of tb) if (!ta.has(n)) out.push(`remove token ${n}`);
  for (const [n, r] of ta) if (!tb.has(n)) out.push(`add token ${n} (${r})`);
  return out;
}
