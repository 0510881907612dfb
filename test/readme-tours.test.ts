/**
 * The README's API tour and CLI tour, run as a reader runs them: the first `sh` block under
 * each heading, taken from README.md itself, run in order with `sh` against a fresh carpd
 * started as the Set-up starts it (127.0.0.1:8080, the embedded `sim` backend), in a temporary
 * directory that stands in for the checkout's root (`bin` is the checkout's, `var` the
 * daemon's state dir, so `cat var/admin.token` and `./bin/carpctl.js` work as written).
 *
 * Two things differ from a reader's checkout, and only these: the state dir is the temporary
 * `var` rather than the checkout's own (named with `--state-dir` for carpd and
 * `CARPD_STATE_DIR` for carpctl, as the checkout's `./var` default would be the real one), and
 * when 127.0.0.1:8080 is taken on the machine running the test, carpd listens on a free port,
 * which replaces `127.0.0.1:8080` in the tours' text (and `CARPD_URL` is set for carpctl).
 *
 * What the tours promise is checked:
 *
 * - every command exits 0, unless a `# -> exit N` comment (on its line, or the comment line
 *   right after it) says otherwise;
 * - every curl answers 2xx, unless a `# -> NNN` comment says which status; `Location: X` and
 *   `ETag: "X"` in that comment must be the response's. `304 until something changes` also
 *   accepts a 200 whose ETag is not the one polled with (the status may change in between).
 *
 * curl is a shell function in the tours' shell that records each response's headers
 * (`curl -D`) and runs the real curl, so the output is what a reader sees; after each command
 * line its exit status is recorded. Whatever a tour needs (the password file, desired.json)
 * it makes itself.
 *
 * The Health tracking section's block runs the same way, after the CLI tour.
 *
 * Only the first block of each section is a tour: the CLI tour section's HTTPS example starts a
 * second carpd "in another terminal" and is not run here (test/api-tls.test.ts covers carpctl
 * against carpd --tls).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { cleanEnv, REPO_ROOT, spawnDaemon, startDaemon, type DaemonProcess } from './helpers/daemon.js';

const README = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

/** The first ```sh block after `## heading`, before the next `## ` heading. */
function tourBlock(markdown: string, heading: string): string {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  assert.ok(start >= 0, `README.md has no "## ${heading}" section`);
  let open = -1;
  for (let i = start + 1; i < lines.length; i++) {
    if (lines[i]!.startsWith('## ')) break;
    if (open < 0 && lines[i] === '```sh') open = i;
    else if (open >= 0 && lines[i] === '```') return lines.slice(open + 1, i).join('\n');
  }
  assert.fail(`the "${heading}" section of README.md has no complete \`\`\`sh block`);
}

interface Step {
  /** The command as written, with its continuation lines. */
  text: string;
  /** The text after `# -> ` that says what it answers, if the tour says. */
  expect?: string;
}

/** The commands of a block, each with the promise its `# ->` comment makes. */
function tourSteps(block: string): Step[] {
  const steps: Step[] = [];
  const lines = block.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let text = lines[i]!;
    while (text.endsWith('\\') && i + 1 < lines.length) text += '\n' + lines[++i]!;
    const trimmed = text.trim();
    if (trimmed === '') continue;
    if (trimmed.startsWith('#')) {
      const m = /^#\s*->\s*(.*)$/.exec(trimmed);
      const last = steps.at(-1);
      if (m && last && last.expect === undefined) last.expect = m[1]!;
      continue;
    }
    const inline = /\s#\s*->\s*(.*)$/.exec(text);
    steps.push(inline ? { text, expect: inline[1]! } : { text });
  }
  return steps;
}

interface Promised {
  exit: number;
  status?: number;
  untilChange: boolean;
  location?: string;
  etag?: string;
}

