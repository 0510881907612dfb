/**
 * GET /v1/cluster/diagnostics (carpctl doctor): what is wrong with this HA pair, where, and what
 * to do. Two halves:
 *
 *   collectDiagnostics(service, sync, opts)   reads: the cluster view (both nodes over the sync
 *                                             link), this node's sync status, desired VIPs, live
 *                                             vhids, CARP counters, the peer's clock (health)
 *   diagnose(input)                           pure: the findings and the list of checks
 *
 * Every check in DIAG_CHECKS is listed in `checks` with status pass, finding or not-checked (with
 * the reason): a check that could not be made is never reported as passed. Codes are stable
 * (`CARPD_DIAG_*`); severities are info < warning < error < critical.
 */
import type { VipConfig } from '../config/model.js';
import type { AdvertSource } from '../service/live.js';
import type { CarpService } from '../service/service.js';
import { canonicalIp, ipBytes, parseCidr } from '../wire/address.js';
import { MAX_SKEW_MS } from './envelope.js';
import type { ClusterNode, SplitVhid, SyncManager } from './manager.js';

export const DIAG_SEVERITIES = ['info', 'warning', 'error', 'critical'] as const;
export type DiagSeverity = (typeof DIAG_SEVERITIES)[number];

/** Every check the doctor makes, in the order listed; each code is also the code of its findings. */
export const DIAG_CHECKS = [
  'CARPD_DIAG_PEER_UNREACHABLE',
  'CARPD_DIAG_SPLIT_BRAIN',
  'CARPD_DIAG_SYNC_ERROR',
  'CARPD_DIAG_SYNC_LAG',
  'CARPD_DIAG_SYNC_DETACHED',
  'CARPD_DIAG_PREEMPT_DIFFERS',
  'CARPD_DIAG_SKEW_NOT_PREFERRED',
  'CARPD_DIAG_SECONDARY_IS_MASTER',
  'CARPD_DIAG_LISTENER_ON_VIP',
  'CARPD_DIAG_CLOCK_SKEW',
  'CARPD_DIAG_CARP_BAD_AUTH',
  'CARPD_DIAG_PEER_NOT_HEARD',
  'CARPD_DIAG_FOREIGN_ADVERTISER',
  'CARPD_DIAG_NO_OWN_ADDRESS',
  'CARPD_DIAG_PFSYNC_NOT_RUNNING',
  'CARPD_DIAG_PFSYNC_DIFFERS',
  'CARPD_DIAG_PFSYNC_BULK_PENDING',
  'CARPD_DIAG_PFSYNC_SYNCDEV',
  'CARPD_DIAG_PFSYNC_VERSION',
] as const;
export type DiagCode = (typeof DIAG_CHECKS)[number];

/** Senders heard within this long count for the advertisement checks. */
export const HEARD_RECENT_MS = 10 * 60_000;
/** Lag of the config sync (primary) beyond which it is a warning. */
export const SYNC_LAG_WARN_SECONDS = 60;
/** Clocks further apart than this are an error: the sync envelope's window is ±MAX_SKEW_MS. */
export const CLOCK_SKEW_LIMIT_MS = MAX_SKEW_MS / 2;

export interface DiagObject {
  node?: string;
  interface?: string;
  vhid?: number;
  listener?: 'api' | 'sync';
  address?: string;
}
export type DiagValue = string | number | boolean | null;
export interface DiagEvidence {
  /** The node the values were read from (its name, or "peer" when it could not be named). */
  node: string;
  values: Record<string, DiagValue>;
}
export interface DiagFinding {
  code: DiagCode;
  severity: DiagSeverity;
  summary: string;
  objects: DiagObject[];
  evidence: DiagEvidence[];
  fix: string;
}
export interface DiagCheck {
  code: DiagCode;
  status: 'pass' | 'finding' | 'not-checked';
  reason?: string;
}
export interface Diagnostics {
  generatedAt: string;
  node: string;
  /** The highest severity among the findings; null with none. */
  worst: DiagSeverity | null;
  findings: DiagFinding[];
  checks: DiagCheck[];
}

export interface Listener {
  /** `api` (--listen) or `sync` (--sync-listen). */
  name: 'api' | 'sync';
  host: string;
  port: number;
}

