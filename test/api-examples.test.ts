/**
 * Examples that are checked:
 *
 * - every example in openapi/carpd.yaml (request bodies, responses, schemas) matches its schema,
 *   checked by carpd's own validator (src/api/validator.ts, the Ajv setup that checks requests
 *   and responses at run time);
 * - every request example of a change is accepted by a carpd as a dry run;
 * - every JSON request body a `curl` command shows in README.md and docs/*.md matches the spec's
 *   request schema of the operation it calls (the PUT /v1/config documents of
 *   docs/automation.md are checked, and sent to a carpd, by test/automation-docs.test.ts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadSpec } from '../src/api/spec.js';
import { SpecValidator } from '../src/api/validator.js';
import { makeHarness } from './helpers/harness.js';
import { assertRequestMatchesSpec } from './helpers/spec.js';

type Json = Record<string, any>;
const spec = loadSpec() as Json;
const validator = new SpecValidator(spec);
const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;
const esc = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

interface Example {
  where: string;
  schema: string;
  value: unknown;
}

/** The examples of a media-type map (`content`) at `pointer`. */
function mediaExamples(content: Json | undefined, pointer: string): Example[] {
  return Object.entries(content ?? {}).flatMap(([type, media]) => {
    const m = media as Json;
    const schema = `${pointer}/content/${esc(type)}/schema`;
    const out: Example[] = [];
    if ('example' in m) out.push({ where: `${pointer}/content/${type}/example`, schema, value: m.example });
    for (const [name, ex] of Object.entries((m.examples ?? {}) as Json)) out.push({ where: `${pointer}/content/${type}/examples/${name}`, schema, value: (ex as Json).value });
    return out;
  });
}

function allExamples(): { request: (Example & { method: string; path: string })[]; other: Example[] } {
  const request: (Example & { method: string; path: string })[] = [];
  const other: Example[] = [];
  for (const [path, item] of Object.entries(spec.paths as Json)) {
    for (const method of METHODS) {
      const op = (item as Json)[method] as Json | undefined;
      if (!op) continue;
      const pointer = `#/paths/${esc(path)}/${method}`;
      if (op.requestBody) request.push(...mediaExamples(op.requestBody.content, `${pointer}/requestBody`).map((e) => ({ ...e, method, path })));
      for (const [status, response] of Object.entries(op.responses as Json)) {
        if (typeof (response as Json).$ref !== 'string') other.push(...mediaExamples((response as Json).content, `${pointer}/responses/${status}`));
      }
    }
  }
  for (const [name, response] of Object.entries((spec.components.responses ?? {}) as Json)) other.push(...mediaExamples((response as Json).content, `#/components/responses/${name}`));
  for (const [name, schema] of Object.entries(spec.components.schemas as Json)) {
    for (const [i, value] of ((schema as Json).examples ?? []).entries()) other.push({ where: `#/components/schemas/${name}/examples/${i}`, schema: `#/components/schemas/${name}`, value });
  }
  return { request, other };
}

const { request, other } = allExamples();

test('every example in the spec matches its schema (carpd validator)', () => {
  assert.ok(request.length >= 13, `request examples: ${request.length}`);
  assert.ok(other.length >= 3, `response and schema examples: ${other.length}`);
  for (const e of [...request, ...other]) {
    const problems = validator.check(e.schema, structuredClone(e.value));
    assert.equal(problems, undefined, `${e.where}: ${JSON.stringify(problems)}`);
  }
});

test('every request body of the spec shows an example for each media type', () => {
  for (const [path, item] of Object.entries(spec.paths as Json)) {
    for (const method of METHODS) {
      const body = (item as Json)[method]?.requestBody as Json | undefined;
      for (const [type, media] of Object.entries((body?.content ?? {}) as Json)) {
        assert.ok('example' in (media as Json) || Object.keys((media as Json).examples ?? {}).length > 0, `${method} ${path} ${type}: no example`);
      }
    }
  }
});

