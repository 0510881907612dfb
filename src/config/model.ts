/**
 * The desired state: one revisioned document. Live state (MASTER/BACKUP, demotion, pfsync
 * status) is never stored here; it is read from the backend.
 */
import type { PfsyncVersion } from '../wire/limits.js';

export const SCHEMA_VERSION = 1;

export type VipMode = 'multicast' | 'unicast';
/** carp: CARP (advbase/advskew, optional password). vrrpv3: VRRPv3, RFC 5798 (vrrpPriority/vrrpInterval, no password). */
export type VipProtocol = 'carp' | 'vrrpv3';
export const VIP_PROTOCOLS: readonly VipProtocol[] = ['carp', 'vrrpv3'];
export type Role = 'read' | 'admin';
/** The MAC a VIP answers with: carp(4)'s virtual MAC, or the interface's own (kernel/backend.ts MacMode). */
export type VipMacMode = 'virtual' | 'interface';
export const VIP_MAC_MODES: readonly VipMacMode[] = ['virtual', 'interface'];
export { PFSYNC_VERSIONS, type PfsyncVersion } from '../wire/limits.js';

export interface VipConfig {
  interface: string;
  vhid: number;
  /** Canonical CIDR strings, in the order given. */
  addresses: string[];
  advbaseSec: number;
  advskew: number;
  /** CARP passphrase (at most 19 bytes). Never leaves carpd. */
  password?: string;
  mode: VipMode;
  peer?: string;
  peer6?: string;
  description: string;
  nosync: boolean;
  /**
   * Fixed for the life of the vhid (carp(4) cannot change it in place): a change removes the
   * vhid and creates it again. Stored documents without it are carp.
   */
  protocol: VipProtocol;
  /**
   * vrrpv3 only (absent for carp; advbaseSec/advskew keep their defaults and are not used):
   * priority 1..254, higher wins. 255 is RFC 5798's address owner, which carpd never is.
   */
  vrrpPriority?: number;
  /** vrrpv3 only: RFC 5798 Max Advert Interval in centiseconds, 1..4095 (100 = 1 s). */
  vrrpInterval?: number;
  /** The MAC the VIP answers with; absent: the node's default (carpd --mac-mode). */
  macMode?: VipMacMode;
}

export interface CarpConfig {
  /** net.inet.carp.allow */
  enabled: boolean;
  /** net.inet.carp.preempt */
  preempt: boolean;
  /** Persistent maintenance mode: this node demoted by 240. */
  maintenance: boolean;
}

export interface PfsyncConfig {
  enabled: boolean;
  syncdev?: string;
  syncpeer?: string;
  maxupd: number;
  defer: boolean;
  version: PfsyncVersion;
}

export interface TokenRecord {
  name: string;
  role: Role;
  /** SHA-256 of the token, hex. Tokens are 256-bit random strings, so a plain hash suffices. */
  sha256: string;
  createdAt: string;
}

export type SyncRole = 'standalone' | 'primary' | 'secondary';
export const SYNC_ROLES: readonly SyncRole[] = ['standalone', 'primary', 'secondary'];
export const SYNC_DEFAULT_PORT = 8443;

/**
 * What this node does while a vhid is MASTER on both nodes (sync/splitbrain.ts): `alert` only
 * publishes the events; `demote` also has the secondary hold SPLIT_BRAIN_DEMOTION until it ends.
 */
export type SplitBrainPolicy = 'alert' | 'demote';
export const SPLIT_BRAIN_POLICIES: readonly SplitBrainPolicy[] = ['alert', 'demote'];
/**
 * The demotion a secondary holds under the `demote` policy: the most that counts (effectiveSkew
 * caps advskew + demotion at 240), so its advertisements lose to any undemoted node's.
 */
export const SPLIT_BRAIN_DEMOTION = 240;

/**
 * This node's side of config sync. Never synced itself: each node has its own role, peer and
 * per-node values. The primary pushes the synced sections — every VIP without `nosync`, and
 * CARP's enabled/preempt (maintenance stays per node) — and the secondary derives its own
 * values from them (src/sync/derive.ts).
 */
export interface SyncConfig {
  role: SyncRole;
  /** The other node's sync listener and the SHA-256 fingerprint of its certificate (pinned). */
  peer?: { address: string; port: number; fingerprint: string };
  /**
   * Secondary: its advskew for a carp VIP is min(primary's + add, cap); its vrrpPriority for a
   * vrrpv3 VIP is max(primary's − add, 1). pfSense's fixed rule is add 100, cap 254.
   */
  advskewRule: { add: number; cap: number };
  /** Per-VIP values this node keeps whatever the primary sends. */
  overrides: { interface: string; vhid: number; advskew?: number; vrrpPriority?: number }[];
  /**
   * This node's own addresses with their prefixes (192.0.2.10/24). A unicast VIP's peer on the
   * other node is this node's address in the subnet of the VIP's peer: the sync swaps peers
   * instead of copying them.
   */
  localAddresses: string[];
  /** Secondary: objects a forced local edit took out of sync (recorded; the primary no longer overwrites them). */
  detached: { vips: string[]; carp: boolean };
  /** Secondary: the primary's revision applied last (0: none); stored with what it applied. */
  appliedRevision: number;
  /** This node's split-brain policy; absent: `alert`. */
  splitBrainPolicy?: SplitBrainPolicy;
}

/**
 * Which events a hook or webhook hears: a type of src/service/events.ts's EVENT_TYPES or a
 * family's shorthand (`splitbrain`), narrowed by interface, vhid and (vhid.state only) the
 * state entered. A field not given matches anything.
 */