type ReachedNode = Extract<ClusterNode, { reachable: true }>;
type SyncStatus = ReturnType<SyncManager['status']>;

/** What diagnose() reads; undefined or an `error` means it could not be read (those checks are not-checked). */
export interface DiagnosticsInput {
  node: string;
  generatedAt: string;
  cluster: { nodes: ClusterNode[]; splitBrain: SplitVhid[] };
  sync: Pick<SyncStatus, 'role' | 'peer' | 'lag' | 'lastError' | 'lastSuccess' | 'detached' | 'advskewRule' | 'overrides' | 'localAddresses' | 'peerRevision' | 'localRevision'>;
  vips: readonly (Pick<VipConfig, 'interface' | 'vhid' | 'addresses' | 'advskew' | 'protocol'> & Partial<Pick<VipConfig, 'peer' | 'peer6'>>)[];
  /** The listeners this node knows of; the API's is unknown where the app was not told (not-checked). */
  listeners: { api?: Listener[]; sync?: Listener | null };
  /** This node's CARP counters (KernelStats.carp), or why they could not be read. */
  carpStats: Record<string, number> | { error: string };
  /** The senders of advertisements this node's backend heard per vhid; undefined: the backend keeps no such record. */
  advertSources?: AdvertSource[] | { error: string };
  /** The peer's wall clock minus this node's (ms), or why it could not be measured. */
  clockOffset?: { offsetMs: number; peerAt: string; localAt: string } | { error: string };
}

const RANK: Record<DiagSeverity, number> = { info: 0, warning: 1, error: 2, critical: 3 };

