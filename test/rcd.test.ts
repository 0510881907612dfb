/**
 * rc.d/carpd, the FreeBSD service script. Three layers:
 *  - shellcheck, and its rc.subr header and variables read statically;
 *  - the script run by sh against a stand-in rc.subr (written below) that follows
 *    run_rc_command's order of work but prints the command it would start: this pins the
 *    daemon(8) command line for given rc.conf settings, the start checks, reload and status;
 *  - on FreeBSD as root, the unmodified script under the real rc.subr and daemon(8), with carpd
 *    on the memory backend: start, status, reload, restart after a crash, stop.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { platform, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SCRIPT = path.join(ROOT, 'rc.d/carpd');
const TEXT = readFileSync(SCRIPT, 'utf8');
const LINES = TEXT.split('\n');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** The words of rcorder's header line `# KEY: ...`, or undefined if the line is missing. */
function header(key: string): string[] | undefined {
  const line = LINES.find((l) => l.startsWith(`# ${key}:`));
  return line?.slice(`# ${key}:`.length).trim().split(/\s+/);
}

/** The value of a top-level `var="value"` assignment. */
function assignment(name: string): string | undefined {
  return new RegExp(`^${name}="([^"]*)"$`, 'm').exec(TEXT)?.[1];
}

test('shellcheck -s sh finds nothing in rc.d/carpd', (t) => {
  const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
  if (probe.error) return t.skip('shellcheck is not installed (apt-get install shellcheck; CI installs it)');
  const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
  assert.equal(r.status, 0, `shellcheck:\n${r.stdout}${r.stderr}`);
  // Only the rc.subr idioms may be silenced: its file (SC1091), the variables it reads (SC2034)
  // and the one it sets (SC2154).
  const disabled = [...TEXT.matchAll(/shellcheck disable=([A-Z0-9,]+)/g)].flatMap((m) => m[1].split(','));
  assert.ok(disabled.length > 0);
  assert.deepEqual([...new Set(disabled)].filter((c) => !['SC1091', 'SC2034', 'SC2154'].includes(c)), []);
});

