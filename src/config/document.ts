/**
 * Reading desired-state documents from disk: the stored file (internal names) and the
 * bootstrap file (the API's names, passwords in clear). Both are checked field by field so a
 * bad file is refused with the field and the reason, never half-loaded.
 */
import { canonicalCidr, canonicalIp } from '../wire/address.js';
import { HOOK_DEFAULTS, TRACK_DEFAULTS, TRACK_KINDS, defaultTrackTimeout, type TrackConfig, PFSYNC_VERSIONS, SCHEMA_VERSION, SPLIT_BRAIN_POLICIES, SYNC_ROLES, VIP_DEFAULTS, VIP_MAC_MODES, VIP_PROTOCOLS, WEBHOOK_DEFAULTS, initialState, initialSync, type DesiredState, type EventFilter, type HookConfig, type PfsyncConfig, type PfsyncVersion, type SyncConfig, type TokenRecord, type VipConfig, type WebhookConfig } from './model.js';
import { carpTimingRefused, checkState } from './validate.js';

export class DocumentError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'DocumentError';
  }
}

type Obj = Record<string, unknown>;

function obj(v: unknown, path: string, allowed: readonly string[]): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DocumentError(path, 'must be an object');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) throw new DocumentError(`${path}/${k}`, 'unknown field');
  return v as Obj;
}
function req<T>(o: Obj, k: string, path: string, read: (v: unknown, p: string) => T): T {
  if (!(k in o)) throw new DocumentError(`${path}/${k}`, 'required field is missing');
  return read(o[k], `${path}/${k}`);
}
function opt<T>(o: Obj, k: string, path: string, read: (v: unknown, p: string) => T): T | undefined {
  return o[k] === undefined || o[k] === null ? undefined : read(o[k], `${path}/${k}`);
}
const str = (v: unknown, p: string): string => {
  if (typeof v !== 'string') throw new DocumentError(p, 'must be a string');
  return v;
};
const bool = (v: unknown, p: string): boolean => {
  if (typeof v !== 'boolean') throw new DocumentError(p, 'must be true or false');
  return v;
};
const int = (v: unknown, p: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new DocumentError(p, 'must be an integer');
  return v;
};
const arr = (v: unknown, p: string): unknown[] => {
  if (!Array.isArray(v)) throw new DocumentError(p, 'must be an array');
  return v;
};
const oneOf =
  <T extends string | number>(values: readonly T[]) =>
  (v: unknown, p: string): T => {
    if (!values.includes(v as T)) throw new DocumentError(p, `must be one of ${values.join(', ')}`);
    return v as T;
  };
const cidr = (v: unknown, p: string): string => {
  const c = canonicalCidr(str(v, p));
  if (!c) throw new DocumentError(p, `"${String(v)}" is not an address with a prefix length`);
  return c;
};
const ip = (v: unknown, p: string): string => {
  const c = canonicalIp(str(v, p));
  if (!c) throw new DocumentError(p, `"${String(v)}" is not an IP address`);
  return c.address;
};
const date = (v: unknown, p: string): string => {
  const s = str(v, p);
  if (Number.isNaN(Date.parse(s))) throw new DocumentError(p, 'must be an ISO 8601 date-time');
  return s;
};

/** Throws DocumentError for the first rule the finished document breaks. */
function checked(s: DesiredState): DesiredState {
  const problems = checkState(s);
  if (problems.length > 0) throw new DocumentError(problems[0].path, problems[0].message);
  return s;
}

// protocol, vrrpPriority and vrrpInterval came later: a stored VIP without them is carp.
const VIP_FIELDS_STORED = ['interface', 'vhid', 'addresses', 'advbaseSec', 'advskew', 'password', 'mode', 'peer', 'peer6', 'description', 'nosync', 'protocol', 'vrrpPriority', 'vrrpInterval', 'macMode'] as const;
const VIP_FIELDS_EXTERNAL = ['interface', 'vhid', 'addresses', 'advbase', 'advskew', 'password', 'mode', 'peer', 'peer6', 'description', 'nosync', 'protocol', 'vrrpPriority', 'vrrpInterval', 'macMode'] as const;

