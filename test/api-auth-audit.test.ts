/**
 * Authentication you can audit: the limiter on a manual clock (windows, blocks, the bounded
 * table, IPv6 sources by /64), then the app: `auth.failed` lines that name source, route and
 * reason but never the token, the counters of GET /v1/stats, 429 with Retry-After for every
 * authenticated request of a blocked source (the status poll's fast path included), and one
 * `http.request` line per request when the access log is on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import { buildApp } from '../src/api/app.js';
import { AuthLimiter, sourceKey } from '../src/api/auth-limit.js';
import { ADMIN_TOKEN, makeHarness, ManualClock, READ_TOKEN } from './helpers/harness.js';
import { assertMatchesSpec } from './helpers/spec.js';
import { capturingLogger } from './helpers/log-capture.js';

test('sourceKey: IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
  assert.equal(sourceKey('192.0.2.7'), '192.0.2.7');
  assert.equal(sourceKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('2001:db8:1:2:bbbb::9'), '2001:db8:1:2::/64');
  assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  assert.equal(sourceKey(undefined), 'unknown');
});

test('the limiter: maxFailures invalid tokens within the window block the source for blockMs; missing tokens do not count', () => {
  const clock = new ManualClock();
  const l = new AuthLimiter({ maxFailures: 3, windowMs: 10_000, blockMs: 30_000, maxSources: 100 }, clock);
  for (let i = 0; i < 5; i++) l.fail('192.0.2.1', 'missing token');
  assert.equal(l.blocked('192.0.2.1'), undefined);
  assert.deepEqual(l.fail('192.0.2.1', 'invalid token'), { blockedForSec: undefined });
  clock.advance(10_000); // the window has passed: counting starts over
  l.fail('192.0.2.1', 'invalid token');
  l.fail('192.0.2.1', 'invalid token');
  assert.equal(l.blocked('192.0.2.1'), undefined);
  assert.deepEqual(l.fail('192.0.2.1', 'invalid token'), { blockedForSec: 30 });
  assert.equal(l.blocked('192.0.2.1'), 30);
  assert.equal(l.blocked('192.0.2.2'), undefined, 'another source is not blocked');
  // Failures while blocked do not extend the block.
  l.fail('192.0.2.1', 'invalid token');
  clock.advance(29_001);
  assert.equal(l.blocked('192.0.2.1'), 1);
  assert.deepEqual(l.stats(), { authFailures: { missingToken: 5, invalidToken: 5 }, throttled: 0, blockedSources: 1 });
  clock.advance(999);
  assert.equal(l.blocked('192.0.2.1'), undefined);
  assert.equal(l.stats().blockedSources, 0);
  // And then it starts over.
  assert.deepEqual(l.fail('192.0.2.1', 'invalid token'), { blockedForSec: undefined });
});

test('the limiter keeps at most maxSources sources, dropping the one used least recently', () => {
  const clock = new ManualClock();
  const l = new AuthLimiter({ maxFailures: 2, windowMs: 60_000, blockMs: 60_000, maxSources: 3 }, clock);
  l.fail('198.51.100.1', 'invalid token');
  l.fail('198.51.100.1', 'invalid token'); // blocked
  for (let i = 2; i <= 4; i++) l.fail(`198.51.100.${i}`, 'invalid token');
  assert.equal(l.size, 3);
  assert.equal(l.blocked('198.51.100.1'), undefined, 'the oldest entry made room');
  l.fail('198.51.100.2', 'invalid token'); // .2 used again: now the newest
  l.fail('198.51.100.5', 'invalid token');
  assert.equal(l.size, 3);
  assert.ok(l.blocked('198.51.100.2') !== undefined, '.2 was kept and is blocked by its second failure');
  for (let i = 0; i < 10_000; i++) l.fail(`2001:db8:${(i >> 16) & 0xffff}:${i & 0xffff}::1`, 'invalid token');
  assert.equal(l.size, 3);
});

/** The app with a logger whose lines the test reads, a limiter on a manual clock, the access log on. */
async function auditedApp(t: test.TestContext) {
  const h = await makeHarness();
  t.after(() => h.close());
  const { logger, lines } = capturingLogger();
  const clock = new ManualClock();
  const limiter = new AuthLimiter({ maxFailures: 3, windowMs: 60_000, blockMs: 60_000 }, clock);
  const app = buildApp({ service: h.service, logger, version: '0.0.0-test', node: 'test-node', authLimiter: limiter, accessLog: true });
  const call = async (method: 'get' | 'post', url: string, token?: string) => {
    let r = request(app)[method](url);
    if (token !== undefined) r = r.set('Authorization', `Bearer ${token}`);
    const res = await r;
    assertMatchesSpec(method, url, res);
    return res;
  };
  return { h, app, lines, clock, call };
}

