/** Internal records in the API's shapes. Nothing secret is ever copied into a view. */
import { VIP_DEFAULTS, sortVips, type DesiredState, type VipConfig } from '../config/model.js';
import { effectiveSkew, type LiveVhid, type PfsyncLive } from '../service/live.js';

/** carp VIPs show advbase/advskew, vrrpv3 VIPs vrrpPriority/vrrpInterval (the others do not apply). */
function timingView(protocol: VipConfig['protocol'], carp: { advbase: number; advskew: number; effectiveSkew?: number }, vrrp: { vrrpPriority?: number; vrrpInterval?: number }) {
  if (protocol !== 'vrrpv3') return { protocol: 'carp', ...carp };
  return { protocol, vrrpPriority: vrrp.vrrpPriority ?? VIP_DEFAULTS.vrrpPriority, vrrpInterval: vrrp.vrrpInterval ?? VIP_DEFAULTS.vrrpInterval };
}

export function vipView(v: VipConfig, live?: LiveVhid) {
  const out: Record<string, unknown> = {
    interface: v.interface,
    vhid: v.vhid,
    addresses: v.addresses,
    ...timingView(v.protocol, { advbase: v.advbaseSec, advskew: v.advskew }, v),
    mode: v.mode,
    description: v.description,
    nosync: v.nosync,
    hasPassword: v.password !== undefined,
  };
  if (v.peer !== undefined) out.peer = v.peer;
  if (v.peer6 !== undefined) out.peer6 = v.peer6;
  if (live) out.live = { state: live.state, since: live.since.toISOString(), reason: live.reason };
  return out;
}

export function liveIndex(live: LiveVhid[]): (v: VipConfig) => LiveVhid | undefined {
  const m = new Map(live.map((l) => [`${l.interface}/${l.vhid}`, l]));
  return (v) => m.get(`${v.interface}/${v.vhid}`);
}

export function pfsyncConfigView(p: DesiredState['pfsync']) {
  const out: Record<string, unknown> = { enabled: p.enabled, maxupd: p.maxupd, defer: p.defer, version: p.version };
  if (p.syncdev !== undefined) out.syncdev = p.syncdev;
  if (p.syncpeer !== undefined) out.syncpeer = p.syncpeer;
  return out;
}

export function pfsyncStatusView(p: PfsyncLive) {
  const out: Record<string, unknown> = { running: p.running, bulkUpdateDone: p.bulkUpdateDone, maxupd: p.maxupd, defer: p.defer, version: p.version };
  if (p.syncdev !== undefined) out.syncdev = p.syncdev;
  if (p.syncpeer !== undefined) out.syncpeer = p.syncpeer;
  return out;
}

export function configView(s: DesiredState) {
  return {
    schemaVersion: s.schemaVersion,
    revision: s.revision,
    updatedAt: s.updatedAt,
    vips: sortVips(s.vips).map((v) => vipView(v)),
    carp: { ...s.carp },
    pfsync: pfsyncConfigView(s.pfsync),
    api: { tokens: s.api.tokens.map((t) => ({ name: t.name, role: t.role, createdAt: t.createdAt })) },
  };
}

export const etagOf = (revision: number) => `"${revision}"`;

export function vhidStatusView(v: LiveVhid, demotion: number) {
  return {
    interface: v.interface,
    vhid: v.vhid,
    state: v.state,
    since: v.since.toISOString(),
    reason: v.reason,
    ...timingView(v.protocol ?? 'carp', { advbase: v.advbaseSec, advskew: v.advskew, effectiveSkew: effectiveSkew(v.advskew, demotion) }, { vrrpPriority: v.vrrpPriority, vrrpInterval: v.vrrpIntervalCs }),
    addresses: v.addresses,
  };
}