test('rc.d/carpd has the rc.subr header and variables rcorder and rc.subr expect', () => {
  assert.equal(LINES[0], '#!/bin/sh');
  assert.ok(statSync(SCRIPT).mode & 0o111, 'rc.d/carpd must be executable');
  assert.deepEqual(header('PROVIDE'), ['carpd']);
  const require = header('REQUIRE') ?? [];
  for (const dep of ['NETWORKING', 'pf', 'pfsync', 'devd']) assert.ok(require.includes(dep), `REQUIRE lacks ${dep}: ${require.join(' ')}`);
  assert.ok((header('KEYWORD') ?? []).includes('shutdown'), 'KEYWORD: shutdown, so rc.shutdown stops carpd');

  const at = (re: RegExp) => LINES.findIndex((l) => re.test(l));
  const subr = at(/^\. \/etc\/rc\.subr$/);
  const load = at(/^load_rc_config "\$name"$/);
  const firstDefault = at(/^: "\$\{carpd_/);
  const run = at(/^run_rc_command "\$1"$/);
  assert.ok(subr > 0 && subr < load, 'rc.subr is sourced before load_rc_config');
  assert.ok(load < firstDefault, 'defaults are set after load_rc_config, so rc.conf wins');
  assert.equal(LINES.filter((l) => l.trim() !== '').at(-1), 'run_rc_command "$1"');
  assert.ok(run > firstDefault);

  assert.equal(assignment('name'), 'carpd');
  assert.equal(assignment('rcvar'), 'carpd_enable');
  assert.equal(assignment('command'), '/usr/sbin/daemon');
  // rc.subr checks the supervisor, whose ps title is "daemon: carpd[pid]"; a
  // command_interpreter would make it look for "node <script>" instead.
  assert.match(assignment('procname') ?? '', /^(\/usr\/sbin\/)?daemon$/);
  assert.doesNotMatch(TEXT, /^\s*command_interpreter=/m);
  assert.equal(assignment('pidfile'), '${carpd_pidfile}');
  const modules = (assignment('required_modules') ?? '').split(' ');
  for (const m of ['carp', 'pf', 'pfsync']) assert.ok(modules.includes(m), `required_modules lacks ${m}`);
  assert.ok(modules.indexOf('pf') < modules.indexOf('pfsync'), 'pf before pfsync, which depends on it');
  assert.deepEqual((assignment('extra_commands') ?? '').split(' '), ['reload']);

  const defaults = Object.fromEntries([...TEXT.matchAll(/^: "\$\{(carpd_\w+):=([^}]*)\}"$/gm)].map((m) => [m[1], m[2]]));
  assert.deepEqual(defaults, {
    carpd_enable: 'NO',
    carpd_flags: '',
    carpd_listen: '127.0.0.1:8080',
    carpd_metrics_listen: '',
    carpd_state_dir: '/var/db/carpd',
    carpd_config: '/usr/local/etc/carpd.yaml',
    carpd_log: '/var/log/carpd.log',
    carpd_syslog: 'NO',
    carpd_syslog_facility: 'daemon',
    carpd_syslog_priority: 'info',
    carpd_syslog_tag: 'carpd',
    carpd_user: 'root',
    carpd_node: '/usr/local/bin/node',
    carpd_main: '/usr/local/lib/node_modules/carpd/dist/daemon/main.js',
    carpd_pidfile: '/var/run/carpd.pid',
    carpd_child_pidfile: '/var/run/carpd.child.pid',
  });
  // Every default is documented in the script's own rc.conf list.
  for (const v of Object.keys(defaults)) assert.match(TEXT, new RegExp(`^# ${v} \\(`, 'm'), `${v} is not described in the header`);

  // reload signals the child's pidfile (-p), never the supervisor's.
  const reload = /^carpd_reload\(\)\n\{\n([\s\S]*?)\n\}/m.exec(TEXT)?.[1] ?? '';
  assert.match(reload, /check_pidfile "\$\{carpd_child_pidfile\}"/);
  assert.match(reload, /kill -HUP /);
  assert.doesNotMatch(reload, /\$\{?pidfile|carpd_pidfile/);
  assert.equal(assignment('reload_cmd'), 'carpd_reload');
});

/**
 * A stand-in for /etc/rc.subr. run_rc_command keeps FreeBSD's order of work (rcvar check,
 * rc_flags from $flags or ${name}_flags, ${name}_user dropped when it is the caller, pid from
 * pidfile matched against procname, precmd in the same shell, then the default method or
 * ${cmd}_cmd), but start prints what it would load and run instead of doing it. Written with
 * %{ for the shell's ${, which a template literal would take for its own.
 */
const STUB_RC_SUBR = String.raw`
load_rc_config() { . "$RC_CONF"; }
checkyesno() {
	eval _value=\$$1
	case $_value in
	[Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;;
	*) return 1 ;;
	esac
}
warn() { echo "$0: WARNING: $*" >&2; }
err() { _code=$1; shift; echo "$0: ERROR: $*" >&2; exit "$_code"; }
info() { :; }
debug() { :; }
check_pidfile() {
	[ -f "$1" ] || return 0
	read -r _pid _junk < "$1"
	[ -n "$_pid" ] || return 0
	_args=$(ps -o command= -p "$_pid" 2>/dev/null) || return 0
	_arg0=%{_args%% *}
	_bn=%{2##*/}
	case "$_arg0" in
	"$2"|"$_bn"|"$_bn:"|"($_bn)"|"[$_bn]") echo "$_pid" ;;
	esac
}
run_rc_command() {
	rc_arg=$1
	case " start stop restart status $extra_commands " in
	*" $rc_arg "*) ;;
	*) echo "$0: unknown directive '$rc_arg'." >&2; exit 1 ;;
	esac
	if [ -n "$flags" ]; then rc_flags=$flags; else eval rc_flags=\$%{name}_flags; fi
	eval _user=\$%{name}_user
	if [ -n "$_user" ] && [ "$_user" = "$(id -un)" ]; then unset _user; fi
	_procname=%{procname:-$command}
	rc_pid=$(check_pidfile "$pidfile" "$_procname")
	if [ "$rc_arg" != status ] && ! checkyesno "$rcvar"; then
		echo "Cannot '$rc_arg' $name. Set $rcvar to YES in /etc/rc.conf."
		return 0
	fi
	eval _cmd=\$%{rc_arg}_cmd _precmd=\$%{rc_arg}_precmd _postcmd=\$%{rc_arg}_postcmd
	if [ -n "$_cmd" ]; then
		if [ -n "$_precmd" ]; then eval "$_precmd" || return 1; fi
		eval "$_cmd" || return 1
		if [ -n "$_postcmd" ]; then eval "$_postcmd"; fi
		return 0
	fi
	case $rc_arg in
	start)
		if [ -n "$_precmd" ] && ! eval "$_precmd"; then
			warn "failed precmd routine for $name"
			return 1
		fi
		for _m in $required_modules; do echo "load: $_m"; done
		echo "su: $_user"
		echo "run: $command $rc_flags $command_args"
		;;
	status)
		if [ -z "$rc_pid" ]; then echo "$name is not running."; return 1; fi
		echo "$name is running as pid $rc_pid."
		if [ -n "$_postcmd" ]; then eval "$_postcmd"; fi
		;;
	stop)
		echo "kill -TERM $rc_pid"
		;;
	esac
}
`.replaceAll('%{', '${');

/** Records install(1)'s arguments and does what -d -m asks, so no test needs root to chown. */
const FAKE_INSTALL = `#!/bin/sh
echo "$@" >> "$INSTALL_LOG"
mode=; dir=
while [ $# -gt 0 ]; do
	case $1 in
	-d) ;;
	-m) mode=$2; shift ;;
	-o|-g) shift ;;
	*) dir=$1 ;;
	esac
	shift
done
mkdir -p "$dir" && chmod "$mode" "$dir"
`;

interface Sandbox {
  dir: string;
  node: string;
  main: string;
  stateDir: string;
  run(arg: string, conf: Record<string, string>, env?: Record<string, string>): { status: number | null; stdout: string; stderr: string };
  installs(): string[];
}

function sandbox(t: { after(fn: () => void): void }): Sandbox {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-rcd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'install'), FAKE_INSTALL, { mode: 0o755 });
  writeFileSync(path.join(dir, 'rc.subr'), STUB_RC_SUBR);
  const parts = TEXT.split('\n. /etc/rc.subr\n');
  assert.equal(parts.length, 2, 'rc.d/carpd sources /etc/rc.subr exactly once');
  const script = path.join(dir, 'carpd');
  writeFileSync(script, parts.join(`\n. ${path.join(dir, 'rc.subr')}\n`));
  const main = path.join(dir, 'main.js');
  writeFileSync(main, '');
  const installLog = path.join(dir, 'install.log');
  return {
    dir,
    node: process.execPath,
    main,
    stateDir: path.join(dir, 'db', 'carpd'),
    run(arg, conf, env = {}) {
      const rcConf = path.join(dir, 'rc.conf');
      writeFileSync(rcConf, Object.entries(conf).map(([k, v]) => `${k}="${v}"\n`).join(''));
      const r = spawnSync('sh', [script, arg], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, RC_CONF: rcConf, INSTALL_LOG: installLog, ...env },
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    installs: () => (existsSync(installLog) ? readFileSync(installLog, 'utf8').trim().split('\n') : []),
  };
}

/** The words of the command the stand-in rc.subr would have run. */
function runLine(stdout: string): string[] {
  const line = stdout.split('\n').find((l) => l.startsWith('run: '));
  assert.ok(line, `no command was started:\n${stdout}`);
  return line.slice('run: '.length).trim().split(/\s+/);
}

test('start runs carpd under daemon(8) with the default rc.conf settings', (t) => {
  const s = sandbox(t);
  const r = s.run('start', { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.deepEqual(runLine(r.stdout), [
    '/usr/sbin/daemon',
    ...['-c', '-f', '-r', '-R', '2'],
    ...['-P', '/var/run/carpd.pid', '-p', '/var/run/carpd.child.pid'],
    ...['-t', 'carpd', '-H', '-o', '/var/log/carpd.log'],
    s.node,
    '--max-semi-space-size=2',
    s.main,
    ...['--listen', '127.0.0.1:8080', '--state-dir', s.stateDir],
  ]);
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('load: ')), ['load: carp', 'load: pf', 'load: pfsync']);
  assert.deepEqual(s.installs(), [`-d -m 0700 -o root ${s.stateDir}`]);
  assert.equal(statSync(s.stateDir).mode & 0o777, 0o700);
});

test('start is refused unless carpd_enable is YES', (t) => {
  const s = sandbox(t);
  const r = s.run('start', { carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Cannot 'start' carpd\. Set carpd_enable to YES/);
  assert.doesNotMatch(r.stdout, /^run: /m);
});

test('carpd_listen, carpd_metrics_listen, carpd_config and carpd_flags go to carpd, after its entry point', (t) => {
  const s = sandbox(t);
  const config = path.join(s.dir, 'carpd.yaml');
  writeFileSync(config, 'carp:\n  preempt: true\n');
  const log = path.join(s.dir, 'carpd.log');
  const r = s.run('start', {
    carpd_enable: 'YES',
    carpd_node: s.node,
    carpd_main: s.main,
    carpd_state_dir: s.stateDir,
    carpd_listen: '[::1]:9090',
    carpd_metrics_listen: '192.0.2.1:9109',
    carpd_config: config,
    carpd_flags: '--log-level debug --backend memory',
    carpd_log: log,
    carpd_pidfile: path.join(s.dir, 'sup.pid'),
    carpd_child_pidfile: path.join(s.dir, 'child.pid'),
  });
  assert.equal(r.status, 0, r.stderr);
  const words = runLine(r.stdout);
  const nodeAt = words.indexOf(s.node);
  assert.deepEqual(words.slice(0, nodeAt), [
    '/usr/sbin/daemon',
    ...['-c', '-f', '-r', '-R', '2'],
    ...['-P', path.join(s.dir, 'sup.pid'), '-p', path.join(s.dir, 'child.pid')],
    ...['-t', 'carpd', '-H', '-o', log],
  ]);
  assert.deepEqual(words.slice(nodeAt + 1), [
    '--max-semi-space-size=2',
    s.main,
    ...['--listen', '[::1]:9090', '--state-dir', s.stateDir, '--metrics-listen', '192.0.2.1:9109', '--config', config],
    ...['--log-level', 'debug', '--backend', 'memory'],
  ]);
});

test('carpd_node_flags go to node, before carpd\'s entry point; set empty, node gets none', (t) => {
  const s = sandbox(t);
  const base = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir };
  const custom = runLine(s.run('start', { ...base, carpd_node_flags: '--max-semi-space-size=8 --stack-size=2000' }).stdout);
  assert.deepEqual(custom.slice(custom.indexOf(s.node) + 1, custom.indexOf(s.main)), ['--max-semi-space-size=8', '--stack-size=2000']);
  const none = runLine(s.run('start', { ...base, carpd_node_flags: '' }).stdout);
  assert.equal(none.indexOf(s.main), none.indexOf(s.node) + 1, none.join(' '));
});

test('carpd_syslog sends carpd\'s output to syslog through daemon(8), with its facility, priority and tag, instead of the log file', (t) => {
  const s = sandbox(t);
  const base = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir, carpd_syslog: 'YES' };
  const words = runLine(s.run('start', base).stdout);
  const nodeAt = words.indexOf(s.node);
  assert.deepEqual(words.slice(nodeAt - 7, nodeAt), ['-S', '-l', 'daemon', '-s', 'info', '-T', 'carpd']);
  assert.ok(!words.includes('-o') && !words.includes('-H'), words.join(' '));
  const custom = runLine(s.run('start', { ...base, carpd_syslog_facility: 'local3', carpd_syslog_priority: 'notice', carpd_syslog_tag: 'carpd-fw1' }).stdout);
  const at = custom.indexOf(s.node);
  assert.deepEqual(custom.slice(at - 7, at), ['-S', '-l', 'local3', '-s', 'notice', '-T', 'carpd-fw1']);
});

