/**
 * Webhooks: a receiver on loopback gets signed payloads and verifies them; a failed delivery is
 * retried with backoff on the runner's clock; a full queue drops the oldest (reported); a
 * webhook does not get the events about its own deliveries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { EventBus, type AnyEvent } from '../src/service/events.js';
import { initialState, type WebhookConfig } from '../src/config/model.js';
import { WebhookRunner } from '../src/notify/webhooks.js';
import { ManualClock } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';

const SECRET = 'receiver-secret-0123456789';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  verified: boolean;
}

/** A receiver on 127.0.0.1 that checks X-Carpd-Signature as a receiver would; `answer` picks the status. */
async function receiver(t: { after: (f: () => unknown) => void }, answer: (n: number, res: ServerResponse) => void = (_n, res) => res.end('ok')) {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`);
      const given = Buffer.from(String(req.headers['x-carpd-signature'] ?? ''));
      got.push({ headers: req.headers, body: body.toString('utf8'), verified: given.length === expected.length && timingSafeEqual(given, expected) });
      answer(got.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

function runnerOf(webhooks: WebhookConfig[], opts: { clock?: ManualClock; queueLimit?: number; maxAttempts?: number } = {}) {
  const bus = new EventBus();
  const state = initialState(new Date(0));
  state.webhooks = webhooks;
  const seen: AnyEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  const runner = new WebhookRunner({ events: bus, desired: () => state, logger: pino({ level: 'silent' }), node: 'node-a', version: '9.9.9', ...opts });
  const results = () => seen.filter((e) => e.type === 'webhook.delivered' || e.type === 'webhook.failed');
  const vhid = (vhidNo: number) => bus.publish('vhid.state', { interface: 'em0', vhid: vhidNo, from: 'BACKUP', to: 'MASTER', reason: 'test', effectiveSkew: 0 });
  return { bus, state, runner, results, vhid };
}

const webhook = (url: string, extra: Partial<WebhookConfig> = {}): WebhookConfig => ({ name: 'recv', url, secret: SECRET, events: [{ type: 'vhid.state' }, { type: 'webhook' }], timeoutSec: 5, nosync: false, ...extra });

test('a receiver on loopback gets signed payloads and verifies them', async (t) => {
  const rx = await receiver(t);
  const r = runnerOf([webhook(rx.url)]);
  t.after(() => r.runner.close());
  r.bus.publish('config.committed', { revision: 1, actor: 'a', origin: 'api', summary: 's', steps: 0 }); // not asked for
  const e = r.vhid(1);
  const [delivered] = await pollUntil('delivered', async () => r.results(), (x) => x.length >= 1, 10_000);
  assert.equal(rx.got.length, 1, 'only the event asked for');
  const [req] = rx.got;
  assert.ok(req.verified, 'the signature verifies with the secret');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.equal(req.headers['x-carpd-event'], 'vhid.state');
  assert.equal(req.headers['x-carpd-delivery'], String(e.id));
  assert.equal(req.headers['user-agent'], 'carpd/9.9.9');
  assert.deepEqual(JSON.parse(req.body), { id: e.id, type: 'vhid.state', time: e.time, data: e.data, node: 'node-a' });
  assert.equal(delivered.type, 'webhook.delivered');
  assert.deepEqual({ ...delivered.data, ms: 0 }, { webhook: 'recv', eventId: e.id, eventType: 'vhid.state', status: 200, attempts: 1, ms: 0 });
  // Its own webhook.delivered event (it asked for the webhook family) is not sent to it.
  const other = r.vhid(2);
  await pollUntil('the second delivered', async () => r.results(), (x) => x.length >= 2, 10_000);
  assert.deepEqual(
    rx.got.map((g) => JSON.parse(g.body).id),
    [e.id, other.id],
  );
  // A wrong secret does not verify.
  r.state.webhooks = [webhook(rx.url, { secret: 'another' })];
  r.vhid(3);
  await pollUntil('the third delivered', async () => r.results(), (x) => x.length >= 3, 10_000);
  assert.equal(rx.got[2].verified, false);
});

test('a receiver answering 500 then 200 gets the delivery again after the backoff', async (t) => {
  const clock = new ManualClock();
  const rx = await receiver(t, (n, res) => {
    res.statusCode = n === 1 ? 500 : 200;
    res.end();
  });
  const r = runnerOf([webhook(rx.url)], { clock });
  t.after(() => r.runner.close());
  const e = r.vhid(1);
  await pollUntil('a retry is scheduled', async () => r.runner.stats().recv?.retries ?? 0, (n) => n === 1, 10_000);
  assert.equal(rx.got.length, 1);
  assert.equal(r.results().length, 0);
  clock.advance(1000);
  const [delivered] = await pollUntil('delivered', async () => r.results(), (x) => x.length >= 1, 10_000);
  assert.equal(delivered.type, 'webhook.delivered');
  assert.equal(delivered.data.attempts, 2);
  assert.equal(rx.got.length, 2);
  assert.equal(rx.got[1].headers['x-carpd-delivery'], String(e.id));
  assert.ok(rx.got.every((g) => g.verified));
});

test('a receiver refusing with 400 fails at once; unreachable, it fails after the last attempt', async (t) => {
  const clock = new ManualClock();
  const rx = await receiver(t, (_n, res) => {
    res.statusCode = 400;
    res.end();
  });
  const r = runnerOf([webhook(rx.url)], { clock, maxAttempts: 2 });
  t.after(() => r.runner.close());
  r.vhid(1);
  const [failed] = await pollUntil('failed', async () => r.results(), (x) => x.length >= 1, 10_000);
  assert.equal(failed.type, 'webhook.failed');
  assert.match((failed.data as { reason: string }).reason, /HTTP 400 after 1 attempt/);
  // A closed port: no answer, retried once, then reported.
  r.state.webhooks = [webhook('http://127.0.0.1:9/none')];
  r.vhid(2);
  await pollUntil('a retry is scheduled', async () => r.runner.stats().recv?.retries ?? 0, (n) => n === 1, 10_000);
  clock.advance(1000);
  const results = await pollUntil('failed again', async () => r.results(), (x) => x.length >= 2, 10_000);
  assert.equal(results[1].type, 'webhook.failed');
  assert.equal((results[1].data as { attempts: number }).attempts, 2);
});

test('a full queue drops the oldest delivery, reported with dropped: true', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const rx = await receiver(t, (n, res) => {
    if (n === 1) void held.then(() => res.end());
    else res.end();
  });
  const r = runnerOf([webhook(rx.url)], { queueLimit: 3 });
  t.after(() => r.runner.close());
  const first = r.vhid(1);
  await pollUntil('the first is being sent', async () => rx.got.length, (n) => n === 1, 10_000);
  const events = [2, 3, 4, 5].map((v) => r.vhid(v));
  const dropped = await pollUntil('two dropped', async () => r.results().filter((e) => e.type === 'webhook.failed'), (x) => x.length >= 2, 10_000);
  assert.deepEqual(
    dropped.map((e) => [e.data.eventId, (e.data as { dropped: boolean }).dropped]),
    [
      [events[0].id, true],
      [events[1].id, true],
    ],
  );
  assert.equal(r.runner.stats().recv.dropped, 2);
  release();
  await pollUntil('three delivered', async () => r.results().filter((e) => e.type === 'webhook.delivered'), (x) => x.length >= 3, 10_000);
  assert.deepEqual(
    rx.got.map((g) => JSON.parse(g.body).id),
    [first.id, events[2].id, events[3].id],
  );
});
