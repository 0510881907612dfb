/**
 * carpd as a process: the first admin token, file modes, graceful SIGTERM with writes in
 * flight, SIGHUP and the bootstrap file, flags and their environment variables, /docs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { call, daemonArgs, etagRevision, SAFETY_TIMEOUT_MS, spawnDaemon, startDaemon, type DaemonProcess, type Reply } from './helpers/daemon.js';

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-daemon-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

const mode = (file: string) => statSync(file).mode & 0o777;
const readToken = (dir: string) => readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();

async function stop(d: DaemonProcess): Promise<void> {
  d.kill('SIGTERM');
  const exit = await d.waitForExit();
  assert.equal(exit.code, 0, d.output);
}

/** Polls `probe` until it returns a value; bounded only by the safety timeout. */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + SAFETY_TIMEOUT_MS;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

test('the first start creates admin.token (0600) and logs its path, never the token; state files are 0600', async (t) => {
  const dir = tmp(t);
  const d = await startDaemon(t, daemonArgs(dir));
  const file = path.join(dir, 'admin.token');
  assert.equal(mode(file), 0o600);
  const token = readToken(dir);
  assert.match(token, /^carpd_[A-Za-z0-9_-]{40,}$/);
  const created = d.logs.find((l) => l.event === 'token.created');
  assert.ok(created, d.output);
  assert.equal(created.file, file);
  assert.ok(String(created.msg).includes(file));

  const vips = await call(d.port, 'GET', '/v1/vips', { token });
  assert.equal(vips.status, 200, vips.text);
  // A commit so that revisions/ holds more than the initial file.
  const made = await call(d.port, 'POST', '/v1/vips', { token, body: { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], password: 'vippass' } });
  assert.equal(made.status, 201, made.text);

  assert.equal(mode(dir), 0o700);
  assert.equal(mode(path.join(dir, 'config.json')), 0o600);
  assert.equal(mode(path.join(dir, 'revisions')), 0o700);
  await stop(d);
  // The clean stop wrote a snapshot, so that revisions/ holds more than the first journal:
  // that journal, the snapshot it started from, and the journal of the new snapshot.
  const revisions = readdirSync(path.join(dir, 'revisions'));
  assert.ok(revisions.length >= 3, revisions.join(' '));
  for (const r of revisions) assert.equal(mode(path.join(dir, 'revisions', r)), 0o600, r);
  assert.equal(mode(path.join(dir, 'config.json')), 0o600);

  // A restart keeps the token: no new one, the file untouched, the old one still works.
  const again = await startDaemon(t, daemonArgs(dir));
  assert.ok(!again.logs.some((l) => l.event === 'token.created'), again.output);
  assert.equal(readToken(dir), token);
  assert.equal((await call(again.port, 'GET', '/v1/vips', { token })).status, 200);
  await stop(again);

  for (const out of [d.output, again.output]) {
    assert.ok(!out.includes(token), 'the admin token appears in the log');
    assert.ok(!out.includes(token.slice('carpd_'.length)), 'the admin token secret appears in the log');
    assert.ok(!out.includes('vippass'), 'a VIP password appears in the log');
  }
});