test('a failed authentication is logged with source, route and reason, never the token; counted in /v1/stats', async (t) => {
  const { lines, call } = await auditedApp(t);
  const wrong = 'carpd_wrong_secret_0123456789';
  assert.equal((await call('get', '/v1/vips/em0/7?x=1', wrong)).status, 401);
  assert.equal((await call('get', '/v1/status')).status, 401);
  const failures = lines.filter((l) => l.event === 'auth.failed');
  assert.equal(failures.length, 2);
  assert.deepEqual(
    failures.map((l) => ({ route: l.route, reason: l.reason, method: l.method })),
    [
      { route: '/v1/vips/{interface}/{vhid}', reason: 'invalid token', method: 'GET' },
      { route: '/v1/status', reason: 'missing token', method: 'GET' },
    ],
  );
  for (const l of failures) assert.match(String(l.source), /127\.0\.0\.1|::1/);
  assert.doesNotMatch(JSON.stringify(lines), /carpd_wrong_secret/);
  const stats = await call('get', '/v1/stats', READ_TOKEN);
  assert.deepEqual(stats.body.api, { authFailures: { missingToken: 1, invalidToken: 1 }, throttled: 0, blockedSources: 0 });
});

test('repeated invalid tokens: 429 CARPD_ERR_TOO_MANY_FAILURES with Retry-After for every request of that source, valid tokens included, until the block ends', async (t) => {
  const { lines, clock, call } = await auditedApp(t);
  for (let i = 0; i < 3; i++) assert.equal((await call('get', '/v1/vips', `carpd_guess_${i}`)).status, 401);
  assert.equal(lines.filter((l) => l.event === 'auth.blocked').length, 1);
  for (const [method, url, token] of [
    ['get', '/v1/status', ADMIN_TOKEN], // the poll's fast path too
    ['get', '/v1/vips', ADMIN_TOKEN],
    ['post', '/v1/vips', ADMIN_TOKEN],
    ['get', '/v1/config', 'carpd_guess_again'],
    ['get', '/v1/carp', undefined],
  ] as const) {
    const res = await call(method, url, token);
    assert.equal(res.status, 429, `${method} ${url}: ${res.text}`);
    assert.equal(res.body.code, 'CARPD_ERR_TOO_MANY_FAILURES');
    assert.equal(res.headers['retry-after'], '60');
  }
  // Not authenticated, so not refused.
  assert.equal((await call('get', '/healthz')).status, 200);
  clock.advance(30_000);
  assert.equal((await call('get', '/v1/status', ADMIN_TOKEN)).headers['retry-after'], '30');
  clock.advance(30_000);
  const after = await call('get', '/v1/stats', ADMIN_TOKEN);
  assert.equal(after.status, 200);
  assert.deepEqual(after.body.api, { authFailures: { missingToken: 0, invalidToken: 3 }, throttled: 6, blockedSources: 0 });
});

test('the access log: one http.request line per request with method, route template, status, ms, token name and source', async (t) => {
  const { lines, call } = await auditedApp(t);
  await call('get', '/v1/status', READ_TOKEN); // assembled through the app
  await call('get', '/v1/status', READ_TOKEN); // answered by the poll's fast path
  await call('get', '/v1/vips/em0/9?x=1', ADMIN_TOKEN);
  await call('post', '/v1/vips', READ_TOKEN);
  await call('get', '/v1/vips', 'carpd_nope');
  await call('get', '/nowhere');
  const access = lines.filter((l) => l.event === 'http.request');
  assert.deepEqual(
    access.map((l) => [l.method, l.route, l.status, l.tokenName]),
    [
      ['GET', '/v1/status', 200, 'reader'],
      ['GET', '/v1/status', 200, 'reader'],
      ['GET', '/v1/vips/{interface}/{vhid}', 400, 'admin'],
      ['POST', '/v1/vips', 403, 'reader'],
      ['GET', '/v1/vips', 401, null],
      ['GET', '/nowhere', 401, null],
    ],
  );
  for (const l of access) {
    assert.equal(typeof l.ms, 'number');
    assert.match(String(l.source), /127\.0\.0\.1|::1/);
    assert.equal(l.level, 30, 'info');
  }
  assert.doesNotMatch(JSON.stringify(lines), new RegExp(`${ADMIN_TOKEN}|${READ_TOKEN}|carpd_nope`));
});

test('the access log is off unless asked for', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const { logger, lines } = capturingLogger();
  const app = buildApp({ service: h.service, logger, version: '0.0.0-test' });
  await request(app).get('/v1/status').set('Authorization', `Bearer ${ADMIN_TOKEN}`);
  assert.ok(!lines.some((l) => JSON.stringify(l).includes('http.request')));
});