export function readVip(v: unknown, p: string, external: boolean): VipConfig {
  const o = obj(v, p, external ? VIP_FIELDS_EXTERNAL : VIP_FIELDS_STORED);
  const advbaseKey = external ? 'advbase' : 'advbaseSec';
  const protocol = opt(o, 'protocol', p, oneOf(VIP_PROTOCOLS)) ?? VIP_DEFAULTS.protocol;
  if (external && protocol === 'vrrpv3') {
    // A bootstrap file, like a request, may not set the carp timing of a vrrpv3 VIP at all.
    const [refused] = carpTimingRefused({ interface: String(o.interface), vhid: Number(o.vhid) }, { advbase: o.advbase ?? undefined, advskew: o.advskew ?? undefined });
    if (refused) throw new DocumentError(`${p}/${refused.path.split('/').pop()}`, refused.message);
  }
  const vrrp: Pick<VipConfig, 'vrrpPriority' | 'vrrpInterval'> = {};
  const vrrpPriority = opt(o, 'vrrpPriority', p, int);
  const vrrpInterval = opt(o, 'vrrpInterval', p, int);
  // Defaults are filled in for vrrpv3 only; given for carp, they are kept so that validation names them.
  if (vrrpPriority !== undefined || protocol === 'vrrpv3') vrrp.vrrpPriority = vrrpPriority ?? VIP_DEFAULTS.vrrpPriority;
  if (vrrpInterval !== undefined || protocol === 'vrrpv3') vrrp.vrrpInterval = vrrpInterval ?? VIP_DEFAULTS.vrrpInterval;
  const macMode = opt(o, 'macMode', p, oneOf(VIP_MAC_MODES));
  return {
    interface: req(o, 'interface', p, str),
    vhid: req(o, 'vhid', p, int),
    addresses: req(o, 'addresses', p, arr).map((a, i) => cidr(a, `${p}/addresses/${i}`)),
    advbaseSec: (external ? opt(o, advbaseKey, p, int) : req(o, advbaseKey, p, int)) ?? VIP_DEFAULTS.advbaseSec,
    advskew: (external ? opt(o, 'advskew', p, int) : req(o, 'advskew', p, int)) ?? VIP_DEFAULTS.advskew,
    password: opt(o, 'password', p, str),
    mode: opt(o, 'mode', p, oneOf(['multicast', 'unicast'] as const)) ?? VIP_DEFAULTS.mode,
    peer: opt(o, 'peer', p, ip),
    peer6: opt(o, 'peer6', p, ip),
    description: opt(o, 'description', p, str) ?? VIP_DEFAULTS.description,
    nosync: opt(o, 'nosync', p, bool) ?? VIP_DEFAULTS.nosync,
    protocol,
    ...vrrp,
    ...(macMode !== undefined ? { macMode } : {}),
  };
}

function readCarp(v: unknown, p: string, base: DesiredState['carp']): DesiredState['carp'] {
  const o = obj(v, p, ['enabled', 'preempt', 'maintenance']);
  return {
    enabled: opt(o, 'enabled', p, bool) ?? base.enabled,
    preempt: opt(o, 'preempt', p, bool) ?? base.preempt,
    maintenance: opt(o, 'maintenance', p, bool) ?? base.maintenance,
  };
}

function readPfsync(v: unknown, p: string, base: PfsyncConfig): PfsyncConfig {
  const o = obj(v, p, ['enabled', 'syncdev', 'syncpeer', 'maxupd', 'defer', 'version']);
  return {
    enabled: opt(o, 'enabled', p, bool) ?? base.enabled,
    syncdev: opt(o, 'syncdev', p, str),
    syncpeer: opt(o, 'syncpeer', p, ip),
    maxupd: opt(o, 'maxupd', p, int) ?? base.maxupd,
    defer: opt(o, 'defer', p, bool) ?? base.defer,
    version: opt(o, 'version', p, oneOf<PfsyncVersion>(PFSYNC_VERSIONS)) ?? base.version,
  };
}