test('SIGTERM with writes in flight: exit code 0, and every write that got a 2xx is stored', async (t) => {
  const dir = tmp(t);
  const d = await startDaemon(t, daemonArgs(dir));
  const token = readToken(dir);
  const WRITERS = 4;
  const PER_WRITER = 50;
  const acked = new Set<number>();
  const refused = new Set<number>();
  const failed = new Set<number>();
  let outstanding = 0;
  let inFlightAtSigterm = -1;

  // Four sequential writers, each on its own vhids: the stream is still running when SIGTERM lands.
  const writer = async (w: number) => {
    for (let k = 0; k < PER_WRITER; k++) {
      const vhid = w * PER_WRITER + k + 1;
      let r: Reply;
      outstanding++;
      try {
        r = await call(d.port, 'POST', '/v1/vips', { token, body: { interface: 'em0', vhid, addresses: [`198.51.100.${vhid}/24`] } });
      } catch {
        // Refused or closed connection: carpd no longer takes requests.
        failed.add(vhid);
        return;
      } finally {
        outstanding--;
      }
      if (r.status === 201) {
        assert.equal(etagRevision(r) > 0, true);
        acked.add(vhid);
        if (acked.size === 8) {
          inFlightAtSigterm = outstanding;
          d.kill('SIGTERM');
        }
        continue;
      }
      // Arrived while stopping: refused before any change, with the code that says so.
      assert.equal(r.status, 503, r.text);
      assert.equal(r.body.code, 'CARPD_ERR_SHUTTING_DOWN');
      refused.add(vhid);
      return;
    }
    assert.fail(`writer ${w} was never stopped`);
  };
  await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
  const exit = await d.waitForExit();
  assert.equal(exit.code, 0, d.output);
  assert.ok(inFlightAtSigterm > 0, 'no write was in flight at SIGTERM');
  assert.ok(d.logs.some((l) => l.event === 'stopping'));
  assert.ok(d.logs.some((l) => l.event === 'stopped'));

  const again = await startDaemon(t, daemonArgs(dir));
  const list = await call(again.port, 'GET', '/v1/vips', { token });
  assert.equal(list.status, 200);
  const stored = new Set((list.body.items as { vhid: number }[]).map((v) => v.vhid));
  for (const v of acked) assert.ok(stored.has(v), `acknowledged vhid ${v} is missing after the restart`);
  for (const v of refused) assert.ok(!stored.has(v), `vhid ${v} was refused with 503 yet stored`);
  // Graceful: whatever carpd took in was answered, so nothing is stored that was not acknowledged.
  for (const v of stored) assert.ok(acked.has(v), `vhid ${v} is stored but was never acknowledged (${failed.has(v) ? 'its connection failed' : 'never sent'})`);
  t.diagnostic(`${acked.size} acknowledged, ${refused.size} refused with 503, ${failed.size} connections refused/closed; ${inFlightAtSigterm} in flight at SIGTERM`);
  await stop(again);
});

const BOOT_A = 'vips: [{interface: em0, vhid: 5, addresses: ["192.0.2.50/24"], password: "bootpass"}]\n';
const BOOT_B = 'vips: [{interface: em1, vhid: 7, addresses: ["192.0.2.60/24", "2001:db8::60/64"], password: "bootpass2", advskew: 20}]\n';
const BOOT_BAD_SKEW = 'vips: [{interface: em1, vhid: 7, addresses: ["192.0.2.60/24"], password: "bootpass3", advskew: 999}]\n';
const BOOT_BAD_FIELD = 'vips: [{interface: em1, vhid: 7, adresses: ["192.0.2.60/24"], password: "bootpass4"}]\n';
const PASSWORDS = /bootpass/;

test('SIGHUP re-reads the bootstrap file; an invalid one is refused naming the field and changes nothing; passwords never leak', async (t) => {
  const dir = tmp(t);
  const boot = path.join(tmp(t), 'carpd.yaml');
  writeFileSync(boot, BOOT_A);
  const d = await startDaemon(t, daemonArgs(dir, '--config', boot));
  const token = readToken(dir);
  const replies: Reply[] = [];
  const get = async (url: string) => {
    const r = await call(d.port, 'GET', url, { token });
    assert.equal(r.status, 200, r.text);
    replies.push(r);
    return r;
  };
  assert.equal((await d.waitForEvent('bootstrap')).result, 'applied');

  const first = await get('/v1/vips');
  assert.deepEqual(
    first.body.items.map((v: any) => [v.interface, v.vhid, v.addresses, v.hasPassword]),
    [['em0', 5, ['192.0.2.50/24'], true]],
  );

  writeFileSync(boot, BOOT_B);
  d.kill('SIGHUP');
  const second = await until('the new bootstrap VIP', async () => {
    const r = await get('/v1/vips');
    return r.body.revision !== first.body.revision ? r : undefined;
  });
  assert.deepEqual(
    second.body.items.map((v: any) => [v.interface, v.vhid, v.addresses, v.advskew, v.hasPassword]),
    [['em1', 7, ['192.0.2.60/24', '2001:db8::60/64'], 20, true]],
  );
  assert.equal((await d.waitForEvent('reload')).result, 'applied');
  await get('/v1/config');
  await get('/v1/status');

  for (const [bad, field] of [
    [BOOT_BAD_SKEW, /\/vips\/(0|em1\/7)\/advskew/],
    [BOOT_BAD_FIELD, /\/vips\/0\/adresses/],
  ] as const) {
    writeFileSync(boot, bad);
    const earlier = new Set(d.logs);
    d.kill('SIGHUP');
    const failed = await d.waitForLog((l) => l.event === 'reload.failed' && !earlier.has(l), 'reload.failed log line');
    assert.match(String(failed.err), field);
    assert.ok(String(failed.msg).includes(boot), `the log names the file: ${failed.msg}`);
    assert.equal(failed.level, 50);
    const after = await get('/v1/vips');
    assert.equal(after.body.revision, second.body.revision);
    assert.equal(etagRevision(after), second.body.revision);
    assert.deepEqual(after.body.items.map((v: any) => ({ ...v, live: undefined })), second.body.items.map((v: any) => ({ ...v, live: undefined })));
  }
  await stop(d);

  for (const r of replies) assert.doesNotMatch(r.text, PASSWORDS, 'a bootstrap password in an API response');
  assert.doesNotMatch(d.output, PASSWORDS, 'a bootstrap password in the log');
});

