/**
 * GET /v1/status as monitors poll it: one body per change of state, served as bytes with a
 * strong ETag, 304 for If-None-Match (RFC 9110 §13.1.2), and the body checked against the spec's
 * response schema once per change, so a view that drifts from the spec is refused. GET
 * /v1/config answers If-None-Match by its revision.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { ifNoneMatchHits, PrebuiltBodies } from '../src/api/prebuilt.js';
import { errorHandler } from '../src/api/problem.js';
import { STATUS_SCHEMA, StatusEndpoint, statusView, type Status } from '../src/api/routes/status.js';
import { loadSpec } from '../src/api/spec.js';
import { SpecValidator } from '../src/api/validator.js';
import { makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';
import { capturingLogger } from './helpers/log-capture.js';

const STRONG_TAG = /^"[A-Za-z0-9_-]+"$/;

async function statusOf(h: Harness, headers: Record<string, string> = {}) {
  return h.api.get('/v1/status', { token: READ_TOKEN, headers });
}

test('GET /v1/status carries a strong ETag that stays while nothing changes', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  const a = await statusOf(h);
  assert.equal(a.status, 200);
  assert.match(a.headers['content-type'], /^application\/json; charset=utf-8/);
  assert.match(String(a.headers.etag), STRONG_TAG);
  assert.equal(Number(a.headers['content-length']), Buffer.byteLength(a.text));
  assert.equal(a.body.vhids[0].state, 'BACKUP');
  const b = await statusOf(h);
  assert.equal(b.headers.etag, a.headers.etag);
  assert.equal(b.text, a.text);
});

test('If-None-Match naming the current tag answers 304 without a body (a list, a weak tag, *); any other gets the body', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const etag = String((await statusOf(h)).headers.etag);
  for (const header of [etag, `"elsewhere", ${etag}`, `W/${etag}`, `W/"x",W/${etag}`, '*', ` ${etag} `]) {
    const r = await statusOf(h, { 'If-None-Match': header });
    assert.equal(r.status, 304, `If-None-Match: ${header}`);
    assert.equal(r.text, '');
    assert.equal(r.headers.etag, etag, 'a 304 names the tag it confirms');
  }
  for (const header of ['"elsewhere"', `W/"elsewhere", "x"`, etag.slice(1, -1), `${etag.slice(0, -1)}x"`, '"unterminated']) {
    const r = await statusOf(h, { 'If-None-Match': header });
    assert.equal(r.status, 200, `If-None-Match: ${header}`);
    assert.equal(r.headers.etag, etag);
    assert.equal(r.body.revision, 0);
  }
});

test('a change of desired or live state gives a new tag, and the old tag then gets the whole body', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const tags: string[] = [String((await statusOf(h)).headers.etag)];

  // A VIP added (desired state and a new vhid).
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  const afterAdd = await statusOf(h, { 'If-None-Match': tags[0] });
  assert.equal(afterAdd.status, 200);
  assert.equal(afterAdd.body.vhids.length, 1);
  tags.push(String(afterAdd.headers.etag));

  // The vhid elects itself MASTER: a live change the backend reports.
  h.clock.advance(3000);
  const afterElection = await statusOf(h, { 'If-None-Match': tags[1] });
  assert.equal(afterElection.status, 200);
  assert.equal(afterElection.body.vhids[0].state, 'MASTER');
  tags.push(String(afterElection.headers.etag));

  // A forced state change.
  assert.equal((await h.api.put('/v1/vips/em0/1/state', { state: 'backup' })).status, 200);
  const afterForce = await statusOf(h, { 'If-None-Match': tags[2] });
  assert.equal(afterForce.status, 200);
  assert.equal(afterForce.body.vhids[0].state, 'BACKUP');
  assert.match(afterForce.body.vhids[0].reason, /forced to BACKUP/);
  tags.push(String(afterForce.headers.etag));

  assert.equal(new Set(tags).size, tags.length, `every state has its own tag: ${tags.join(' ')}`);
  for (const tag of tags) assert.match(tag, STRONG_TAG);
  assert.equal((await statusOf(h, { 'If-None-Match': tags[3] })).status, 304);
});

test('a status request with a query string goes through request validation and answers the same bytes', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const plain = await statusOf(h);
  const validated = await h.api.get('/v1/status?', { token: READ_TOKEN });
  assert.equal(validated.status, 200);
  assert.equal(validated.headers.etag, plain.headers.etag);
  assert.equal(validated.text, plain.text);
  assert.equal((await h.api.get('/v1/status?', { token: READ_TOKEN, headers: { 'If-None-Match': String(plain.headers.etag) } })).status, 304);
  const unknown = await h.api.get('/v1/status?verbose=1', { token: READ_TOKEN });
  assert.equal(unknown.status, 400);
  assert.equal(unknown.body.code, 'CARPD_ERR_VALIDATION');
  assert.equal(unknown.body.errors[0].path, '/query/verbose');
});

test('a status body that does not match the spec is refused when built: 500 CARPD_ERR_INTERNAL, logged once, checked once', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const validator = new SpecValidator(loadSpec());
  let checks = 0;
  const check = (body: unknown) => {
    checks++;
    return validator.check(STATUS_SCHEMA, body);
  };
  const { logger, lines } = capturingLogger();
  // A body builder that drifted from the spec: the demotion as text and a field the spec lacks.
  const broken = (s: Status, node: string, version: string) => {
    const body = statusView(s, node, version) as unknown as Record<string, any>;
    body.carp.demotion = String(body.carp.demotion);
    body.uptime = 5;
    return body;
  };
  const endpoint = new StatusEndpoint({ service: h.service, logger, version: '0.0.0-test', node: 'test-node', check, view: broken });
  const app = express();
  app.get('/v1/status', (req, res, next) => void endpoint.serve(req, res).catch(next));
  app.use(errorHandler(logger));

  for (let i = 0; i < 3; i++) {
    const r = await request(app).get('/v1/status');
    assert.equal(r.status, 500);
    assert.equal(r.body.code, 'CARPD_ERR_INTERNAL');
    assert.ok(!('uptime' in r.body) && !('carp' in r.body), 'the refused body is not sent');
  }
  assert.equal(checks, 1, 'one status, one check');
  const refused = lines.filter((l) => l.event === 'response.invalid');
  assert.equal(refused.length, 1);
  const errors = refused[0].errors as { path: string }[];
  assert.ok(errors.some((e) => e.path === '/carp/demotion'), JSON.stringify(errors));
  assert.ok(errors.some((e) => e.path === '/uptime'), JSON.stringify(errors));

  // The correct builder over the same service passes the same check.
  const good = new StatusEndpoint({ service: h.service, logger, version: '0.0.0-test', node: 'test-node', check });
  const app2 = express();
  app2.get('/v1/status', (req, res, next) => void good.serve(req, res).catch(next));
  assert.equal((await request(app2).get('/v1/status')).status, 200);
});

test('PrebuiltBodies: one build per source, one check per distinct body, the same tag for the same bytes', () => {
  let builds = 0;
  let checks = 0;
  const refusedWith: unknown[] = [];
  const bodies = new PrebuiltBodies<{ n: number }>(
    (s) => {
      builds++;
      return { n: s.n };
    },
    (body) => {
      checks++;
      return (body as { n: number }).n < 0 ? [{ path: '/n', message: 'must be >= 0' }] : undefined;
    },
    (problems) => refusedWith.push(problems),
  );
  const one = { n: 1 };
  const a = bodies.get(one);
  assert.ok('etag' in a);
  assert.equal(bodies.get(one), a);
  assert.deepEqual([builds, checks], [1, 1]);
  assert.equal(a.bytes.toString(), '{"n":1}');

  // A new snapshot of an unchanged state: built again, not checked again, same tag and bytes.
  const again = bodies.get({ n: 1 });
  assert.equal(again, a);
  assert.deepEqual([builds, checks], [2, 1]);

  const two = bodies.get({ n: 2 });
  assert.ok('etag' in two);
  assert.notEqual(two.etag, a.etag);
  assert.deepEqual([builds, checks], [3, 2]);

  const bad = { n: -1 };
  assert.deepEqual(bodies.get(bad), { problems: [{ path: '/n', message: 'must be >= 0' }] });
  bodies.get(bad);
  assert.equal(refusedWith.length, 1);
  assert.deepEqual([builds, checks], [4, 3]);
});

test('If-None-Match parsing follows RFC 9110: lists, weak tags, *, and nothing from a malformed value', () => {
  const tag = '"abc"';
  const hits: [string | undefined, boolean][] = [
    [undefined, false],
    ['', false],
    ['"abc"', true],
    ['W/"abc"', true],
    ['"x", "abc"', true],
    ['"x",W/"abc"', true],
    ['  "x" ,  "abc"  ', true],
    ['*', true],
    [' * ', true],
    ['"abcd"', false],
    ['"ab"', false],
    ['abc', false],
    ['"x", abc', false],
    ['"a,b", "abc"', true],
    ['*, "x"', false],
    ['"abc', false],
  ];
  for (const [header, want] of hits) assert.equal(ifNoneMatchHits(header, tag), want, `If-None-Match: ${header}`);
  assert.equal(ifNoneMatchHits('"abc"', 'W/"abc"'), true, 'weak comparison either way');
});

test('GET /v1/config answers 304 to If-None-Match naming the current revision, the whole document otherwise', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const first = await h.api.get('/v1/config');
  assert.equal(first.headers.etag, '"0"');
  for (const header of ['"0"', 'W/"0"', '"7", "0"', '*']) {
    const r = await h.api.get('/v1/config', { headers: { 'If-None-Match': header } });
    assert.equal(r.status, 304, `If-None-Match: ${header}`);
    assert.equal(r.text, '');
    assert.equal(r.headers.etag, '"0"');
  }
  assert.equal((await h.api.get('/v1/config', { headers: { 'If-None-Match': '"1"' } })).status, 200);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  const changed = await h.api.get('/v1/config', { headers: { 'If-None-Match': '"0"' } });
  assert.equal(changed.status, 200);
  assert.equal(changed.headers.etag, '"1"');
  assert.equal(changed.body.vips.length, 1);
  assert.equal((await h.api.get('/v1/config', { headers: { 'If-None-Match': '"1"' } })).status, 304);
});