function readToken(v: unknown, p: string): TokenRecord {
  const o = obj(v, p, ['name', 'role', 'sha256', 'createdAt']);
  return {
    name: req(o, 'name', p, str),
    role: req(o, 'role', p, oneOf(['read', 'admin'] as const)),
    sha256: req(o, 'sha256', p, str),
    createdAt: req(o, 'createdAt', p, date),
  };
}

/** The sync section as stored (internal names). Absent in documents written before sync existed. */
function readSync(v: unknown, p: string): SyncConfig {
  const base = initialSync();
  const o = obj(v, p, ['role', 'peer', 'advskewRule', 'overrides', 'localAddresses', 'detached', 'appliedRevision', 'splitBrainPolicy']);
  const policy = opt(o, 'splitBrainPolicy', p, oneOf(SPLIT_BRAIN_POLICIES));
  const peer = opt(o, 'peer', p, (x, pp) => {
    const q = obj(x, pp, ['address', 'port', 'fingerprint']);
    return { address: req(q, 'address', pp, ip), port: req(q, 'port', pp, int), fingerprint: req(q, 'fingerprint', pp, str) };
  });
  const rule = req(o, 'advskewRule', p, (x, pp) => {
    const q = obj(x, pp, ['add', 'cap']);
    return { add: req(q, 'add', pp, int), cap: req(q, 'cap', pp, int) };
  });
  const detached = req(o, 'detached', p, (x, pp) => {
    const q = obj(x, pp, ['vips', 'carp']);
    return { vips: req(q, 'vips', pp, arr).map((k, i) => str(k, `${pp}/vips/${i}`)), carp: req(q, 'carp', pp, bool) };
  });
  return {
    role: req(o, 'role', p, oneOf(SYNC_ROLES)),
    ...(peer ? { peer } : {}),
    advskewRule: rule ?? base.advskewRule,
    overrides: req(o, 'overrides', p, arr).map((x, i) => {
      const pp = `${p}/overrides/${i}`;
      const q = obj(x, pp, ['interface', 'vhid', 'advskew', 'vrrpPriority']);
      const advskew = opt(q, 'advskew', pp, int);
      const vrrpPriority = opt(q, 'vrrpPriority', pp, int);
      return { interface: req(q, 'interface', pp, str), vhid: req(q, 'vhid', pp, int), ...(advskew !== undefined ? { advskew } : {}), ...(vrrpPriority !== undefined ? { vrrpPriority } : {}) };
    }),
    localAddresses: req(o, 'localAddresses', p, arr).map((x, i) => cidr(x, `${p}/localAddresses/${i}`)),
    detached,
    appliedRevision: req(o, 'appliedRevision', p, int),
    ...(policy !== undefined && policy !== 'alert' ? { splitBrainPolicy: policy } : {}),
  };
}

function readFilter(v: unknown, p: string): EventFilter {
  const o = obj(v, p, ['type', 'interface', 'vhid', 'state']);
  const f: EventFilter = { type: req(o, 'type', p, str) };
  const iface = opt(o, 'interface', p, str);
  const vhid = opt(o, 'vhid', p, int);
  const state = opt(o, 'state', p, oneOf(['INIT', 'BACKUP', 'MASTER'] as const));
  if (iface !== undefined) f.interface = iface;
  if (vhid !== undefined) f.vhid = vhid;
  if (state !== undefined) f.state = state;
  return f;
}

const strings = (v: unknown, p: string): string[] => arr(v, p).map((x, i) => str(x, `${p}/${i}`));

/**
 * A hook as stored, synced or given in a bootstrap file (one form: the API's names). The
 * semantic rules (an absolute command, known event types, environment names) are the
 * service's (service/notify.ts), which checks every change.
 */
