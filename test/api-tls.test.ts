/**
 * TLS for the management API, with real processes: carpd --tls makes a self-signed
 * certificate (key 0600) and logs its fingerprint; carpctl pinned to it works (and `--json
 * status | jq` reads its output), a wrong or missing pin is refused before anything is sent;
 * --tls-cert/--tls-key take the operator's files and refuse a world-readable key or a
 * certificate of another key; a non-loopback --listen without TLS is refused at start with the
 * fix in the message, and --insecure-http lets it through. Only loopback is bound; the
 * non-loopback addresses (0.0.0.0, 192.0.2.1) are refused before anything is bound.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { parseFlags, UsageError, type DaemonOptions } from '../src/daemon/flags.js';
import { cleanEnv, daemonArgs, REPO_ROOT, spawnDaemon, startDaemon } from './helpers/daemon.js';

const CARPCTL = process.env.CARPD_TEST_DIST === '1' ? ['dist/cli/main.js'] : ['--import', 'tsx', 'src/cli/main.ts'];

function tmp(t: test.TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** carpctl as a process of its own (asynchronous: carpd answers it from this test's children). */
function carpctl(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CARPCTL, ...args], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const flip = (fp: string) => (fp[0] === 'A' ? 'B' : 'A') + fp.slice(1);

test('carpd --tls: a self-signed certificate, key 0600, its fingerprint logged; carpctl pinned to it works, a wrong or missing pin is refused', async (t) => {
  const dir = tmp(t);
  const d = await startDaemon(t, daemonArgs(dir, '--tls'));
  const fp = String(d.listening.fingerprint);
  const url = `https://127.0.0.1:${d.port}`;
  assert.match(fp, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
  assert.equal(d.listening.url, url);
  assert.match(String(d.listening.msg), new RegExp(`listening on ${url}.*fingerprint ${fp}`));

  const keyFile = path.join(dir, 'api', 'key.pem');
  const certFile = path.join(dir, 'api', 'cert.pem');
  assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'the key is readable by carpd only');
  assert.equal(statSync(certFile).mode & 0o077, 0, 'nothing in api/ is readable by others');
  assert.equal(new X509Certificate(readFileSync(certFile)).fingerprint256, fp);

  const base = ['--url', url, '--state-dir', dir];
  const shown = await carpctl(['--state-dir', dir, 'tls', 'fingerprint']);
  assert.equal(shown.code, 0, shown.stderr);
  assert.equal(shown.stdout, `${fp}\n`, 'carpctl tls fingerprint prints what carpd logged');

  const pinned = await carpctl([...base, '--fingerprint', fp, 'status']);
  assert.equal(pinned.code, 0, pinned.stderr);
  assert.match(pinned.stdout, /^node: /m);

  // Any usual spelling of the pin, from the environment; --json output goes through jq untouched.
  const lower = fp.replaceAll(':', '').toLowerCase();
  const viaEnv = await carpctl([...base, '--json', 'status'], { CARPD_FINGERPRINT: `sha256:${lower}` });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal(JSON.parse(viaEnv.stdout).revision, 1);
  const jq = spawnSync('sh', ['-c', `"$0" "$@" --json status | jq -e -r .node`, process.execPath, ...CARPCTL, ...base], {
    cwd: REPO_ROOT,
    env: cleanEnv({ CARPD_FINGERPRINT: fp }),
    encoding: 'utf8',
  });
  if (jq.error === undefined && !/jq: (command )?not found/.test(jq.stderr)) {
    assert.equal(jq.status, 0, jq.stderr);
    assert.equal(jq.stdout.trim(), JSON.parse(viaEnv.stdout).node);
  }

  const wrong = await carpctl([...base, '--fingerprint', flip(fp), 'status']);
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stdout, '');
  assert.match(wrong.stderr, new RegExp(`presented a certificate with SHA-256 fingerprint ${fp}, not the pinned ${flip(fp)}.*nothing was sent`));
  assert.doesNotMatch(wrong.stderr, /\n\s+at /, 'no stack trace');

  const unpinned = await carpctl([...base, 'status']);
  assert.equal(unpinned.code, 1);
  assert.match(unpinned.stderr, /is not trusted by the system's CAs \(DEPTH_ZERO_SELF_SIGNED_CERT.*nothing was sent\nhint: pin carpd's certificate with --fingerprint/);

  const plain = await carpctl(['--url', `http://127.0.0.1:${d.port}`, '--fingerprint', fp, 'status']);
  assert.equal(plain.code, 2, 'a pin on an http:// URL is a mistake, not a silent downgrade');
  assert.match(plain.stderr, /--fingerprint is for an https:\/\/ carpd/);

  const junk = await carpctl([...base, '--fingerprint', 'not-a-fingerprint', 'status']);
  assert.equal(junk.code, 2);
  assert.match(junk.stderr, /--fingerprint must be a SHA-256 fingerprint/);

  // The certificate is made once: a restart presents the same one.
  d.kill('SIGTERM');
  await d.waitForExit();
  const again = await startDaemon(t, daemonArgs(dir, '--tls'));
  assert.equal(again.listening.fingerprint, fp);
});

