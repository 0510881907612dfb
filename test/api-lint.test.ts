/**
 * npm run lint:api (scripts/lint-api.ts) fails, naming the problem, on a spec with one of the
 * comma defects put back, with a field removed from a response, and with a new required request
 * field; a breaking change passes with a new major version whose changelog section says what
 * broke and how to migrate. Each copy is compared with the spec as it is now, kept as the
 * release, so only the change made here differs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { compatibilityProblems } from '../scripts/api-compat.js';

const SPEC = readFileSync('openapi/carpd.yaml', 'utf8');
const VERSION = /^ {2}version: (\S+)$/m.exec(SPEC)![1];

function lint(t: { after: (fn: () => void) => void }, edit: (spec: string) => string, changelog = `# API changelog\n\n## ${VERSION}\n\nAs released.\n`): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-lint-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'released'));
  writeFileSync(path.join(dir, 'released', `carpd-${VERSION}.yaml`), SPEC);
  const edited = edit(SPEC);
  assert.notEqual(edited, SPEC, 'the edit changed nothing');
  writeFileSync(path.join(dir, 'carpd.yaml'), edited);
  writeFileSync(path.join(dir, 'changelog.md'), changelog);
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/lint-api.ts', '--spec', path.join(dir, 'carpd.yaml'), '--released', path.join(dir, 'released'), '--changelog', path.join(dir, 'changelog.md')], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

/** The compatibility check alone, in this process (Redocly's part runs in the tests above). */
async function compat(edit: (spec: string) => string, changelog: string) {
  return compatibilityProblems({ released: parse(SPEC), current: parse(edit(SPEC)), changelog, changelogPath: 'changelog.md' });
}

/** The spec at another version, with a changelog section for it. */
const at = (version: string) => (spec: string) => spec.replace(/^ {2}version: \S+$/m, `  version: ${version}`);
const changelogFor = (version: string, text: string) => `# API changelog\n\n## ${version}\n\n${text}\n\n## ${VERSION}\n\nAs released.\n`;

function replaceOnce(spec: string, from: string, to: string): string {
  assert.equal(spec.split(from).length, 2, `"${from}" once in the spec`);
  return spec.replace(from, to);
}

const removeHasPassword = (spec: string) =>
  replaceOnce(
    replaceOnce(spec, "      required: [interface, vhid, addresses, protocol, mode, description, nosync, hasPassword]\n", '      required: [interface, vhid, addresses, protocol, mode, description, nosync]\n'),
    '        hasPassword: { type: boolean, description: Whether a password is set (the password itself is never returned). }\n',
    '',
  );

test('a description cut by an unquoted comma fails, naming the stray key', (t) => {
  const r = lint(t, (s) => replaceOnce(s, "description: 'Why the last push failed, in plain words.' }", 'description: Why the last push failed, in plain words. }'));
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /Property `in plain words\.` is not expected here/);
  assert.match(r.output, /struct/);
});

test('a field removed from a response schema fails as a breaking change', (t) => {
  const r = lint(t, (s) => at('0.3.0')(removeHasPassword(s)), changelogFor('0.3.0', 'hasPassword is gone.'));
  assert.equal(r.status, 1, r.output);
  assert.match(r.output, /breaking changes? against the released .* without a new major version/);
  assert.match(r.output, /hasPassword/);
});

test('a new required request field fails as a breaking change', async () => {
  const edit = (s: string) => {
    const at = s.indexOf('    VipReplace:');
    const i = s.indexOf('      required: [addresses]\n', at);
    assert.ok(at > 0 && i > at);
    return s.slice(0, i) + '      required: [addresses, description]\n' + s.slice(i + '      required: [addresses]\n'.length);
  };
  const { problems } = await compat((s) => at('0.3.0')(edit(s)), changelogFor('0.3.0', 'description is required.'));
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0], /breaking changes? against the released/);
  assert.match(problems[0], /PUT \/v1\/vips\/\{interface\}\/\{vhid\} request.*description/);
});

test('an addition without a new version fails; with a new minor version and its changelog section it passes', async () => {
  const add = (s: string) => replaceOnce(s, "        vrrpInterval: { $ref: '#/components/schemas/VrrpInterval' }\n    VipReplace:", "        vrrpInterval: { $ref: '#/components/schemas/VrrpInterval' }\n        tag: { type: string, description: A free-form tag. }\n    VipReplace:");
  const same = await compat(add, changelogFor(VERSION, 'x'));
  assert.match(same.problems.join('\n'), /info\.version was not raised/);
  const minor = await compat((s) => at('0.3.0')(add(s)), changelogFor('0.3.0', 'VipCreate takes a tag.'));
  assert.deepEqual(minor.problems, []);
  const untold = await compat((s) => at('0.3.0')(add(s)), changelogFor('0.2.9', 'x'));
  assert.match(untold.problems.join('\n'), /no section "## 0\.3\.0"/);
});

test('a breaking change passes with a new major version whose changelog says what broke and how to migrate', async () => {
  const silent = await compat((s) => at('1.0.0')(removeHasPassword(s)), changelogFor('1.0.0', 'Cleanups.'));
  assert.match(silent.problems.join('\n'), /must say what broke/);
  const told = await compat((s) => at('1.0.0')(removeHasPassword(s)), changelogFor('1.0.0', '### Breaking\n\n`Vip.hasPassword` is gone.\n\n### Migration\n\nRead `GET /v1/config`.'));
  assert.deepEqual(told.problems, []);
  assert.ok(told.breaking.length > 0);
});
