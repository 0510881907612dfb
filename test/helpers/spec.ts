/**
 * Checks any HTTP response against openapi/carpd.yaml: the operation is found from the method
 * and path, the response object from the status (or `default`), and the body is validated
 * with JSON Schema 2020-12 (OpenAPI 3.1's dialect). Independent of src/api/validator.ts (its own
 * Ajv instance, operation lookup and choice of response), so a gap in one is caught by the other.
 */
import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { loadSpec } from '../../src/api/spec.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

type Json = Record<string, any>;

const spec = loadSpec() as Json;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addKeyword('example');
ajv.addSchema({ ...spec, $id: 'carpd' }, 'carpd');

const templates = Object.keys(spec.paths as Json).map((p) => ({
  path: p,
  re: new RegExp('^' + p.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));

export interface ResponseLike {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text?: string;
}

function pointer(path: string): string {
  return path.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Asserts that `res` is a response the spec allows for `method url`. */
export function assertMatchesSpec(method: string, url: string, res: ResponseLike): void {
  const path = url.split('?')[0];
  const t = templates.find((x) => x.re.test(path));
  const m = method.toLowerCase();
  if (!t || !(spec.paths as Json)[t.path][m]) {
    // Routes outside the spec answer with problem+json.
    assert.ok(res.status >= 400, `${method} ${url} is not in the spec but answered ${res.status}`);
    validate('#/components/schemas/Problem', res.body, `${method} ${url} -> ${res.status}`);
    return;
  }
  const op = (spec.paths as Json)[t.path][m] as Json;
  // An error answer carries a code the operation lists, under a status it declares itself (not
  // only through `default`): the per-operation lists hold for every answer a test sees.
  if (res.status >= 400 && typeof (res.body as Json | undefined)?.code === 'string') {
    const code = (res.body as Json).code as string;
    const listed = (op['x-carpd-error-codes'] ?? []) as string[];
    assert.ok(listed.includes(code), `${method} ${t.path} answered ${res.status} ${code}, which its operation does not list in x-carpd-error-codes`);
    assert.ok(String(res.status) in op.responses, `${method} ${t.path} answered ${res.status} ${code}, a status its operation does not declare`);
  }
  const statusKey = String(res.status) in op.responses ? String(res.status) : 'default';
  assert.ok(statusKey in op.responses, `${method} ${t.path}: status ${res.status} is not documented`);
  const base = `#/paths/${pointer(t.path)}/${m}/responses/${statusKey}`;
  let response = op.responses[statusKey] as Json;
  let ref = base;
  if (response.$ref) {
    ref = response.$ref as string;
    response = resolve(ref);
  }
  const ctype = String(res.headers['content-type'] ?? '').split(';')[0].trim();
  if (!response.content) {
    assert.ok(res.text === undefined || res.text === '', `${method} ${t.path} ${res.status}: expected no body`);
    return;
  }
  assert.ok(ctype in response.content, `${method} ${t.path} ${res.status}: content type "${ctype}" is not documented (${Object.keys(response.content).join(', ')})`);
  // A text answer (/metrics) is its text; supertest leaves `body` empty for it.
  validate(`${ref}/content/${pointer(ctype)}/schema`, ctype.startsWith('text/') ? res.text : res.body, `${method} ${url} -> ${res.status}`);
}

/** Asserts that `body` is a JSON request body the spec accepts for `method path` (the path as the spec spells it). */
export function assertRequestMatchesSpec(method: string, path: string, body: unknown): void {
  const m = method.toLowerCase();
  const op = (spec.paths as Json)[path]?.[m] as Json | undefined;
  assert.ok(op?.requestBody, `${method} ${path} takes no request body in the spec`);
  validate(`#/paths/${pointer(path)}/${m}/requestBody/content/application~1json/schema`, body, `${method} ${path} request body`);
}

function resolve(ref: string): Json {
  let node: any = spec;
  for (const part of ref.replace(/^#\//, '').split('/')) node = node[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  return node as Json;
}

function validate(ref: string, body: unknown, what: string): void {
  const fn = ajv.getSchema(`carpd${ref}`);
  assert.ok(fn, `no schema at ${ref}`);
  const ok = fn(body);
  assert.ok(ok, `${what}: body does not match the spec: ${ajv.errorsText(fn.errors)}\n${JSON.stringify(body)}`);
}

/** Asserts that `value` matches the spec's schema `name` (components.schemas). */
export function assertMatchesSchema(name: string, value: unknown): void {
  validate(`#/components/schemas/${name}`, value, name);
}
