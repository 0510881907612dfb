/**
 * Semantic validation of a desired-state document. The API schema checks shapes; these rules
 * need the whole document (vhid unique per interface, an address on one vhid only) or
 * knowledge the schema cannot express (CIDR syntax, unicast peers per family). The same rules
 * guard the stored file and the bootstrap file (checkState, the whole document) and every
 * change (checkChange, what the change touches, through indexes of the rest).
 */
import type { ErrorCode, FieldProblem } from '../errors.js';
import { canonicalIp, cidrOf, isMulticast, isUnspecified } from '../wire/address.js';
import { ADVBASE_SEC, ADVSKEW, PASSWORD_MAX_BYTES, PFSYNC_MAXUPD, VHID, VRRP_INTERVAL_CS, VRRP_PRIORITY, inRange, isPfsyncVersion, rangeText } from '../wire/limits.js';
import { PFSYNC_VERSIONS, SPLIT_BRAIN_POLICIES, SYNC_ROLES, TRACK_DEFAULTS, TRACK_KINDS, TRACK_LIMITS, VIP_DEFAULTS, VIP_MAC_MODES, VIP_PROTOCOLS, type DesiredState, type TrackConfig, type TrackKind, type VipConfig } from './model.js';

export type Problem = FieldProblem & { code: ErrorCode };

export const INTERFACE_NAME = /^[A-Za-z][A-Za-z0-9_.]{0,14}$/;
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export { PASSWORD_MAX_BYTES };

function vipPath(v: { interface: string; vhid: number }, field?: string): string {
  return `/vips/${v.interface}/${v.vhid}${field === undefined ? '' : '/' + field}`;
}

/**
 * advbase/advskew given for a vrrpv3 VIP. The model cannot tell an explicit default from an
 * omitted field, so the request and bootstrap readers call this with the fields they were given.
 */
export function carpTimingRefused(v: { interface: string; vhid: number }, given: { advbase?: unknown; advskew?: unknown }): Problem[] {
  const out: Problem[] = [];
  if (given.advbase !== undefined) out.push({ path: vipPath(v, 'advbase'), code: 'CARPD_ERR_INVALID_VALUE', message: 'protocol vrrpv3 does not use advbase; set the advertisement interval with vrrpInterval (centiseconds, default 100 = 1 s)' });
  if (given.advskew !== undefined) out.push({ path: vipPath(v, 'advskew'), code: 'CARPD_ERR_INVALID_VALUE', message: `protocol vrrpv3 does not use advskew; set the election priority with vrrpPriority (${rangeText(VRRP_PRIORITY)}, higher wins, default 100)` });
  return out;
}

function checkProtocol(v: VipConfig, out: Problem[]): void {
  if (!VIP_PROTOCOLS.includes(v.protocol)) {
    out.push({ path: vipPath(v, 'protocol'), code: 'CARPD_ERR_INVALID_VALUE', message: `protocol must be carp or vrrpv3` });
    return;
  }
  if (v.protocol === 'carp') {
    if (v.vrrpPriority !== undefined) out.push({ path: vipPath(v, 'vrrpPriority'), code: 'CARPD_ERR_INVALID_VALUE', message: 'vrrpPriority is only used with protocol vrrpv3; set protocol to vrrpv3, or use advskew with carp' });
    if (v.vrrpInterval !== undefined) out.push({ path: vipPath(v, 'vrrpInterval'), code: 'CARPD_ERR_INVALID_VALUE', message: 'vrrpInterval is only used with protocol vrrpv3; set protocol to vrrpv3, or use advbase with carp' });
    return;
  }
  if (v.vrrpPriority === 255) {
    out.push({ path: vipPath(v, 'vrrpPriority'), code: 'CARPD_ERR_INVALID_VALUE', message: `vrrpPriority 255 means the address owner in RFC 5798, which carpd never is (it does not own the VIP addresses); use ${rangeText(VRRP_PRIORITY)}` });
  } else if (v.vrrpPriority !== undefined && !inRange(v.vrrpPriority, VRRP_PRIORITY)) {
    out.push({ path: vipPath(v, 'vrrpPriority'), code: 'CARPD_ERR_INVALID_VALUE', message: `vrrpPriority ${v.vrrpPriority} is outside ${rangeText(VRRP_PRIORITY)}` });
  }
  if (v.vrrpInterval !== undefined && !inRange(v.vrrpInterval, VRRP_INTERVAL_CS)) {
    out.push({ path: vipPath(v, 'vrrpInterval'), code: 'CARPD_ERR_INVALID_VALUE', message: `vrrpInterval ${v.vrrpInterval} is outside ${rangeText(VRRP_INTERVAL_CS)} centiseconds` });
  }
  // A stored document edited by hand; requests are refused earlier, with the fields as given.
  out.push(...carpTimingRefused(v, { advbase: v.advbaseSec === VIP_DEFAULTS.advbaseSec ? undefined : v.advbaseSec, advskew: v.advskew === VIP_DEFAULTS.advskew ? undefined : v.advskew }));
  if (v.password !== undefined) {
    out.push({ path: vipPath(v, 'password'), code: 'CARPD_ERR_INVALID_VALUE', message: 'VRRPv3 has no authentication (RFC 5798 removed it), so a vrrpv3 VIP cannot have a password; remove it (password: null) or use protocol carp' });
  }
}

