import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, prettyAvailable, prettyInto } from '../src/daemon/logger.js';
import type { LogSink } from '../src/daemon/log-sink.js';

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

test('a terminal in a checkout: lines shown pretty go through the log sink, secrets still redacted; without pino-pretty no pretty destination', () => {
  const written: string[] = [];
  const sink = { write: (s: string) => (written.push(s), true) } as unknown as LogSink;
  const destination = prettyInto(sink);
  assert.ok(destination, 'pino-pretty is a development dependency, installed here');
  const logger = createLogger('info', destination, false);
  logger.info({ vip: { vhid: 7, password: 'hunter2' } }, 'vip created');
  assert.equal(written.length, 1);
  assert.match(written[0], /vip created/);
  assert.ok(!written[0].startsWith('{'), `not JSON: ${written[0]}`);
  assert.ok(!written[0].includes('hunter2'));
  assert.ok(written[0].endsWith('\n'));
  assert.equal(
    prettyInto(sink, () => {
      throw new Error('Cannot find module pino-pretty');
    }),
    undefined,
  );
});