/** True when `address` lies in `cidr`'s subnet (same family). */
export function inSubnet(address: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  const ip = canonicalIp(address);
  if (!c || !ip || ip.family !== c.family) return false;
  const a = ipBytes(ip.address);
  const b = ipBytes(c.address);
  let bits = c.prefix;
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

const vkey = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;

export function diagnose(input: DiagnosticsInput): Diagnostics {
  const findings: DiagFinding[] = [];
  const notChecked = new Map<DiagCode, string>();
  const add = (f: DiagFinding) => findings.push(f);
  const skip = (code: DiagCode, reason: string) => notChecked.set(code, reason);

  const self = input.cluster.nodes.find((n): n is ReachedNode => n.self && n.reachable);
  const peerEntry = input.cluster.nodes.find((n) => !n.self);
  const peer = peerEntry && peerEntry.reachable ? (peerEntry as ReachedNode) : undefined;
  const peerName = peer?.node ?? 'peer';
  const noPeer = 'no sync peer is configured: the check needs both nodes';
  const unreached = 'the sync peer could not be reached';

  // -- the peer itself
  if (!peerEntry) skip('CARPD_DIAG_PEER_UNREACHABLE', noPeer);
  else if (!peerEntry.reachable) {
    add({
      code: 'CARPD_DIAG_PEER_UNREACHABLE',
      severity: 'error',
      summary: 'the sync peer does not answer over the sync link',
      objects: [{ node: 'peer', address: input.sync.peer ? `${input.sync.peer.address}:${input.sync.peer.port}` : undefined }],
      evidence: [{ node: input.node, values: { error: peerEntry.error, peer: input.sync.peer ? `${input.sync.peer.address}:${input.sync.peer.port}` : null } }],
      fix: "check that carpd runs on the peer with --sync-listen on that address and port, that the path between the nodes lets it through, and that each node pins the other's fingerprint (carpctl sync identity)",
    });
  }
  const peerSkip = (code: DiagCode) => skip(code, !peerEntry ? noPeer : unreached);

  // -- 1/7 split brain: MASTER on both (the watch's set, and the cluster view read now)
  if (!peer) peerSkip('CARPD_DIAG_SPLIT_BRAIN');
  else {
    const split = new Map<string, { interface: string; vhid: number; since?: string }>();
    for (const v of input.cluster.splitBrain) split.set(vkey(v), v);
    for (const v of self?.vhids ?? []) {
      if (v.state === 'MASTER' && peer.vhids.some((p) => vkey(p) === vkey(v) && p.state === 'MASTER') && !split.has(vkey(v))) split.set(vkey(v), { interface: v.interface, vhid: v.vhid });
    }
    for (const v of split.values()) {
      const vip = input.vips.find((x) => vkey(x) === vkey(v));
      const unicast = input.sync.peer ? ` (e.g. carpctl vip set ${v.interface}/${v.vhid} --mode unicast --peer <the peer's own address on ${v.interface}>)` : '';
      add({
        code: 'CARPD_DIAG_SPLIT_BRAIN',
        severity: 'critical',
        summary: `${v.interface} vhid ${v.vhid} is MASTER on both nodes: neither hears the other's advertisements`,
        objects: [{ interface: v.interface, vhid: v.vhid }],
        evidence: [
          { node: input.node, values: { state: 'MASTER', since: self?.vhids.find((x) => vkey(x) === vkey(v))?.since ?? null, splitSince: v.since ?? null, protocol: vip?.protocol ?? null } },
          { node: peerName, values: { state: 'MASTER', since: peer.vhids.find((x) => vkey(x) === vkey(v))?.since ?? null } },
        ],
        fix: `the advertisements do not cross between the nodes on ${v.interface}: check the switch (multicast or IGMP snooping filtering 224.0.0.18 / ff02::12), VLAN tagging and the password and address list on both; where multicast cannot be made to pass, use unicast with each node's own address as the other's peer${unicast}`,
      });
    }
  }
  const heard = input.advertSources;
  const recent = heard && !('error' in heard) ? heard.filter((h) => h.ageMs <= HEARD_RECENT_MS) : undefined;
  if (!heard) skip('CARPD_DIAG_FOREIGN_ADVERTISER', "this node's backend does not record the senders of the advertisements it hears (carp(4) keeps no such record; the sim and linux engines do)");
  else if ('error' in heard) skip('CARPD_DIAG_FOREIGN_ADVERTISER', `the senders heard could not be read: ${heard.error}`);
  else {
    // A pair has one other sender per vhid: a second one is another CARP or VRRP router on the segment.
    const known = new Set<string>([peer?.node, input.sync.peer?.address].filter((x): x is string => !!x));
    for (const v of input.vips) {
      const from = recent!.filter((h) => h.iface === v.interface && h.vhid === v.vhid);
      const senders = [...new Set(from.map((h) => h.from))];
      if (senders.length < 2) continue;
      const foreign = senders.filter((f) => !known.has(f) && f !== v.peer && f !== v.peer6);
      const used = new Set([...input.vips.filter((x) => x.interface === v.interface).map((x) => x.vhid), ...recent!.filter((h) => h.iface === v.interface).map((h) => h.vhid)]);
      let free: number | null = null;
      for (let n = 1; n <= 255 && free === null; n++) if (!used.has(n)) free = n;
      add({
        code: 'CARPD_DIAG_FOREIGN_ADVERTISER',
        severity: 'error',
        summary: `${v.interface} vhid ${v.vhid}: advertisements from ${senders.length} senders (${senders.join(', ')}); a pair has one other`,
        objects: [{ interface: v.interface, vhid: v.vhid }, ...(foreign.length ? foreign : senders).map((f) => ({ address: f }))],
        evidence: from.map((h) => ({ node: input.node, values: { from: h.from, accepted: h.accepted, refused: h.refused, lastRefusal: h.lastRefusal ?? null, ageMs: h.ageMs, knownPeer: known.has(h.from) } })),
        fix: `another CARP or VRRP router uses vhid ${v.vhid} on ${v.interface}${foreign.length ? ` (${foreign.join(', ')})` : ''}: move this pair's VIP to a free vhid${free === null ? '' : ` (${free} is unused on ${v.interface} here)`}, or the other router's`,
      });
    }
  }

  // -- 7 the peer not heard: a BACKUP does not advertise, so "both up, one not heard" is both MASTER;
  // the record of senders tells whether this node heard anything for such a vhid.
  const heardAll = input.advertSources;
  if (!peer) peerSkip('CARPD_DIAG_PEER_NOT_HEARD');
  else if (!heardAll || 'error' in heardAll) {
    skip('CARPD_DIAG_PEER_NOT_HEARD', "this node's backend does not record the advertisements it hears per vhid (a peer not heard while both are up shows as CARPD_DIAG_SPLIT_BRAIN)");
  } else {
    for (const f of findings.filter((x) => x.code === 'CARPD_DIAG_SPLIT_BRAIN')) {
      const o = f.objects[0]!;
      const got = heardAll.filter((h) => h.iface === o.interface && h.vhid === o.vhid && h.ageMs <= HEARD_RECENT_MS);
      if (got.some((h) => h.accepted > 0)) continue;
      const vip = input.vips.find((v) => v.interface === o.interface && v.vhid === o.vhid);
      add({
        code: 'CARPD_DIAG_PEER_NOT_HEARD',
        severity: 'error',
        summary: `${o.interface} vhid ${o.vhid}: no advertisement from the peer accepted here while both nodes are up${got.length ? ' (only refused ones)' : ''}`,
        objects: [{ interface: o.interface, vhid: o.vhid }, { node: peerName }],
        evidence: [{ node: input.node, values: { sendersHeard: got.length, refused: got.reduce((n, h) => n + h.refused, 0), mode: (vip as { mode?: string } | undefined)?.mode ?? null, windowMs: HEARD_RECENT_MS } }],
        fix: `the multicast advertisements do not reach this node on ${o.interface} (a switch filtering multicast, IGMP snooping, a VLAN): use unicast with the peer's own address on ${o.interface} as this VIP's peer, and this node's as the peer's (carpctl vip set ${o.interface}/${o.vhid} --mode unicast --peer <address>)`,
      });
    }
  }

  // -- 2 config sync
  const s = input.sync;
  if (s.role === 'standalone') {
    skip('CARPD_DIAG_SYNC_ERROR', 'this node is standalone: no config sync');
    skip('CARPD_DIAG_SYNC_LAG', 'this node is standalone: no config sync');
  } else {
    if (s.lastError) {
      add({
        code: 'CARPD_DIAG_SYNC_ERROR',
        severity: 'error',
        summary: `the last config sync attempt failed: ${s.lastError}`,
        objects: [{ node: input.node }],
        evidence: [{ node: input.node, values: { role: s.role, lastError: s.lastError, lastSuccess: s.lastSuccess } }],
        fix: 'read the error; carpctl sync status shows the attempts and carpctl sync run retries now',
      });
    }
    if (s.role !== 'primary') skip('CARPD_DIAG_SYNC_LAG', 'the lag is measured on the primary');
    else if (s.lag.revisions === null) skip('CARPD_DIAG_SYNC_LAG', "the primary does not know yet which revision the peer applied");
    else if (s.lag.revisions > 0 && (s.lag.seconds ?? 0) >= SYNC_LAG_WARN_SECONDS) {
      add({
        code: 'CARPD_DIAG_SYNC_LAG',
        severity: 'warning',
        summary: `the secondary is ${s.lag.revisions} revision(s) behind, for ${Math.round(s.lag.seconds ?? 0)} s`,
        objects: [{ node: peerName }],
        evidence: [{ node: input.node, values: { localRevision: s.localRevision, peerRevision: s.peerRevision, lagRevisions: s.lag.revisions, lagSeconds: s.lag.seconds } }],
        fix: 'carpctl sync status shows why the pushes fail; carpctl sync run pushes now',
      });
    }
  }
  if (s.detached.vips.length || s.detached.carp) {
    const objs: DiagObject[] = s.detached.vips.map((k) => {
      const [iface, vhid] = k.split('/');
      return { interface: iface, vhid: Number(vhid) };
    });
    add({
      code: 'CARPD_DIAG_SYNC_DETACHED',
      severity: 'warning',
      summary: `objects detached from config sync on ${input.node}: ${[...s.detached.vips, ...(s.detached.carp ? ['carp'] : [])].join(', ')}`,
      objects: objs.length ? objs : [{ node: input.node }],
      evidence: [{ node: input.node, values: { vips: s.detached.vips.join(' ') || null, carp: s.detached.carp } }],
      fix: 'these objects no longer follow the primary: when the local edit is no longer needed, carpctl sync set --reattach <key> makes them follow again',
    });
  }

  // -- 3 the intended master preferred
  if (!peer || !self) peerSkip('CARPD_DIAG_PREEMPT_DIFFERS');
  else if (self.carp.preempt !== peer.carp.preempt) {
    add({
      code: 'CARPD_DIAG_PREEMPT_DIFFERS',
      severity: 'warning',
      summary: 'preempt differs between the nodes',
      objects: [{ node: input.node }, { node: peerName }],
      evidence: [
        { node: input.node, values: { preempt: self.carp.preempt } },
        { node: peerName, values: { preempt: peer.carp.preempt } },
      ],
      fix: 'set the same preempt on both (carpctl carp set --preempt true): without it on both, the intended master does not take its vhids back, and with it on one only the failover depends on which node came up first',
    });
  }
  if (s.role !== 'secondary') skip('CARPD_DIAG_SKEW_NOT_PREFERRED', "checked on the secondary, which holds both its own skews and the rule that derives them from the primary's");
  else {
    // The secondary's skew = override ?? min(primary's + add, cap): equal or lower when add is 0, the cap reached, or an override.
    let any = false;
    for (const o of s.overrides) {
      if (o.advskew === undefined) continue;
      const vip = input.vips.find((v) => vkey(v) === vkey(o));
      if (vip && (vip.protocol ?? 'carp') === 'carp' && vip.advskew === 0) {
        any = true;
        add({
          code: 'CARPD_DIAG_SKEW_NOT_PREFERRED',
          severity: 'warning',
          summary: `${o.interface} vhid ${o.vhid}: the secondary's advskew is overridden to 0, no higher than any primary's`,
          objects: [{ interface: o.interface, vhid: o.vhid }],
          evidence: [{ node: input.node, values: { override: o.advskew, advskew: vip.advskew } }],
          fix: 'remove the override or give it a skew above the primary\'s (carpctl sync set --overrides ...)',
        });
      }
    }
    if (s.advskewRule.add <= 0) {
      any = true;
      add({
        code: 'CARPD_DIAG_SKEW_NOT_PREFERRED',
        severity: 'warning',
        summary: "the secondary adds nothing to the primary's advskew: both advertise with equal skews",
        objects: [{ node: input.node }],
        evidence: [{ node: input.node, values: { add: s.advskewRule.add, cap: s.advskewRule.cap } }],
        fix: 'with equal skews the node that happens to be MASTER stays so; set carpctl sync set --advskew-add 100 on the secondary',
      });
    }
    for (const v of input.vips) {
      if ((v.protocol ?? 'carp') === 'carp' && v.advskew === 0 && !s.overrides.some((o) => vkey(o) === vkey(v))) {
        any = true;
        add({
          code: 'CARPD_DIAG_SKEW_NOT_PREFERRED',
          severity: 'warning',
          summary: `${v.interface} vhid ${v.vhid}: the secondary advertises with advskew 0, no higher than any primary's`,
          objects: [{ interface: v.interface, vhid: v.vhid }],
          evidence: [{ node: input.node, values: { advskew: v.advskew } }],
          fix: "give the secondary a higher advskew than the primary's (the sync rule's add, or an override)",
        });
      }
    }
    void any;
  }
  if (!peer || !self) peerSkip('CARPD_DIAG_SECONDARY_IS_MASTER');
  else {
    const primary = self.role === 'primary' ? self : peer.role === 'primary' ? peer : undefined;
    const secondary = primary === self ? peer : primary === peer ? self : undefined;
    if (!primary || !secondary) skip('CARPD_DIAG_SECONDARY_IS_MASTER', 'neither node is the primary');
    else {
      for (const v of secondary.vhids) {
        const p = primary.vhids.find((x) => vkey(x) === vkey(v));
        if (v.state !== 'MASTER' || p?.state !== 'BACKUP') continue;
        if (primary.carp.maintenance || primary.carp.demotion > secondary.carp.demotion) continue; // meant so
        add({
          code: 'CARPD_DIAG_SECONDARY_IS_MASTER',
          severity: 'warning',
          summary: `${v.interface} vhid ${v.vhid}: the secondary is MASTER while the primary is BACKUP, neither demoted nor in maintenance`,
          objects: [{ interface: v.interface, vhid: v.vhid }],
          evidence: [
            { node: secondary.node, values: { role: 'secondary', state: v.state, since: v.since, reason: v.reason, demotion: secondary.carp.demotion, preempt: secondary.carp.preempt } },
            { node: primary.node, values: { role: 'primary', state: p.state, since: p.since, demotion: primary.carp.demotion, preempt: primary.carp.preempt } },
          ],
          fix: "the intended master does not take the vhid back: turn preempt on on both nodes and give the secondary a higher advskew than the primary's (carpctl cluster shows both)",
        });
      }
    }
  }

  // -- 4 listeners bound to a VIP
  const vipAddrs = new Map<string, { interface: string; vhid: number }>();
  for (const v of input.vips) for (const a of v.addresses) vipAddrs.set(a.slice(0, a.indexOf('/')), { interface: v.interface, vhid: v.vhid });
  const listeners = [...(input.listeners.api ?? []), ...(input.listeners.sync ? [input.listeners.sync] : [])];
  for (const l of listeners) {
    const host = canonicalIp(l.host)?.address;
    const vip = host ? vipAddrs.get(host) : undefined;
    if (!vip) continue;
    add({
      code: 'CARPD_DIAG_LISTENER_ON_VIP',
      severity: 'error',
      summary: `the ${l.name === 'api' ? 'management API' : 'sync listener'} listens on ${l.host}, a VIP of ${vip.interface} vhid ${vip.vhid}: it is reachable only on the MASTER`,
      objects: [{ listener: l.name, address: `${l.host}:${l.port}` }, { interface: vip.interface, vhid: vip.vhid }],
      evidence: [{ node: input.node, values: { listener: l.name, host: l.host, port: l.port } }],
      fix: `bind ${l.name === 'api' ? '--listen' : '--sync-listen'} to this node's own address, never to a VIP: a BACKUP cannot be managed or synced through an address it does not hold`,
    });
  }
  if (input.listeners.api === undefined) {
    if (!findings.some((f) => f.code === 'CARPD_DIAG_LISTENER_ON_VIP')) skip('CARPD_DIAG_LISTENER_ON_VIP', "the API's listen address was not given to the diagnostics (only the sync listener was checked)");
  }

  // -- 5 clocks
  const c = input.clockOffset;
  if (!peerEntry) skip('CARPD_DIAG_CLOCK_SKEW', noPeer);
  else if (!c) skip('CARPD_DIAG_CLOCK_SKEW', unreached);
  else if ('error' in c) skip('CARPD_DIAG_CLOCK_SKEW', `the peer's clock could not be read: ${c.error}`);
  else if (Math.abs(c.offsetMs) > CLOCK_SKEW_LIMIT_MS) {
    add({
      code: 'CARPD_DIAG_CLOCK_SKEW',
      severity: 'error',
      summary: `the nodes' clocks are ${Math.round(Math.abs(c.offsetMs) / 1000)} s apart, more than half the sync window (${CLOCK_SKEW_LIMIT_MS / 1000} s)`,
      objects: [{ node: input.node }, { node: peerName }],
      evidence: [
        { node: input.node, values: { at: c.localAt, offsetMs: c.offsetMs, windowMs: MAX_SKEW_MS } },
        { node: peerName, values: { at: c.peerAt } },
      ],
      fix: `sync messages older or newer than ${MAX_SKEW_MS / 1000} s are refused: run NTP on both nodes`,
    });
  }

  // -- 6 refused advertisements (global counters: FreeBSD's carpstats are not per vhid)
  const st = input.carpStats;
  // Per vhid and sender where the backend records refusals by sender.
  let perVhid = 0;
  for (const h of recent ?? []) {
    if (h.refused === 0 || (h.lastRefusal !== 'badauth' && h.lastRefusal !== 'badaddrs')) continue;
    if (!input.vips.some((v) => v.interface === h.iface && v.vhid === h.vhid)) continue;
    perVhid++;
    add({
      code: 'CARPD_DIAG_CARP_BAD_AUTH',
      severity: 'warning',
      summary: `${h.iface} vhid ${h.vhid}: ${h.refused} advertisement(s) from ${h.from} refused (${h.lastRefusal === 'badauth' ? 'bad HMAC' : 'bad address list'})`,
      objects: [{ interface: h.iface, vhid: h.vhid }, { address: h.from }],
      evidence: [{ node: input.node, values: { from: h.from, refused: h.refused, accepted: h.accepted, lastRefusal: h.lastRefusal, ageMs: h.ageMs } }],
      fix: `the password or the VIP address list of ${h.iface} vhid ${h.vhid} differs between this node and ${h.from}: set the same on both (a VIP list that differs changes the HMAC)`,
    });
  }
  if (perVhid) {
    // named per vhid above
  } else if ('error' in st) skip('CARPD_DIAG_CARP_BAD_AUTH', `this node's CARP counters could not be read: ${st.error}`);
  else {
    const refused = { badauth: st.badauth ?? 0, badaddrs: st.badaddrs ?? 0, badvhid: st.badvhid ?? 0 };
    if (refused.badauth > 0 || refused.badaddrs > 0) {
      const ifaces = [...new Set(input.vips.map((v) => v.interface))];
      add({
        code: 'CARPD_DIAG_CARP_BAD_AUTH',
        severity: 'warning',
        summary: `this node refused advertisements: ${refused.badauth} with a bad HMAC, ${refused.badaddrs} with a bad address list`,
        objects: ifaces.length ? ifaces.map((i) => ({ node: input.node, interface: i })) : [{ node: input.node }],
        evidence: [{ node: input.node, values: { ...refused, perVhid: false } }],
        fix: 'the counters are per node, not per vhid: compare the password and the address list of each vhid on both nodes (a VIP list that differs changes the HMAC); carpctl stats shows whether the counters still rise',
      });
    }
  }

  // -- 9 an address of its own in each VIP's subnet (this node's sync localAddresses)
  if (input.vips.length && !s.localAddresses.length) skip('CARPD_DIAG_NO_OWN_ADDRESS', "this node's own addresses are not known: the backends do not list interface addresses, and no localAddresses are set in the sync config");
  else {
    for (const v of input.vips) {
      for (const a of v.addresses) {
        if (s.localAddresses.some((l) => inSubnet(l.slice(0, l.indexOf('/')), a))) continue;
        add({
          code: 'CARPD_DIAG_NO_OWN_ADDRESS',
          severity: 'warning',
          summary: `${v.interface} vhid ${v.vhid}: none of this node's own addresses is in ${a}'s subnet`,
          objects: [{ node: input.node, interface: v.interface, vhid: v.vhid, address: a }],
          evidence: [{ node: input.node, values: { vip: a, localAddresses: s.localAddresses.join(' ') } }],
          fix: `give ${v.interface} an address of its own in ${a}'s subnet on each node (three addresses: one per node and the VIP), and list it in the sync localAddresses`,
        });
      }
    }
  }

  // -- 10 pfsync
  if (!peer || !self) {
    for (const code of ['CARPD_DIAG_PFSYNC_NOT_RUNNING', 'CARPD_DIAG_PFSYNC_DIFFERS', 'CARPD_DIAG_PFSYNC_BULK_PENDING'] as const) peerSkip(code);
  } else {
    for (const n of [self, peer]) {
      if (n.pfsync.enabled && !n.pfsync.running) {
        add({
          code: 'CARPD_DIAG_PFSYNC_NOT_RUNNING',
          severity: 'error',
          summary: `pfsync is enabled on ${n.node} but not running`,
          objects: [{ node: n.node }],
          evidence: [{ node: n.node, values: { enabled: true, running: false, syncdev: n.pfsync.syncdev } }],
          fix: 'check the syncdev interface exists and is up; carpctl pfsync show',
        });
      }
      if (n.pfsync.running && !n.pfsync.bulkUpdateDone) {
        add({
          code: 'CARPD_DIAG_PFSYNC_BULK_PENDING',
          severity: 'warning',
          summary: `pfsync's bulk update is not done on ${n.node}: its state table is incomplete`,
          objects: [{ node: n.node }],
          evidence: [{ node: n.node, values: { running: true, bulkUpdateDone: false, syncpeer: n.pfsync.syncpeer } }],
          fix: 'the peer does not answer the bulk update request: check that pfsync runs on both nodes over the same link and that pf passes the pfsync protocol on it',
        });
      }
    }
    if (self.pfsync.enabled !== peer.pfsync.enabled) {
      add({
        code: 'CARPD_DIAG_PFSYNC_DIFFERS',
        severity: 'warning',
        summary: 'pfsync is enabled on one node only',
        objects: [{ node: self.node }, { node: peer.node }],
        evidence: [
          { node: self.node, values: { enabled: self.pfsync.enabled, syncdev: self.pfsync.syncdev } },
          { node: peer.node, values: { enabled: peer.pfsync.enabled, syncdev: peer.pfsync.syncdev } },
        ],
        fix: 'enable pfsync on both nodes (or neither): states of one node are not on the other after a failover',
      });
    }
  }
  skip('CARPD_DIAG_PFSYNC_SYNCDEV', "the backends do not list interface addresses, so whether syncdev carries the sync link is not known");
  skip('CARPD_DIAG_PFSYNC_VERSION', "the nodes' reports do not carry pfsync's protocol version");

  findings.sort((a, b) => RANK[b.severity] - RANK[a.severity]);
  const found = new Set(findings.map((f) => f.code));
  const checks: DiagCheck[] = DIAG_CHECKS.map((code) => {
    if (found.has(code)) return { code, status: 'finding' };
    const why = notChecked.get(code);
    return why !== undefined ? { code, status: 'not-checked', reason: why } : { code, status: 'pass' };
  });
  const worst = findings.length ? findings[0]!.severity : null;
  return { generatedAt: input.generatedAt, node: input.node, worst, findings: findings.map(clean), checks };
}

/** Drops undefined members (the spec's objects have no null members). */
function clean(f: DiagFinding): DiagFinding {
  return { ...f, objects: f.objects.map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as DiagObject) };
}

