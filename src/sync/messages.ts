/**
 * The kinds of sync message, each as a TypeScript type and a JSON Schema (compiled once, when
 * this module loads). The listener reads every message that passed the envelope checks
 * (envelope.ts) as one of these kinds before a handler sees it: an unknown type, or a body that
 * is not what its type carries, is refused like any other malformed message (400
 * CARPD_ERR_SYNC_BAD_MESSAGE, counted as `malformed`, logged). The client reads every answer the
 * same way before the push loop or the API uses it, so a peer that answers something else is an
 * error that says so, never a crash further on.
 *
 *   type     request body      answer 200                       other answers
 *   push     Snapshot          { detail, appliedRevision }      problem (+ appliedRevision)
 *   plan     Snapshot          { plan: PlanView }               problem (+ appliedRevision)
 *   status   {}                NodeReport                       problem
 *   states   VhidStates        VhidStates                       problem
 *   pf       PfReport          PfReport                         problem
 *   health   HealthRequest     PeerHealth                       problem
 *
 * `health` is the switchover's question (switchover.ts): is the peer ready to take over. Its
 * answer carries the fields every carpd has (maintenance, demotion, CARP on, vhid states,
 * revisions) and two a node may leave out: `tracksDown` (its health tracks that are down) and
 * `pf` (its pf state count and pfsync bulk update). Absent means "not reported", never "fine".
 *
 * `states` is the split-brain watch's exchange (splitbrain.ts): each side sends its vhid states
 * and gets the other's back, so one exchange tells both nodes. A carpd that predates it refuses
 * it as an unknown type (400 CARPD_ERR_SYNC_BAD_MESSAGE), which the watch reads as "the peer
 * cannot tell" (isUnknownKindRefusal).
 *
 * `pf` is the same exchange for pf's state table and pfsync's bulk update (SyncManager.peerPf):
 * each side sends its own and gets the other's back. It is a kind of its own, not a field of the
 * status report, so a carpd that predates it (whose report schema has no room for it) refuses
 * the kind rather than every report.
 *
 * The schemas check form: types, required and unknown fields, addresses that parse. Rules about
 * values (ranges, unicast peers, duplicates) are the service's validation, which applies a
 * snapshot like any other change and names the field with its own error code.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { readHook, readTrack, readVip, readWebhook } from '../config/document.js';
import { SYNC_ROLES, VIP_PROTOCOLS, type DesiredState, type VipConfig } from '../config/model.js';
import { CarpdError } from '../errors.js';
import type { PfStatus } from '../service/live.js';
import type { PlanView } from '../service/service.js';
import { canonicalCidr, canonicalIp } from '../wire/address.js';
import type { Snapshot } from './derive.js';
import { isIsoTime, type SyncMessage } from './envelope.js';
import { SyncTransportError, type MessageKinds, type SyncClient } from './transport.js';

// --- the types -------------------------------------------------------------------------------

/**
 * A VIP as a snapshot carries it: the stored form (config/model.ts). The fields a stored VIP of
 * an older carpd may lack are optional here too, and get the same defaults (readVip).
 */
export type SnapshotVip = Omit<VipConfig, 'mode' | 'description' | 'nosync' | 'protocol'> & Partial<Pick<VipConfig, 'mode' | 'description' | 'nosync' | 'protocol'>>;

/** The body of push and plan: a whole snapshot of the primary's synced objects (derive.ts). */
export interface SnapshotBody extends Omit<Snapshot, 'vips'> {
  vips: SnapshotVip[];
}

/** The body of status: nothing to say, the question is the type. */
export type StatusRequest = Record<string, never>;

/** What a secondary answers to a push it took (applied now, or already). */
export interface PushAck {
  detail: string;
  /** The primary's revision this node has applied. */
  appliedRevision: number;
}

export interface PlanAnswer {
  plan: PlanView;
}

export const VHID_STATES = ['INIT', 'BACKUP', 'MASTER'] as const;

/** What a node tells its peer about itself (status), shown in /v1/cluster. */
export interface NodeReport {
  node: string;
  role: DesiredState['sync']['role'];
  revision: number;
  appliedRevision: number;
  carp: { enabled: boolean; preempt: boolean; maintenance: boolean; demotion: number };
  pfsync: { enabled: boolean; running: boolean; syncdev: string | null; syncpeer: string | null; bulkUpdateDone: boolean };
  vhids: { interface: string; vhid: number; state: (typeof VHID_STATES)[number]; since: string; reason: string }[];
}