export function readHook(v: unknown, p: string): HookConfig {
  const o = obj(v, p, ['name', 'events', 'command', 'timeoutSec', 'env', 'nosync']);
  if (typeof o.command === 'string') throw new DocumentError(`${p}/command`, 'a hook\'s command is an argv array (["/usr/local/sbin/notify", "arg"]), never a shell string');
  // Any names: the service's rules check them (service/notify.ts).
  const anyKeys = (x: unknown, q: string) => obj(x, q, typeof x === 'object' && x !== null ? Object.keys(x) : []);
  const env = opt(o, 'env', p, anyKeys) ?? {};
  return {
    name: req(o, 'name', p, str),
    events: req(o, 'events', p, arr).map((f, i) => readFilter(f, `${p}/events/${i}`)),
    command: req(o, 'command', p, strings),
    timeoutSec: opt(o, 'timeoutSec', p, int) ?? HOOK_DEFAULTS.timeoutSec,
    env: Object.fromEntries(Object.entries(env).map(([k, x]) => [k, str(x, `${p}/env/${k}`)])),
    nosync: opt(o, 'nosync', p, bool) ?? HOOK_DEFAULTS.nosync,
  };
}

/** A webhook as stored, synced or given in a bootstrap file; the secret is required. */
export function readWebhook(v: unknown, p: string): WebhookConfig {
  const o = obj(v, p, ['name', 'url', 'secret', 'events', 'timeoutSec', 'nosync']);
  return {
    name: req(o, 'name', p, str),
    url: req(o, 'url', p, str),
    secret: req(o, 'secret', p, str),
    events: req(o, 'events', p, arr).map((f, i) => readFilter(f, `${p}/events/${i}`)),
    timeoutSec: opt(o, 'timeoutSec', p, int) ?? WEBHOOK_DEFAULTS.timeoutSec,
    nosync: opt(o, 'nosync', p, bool) ?? WEBHOOK_DEFAULTS.nosync,
  };
}

/**
 * A track as stored, synced or given in a bootstrap file (the API's names); fields not given
 * take their defaults. Its rules (config/validate.ts checkTrack) are checked with the document's.
 */
export function readTrack(v: unknown, p: string): TrackConfig {
  const o = obj(v, p, ['name', 'kind', 'interface', 'target', 'port', 'url', 'statusMin', 'statusMax', 'command', 'intervalMs', 'timeoutMs', 'rise', 'fall', 'weight', 'nosync']);
  if (typeof o.command === 'string') throw new DocumentError(`${p}/command`, 'a script track\'s command is an argv array (["/usr/local/libexec/check-wan", "--quiet"]), never a shell string');
  const intervalMs = opt(o, 'intervalMs', p, int) ?? TRACK_DEFAULTS.intervalMs;
  const t: TrackConfig = {
    name: req(o, 'name', p, str),
    kind: req(o, 'kind', p, oneOf(TRACK_KINDS)),
    intervalMs,
    timeoutMs: opt(o, 'timeoutMs', p, int) ?? defaultTrackTimeout(intervalMs),
    rise: opt(o, 'rise', p, int) ?? TRACK_DEFAULTS.rise,
    fall: opt(o, 'fall', p, int) ?? TRACK_DEFAULTS.fall,
    weight: opt(o, 'weight', p, int) ?? TRACK_DEFAULTS.weight,
    nosync: opt(o, 'nosync', p, bool) ?? TRACK_DEFAULTS.nosync,
  };
  const iface = opt(o, 'interface', p, str);
  const target = opt(o, 'target', p, str);
  const port = opt(o, 'port', p, int);
  const url = opt(o, 'url', p, str);
  const statusMin = opt(o, 'statusMin', p, int);
  const statusMax = opt(o, 'statusMax', p, int);
  const command = opt(o, 'command', p, strings);
  if (iface !== undefined) t.interface = iface;
  if (target !== undefined) t.target = canonicalIp(target)?.address ?? target;
  if (port !== undefined) t.port = port;
  if (url !== undefined) t.url = url;
  if (statusMin !== undefined) t.statusMin = statusMin;
  if (statusMax !== undefined) t.statusMax = statusMax;
  if (command !== undefined) t.command = command;
  return t;
}