test('an invalid bootstrap file at start: exit code 1, the log names the file and the field', async (t) => {
  const dir = tmp(t);
  const boot = path.join(tmp(t), 'carpd.yaml');
  writeFileSync(boot, BOOT_BAD_SKEW);
  const d = spawnDaemon(t, daemonArgs(dir, '--config', boot));
  const exit = await d.waitForExit();
  assert.equal(exit.code, 1, d.output);
  const fatal = d.logs.find((l) => l.event === 'start.failed');
  assert.ok(fatal, d.output);
  assert.match(String(fatal.err), /\/vips\/(0|em1\/7)\/advskew/);
  assert.ok(String(fatal.msg).includes(boot));
  assert.doesNotMatch(d.output, PASSWORDS);
  // Nothing of the file was applied.
  const stored = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vips: unknown[] };
  assert.deepEqual(stored.vips, []);
  assert.ok(!existsSync(path.join(dir, 'bootstrap.sha256')));
});

test('bad flags exit with code 2 and the usage on stderr, before touching the state dir', async (t) => {
  const root = tmp(t);
  const cases: [string, string[], RegExp][] = [
    ['--listen without a port', ['--listen', '127.0.0.1'], /--listen "127\.0\.0\.1" is not HOST:PORT/],
    ['--listen with a port above 65535', ['--listen', '127.0.0.1:99999'], /--listen "127\.0\.0\.1:99999"/],
    ['--listen with junk', ['--listen', 'not an address'], /--listen "not an address"/],
    ['--backend bogus', ['--listen', '127.0.0.1:0', '--backend', 'bogus'], /--backend "bogus" is not one of/],
    ['an unknown flag', ['--listen', '127.0.0.1:0', '--bogus'], /bogus/],
  ];
  // Independent children: run them side by side.
  await Promise.all(
    cases.map(async ([name, args, message], i) => {
      const stateDir = path.join(root, `state-${i}`);
      const d = spawnDaemon(t, ['--state-dir', stateDir, ...args]);
      const exit = await d.waitForExit();
      assert.equal(exit.code, 2, `${name}: ${d.output}`);
      assert.match(d.stderr, message, name);
      assert.match(d.stderr, /^usage: carpd /m, name);
      assert.equal(d.stdout, '', name);
      assert.ok(!existsSync(stateDir), `${name}: the state dir was created`);
    }),
  );
});

test('CARPD_LISTEN and CARPD_STATE_DIR are honoured; /docs/ serves Swagger UI', async (t) => {
  const dir = tmp(t);
  const d = await startDaemon(t, [], { env: { CARPD_LISTEN: '127.0.0.1:0', CARPD_STATE_DIR: dir } });
  assert.equal(d.listening.stateDir, dir);
  assert.match(String(d.listening.address), /^127\.0\.0\.1:\d+$/);
  assert.ok(existsSync(path.join(dir, 'admin.token')));
  assert.ok(existsSync(path.join(dir, 'config.json')));
  assert.equal((await call(d.port, 'GET', '/v1/vips', { token: readToken(dir) })).status, 200);

  const docs = await call(d.port, 'GET', '/docs/');
  assert.equal(docs.status, 200);
  assert.match(String(docs.headers['content-type']), /^text\/html/);
  assert.match(docs.text, /swagger-ui/);
  assert.match(docs.text, /<title>carpd API<\/title>/);
  await stop(d);
});

test('flags win over their environment variables', async (t) => {
  const dir = tmp(t);
  const other = path.join(tmp(t), 'not-this-one');
  const d = await startDaemon(t, ['--listen', '127.0.0.1:0', '--state-dir', dir, '--backend', 'memory'], { env: { CARPD_LISTEN: 'junk', CARPD_STATE_DIR: other, CARPD_BACKEND: 'bogus' } });
  assert.equal(d.listening.stateDir, dir);
  assert.equal(d.listening.backend, 'memory');
  assert.ok(!existsSync(other));
  await stop(d);
});
