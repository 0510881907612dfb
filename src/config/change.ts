/**
 * One change of the desired state, found by comparing a revision with its successor: the JSON
 * Patch the journal stores, the VIPs that went and came, and which sections changed. It costs
 * what the change touches, not what the document holds, because revisions share their
 * unchanged objects (a draft copies only what it edits, and stored revisions are frozen so
 * that nothing edits them in place).
 */
import { canonicalJson, diff, diffList, pointerToken, type PatchOp } from './patch.js';
import type { DesiredState, VipConfig } from './model.js';

export interface StateDiff {
  /** RFC 6902 operations from the old document to the new one (revision and updatedAt aside). */
  ops: PatchOp[];
  /** VIPs of the old document that are not in the new one as they were, in document order. */
  removed: VipConfig[];
  /** VIPs of the new document that are new or changed, in document order. */
  added: VipConfig[];
  /** Which top-level sections the operations touch. */
  sections: Set<string>;
}

/** Fields that only stamp a revision; they travel in the journal record, not in its patch. */
const STAMP = new Set(['revision', 'updatedAt']);

/**
 * The change from `before` to `after`. With `adopt`, VIPs of `after` equal in content to one of
 * `before` are replaced by that object in `after.vips` (which must be the caller's own array),
 * so that the revisions after it share them again (a rollback, a sync snapshot, a bootstrap
 * file bring equal VIPs as new objects).
 */
export function diffStates(before: DesiredState, after: DesiredState, opts: { adopt?: boolean } = {}): StateDiff {
  const ops: PatchOp[] = [];
  let removed: VipConfig[] = [];
  let added: VipConfig[] = [];
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  for (const k of Object.keys(a)) {
    if (STAMP.has(k) || a[k] === undefined) continue;
    const path = `/${pointerToken(k)}`;
    if (b[k] === undefined) ops.push({ op: 'remove', path });
    else if (k === 'vips' && Array.isArray(a[k]) && Array.isArray(b[k])) {
      const d = diffList(before.vips, after.vips, path, ops);
      removed = d.removed;
      added = d.added;
      if (opts.adopt) for (const [i, j] of d.matchedByContent) after.vips[j] = before.vips[i];
    } else diff(a[k], b[k], path, ops);
  }
  for (const k of Object.keys(b)) {
    if (!STAMP.has(k) && b[k] !== undefined && a[k] === undefined) {
      ops.push({ op: 'add', path: `/${pointerToken(k)}`, value: b[k] });
      if (k === 'vips' && Array.isArray(b[k])) added = [...after.vips];
    }
  }
  const sections = new Set(ops.map((o) => o.path.split('/')[1]));
  return { ops, removed, added, sections };
}

const SECTIONS = ['carp', 'pfsync', 'api', 'sync', 'hooks', 'webhooks', 'tracks'] as const;
type Section = (typeof SECTIONS)[number];
/** The sections a draft has copied (read or written), by draft. */
const copied = new WeakMap<DesiredState, Partial<Record<Section, unknown>>>();

const copyOf = (s: DesiredState, k: Section): unknown =>
  k === 'api' ? { ...s.api, tokens: s.api.tokens.map((t) => ({ ...t })) } : k === 'sync' || k === 'hooks' || k === 'webhooks' || k === 'tracks' ? structuredClone(s[k]) : { ...s[k] };

/**
 * A copy of `s` to edit: a new top-level object and VIP list; the VIP objects are shared
 * (frozen in a stored revision: an edit replaces one, see patchVip), and each small section is
 * copied the first time the change reads or sets it. settle() then gives the edited document,
 * with the sections the change never looked at still the revision's own objects.
 */
