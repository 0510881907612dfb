/** Edits of the VIP list on a draft desired state (pure; the service validates the result). */
import { CarpdError, fromProblems } from '../errors.js';
import { canonicalIp, cidrOf, formatCidr } from '../wire/address.js';
import { VIP_DEFAULTS, findVip, type DesiredState, type VipConfig, type VipMacMode, type VipMode, type VipProtocol } from '../config/model.js';
import { carpTimingRefused, checkVip, type Problem } from '../config/validate.js';

/** A VIP as the API takes it. `null` removes an optional field (PATCH) or the password (PUT). */
export interface VipInput {
  addresses?: string[];
  advbase?: number;
  advskew?: number;
  password?: string | null;
  mode?: VipMode;
  peer?: string | null;
  peer6?: string | null;
  description?: string;
  nosync?: boolean;
  protocol?: VipProtocol;
  vrrpPriority?: number;
  vrrpInterval?: number;
  /** `null` (PUT, PATCH) or absent (POST, PUT): the node's default. */
  macMode?: VipMacMode | null;
}

// Canonical forms make "2001:DB8::1" and "2001:db8::1" the same address; text that does not
// parse is kept so that validation reports it as given.
const cidr = (a: string) => {
  const c = cidrOf(a);
  return c ? formatCidr(c) : a;
};
const ip = (a: string) => canonicalIp(a)?.address ?? a;

export function freeVhid(s: DesiredState, iface: string): number | undefined {
  const used = new Set(s.vips.filter((v) => v.interface === iface).map((v) => v.vhid));
  for (let n = 1; n <= 255; n++) if (!used.has(n)) return n;
  return undefined;
}

/**
 * A vrrpv3 VIP refuses advbase/advskew even at their defaults, which the built VIP cannot
 * show; the VIP's other problems are reported with them.
 */
function refuseCarpTiming(v: VipConfig, given: VipInput): void {
  if (v.protocol !== 'vrrpv3') return;
  const problems: Problem[] = carpTimingRefused(v, given);
  if (problems.length === 0) return;
  const rest: Problem[] = [];
  checkVip(v, rest);
  // checkVip names a non-default advbase/advskew too: once is enough.
  throw fromProblems([...problems, ...rest.filter((r) => !problems.some((q) => q.path === r.path))]);
}

/** The VRRPv3 fields: defaults for vrrpv3; for carp only what was given, which validation refuses. */
function setVrrp(v: VipConfig, priority: number | undefined, interval: number | undefined): void {
  const vrrp = v.protocol === 'vrrpv3';
  if (priority !== undefined || vrrp) v.vrrpPriority = priority ?? VIP_DEFAULTS.vrrpPriority;
  else delete v.vrrpPriority;
  if (interval !== undefined || vrrp) v.vrrpInterval = interval ?? VIP_DEFAULTS.vrrpInterval;
  else delete v.vrrpInterval;
}

/**
 * A VIP from the API's fields: every field not given takes its default, the password is kept
 * when not given (`null` removes it). The request-only rule (no carp timing with vrrpv3) is the
 * caller's: `build` throws it, a whole document collects it with the others.
 */
export function assembleVip(iface: string, vhid: number, input: VipInput, keepPassword?: string): VipConfig {
  const v: VipConfig = {
    interface: iface,
    vhid,
    addresses: (input.addresses ?? []).map(cidr),
    advbaseSec: input.advbase ?? VIP_DEFAULTS.advbaseSec,
    advskew: input.advskew ?? VIP_DEFAULTS.advskew,
    mode: input.mode ?? VIP_DEFAULTS.mode,
    description: input.description ?? VIP_DEFAULTS.description,
    nosync: input.nosync ?? VIP_DEFAULTS.nosync,
    protocol: input.protocol ?? VIP_DEFAULTS.protocol,
  };
  setVrrp(v, input.vrrpPriority, input.vrrpInterval);
  const password = input.password === undefined ? keepPassword : (input.password ?? undefined);
  if (password !== undefined) v.password = password;
  if (input.peer != null) v.peer = ip(input.peer);
  if (input.peer6 != null) v.peer6 = ip(input.peer6);
  if (input.macMode != null) v.macMode = input.macMode;
  return v;
}

