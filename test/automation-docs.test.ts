/**
 * docs/automation.md: every request body of PUT /v1/config it shows (the fenced block after a
 * `<!-- request body of PUT /v1/config -->` marker; `: KEY` takes the value under KEY, as an
 * Ansible vars file holds it) is valid against the spec's request schema and accepted by a carpd
 * dry run. Template expressions ({{ … }}, ${…}) stand for values the tools fill in: a sample
 * value replaces them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { makeHarness } from './helpers/harness.js';
import { assertRequestMatchesSpec } from './helpers/spec.js';

const SAMPLE = 'sample-secret';
const doc = readFileSync(new URL('../docs/automation.md', import.meta.url), 'utf8');
const bodies = [...doc.matchAll(/<!-- request body of PUT \/v1\/config(?:: (\w+))? -->\n```(json|yaml)\n([\s\S]*?)\n```/g)].map((m) => {
  const text = m[3].replace(/\{\{[^}]*\}\}|\$\{[^}]*\}/g, SAMPLE);
  const parsed = (m[2] === 'json' ? JSON.parse(text) : parse(text)) as Record<string, unknown>;
  return { where: `docs/automation.md line ${doc.slice(0, m.index).split('\n').length}`, body: m[1] ? parsed[m[1]] : parsed };
});

test('docs/automation.md shows a request body for Ansible, Terraform and the shell', () => {
  assert.equal(bodies.length, 3, 'one marked body per example');
  for (const tool of ['## Ansible', '## Terraform', '## Shell']) assert.ok(doc.includes(tool), tool);
});

test('every request body in docs/automation.md matches the spec schema of PUT /v1/config', () => {
  for (const { where, body } of bodies) {
    assert.ok(body && typeof body === 'object', `${where}: not an object`);
    assertRequestMatchesSpec('put', '/v1/config', body);
  }
});

test('every request body in docs/automation.md is accepted by carpd (dry run: a plan, nothing applied)', async (t) => {
  const h = await makeHarness({ interfaces: ['em0', 'em1', 'em2'] });
  t.after(() => h.close());
  for (const { where, body } of bodies) {
    const res = await h.api.put('/v1/config?dryRun=true', body);
    assert.equal(res.status, 200, `${where}: ${res.text}`);
    assert.equal(res.body.dryRun, true);
    assert.ok(res.body.changes.length > 0, where);
    assert.ok(!res.text.includes(SAMPLE), `${where}: a password in the answer`);
  }
  assert.equal(h.service.desired().revision, 0);
});