/** Reads what diagnose() needs, each part on its own: a part that fails makes its checks not-checked. */
export async function collectDiagnostics(service: CarpService, sync: SyncManager, opts: { api?: Listener[] } = {}): Promise<Diagnostics> {
  const status = sync.status();
  const [cluster, carpStats, clockOffset, advertSources] = await Promise.all([
    sync.cluster(),
    service.backend.stats().then(
      (s) => ({ ...s.carp }) as Record<string, number>,
      (e: unknown) => ({ error: (e as Error).message }),
    ),
    status.peer ? measureClock(sync) : Promise.resolve(undefined),
    service.backend.advertSources
      ? service.backend.advertSources().catch((e: unknown) => ({ error: (e as Error).message }))
      : Promise.resolve(undefined),
  ]);
  const desired = service.desired();
  const localAt = new Date(await localWall(sync)).toISOString();
  const syncListen = status.listen ? splitHostPort(status.listen) : null;
  return diagnose({
    node: status.node,
    generatedAt: localAt,
    cluster,
    sync: status,
    vips: desired.vips,
    listeners: { api: opts.api, sync: syncListen ? { name: 'sync', ...syncListen } : null },
    carpStats,
    clockOffset,
    advertSources,
  });
}

/** The peer's wall clock minus this node's, from its health answer against the middle of the exchange on this node's clock. */
async function measureClock(sync: SyncManager): Promise<DiagnosticsInput['clockOffset']> {
  try {
    const before = await localWall(sync);
    const peer = await sync.peerHealth();
    const after = await localWall(sync);
    return { offsetMs: Math.round(Date.parse(peer.at) - (before + after) / 2), peerAt: peer.at, localAt: new Date(after).toISOString() };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** This node's wall clock as its sync manager reads it (the time its health answers carry); the system's if that cannot be read. */
async function localWall(sync: SyncManager): Promise<number> {
  try {
    return Date.parse((await sync.localHealth()).at);
  } catch {
    return Date.now();
  }
}

function splitHostPort(text: string): { host: string; port: number } | null {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  return m ? { host: m[1]!, port: Number(m[2]) } : null;
}
