/**
 * The import layers: docs/architecture.md shows the same rules .dependency-cruiser.cjs enforces,
 * and those rules refuse a wrong import (fixtures under test/fixtures/layers/: wire/ importing
 * config/, api/ importing kernel/). `npm test` runs the check over src/ itself before the tests.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cruise, type IFlattenedRuleSet } from 'dependency-cruiser';

/** The part of a forbidden rule this test reads. */
interface Rule {
  name: string;
  to: { path?: string; pathNot?: string | string[] };
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const config = createRequire(import.meta.url)(`${ROOT}.dependency-cruiser.cjs`) as {
  forbidden: Rule[];
  options: Record<string, unknown>;
};

/** layer name -> the folders it may import, as the rule file says. */
function layersOfRules(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of config.forbidden) {
    if (!r.name.startsWith('layer-')) continue;
    const name = r.name.slice('layer-'.length);
    const not = ([] as string[]).concat(r.to.pathNot ?? []);
    const folders = not.map((p) => /^\^src\/([a-z/]+)\/$/.exec(p)?.[1]).filter((f): f is string => f !== undefined && f !== name);
    out.set(name, folders.sort());
  }
  return out;
}

/** layer name -> the folders it may import, as docs/architecture.md's table says. */
function layersOfDoc(): Map<string, string[]> {
  const doc = readFileSync(`${ROOT}docs/architecture.md`, 'utf8');
  const out = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([a-z]+)\/` \| (.+) \|$/.exec(line);
    if (!m) continue;
    const allowed = m[2] === 'nothing' ? [] : [...m[2].matchAll(/`([a-z/]+)\/`/g)].map((x) => x[1]);
    out.set(m[1], allowed.sort());
  }
  return out;
}

test('docs/architecture.md lists the layers the rule file enforces', () => {
  const rules = layersOfRules();
  const doc = layersOfDoc();
  assert.ok(rules.size >= 9, `expected a rule per layer, found ${[...rules.keys()].join(', ')}`);
  assert.deepEqual(Object.fromEntries([...doc].filter(([k]) => rules.has(k))), Object.fromEntries(rules));
  assert.deepEqual([...rules.keys()].filter((k) => !doc.has(k)), [], 'every layer of the rule file is in the document');
});

test('the rules refuse wire/ importing config/ and api/ importing kernel/', async () => {
  const result = await cruise(['src'], {
    ...config.options,
    tsConfig: undefined,
    baseDir: `${ROOT}test/fixtures/layers`,
    validate: true,
    // The rule file is plain CommonJS; dependency-cruiser validates it itself (validate: true).
    ruleSet: { forbidden: config.forbidden } as IFlattenedRuleSet,
  });
  const output = result.output as { summary: { violations: { rule: { name: string }; from: string; to: string }[] } };
  const found = output.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
  assert.deepEqual(found, [
    'layer-api: src/api/bad.ts -> src/kernel/backend.ts',
    'layer-wire: src/wire/bad.ts -> src/config/model.ts',
  ]);
});