test('carpd --tls-cert/--tls-key: the operator\'s files; a world-readable key and a certificate of another key are refused at start', async (t) => {
  const dir = tmp(t);
  // Two key pairs carpd made, standing in for the operator's.
  for (const name of ['one', 'two']) {
    const d = await startDaemon(t, daemonArgs(path.join(dir, name), '--tls'));
    d.kill('SIGTERM');
    await d.waitForExit();
  }
  const cert = path.join(dir, 'server.crt');
  const key = path.join(dir, 'server.key');
  copyFileSync(path.join(dir, 'one', 'api', 'cert.pem'), cert);
  copyFileSync(path.join(dir, 'one', 'api', 'key.pem'), key);
  const fp = new X509Certificate(readFileSync(cert)).fingerprint256;

  const d = await startDaemon(t, daemonArgs(path.join(dir, 'state'), '--tls-cert', cert, '--tls-key', key));
  assert.equal(d.listening.fingerprint, fp);
  assert.equal(d.listening.certificate, cert);
  assert.ok(!existsSync(path.join(dir, 'state', 'api')), 'no self-signed certificate is made');
  const r = await carpctl(['--url', `https://127.0.0.1:${d.port}`, '--state-dir', path.join(dir, 'state'), '--fingerprint', fp, '--json', 'status']);
  assert.equal(r.code, 0, r.stderr);
  const shown = await carpctl(['tls', 'fingerprint', '--cert', cert]);
  assert.equal(shown.stdout, `${fp}\n`);
  d.kill('SIGTERM');
  await d.waitForExit();

  const refused = async (args: string[], message: RegExp) => {
    const p = spawnDaemon(t, daemonArgs(path.join(dir, 'refused'), ...args));
    const exit = await p.waitForExit();
    assert.equal(exit.code, 1, p.output);
    assert.match(p.output, message);
    assert.ok(!p.logs.some((l) => l.event === 'listening'), p.output);
  };
  const otherKey = path.join(dir, 'two', 'api', 'key.pem');
  await refused(['--tls-cert', cert, '--tls-key', otherKey], /--tls-cert .*server\.crt does not belong to the key in --tls-key .*two\/api\/key\.pem/);
  chmodSync(key, 0o644);
  await refused(['--tls-cert', cert, '--tls-key', key], /--tls-key .*server\.key: readable by every user \(mode 0644\); .*chmod 600/);
  await refused(['--tls-cert', path.join(dir, 'missing.crt'), '--tls-key', key], /--tls-cert .*missing\.crt: cannot be read \(ENOENT\)/);
});

test('a non-loopback --listen without TLS is refused at start, saying how to fix it', async (t) => {
  const dir = tmp(t);
  for (const listen of ['0.0.0.0:8080', '192.0.2.1:8080', '[::]:8080']) {
    const d = spawnDaemon(t, ['--listen', listen, '--state-dir', path.join(dir, 'state'), '--backend', 'memory']);
    const exit = await d.waitForExit();
    assert.equal(exit.code, 2, d.output);
    assert.match(d.stderr, new RegExp(`--listen ${listen.replace(/[[\].]/g, '\\$&')} is not a loopback address, and the management API would be plain HTTP`));
    assert.match(d.stderr, /Add --tls .*, or --tls-cert FILE --tls-key FILE, or --insecure-http/);
    assert.ok(!existsSync(path.join(dir, 'state')), 'refused before anything was made');
  }
  // The same rule for CARPD_LISTEN.
  const viaEnv = spawnDaemon(t, ['--state-dir', path.join(dir, 'state'), '--backend', 'memory'], { env: { CARPD_LISTEN: '192.0.2.1:8080' } });
  assert.equal((await viaEnv.waitForExit()).code, 2);
  assert.match(viaEnv.stderr, /--listen 192\.0\.2\.1:8080 is not a loopback address/);
});

test('parseFlags: loopback HTTP by default; --insecure-http and TLS pass the rule; contradictions are refused', () => {
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseFlags(argv, env) as DaemonOptions;
  const plain = parse([]);
  assert.equal(plain.listenHost, '127.0.0.1');
  assert.equal(plain.apiTls, undefined);
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]', '[::ffff:127.0.0.1]']) {
    assert.equal(parse(['--listen', `${host}:8080`]).apiTls, undefined, host);
  }
  assert.equal(parse(['--listen', '0.0.0.0:8080', '--insecure-http']).insecureHttp, true);
  assert.equal(parse(['--listen', '192.0.2.1:8080'], { CARPD_INSECURE_HTTP: '1' }).insecureHttp, true);
  assert.equal(parse(['--listen', '192.0.2.1:8443', '--tls']).apiTls, 'self-signed');
  assert.equal(parse(['--listen', '192.0.2.1:8443'], { CARPD_TLS: 'yes' }).apiTls, 'self-signed');
  assert.deepEqual(parse(['--listen', '192.0.2.1:8443', '--tls-cert', 'c.pem'], { CARPD_TLS_KEY: 'k.pem' }).apiTls, { certFile: path.resolve('c.pem'), keyFile: path.resolve('k.pem') });
  const refused = (argv: string[], message: RegExp, env: NodeJS.ProcessEnv = {}) => assert.throws(() => parseFlags(argv, env), (e: unknown) => e instanceof UsageError && message.test(e.message));
  refused(['--listen', 'fw1.example.net:8080'], /is not a loopback address/);
  refused(['--tls-cert', 'c.pem'], /--tls-cert needs --tls-key FILE/);
  refused(['--tls-key', 'k.pem'], /--tls-key needs --tls-cert FILE/);
  refused(['--tls', '--insecure-http'], /--insecure-http conflicts with --tls/);
  refused([], /CARPD_TLS="maybe" is not/, { CARPD_TLS: 'maybe' });
});