/** A range of this module's own (not a kernel limit), in the form the kernel ones take. */
const range = (min: number, max: number) => ({ min, max });

export function checkVip(v: VipConfig, out: Problem[]): void {
  if (!INTERFACE_NAME.test(v.interface)) {
    out.push({ path: vipPath(v, 'interface'), code: 'CARPD_ERR_INVALID_VALUE', message: `"${v.interface}" is not an interface name (a letter, then up to 14 letters, digits, "_" or ".")` });
  }
  if (!inRange(v.vhid, VHID)) out.push({ path: vipPath(v, 'vhid'), code: 'CARPD_ERR_INVALID_VALUE', message: `vhid ${v.vhid} is outside ${rangeText(VHID)}` });
  if (!inRange(v.advbaseSec, ADVBASE_SEC)) out.push({ path: vipPath(v, 'advbase'), code: 'CARPD_ERR_INVALID_VALUE', message: `advbase ${v.advbaseSec} is outside ${rangeText(ADVBASE_SEC)} seconds` });
  if (!inRange(v.advskew, ADVSKEW)) out.push({ path: vipPath(v, 'advskew'), code: 'CARPD_ERR_INVALID_VALUE', message: `advskew ${v.advskew} is outside ${rangeText(ADVSKEW)}` });
  if (v.addresses.length === 0) out.push({ path: vipPath(v, 'addresses'), code: 'CARPD_ERR_INVALID_VALUE', message: 'a VIP needs at least one address' });
  const seen = new Set<string>();
  const families = new Set<number>();
  v.addresses.forEach((a, i) => {
    const c = cidrOf(a);
    const path = vipPath(v, `addresses/${i}`);
    if (!c) {
      out.push({ path, code: 'CARPD_ERR_INVALID_ADDRESS', message: `"${a}" is not an address with a prefix length (192.0.2.10/24 or 2001:db8::10/64)` });
      return;
    }
    if (isMulticast(c.address) || isUnspecified(c.address)) {
      out.push({ path, code: 'CARPD_ERR_INVALID_ADDRESS', message: `${a} is a multicast or unspecified address and cannot be a VIP` });
    }
    families.add(c.family);
    if (seen.has(c.address)) out.push({ path, code: 'CARPD_ERR_ADDRESS_DUPLICATE', message: `${c.address} is listed twice` });
    seen.add(c.address);
  });
  checkProtocol(v, out);
  if (v.password !== undefined && v.protocol !== 'vrrpv3') {
    if (v.password.length === 0) out.push({ path: vipPath(v, 'password'), code: 'CARPD_ERR_INVALID_VALUE', message: 'the password is empty: omit it for no password' });
    else if (v.password.includes('\0')) out.push({ path: vipPath(v, 'password'), code: 'CARPD_ERR_INVALID_VALUE', message: 'the password contains a NUL character' });
    else if (Buffer.byteLength(v.password, 'utf8') > PASSWORD_MAX_BYTES) {
      out.push({ path: vipPath(v, 'password'), code: 'CARPD_ERR_PASSWORD_TOO_LONG', message: `the password is ${Buffer.byteLength(v.password, 'utf8')} bytes; carp(4) uses at most ${PASSWORD_MAX_BYTES}` });
    }
  }
  checkPeer(v, 'peer', 4, out);
  checkPeer(v, 'peer6', 6, out);
  if (v.mode === 'unicast') {
    if (families.has(4) && v.peer === undefined) out.push({ path: vipPath(v, 'peer'), code: 'CARPD_ERR_PEER_REQUIRED', message: 'unicast mode with IPv4 addresses needs "peer" (the other node\'s IPv4 address)' });
    if (families.has(6) && v.peer6 === undefined) out.push({ path: vipPath(v, 'peer6'), code: 'CARPD_ERR_PEER_REQUIRED', message: 'unicast mode with IPv6 addresses needs "peer6" (the other node\'s IPv6 address)' });
  } else if (v.mode === 'multicast') {
    for (const f of ['peer', 'peer6'] as const) {
      if (v[f] !== undefined) out.push({ path: vipPath(v, f), code: 'CARPD_ERR_PEER_NOT_ALLOWED', message: `"${f}" is only allowed with mode "unicast"; set mode to unicast or remove ${f}` });
    }
  } else {
    out.push({ path: vipPath(v, 'mode'), code: 'CARPD_ERR_INVALID_VALUE', message: `mode must be multicast or unicast` });
  }
  if (v.macMode !== undefined && !VIP_MAC_MODES.includes(v.macMode)) {
    out.push({ path: vipPath(v, 'macMode'), code: 'CARPD_ERR_INVALID_VALUE', message: `macMode must be virtual or interface (or absent: the node's default)` });
  }
  if (v.description.length > 255) out.push({ path: vipPath(v, 'description'), code: 'CARPD_ERR_INVALID_VALUE', message: 'the description is longer than 255 characters' });
}