export function draftOf(s: DesiredState): DesiredState {
  const own: Partial<Record<Section, unknown>> = {};
  if (inStoredOrder(s)) {
    const d = draftLiteral(s, own);
    copied.set(d, own);
    return d;
  }
  const d = { ...s, vips: [...s.vips] };
  for (const k of SECTIONS) {
    Object.defineProperty(d, k, {
      enumerable: true,
      configurable: true,
      get: () => (k in own ? own[k] : (own[k] = copyOf(s, k))),
      set: (v: unknown) => void (own[k] = v),
    });
  }
  copied.set(d, own);
  return d;
}

/** The keys of a desired state in the order every stored one has them (initialState's). */
const STORED_ORDER = ['schemaVersion', 'revision', 'updatedAt', 'vips', 'hooks', 'webhooks', 'tracks', 'carp', 'pfsync', 'api', 'sync'];

function inStoredOrder(s: DesiredState): boolean {
  const keys = Object.keys(s);
  if (keys.length !== STORED_ORDER.length) return false;
  for (let i = 0; i < keys.length; i++) if (keys[i] !== STORED_ORDER[i]) return false;
  return true;
}

/**
 * draftOf's draft of a document with STORED_ORDER's keys, as one object literal: the same own,
 * enumerable properties in the same order as the general way's, made without redefining
 * properties one by one (which leaves V8 a slow, dictionary-mode object every later read pays for).
 */
function draftLiteral(s: DesiredState, own: Partial<Record<Section, unknown>>): DesiredState {
  const get = <K extends Section>(k: K): DesiredState[K] => (k in own ? own[k] : (own[k] = copyOf(s, k))) as DesiredState[K];
  return {
    schemaVersion: s.schemaVersion,
    revision: s.revision,
    updatedAt: s.updatedAt,
    vips: [...s.vips],
    get hooks() {
      return get('hooks');
    },
    set hooks(v) {
      own.hooks = v;
    },
    get webhooks() {
      return get('webhooks');
    },
    set webhooks(v) {
      own.webhooks = v;
    },
    get tracks() {
      return get('tracks');
    },
    set tracks(v) {
      own.tracks = v;
    },
    get carp() {
      return get('carp');
    },
    set carp(v) {
      own.carp = v;
    },
    get pfsync() {
      return get('pfsync');
    },
    set pfsync(v) {
      own.pfsync = v;
    },
    get api() {
      return get('api');
    },
    set api(v) {
      own.api = v;
    },
    get sync() {
      return get('sync');
    },
    set sync(v) {
      own.sync = v;
    },
  };
}

/** The edited document of a draft made by draftOf from `from`, as a plain object. */
export function settle(draft: DesiredState, from: DesiredState): DesiredState {
  const own = copied.get(draft);
  if (!own) return draft;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(draft)) {
    const section = (SECTIONS as readonly string[]).includes(k) ? (k as Section) : undefined;
    out[k] = section === undefined ? (draft as unknown as Record<string, unknown>)[k] : section in own ? own[section] : from[section];
  }
  return out as unknown as DesiredState;
}

function freezeDeep(v: unknown): void {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return;
  Object.freeze(v);
  for (const x of Object.values(v)) freezeDeep(x);
}

/**
 * Freezes a revision about to be stored, so that the revisions after it can share its objects.
 * Already frozen parts (those shared with the revision before) are passed over at once; of the
 * VIPs, only `vips` (those a change brought) are looked at.
 */
export function freezeState(s: DesiredState, vips: readonly VipConfig[] = s.vips): DesiredState {
  for (const v of vips) freezeDeep(v);
  freezeDeep(s.carp);
  freezeDeep(s.pfsync);
  freezeDeep(s.api);
  freezeDeep(s.sync);
  freezeDeep(s.hooks);
  freezeDeep(s.webhooks);
  freezeDeep(s.tracks);
  Object.freeze(s.vips);
  return Object.freeze(s);
}

/** Content equality of two VIPs (key order and absent-vs-undefined aside). */
export function sameVip(a: VipConfig, b: VipConfig): boolean {
  return a === b || canonicalJson(a) === canonicalJson(b);
}