/**
 * A refusal as a peer sends it: RFC 9457 problem+json with a carpd error code. `code` is a
 * string, not this node's ErrorCode: a newer peer may know more codes. Other members are allowed
 * (RFC 9457 §3.2).
 */
export interface PeerProblem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  /** push and plan: the primary's revision the secondary has applied. */
  appliedRevision?: number;
  /** A refusal of the listener: the reason it was counted under. */
  reason?: string;
}

/**
 * The body of states, both ways: a node's name, when it read its vhids (its own clock: the
 * receiver only orders one node's readings by it) and the state of each.
 */
export interface VhidStates {
  node: string;
  at: string;
  vhids: { interface: string; vhid: number; state: (typeof VHID_STATES)[number] }[];
}

/** pf's status as one node tells it to the other: what its backend's pfStatus read. */
export type PfReportStatus = PfStatus;

/**
 * The body of pf, both ways: a node's name, when it read pf (its own clock), and what it read:
 * null when the node has no pf; `error` instead when pf could not be read.
 */
export interface PfReport {
  node: string;
  at: string;
  pf: PfReportStatus | null;
  error?: string;
}

/** The body of health: who asks. */
export interface HealthRequest {
  node: string;
}

/**
 * The answer to health: what a node that is to take over (or hand back) says of itself. `at`
 * is its own clock. `switchover` is the demotion it holds under the name `switchover` (0: none).
 * `tracksDown` and `pf` are left out by a node that has no such source (HealthSources).
 */
export interface PeerHealth {
  node: string;
  at: string;
  role: DesiredState['sync']['role'];
  revision: number;
  appliedRevision: number;
  carp: { enabled: boolean; preempt: boolean; maintenance: boolean; demotion: number; switchover: number };
  vhids: VhidStates['vhids'];
  tracksDown?: string[];
  pf?: { stateCount: number; bulkUpdateDone: boolean };
}

/** At most this many vhids in one states message (255 vhids on each of 16 interfaces). */
export const MAX_STATES_VHIDS = 4096;

export interface SyncRequests {
  push: SnapshotBody;
  plan: SnapshotBody;
  status: StatusRequest;
  states: VhidStates;
  pf: PfReport;
  health: HealthRequest;
}

export interface SyncAnswers {
  push: PushAck;
  plan: PlanAnswer;
  status: NodeReport;
  states: VhidStates;
  pf: PfReport;
  health: PeerHealth;
}

export type SyncMessageType = keyof SyncRequests;

/** A verified message of one kind: its type says what its body is. */
export type InboundMessage = { [K in SyncMessageType]: SyncMessage<SyncRequests[K]> & { type: K } }[SyncMessageType];

/** The peer's answer to one request: what that kind answers (200), or a problem. */
export type SyncAnswer<K extends SyncMessageType> = { ok: true; status: 200; body: SyncAnswers[K] } | { ok: false; status: number; problem: PeerProblem };

// --- the schemas -----------------------------------------------------------------------------

// The schema for each field of the stored form, as config/document.ts reads it; addresses are
// checked by the same parser the API and the store use.
const vipSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['interface', 'vhid', 'addresses', 'advbaseSec', 'advskew'],
  properties: {
    interface: { type: 'string' },
    vhid: { type: 'integer' },
    addresses: { type: 'array', items: { type: 'string', format: 'cidr' } },
    advbaseSec: { type: 'integer' },
    advskew: { type: 'integer' },
    password: { type: 'string' },
    mode: { type: 'string', enum: ['multicast', 'unicast'] },
    peer: { type: 'string', format: 'ip' },
    peer6: { type: 'string', format: 'ip' },
    description: { type: 'string' },
    nosync: { type: 'boolean' },
    protocol: { type: 'string', enum: [...VIP_PROTOCOLS] },
    vrrpPriority: { type: 'integer' },
    vrrpInterval: { type: 'integer' },
    macMode: { type: 'string', enum: ['virtual', 'interface'] },
  },
};

const snapshotSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['revision', 'vips', 'carp', 'localAddresses'],
  properties: {
    revision: { type: 'integer', minimum: 0 },
    vips: { type: 'array', items: vipSchema },
    carp: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'preempt'],
      properties: { enabled: { type: 'boolean' }, preempt: { type: 'boolean' } },
    },
    localAddresses: { type: 'array', items: { type: 'string', format: 'cidr' } },
    // Read field by field by config/document.ts (readSnapshot); the service checks their rules.
    hooks: { type: 'array', items: { type: 'object' } },
    webhooks: { type: 'array', items: { type: 'object' } },
    tracks: { type: 'array', items: { type: 'object' } },
  },
};

const statusRequestSchema = { type: 'object', additionalProperties: false, properties: {} };

const pushAckSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['detail', 'appliedRevision'],
  properties: { detail: { type: 'string' }, appliedRevision: { type: 'integer', minimum: 0 } },
};

/** Every op a plan step may name, as the API's Plan schema lists them; keyed so that the compiler keeps it equal to PlanView's. */
const PLAN_OPS: Record<PlanView['steps'][number]['op'], true> = {
  'vhid.set': true,
  'vhid.remove': true,
  'address.add': true,
  'address.remove': true,
  'carp.set': true,
  'maintenance.set': true,
  'pfsync.set': true,
  'state.force': true,
  'config.only': true,
};

const planAnswerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['plan'],
  properties: {
    plan: {
      type: 'object',
      additionalProperties: false,
      required: ['dryRun', 'fromRevision', 'changes', 'steps'],
      properties: {
        dryRun: { type: 'boolean', const: true },
        fromRevision: { type: 'integer', minimum: 0 },
        changes: { type: 'array', items: { type: 'string' } },
        steps: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['op', 'target', 'detail'],
            properties: { op: { type: 'string', enum: Object.keys(PLAN_OPS) }, target: { type: 'string' }, detail: { type: 'string' } },
          },
        },
      },
    },
  },
};

const nullableString = { type: ['string', 'null'] };
const nodeReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'role', 'revision', 'appliedRevision', 'carp', 'pfsync', 'vhids'],
  properties: {
    node: { type: 'string' },
    role: { type: 'string', enum: [...SYNC_ROLES] },
    revision: { type: 'integer', minimum: 0 },
    appliedRevision: { type: 'integer', minimum: 0 },
    carp: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'preempt', 'maintenance', 'demotion'],
      properties: { enabled: { type: 'boolean' }, preempt: { type: 'boolean' }, maintenance: { type: 'boolean' }, demotion: { type: 'integer' } },
    },
    pfsync: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'running', 'syncdev', 'syncpeer', 'bulkUpdateDone'],
      properties: { enabled: { type: 'boolean' }, running: { type: 'boolean' }, syncdev: nullableString, syncpeer: nullableString, bulkUpdateDone: { type: 'boolean' } },
    },
    vhids: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['interface', 'vhid', 'state', 'since', 'reason'],
        properties: {
          interface: { type: 'string' },
          vhid: { type: 'integer' },
          state: { type: 'string', enum: [...VHID_STATES] },
          since: { type: 'string', format: 'date-time' },
          reason: { type: 'string' },
        },
      },
    },
  },
};

const count = { type: 'integer', minimum: 0 };
const pfReportSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'at', 'pf'],
  properties: {
    node: { type: 'string' },
    at: { type: 'string', format: 'date-time' },
    error: { type: 'string' },
    pf: {
      oneOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['running', 'states', 'srcNodes', 'stateSearches', 'stateInserts', 'stateRemovals', 'via', 'pfsyncBulkUpdateDone'],
          properties: {
            running: { type: 'boolean' },
            states: count,
            srcNodes: count,
            stateSearches: count,
            stateInserts: count,
            stateRemovals: count,
            via: { type: 'string', enum: ['ioctl', 'nvlist', 'netlink'] },
            pfsyncBulkUpdateDone: { type: ['boolean', 'null'] },
          },
        },
      ],
    },
  },
};

const vhidStatesSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'at', 'vhids'],
  properties: {
    node: { type: 'string', maxLength: 255 },
    at: { type: 'string', format: 'date-time' },
    vhids: {
      type: 'array',
      maxItems: MAX_STATES_VHIDS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['interface', 'vhid', 'state'],
        properties: {
          interface: { type: 'string', minLength: 1, maxLength: 64 },
          vhid: { type: 'integer', minimum: 1, maximum: 255 },
          state: { type: 'string', enum: [...VHID_STATES] },
        },
      },
    },
  },
};

const healthRequestSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node'],
  properties: { node: { type: 'string', maxLength: 255 } },
};

const peerHealthSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['node', 'at', 'role', 'revision', 'appliedRevision', 'carp', 'vhids'],
  properties: {
    node: { type: 'string', maxLength: 255 },
    at: { type: 'string', format: 'date-time' },
    role: { type: 'string', enum: [...SYNC_ROLES] },
    revision: { type: 'integer', minimum: 0 },
    appliedRevision: { type: 'integer', minimum: 0 },
    carp: {
      type: 'object',
      additionalProperties: false,
      required: ['enabled', 'preempt', 'maintenance', 'demotion', 'switchover'],
      properties: { enabled: { type: 'boolean' }, preempt: { type: 'boolean' }, maintenance: { type: 'boolean' }, demotion: { type: 'integer' }, switchover: { type: 'integer', minimum: 0 } },
    },
    vhids: vhidStatesSchema.properties.vhids,
    tracksDown: { type: 'array', maxItems: 1024, items: { type: 'string', maxLength: 255 } },
    pf: {
      type: 'object',
      additionalProperties: false,
      required: ['stateCount', 'bulkUpdateDone'],
      properties: { stateCount: { type: 'integer', minimum: 0 }, bulkUpdateDone: { type: 'boolean' } },
    },
  },
};

const problemSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
    appliedRevision: { type: 'integer', minimum: 0 },
    reason: { type: 'string' },
  },
};

// Compiled on first use: a node whose sync is never used (no peer, no listener) does not pay for
// the validators' code (about 10 MiB of RSS on Node 20, 20 on Node 24, when compiled at import).
let ajvInstance: Ajv | undefined;
function ajv(): Ajv {
  if (!ajvInstance) {
    ajvInstance = new Ajv({ strict: true, allErrors: false });
    ajvInstance.addFormat('cidr', (s: string) => canonicalCidr(s) !== undefined);
    ajvInstance.addFormat('ip', (s: string) => canonicalIp(s) !== undefined);
    ajvInstance.addFormat('date-time', isIsoTime);
  }
  return ajvInstance;
}

/** A validator of `schema` compiled the first time it is called; its `errors` are those of its last call. */
function lazy<T>(schema: object): ValidateFunction<T> {
  let fn: ValidateFunction<T> | undefined;
  const v = ((data: unknown) => {
    fn ??= ajv().compile<T>(schema);
    const ok = fn(data);
    v.errors = fn.errors;
    return ok;
  }) as ValidateFunction<T>;
  return v;
}

interface Kind<Req, Ans> {
  request: ValidateFunction<Req>;
  answer: ValidateFunction<Ans>;
  /** What a body of this kind is, in words, for errors. */
  requestIs: string;
  answerIs: string;
}

const snapshotValidator = lazy<SnapshotBody>(snapshotSchema);
const vhidStatesValidator = lazy<VhidStates>(vhidStatesSchema);
const pfReportValidator = lazy<PfReport>(pfReportSchema);
const KINDS: { [K in SyncMessageType]: Kind<SyncRequests[K], SyncAnswers[K]> } = {
  push: { request: snapshotValidator, answer: lazy<PushAck>(pushAckSchema), requestIs: 'a snapshot', answerIs: 'an acknowledgement of a push' },
  plan: { request: snapshotValidator, answer: lazy<PlanAnswer>(planAnswerSchema), requestIs: 'a snapshot', answerIs: 'a plan' },
  status: { request: lazy<StatusRequest>(statusRequestSchema), answer: lazy<NodeReport>(nodeReportSchema), requestIs: 'an empty object', answerIs: 'a node report' },
  states: { request: vhidStatesValidator, answer: vhidStatesValidator, requestIs: "a node's vhid states", answerIs: "a node's vhid states" },
  pf: { request: pfReportValidator, answer: pfReportValidator, requestIs: "a node's pf status", answerIs: "a node's pf status" },
  health: { request: lazy<HealthRequest>(healthRequestSchema), answer: lazy<PeerHealth>(peerHealthSchema), requestIs: "the asking node's name", answerIs: "a node's health" },
};
const problemValidator = lazy<PeerProblem>(problemSchema);

