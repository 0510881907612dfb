/**
 * Internal records in the API's shapes, typed by the spec's response schemas. Nothing secret
 * is ever copied into a view.
 */
import { VIP_DEFAULTS, sortVips, type DesiredState, type HookConfig, type TrackConfig, type VipConfig, type WebhookConfig } from '../config/model.js';
import { effectiveSkew, type LiveVhid, type PfsyncLive } from '../service/live.js';
import type { TrackLive } from '../service/tracks.js';
import type { Assert, SameFields, Schema } from './typed.js';

type CarpFields = { advbase: number; advskew: number };

/** carp VIPs show advbase/advskew, vrrpv3 VIPs vrrpPriority/vrrpInterval (the others do not apply). */
function timingView<C extends CarpFields>(protocol: VipConfig['protocol'], carp: C, vrrp: { vrrpPriority?: number; vrrpInterval?: number }): ({ protocol: 'carp' } & C) | Schema<'VrrpTiming'> {
  if (protocol !== 'vrrpv3') return { protocol: 'carp', ...carp };
  return { protocol, vrrpPriority: vrrp.vrrpPriority ?? VIP_DEFAULTS.vrrpPriority, vrrpInterval: vrrp.vrrpInterval ?? VIP_DEFAULTS.vrrpInterval };
}

export function vipView(v: VipConfig, live?: LiveVhid): Schema<'Vip'> {
  const out: Schema<'Vip'> = {
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
  if (v.macMode !== undefined) out.macMode = v.macMode;
  if (live) out.live = { state: live.state, since: live.since.toISOString(), reason: live.reason };
  return out;
}

export function liveIndex(live: LiveVhid[]): (v: VipConfig) => LiveVhid | undefined {
  const m = new Map(live.map((l) => [`${l.interface}/${l.vhid}`, l]));
  return (v) => m.get(`${v.interface}/${v.vhid}`);
}

// GET /v1/pfsync answers the settings as GET /v1/config shows them, with the live status.
type PfsyncSettings = Schema<'Config'>['pfsync'];
type PfsyncViewsMatch = Assert<SameFields<Omit<Schema<'PfsyncView'>, 'status'>, PfsyncSettings>>;

export function pfsyncConfigView(p: DesiredState['pfsync']): PfsyncSettings {
  const out: PfsyncSettings = { enabled: p.enabled, maxupd: p.maxupd, defer: p.defer, version: p.version };
  if (p.syncdev !== undefined) out.syncdev = p.syncdev;
  if (p.syncpeer !== undefined) out.syncpeer = p.syncpeer;
  return out;
}

export function pfsyncStatusView(p: PfsyncLive): Schema<'PfsyncStatus'> {
  const out: Schema<'PfsyncStatus'> = { running: p.running, bulkUpdateDone: p.bulkUpdateDone, maxupd: p.maxupd, defer: p.defer, version: p.version };
  if (p.syncdev !== undefined) out.syncdev = p.syncdev;
  if (p.syncpeer !== undefined) out.syncpeer = p.syncpeer;
  return out;
}

export function tokenView(t: DesiredState['api']['tokens'][number]): Schema<'Token'> {
  return { name: t.name, role: t.role, createdAt: t.createdAt };
}

/** A hook as the API shows it. */
export function hookView(h: HookConfig): Schema<'Hook'> {
  return { name: h.name, events: h.events.map((f) => ({ ...f })), command: [...h.command], timeoutSec: h.timeoutSec, env: { ...h.env }, nosync: h.nosync };
}

/** A webhook as the API shows it: the secret is never copied, only that there is one. */
export function webhookView(w: WebhookConfig): Schema<'Webhook'> {
  return { name: w.name, url: w.url, events: w.events.map((f) => ({ ...f })), timeoutSec: w.timeoutSec, nosync: w.nosync, hasSecret: w.secret !== '' };
}

/** A track's configuration as the API shows it (GET /v1/config; GET /v1/tracks adds its live state). */
export function trackConfigView(t: TrackConfig): Schema<'TrackConfig'> {
  const o: Schema<'TrackConfig'> = { name: t.name, kind: t.kind, intervalMs: t.intervalMs, timeoutMs: t.timeoutMs, rise: t.rise, fall: t.fall, weight: t.weight, nosync: t.nosync };
  if (t.interface !== undefined) o.interface = t.interface;
  if (t.target !== undefined) o.target = t.target;
  if (t.port !== undefined) o.port = t.port;
  if (t.url !== undefined) o.url = t.url;
  if (t.statusMin !== undefined) o.statusMin = t.statusMin;
  if (t.statusMax !== undefined) o.statusMax = t.statusMax;
  if (t.command !== undefined) o.command = [...t.command];
  return o;
}

/**
 * A track with its live state: `live` from the service's TrackBoard (absent: this process runs
 * no tracks yet, or not this one yet; shown as unknown since `startedAt`). `wall` shows a
 * monotonic instant as wall time.
 */
export function trackView(t: TrackConfig, live: TrackLive | undefined, wall: (monoMs: number) => Date, startedAt: Date): Schema<'Track'> {
  const st = live?.status;
  return {
    ...trackConfigView(t),
    status: {
      state: st?.state ?? 'unknown',
      since: (st ? wall(st.since) : startedAt).toISOString(),
      reason: st?.reason ?? 'not probed yet',
      successes: st?.successes ?? 0,
      failures: st?.failures ?? 0,
      probes: st?.probes ?? 0,
      lastProbe: st?.last ? { ok: st.last.ok, ms: Math.round(st.last.ms * 1000) / 1000, detail: st.last.detail, at: wall(st.last.at).toISOString() } : null,
      demotion: live?.demotion ?? 0,
    },
  };
}

export function configView(s: DesiredState): Schema<'Config'> {
  return {
    schemaVersion: s.schemaVersion,
    revision: s.revision,
    updatedAt: s.updatedAt,
    vips: sortVips(s.vips).map((v) => vipView(v)),
    hooks: (s.hooks ?? []).map(hookView),
    webhooks: (s.webhooks ?? []).map(webhookView),
    tracks: (s.tracks ?? []).map(trackConfigView),
    carp: { ...s.carp },
    pfsync: pfsyncConfigView(s.pfsync),
    api: { tokens: s.api.tokens.map(tokenView) },
  };
}

export const etagOf = (revision: number) => `"${revision}"`;

export function vhidStatusView(v: LiveVhid, demotion: number): Schema<'VhidStatus'> {
  return {
    interface: v.interface,
    vhid: v.vhid,
    state: v.state,
    since: v.since.toISOString(),
    reason: v.reason,
    ...timingView(v.protocol ?? 'carp', { advbase: v.advbaseSec, advskew: v.advskew, effectiveSkew: effectiveSkew(v.advskew, demotion) }, { vrrpPriority: v.vrrpPriority, vrrpInterval: v.vrrpIntervalCs }),
    addresses: v.addresses,
    ...(v.mac !== undefined ? { mac: v.mac, virtualMac: v.virtualMac ?? false } : {}),
    ...(v.mac6 !== undefined ? { mac6: v.mac6 } : {}),
  };
}
