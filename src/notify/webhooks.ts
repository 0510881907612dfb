/**
 * Webhooks: each event a webhook's filters match is POSTed to its URL as JSON
 * (`{ id, type, time, data, node }`), signed as GitHub signs its webhooks:
 *
 *   X-Carpd-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>
 *   X-Carpd-Event: <type>    X-Carpd-Delivery: <event id>    User-Agent: carpd/<version>
 *
 * A receiver computes the HMAC of the body it got and compares it in constant time.
 *
 * Per webhook, one bounded queue (the oldest delivery dropped, counted and reported as
 * `webhook.failed` with `dropped: true` when it overflows) and one delivery at a time, in the
 * order of the events. A failure (no answer, a timeout, 408, 429 or 5xx) is retried with
 * exponential backoff (1 s doubling to 60 s by default) up to `maxAttempts`; any other answer
 * that is not 2xx fails at once (the receiver refuses it). Redirects are not followed. Each
 * result is a `webhook.delivered` or `webhook.failed` event. A webhook never gets the
 * webhook.* events about itself (each delivery would make another). The webhooks are read from
 * the desired state at each event and each delivery: a change applies at once, a removed
 * webhook's queue is dropped. Nothing here blocks the bus: the subscriber only queues.
 */
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import type { DesiredState, WebhookConfig } from '../config/model.js';
import type { AnyEvent, EventBus } from '../service/events.js';
import { matches } from '../service/notify.js';
import { payloadOf } from './event-env.js';

