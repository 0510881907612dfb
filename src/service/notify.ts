/**
 * Hooks (programs run on events) and webhooks (signed JSON POSTs of events) in the desired
 * state: their rules, the edits the API makes, and which events a filter matches. The rules
 * live here, not in config/validate.ts, because they need the event types (events.ts); the
 * service checks them on every change that touches either list (service.ts), so the API, PUT
 * /v1/config, the bootstrap file and sync all meet them. The runners are in src/notify/.
 *
 * Rules:
 *  - names as token names; unique per list;
 *  - at least one event filter; each type an event type or a family (`splitbrain`); a
 *    hook may not hear hook.* events (its own results would run it again, without end);
 *    `state` only with vhid.state; `vhid` 1..255; `interface` an interface name;
 *  - command: an argv array, command[0] an absolute path; never a shell string;
 *  - env: names ^[A-Z_][A-Z0-9_]*$, not CARPD_* (carpd sets those), values without NUL;
 *  - timeoutSec 1..3600;
 *  - a webhook's url http: or https: only, without credentials; its secret 1..1024 characters.
 */
import { CarpdError, fromProblems } from '../errors.js';
import { HOOK_DEFAULTS, WEBHOOK_DEFAULTS, type DesiredState, type EventFilter, type HookConfig, type WebhookConfig } from '../config/model.js';
import { INTERFACE_NAME, TOKEN_NAME, type Problem } from '../config/validate.js';
import { EVENT_FAMILIES, EVENT_TYPES, eventTypesOf, type AnyEvent } from './events.js';

export const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
export const HOOK_TIMEOUT_SEC = { min: 1, max: 3600 };
export const WEBHOOK_TIMEOUT_SEC = { min: 1, max: 300 };
export const HOOK_LIMITS = { commandArgs: 256, argBytes: 4096, envVars: 64, envValueBytes: 4096, filters: 32 };
export const SECRET_MAX = 1024;

/** A hook as the API takes it (the name is in the path, or in POST's body). */
export interface HookInput {
  events: EventFilter[];
  command: string[] | string;
  timeoutSec?: number;
  env?: Record<string, string>;
  nosync?: boolean;
}

/** A webhook as the API takes it. `secret` absent on PUT: the stored one stays. */
export interface WebhookInput {
  url: string;
  secret?: string;
  events: EventFilter[];
  timeoutSec?: number;
  nosync?: boolean;
}

const known = () => `one of ${[...EVENT_TYPES, ...Object.keys(EVENT_FAMILIES)].join(', ')}`;