export interface EventFilter {
  type: string;
  interface?: string;
  vhid?: number;
  /** vhid.state only: the state entered (MASTER, BACKUP, INIT). */
  state?: 'INIT' | 'BACKUP' | 'MASTER';
}

/** A program run on events (keepalived's notify scripts, ucarp's up/down scripts). */
export interface HookConfig {
  name: string;
  events: EventFilter[];
  /** argv: command[0] an absolute path; never a shell string. */
  command: string[];
  timeoutSec: number;
  /** Extra environment (names not starting with CARPD_). */
  env: Record<string, string>;
  nosync: boolean;
}

/** A JSON POST of events, signed with HMAC-SHA256 (X-Carpd-Signature). */
export interface WebhookConfig {
  name: string;
  url: string;
  /** The HMAC key. Write-only: never leaves carpd but to sign (and to its sync peer). */
  secret: string;
  events: EventFilter[];
  timeoutSec: number;
  nosync: boolean;
}

/**
 * What a health track probes: `interface` the link of a named interface (from the backend),
 * `ping` an ICMP echo to an IP address, `tcp` a connect to host:port, `http` a GET of a URL
 * answered with an expected status, `script` a program (argv) that exits 0 when healthy.
 */
export type TrackKind = 'interface' | 'ping' | 'tcp' | 'http' | 'script';
export const TRACK_KINDS: readonly TrackKind[] = ['interface', 'ping', 'tcp', 'http', 'script'];

/**
 * A health track (keepalived's track scripts): probed every `intervalMs`, each probe given
 * `timeoutMs`; `fall` failures in a row take it down, `rise` successes in a row bring it up.
 * While down it holds `weight` of demotion under the name `track:<name>`. The fields of its
 * kind only: interface (interface); target (ping: an IP address; tcp: a host) and port (tcp);
 * url, statusMin and statusMax (http); command (script, an argv array).
 */
export interface TrackConfig {
  name: string;
  kind: TrackKind;
  interface?: string;
  target?: string;
  port?: number;
  url?: string;
  statusMin?: number;
  statusMax?: number;
  command?: string[];
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  weight: number;
  nosync: boolean;
}

/**
 * Defaults: a probe a second, half of it to answer; up after 2 successes, down after 3
 * failures; a track down demotes by 240, the most that counts, so a node with a track down
 * loses to a peer with none whatever their advskews (a smaller weight lets advskews decide).
 */
export const TRACK_DEFAULTS = { intervalMs: 1000, rise: 2, fall: 3, weight: 240, nosync: false, statusMin: 200, statusMax: 399 };
export const TRACK_LIMITS = { intervalMs: { min: 100, max: 3_600_000 }, count: { min: 1, max: 100 }, weight: { min: 1, max: 240 } };
/** A track's timeout when none is given: half its interval, at most 10 s. */
export const defaultTrackTimeout = (intervalMs: number): number => Math.max(1, Math.min(10_000, Math.floor(intervalMs / 2)));
/** The named demotion a track holds while down. */
export const trackDemotionName = (name: string): string => `track:${name}`;

export const HOOK_DEFAULTS = { timeoutSec: 30, nosync: false };
export const WEBHOOK_DEFAULTS = { timeoutSec: 10, nosync: false };

export interface DesiredState {
  schemaVersion: typeof SCHEMA_VERSION;
  revision: number;
  updatedAt: string;
  vips: VipConfig[];
  /** Programs run on events; stored documents without them have none. */
  hooks: HookConfig[];
  webhooks: WebhookConfig[];
  /** Health tracks; stored documents without them have none. */
  tracks: TrackConfig[];
  carp: CarpConfig;
  pfsync: PfsyncConfig;
  api: { tokens: TokenRecord[] };
  sync: SyncConfig;
}

export function initialSync(): SyncConfig {
  return { role: 'standalone', advskewRule: { add: 100, cap: 254 }, overrides: [], localAddresses: [], detached: { vips: [], carp: false }, appliedRevision: 0 };
}

export const VIP_DEFAULTS = { advbaseSec: 1, advskew: 0, mode: 'multicast' as VipMode, description: '', nosync: false, protocol: 'carp' as VipProtocol, vrrpPriority: 100, vrrpInterval: 100 };
export const MAINTENANCE_DEMOTION = 240;

export function initialState(now: Date): DesiredState {
  return {
    schemaVersion: SCHEMA_VERSION,
    revision: 0,
    updatedAt: now.toISOString(),
    vips: [],
    hooks: [],
    webhooks: [],
    tracks: [],
    // preempt on: with several vhids, a node that takes one over takes them all (pfSense does the same).
    carp: { enabled: true, preempt: true, maintenance: false },
    pfsync: { enabled: false, maxupd: 128, defer: false, version: 1400 },
    api: { tokens: [] },
    sync: initialSync(),
  };
}

export function vipKey(iface: string, vhid: number): string {
  return `${iface}/${vhid}`;
}

export function findVip(state: DesiredState, iface: string, vhid: number): VipConfig | undefined {
  return state.vips.find((v) => v.interface === iface && v.vhid === vhid);
}

/** VIPs sorted by interface then vhid: the order every listing and plan uses. */
export function sortVips(vips: VipConfig[]): VipConfig[] {
  return [...vips].sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
}

/** The document without its revision stamp, to tell whether a change changes anything. */
export function sameContent(a: DesiredState, b: DesiredState): boolean {
  // Another number of VIPs is another content: no need to serialize both states to see it.
  if (a.vips.length !== b.vips.length) return false;
  const strip = (s: DesiredState) => JSON.stringify({ ...s, revision: 0, updatedAt: '' });
  return strip(a) === strip(b);
}