function promised(expect: string | undefined): Promised {
  const e = expect ?? '';
  const exit = /^exit (\d+)/.exec(e);
  const status = /^(\d{3})\b/.exec(e);
  const location = /\bLocation: ([^\s,]+)/.exec(e);
  const etag = /\bETag: ("[^"]*")/.exec(e);
  return {
    exit: exit ? Number(exit[1]) : 0,
    ...(status ? { status: Number(status[1]) } : {}),
    untilChange: /until something changes/.test(e),
    ...(location ? { location: location[1]! } : {}),
    ...(etag ? { etag: etag[1]! } : {}),
  };
}

/** The status line and headers of the last response in a `curl -D` file (a 100 Continue may come first). */
function response(file: string): { status: number; headers: Map<string, string> } {
  const text = readFileSync(file, 'utf8').replace(/\r/g, '');
  const blocks = text.split(/\n\n/).filter((b) => b.startsWith('HTTP/'));
  const last = blocks.at(-1);
  assert.ok(last, `no response in ${file}`);
  const [statusLine, ...rest] = last.split('\n');
  const headers = new Map<string, string>();
  for (const l of rest) {
    const c = l.indexOf(':');
    if (c > 0) headers.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
  }
  return { status: Number(statusLine!.split(' ')[1]), headers };
}

const PRELUDE = `
curl() {
  __n=$(( $(cat "$__TOUR/curls") + 1 )); echo "$__n" > "$__TOUR/curls"
  command curl -D "$__TOUR/headers.$__n" "$@"
}
__step() { echo "$1 $2 $(cat "$__TOUR/curls")" >> "$__TOUR/steps"; }
`;

/** The block with its status recorded after each command. */
function instrumented(steps: Step[]): string {
  return PRELUDE + steps.map((s, i) => `${s.text}\n__step ${i} $?\n`).join('');
}