test('the shipped newsyslog.conf line rotates the default log and signals the supervisor, which reopens it (-H)', () => {
  const conf = readFileSync(path.join(ROOT, 'etc/newsyslog.conf.d/carpd.conf'), 'utf8');
  const lines = conf.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  assert.equal(lines.length, 1);
  const [file, owner, mode, count, size, when, flags, pidfile, ...rest] = lines[0].trim().split(/\s+/);
  assert.equal(file, '/var/log/carpd.log');
  assert.equal(owner, 'root:wheel');
  assert.match(mode, /^[0-7]{3}$/);
  assert.ok(Number(count) > 0 && Number(size) > 0, lines[0]);
  assert.equal(when, '*');
  assert.match(flags, /C/, 'created if missing');
  assert.equal(pidfile, '/var/run/carpd.pid', "the supervisor's pidfile (carpd_pidfile), not carpd's");
  assert.deepEqual(rest, [], 'the default signal, SIGHUP');
  assert.match(TEXT, /-H -o \$\{carpd_log\}/);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('etc'), 'etc/ is in the package');
});

test('flags in the environment replace carpd_flags, as rc.subr documents', (t) => {
  const s = sandbox(t);
  const conf = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir, carpd_flags: '--log-level debug' };
  const words = runLine(s.run('start', conf, { flags: '--backend memory' }).stdout);
  assert.deepEqual(words.slice(-2), ['--backend', 'memory']);
  assert.ok(!words.includes('debug'));
});

