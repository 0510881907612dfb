/**
 * A whole desired state as a document declares it (PUT /v1/config), made into the next desired
 * state (pure; the service validates the result again and applies it as one change).
 *
 * The document is what GET /v1/config answers, so that one can be sent back as it is:
 *
 *  vips          the complete list: a VIP not listed is removed. Each VIP is replaced as
 *                PUT /v1/vips/{interface}/{vhid} replaces one: a field not given takes its
 *                default, except `password`, which is write-only and so stays as stored when
 *                absent (`null` removes it). `hasPassword`, as GET shows it, is checked against
 *                the outcome, never acted on: a document copied from another node cannot drop or
 *                invent a password silently.
 *  hooks,        when given, the complete lists (a hook not listed is removed); when absent, they
 *  webhooks      stay as they are. A webhook's `secret` is write-only: absent, the stored one of
 *                that name stays; `hasSecret`, as GET shows it, is accepted and ignored.
 *  carp, pfsync  a section not given stays as it is; a section given is replaced, its fields not
 *                given taking their defaults, except `carp.maintenance`, which stays as it is
 *                when absent (an operator's switch of this node that a declared state need not own)
 *  schemaVersion must be 1 when given (the schema says so)
 *  revision,     server-owned: accepted, so that a document read with GET can be sent back, and
 *  updatedAt     ignored. Concurrency is If-Match's job.
 *  api           API tokens: accepted and ignored. Tokens change through /v1/tokens only, as
 *                their secrets are shown once and never stored in a document.
 *  sync          not part of the document: it changes through PATCH /v1/sync only.
 *
 * Problems are reported all at once, each with a JSON pointer into the document
 * (`/vips/3/advskew`), not with the `/vips/{interface}/{vhid}` paths the rest of the API uses:
 * the sender's document is what has to be fixed.
 */
import { fromProblems } from '../errors.js';
import { canonicalIp } from '../wire/address.js';
import { HOOK_DEFAULTS, WEBHOOK_DEFAULTS, type DesiredState, type PfsyncVersion, type VipConfig } from '../config/model.js';
import { carpTimingRefused, checkState, type Problem } from '../config/validate.js';
import { assembleVip, type VipInput } from './vips.js';
import { checkNotify, type HookInput, type WebhookInput } from './notify.js';
import { trackOf, type TrackInput } from './track-config.js';

export interface DeclaredHook extends HookInput {
  name: string;
}

export interface DeclaredWebhook extends WebhookInput {
  name: string;
  /** As GET shows it (always true): accepted and ignored. */
  hasSecret?: boolean;
}

export interface DeclaredTrack extends TrackInput {
  name: string;
}

export interface DeclaredVip extends VipInput {
  interface: string;
  vhid: number;
  addresses: string[];
  /** As GET shows it: checked against the outcome. */
  hasPassword?: boolean;
}

export interface DeclaredConfig {
  schemaVersion?: number;
  revision?: number;
  updatedAt?: string;
  vips: DeclaredVip[];
  carp?: { enabled?: boolean; preempt?: boolean; maintenance?: boolean };
  pfsync?: { enabled: boolean; syncdev?: string; syncpeer?: string | null; maxupd?: number; defer?: boolean; version?: PfsyncVersion };
  api?: unknown;
  hooks?: DeclaredHook[];
  webhooks?: DeclaredWebhook[];
  tracks?: DeclaredTrack[];
}

/** The defaults a section takes for what it does not give (those of a new node, initialState). */
const CARP_DEFAULTS = { enabled: true, preempt: true };
const PFSYNC_DEFAULTS = { maxupd: 128, defer: false, version: 1400 as PfsyncVersion };

const key = (iface: string, vhid: number) => `${iface}/${vhid}`;

/**
 * The desired state `doc` declares, on top of `current` for what it leaves out (tokens, sync,
 * stored passwords, maintenance, absent sections). Throws a CarpdError listing every problem.
 */