function checkFilters(events: readonly EventFilter[], path: string, hook: boolean, out: Problem[]): void {
  if (events.length === 0) out.push({ path: `${path}/events`, code: 'CARPD_ERR_INVALID_VALUE', message: 'give at least one event filter ({"type": "vhid.state", "state": "MASTER"})' });
  if (events.length > HOOK_LIMITS.filters) out.push({ path: `${path}/events`, code: 'CARPD_ERR_INVALID_VALUE', message: `at most ${HOOK_LIMITS.filters} event filters` });
  events.forEach((f, i) => {
    const p = `${path}/events/${i}`;
    const types = eventTypesOf(f.type);
    if (!types) out.push({ path: `${p}/type`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${f.type}" is not an event type: ${known()}` });
    else if (hook && types.some((t) => t.startsWith('hook.'))) out.push({ path: `${p}/type`, code: 'CARPD_ERR_INVALID_VALUE', message: `a hook cannot run on ${f.type} events (its own results would run it again); use a webhook for them` });
    if (f.state !== undefined && f.type !== 'vhid.state') out.push({ path: `${p}/state`, code: 'CARPD_ERR_INVALID_VALUE', message: 'state filters vhid.state events only' });
    if (f.state !== undefined && !['INIT', 'BACKUP', 'MASTER'].includes(f.state)) out.push({ path: `${p}/state`, code: 'CARPD_ERR_INVALID_VALUE', message: 'state must be INIT, BACKUP or MASTER' });
    if (f.interface !== undefined && !INTERFACE_NAME.test(f.interface)) out.push({ path: `${p}/interface`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${f.interface}" is not an interface name` });
    if (f.vhid !== undefined && !(Number.isInteger(f.vhid) && f.vhid >= 1 && f.vhid <= 255)) out.push({ path: `${p}/vhid`, code: 'CARPD_ERR_INVALID_VALUE', message: `vhid ${f.vhid} is outside 1..255` });
  });
}

function checkName(name: string, path: string, what: string, names: Set<string>, out: Problem[]): void {
  if (!TOKEN_NAME.test(name)) out.push({ path: `${path}/name`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${name}" is not a valid ${what} name (a letter or digit, then up to 63 letters, digits, "_", "." or "-")` });
  if (names.has(name)) out.push({ path: `${path}/name`, code: 'CARPD_ERR_INVALID_VALUE', message: `${what} name "${name}" is used twice` });
  names.add(name);
}

const timeoutOk = (n: number, r: { min: number; max: number }) => Number.isInteger(n) && n >= r.min && n <= r.max;

export function checkHook(h: HookConfig, out: Problem[], names = new Set<string>()): void {
  const path = `/hooks/${h.name}`;
  checkName(h.name, path, 'hook', names, out);
  checkFilters(h.events, path, true, out);
  if (!Array.isArray(h.command)) {
    out.push({ path: `${path}/command`, code: 'CARPD_ERR_INVALID_VALUE', message: 'the command is an argv array (["/usr/local/sbin/notify", "--flag"]), never a shell string: carpd runs no shell; to use one, say so: ["/bin/sh", "-c", "..."]' });
  } else if (h.command.length === 0) {
    out.push({ path: `${path}/command`, code: 'CARPD_ERR_INVALID_VALUE', message: 'the command is empty; give the program\'s absolute path and its arguments' });
  } else {
    if (!h.command[0].startsWith('/')) out.push({ path: `${path}/command/0`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${h.command[0]}" is not an absolute path; carpd searches no PATH: give the program's full path (/usr/local/sbin/...)` });
    if (h.command.length > HOOK_LIMITS.commandArgs) out.push({ path: `${path}/command`, code: 'CARPD_ERR_INVALID_VALUE', message: `at most ${HOOK_LIMITS.commandArgs} arguments` });
    h.command.forEach((a, i) => {
      if (a.includes('\0')) out.push({ path: `${path}/command/${i}`, code: 'CARPD_ERR_INVALID_VALUE', message: 'an argument contains a NUL character' });
      else if (Buffer.byteLength(a) > HOOK_LIMITS.argBytes) out.push({ path: `${path}/command/${i}`, code: 'CARPD_ERR_INVALID_VALUE', message: `an argument is longer than ${HOOK_LIMITS.argBytes} bytes` });
    });
  }
  if (!timeoutOk(h.timeoutSec, HOOK_TIMEOUT_SEC)) out.push({ path: `${path}/timeoutSec`, code: 'CARPD_ERR_INVALID_VALUE', message: `timeoutSec ${h.timeoutSec} is outside ${HOOK_TIMEOUT_SEC.min}..${HOOK_TIMEOUT_SEC.max}` });
  const env = Object.entries(h.env);
  if (env.length > HOOK_LIMITS.envVars) out.push({ path: `${path}/env`, code: 'CARPD_ERR_INVALID_VALUE', message: `at most ${HOOK_LIMITS.envVars} environment variables` });
  for (const [k, v] of env) {
    if (!ENV_NAME.test(k)) out.push({ path: `${path}/env/${k}`, code: 'CARPD_ERR_INVALID_VALUE', message: `"${k}" is not an environment variable name (upper-case letters, digits and "_", not starting with a digit)` });
    else if (k.startsWith('CARPD_')) out.push({ path: `${path}/env/${k}`, code: 'CARPD_ERR_INVALID_VALUE', message: `${k}: names starting with CARPD_ are carpd's own (the event's fields)` });
    if (typeof v !== 'string' || v.includes('\0') || Buffer.byteLength(v) > HOOK_LIMITS.envValueBytes) out.push({ path: `${path}/env/${k}`, code: 'CARPD_ERR_INVALID_VALUE', message: `the value of ${k} must be a string without NUL of at most ${HOOK_LIMITS.envValueBytes} bytes` });
  }
}

/** Why a webhook URL is refused, or undefined. */
export function urlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${u.protocol} URLs are not allowed; a webhook is an http: or https: URL`;
  if (u.username !== '' || u.password !== '') return 'the URL carries credentials; use the secret (the payload is signed) instead';
  if (url.length > 2048) return 'the URL is longer than 2048 characters';
  return undefined;
}

export function checkWebhook(w: WebhookConfig, out: Problem[], names = new Set<string>()): void {
  const path = `/webhooks/${w.name}`;
  checkName(w.name, path, 'webhook', names, out);
  const bad = urlProblem(w.url);
  if (bad) out.push({ path: `${path}/url`, code: 'CARPD_ERR_INVALID_VALUE', message: bad });
  if (w.secret.length === 0 || w.secret.length > SECRET_MAX) out.push({ path: `${path}/secret`, code: 'CARPD_ERR_INVALID_VALUE', message: `the secret must be 1..${SECRET_MAX} characters` });
  checkFilters(w.events, path, false, out);
  if (!timeoutOk(w.timeoutSec, WEBHOOK_TIMEOUT_SEC)) out.push({ path: `${path}/timeoutSec`, code: 'CARPD_ERR_INVALID_VALUE', message: `timeoutSec ${w.timeoutSec} is outside ${WEBHOOK_TIMEOUT_SEC.min}..${WEBHOOK_TIMEOUT_SEC.max}` });
}

/** Every problem of a document's hooks and webhooks (paths /hooks/{name}/..., /webhooks/{name}/...). */
export function checkNotify(s: Pick<DesiredState, 'hooks' | 'webhooks'>): Problem[] {
  const out: Problem[] = [];
  const hooks = new Set<string>();
  for (const h of s.hooks ?? []) checkHook(h, out, hooks);
  const webhooks = new Set<string>();
  for (const w of s.webhooks ?? []) checkWebhook(w, out, webhooks);
  return out;
}

const filtersOf = (events: readonly EventFilter[]): EventFilter[] =>
  events.map((f) => {
    const o: EventFilter = { type: f.type };
    if (f.interface !== undefined) o.interface = f.interface;
    if (f.vhid !== undefined) o.vhid = f.vhid;
    if (f.state !== undefined) o.state = f.state;
    return o;
  });

/** A hook from the API's input; a shell string is refused here, with the reason. */
export function assembleHook(name: string, input: HookInput): HookConfig {
  const h: HookConfig = {
    name,
    events: filtersOf(input.events),
    command: input.command as string[],
    timeoutSec: input.timeoutSec ?? HOOK_DEFAULTS.timeoutSec,
    env: { ...(input.env ?? {}) },
    nosync: input.nosync ?? HOOK_DEFAULTS.nosync,
  };
  const out: Problem[] = [];
  checkHook(h, out);
  if (out.length > 0) throw fromProblems(out);
  if (Array.isArray(input.command)) h.command = [...input.command];
  return h;
}

export function assembleWebhook(name: string, input: WebhookInput, storedSecret: string | undefined): WebhookConfig {
  const secret = input.secret ?? storedSecret;
  if (secret === undefined) throw fromProblems([{ path: `/webhooks/${name}/secret`, code: 'CARPD_ERR_INVALID_VALUE', message: 'a new webhook needs a secret (the key of its X-Carpd-Signature HMAC)' }]);
  const w: WebhookConfig = { name, url: input.url, secret, events: filtersOf(input.events), timeoutSec: input.timeoutSec ?? WEBHOOK_DEFAULTS.timeoutSec, nosync: input.nosync ?? WEBHOOK_DEFAULTS.nosync };
  const out: Problem[] = [];
  checkWebhook(w, out);
  if (out.length > 0) throw fromProblems(out);
  return w;
}

export const hookNotFound = (name: string) => new CarpdError('CARPD_ERR_HOOK_NOT_FOUND', `no hook named "${name}"; list them with GET /v1/hooks`);
export const webhookNotFound = (name: string) => new CarpdError('CARPD_ERR_WEBHOOK_NOT_FOUND', `no webhook named "${name}"; list them with GET /v1/webhooks`);

/** Adds a hook to a draft; refuses a taken name. */
export function createHook(draft: DesiredState, name: string, input: HookInput): HookConfig {
  if (draft.hooks.some((h) => h.name === name)) throw new CarpdError('CARPD_ERR_HOOK_EXISTS', `a hook named "${name}" exists; replace it (PUT /v1/hooks/${name}) or pick another name`);
  const h = assembleHook(name, input);
  draft.hooks.push(h);
  return h;
}

/** Replaces (or creates) a hook on a draft. */
export function replaceHook(draft: DesiredState, name: string, input: HookInput): { hook: HookConfig; created: boolean } {
  const h = assembleHook(name, input);
  const i = draft.hooks.findIndex((x) => x.name === name);
  if (i < 0) draft.hooks.push(h);
  else draft.hooks[i] = h;
  return { hook: h, created: i < 0 };
}

export function deleteHook(draft: DesiredState, name: string): void {
  if (!draft.hooks.some((h) => h.name === name)) throw hookNotFound(name);
  draft.hooks = draft.hooks.filter((h) => h.name !== name);
}

export function createWebhook(draft: DesiredState, name: string, input: WebhookInput): WebhookConfig {
  if (draft.webhooks.some((w) => w.name === name)) throw new CarpdError('CARPD_ERR_WEBHOOK_EXISTS', `a webhook named "${name}" exists; replace it (PUT /v1/webhooks/${name}) or pick another name`);
  const w = assembleWebhook(name, input, undefined);
  draft.webhooks.push(w);
  return w;
}

export function replaceWebhook(draft: DesiredState, name: string, input: WebhookInput): { webhook: WebhookConfig; created: boolean } {
  const i = draft.webhooks.findIndex((x) => x.name === name);
  const w = assembleWebhook(name, input, i < 0 ? undefined : draft.webhooks[i].secret);
  if (i < 0) draft.webhooks.push(w);
  else draft.webhooks[i] = w;
  return { webhook: w, created: i < 0 };
}

export function deleteWebhook(draft: DesiredState, name: string): void {
  if (!draft.webhooks.some((w) => w.name === name)) throw webhookNotFound(name);
  draft.webhooks = draft.webhooks.filter((w) => w.name !== name);
}

/** The outcome of one run of a hook, as POST /v1/hooks/{name}/test answers it. */
export interface HookRunResult {
  hook: string;
  ok: boolean;
  /** Why it failed (timeout, exit code, signal, cannot start); absent when ok. */
  reason?: string;
  exitCode: number | null;
  signal: string | null;
  ms: number;
  /** The first bytes of each stream (the runner's bound). */
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** Runs a hook once, now, on a made-up event (the hook runner, src/notify/hooks.ts). */
export interface HookTester {
  test(name: string): Promise<HookRunResult>;
}

/**
 * The made-up event of a test run: for a hook on vhid.state, the state change its first such
 * filter names (em0 vhid 1 to MASTER where it names none); else an event of the first type its
 * first filter names, with a body that says it is a test. Never published.
 */
export function testEventOf(h: HookConfig, id: number, time: string): AnyEvent {
  const f = h.events.find((x) => x.type === 'vhid.state') ?? h.events[0];
  const type = eventTypesOf(f.type)?.[0] ?? 'vhid.state';
  const reason = `test run of hook ${h.name}`;
  if (type === 'vhid.state') {
    const to = f.state ?? 'MASTER';
    return { id, type, time, data: { interface: f.interface ?? 'em0', vhid: f.vhid ?? 1, from: to === 'MASTER' ? 'BACKUP' : 'MASTER', to, reason, effectiveSkew: null } };
  }
  return { id, type, time, data: { test: true, reason } } as unknown as AnyEvent;
}

/** Whether an event matches one of the filters. */
export function matches(filters: readonly EventFilter[], e: AnyEvent): boolean {
  return filters.some((f) => {
    const types = eventTypesOf(f.type);
    if (!types || !types.includes(e.type)) return false;
    const d = e.data as { interface?: unknown; vhid?: unknown; to?: unknown };
    if (f.interface !== undefined && d.interface !== f.interface) return false;
    if (f.vhid !== undefined && d.vhid !== f.vhid) return false;
    if (f.state !== undefined && (e.type !== 'vhid.state' || d.to !== f.state)) return false;
    return true;
  });
}