test('a carpd_config that does not exist is left out, with a warning unless it is the default', (t) => {
  const s = sandbox(t);
  const base = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir };
  const missing = path.join(s.dir, 'nope.yaml');
  const r = s.run('start', { ...base, carpd_config: missing });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!runLine(r.stdout).includes('--config'));
  assert.match(r.stderr, new RegExp(`WARNING: ${missing} not found: starting without a bootstrap file`));
  // The default path (/usr/local/etc/carpd.yaml) is optional: no file, no warning.
  const d = s.run('start', base);
  assert.ok(!runLine(d.stdout).includes('--config'));
  assert.equal(d.stderr, '');
});

test('carpd_user other than root becomes daemon(8) -u, and rc.subr does not su(1)', (t) => {
  const s = sandbox(t);
  const r = s.run('start', { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir, carpd_user: 'carpd' });
  assert.equal(r.status, 0, r.stderr);
  const words = runLine(r.stdout);
  const nodeAt = words.indexOf(s.node);
  assert.deepEqual(words.slice(nodeAt - 2, nodeAt), ['-u', 'carpd']);
  assert.ok(r.stdout.split('\n').includes('su: '), `rc.subr would su(1) before daemon(8):\n${r.stdout}`);
  assert.deepEqual(s.installs(), [`-d -m 0700 -o carpd ${s.stateDir}`]);
});

