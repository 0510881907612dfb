/** A Server-Sent Events client for tests: opens GET /v1/events and keeps every event it reads. */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { SseParser } from '../../src/cli/sse.js';
import { assertMatchesSchema } from './spec.js';

export interface StreamEvent {
  id: number;
  type: string;
  time: string;
  data: any;
}

export class SseClient {
  readonly events: StreamEvent[] = [];
  readonly comments: string[] = [];
  /** Events that did not match the spec or whose SSE fields disagree with their JSON (tests assert none). */
  readonly problems: string[] = [];
  status = 0;
  headers: IncomingMessage['headers'] = {};
  /** Raw text read so far. */
  text = '';
  private req?: ClientRequest;
  private res?: IncomingMessage;
  private waiters: { pred: (e: StreamEvent) => boolean; resolve: (e: StreamEvent) => void }[] = [];
  private ended?: Promise<void>;

  private constructor() {}

  /**
   * Opens the stream and resolves once the answer's head is in. Every event is checked against
   * the spec's Event schema and its SSE id and type against its JSON.
   */
  static open(opts: { port: number; host?: string; token: string; lastEventId?: string | number; query?: string }): Promise<SseClient> {
    const c = new SseClient();
    const parser = new SseParser();
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { Authorization: `Bearer ${opts.token}`, Accept: 'text/event-stream' };
      if (opts.lastEventId !== undefined) headers['Last-Event-ID'] = String(opts.lastEventId);
      c.req = request({ host: opts.host ?? '127.0.0.1', port: opts.port, path: `/v1/events${opts.query ?? ''}`, headers }, (res) => {
        c.res = res;
        c.status = res.statusCode ?? 0;
        c.headers = res.headers;
        res.setEncoding('utf8');
        c.ended = new Promise((done) => res.once('close', () => done()));
        res.on('data', (chunk: string) => {
          c.text += chunk;
          for (const line of chunk.split('\n')) if (line.startsWith(':')) c.comments.push(line);
          for (const m of parser.push(chunk)) {
            const e = JSON.parse(m.data) as StreamEvent;
            try {
              if (m.event !== e.type) throw new Error(`SSE event ${m.event} carries a ${e.type}`);
              if (e.type !== 'events.lost' && m.id !== String(e.id)) throw new Error(`SSE id ${m.id} for event ${e.id}`);
              assertMatchesSchema('Event', e);
            } catch (err) {
              c.problems.push(String(err));
            }
            c.events.push(e);
            c.waiters = c.waiters.filter((w) => (w.pred(e) ? (w.resolve(e), false) : true));
          }
        });
        resolve(c);
      });
      c.req.once('error', reject);
      c.req.end();
    });
  }

  /** The first event (already read or still to come) that matches. */
  waitFor(pred: (e: StreamEvent) => boolean, what = 'an event', limitMs = 30_000): Promise<StreamEvent> {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.events.map((e) => e.type))}`)), limitMs);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** Resolves when the server has closed the stream. */
  closed(): Promise<void> {
    return this.ended ?? Promise.resolve();
  }

  close(): void {
    this.req?.destroy();
    this.res?.destroy();
  }
}
