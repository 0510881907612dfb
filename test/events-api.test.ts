/**
 * GET /v1/events (Server-Sent Events) and GET /v1/events/recent against an in-process carpd
 * on the memory backend and a manual clock: the events of a change and a takeover, ids,
 * reconnecting with Last-Event-ID, filters, refusals, and the stream's own rules (keepalive,
 * a client that does not read is dropped and counted) on a fake response.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import { EVENT_TYPES, EventBus, type EventBodies, type EventType } from '../src/service/events.js';
import { EventStreams, parseTypes } from '../src/api/routes/events.js';
import { run } from '../src/cli/run.js';
import { SseParser } from '../src/cli/sse.js';
import { ADMIN_TOKEN, READ_TOKEN, makeHarness, ManualClock } from './helpers/harness.js';
import { SseClient } from './helpers/sse.js';

async function serve(t: { after: (fn: () => unknown) => void }) {
  const h = await makeHarness();
  const server = createServer(h.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const clients: SseClient[] = [];
  t.after(async () => {
    clients.forEach((c) => c.close());
    server.closeAllConnections();
    server.close();
    await h.close();
  });
  const open = async (o: { token?: string; lastEventId?: string | number; query?: string } = {}) => {
    const c = await SseClient.open({ port, token: o.token ?? READ_TOKEN, lastEventId: o.lastEventId, query: o.query });
    clients.push(c);
    return c;
  };
  return { h, port, open };
}

test('a read token streams the commit and the takeover of a new VIP as they happen, with increasing ids', async (t) => {
  const { h, open } = await serve(t);
  const s = await open();
  assert.equal(s.status, 200);
  assert.match(String(s.headers['content-type']), /^text\/event-stream/);
  assert.equal(s.headers['cache-control'], 'no-store');
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.7/24'], advskew: 20 });
  const committed = await s.waitFor((e) => e.type === 'config.committed', 'config.committed');
  assert.equal(committed.data.actor, 'token:admin');
  assert.match(committed.data.summary, /em0/);
  h.clock.advance(4000);
  const master = await s.waitFor((e) => e.type === 'vhid.state' && e.data.to === 'MASTER', 'MASTER');
  assert.equal(master.data.interface, 'em0');
  assert.equal(master.data.vhid, 7);
  assert.equal(master.data.from, 'BACKUP');
  assert.match(master.data.reason, /master-down/);
  assert.equal(master.data.effectiveSkew, 20);
  const ids = s.events.map((e) => e.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(s.problems, []);
  // The same events, as a JSON page (checked against EventPage by the harness).
  const page = await h.api.get(`/v1/events/recent?after=${ids[0] - 1}`, { token: READ_TOKEN });
  assert.equal(page.status, 200);
  assert.deepEqual(page.body.events.map((e: { id: number }) => e.id), ids);
  assert.equal(page.body.lastId, ids[ids.length - 1]);
  assert.equal(page.body.lost, null);
});

test('a client that reconnects with Last-Event-ID gets exactly what it missed, then the rest as it comes', async (t) => {
  const { h, open } = await serve(t);
  const first = await open();
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] });
  const seen = await first.waitFor((e) => e.type === 'config.committed');
  first.close();
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'] });
  h.clock.advance(4000);
  const missed = h.service.events.since(seen.id).events.map((e) => e.id);
  assert.ok(missed.length >= 3, `a commit and two vhids' states: ${missed.length}`);
  const again = await open({ lastEventId: seen.id });
  await again.waitFor((e) => e.id === missed[missed.length - 1], 'the last missed event');
  assert.deepEqual(again.events.map((e) => e.id), missed, 'every missed event, in order, none twice, none before');
  await h.api.put('/v1/carp/maintenance', { enabled: true });
  const m = await again.waitFor((e) => e.type === 'maintenance');
  assert.equal(m.data.enabled, true);
  const d = await again.waitFor((e) => e.type === 'demotion');
  assert.deepEqual(d.data.contributors, [{ name: 'maintenance', value: 240 }]);
  assert.deepEqual(again.problems, []);
});

test('a Last-Event-ID from before this run, or older than the kept events, first gets events.lost', async (t) => {
  const { h, open } = await serve(t);
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] });
  const s = await open({ lastEventId: 12 });
  const lost = await s.waitFor((e) => e.type === 'events.lost');
  assert.equal(lost.data.reason, 'restart');
  assert.equal(lost.data.after, 12);
  assert.equal(s.events[0].type, 'events.lost', 'it comes first');
  assert.ok(s.events.some((e) => e.type === 'config.committed'), 'then every kept event');
  const page = await h.api.get('/v1/events/recent?after=12', { token: READ_TOKEN });
  assert.equal(page.body.lost.reason, 'restart');
});

test('types= filters by type and family; events.lost always passes', async (t) => {
  const { h, open } = await serve(t);
  const s = await open({ query: '?types=vhid.state,splitbrain' });
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'] });
  h.clock.advance(4000);
  await s.waitFor((e) => e.type === 'vhid.state' && e.data.to === 'MASTER');
  assert.ok(s.events.every((e) => e.type === 'vhid.state'), JSON.stringify(s.events.map((e) => e.type)));
  assert.deepEqual([...parseTypes('splitbrain,sync')!].sort(), ['events.lost', 'splitbrain.cleared', 'splitbrain.detected', 'sync.applied', 'sync.failed', 'sync.pushed', 'sync.rejected']);
  const page = await h.api.get('/v1/events/recent?types=config.committed&limit=1', { token: READ_TOKEN });
  assert.equal(page.body.events.length, 1);
  assert.equal(page.body.events[0].type, 'config.committed');
});

test('refusals: no token 401, unknown types and a bad Last-Event-ID 400 problem+json', async (t) => {
  const { h, open } = await serve(t);
  const none = await h.api.get('/v1/events', { token: null });
  assert.equal(none.status, 401);
  const bad = await h.api.get('/v1/events?types=vhid.state,nonsense', { token: READ_TOKEN });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, 'CARPD_ERR_VALIDATION');
  assert.match(bad.body.detail, /"nonsense"/);
  assert.deepEqual(bad.body.errors.map((e: { path: string }) => e.path), ['/query/types']);
  const badRecent = await h.api.get('/v1/events/recent?types=vhid', { token: READ_TOKEN });
  assert.equal(badRecent.status, 400);
  const badId = await h.api.get('/v1/events', { token: READ_TOKEN, headers: { 'Last-Event-ID': 'yesterday' } });
  assert.equal(badId.status, 400);
  assert.equal(badId.body.code, 'CARPD_ERR_VALIDATION');
  const wrong = await open({ token: 'carpd_wrong_token_0000000000000000' });
  assert.equal(wrong.status, 401);
  // A failed authentication is itself an event.
  const failed = h.service.events.since(0).events.filter((e) => e.type === 'auth.failed');
  assert.ok(failed.length >= 2, JSON.stringify(failed));
});

test('carpctl events prints each event in words, and --json one object per line', async (t) => {
  const { h, port } = await serve(t);
  const url = `http://127.0.0.1:${port}`;
  const before = h.service.events.lastId;
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 9, addresses: ['192.0.2.9/24'] });
  h.clock.advance(4000);
  let out = '';
  const code = await run(['--url', url, 'events', '--after', String(before), '--count', '3'], { stdout: (s) => (out += s), stderr: () => undefined, env: { CARPD_TOKEN: READ_TOKEN } });
  assert.equal(code, 0);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 3);
  // The vhid comes up while the change is applied, before its commit is durable.
  assert.ok(lines.some((l) => /^\S+Z config\.committed +revision \d+ by token:admin: add VIP em0 vhid 9/.test(l)), out);
  assert.ok(lines.some((l) => /^\S+Z vhid\.state +em0 vhid 9: INIT -> BACKUP/.test(l)), out);
  assert.match(lines[2], /vhid\.state +em0 vhid 9: BACKUP -> MASTER \(master-down timer expired/);
  let json = '';
  const code2 = await run(['--url', url, '--json', 'events', '--after', String(before), '--types', 'vhid.state', '--count', '2'], { stdout: (s) => (json += s), stderr: () => undefined, env: { CARPD_TOKEN: ADMIN_TOKEN } });
  assert.equal(code2, 0);
  const objs = json.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(objs.map((e) => e.data.to), ['BACKUP', 'MASTER']);
  let err = '';
  const code3 = await run(['--url', url, 'events', '--types', 'bogus'], { stdout: () => undefined, stderr: (s) => (err += s), env: { CARPD_TOKEN: READ_TOKEN } });
  assert.equal(code3, 1);
  assert.match(err, /CARPD_ERR_VALIDATION/);
});

/** A response that records what is written and whose unread bytes the test sets. */
function fakeStream() {
  const res = Object.assign(new EventEmitter(), {
    written: [] as string[],
    writableLength: 0,
    writableEnded: false,
    destroyed: false,
    headers: {} as Record<string, string>,
    status(n: number) {
      void n;
      return res;
    },
    setHeader(k: string, v: string) {
      res.headers[k] = v;
    },
    flushHeaders() {},
    write(s: string) {
      res.written.push(s);
      return true;
    },
    end() {
      res.writableEnded = true;
      res.emit('close');
    },
    destroy() {
      res.destroyed = true;
      res.emit('close');
    },
  });
  const req = { socket: { setNoDelay() {}, setKeepAlive() {} } };
  return { res, req, asRes: res as unknown as Response, asReq: req as unknown as Request };
}