test('start stops with a clear message when node or carpd is missing', (t) => {
  const s = sandbox(t);
  const base = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir };
  const noNode = s.run('start', { ...base, carpd_node: path.join(s.dir, 'no-node') });
  assert.notEqual(noNode.status, 0);
  assert.match(noNode.stderr, /no-node not found: install Node\.js 24 or 22 \(pkg install node24\) or set carpd_node/);
  assert.doesNotMatch(noNode.stdout, /^run: /m);
  const noMain = s.run('start', { ...base, carpd_main: path.join(s.dir, 'no-main.js') });
  assert.notEqual(noMain.status, 0);
  assert.match(noMain.stderr, /no-main\.js not found: install carpd \(npm install -g \.\/carpd-\*\.tgz, see its README\) or set carpd_main/);
  assert.doesNotMatch(noMain.stdout, /^run: /m);
  assert.equal(existsSync(s.stateDir), false, 'nothing is created when start is refused');
});

test('start makes an existing state directory 0700 again', (t) => {
  const s = sandbox(t);
  mkdirSync(s.stateDir, { recursive: true, mode: 0o755 });
  chmodSync(s.stateDir, 0o755);
  const r = s.run('start', { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_state_dir: s.stateDir });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(statSync(s.stateDir).mode & 0o777, 0o700);
});