/** The stored document, exactly as carpd writes it. */
export function readStoredState(raw: unknown): DesiredState {
  const o = obj(raw, '', ['schemaVersion', 'revision', 'updatedAt', 'vips', 'hooks', 'webhooks', 'tracks', 'carp', 'pfsync', 'api', 'sync']);
  const version = req(o, 'schemaVersion', '', int);
  if (version !== SCHEMA_VERSION) throw new DocumentError('/schemaVersion', `schema version ${version} is not ${SCHEMA_VERSION}, the one this carpd understands`);
  const base = initialState(new Date(0));
  const revision = req(o, 'revision', '', int);
  if (revision < 0) throw new DocumentError('/revision', 'must not be negative');
  const api = req(o, 'api', '', (v, p) => obj(v, p, ['tokens']));
  return checked({
    schemaVersion: SCHEMA_VERSION,
    revision,
    updatedAt: req(o, 'updatedAt', '', date),
    vips: req(o, 'vips', '', arr).map((v, i) => readVip(v, `/vips/${i}`, false)),
    // Hooks and webhooks came later: a document stored before them has none.
    hooks: (opt(o, 'hooks', '', arr) ?? []).map((h, i) => readHook(h, `/hooks/${i}`)),
    webhooks: (opt(o, 'webhooks', '', arr) ?? []).map((w, i) => readWebhook(w, `/webhooks/${i}`)),
    // Tracks came later still: a document stored before them has none.
    tracks: (opt(o, 'tracks', '', arr) ?? []).map((t, i) => readTrack(t, `/tracks/${i}`)),
    carp: req(o, 'carp', '', (v, p) => readCarp(v, p, base.carp)),
    pfsync: req(o, 'pfsync', '', (v, p) => readPfsync(v, p, base.pfsync)),
    api: { tokens: req(api, 'tokens', '/api', arr).map((t, i) => readToken(t, `/api/tokens/${i}`)) },
    sync: opt(o, 'sync', '', readSync) ?? initialSync(),
  });
}

/** The sections a bootstrap file may set; absent sections are left as they are. */
export interface Bootstrap {
  vips?: VipConfig[];
  hooks?: HookConfig[];
  webhooks?: WebhookConfig[];
  tracks?: TrackConfig[];
  carp?: DesiredState['carp'];
  pfsync?: PfsyncConfig;
}

/** A bootstrap file uses the API's names (advbase, not advbaseSec) and may carry passwords. */
export function readBootstrap(raw: unknown, current: DesiredState): Bootstrap {
  const o = obj(raw, '', ['vips', 'hooks', 'webhooks', 'tracks', 'carp', 'pfsync']);
  const b: Bootstrap = {
    vips: opt(o, 'vips', '', arr)?.map((v, i) => readVip(v, `/vips/${i}`, true)),
    hooks: opt(o, 'hooks', '', arr)?.map((h, i) => readHook(h, `/hooks/${i}`)),
    webhooks: opt(o, 'webhooks', '', arr)?.map((w, i) => readWebhook(w, `/webhooks/${i}`)),
    tracks: opt(o, 'tracks', '', arr)?.map((t, i) => readTrack(t, `/tracks/${i}`)),
    carp: opt(o, 'carp', '', (v, p) => readCarp(v, p, current.carp)),
    pfsync: opt(o, 'pfsync', '', (v, p) => readPfsync(v, p, current.pfsync)),
  };
  checked(applyBootstrap(current, b));
  return b;
}

export function applyBootstrap(s: DesiredState, b: Bootstrap): DesiredState {
  return { ...s, vips: b.vips ?? s.vips, hooks: b.hooks ?? s.hooks, webhooks: b.webhooks ?? s.webhooks, tracks: b.tracks ?? s.tracks, carp: b.carp ?? s.carp, pfsync: b.pfsync ?? s.pfsync };
}