test('a stream: keepalive comments on the clock, a client that does not read is dropped and counted, the daemon never waits', () => {
  const clock = new ManualClock();
  const bus = new EventBus({ firstId: 1, now: () => clock.now() });
  const streams = new EventStreams(bus, { clock, heartbeatMs: 15_000, maxBufferedBytes: 4096 });
  const a = fakeStream();
  const b = fakeStream();
  streams.open(a.asReq, a.asRes, undefined, undefined);
  streams.open(b.asReq, b.asRes, undefined, undefined);
  assert.equal(streams.clientCount(), 2);
  assert.match(a.res.written[0], /^retry: 2000\n\n$/);
  clock.advance(15_000);
  assert.equal(a.res.written.at(-1), ': keepalive\n\n');
  // b stops reading: what waits for it grows past the limit at the next event.
  b.res.writableLength = 5000;
  bus.publish('maintenance', { enabled: true });
  assert.equal(b.res.destroyed, true);
  assert.equal(streams.dropped(), 1);
  assert.equal(streams.clientCount(), 1);
  const parser = new SseParser();
  const got = a.res.written.flatMap((w) => parser.push(w));
  assert.deepEqual(got.map((m) => [m.id, m.event]), [['1', 'maintenance']]);
  streams.close();
  assert.equal(a.res.writableEnded, true);
  assert.equal(streams.clientCount(), 0);
  assert.equal(bus.subscribers, 0, 'no stream, no subscription');
  clock.advance(60_000);
});