test('every request example of a change is accepted by carpd as a dry run', async (t) => {
  const h = await makeHarness({ interfaces: ['em0', 'em1', 'em2'] });
  t.after(() => h.close());
  // New VIPs first, on the empty state; then the VIP the examples of
  // /v1/vips/{interface}/{vhid} name, and revisions 1..3 to roll back to.
  const creates = request.filter((e) => e.path === '/v1/vips');
  const setUp = async () => {
    assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
    await h.api.patch('/v1/vips/em0/1', { advskew: 10 });
    await h.api.patch('/v1/vips/em0/1', { advskew: 20 });
  };
  let sent = 0;
  for (const e of [...creates, setUp, ...request.filter((x) => !creates.includes(x))]) {
    if (typeof e === 'function') {
      await e();
      continue;
    }
    const op = spec.paths[e.path][e.method] as Json;
    const dryRun = (op.parameters ?? []).some((p: Json) => p.$ref === '#/components/parameters/DryRun');
    // Config sync needs a peer (test/sync-cluster.test.ts); a token is created for real below.
    if (!dryRun || e.path.startsWith('/v1/sync')) continue;
    const type = e.schema.includes('merge-patch') ? 'application/merge-patch+json' : 'application/json';
    const url = e.path.replace('{interface}', 'em0').replace('{vhid}', '1').replace('{name}', 'example') + '?dryRun=true';
    const res = await h.api.call(e.method as (typeof METHODS)[number], url, { body: e.value, contentType: type });
    assert.equal(res.status, 200, `${e.where}: ${res.text}`);
    assert.equal(res.body.dryRun, true, e.where);
    sent++;
  }
  assert.ok(sent >= 10, `dry runs: ${sent}`);
  const token = request.find((e) => e.path === '/v1/tokens' && e.method === 'post')!;
  assert.equal((await h.api.post('/v1/tokens', token.value)).status, 201);
});

/** `curl` commands of the fenced shell blocks of a Markdown file that send a JSON body with -d. */
function curlBodies(file: string): { where: string; method: string; path: string; body: unknown }[] {
  const text = readFileSync(file, 'utf8');
  const out: { where: string; method: string; path: string; body: unknown }[] = [];
  for (const block of text.matchAll(/```(?:sh|bash|shell|console)\n([\s\S]*?)\n```/g)) {
    const joined = block[1].replace(/\\\n\s*/g, ' ');
    for (const full of joined.split('\n')) {
      if (!/^\s*curl\b/.test(full)) continue;
      const line = full.split(' | ')[0];
      const data = /\s(?:-d|--data|--data-raw)\s+'([^']*)'/.exec(line);
      if (!data) continue;
      const method = /\s-X\s+([A-Z]+)/.exec(line)?.[1] ?? 'POST';
      const url = /(?:https?:\/\/[^/\s'"]+|\$URL|\$\{URL\})(\/[^\s'"?]*)/.exec(line);
      assert.ok(url, `${file}: no URL in ${line}`);
      const lineNo = text.slice(0, block.index).split('\n').length;
      out.push({ where: `${file} (block at line ${lineNo}): ${method} ${url[1]}`, method, path: url[1], body: JSON.parse(data[1]) });
    }
  }
  return out;
}

/** The spec's template of a concrete path (`/v1/vips/em0/1` → `/v1/vips/{interface}/{vhid}`). */
function template(path: string): string {
  const t = Object.keys(spec.paths as Json).find((p) => new RegExp('^' + p.replace(/\{[^}]+\}/g, '[^/]+') + '$').test(path));
  assert.ok(t, `${path} is no path of the spec`);
  return t;
}

test("every JSON body a curl command sends in README.md and docs/*.md matches the spec's request schema", () => {
  const files = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const bodies = files.flatMap(curlBodies);
  assert.ok(bodies.length >= 7, `curl bodies found: ${bodies.length}`);
  for (const b of bodies) {
    try {
      assertRequestMatchesSpec(b.method, template(b.path), b.body);
    } catch (e) {
      throw new Error(`${b.where}: ${(e as Error).message}`);
    }
  }
});
