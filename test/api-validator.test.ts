/**
 * The spec validator on its own (src/api/validator.ts): a response that does not match its
 * schema never reaches the client, and each schema is compiled once and shared.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import express from 'express';
import request from 'supertest';
import { errorHandler } from '../src/api/problem.js';
import { loadSpec } from '../src/api/spec.js';
import { SpecValidator } from '../src/api/validator.js';
import { capturingLogger } from './helpers/log-capture.js';

/** An app whose GET /v1/status answers `body`, behind the validator. */
function appAnswering(body: unknown, responses = true) {
  const { logger, lines } = capturingLogger();
  const app = express();
  app.use(new SpecValidator(loadSpec()).middleware({ responses, logger }));
  app.get('/v1/status', (_req, res) => {
    res.json(body);
  });
  app.use(errorHandler(logger));
  return { app, lines };
}

test('a response that does not match its schema is answered 500 CARPD_ERR_INTERNAL and logged with its problems', async () => {
  const { app, lines } = appAnswering({ node: 'n1', version: 3 });
  const res = await request(app).get('/v1/status');
  assert.equal(res.status, 500);
  assert.equal(res.body.code, 'CARPD_ERR_INTERNAL');
  assert.match(res.headers['content-type'], /^application\/problem\+json/);
  assert.ok(!JSON.stringify(res.body).includes('"version":3'), 'the wrong body is not sent');
  const logged = lines.find((l) => l.event === 'response.invalid');
  assert.ok(logged, 'response.invalid is logged');
  const errors = logged.errors as { path: string; message: string }[];
  assert.ok(errors.some((e) => e.path === '/response/version' && /string/.test(e.message)), JSON.stringify(errors));
  assert.ok(errors.some((e) => e.path === '/response/vhids'), 'a missing property is named by its own path');
});

test('without response validation the same body goes out as it is', async () => {
  const { app, lines } = appAnswering({ node: 'n1', version: 3 }, false);
  const res = await request(app).get('/v1/status');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { node: 'n1', version: 3 });
  assert.equal(lines.length, 0);
});

test('a schema of the spec is compiled once and the same validator is handed out again', () => {
  const v = new SpecValidator(loadSpec());
  const first = v.schema('#/components/schemas/Status');
  assert.equal(v.schema('#/components/schemas/Status'), first);
  assert.equal(v.check('#/components/schemas/Problem', { type: 'urn:x', title: 't', status: 500, code: 'CARPD_ERR_INTERNAL', detail: 'd' }), undefined);
  const problems = v.check('#/components/schemas/Problem', { type: 'urn:x', title: 't', status: 500, code: 'NOT_A_CODE', detail: 'd' });
  assert.ok(problems?.some((p) => p.path === '/code' && /allowed values/.test(p.message)), JSON.stringify(problems));
  assert.throws(() => v.schema('#/components/schemas/NoSuchSchema'), /no schema/);
});

test('templateOf: every path of the spec is found as its template, with a trailing slash and in any case; a segment more or less is not', () => {
  const spec = loadSpec() as { paths: Record<string, unknown> };
  const v = new SpecValidator(spec);
  const templates = Object.keys(spec.paths);
  for (const t of templates) {
    const path = t.replace(/\{[^}]+\}/g, 'x1');
    assert.equal(v.templateOf(path), t, path);
    assert.equal(v.templateOf(`${path}/`), t, `${path}/`);
    assert.equal(v.templateOf(path.toUpperCase()), t, path.toUpperCase());
    // One segment more, an empty one, or one less: another template or none, never this one.
    for (const other of [`${path}/y2`, `${path}//`, path.slice(0, path.lastIndexOf('/')) || '/']) assert.notEqual(v.templateOf(other), t, other);
  }
  assert.equal(v.templateOf(''), undefined);
  assert.equal(v.templateOf('/v1/vips//1'), undefined);
});