function build(iface: string, vhid: number, input: VipInput, keepPassword?: string): VipConfig {
  const v = assembleVip(iface, vhid, input, keepPassword);
  refuseCarpTiming(v, input);
  return v;
}

export function createVip(draft: DesiredState, iface: string, vhid: number | undefined, input: VipInput): VipConfig {
  const n = vhid ?? freeVhid(draft, iface);
  if (n === undefined) throw new CarpdError('CARPD_ERR_NO_FREE_VHID', `all 255 vhids of ${iface} are in use; remove one first`);
  if (findVip(draft, iface, n)) {
    throw new CarpdError('CARPD_ERR_VHID_EXISTS', `vhid ${n} is already used on ${iface}; change it with PUT/PATCH /v1/vips/${iface}/${n}, or pick a free one (GET /v1/vhids/free?interface=${iface})`, {
      errors: [{ path: '/vhid', message: `vhid ${n} exists on ${iface}` }],
    });
  }
  const v = build(iface, n, input);
  draft.vips.push(v);
  return v;
}

/** PUT: every field not given takes its default, except the password, which is kept. */
export function replaceVip(draft: DesiredState, iface: string, vhid: number, input: VipInput): { vip: VipConfig; created: boolean } {
  const i = draft.vips.findIndex((v) => v.interface === iface && v.vhid === vhid);
  const v = build(iface, vhid, input, i >= 0 ? draft.vips[i].password : undefined);
  if (i >= 0) draft.vips[i] = v;
  else draft.vips.push(v);
  return { vip: v, created: i < 0 };
}

/**
 * PATCH (JSON merge patch): given fields change; `null` removes password, peer or peer6. The
 * VIP is replaced by an edited copy: the draft shares the stored revision's VIP objects.
 */
export function patchVip(draft: DesiredState, iface: string, vhid: number, patch: VipInput): VipConfig {
  const i = draft.vips.findIndex((x) => x.interface === iface && x.vhid === vhid);
  if (i < 0) throw vipNotFound(iface, vhid);
  const v: VipConfig = { ...draft.vips[i], addresses: [...draft.vips[i].addresses] };
  draft.vips[i] = v;
  if (patch.addresses !== undefined) v.addresses = patch.addresses.map(cidr);
  if (patch.advbase !== undefined) v.advbaseSec = patch.advbase;
  if (patch.advskew !== undefined) v.advskew = patch.advskew;
  if (patch.mode !== undefined) v.mode = patch.mode;
  if (patch.description !== undefined) v.description = patch.description;
  if (patch.nosync !== undefined) v.nosync = patch.nosync;
  if (patch.protocol !== undefined && patch.protocol !== v.protocol) {
    // A new protocol starts from its own defaults: the other protocol's timing does not carry over.
    v.protocol = patch.protocol;
    if (patch.advbase === undefined) v.advbaseSec = VIP_DEFAULTS.advbaseSec;
    if (patch.advskew === undefined) v.advskew = VIP_DEFAULTS.advskew;
    setVrrp(v, patch.vrrpPriority, patch.vrrpInterval);
  } else {
    setVrrp(v, patch.vrrpPriority ?? v.vrrpPriority, patch.vrrpInterval ?? v.vrrpInterval);
  }
  if (patch.macMode === null) delete v.macMode;
  else if (patch.macMode !== undefined) v.macMode = patch.macMode;
  for (const f of ['password', 'peer', 'peer6'] as const) {
    const value = patch[f];
    if (value === null) delete v[f];
    else if (value !== undefined) v[f] = f === 'password' ? value : ip(value);
  }
  // Switching to multicast drops the peers that only unicast uses, unless the patch sets them.
  if (patch.mode === 'multicast') {
    if (patch.peer === undefined) delete v.peer;
    if (patch.peer6 === undefined) delete v.peer6;
  }
  refuseCarpTiming(v, patch);
  return v;
}

export function deleteVip(draft: DesiredState, iface: string, vhid: number): VipConfig {
  const i = draft.vips.findIndex((v) => v.interface === iface && v.vhid === vhid);
  if (i < 0) throw vipNotFound(iface, vhid);
  return draft.vips.splice(i, 1)[0];
}

export function vipNotFound(iface: string, vhid: number): CarpdError {
  return new CarpdError('CARPD_ERR_VIP_NOT_FOUND', `no VIP with vhid ${vhid} on ${iface}; list them with GET /v1/vips`);
}