function checkPeer(v: VipConfig, field: 'peer' | 'peer6', family: 4 | 6, out: Problem[]): void {
  const value = v[field];
  if (value === undefined) return;
  const ip = canonicalIp(value);
  if (!ip) {
    out.push({ path: vipPath(v, field), code: 'CARPD_ERR_INVALID_ADDRESS', message: `"${value}" is not an IP address` });
  } else if (ip.family !== family) {
    out.push({ path: vipPath(v, field), code: 'CARPD_ERR_PEER_FAMILY', message: `"${field}" must be an IPv${family} address; put IPv${ip.family} peers in "${family === 4 ? 'peer6' : 'peer'}"` });
  } else if (isMulticast(ip.address) || isUnspecified(ip.address)) {
    out.push({ path: vipPath(v, field), code: 'CARPD_ERR_INVALID_ADDRESS', message: `${value} is not a unicast address` });
  }
}

/** Every problem in the document, in a stable order; empty when it is valid. */
export function checkState(s: DesiredState): Problem[] {
  const out: Problem[] = [];
  const byKey = new Map<string, VipConfig>();
  const owner = new Map<string, VipConfig>();
  for (const v of s.vips) {
    checkVip(v, out);
    const key = `${v.interface}/${v.vhid}`;
    if (byKey.has(key)) out.push(vhidExists(v));
    byKey.set(key, v);
    v.addresses.forEach((a, i) => {
      const c = cidrOf(a);
      if (!c) return;
      const prev = owner.get(c.address);
      if (prev && prev !== v) out.push(addressInUse(v, i, c.address, prev));
      owner.set(c.address, v);
    });
  }
  checkPfsync(s, out);
  checkTokens(s, out);
  checkSync(s, out);
  out.push(...checkTracks(s));
  return out;
}

const vhidExists = (v: VipConfig): Problem => ({
  path: vipPath(v, 'vhid'),
  code: 'CARPD_ERR_VHID_EXISTS',
  message: `vhid ${v.vhid} is already used on ${v.interface}; pick another (GET /v1/vhids/free?interface=${v.interface})`,
});

