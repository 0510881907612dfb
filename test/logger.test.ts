import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, prettyAvailable } from '../src/daemon/logger.js';

const logged = (obj: object) => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) }, false);
  logger.info(obj, 'msg');
  return lines[0];
};

test('secrets are redacted at the top of a line and one or two levels below, in objects and arrays', () => {
  // Every path pino's redact option was given before: password, *.password, *.*.password, token,
  // *.token, key, *.key, authorization, *.authorization, headers.authorization, req.headers.authorization.
  const line = logged({
    password: 'p0',
    token: 't0',
    key: 'k0',
    authorization: 'a0',
    vip: { interface: 'em0', vhid: 1, password: 'p1', key: 'k1', token: 't1', authorization: 'a1' },
    change: { vip: { password: 'p2', advskew: 0 } },
    headers: { authorization: 'Bearer x' },
    req: { headers: { authorization: 'Bearer y', host: 'h' } },
    vips: [{ vhid: 1, password: 'p3' }],
  });
  const text = JSON.stringify(line);
  for (const secret of ['p0', 't0', 'k0', 'a0', 'p1', 'k1', 't1', 'a1', 'p2', 'Bearer x', 'Bearer y', 'p3']) assert.ok(!text.includes(`"${secret}"`), `${secret} in ${text}`);
  assert.equal(line.password, '[redacted]');
  assert.deepEqual(line.vip, { interface: 'em0', vhid: 1, password: '[redacted]', key: '[redacted]', token: '[redacted]', authorization: '[redacted]' });
  assert.deepEqual(line.change, { vip: { password: '[redacted]', advskew: 0 } });
  assert.deepEqual(line.req, { headers: { authorization: '[redacted]', host: 'h' } });
  assert.deepEqual(line.vips, [{ vhid: 1, password: '[redacted]' }]);
  assert.equal(line.msg, 'msg');
});

test("redaction copies what holds a secret and leaves the caller's objects as they were", () => {
  const vip = { interface: 'em0', password: 'p1' };
  const vips = [{ password: 'p2' }];
  const obj = { event: 'x', vip, vips, n: 1 };
  const line = logged(obj);
  assert.deepEqual(obj, { event: 'x', vip: { interface: 'em0', password: 'p1' }, vips: [{ password: 'p2' }], n: 1 });
  assert.equal(obj.vip, vip);
  assert.deepEqual(line.vip, { interface: 'em0', password: '[redacted]' });
  assert.deepEqual(logged({ event: 'carp.state', interface: 'em0', vhid: 1, state: 'MASTER', deep: { a: { b: { password: 'below the levels looked at' } } } }).deep, { a: { b: { password: 'below the levels looked at' } } });
});

test('pretty output only where pino-pretty can be loaded: without it a terminal gets JSON lines', () => {
  assert.equal(prettyAvailable(() => '/somewhere/pino-pretty/index.js'), true);
  assert.equal(
    prettyAvailable(() => {
      throw Object.assign(new Error("Cannot find module 'pino-pretty'"), { code: 'MODULE_NOT_FOUND' });
    }),
    false,
  );
});
