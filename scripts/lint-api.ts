/**
 * npm run lint:api: the spec is lint-clean (Redocly CLI with openapi/redocly.yaml) and is no
 * unannounced change of the last release (openapi/released/, see scripts/api-compat.ts).
 *
 *   node --import tsx scripts/lint-api.ts [--spec FILE] [--released DIR] [--changelog FILE]
 *
 * Exits 1 naming every problem. Nothing leaves the machine: Redocly's telemetry is off (here,
 * in the npm script and in its config) and its update check is suppressed.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { acceptedFindings, compatibilityProblems, loadSpec, parseVersion } from './api-compat.js';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { values } = parseArgs({
  options: {
    spec: { type: 'string', default: path.join(root, 'openapi/carpd.yaml') },
    released: { type: 'string', default: path.join(root, 'openapi/released') },
    changelog: { type: 'string', default: path.join(root, 'docs/api-changelog.md') },
  },
});
const spec = path.resolve(values.spec);
let failed = false;

// 1. Lint.
const redocly = spawnSync(path.join(root, 'node_modules/.bin/redocly'), ['lint', spec, '--config', path.join(root, 'openapi/redocly.yaml'), '--format=stylish'], {
  stdio: 'inherit',
  env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
});
if (redocly.status !== 0) {
  console.error(`lint:api: redocly lint found errors in ${path.relative(process.cwd(), spec)} (exit ${redocly.status ?? redocly.signal})`);
  failed = true;
}

// 2. Compatibility with the last release: the highest version kept in the released directory.
const releases = readdirSync(values.released)
  .map((f) => /^carpd-(\d+\.\d+\.\d+)\.yaml$/.exec(f))
  .filter((m): m is RegExpExecArray => m !== null)
  .map((m) => ({ file: path.join(values.released, m[0]), version: parseVersion(m[1]) }))
  .sort((a, b) => b.version.major - a.version.major || b.version.minor - a.version.minor || b.version.patch - a.version.patch);
if (releases.length === 0) {
  console.error(`lint:api: no released spec (carpd-X.Y.Z.yaml) in ${values.released}`);
  failed = true;
} else {
  const released = loadSpec(releases[0].file);
  const current = loadSpec(spec);
  const accepted = acceptedFindings(path.join(values.released, 'accepted-findings.yaml'), released.info.version);
  const { problems, breaking } = await compatibilityProblems({ released, current, accepted, changelog: readFileSync(values.changelog, 'utf8'), changelogPath: path.relative(process.cwd(), values.changelog) });
  for (const p of problems) console.error(`lint:api: ${p}`);
  if (problems.length > 0) failed = true;
  else {
    const note = breaking.length > 0 ? `, with ${breaking.length} breaking change(s) announced in its changelog` : '';
    console.log(`lint:api: ${current.info.version} is compatible with the released ${released.info.version}${note}`);
  }
}

process.exit(failed ? 1 : 0);
