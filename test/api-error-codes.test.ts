/**
 * The error codes each operation lists (`x-carpd-error-codes` in openapi/carpd.yaml) against
 * the registry (src/errors.ts), the spec's own responses, and the routes:
 *
 * - every code listed is in the registry, and has a response of its status in the operation,
 *   whose description names it; no response names a code the operation does not list;
 * - the list is exactly what the route can answer: the codes the app answers around every
 *   handler (test/helpers/route-errors.ts globalCodes) and those written in the code its
 *   handler reaches (routeErrors, read off the source with the TypeScript compiler), less the
 *   few listed in NOT_ANSWERED with the reason the route cannot answer them;
 * - driven: every operation answers the app's own refusals (no token, the read role on a
 *   change, an unknown query parameter, a body that is not JSON, too large, in an unsupported
 *   charset) with a code it lists. Every other API test checks the same of each error answer
 *   it gets (test/helpers/spec.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '../src/errors.js';
import { loadSpec } from '../src/api/spec.js';
import { makeHarness, READ_TOKEN } from './helpers/harness.js';
import { globalCodes, routeErrors } from './helpers/route-errors.js';

type Json = Record<string, any>;
const spec = loadSpec() as Json;
const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;
const operations = Object.entries(spec.paths as Json).flatMap(([path, item]) =>
  METHODS.filter((m) => (item as Json)[m]).map((method) => ({ path, method, op: (item as Json)[method] as Json })),
);

/**
 * Codes the source reaches from a route that the route cannot answer, and why. The static
 * reading counts every code written in the code a handler reaches; these are written there but
 * cannot come out of it.
 */
const NOT_ANSWERED: { code: ErrorCode; except: string[]; why: string }[] = [
  {
    code: 'CARPD_ERR_TOKEN_EXISTS',
    except: ['post /v1/tokens'],
    why: 'config/validate.ts checks the token names of the whole desired state on every change, but only POST /v1/tokens adds a token, and it refuses a taken name first',
  },
];

/**
 * Codes the source reaches from one route that the route cannot answer, and why: written in
 * code the handler starts but whose failures never become the HTTP answer.
 */
const NOT_ANSWERED_BY: { route: string; codes: ErrorCode[]; why: string }[] = [
  {
    route: 'post /v1/cluster/switchover',
    codes: ['CARPD_ERR_INTERFACE_NOT_FOUND', 'CARPD_ERR_UNSUPPORTED', 'CARPD_ERR_KERNEL', 'CARPD_ERR_SYNC_PEER_UNREACHABLE', 'CARPD_ERR_SYNC_BAD_MESSAGE', 'CARPD_ERR_SYNC_NOT_CONFIGURED', 'CARPD_ERR_JOB_NOT_FOUND'],
    why: 'the job (sync/switchover.ts) catches every failure of the peer and the backend and reports it in the job (failed, rolled-back), answered 200/202; the job waited for is the running one, never dropped',
  },
  {
    route: 'get /v1/cluster/diagnostics',
    codes: ['CARPD_ERR_INTERFACE_NOT_FOUND', 'CARPD_ERR_UNSUPPORTED', 'CARPD_ERR_KERNEL', 'CARPD_ERR_SYNC_PEER_UNREACHABLE', 'CARPD_ERR_SYNC_BAD_MESSAGE'],
    why: "sync/diagnostics.ts catches the failures of the peer's health (the clock), this node's health and CARP counters and the peer's status and pf (SyncManager.cluster): each is a finding or a not-checked check, answered 200",
  },
];

const resolve = (node: Json): Json => {
  if (typeof node.$ref !== 'string') return node;
  return (node.$ref as string)
    .slice(2)
    .split('/')
    .reduce<any>((n, part) => n[part.replace(/~1/g, '/').replace(/~0/g, '~')], spec) as Json;
};
const listed = (op: Json) => (op['x-carpd-error-codes'] ?? []) as string[];

test('every operation lists its error codes, each from the registry, once', () => {
  for (const { path, method, op } of operations) {
    const codes = listed(op);
    assert.ok(Array.isArray(op['x-carpd-error-codes']) && codes.length > 0, `${method} ${path}: no x-carpd-error-codes`);
    for (const c of codes) assert.ok(c in ERROR_CODES, `${method} ${path}: ${c} is not in src/errors.ts`);
    assert.equal(new Set(codes).size, codes.length, `${method} ${path}: a code listed twice`);
  }
});