export function declaredState(current: DesiredState, doc: DeclaredConfig): DesiredState {
  const problems: Problem[] = [];
  const stored = new Map(current.vips.map((v) => [key(v.interface, v.vhid), v]));
  const index = new Map<string, number>();
  const declared = new Map<string, VipConfig>();
  doc.vips.forEach((input, i) => {
    const k = key(input.interface, input.vhid);
    const first = index.get(k);
    if (first !== undefined) {
      problems.push({ path: `/vips/${i}/vhid`, code: 'CARPD_ERR_VHID_EXISTS', message: `${input.interface} vhid ${input.vhid} is declared twice (also at /vips/${first}); vhids are unique per interface` });
      return;
    }
    index.set(k, i);
    const { interface: iface, vhid, hasPassword, ...fields } = input;
    const v = assembleVip(iface, vhid, fields, stored.get(k)?.password);
    // A vrrpv3 VIP refuses advbase/advskew even at their defaults, which the built VIP cannot show.
    if (v.protocol === 'vrrpv3') problems.push(...carpTimingRefused(v, fields));
    if (hasPassword !== undefined && hasPassword !== (v.password !== undefined)) {
      problems.push({
        path: `/vips/${i}/hasPassword`,
        code: 'CARPD_ERR_INVALID_VALUE',
        message: hasPassword
          ? 'hasPassword is true, but this VIP would have no password: none is stored for it on this node and the document gives none; add password (it is write-only, so a document read with GET never carries it)'
          : 'hasPassword is false, but a password is stored for this VIP and the document keeps it (an absent password stays as it is); send password: null to remove it, or leave hasPassword out',
      });
    }
    declared.set(k, v);
  });

  // Everything but the VIPs, which are built above.
  const next: DesiredState = structuredClone({ ...current, vips: [] });
  // VIPs kept where they were stored, new ones after them in the document's order: the same
  // VIPs in another order are the same desired state, not a change.
  next.vips = [...current.vips.filter((v) => declared.has(key(v.interface, v.vhid))).map((v) => declared.get(key(v.interface, v.vhid))!), ...[...declared.values()].filter((v) => !stored.has(key(v.interface, v.vhid)))];
  if (doc.carp) {
    next.carp = { enabled: doc.carp.enabled ?? CARP_DEFAULTS.enabled, preempt: doc.carp.preempt ?? CARP_DEFAULTS.preempt, maintenance: doc.carp.maintenance ?? current.carp.maintenance };
  }
  if (doc.pfsync) {
    const p = doc.pfsync;
    next.pfsync = { enabled: p.enabled, maxupd: p.maxupd ?? PFSYNC_DEFAULTS.maxupd, defer: p.defer ?? PFSYNC_DEFAULTS.defer, version: p.version ?? PFSYNC_DEFAULTS.version };
    if (p.syncdev !== undefined) next.pfsync.syncdev = p.syncdev;
    if (p.syncpeer != null) next.pfsync.syncpeer = canonicalIp(p.syncpeer)?.address ?? p.syncpeer;
  }

  // A name declared twice is reported by checkNotify below.
  if (doc.hooks) {
    next.hooks = doc.hooks.map(({ name, ...h }) => ({ name, events: h.events.map((f) => ({ ...f })), command: h.command as string[], timeoutSec: h.timeoutSec ?? HOOK_DEFAULTS.timeoutSec, env: { ...(h.env ?? {}) }, nosync: h.nosync ?? HOOK_DEFAULTS.nosync }));
  }
  if (doc.webhooks) {
    const secrets = new Map(current.webhooks.map((w) => [w.name, w.secret]));
    doc.webhooks.forEach((w, i) => {
      if (w.secret === undefined && !secrets.has(w.name)) problems.push({ path: `/webhooks/${i}/secret`, code: 'CARPD_ERR_INVALID_VALUE', message: `webhook "${w.name}" is new here and needs a secret (write-only: a document read with GET never carries it)` });
    });
    next.webhooks = doc.webhooks.map((w) => ({ name: w.name, url: w.url, secret: w.secret ?? secrets.get(w.name) ?? '', events: w.events.map((f) => ({ ...f })), timeoutSec: w.timeoutSec ?? WEBHOOK_DEFAULTS.timeoutSec, nosync: w.nosync ?? WEBHOOK_DEFAULTS.nosync }));
  }

  if (doc.tracks) next.tracks = doc.tracks.map(({ name, ...t }) => trackOf(name, t));

  // Problems of tracks (config/validate.ts, paths /tracks/{name}/...) made pointers into the document.
  const trackAt = new Map((doc.tracks ?? []).map((t, i) => [t.name, i]));
  for (const p of checkState(next)) {
    const m = /^\/tracks\/([^/]+)(\/.*)?$/.exec(p.path);
    const i = m ? trackAt.get(m[1]) : undefined;
    problems.push(m && i !== undefined ? { ...p, path: `/tracks/${i}${m[2] ?? ''}` } : p);
  }
  // Rules of hooks and webhooks, with /hooks/{name} made a pointer into the document.
  const hookAt = new Map((doc.hooks ?? []).map((h, i) => [h.name, i]));
  const webhookAt = new Map((doc.webhooks ?? []).map((w, i) => [w.name, i]));
  for (const p of checkNotify(next)) {
    // A secret left empty above was reported already.
    if (/^\/webhooks\/[^/]+\/secret$/.test(p.path) && next.webhooks.find((w) => `/webhooks/${w.name}/secret` === p.path)?.secret === '') continue;
    const m = /^\/(hooks|webhooks)\/([^/]+)(\/.*)?$/.exec(p.path);
    const i = m ? (m[1] === 'hooks' ? hookAt : webhookAt).get(m[2]) : undefined;
    problems.push(m && i !== undefined ? { ...p, path: `/${m[1]}/${i}${m[3] ?? ''}` } : p);
  }
  const seen = new Set<string>();
  const found = problems
    .map((p) => ({ ...p, path: pointerOf(p.path, index) }))
    .filter((p) => {
      // A rule the request reader and the document rules both name is reported once.
      const id = `${p.path}\n${p.message}`;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  // In the document's order, VIP by VIP, then the sections: the first problem (whose code
  // names the error) is the first one a reader of the document meets.
  const rank = (p: Problem) => {
    const m = /^\/vips\/(\d+)(?:\/|$)/.exec(p.path);
    return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
  };
  found.sort((a, b) => rank(a) - rank(b));
  if (found.length > 0) throw fromProblems(found);
  return next;
}

/** `/vips/{interface}/{vhid}/field` (the validator's paths) as a pointer into the document: `/vips/{index}/field`. */
function pointerOf(path: string, index: Map<string, number>): string {
  const m = /^\/vips\/([^/]+)\/(\d+)(\/.*)?$/.exec(path);
  if (!m) return path;
  const i = index.get(key(m[1], Number(m[2])));
  return i === undefined ? path : `/vips/${i}${m[3] ?? ''}`;
}
