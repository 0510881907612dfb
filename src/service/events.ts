/**
 * carpd's events: every change a person or a program should hear of the moment it happens
 * (a vhid changing state, a commit, a sync push, a split brain, a hook that failed), as one
 * typed record with an increasing id. The bus keeps the newest in a bounded ring, so a client
 * of GET /v1/events that reconnects with Last-Event-ID gets what it missed, and hands each
 * event to its subscribers (the SSE streams, the metrics, the hooks and webhooks) synchronously
 * and in order. A subscriber must not block: whatever takes time (writing to a slow client,
 * running a program, a POST) is queued by the subscriber, bounded, on its own side.
 *
 * Every event also goes to the log, at the level the publisher chose, with `event` set to its
 * type and `eventId` to its id.
 */
import type { Logger } from 'pino';
import type { SplitBrainPolicy, TrackKind, VipProtocol } from '../config/model.js';
import type { CarpState } from '../engine/types.js';

/** The types of event, each with its body (EventBodies). */
export const EVENT_TYPES = [
  'vhid.state',
  'demotion',
  'maintenance',
  'config.committed',
  'sync.pushed',
  'sync.applied',
  'sync.failed',
  'sync.rejected',
  'splitbrain.detected',
  'splitbrain.cleared',
  'pfsync',
  'auth.failed',
  'hook.succeeded',
  'hook.failed',
  'webhook.delivered',
  'webhook.failed',
  'events.lost',
  'loop.stalled',
  'switchover.started',
  'switchover.step',
  'switchover.finished',
  'track.changed',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Shorthands a filter may use for a family: `splitbrain` for both of its types, `sync` for the four, `hook`, `webhook`, `switchover`. */
export const EVENT_FAMILIES: Readonly<Record<string, readonly EventType[]>> = {
  splitbrain: ['splitbrain.detected', 'splitbrain.cleared'],
  sync: ['sync.pushed', 'sync.applied', 'sync.failed', 'sync.rejected'],
  hook: ['hook.succeeded', 'hook.failed'],
  webhook: ['webhook.delivered', 'webhook.failed'],
  switchover: ['switchover.started', 'switchover.step', 'switchover.finished'],
};

/** Which events a filter names: a type, or a family's shorthand. Undefined: not a known type or family. */
export function eventTypesOf(name: string): readonly EventType[] | undefined {
  if ((EVENT_TYPES as readonly string[]).includes(name)) return [name as EventType];
  return EVENT_FAMILIES[name];
}

export interface DemotionContributor {
  /** What demotes: `maintenance`, `splitbrain`, a track's name, or `other` (the kernel's counter less what carpd knows). */
  name: string;
  value: number;
}

export interface EventBodies {
  'vhid.state': { interface: string; vhid: number; from: CarpState; to: CarpState; reason: string; effectiveSkew: number | null };
  demotion: { total: number; previous: number; contributors: DemotionContributor[] };
  maintenance: { enabled: boolean };
  'config.committed': { revision: number; actor: string; origin: 'api' | 'sync'; summary: string; steps: number };
  'sync.pushed': { revision: number; peer: string; detail: string };
  'sync.applied': { primaryRevision: number; revision: number; peer: string };
  'sync.failed': { revision: number; peer: string; error: string; reached: boolean; retryInMs: number };
  'sync.rejected': { reason: string; source: string; fingerprint: string | null; detail: string };
  /** `since`: when this node saw the vhid MASTER on both nodes (ISO 8601). */
  'splitbrain.detected': { interface: string; vhid: number; peer: string; policy: SplitBrainPolicy; since: string };
  /** `since`: when it was detected; `seconds`: how long it lasted. */
  'splitbrain.cleared': { interface: string; vhid: number; peer: string; seconds: number; since: string };
  pfsync: { phase: 'bulk.start' | 'bulk.done' | 'bulk.failed'; syncdev: string | null; detail: string };
  'auth.failed': { source: string; method: string; route: string; reason: string };
  'hook.succeeded': { hook: string; eventId: number; eventType: EventType; exitCode: number; ms: number };
  'hook.failed': { hook: string; eventId: number; eventType: EventType; reason: string; exitCode: number | null; signal: string | null; ms: number };
  'webhook.delivered': { webhook: string; eventId: number; eventType: EventType; status: number; attempts: number; ms: number };
  'webhook.failed': { webhook: string; eventId: number | null; eventType: EventType | null; reason: string; attempts: number; dropped: boolean };
  'events.lost': { after: number; oldest: number | null; reason: 'buffer' | 'restart' | 'slow-client' };
  /** `at`: when the loop ran again (ISO 8601); `ms`: how long it did not; `vhids`: those whose advertisement interval is shorter. */
  'loop.stalled': { at: string; ms: number; thresholdMs: number; vhids: { interface: string; vhid: number; protocol: VipProtocol; intervalMs: number }[] };
  /** A switchover job began (`back`: handing the vhids back to this node; `to`: the node asked for, or null). */
  'switchover.started': { job: string; from: string; to: string | null; back: boolean };
  /** One step of a switchover job, or one of its checks (`step` names it), as it starts or ends. */
  'switchover.step': { job: string; step: string; status: 'running' | 'passed' | 'failed' | 'skipped' | 'done'; detail: string };
  /** A switchover job ended: `ms` from its start. */
  'switchover.finished': { job: string; state: 'succeeded' | 'failed' | 'rolled-back'; reason: string; ms: number };
  /**
   * A health track changed state (unknown, up, down; `unknown` again when it is changed or
   * removed); `demotion`: what it holds now (its weight while down), under `track:<name>`.
   */
  'track.changed': { track: string; kind: TrackKind; from: 'unknown' | 'up' | 'down'; to: 'unknown' | 'up' | 'down'; reason: string; weight: number; demotion: number };
}

export interface CarpdEvent<T extends EventType = EventType> {
  id: number;
  type: T;
  /** ISO 8601 */
  time: string;
  data: EventBodies[T];
}
export type AnyEvent = { [T in EventType]: CarpdEvent<T> }[EventType];

export interface PublishOptions {
  /** The log level of this event's line (default info); `false`: the publisher logs it itself. */
  level?: 'debug' | 'info' | 'warn' | 'error' | false;
  /** The log line's message (default: the type and its body). */
  msg?: string;
}

export interface EventBusOptions {
  logger?: Logger;
  /** Events kept for reconnecting clients (at least 1000). */
  capacity?: number;
  now?: () => number;
  /**
   * The first id. By default the start time in ms × 1000, so that ids keep increasing across
   * restarts: a client's Last-Event-ID from before a restart is older than everything kept.
   */
  firstId?: number;
}

export const MIN_EVENT_CAPACITY = 1000;

export class EventBus {
  private readonly ring: (AnyEvent | undefined)[];
  private start = 0;
  private size = 0;
  private nextId: number;
  private readonly firstId: number;
  private readonly listeners = new Set<(e: AnyEvent) => void>();
  private readonly logger?: Logger;
  private readonly now: () => number;
  readonly capacity: number;
  /** Events published since start, by type. */
  readonly published = new Map<EventType, number>();

  constructor(opts: EventBusOptions = {}) {
    this.capacity = Math.max(MIN_EVENT_CAPACITY, opts.capacity ?? MIN_EVENT_CAPACITY);
    this.ring = new Array(this.capacity);
    this.now = opts.now ?? Date.now;
    this.firstId = opts.firstId ?? this.now() * 1000;
    this.nextId = this.firstId;
    this.logger = opts.logger;
  }

  /** Whether the logger writes this level (a logger without isLevelEnabled is asked every line). */
  private logs(level: 'info' | 'warn' | 'error' | 'debug' | 'trace' | 'fatal'): boolean {
    const l = this.logger!;
    return typeof l.isLevelEnabled !== 'function' || l.isLevelEnabled(level);
  }

  private lastMs = NaN;
  private lastIso = '';

  /** now() in ISO 8601, formatted once per millisecond: the events of a batch share one. */
  private isoTime(): string {
    const ms = this.now();
    if (ms !== this.lastMs) {
      this.lastIso = new Date(ms).toISOString();
      this.lastMs = ms;
    }
    return this.lastIso;
  }

  /** The id of the newest event, or the one before the first when there is none yet. */
  get lastId(): number {
    return this.nextId - 1;
  }

  publish<T extends EventType>(type: T, data: EventBodies[T], opts: PublishOptions = {}): CarpdEvent<T> {
    const e = { id: this.nextId++, type, time: this.isoTime(), data } as CarpdEvent<T>;
    if (this.size < this.capacity) {
      this.ring[(this.start + this.size) % this.capacity] = e as AnyEvent;
      this.size++;
    } else {
      this.ring[this.start] = e as AnyEvent;
      this.start = (this.start + 1) % this.capacity;
    }
    this.published.set(type, (this.published.get(type) ?? 0) + 1);
    const level = opts.level ?? 'info';
    // The line's fields and text are built only when its level is logged (a batch publishes hundreds of events).
    if (level !== false && this.logger && this.logs(level)) this.logger[level]({ ...(data as object), event: type, eventId: e.id }, opts.msg ?? `${type} ${JSON.stringify(data)}`);
    for (const l of this.listeners) {
      try {
        l(e as AnyEvent);
      } catch (err) {
        this.logger?.error({ event: 'events.subscriber.failed', err: String(err), type }, `an event subscriber failed on ${type}: ${String(err)}`);
      }
    }
    return e;
  }

  /** Every event from now on, in order; returns the unsubscribe function. */
  subscribe(listener: (e: AnyEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  private kept(): AnyEvent[] {
    const out: AnyEvent[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.ring[(this.start + i) % this.capacity]!);
    return out;
  }

  /**
   * The kept events after `lastId`, oldest first. `lost` says when some of them are no longer
   * kept: `buffer` when the client fell more than the capacity behind, `restart` when its id is
   * from before this process started. 0 asks for every kept event.
   */
  since(lastId: number): { events: AnyEvent[]; lost?: EventBodies['events.lost'] } {
    const events: AnyEvent[] = [];
    // 0: every kept event, from a client that has seen none (nothing of it can be lost).
    if (lastId === 0) return { events: this.kept() };
    const oldest = this.size > 0 ? this.ring[this.start]!.id : null;
    let lost: EventBodies['events.lost'] | undefined;
    // An id from before this process's first, or one it never gave (a clock set back since):
    // from an earlier run of carpd, whose events are not kept.
    if (lastId < this.firstId - 1 || lastId > this.lastId) lost = { after: lastId, oldest, reason: 'restart' };
    else if (oldest !== null && lastId < oldest - 1) lost = { after: lastId, oldest, reason: 'buffer' };
    if (oldest === null || lastId === this.lastId) return { events, lost };
    if (lastId > this.lastId) return { events: this.kept(), lost };
    // Ids are consecutive in the ring: index of the first event after lastId.
    const skip = Math.max(0, lastId + 1 - oldest);
    for (let i = skip; i < this.size; i++) events.push(this.ring[(this.start + i) % this.capacity]!);
    return { events, lost };
  }
}
