/**
 * The package as an operator installs it: `npm pack` gives a tarball with dist/ built, which
 * `npm install -g` puts in a prefix with `carpd` and `carpctl` on its bin/ and the rc.d script
 * and newsyslog line beside them. Production dependencies only: no pino-pretty, no development
 * tool. The install takes the registry's packages from npm's cache when it has them (npm ci
 * filled it) and runs no install script (`--ignore-scripts`: koffi's prebuilt binary comes in
 * its platform package; the only other script, @scarf/scarf's, is analytics).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** dist/ exists and no source is newer than it (tsc writes every output file on each build). */
function builtFresh(): boolean {
  const built = path.join(ROOT, 'dist/daemon/main.js');
  if (!existsSync(built)) return false;
  const at = statSync(built).mtimeMs;
  const newer = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? newer(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs > at));
  return !newer(path.join(ROOT, 'src'));
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

test('npm pack gives a tarball that installs with npm install -g: carpd --help, carpctl --version, rc.d and newsyslog in place, production dependencies only', { timeout: 600_000 }, (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-install-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The suite builds dist/ before the tests (scripts/test.sh); on its own, or after an edit, build it here.
  if (!builtFresh()) run('npx', ['tsc', '-p', 'tsconfig.json']);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };

  const packed = run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir]);
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  assert.equal(info.filename, `carpd-${pkg.version}.tgz`);
  const files = new Set(info.files.map((f) => f.path));
  for (const f of ['bin/carpd.js', 'bin/carpctl.js', 'dist/daemon/main.js', 'dist/cli/main.js', 'dist/api/ui.js', 'openapi/carpd.json', 'rc.d/carpd', 'etc/newsyslog.conf.d/carpd.conf', 'ui/index.html', 'ui/app.js', 'ui/style.css', 'README.md']) {
    assert.ok(files.has(f), `${f} is not in the tarball`);
  }
  assert.ok(![...files].some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/')), 'sources, tests and benches stay out of the tarball');

  const prefix = path.join(dir, 'prefix');
  run(NPM, ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, info.filename)], { env: { SCARF_ANALYTICS: 'false' } });
  const installed = path.join(prefix, 'lib', 'node_modules', 'carpd');
  assert.ok(existsSync(path.join(installed, 'rc.d', 'carpd')));
  assert.ok(existsSync(path.join(installed, 'etc', 'newsyslog.conf.d', 'carpd.conf')));

  const carpd = run(path.join(prefix, 'bin', 'carpd'), ['--help']);
  assert.match(carpd.stdout + carpd.stderr, /^usage: carpd /m);
  const carpctl = run(path.join(prefix, 'bin', 'carpctl'), ['--version']);
  assert.equal(carpctl.stdout.trim(), `carpctl ${pkg.version}`);

  // What came along: every production dependency, no development one.
  const modules = path.join(installed, 'node_modules');
  const top = readdirSync(modules).flatMap((n) => (n.startsWith('@') ? readdirSync(path.join(modules, n)).map((m) => `${n}/${m}`) : n.startsWith('.') ? [] : [n]));
  for (const d of Object.keys(pkg.dependencies)) assert.ok(top.includes(d), `${d} was not installed`);
  for (const d of Object.keys(pkg.devDependencies)) assert.ok(!top.includes(d), `the development dependency ${d} was installed`);
});