export interface WebhookRunnerOptions {
  events: EventBus;
  desired: () => DesiredState;
  logger: Logger;
  node: string;
  /** carpd's version, for User-Agent. */
  version: string;
  /** Backoff timers (a manual clock in tests). */
  clock?: Clock;
  fetch?: typeof fetch;
  /** Deliveries queued per webhook (default 1000). */
  queueLimit?: number;
  /** Attempts per delivery (default 8). */
  maxAttempts?: number;
  /** First retry delay, doubled each time (default 1000 ms), up to maxDelayMs (default 60000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface WebhookStats {
  delivered: number;
  failed: number;
  retries: number;
  dropped: number;
  queued: number;
}

interface Delivery {
  event: AnyEvent;
  attempts: number;
  firstTry?: number;
}

interface Lane {
  queue: Delivery[];
  busy: boolean;
  timer?: unknown;
  abort?: AbortController;
  stats: Omit<WebhookStats, 'queued'>;
}

/** The signature header's value for a body. */
export function signatureOf(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

export class WebhookRunner {
  private readonly lanes = new Map<string, Lane>();
  private readonly unsubscribe: () => void;
  private closed = false;
  private readonly clock: Clock;
  private readonly fetch: typeof fetch;
  private readonly queueLimit: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly opts: WebhookRunnerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.queueLimit = opts.queueLimit ?? 1000;
    this.maxAttempts = opts.maxAttempts ?? 8;
    this.baseDelayMs = opts.baseDelayMs ?? 1000;
    this.maxDelayMs = opts.maxDelayMs ?? 60_000;
    this.unsubscribe = opts.events.subscribe((e) => this.onEvent(e));
  }

  stats(): Record<string, WebhookStats> {
    return Object.fromEntries([...this.lanes].map(([n, l]) => [n, { ...l.stats, queued: l.queue.length }]));
  }

  private onEvent(e: AnyEvent): void {
    if (this.closed) return;
    const webhooks = this.opts.desired().webhooks ?? [];
    this.prune(webhooks);
    for (const w of webhooks) {
      if (!matches(w.events, e)) continue;
      if ((e.type === 'webhook.delivered' || e.type === 'webhook.failed') && e.data.webhook === w.name) continue;
      let lane = this.lanes.get(w.name);
      if (!lane) this.lanes.set(w.name, (lane = { queue: [], busy: false, stats: { delivered: 0, failed: 0, retries: 0, dropped: 0 } }));
      if (lane.queue.length >= this.queueLimit) {
        // The oldest not being sent now.
        const at = lane.busy ? 1 : 0;
        const [lost] = lane.queue.splice(at, 1);
        if (lost) {
          lane.stats.dropped++;
          this.later(() => this.failed(w.name, lost, `dropped: ${this.queueLimit} deliveries were already queued`, true));
        }
      }
      lane.queue.push({ event: e, attempts: 0 });
      if (!lane.busy && lane.timer === undefined) this.later(() => this.pump(w.name));
    }
  }

  private prune(webhooks: readonly WebhookConfig[]): void {
    if (this.lanes.size === 0) return;
    const names = new Set(webhooks.map((w) => w.name));
    for (const [n, lane] of this.lanes) {
      if (names.has(n)) continue;
      this.dropLane(n, lane);
    }
  }

  private dropLane(name: string, lane: Lane): void {
    lane.queue = [];
    if (lane.timer !== undefined) this.clock.clearTimeout(lane.timer);
    lane.timer = undefined;
    lane.abort?.abort();
    this.lanes.delete(name);
  }

  private later(fn: () => void): void {
    setImmediate(() => {
      if (!this.closed) fn();
    });
  }

  private pump(name: string): void {
    const lane = this.lanes.get(name);
    if (!lane || lane.busy || lane.timer !== undefined || this.closed) return;
    const d = lane.queue[0];
    if (!d) return;
    const w = (this.opts.desired().webhooks ?? []).find((x) => x.name === name);
    if (!w) {
      this.dropLane(name, lane);
      return;
    }
    lane.busy = true;
    void this.attempt(w, d, lane).then((outcome) => {
      lane.busy = false;
      lane.abort = undefined;
      if (this.closed || this.lanes.get(name) !== lane) return;
      if (outcome === 'retry') {
        lane.stats.retries++;
        const delay = Math.min(this.baseDelayMs * 2 ** (d.attempts - 1), this.maxDelayMs);
        lane.timer = this.clock.setTimeout(() => {
          lane.timer = undefined;
          this.pump(name);
        }, delay);
        return;
      }
      // Done with this one (delivered, or failed for good): the queue may have dropped it meanwhile.
      if (lane.queue[0] === d) lane.queue.shift();
      this.pump(name);
    });
  }

  /** One POST; 'retry' when it should be tried again later. */
  private async attempt(w: WebhookConfig, d: Delivery, lane: Lane): Promise<'done' | 'retry'> {
    d.attempts++;
    d.firstTry ??= performance.now();
    const body = JSON.stringify(payloadOf(d.event, this.opts.node));
    const abort = new AbortController();
    lane.abort = abort;
    let reason: string;
    let again: boolean;
    try {
      const res = await this.fetch(w.url, {
        method: 'POST',
        body,
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': `carpd/${this.opts.version}`,
          'x-carpd-event': d.event.type,
          'x-carpd-delivery': String(d.event.id),
          'x-carpd-signature': signatureOf(w.secret, body),
        },
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(w.timeoutSec * 1000)]),
      });
      // The answer's body is not needed; it is read (bounded by the timeout) so the connection can be reused.
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) {
        lane.stats.delivered++;
        const ms = Math.round(performance.now() - d.firstTry);
        this.opts.events.publish('webhook.delivered', { webhook: w.name, eventId: d.event.id, eventType: d.event.type, status: res.status, attempts: d.attempts, ms }, { level: 'debug' });
        return 'done';
      }
      reason = `HTTP ${res.status}`;
      again = retryable(res.status);
    } catch (e) {
      if (this.closed) return 'done';
      const err = e as Error & { cause?: { code?: string; message?: string } };
      reason = err.name === 'TimeoutError' ? `no answer within ${w.timeoutSec} s` : `${err.cause?.code ?? err.cause?.message ?? err.message}`;
      again = true;
    }
    if (again && d.attempts < this.maxAttempts && !this.closed) {
      this.opts.logger.info({ event: 'webhook.retry', webhook: w.name, eventId: d.event.id, attempts: d.attempts, reason }, `webhook ${w.name}: delivery of event ${d.event.id} failed (${reason}); retrying`);
      return 'retry';
    }
    lane.stats.failed++;
    this.failed(w.name, d, `${reason} after ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`, false);
    return 'done';
  }

  private failed(name: string, d: Delivery, reason: string, dropped: boolean): void {
    this.opts.events.publish('webhook.failed', { webhook: name, eventId: d.event.id, eventType: d.event.type, reason, attempts: d.attempts, dropped }, { level: 'warn', msg: `webhook ${name}: event ${d.event.id} (${d.event.type}) not delivered: ${reason}` });
  }

  /** Stops hearing events, retrying and sending. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [n, lane] of [...this.lanes]) this.dropLane(n, lane);
  }
}