function runSh(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Runs one tour and checks every step against what the tour says it answers. */
async function runTour(name: string, steps: Step[], dir: string, port: number, env: NodeJS.ProcessEnv): Promise<void> {
  const work = path.join(dir, `.${name.replace(/\W/g, '-')}`);
  rmSync(work, { recursive: true, force: true });
  assert.equal((await runSh(`mkdir "${work}" && echo 0 > "${work}/curls"`, dir, env)).code, 0);
  let script = instrumented(steps);
  if (port !== 8080) script = script.replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
  const { out } = await runSh(script, dir, { ...env, __TOUR: work });
  const recorded = existsSync(path.join(work, 'steps')) ? readFileSync(path.join(work, 'steps'), 'utf8').trim().split('\n') : [];
  const ran = new Map(recorded.map((l) => {
    const [i, rc, curls] = l.split(' ').map(Number);
    return [i!, { rc: rc!, curls: curls! }];
  }));
  let curlsBefore = 0;
  let lastEtag: string | undefined;
  for (const [i, step] of steps.entries()) {
    const where = `${name}, command ${i + 1}:\n  ${step.text}\n${step.expect ? `  promised: ${step.expect}\n` : ''}--- output of the tour ---\n${out}`;
    const r = ran.get(i);
    assert.ok(r, `did not run: ${where}`);
    const p = promised(step.expect);
    assert.equal(r.rc, p.exit, `exit status ${r.rc}, not ${p.exit}: ${where}`);
    if (r.curls > curlsBefore) {
      const res = response(path.join(work, `headers.${r.curls}`));
      const etag = res.headers.get('etag');
      if (p.status === undefined) {
        assert.ok(res.status >= 200 && res.status < 300, `HTTP ${res.status} where the tour promises success: ${where}`);
      } else if (p.untilChange && res.status === 200) {
        assert.notEqual(etag, lastEtag, `200 with the ETag polled with: ${where}`);
      } else {
        assert.equal(res.status, p.status, `HTTP ${res.status}, not ${p.status}: ${where}`);
      }
      if (p.location !== undefined) assert.equal(res.headers.get('location'), p.location, `Location: ${where}`);
      if (p.etag !== undefined) assert.equal(etag, p.etag, `ETag: ${where}`);
      lastEtag = etag;
    } else {
      assert.ok(p.status === undefined && p.location === undefined && p.etag === undefined, `an HTTP promise on a command that made no curl request: ${where}`);
    }
    curlsBefore = r.curls;
  }
}

test('the README tours parse into commands and promises', () => {
  const api = tourSteps(tourBlock(README, 'API tour'));
  const cli = tourSteps(tourBlock(README, 'CLI tour'));
  assert.ok(api.filter((s) => /\bcurl\b/.test(s.text)).length >= 10, 'API tour: curl commands');
  assert.ok(api.filter((s) => s.expect !== undefined).length >= 4, 'API tour: promised answers');
  assert.ok(cli.filter((s) => s.text.startsWith('./bin/carpctl.js')).length >= 20, 'CLI tour: carpctl commands');
  assert.ok(!cli.some((s) => /npm run/.test(s.text)), 'the CLI tour runs carpctl without npm');
  // the parser itself
  const s = tourSteps('a \\\n  b\n# -> 201, Location: /x, ETag: "2"\nc   # -> exit 1 until later\n# note\nd');
  assert.deepEqual(s, [{ text: 'a \\\n  b', expect: '201, Location: /x, ETag: "2"' }, { text: 'c   # -> exit 1 until later', expect: 'exit 1 until later' }, { text: 'd' }]);
  assert.deepEqual(promised('201, Location: /x, ETag: "2"'), { exit: 0, status: 201, untilChange: false, location: '/x', etag: '"2"' });
  assert.deepEqual(promised('200, ETag: "3" (the same call again: 412)'), { exit: 0, status: 200, untilChange: false, etag: '"3"' });
});

test('the README API tour and CLI tour, followed top to bottom, do what they say', async (t) => {
  for (const tool of ['curl', 'jq']) {
    const { code } = await runSh(`command -v ${tool}`, tmpdir(), process.env);
    assert.equal(code, 0, `the tours use ${tool}; install it (.ci/run does)`);
  }
  assert.ok(existsSync(path.join(REPO_ROOT, 'dist/cli/main.js')), 'the CLI tour runs ./bin/carpctl.js, which needs dist/: npm run build');

  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-tours-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(path.join(REPO_ROOT, 'bin'), path.join(dir, 'bin'));
  const stateDir = path.join(dir, 'var');
  const args = (listen: string) => ['--listen', listen, '--state-dir', stateDir, '--backend', 'sim'];

  // As the Set-up starts it; a free port instead only when 8080 is taken here.
  let port = 8080;
  const first = spawnDaemon(t, args('127.0.0.1:8080'));
  const started = await first.waitForLog((l) => l.event === 'listening' || l.event === 'start.failed', 'listening or start.failed line');
  let daemon: DaemonProcess = first;
  if (started.event === 'start.failed') {
    assert.match(String(started.err), /in use/, `carpd did not start\n${first.output}`);
    first.kill('SIGKILL');
    await first.exited;
    rmSync(stateDir, { recursive: true, force: true });
    const other = await startDaemon(t, args('127.0.0.1:0'));
    ({ port } = other);
    daemon = other;
  }
  const env = cleanEnv({ CARPD_STATE_DIR: stateDir, ...(port === 8080 ? {} : { CARPD_URL: `http://127.0.0.1:${port}` }) });

  await runTour('API tour', tourSteps(tourBlock(README, 'API tour')), dir, port, env);
  await runTour('CLI tour', tourSteps(tourBlock(README, 'CLI tour')), dir, port, env);
  await runTour('Health tracking', tourSteps(tourBlock(README, 'Health tracking')), dir, port, env);
  await runTour('Administrative demotion adjustment', tourSteps(tourBlock(README, 'Administrative demotion adjustment')), dir, port, env);
  assert.ok(daemon.running, `carpd stopped during the tours\n${daemon.output}`);
});