/** A process that prints "ready", then "HUP" for every SIGHUP and "USR2" for every SIGUSR2; argv0 sets its ps name. */
function signalRecorder(t: { after(fn: () => void): void }, argv0?: string): { proc: ChildProcess; out: () => string } {
  const code =
    "process.on('SIGHUP', () => process.stdout.write('HUP\\n')); process.on('SIGUSR2', () => process.stdout.write('USR2\\n')); setInterval(() => {}, 1000); process.stdout.write('ready\\n');";
  const proc = spawn(process.execPath, ['-e', code], { argv0, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  t.after(() => {
    proc.kill('SIGKILL');
  });
  return { proc, out: () => out };
}

/**
 * Resolves once `r` has printed its answer to a SIGUSR2 sent now, which it prints after
 * anything a SIGHUP sent before it made it print: the rc script's kill(1) has returned before
 * s.run() does, so its signal is already handled or pending when ours is sent, and pending
 * signals are delivered lowest number first (SIGHUP is 1, SIGUSR2 12 or 31), in that order to
 * the recorder's handlers, which write to one stream.
 */
async function signalsSoFar(r: { proc: ChildProcess; out: () => string }): Promise<void> {
  const marks = () => r.out().split('\n').filter((l) => l === 'USR2').length;
  const want = marks() + 1;
  r.proc.kill('SIGUSR2');
  await waitFor('the SIGUSR2 mark', () => marks() >= want);
}

test('reload sends SIGHUP to the child pidfile, status reports both processes', async (t) => {
  const s = sandbox(t);
  const supPid = path.join(s.dir, 'carpd.pid');
  const childPid = path.join(s.dir, 'carpd.child.pid');
  const conf = { carpd_enable: 'YES', carpd_node: s.node, carpd_main: s.main, carpd_pidfile: supPid, carpd_child_pidfile: childPid };
  // Stand-ins for daemon(8)'s supervisor (ps shows it as "daemon: carpd[pid]") and for node.
  const sup = signalRecorder(t, 'daemon:');
  const child = signalRecorder(t);
  await waitFor('both processes', () => sup.out().includes('ready') && child.out().includes('ready'));
  writeFileSync(supPid, `${sup.proc.pid}\n`);
  writeFileSync(childPid, `${child.proc.pid}\n`);

  const status = s.run('status', conf);
  assert.equal(status.status, 0, status.stdout + status.stderr);
  assert.match(status.stdout, new RegExp(`^carpd is running as pid ${sup.proc.pid}\\.$`, 'm'));
  assert.match(status.stdout, new RegExp(`^carpd's node process is pid ${child.proc.pid}\\.$`, 'm'));

  const reload = s.run('reload', conf);
  assert.equal(reload.status, 0, reload.stderr);
  assert.match(reload.stdout, new RegExp(`Reloading carpd \\(pid ${child.proc.pid}\\)`));
  await waitFor('SIGHUP at the child', () => child.out().includes('HUP'));
  await signalsSoFar(sup);
  assert.doesNotMatch(sup.out(), /HUP/, 'the supervisor must not get SIGHUP');

  // A child pidfile naming a process that is not node (a recycled pid) is not signalled.
  writeFileSync(childPid, `${sup.proc.pid}\n`);
  const wrong = s.run('reload', conf);
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /no carpd process found through .*carpd\.child\.pid; is carpd running\?/);
  await signalsSoFar(sup);
  assert.doesNotMatch(sup.out(), /HUP/);

  // A node process at the supervisor's pidfile is not taken for daemon(8).
  writeFileSync(supPid, `${child.proc.pid}\n`);
  const notDaemon = s.run('status', conf);
  assert.equal(notDaemon.status, 1);
  assert.match(notDaemon.stdout, /^carpd is not running\.$/m);
  writeFileSync(supPid, `${sup.proc.pid}\n`);

  child.proc.kill('SIGKILL');
  writeFileSync(childPid, `${child.proc.pid}\n`);
  await waitFor('the child to exit', () => child.proc.exitCode !== null || child.proc.signalCode !== null);
  const gone = s.run('reload', conf);
  assert.notEqual(gone.status, 0);
  assert.match(gone.stderr, /no carpd process found/);
  const half = s.run('status', conf);
  assert.equal(half.status, 0);
  assert.match(half.stdout, /carpd's node process is not running \(daemon\(8\) restarts it/);

  sup.proc.kill('SIGKILL');
  await waitFor('the supervisor to exit', () => sup.proc.exitCode !== null || sup.proc.signalCode !== null);
  const stopped = s.run('status', conf);
  assert.equal(stopped.status, 1);
  assert.match(stopped.stdout, /^carpd is not running\.$/m);
});

// ---------------------------------------------------------------------------------------------
// The real thing: FreeBSD's rc.subr and daemon(8).

function rcConfConfiguresCarpd(): string | undefined {
  for (const f of ['/etc/rc.conf', '/etc/rc.conf.local', '/etc/rc.conf.d/carpd', '/usr/local/etc/rc.conf.d/carpd']) {
    if (existsSync(f) && /^\s*carpd_/m.test(readFileSync(f, 'utf8'))) return f;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

function healthz(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

function pidIn(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const n = Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('on FreeBSD, rc.subr and daemon(8) start, report, reload, restart and stop carpd', { timeout: 120_000 }, async (t) => {
  if (platform() !== 'freebsd') return t.skip('FreeBSD only: needs /etc/rc.subr and daemon(8)');
  if (process.getuid?.() !== 0) return t.skip('FreeBSD only, as root: start loads kernel modules');
  const configured = rcConfConfiguresCarpd();
  if (configured) return t.skip(`FreeBSD only, on a host that does not run carpd: ${configured} sets carpd_ variables`);
  const main = path.join(ROOT, 'dist/daemon/main.js');
  assert.ok(existsSync(main), `${main} is missing: run npm run build`);

  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-rcd-'));
  const port = await freePort();
  const files = {
    supPid: path.join(dir, 'carpd.pid'),
    childPid: path.join(dir, 'carpd.child.pid'),
    log: path.join(dir, 'carpd.log'),
    config: path.join(dir, 'carpd.yaml'),
    state: path.join(dir, 'state'),
  };
  writeFileSync(files.config, 'carp:\n  preempt: true\n');
  // rc.conf does not set these (checked above), so the script's ":=" defaults keep them.
  const env = {
    PATH: '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin',
    carpd_enable: 'YES',
    carpd_node: process.execPath,
    carpd_main: main,
    carpd_state_dir: files.state,
    carpd_listen: `127.0.0.1:${port}`,
    carpd_config: files.config,
    carpd_log: files.log,
    carpd_pidfile: files.supPid,
    carpd_child_pidfile: files.childPid,
    carpd_flags: '--backend memory',
  };
  const rc = (arg: string) => {
    const r = spawnSync('/bin/sh', [SCRIPT, arg], { encoding: 'utf8', env, timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  t.after(() => {
    const pid = pidIn(files.supPid);
    if (pid !== undefined && alive(pid)) rc('stop');
    rmSync(dir, { recursive: true, force: true });
  });
  const logText = () => (existsSync(files.log) ? readFileSync(files.log, 'utf8') : '');

  const start = rc('start');
  assert.equal(start.status, 0, start.out);
  await waitFor('carpd to answer /healthz', async () => ((await healthz(port)) === 200 ? true : undefined), 30_000).catch((e: Error) => {
    throw new Error(`${e.message}\nlog:\n${logText()}`);
  });
  const sup = pidIn(files.supPid);
  const child = pidIn(files.childPid);
  assert.ok(sup !== undefined && child !== undefined && sup !== child);
  assert.equal(statSync(files.state).mode & 0o777, 0o700);
  for (const m of ['carp', 'pf', 'pfsync']) assert.equal(spawnSync('kldstat', ['-q', '-m', m]).status, 0, `${m} is not loaded`);

  const status = rc('status');
  assert.equal(status.status, 0, status.out);
  assert.match(status.out, new RegExp(`carpd is running as pid ${sup}\\.`));
  assert.match(status.out, new RegExp(`carpd's node process is pid ${child}\\.`));

  // reload: the bootstrap file changed, carpd re-reads it; no process is replaced.
  writeFileSync(files.config, 'carp:\n  preempt: false\n');
  const reload = rc('reload');
  assert.equal(reload.status, 0, reload.out);
  await waitFor('the reload in the log', () => /"event":"reload","file":[^}]*"result":"applied"/.test(logText()) || undefined);
  assert.equal(pidIn(files.supPid), sup);
  assert.equal(pidIn(files.childPid), child);
  assert.ok(alive(sup!) && alive(child!));

  // A crashed carpd is restarted by daemon(8).
  process.kill(child!, 'SIGKILL');
  const restarted = await waitFor('a new carpd process', () => {
    const p = pidIn(files.childPid);
    return p !== undefined && p !== child ? p : undefined;
  }, 20_000);
  await waitFor('carpd to answer again', async () => ((await healthz(port)) === 200 ? true : undefined), 30_000);
  assert.equal(pidIn(files.supPid), sup);

  const stop = rc('stop');
  assert.equal(stop.status, 0, stop.out);
  await waitFor('the supervisor to be gone', () => !alive(sup!) || undefined);
  await waitFor('the child to exit', () => !alive(restarted) || undefined);
  assert.equal(existsSync(files.supPid), false, 'daemon(8) removes its pidfile');
  assert.equal(await healthz(port), undefined);
  assert.match(logText(), /"event":"stopped"/);
  const after = rc('status');
  assert.equal(after.status, 1);
  assert.match(after.out, /carpd is not running/);
});
