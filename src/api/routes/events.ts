/**
 * GET /v1/events: carpd's events as Server-Sent Events, and GET /v1/events/recent: the kept
 * ones as a JSON page for clients that poll.
 *
 * A stream first sends what its client missed (Last-Event-ID), then every event as it is
 * published. Writing never waits: each event is written to the client's socket at once, and a
 * client that does not read is dropped as soon as more than `maxBufferedBytes` wait for it
 * (counted), so a stalled client costs at most that much memory and nothing else. One timer
 * writes a keepalive comment to every stream.
 */
import type { Request, Response } from 'express';
import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import { EVENT_FAMILIES, EVENT_TYPES, eventTypesOf, type AnyEvent, type EventBodies, type EventBus, type EventType } from '../../service/events.js';
import { route, type Schema } from '../typed.js';
import { systemClock, type Clock } from '../../clock.js';

export interface EventStreamOptions {
  /** A comment line to every stream this often (default 15 s), so that proxies keep idle streams open. */
  heartbeatMs?: number;
  /** Bytes waiting for one client beyond which it is dropped (default 1 MiB). */
  maxBufferedBytes?: number;
  /** The reconnection delay the stream suggests to clients (SSE `retry:`, default 2 s). */
  retryMs?: number;
  clock?: Clock;
}

interface Client {
  res: Response;
  types?: ReadonlySet<EventType>;
}

/** The types a `types` parameter names, or undefined for all; CARPD_ERR_VALIDATION naming the unknown ones. */
export function parseTypes(param: string | undefined): ReadonlySet<EventType> | undefined {
  if (param === undefined || param === '') return undefined;
  const out = new Set<EventType>();
  const unknown: string[] = [];
  for (const name of param.split(',')) {
    const types = eventTypesOf(name.trim());
    if (types) types.forEach((t) => out.add(t));
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    throw new CarpdError(
      'CARPD_ERR_VALIDATION',
      `unknown event type${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => JSON.stringify(u)).join(', ')} in types: name event types (${EVENT_TYPES.join(', ')}) or families (${Object.keys(EVENT_FAMILIES).join(', ')}), comma-separated`,
      { errors: [{ path: '/query/types', message: `unknown event type or family: ${unknown.join(', ')}` }] },
    );
  }
  out.add('events.lost');
  return out;
}

/** One event as SSE: `id:`, `event:`, and the whole event as one line of JSON. */
export function sseFrame(e: AnyEvent | { id?: number; type: 'events.lost'; time: string; data: EventBodies['events.lost'] }): string {
  return `${e.id === undefined ? '' : `id: ${e.id}\n`}event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

export class EventStreams {
  private readonly clients = new Set<Client>();
  private droppedCount = 0;
  private timer?: unknown;
  private readonly heartbeatMs: number;
  private readonly maxBuffered: number;
  private readonly retryMs: number;
  private readonly clock: Clock;
  private unsubscribe?: () => void;

  constructor(
    private readonly bus: EventBus,
    opts: EventStreamOptions = {},
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    this.retryMs = opts.retryMs ?? 2000;
    this.clock = opts.clock ?? systemClock;
  }

  /** Streams open now. */
  clientCount(): number {
    return this.clients.size;
  }

  /** Streams dropped since start because their client did not read. */
  dropped(): number {
    return this.droppedCount;
  }

  /** Opens a stream on `res`: the missed events after `lastId` first, then each as it comes. */
  open(req: Request, res: Response, types: ReadonlySet<EventType> | undefined, lastId: number | undefined): void {
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    // nginx and others buffer responses unless told not to.
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    const client: Client = { res, types };
    let head = `retry: ${this.retryMs}\n\n`;
    if (lastId !== undefined) {
      const { events, lost } = this.bus.since(lastId);
      if (lost) head += sseFrame({ id: lost.oldest === null ? undefined : lost.oldest - 1, type: 'events.lost', time: new Date(this.clock.wall()).toISOString(), data: lost });
      for (const e of events) if (!types || types.has(e.type)) head += sseFrame(e);
    }
    res.write(head);
    this.clients.add(client);
    this.ensureSubscribed();
    res.once('close', () => this.remove(client));
  }

  /** Ends every stream (carpd stopping). */
  close(): void {
    for (const c of [...this.clients]) {
      c.res.end();
      this.remove(c);
    }
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private ensureSubscribed(): void {
    this.unsubscribe ??= this.bus.subscribe((e) => {
      let frame: string | undefined;
      for (const c of this.clients) {
        if (c.types && !c.types.has(e.type)) continue;
        frame ??= sseFrame(e);
        this.write(c, frame);
      }
    });
    if (this.timer === undefined) this.armHeartbeat();
  }

  private armHeartbeat(): void {
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (this.clients.size === 0) return;
      for (const c of this.clients) this.write(c, ': keepalive\n\n');
      this.armHeartbeat();
    }, this.heartbeatMs);
  }

  private write(c: Client, text: string): void {
    if (c.res.writableEnded || c.res.destroyed) return;
    c.res.write(text);
    if (c.res.writableLength > this.maxBuffered) {
      this.droppedCount++;
      this.remove(c);
      c.res.destroy();
    }
  }

  private remove(c: Client): void {
    if (!this.clients.delete(c)) return;
    if (this.clients.size === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

export function eventsRouter(bus: EventBus, streams: EventStreams): Router {
  const r = Router();
  route(r, 'get', '/v1/events', (req, res) => {
    const types = parseTypes(req.query.types);
    const header = req.get('last-event-id');
    streams.open(req, res, types, header === undefined ? undefined : Number(header));
  });
  route(r, 'get', '/v1/events/recent', (req, res) => {
    const types = parseTypes(req.query.types);
    const after = req.query.after ?? 0;
    const limit = req.query.limit ?? 100;
    const { events, lost } = bus.since(after);
    const matching = events.filter((e) => !types || types.has(e.type));
    const page = matching.slice(0, limit);
    // The next page starts after the last event looked at: the last returned, or every kept one when none matched beyond.
    const lastId = page.length < matching.length ? page[page.length - 1].id : Math.max(after, bus.lastId);
    res.json({ events: page as Schema<'Event'>[], lastId, lost: lost ?? null });
  });
  return r;
}