const addressInUse = (v: VipConfig, i: number, address: string, prev: VipConfig): Problem => ({
  path: vipPath(v, `addresses/${i}`),
  code: 'CARPD_ERR_ADDRESS_IN_USE',
  message: `${address} already belongs to ${prev.interface} vhid ${prev.vhid}; remove it there first`,
});

function checkPfsync(s: DesiredState, out: Problem[]): void {
  const p = s.pfsync;
  if (p.enabled && p.syncdev === undefined) out.push({ path: '/pfsync/syncdev', code: 'CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED', message: 'pfsync is enabled but has no syncdev; name the dedicated sync interface' });
  if (p.syncdev !== undefined && !INTERFACE_NAME.test(p.syncdev)) out.push({ path: '/pfsync/syncdev', code: 'CARPD_ERR_INVALID_VALUE', message: `"${p.syncdev}" is not an interface name` });
  if (p.syncpeer !== undefined) {
    const ip = canonicalIp(p.syncpeer);
    if (!ip || isUnspecified(ip.address)) out.push({ path: '/pfsync/syncpeer', code: 'CARPD_ERR_INVALID_ADDRESS', message: `"${p.syncpeer}" is not a unicast IP address` });
    else if (ip.family === 6 && p.version === 1301) out.push({ path: '/pfsync/syncpeer', code: 'CARPD_ERR_INVALID_VALUE', message: 'an IPv6 syncpeer needs pfsync version 1400 or later (FreeBSD 13 supports IPv4 peers only)' });
  }
  if (!inRange(p.maxupd, PFSYNC_MAXUPD)) out.push({ path: '/pfsync/maxupd', code: 'CARPD_ERR_INVALID_VALUE', message: `maxupd ${p.maxupd} is outside ${rangeText(PFSYNC_MAXUPD)}` });
  if (!isPfsyncVersion(p.version)) out.push({ path: '/pfsync/version', code: 'CARPD_ERR_INVALID_VALUE', message: `pfsync version ${p.version} is not one of ${PFSYNC_VERSIONS.join(', ')}` });
}