function isKind(type: string): type is SyncMessageType {
  return Object.hasOwn(KINDS, type);
}

/** The first schema error in words: where, and what was wrong; never the value that was there. */
function firstError(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'it does not match its schema';
  const at = e.instancePath === '' ? 'the body' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${at} has the unknown field "${String(e.params.additionalProperty)}"`;
  if (e.keyword === 'enum') return `${at} must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
  return `${at} ${e.message ?? 'is not valid'}`;
}

// --- the listener's side -----------------------------------------------------------------------

/** The kinds carpd's sync listener takes (SyncServerOptions.kinds). */
export const SYNC_KINDS: MessageKinds<InboundMessage> = {
  read(m) {
    if (!isKind(m.type)) return { ok: false, detail: `unknown sync message type "${m.type}"; this node takes ${Object.keys(KINDS).join(', ')}` };
    const kind = KINDS[m.type];
    if (!kind.request(m.body)) return { ok: false, detail: `the body of a ${m.type} message must be ${kind.requestIs}: ${firstError(kind.request.errors)}` };
    return { ok: true, message: m as InboundMessage };
  },
};

/**
 * A snapshot as this node uses it: VIPs read as a stored VIP is read (canonical addresses,
 * defaults for the fields an older primary may leave out). The body has passed SYNC_KINDS.
 */
export function readSnapshot(body: SnapshotBody): Snapshot {
  let vips: VipConfig[];
  try {
    vips = body.vips.map((v, i) => readVip(v, `/vips/${i}`, false));
  } catch (e) {
    throw new CarpdError('CARPD_ERR_SYNC_BAD_MESSAGE', `the snapshot has a malformed VIP: ${(e as Error).message}`);
  }
  const snap: Snapshot = { revision: body.revision, vips, carp: { enabled: body.carp.enabled, preempt: body.carp.preempt }, localAddresses: [...body.localAddresses] };
  try {
    if (body.hooks) snap.hooks = body.hooks.map((h, i) => readHook(h, `/hooks/${i}`));
    if (body.webhooks) snap.webhooks = body.webhooks.map((w, i) => readWebhook(w, `/webhooks/${i}`));
    if (body.tracks) snap.tracks = body.tracks.map((t, i) => readTrack(t, `/tracks/${i}`));
  } catch (e) {
    throw new CarpdError('CARPD_ERR_SYNC_BAD_MESSAGE', `the snapshot has a malformed hook, webhook or track: ${(e as Error).message}`);
  }
  return snap;
}

// --- the client's side -------------------------------------------------------------------------

/**
 * Sends one request of a known kind and reads the answer. Rejects with SyncTransportError:
 * for transport failures (SyncClient.request), and ('protocol', with the HTTP status) when the
 * answer is not what the kind answers, or not a problem.
 */
export async function exchange<K extends SyncMessageType>(client: SyncClient, type: K, body: SyncRequests[K], opts?: { timeoutMs?: number }): Promise<SyncAnswer<K>> {
  const r = await client.request(type, body, opts);
  const kind: Kind<SyncRequests[K], SyncAnswers[K]> = KINDS[type];
  if (r.status === 200) {
    if (kind.answer(r.body)) return { ok: true, status: 200, body: r.body };
    throw new SyncTransportError('protocol', `the sync peer ${client.address} answered the ${type} request with something that is not ${kind.answerIs} (${firstError(kind.answer.errors)}); run the same carpd version on both nodes`, { status: r.status });
  }
  if (problemValidator(r.body)) return { ok: false, status: r.status, problem: r.body };
  throw new SyncTransportError('protocol', `the sync peer ${client.address} answered the ${type} request with HTTP ${r.status} and no problem body (${firstError(problemValidator.errors)}); is that port carpd's sync listener?`, { status: r.status });
}

/**
 * Whether a refusal is an older carpd's answer to a message type it does not know: its listener
 * refuses those as malformed, naming the type (SYNC_KINDS.read above, in every version).
 */
export function isUnknownKindRefusal(p: PeerProblem): boolean {
  return p.code === 'CARPD_ERR_SYNC_BAD_MESSAGE' && /unknown sync message type/.test(p.detail);
}