test('the SSE parser: CRLF and CR line ends, split chunks, multi-line data, comments, retry', () => {
  const p = new SseParser();
  const msgs = [...p.push('retry: 1500\r\n: hi\r\nid: 4\r'), ...p.push('\nevent: x\ndata: a\ndata:b\n'), ...p.push('\n\rdata: c\r\r')];
  assert.deepEqual(msgs, [
    { id: '4', event: 'x', data: 'a\nb' },
    { event: 'message', data: 'c' },
  ]);
  assert.equal(p.lastEventId, '4');
  assert.equal(p.retryMs, 1500);
});

test('every event type, as carpd publishes it, matches its schema in the spec', async (t) => {
  const { h } = await serve(t);
  const at = '2026-12-07T10:00:00.000Z';
  const samples: { [T in EventType]: EventBodies[T] } = {
    'vhid.state': { interface: 'em0', vhid: 1, from: 'BACKUP', to: 'MASTER', reason: 'master-down timer expired', effectiveSkew: null },
    demotion: { total: 480, previous: 0, contributors: [{ name: 'maintenance', value: 240 }, { name: 'splitbrain', value: 240 }] },
    maintenance: { enabled: true },
    'config.committed': { revision: 3, actor: 'token:admin', origin: 'api', summary: 'add VIP em0 vhid 1', steps: 2 },
    'sync.pushed': { revision: 3, peer: '192.0.2.2:8444', detail: 'applied as revision 5' },
    'sync.applied': { primaryRevision: 3, revision: 5, peer: '192.0.2.1' },
    'sync.failed': { revision: 3, peer: '192.0.2.2:8444', error: 'ECONNREFUSED', reached: false, retryInMs: 2000 },
    'sync.rejected': { reason: 'unknown-peer', source: '192.0.2.9', fingerprint: null, detail: 'not pinned' },
    'splitbrain.detected': { interface: 'em0', vhid: 1, peer: 'node-b', policy: 'demote', since: at },
    'splitbrain.cleared': { interface: 'em0', vhid: 1, peer: 'node-b', seconds: 12.5, since: at },
    pfsync: { phase: 'bulk.done', syncdev: 'em1', detail: 'the bulk update from the peer completed' },
    'auth.failed': { source: '192.0.2.9', method: 'GET', route: '/v1/status', reason: 'unknown token' },
    'hook.succeeded': { hook: 'wan-up', eventId: 1, eventType: 'vhid.state', exitCode: 0, ms: 12 },
    'hook.failed': { hook: 'wan-up', eventId: 1, eventType: 'vhid.state', reason: 'timeout', exitCode: null, signal: 'SIGKILL', ms: 30000 },
    'webhook.delivered': { webhook: 'chat', eventId: 1, eventType: 'splitbrain.detected', status: 204, attempts: 1, ms: 3 },
    'webhook.failed': { webhook: 'chat', eventId: null, eventType: null, reason: 'queue full', attempts: 0, dropped: true },
    'events.lost': { after: 1, oldest: 5, reason: 'buffer' },
    'loop.stalled': { at, ms: 4012, thresholdMs: 1000, vhids: [{ interface: 'em0', vhid: 1, protocol: 'carp', intervalMs: 1000 }] },
    'switchover.started': { job: 'a1b2c3d4', from: 'fw-a', to: 'fw-b', back: false },
    'switchover.step': { job: 'a1b2c3d4', step: 'check taker.maintenance', status: 'passed', detail: 'the peer (fw-b) is not in maintenance' },
    'switchover.finished': { job: 'a1b2c3d4', state: 'succeeded', reason: 'fw-b is MASTER of 1 vhid(s)', ms: 3120 },
    'track.changed': { track: 'wan-gw', kind: 'ping', from: 'up', to: 'down', reason: '3 failed probes in a row (fall 3): no echo reply within 500 ms', weight: 240, demotion: 240 },
  };
  const before = h.service.events.lastId;
  for (const type of EVENT_TYPES) h.service.events.publish(type, samples[type] as never, { level: false });
  // The harness checks the page, every event in it, against EventPage and Event.
  const page = await h.api.get(`/v1/events/recent?after=${before}&limit=1000`, { token: READ_TOKEN });
  assert.equal(page.status, 200);
  assert.deepEqual(page.body.events.map((e: { type: string }) => e.type), [...EVENT_TYPES]);
});