function checkTokens(s: DesiredState, out: Problem[]): void {
  const names = new Set<string>();
  s.api.tokens.forEach((t, i) => {
    if (!TOKEN_NAME.test(t.name)) out.push({ path: `/api/tokens/${i}/name`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${t.name}" is not a valid token name` });
    if (names.has(t.name)) out.push({ path: `/api/tokens/${i}/name`, code: 'CARPD_ERR_TOKEN_EXISTS', message: `token name "${t.name}" is used twice` });
    names.add(t.name);
    if (t.role !== 'read' && t.role !== 'admin') out.push({ path: `/api/tokens/${i}/role`, code: 'CARPD_ERR_INVALID_VALUE', message: `role must be read or admin` });
    if (!/^[0-9a-f]{64}$/.test(t.sha256)) out.push({ path: `/api/tokens/${i}/sha256`, code: 'CARPD_ERR_INVALID_VALUE', message: 'not a SHA-256 hex digest' });
  });
}

/**
 * The rules that span VIPs, kept as indexes of a valid document: which VIP has each
 * interface/vhid, and which VIP holds each address (without its prefix). A change is checked
 * against them (checkChange) and then applied to them, in time proportional to the VIPs it
 * touches.
 */
export class VipIndex {
  private readonly byKey = new Map<string, VipConfig>();
  private readonly byAddress = new Map<string, VipConfig[]>();

  static of(s: DesiredState): VipIndex {
    const ix = new VipIndex();
    for (const v of s.vips) ix.add(v);
    return ix;
  }

  vip(key: string): VipConfig | undefined {
    return this.byKey.get(key);
  }

  holders(address: string): readonly VipConfig[] {
    return this.byAddress.get(address) ?? [];
  }

  /** Takes out the VIPs a change removed, then adds those it added. */
  apply(change: { removed: readonly VipConfig[]; added: readonly VipConfig[] }): void {
    for (const v of change.removed) this.remove(v);
    for (const v of change.added) this.add(v);
  }

  private add(v: VipConfig): void {
    this.byKey.set(`${v.interface}/${v.vhid}`, v);
    for (const a of addressesOf(v)) {
      const list = this.byAddress.get(a);
      if (!list) this.byAddress.set(a, [v]);
      else if (!list.includes(v)) list.push(v);
    }
  }

  private remove(v: VipConfig): void {
    const key = `${v.interface}/${v.vhid}`;
    if (this.byKey.get(key) === v) this.byKey.delete(key);
    for (const a of addressesOf(v)) {
      const list = this.byAddress.get(a)?.filter((x) => x !== v);
      if (!list || list.length === 0) this.byAddress.delete(a);
      else this.byAddress.set(a, list);
    }
  }
}

function addressesOf(v: VipConfig): Set<string> {
  const out = new Set<string>();
  for (const a of v.addresses) {
    const c = cidrOf(a);
    if (c) out.add(c.address);
  }
  return out;
}

/**
 * The problems of `after`, found by checking only what a change touched: the VIPs it added or
 * changed (`added`, `removed` as diffStates reports them), through `index` (of the document
 * before, which is valid) for the rules that span VIPs, and the sections it changed. The
 * result is exactly checkState(after): same problems, same order.
 */
export function checkChange(after: DesiredState, change: { removed: readonly VipConfig[]; added: readonly VipConfig[]; sections: ReadonlySet<string> }, index: VipIndex): Problem[] {
  const gone = new Set(change.removed);
  const perVip = new Map<VipConfig, { own: Problem[]; vhid?: Problem; addresses: [number, Problem][] }>();
  const entry = (v: VipConfig) => {
    let e = perVip.get(v);
    if (!e) perVip.set(v, (e = { own: [], addresses: [] }));
    return e;
  };
  for (const v of change.added) {
    const own: Problem[] = [];
    checkVip(v, own);
    if (own.length > 0) entry(v).own = own;
  }

  // Positions in `after`, looked up only when a rule spanning VIPs is broken.
  let position: Map<VipConfig, number> | undefined;
  const inOrder = (vips: VipConfig[]) => {
    if (vips.length < 2) return vips;
    position ??= new Map(after.vips.map((v, i) => [v, i]));
    return [...vips].sort((x, y) => position!.get(x)! - position!.get(y)!);
  };

  const addedByKey = new Map<string, VipConfig[]>();
  const addedByAddress = new Map<string, VipConfig[]>();
  for (const v of change.added) {
    const key = `${v.interface}/${v.vhid}`;
    addedByKey.set(key, [...(addedByKey.get(key) ?? []), v]);
    for (const a of addressesOf(v)) addedByAddress.set(a, [...(addedByAddress.get(a) ?? []), v]);
  }
  // vhid unique per interface: every VIP after the first with a key is refused.
  for (const [key, vips] of addedByKey) {
    const kept = index.vip(key);
    const holders = kept && !gone.has(kept) ? [kept, ...vips] : vips;
    if (holders.length > 1) for (const v of inOrder(holders).slice(1)) entry(v).vhid = vhidExists(v);
  }
  // An address on one VIP only: walked as checkState walks it, each holder against the last.
  for (const [address, vips] of addedByAddress) {
    const holders = [...index.holders(address).filter((v) => !gone.has(v)), ...vips];
    if (holders.length < 2) continue;
    let owner: VipConfig | undefined;
    for (const v of inOrder(holders)) {
      v.addresses.forEach((a, i) => {
        if (cidrOf(a)?.address !== address) return;
        if (owner && owner !== v) entry(v).addresses.push([i, addressInUse(v, i, address, owner)]);
        owner = v;
      });
    }
  }

  const out: Problem[] = [];
  for (const v of inOrder([...perVip.keys()])) {
    const e = perVip.get(v)!;
    out.push(...e.own);
    if (e.vhid) out.push(e.vhid);
    out.push(...e.addresses.sort((x, y) => x[0] - y[0]).map(([, p]) => p));
  }
  if (change.sections.has('pfsync')) checkPfsync(after, out);
  if (change.sections.has('api')) checkTokens(after, out);
  if (change.sections.has('sync')) checkSync(after, out);
  if (change.sections.has('tracks')) out.push(...checkTracks(after));
  return out;
}

/** SHA-256 certificate fingerprint as stored: 32 uppercase hex pairs separated by colons. */
export const FINGERPRINT = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/;

function checkSync(s: DesiredState, out: Problem[]): void {
  const y = s.sync;
  if (!SYNC_ROLES.includes(y.role)) out.push({ path: '/sync/role', code: 'CARPD_ERR_INVALID_VALUE', message: `role must be one of ${SYNC_ROLES.join(', ')}` });
  if (y.role !== 'standalone' && !y.peer) out.push({ path: '/sync/peer', code: 'CARPD_ERR_INVALID_VALUE', message: `a ${y.role} needs a peer: the other node's sync address and certificate fingerprint (carpctl sync identity on that node)` });
  if (y.peer) {
    const ip = canonicalIp(y.peer.address);
    if (!ip || isUnspecified(ip.address) || isMulticast(ip.address)) out.push({ path: '/sync/peer/address', code: 'CARPD_ERR_INVALID_ADDRESS', message: `"${y.peer.address}" is not a unicast IP address` });
    if (!inRange(y.peer.port, range(1, 65535))) out.push({ path: '/sync/peer/port', code: 'CARPD_ERR_INVALID_VALUE', message: `port ${y.peer.port} is outside 1..65535` });
    if (!FINGERPRINT.test(y.peer.fingerprint)) out.push({ path: '/sync/peer/fingerprint', code: 'CARPD_ERR_INVALID_VALUE', message: 'not a SHA-256 certificate fingerprint (32 hex pairs, as carpctl sync identity prints it)' });
  }
  // add and cap are advskews (the secondary's is the primary's + add, at most cap).
  if (!inRange(y.advskewRule.add, ADVSKEW)) out.push({ path: '/sync/advskewRule/add', code: 'CARPD_ERR_INVALID_VALUE', message: `add ${y.advskewRule.add} is outside ${rangeText(ADVSKEW)}` });
  if (!inRange(y.advskewRule.cap, ADVSKEW)) out.push({ path: '/sync/advskewRule/cap', code: 'CARPD_ERR_INVALID_VALUE', message: `cap ${y.advskewRule.cap} is outside ${rangeText(ADVSKEW)}` });
  const seen = new Set<string>();
  y.overrides.forEach((o, i) => {
    const key = `${o.interface}/${o.vhid}`;
    if (seen.has(key)) out.push({ path: `/sync/overrides/${i}`, code: 'CARPD_ERR_INVALID_VALUE', message: `${key} has two overrides` });
    seen.add(key);
    if (!INTERFACE_NAME.test(o.interface) || !inRange(o.vhid, VHID)) out.push({ path: `/sync/overrides/${i}`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${key}" is not an interface and a vhid ${rangeText(VHID)}` });
    if (o.advskew !== undefined && !inRange(o.advskew, ADVSKEW)) out.push({ path: `/sync/overrides/${i}/advskew`, code: 'CARPD_ERR_INVALID_VALUE', message: `advskew ${o.advskew} is outside ${rangeText(ADVSKEW)}` });
    if (o.vrrpPriority !== undefined && !inRange(o.vrrpPriority, VRRP_PRIORITY)) out.push({ path: `/sync/overrides/${i}/vrrpPriority`, code: 'CARPD_ERR_INVALID_VALUE', message: `vrrpPriority ${o.vrrpPriority} is outside ${rangeText(VRRP_PRIORITY)}` });
    if (o.advskew === undefined && o.vrrpPriority === undefined) out.push({ path: `/sync/overrides/${i}`, code: 'CARPD_ERR_INVALID_VALUE', message: 'an override sets advskew or vrrpPriority' });
  });
  y.localAddresses.forEach((a, i) => {
    if (!cidrOf(a)) out.push({ path: `/sync/localAddresses/${i}`, code: 'CARPD_ERR_INVALID_ADDRESS', message: `"${a}" is not an address with a prefix length` });
  });
  if (!inRange(y.appliedRevision, range(0, Number.MAX_SAFE_INTEGER))) out.push({ path: '/sync/appliedRevision', code: 'CARPD_ERR_INVALID_VALUE', message: 'must be a revision number' });
  if (y.splitBrainPolicy !== undefined && !SPLIT_BRAIN_POLICIES.includes(y.splitBrainPolicy)) {
    out.push({ path: '/sync/splitBrainPolicy', code: 'CARPD_ERR_INVALID_VALUE', message: `splitBrainPolicy must be one of ${SPLIT_BRAIN_POLICIES.join(', ')}` });
  }
}

/** A track's name: it becomes part of a demotion name (`track:<name>`), so lower case only. */
export const TRACK_NAME = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
/** A host name (tcp tracks may name one): letters, digits, `-` and `.`. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
export const TRACK_COMMAND_LIMITS = { args: 256, argBytes: 4096 };

const invalid = (path: string, message: string): Problem => ({ path, code: 'CARPD_ERR_INVALID_VALUE', message });
const intIn = (n: unknown, r: { min: number; max: number }): boolean => typeof n === 'number' && Number.isInteger(n) && n >= r.min && n <= r.max;

/** Why a track's http URL is refused, or undefined. */
function trackUrlProblem(url: unknown): string | undefined {
  if (typeof url !== 'string') return 'an http track needs a url (http: or https:)';
  if (url.length > 2048) return 'the URL is longer than 2048 characters';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${u.protocol} URLs are not allowed; an http track GETs an http: or https: URL`;
  if (u.username !== '' || u.password !== '') return 'the URL carries credentials; carpd keeps no secrets for tracks';
  return undefined;
}

/**
 * The rules of one track (paths /tracks/{name}/field). Fields that belong to another kind are
 * refused, so a document says what it means: a ping track with a port is a mistake.
 */
export function checkTrack(t: TrackConfig, out: Problem[], names = new Set<string>()): void {
  const path = `/tracks/${t.name}`;
  if (typeof t.name !== 'string' || !TRACK_NAME.test(t.name)) out.push(invalid(`${path}/name`, `"${t.name}" is not a valid track name (a lower-case letter or digit, then up to 31 lower-case letters, digits, "_", "." or "-")`));
  if (names.has(t.name)) out.push(invalid(`${path}/name`, `track name "${t.name}" is used twice`));
  names.add(t.name);
  if (!TRACK_KINDS.includes(t.kind)) {
    out.push(invalid(`${path}/kind`, `"${String(t.kind)}" is not a track kind: one of ${TRACK_KINDS.join(', ')}`));
    return;
  }
  const fields: Record<TrackKind, readonly (keyof TrackConfig)[]> = {
    interface: ['interface'],
    ping: ['target'],
    tcp: ['target', 'port'],
    http: ['url', 'statusMin', 'statusMax'],
    script: ['command'],
  };
  for (const f of ['interface', 'target', 'port', 'url', 'statusMin', 'statusMax', 'command'] as const) {
    if (t[f] !== undefined && !fields[t.kind].includes(f)) out.push(invalid(`${path}/${f}`, `${f} is not a field of a ${t.kind} track (its fields: ${fields[t.kind].join(', ')})`));
  }
  switch (t.kind) {
    case 'interface':
      if (typeof t.interface !== 'string' || !INTERFACE_NAME.test(t.interface)) out.push(invalid(`${path}/interface`, t.interface === undefined ? 'an interface track needs the interface whose link it watches' : `"${t.interface}" is not an interface name`));
      break;
    case 'ping': {
      const ip = typeof t.target === 'string' ? canonicalIp(t.target) : undefined;
      if (!ip) out.push(invalid(`${path}/target`, t.target === undefined ? 'a ping track needs a target IP address' : `"${t.target}" is not an IP address; a ping track pings an address (no names: a resolver that fails is not the gateway that failed)`));
      else if (isMulticast(ip.address) || isUnspecified(ip.address)) out.push(invalid(`${path}/target`, `${ip.address} is a multicast or unspecified address; ping a unicast address`));
      break;
    }
    case 'tcp':
      if (typeof t.target !== 'string' || !(canonicalIp(t.target) || HOST_NAME.test(t.target))) out.push(invalid(`${path}/target`, t.target === undefined ? 'a tcp track needs a target host (an IP address or a name)' : `"${t.target}" is not an IP address or a host name`));
      if (!intIn(t.port, { min: 1, max: 65535 })) out.push(invalid(`${path}/port`, t.port === undefined ? 'a tcp track needs a port' : `port ${t.port} is outside 1..65535`));
      break;
    case 'http': {
      const bad = trackUrlProblem(t.url);
      if (bad) out.push(invalid(`${path}/url`, bad));
      const min = t.statusMin ?? TRACK_DEFAULTS.statusMin;
      const max = t.statusMax ?? TRACK_DEFAULTS.statusMax;
      if (!intIn(min, { min: 100, max: 599 })) out.push(invalid(`${path}/statusMin`, `statusMin ${min} is outside 100..599`));
      if (!intIn(max, { min: 100, max: 599 })) out.push(invalid(`${path}/statusMax`, `statusMax ${max} is outside 100..599`));
      else if (intIn(min, { min: 100, max: 599 }) && max < min) out.push(invalid(`${path}/statusMax`, `statusMax ${max} is below statusMin ${min}`));
      break;
    }
    case 'script':
      if (!Array.isArray(t.command)) {
        out.push(invalid(`${path}/command`, t.command === undefined ? 'a script track needs a command (an argv array)' : 'the command is an argv array (["/usr/local/libexec/check-wan", "--quiet"]), never a shell string: carpd runs no shell; to use one, say so: ["/bin/sh", "-c", "..."]'));
      } else if (t.command.length === 0) {
        out.push(invalid(`${path}/command`, "the command is empty; give the program's absolute path and its arguments"));
      } else {
        if (typeof t.command[0] !== 'string' || !t.command[0].startsWith('/')) out.push(invalid(`${path}/command/0`, `"${t.command[0]}" is not an absolute path; carpd searches no PATH: give the program's full path`));
        if (t.command.length > TRACK_COMMAND_LIMITS.args) out.push(invalid(`${path}/command`, `at most ${TRACK_COMMAND_LIMITS.args} arguments`));
        t.command.forEach((a, i) => {
          if (typeof a !== 'string' || a.includes('\0')) out.push(invalid(`${path}/command/${i}`, 'an argument must be a string without NUL'));
          else if (Buffer.byteLength(a) > TRACK_COMMAND_LIMITS.argBytes) out.push(invalid(`${path}/command/${i}`, `an argument is longer than ${TRACK_COMMAND_LIMITS.argBytes} bytes`));
        });
      }
      break;
  }
  const iv = TRACK_LIMITS.intervalMs;
  if (!intIn(t.intervalMs, iv)) out.push(invalid(`${path}/intervalMs`, `intervalMs ${t.intervalMs} is outside ${iv.min}..${iv.max}`));
  else if (!intIn(t.timeoutMs, { min: 1, max: t.intervalMs - 1 })) out.push(invalid(`${path}/timeoutMs`, `timeoutMs ${t.timeoutMs} must be 1..${t.intervalMs - 1}: less than the interval (${t.intervalMs} ms), so one probe ends before the next`));
  for (const f of ['rise', 'fall'] as const) if (!intIn(t[f], TRACK_LIMITS.count)) out.push(invalid(`${path}/${f}`, `${f} ${t[f]} is outside ${TRACK_LIMITS.count.min}..${TRACK_LIMITS.count.max}`));
  if (!intIn(t.weight, TRACK_LIMITS.weight)) out.push(invalid(`${path}/weight`, `weight ${t.weight} is outside ${TRACK_LIMITS.weight.min}..${TRACK_LIMITS.weight.max} (the demotion the track adds while down)`));
  if (typeof t.nosync !== 'boolean') out.push(invalid(`${path}/nosync`, 'nosync must be true or false'));
}

/** Every problem of a document's tracks (paths /tracks/{name}/...). */
export function checkTracks(s: Pick<DesiredState, 'tracks'>): Problem[] {
  const out: Problem[] = [];
  const names = new Set<string>();
  for (const t of s.tracks ?? []) checkTrack(t, out, names);
  return out;
}