test("each listed code has a response of its status naming it, and the responses name no other code", () => {
  for (const { path, method, op } of operations) {
    const codes = listed(op) as ErrorCode[];
    const statuses = new Set<number>(codes.map((c) => ERROR_CODES[c].status));
    for (const [status, response] of Object.entries(op.responses as Json)) {
      if (!/^[45]\d\d$/.test(status)) continue;
      const description = String(resolve(response as Json).description ?? '');
      const named = new Set([...description.matchAll(/`(CARPD_ERR_[A-Z_]+)`/g)].map((m) => m[1]));
      const expected = codes.filter((c) => ERROR_CODES[c].status === Number(status));
      assert.ok(statuses.has(Number(status)), `${method} ${path}: a ${status} response, but no listed code has that status`);
      assert.deepEqual([...named].sort(), [...expected].sort(), `${method} ${path} ${status}: the description names ${[...named].join(', ') || 'no code'}; the listed codes of status ${status} are ${expected.join(', ')}`);
      assert.ok('application/problem+json' in (resolve(response as Json).content ?? {}), `${method} ${path} ${status}: not a problem+json answer`);
    }
    for (const c of codes) assert.ok(String(ERROR_CODES[c].status) in op.responses, `${method} ${path}: lists ${c} but has no ${ERROR_CODES[c].status} response`);
  }
});

test('each operation lists exactly the codes its route can answer (read off the source)', () => {
  const routes = routeErrors();
  const key = (method: string, path: string) => `${method} ${path}`;
  assert.deepEqual(routes.map((r) => key(r.method, r.path)).sort(), operations.map((o) => key(o.method, o.path)).sort(), 'one route per operation of the spec');
  for (const r of routes) {
    const { op } = operations.find((o) => o.method === r.method && o.path === r.path)!;
    const can = new Map<ErrorCode, string>(globalCodes(r.method, op, spec).map((c) => [c, 'src/api/app.ts (around every handler)']));
    for (const [c, where] of r.codes) if (!can.has(c)) can.set(c, where);
    for (const n of NOT_ANSWERED) if (!n.except.includes(key(r.method, r.path))) can.delete(n.code);
    for (const n of NOT_ANSWERED_BY) if (n.route === key(r.method, r.path)) for (const c of n.codes) can.delete(c);
    const list = new Set(listed(op));
    for (const [c, where] of can) {
      assert.ok(list.has(c), `${r.method.toUpperCase()} ${r.path} can answer ${c} (${where}) but its operation does not list it in x-carpd-error-codes`);
    }
    for (const c of list) assert.ok(can.has(c as ErrorCode), `${r.method.toUpperCase()} ${r.path} lists ${c}, which its route cannot answer`);
  }
});

const example = (path: string) => path.replace('{interface}', 'em0').replace('{vhid}', '1').replace('{name}', 'reader');
const required = (path: string) => (path === '/v1/vhids/free' ? 'interface=em0&' : '');

test("every operation answers the app's own refusals with a code it lists", async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  for (const { path, method, op } of operations) {
    if (listed(op).length === 1) continue; // GET /healthz: answered before all of it.
    const url = `${example(path)}?${required(path)}`;
    const expect = async (what: string, opts: Parameters<typeof h.api.call>[2], status: number, code: ErrorCode) => {
      const res = await h.api.call(method, url + (what === 'unknown query parameter' ? 'zzz=1' : ''), opts);
      assert.equal(res.status, status, `${method} ${path} with ${what}: ${res.text}`);
      assert.equal(res.body.code, code, `${method} ${path} with ${what}`);
    };
    await expect('no token', { token: null }, 401, 'CARPD_ERR_UNAUTHORIZED');
    if (method !== 'get') await expect('a read token', { token: READ_TOKEN }, 403, 'CARPD_ERR_FORBIDDEN');
    await expect('unknown query parameter', op.requestBody ? { body: {} } : {}, 400, 'CARPD_ERR_VALIDATION');
    await expect('a body that is not JSON', { raw: '{"a":' }, 400, 'CARPD_ERR_MALFORMED_JSON');
    await expect('a body over 64 KiB', { raw: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) }, 413, 'CARPD_ERR_BODY_TOO_LARGE');
    await expect('an unsupported charset', { raw: '{}', contentType: 'application/json; charset=iso-8859-1' }, 415, 'CARPD_ERR_UNSUPPORTED_MEDIA_TYPE');
  }
});
