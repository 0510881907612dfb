/**
 * Authentication as a running carpd shows it: repeated invalid tokens from one address are
 * answered 429 with Retry-After (a valid token too, while the block lasts), each failure is an
 * `auth.failed` line that never carries the token, the block an `auth.blocked` line, and every
 * request one `http.request` line unless `--access-log off`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AUTH_LIMIT_DEFAULTS } from '../src/api/auth-limit.js';
import { call, daemonArgs, startDaemon } from './helpers/daemon.js';

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-auth-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

test('a running carpd answers 429 with Retry-After after repeated invalid tokens from one address, and logs them without the token', async (t) => {
  const dir = tmp(t);
  const d = await startDaemon(t, daemonArgs(dir));
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  assert.equal((await call(d.port, 'GET', '/v1/vips/em0/1', { token })).status, 404);
  // The token's name reaches the access log: the logger's redaction of secrets does not hide it.
  await d.waitForLog((l) => l.event === 'http.request' && l.route === '/v1/vips/{interface}/{vhid}' && l.status === 404 && l.tokenName === 'admin');
  for (let i = 0; i < AUTH_LIMIT_DEFAULTS.maxFailures; i++) {
    const r = await call(d.port, 'GET', '/v1/vips', { token: `carpd_guessed_${i}` });
    assert.equal(r.status, 401, r.text);
  }
  for (const tok of ['carpd_guessed_again', token]) {
    const r = await call(d.port, 'GET', '/v1/status', { token: tok });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.body.code, 'CARPD_ERR_TOO_MANY_FAILURES');
    assert.ok(Number(r.headers['retry-after']) >= 1, JSON.stringify(r.headers));
  }
  await d.waitForEvent('auth.blocked');
  const failed = d.logs.filter((l) => l.event === 'auth.failed');
  assert.equal(failed.length, AUTH_LIMIT_DEFAULTS.maxFailures);
  assert.deepEqual(new Set(failed.map((l) => `${l.route} ${l.reason}`)), new Set(['/v1/vips invalid token']));
  await d.waitForLog((l) => l.event === 'http.request' && l.status === 429);

  assert.doesNotMatch(d.output, /carpd_guessed/);
  assert.ok(!d.output.includes(token));
  d.kill('SIGTERM');
  assert.equal((await d.waitForExit()).code, 0, d.output);
});

test('--access-log off: no http.request lines; auth.failed still logged', async (t) => {
  const d = await startDaemon(t, daemonArgs(tmp(t), '--access-log', 'off'));
  assert.equal((await call(d.port, 'GET', '/v1/status', { token: 'carpd_wrong' })).status, 401);
  await d.waitForEvent('auth.failed');
  d.kill('SIGTERM');
  assert.equal((await d.waitForExit()).code, 0, d.output);
  assert.ok(!d.logs.some((l) => l.event === 'http.request'), d.output);
});
