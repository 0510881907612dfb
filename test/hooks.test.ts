/**
 * Hooks: their rules through the API (every bad input a 4xx problem+json that changes
 * nothing), their CRUD and that of webhooks (secrets never answered), PUT /v1/config, sync's
 * handling, and the runner: a hook writes its environment and stdin to a file on a takeover,
 * a hook that hangs is killed with its process group at its timeout and the next run still
 * happens, runs of one hook keep the order of the events, overflow drops the oldest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { EventBus, type AnyEvent } from '../src/service/events.js';
import { initialState, type DesiredState, type HookConfig } from '../src/config/model.js';
import { readStoredState } from '../src/config/document.js';
import { HookRunner } from '../src/notify/hooks.js';
import { applySnapshot, snapshotOf } from '../src/sync/derive.js';
import { managedChanges } from '../src/config/managed.js';
import { eventEnv } from '../src/notify/event-env.js';

const HOOK = { name: 'wan-up', events: [{ type: 'vhid.state', interface: 'em0', vhid: 1, state: 'MASTER' }], command: ['/usr/local/sbin/wan-up', '--quiet'] };
const WEBHOOK = { name: 'chat', url: 'https://198.51.100.20/carpd', secret: 'hook-secret-0123456789', events: [{ type: 'splitbrain' }] };

async function refused(h: Harness, method: 'post' | 'put', url: string, body: unknown, status: number, code: string, detail?: RegExp): Promise<void> {
  const before = h.service.desired().revision;
  const stored = JSON.stringify(h.service.desired());
  const res = await h.api[method](url, body);
  assert.equal(res.status, status, `${method} ${url} ${JSON.stringify(body)}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  assert.equal(res.body.code, code, res.text);
  if (detail) assert.match(res.body.detail + ' ' + JSON.stringify(res.body.errors ?? []), detail);
  assert.equal(h.service.desired().revision, before, 'no new revision');
  assert.equal(JSON.stringify(h.service.desired()), stored, 'nothing changed');
}

test('bad hooks and webhooks are refused with 4xx problem+json and change nothing', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await refused(h, 'post', '/v1/hooks', { ...HOOK, command: '/usr/local/sbin/wan-up --quiet' }, 422, 'CARPD_ERR_INVALID_VALUE', /argv array/);
  await refused(h, 'put', '/v1/hooks/x', { events: HOOK.events, command: 'logger up' }, 422, 'CARPD_ERR_INVALID_VALUE', /never a shell string/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, events: [{ type: 'vhid.changed' }] }, 422, 'CARPD_ERR_INVALID_VALUE', /"vhid.changed" is not an event type/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, command: ['usr/local/sbin/wan-up'] }, 422, 'CARPD_ERR_INVALID_VALUE', /not an absolute path/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, command: [] }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/hooks', { ...HOOK, env: { 'bad-name': 'x' } }, 422, 'CARPD_ERR_INVALID_VALUE', /environment variable name/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, env: { CARPD_STATE: 'x' } }, 422, 'CARPD_ERR_INVALID_VALUE', /CARPD_/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, events: [{ type: 'hook.failed' }] }, 422, 'CARPD_ERR_INVALID_VALUE', /its own results/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, events: [{ type: 'hook' }] }, 422, 'CARPD_ERR_INVALID_VALUE');
  await refused(h, 'post', '/v1/hooks', { ...HOOK, events: [{ type: 'splitbrain', state: 'MASTER' }] }, 422, 'CARPD_ERR_INVALID_VALUE', /vhid.state events only/);
  await refused(h, 'post', '/v1/hooks', { ...HOOK, events: [] }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/hooks', { ...HOOK, timeoutSec: 0 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/hooks', { ...HOOK, shell: true }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/hooks', { ...HOOK, name: 'no spaces' }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/webhooks', { ...WEBHOOK, url: 'ftp://198.51.100.20/x' }, 422, 'CARPD_ERR_INVALID_VALUE', /ftp: URLs are not allowed/);
  await refused(h, 'post', '/v1/webhooks', { ...WEBHOOK, url: 'javascript:alert(1)' }, 422, 'CARPD_ERR_INVALID_VALUE', /javascript: URLs are not allowed/);
  await refused(h, 'post', '/v1/webhooks', { ...WEBHOOK, url: 'not a url' }, 422, 'CARPD_ERR_INVALID_VALUE', /not a URL/);
  await refused(h, 'post', '/v1/webhooks', { ...WEBHOOK, url: 'https://user:pw@198.51.100.20/' }, 422, 'CARPD_ERR_INVALID_VALUE', /credentials/);
  await refused(h, 'post', '/v1/webhooks', { ...WEBHOOK, events: [{ type: 'nope' }] }, 422, 'CARPD_ERR_INVALID_VALUE');
  const { secret: _s, ...noSecret } = WEBHOOK;
  await refused(h, 'post', '/v1/webhooks', noSecret, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'put', '/v1/webhooks/new-one', { url: WEBHOOK.url, events: WEBHOOK.events }, 422, 'CARPD_ERR_INVALID_VALUE', /needs a secret/);
  // The whole document: pointers into it.
  const doc = { vips: [], hooks: [{ ...HOOK }, { name: 'b', events: [{ type: 'splitbrain' }], command: ['relative'] }] };
  await refused(h, 'put', '/v1/config', doc, 422, 'CARPD_ERR_INVALID_VALUE', /\/hooks\/1\/command\/0/);
  await refused(h, 'put', '/v1/config', { vips: [], webhooks: [{ ...WEBHOOK, url: 'file:///etc/passwd' }] }, 422, 'CARPD_ERR_INVALID_VALUE', /\/webhooks\/0\/url/);
  // A read token may list, not change.
  assert.equal((await h.api.get('/v1/hooks', { token: READ_TOKEN })).status, 200);
  const forbidden = await h.api.post('/v1/hooks', HOOK, { token: READ_TOKEN });
  assert.equal(forbidden.status, 403);
  assert.equal(h.service.desired().hooks.length, 0);
});

test('hooks and webhooks: create, read, replace, remove; the secret is never answered', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const dry = await h.api.post('/v1/hooks?dryRun=true', HOOK);
  assert.equal(dry.status, 200);
  assert.deepEqual(dry.body.changes, ['add hook wan-up (/usr/local/sbin/wan-up --quiet)']);
  assert.equal(h.service.desired().hooks.length, 0, 'a dry run stores nothing');

  const created = await h.api.post('/v1/hooks', HOOK);
  assert.equal(created.status, 201, created.text);
  assert.equal(created.headers.location, '/v1/hooks/wan-up');
  assert.deepEqual(created.body, { ...HOOK, timeoutSec: 30, env: {}, nosync: false });
  const rev = h.service.desired().revision;
  assert.equal(created.headers.etag, `"${rev}"`);
  assert.equal((await h.api.post('/v1/hooks', HOOK)).body.code, 'CARPD_ERR_HOOK_EXISTS');
  assert.deepEqual((await h.api.get('/v1/hooks')).body.items.map((x: { name: string }) => x.name), ['wan-up']);
  const replaced = await h.api.put('/v1/hooks/wan-up', { events: [{ type: 'splitbrain' }], command: ['/bin/true'], timeoutSec: 5, env: { SITE: 'a' } }, { headers: { 'If-Match': `"${rev}"` } });
  assert.equal(replaced.status, 200, replaced.text);
  assert.deepEqual(h.service.desired().hooks[0], { name: 'wan-up', events: [{ type: 'splitbrain' }], command: ['/bin/true'], timeoutSec: 5, env: { SITE: 'a' }, nosync: false });
  assert.equal((await h.api.put('/v1/hooks/wan-up', { events: [{ type: 'splitbrain' }], command: ['/bin/true'] }, { headers: { 'If-Match': `"${rev}"` } })).status, 412);

  const w = await h.api.post('/v1/webhooks', WEBHOOK);
  assert.equal(w.status, 201, w.text);
  assert.equal(w.body.hasSecret, true);
  for (const res of [w, await h.api.get('/v1/webhooks'), await h.api.get('/v1/webhooks/chat'), await h.api.get('/v1/config')]) {
    assert.ok(!res.text.includes(WEBHOOK.secret), `the secret is never answered: ${res.text}`);
  }
  const config = (await h.api.get('/v1/config')).body;
  assert.equal(config.hooks[0].name, 'wan-up');
  assert.equal(config.webhooks[0].hasSecret, true);
  // PUT without the secret keeps it.
  assert.equal((await h.api.put('/v1/webhooks/chat', { url: 'http://127.0.0.1:9/x', events: [{ type: 'vhid.state' }] })).status, 200);
  assert.equal(h.service.desired().webhooks[0].secret, WEBHOOK.secret);
  assert.equal(h.service.desired().webhooks[0].url, 'http://127.0.0.1:9/x');
  // GET /v1/config's document sent back changes nothing (the secret stays).
  const back = await h.api.put('/v1/config', config);
  assert.equal(back.status, 200, back.text);
  assert.equal(h.service.desired().webhooks[0].secret, WEBHOOK.secret);

  assert.equal((await h.api.delete('/v1/hooks/wan-up')).status, 204);
  const gone = await h.api.get('/v1/hooks/wan-up');
  assert.equal(gone.status, 404);
  assert.equal(gone.body.code, 'CARPD_ERR_HOOK_NOT_FOUND');
  assert.equal((await h.api.delete('/v1/hooks/wan-up')).body.code, 'CARPD_ERR_HOOK_NOT_FOUND');
  assert.equal((await h.api.delete('/v1/webhooks/chat')).status, 204);
  assert.equal((await h.api.get('/v1/webhooks/chat')).body.code, 'CARPD_ERR_WEBHOOK_NOT_FOUND');
  const words = h.service.revisions().map((r) => r.summary);
  assert.ok(words.includes('add hook wan-up') && words.includes('remove webhook chat'), words.join('; '));
});

test('a document stored before hooks has none; hooks survive a restart', async () => {
  const old = JSON.parse(JSON.stringify(initialState(new Date(0)))) as Record<string, unknown>;
  delete old.hooks;
  delete old.webhooks;
  const s = readStoredState(old);
  assert.deepEqual([s.hooks, s.webhooks], [[], []]);
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-hooks-'));
  try {
    const h = await makeHarness({ dir });
    assert.equal((await h.api.post('/v1/hooks', HOOK)).status, 201);
    assert.equal((await h.api.post('/v1/webhooks', WEBHOOK)).status, 201);
    await h.close();
    const again = await makeHarness({ dir });
    assert.equal(again.service.desired().hooks[0].name, 'wan-up');
    assert.equal(again.service.desired().webhooks[0].secret, WEBHOOK.secret);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sync: hooks and webhooks go from primary to secondary unless nosync; the secondary keeps its own', () => {
  const primary = initialState(new Date(0));
  const hook = (name: string, nosync: boolean): HookConfig => ({ name, events: [{ type: 'splitbrain' }], command: ['/bin/true'], timeoutSec: 30, env: {}, nosync });
  primary.hooks = [hook('shared', false), hook('primary-only', true)];
  primary.webhooks = [{ name: 'w', url: 'https://198.51.100.20/', secret: 's', events: [{ type: 'vhid.state' }], timeoutSec: 10, nosync: false }];
  const snap = snapshotOf(primary);
  assert.deepEqual(snap.hooks!.map((x) => x.name), ['shared']);
  const secondary: DesiredState = initialState(new Date(0));
  secondary.sync = { ...secondary.sync, role: 'secondary' };
  secondary.hooks = [hook('local', true), hook('stale', false)];
  const next = applySnapshot(secondary, snap);
  assert.deepEqual(next.hooks.map((x) => x.name), ['local', 'shared']);
  assert.equal(next.webhooks[0].secret, 's');
  // An older primary sends none: the secondary's stay.
  const { hooks: _h, webhooks: _w, ...older } = snap;
  assert.deepEqual(applySnapshot(secondary, older).hooks.map((x) => x.name), ['local', 'stale']);
  // A change to a synced hook is a change of a managed object; to a nosync one it is not.
  const edited = structuredClone(next);
  edited.hooks[1].timeoutSec = 5;
  assert.deepEqual(managedChanges(next, edited).vips, ['hook:shared']);
  const own = structuredClone(next);
  own.hooks[0].timeoutSec = 5;
  assert.deepEqual(managedChanges(next, own).vips, []);
});

test('sync messages: a snapshot carries hooks and webhooks, read field by field; a malformed one is refused', async () => {
  const { SYNC_KINDS, readSnapshot } = await import('../src/sync/messages.js');
  const primary = initialState(new Date(0));
  primary.hooks = [{ name: 'h', events: [{ type: 'splitbrain' }], command: ['/bin/true'], timeoutSec: 30, env: { A: 'b' }, nosync: false }];
  primary.webhooks = [{ name: 'w', url: 'https://198.51.100.20/', secret: 's', events: [{ type: 'vhid.state', state: 'MASTER' }], timeoutSec: 10, nosync: false }];
  const body = JSON.parse(JSON.stringify(snapshotOf(primary)));
  const read = SYNC_KINDS.read({ type: 'push', body } as never);
  assert.ok(read.ok, JSON.stringify(read));
  const snap = readSnapshot(body);
  assert.deepEqual([snap.hooks, snap.webhooks], [primary.hooks, primary.webhooks]);
  assert.throws(() => readSnapshot({ ...body, hooks: [{ name: 'h', events: [], command: '/bin/sh -c x' }] }), (e: unknown) => (e as { code?: string }).code === 'CARPD_ERR_SYNC_BAD_MESSAGE');
});

test('on a sync secondary, a synced hook is changed only with force (then detached)', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/hooks', HOOK)).status, 201);
  await h.service.mutate({ actor: 'test', origin: 'sync' }, 'become secondary', (d) => {
    d.sync = { ...d.sync, role: 'secondary', peer: { address: '192.0.2.2', port: 8443, fingerprint: Array(32).fill('AB').join(':') } };
  });
  await refused(h, 'put', '/v1/hooks/wan-up', { events: HOOK.events, command: ['/bin/true'] }, 409, 'CARPD_ERR_SYNC_MANAGED', /hook wan-up/);
  assert.equal((await h.api.post('/v1/hooks', { ...HOOK, name: 'own', nosync: true })).status, 201, 'a nosync hook needs no force');
  assert.equal((await h.api.put('/v1/hooks/wan-up?force=true', { events: HOOK.events, command: ['/bin/true'] })).status, 200);
  assert.deepEqual(h.service.desired().sync.detached.vips, ['hook:wan-up']);
});

// --- the runner ---------------------------------------------------------------------------------

function runnerOf(hooks: HookConfig[], opts: { queueLimit?: number } = {}) {
  const bus = new EventBus();
  const state = initialState(new Date(0));
  state.hooks = hooks;
  const seen: AnyEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  const runner = new HookRunner({ events: bus, desired: () => state, logger: pino({ level: 'silent' }), node: 'node-a', killGraceMs: 200, ...opts });
  const vhid = (vhidNo: number, to: 'MASTER' | 'BACKUP', iface = 'em0') => bus.publish('vhid.state', { interface: iface, vhid: vhidNo, from: to === 'MASTER' ? 'BACKUP' : 'MASTER', to, reason: 'test', effectiveSkew: 0 });
  const results = () => seen.filter((e) => e.type === 'hook.succeeded' || e.type === 'hook.failed');
  return { bus, state, runner, vhid, seen, results };
}

function tempDir(t: { after: (f: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-hook-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function script(dir: string, name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

test('a hook writes its environment and stdin to a file when a vhid becomes MASTER', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'env.txt');
  const sh = script(dir, 'hook.sh', 'cat > "$OUT.stdin"; env > "$OUT.tmp"; echo "$CARPD_VHID" >> "$OUT.runs"; mv "$OUT.tmp" "$OUT"');
  const r = runnerOf([{ name: 'up', events: [{ type: 'vhid.state', interface: 'em0', state: 'MASTER' }], command: ['/bin/sh', sh], timeoutSec: 10, env: { OUT: out }, nosync: false }]);
  t.after(() => r.runner.close());
  r.vhid(7, 'BACKUP'); // not MASTER: no run
  r.vhid(1, 'MASTER', 'em1'); // another interface: no run
  const e = r.vhid(1, 'MASTER');
  await pollUntil('the hook ran', async () => r.results(), (x) => x.length >= 1, 10_000);
  const env = Object.fromEntries(
    readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.equal(env.CARPD_EVENT, 'vhid.state');
  assert.equal(env.CARPD_EVENT_ID, String(e.id));
  assert.equal(env.CARPD_EVENT_TIME, e.time);
  assert.equal(env.CARPD_INTERFACE, 'em0');
  assert.equal(env.CARPD_VHID, '1');
  assert.equal(env.CARPD_STATE, 'MASTER');
  assert.equal(env.CARPD_PREVIOUS_STATE, 'BACKUP');
  assert.equal(env.CARPD_REASON, 'test');
  assert.equal(env.CARPD_EFFECTIVE_SKEW, '0');
  assert.equal(env.CARPD_NODE, 'node-a');
  assert.equal(env.PATH, '/usr/bin:/bin:/usr/sbin:/sbin');
  assert.equal(env.OUT, out);
  const stdin = JSON.parse(readFileSync(out + '.stdin', 'utf8'));
  assert.deepEqual(stdin, { id: e.id, type: 'vhid.state', time: e.time, data: e.data, node: 'node-a' });
  assert.equal(readFileSync(out + '.runs', 'utf8'), '1\n', 'only the matching event ran it');
  const [result] = r.results();
  assert.equal(result.type, 'hook.succeeded');
  assert.equal(result.data.eventId, e.id);
});

test('a hook that hangs is killed with its process group at its timeout, and the next run happens', async (t) => {
  const dir = tempDir(t);
  // vhid 1 hangs (with a child of its own); vhid 2 writes a file.
  const sh = script(dir, 'hook.sh', `echo $$ > "${dir}/pgid.$CARPD_VHID"\nif [ "$CARPD_VHID" = 1 ]; then sleep 60 & echo $! > "${dir}/child"; wait; fi\ntouch "${dir}/done.$CARPD_VHID"`);
  const r = runnerOf([{ name: 'slow', events: [{ type: 'vhid.state' }], command: ['/bin/sh', sh], timeoutSec: 1, env: {}, nosync: false }]);
  t.after(() => r.runner.close());
  const first = r.vhid(1, 'MASTER');
  const second = r.vhid(2, 'MASTER');
  const results = await pollUntil('both runs ended', async () => r.results(), (x) => x.length >= 2, 15_000);
  assert.equal(results[0].type, 'hook.failed');
  assert.equal(results[0].data.eventId, first.id);
  assert.match((results[0].data as { reason: string }).reason, /^timeout/);
  assert.equal(results[1].type, 'hook.succeeded');
  assert.equal(results[1].data.eventId, second.id);
  assert.ok(existsSync(path.join(dir, 'done.2')));
  assert.ok(!existsSync(path.join(dir, 'done.1')), 'the hung run never finished');
  // The group, the sleep included, is gone.
  const pgid = Number(readFileSync(path.join(dir, 'pgid.1'), 'utf8'));
  const child = Number(readFileSync(path.join(dir, 'child'), 'utf8'));
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await pollUntil('the process group is gone', async () => alive(-pgid) || alive(child), (x) => !x, 5_000);
  assert.equal(r.runner.stats().slow.timedOut, 1);
});

test('runs of one hook follow the order of the events; a full queue drops the oldest; a missing program fails', async (t) => {
  const dir = tempDir(t);
  const log = path.join(dir, 'log');
  const sh = script(dir, 'hook.sh', `echo "$CARPD_VHID" >> "${log}"`);
  const r = runnerOf([{ name: 'ordered', events: [{ type: 'vhid.state' }], command: ['/bin/sh', sh], timeoutSec: 10, env: {}, nosync: false }]);
  t.after(() => r.runner.close());
  for (let v = 1; v <= 6; v++) r.vhid(v, 'MASTER');
  await pollUntil('six runs', async () => r.results(), (x) => x.length >= 6, 15_000);
  assert.equal(readFileSync(log, 'utf8'), '1\n2\n3\n4\n5\n6\n');

  const log2 = path.join(dir, 'log2');
  const sh2 = script(dir, 'hook2.sh', `echo "$CARPD_VHID" >> "${log2}"`);
  const small = runnerOf([{ name: 'small', events: [{ type: 'vhid.state' }], command: ['/bin/sh', sh2], timeoutSec: 10, env: {}, nosync: false }], { queueLimit: 2 });
  t.after(() => small.runner.close());
  // Published in one go: queued before the first run starts.
  for (let v = 1; v <= 5; v++) small.vhid(v, 'MASTER');
  await pollUntil('five results', async () => small.results(), (x) => x.length >= 5, 15_000);
  const dropped = small.results().filter((e) => e.type === 'hook.failed');
  assert.deepEqual(dropped.map((e) => (e.data as { reason: string }).reason.split(':')[0]), ['dropped', 'dropped', 'dropped']);
  assert.equal(readFileSync(log2, 'utf8'), '4\n5\n');
  assert.equal(small.runner.stats().small.dropped, 3);

  const missing = runnerOf([{ name: 'missing', events: [{ type: 'splitbrain' }], command: ['/nonexistent/carpd-hook'], timeoutSec: 10, env: {}, nosync: false }]);
  t.after(() => missing.runner.close());
  missing.bus.publish('splitbrain.detected', { interface: 'em0', vhid: 1, peer: '192.0.2.2', policy: 'alert', since: '2026-12-07T10:00:00.000Z' });
  const [failed] = await pollUntil('the failure', async () => missing.results(), (x) => x.length >= 1, 10_000);
  assert.equal(failed.type, 'hook.failed');
  assert.match((failed.data as { reason: string }).reason, /ENOENT/);
});

test('event environment: every body field as CARPD_<UPPER_SNAKE>', () => {
  const bus = new EventBus();
  const e = bus.publish('config.committed', { revision: 3, actor: 'admin', origin: 'api', summary: 'x', steps: 2 });
  assert.deepEqual(eventEnv(e, 'n'), { CARPD_REVISION: '3', CARPD_ACTOR: 'admin', CARPD_ORIGIN: 'api', CARPD_SUMMARY: 'x', CARPD_STEPS: '2', CARPD_EVENT: 'config.committed', CARPD_EVENT_ID: String(e.id), CARPD_EVENT_TIME: e.time, CARPD_NODE: 'n' });
});

test('carpctl hook and webhook: add, list, show, rm against carpd', async (t) => {
  const { createServer } = await import('node:http');
  const { run } = await import('../src/cli/run.js');
  const { ADMIN_TOKEN } = await import('./helpers/harness.js');
  const h = await makeHarness();
  const server = createServer(h.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await h.close();
  });
  const url = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  const carpctl = async (args: string[], env: Record<string, string> = {}) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: ADMIN_TOKEN, ...env } });
    return { code, stdout, stderr };
  };
  let r = await carpctl(['hook', 'add', 'wan-up', '--on', 'vhid.state:interface=em0,vhid=1,state=master', '--timeout', '5', '--env', 'SITE=a=b', '--', '/usr/local/sbin/wan-up', '--quiet', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(h.service.desired().hooks[0], { name: 'wan-up', events: [{ type: 'vhid.state', interface: 'em0', vhid: 1, state: 'MASTER' }], command: ['/usr/local/sbin/wan-up', '--quiet', '-v'], timeoutSec: 5, env: { SITE: 'a=b' }, nosync: false });
  r = await carpctl(['hook', 'list']);
  assert.match(r.stdout, /wan-up\s+vhid\.state:interface=em0,vhid=1,state=MASTER\s+\/usr\/local\/sbin\/wan-up --quiet -v/);
  r = await carpctl(['hook', 'add', 'bad', '--on', 'splitbrain', '--', 'relative/path']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not an absolute path/);
  r = await carpctl(['hook', 'add', 'bad', '--', '/bin/true']);
  assert.equal(r.code, 2, 'no --on: a usage error');
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'secret'), 'file-secret-0123456789\n');
  r = await carpctl(['webhook', 'add', 'chat', 'https://198.51.100.20/carpd', '--secret-file', path.join(dir, 'secret'), '--on', 'splitbrain']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().webhooks[0].secret, 'file-secret-0123456789');
  assert.ok(!r.stdout.includes('file-secret'));
  r = await carpctl(['webhook', 'add', 'env', 'http://127.0.0.1:9/x', '--secret-env', 'MY_SECRET', '--on', 'vhid.state'], { MY_SECRET: 'env-secret' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().webhooks[1].secret, 'env-secret');
  r = await carpctl(['webhook', 'show', 'chat']);
  assert.match(r.stdout, /secret:\s+set/);
  r = await carpctl(['hook', 'test', 'wan-up']);
  assert.equal(r.code, 1, 'no hook runner in this process');
  assert.match(r.stderr, /runs no hooks/);
  r = await carpctl(['hook', 'rm', 'wan-up']);
  assert.equal(r.code, 0, r.stderr);
  r = await carpctl(['webhook', 'rm', 'chat']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([h.service.desired().hooks.length, h.service.desired().webhooks.map((w) => w.name)], [0, ['env']]);
});

test('the bootstrap file sets hooks and webhooks; a bad one is refused with the field and changes nothing', async (t) => {
  const { applyBootstrapFile, BootstrapError } = await import('../src/daemon/bootstrap.js');
  const h = await makeHarness();
  t.after(() => h.close());
  const dir = tempDir(t);
  const file = path.join(dir, 'carpd.yaml');
  writeFileSync(file, `hooks:\n  - name: wan-up\n    events: [{type: vhid.state, state: MASTER}]\n    command: [/usr/local/sbin/wan-up]\nwebhooks:\n  - name: chat\n    url: https://198.51.100.20/carpd\n    secret: s3cret-0123\n    events: [{type: splitbrain}]\n`);
  assert.equal(await applyBootstrapFile(h.service, file, h.dir), 'applied');
  assert.deepEqual(h.service.desired().hooks, [{ name: 'wan-up', events: [{ type: 'vhid.state', state: 'MASTER' }], command: ['/usr/local/sbin/wan-up'], timeoutSec: 30, env: {}, nosync: false }]);
  assert.equal(h.service.desired().webhooks[0].secret, 's3cret-0123');
  const revision = h.service.desired().revision;
  for (const [text, why] of [
    ['hooks:\n  - name: x\n    events: [{type: splitbrain}]\n    command: "/bin/echo hi"\n', /argv array/],
    ['hooks:\n  - name: x\n    events: [{type: nope}]\n    command: [/bin/true]\n', /not an event type/],
    ['hooks:\n  - name: x\n    events: [{type: splitbrain}]\n    command: [bin/true]\n', /absolute path/],
    ['webhooks:\n  - name: x\n    url: "ftp://198.51.100.20/"\n    secret: s\n    events: [{type: splitbrain}]\n', /ftp: URLs are not allowed/],
  ] as const) {
    writeFileSync(file, text);
    await assert.rejects(applyBootstrapFile(h.service, file, h.dir), (e: unknown) => e instanceof BootstrapError && why.test(e.message));
    assert.equal(h.service.desired().revision, revision);
  }
});

test('POST /v1/hooks/{name}/test runs the hook once on a made-up event and answers its result', async (t) => {
  const { default: request } = await import('supertest');
  const { buildApp } = await import('../src/api/app.js');
  const { assertMatchesSpec } = await import('./helpers/spec.js');
  const { ADMIN_TOKEN } = await import('./helpers/harness.js');
  const h = await makeHarness();
  t.after(() => h.close());
  const seen: AnyEvent[] = [];
  h.service.events.subscribe((e) => seen.push(e));
  const runner = new HookRunner({ events: h.service.events, desired: () => h.service.desired(), logger: pino({ level: 'silent' }), node: 'node-a' });
  t.after(() => runner.close());
  const app = buildApp({ service: h.service, logger: pino({ level: 'silent' }), version: '0.0.0-test', hookTester: runner });
  const post = async (url: string) => {
    const res = await request(app).post(url).set('Authorization', `Bearer ${ADMIN_TOKEN}`);
    assertMatchesSpec('post', url, res);
    return res;
  };
  const dir = tempDir(t);
  const sh = script(dir, 'hook.sh', 'echo "$CARPD_EVENT $CARPD_INTERFACE $CARPD_VHID $CARPD_STATE $CARPD_REASON"; echo oops >&2; exit "${CODE:-0}"');
  assert.equal((await h.api.post('/v1/hooks', { name: 'up', events: [{ type: 'vhid.state', interface: 'em1', vhid: 7, state: 'BACKUP' }], command: ['/bin/sh', sh] })).status, 201);
  const ran = await post('/v1/hooks/up/test');
  assert.equal(ran.status, 200, ran.text);
  assert.deepEqual({ ...ran.body, ms: 0 }, { hook: 'up', ok: true, exitCode: 0, signal: null, ms: 0, stdout: 'vhid.state em1 7 BACKUP test run of hook up\n', stderr: 'oops\n', truncated: false });
  assert.ok(seen.some((e) => e.type === 'hook.succeeded' && e.data.eventId === 0));
  assert.ok(!seen.some((e) => e.type === 'vhid.state'), 'the made-up event is not published');
  assert.equal((await h.api.put('/v1/hooks/up', { events: [{ type: 'splitbrain' }], command: ['/bin/sh', sh], env: { CODE: '3' } })).status, 200);
  const failed = await post('/v1/hooks/up/test');
  assert.equal(failed.body.ok, false);
  assert.equal(failed.body.reason, 'exit code 3');
  assert.match(failed.body.stdout, /^splitbrain\.detected /);
  const missing = await post('/v1/hooks/nope/test');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'CARPD_ERR_HOOK_NOT_FOUND');
  const none = await h.api.post('/v1/hooks/up/test');
  assert.equal(none.status, 503);
  assert.equal(none.body.code, 'CARPD_ERR_HOOKS_NOT_RUNNING');
});

test('config sync carries hooks and webhooks from primary to secondary over the wire; nosync ones stay home', async (t) => {
  const { startSyncNodeInProcess } = await import('./helpers/sync-inprocess.js');
  const a = await startSyncNodeInProcess('node-a', 'carpd-hooks-sync');
  const b = await startSyncNodeInProcess('node-b', 'carpd-hooks-sync');
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  const patch = (h: Harness, body: unknown) => h.api.patch('/v1/sync', body, { contentType: 'application/merge-patch+json' });
  let r = await patch(b.h, { role: 'secondary', peer: { address: '127.0.0.1', port: a.syncPort, fingerprint: a.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  r = await patch(a.h, { role: 'primary', peer: { address: '127.0.0.1', port: b.syncPort, fingerprint: b.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await b.h.api.post('/v1/hooks', { ...HOOK, name: 'b-own', nosync: true })).status, 201);
  assert.equal((await a.h.api.post('/v1/hooks', HOOK)).status, 201);
  assert.equal((await a.h.api.post('/v1/hooks', { ...HOOK, name: 'a-own', nosync: true })).status, 201);
  assert.equal((await a.h.api.post('/v1/webhooks', WEBHOOK)).status, 201);
  await pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (x) => x === a.h.service.desired().revision);
  assert.deepEqual(b.h.service.desired().hooks.map((x) => x.name).sort(), ['b-own', 'wan-up']);
  assert.equal(b.h.service.desired().webhooks[0].secret, WEBHOOK.secret);
  // Removed on the primary, removed on the secondary.
  assert.equal((await a.h.api.delete('/v1/hooks/wan-up')).status, 204);
  await pollUntil('secondary caught up again', async () => b.h.service.desired().sync.appliedRevision, (x) => x === a.h.service.desired().revision);
  assert.deepEqual(b.h.service.desired().hooks.map((x) => x.name), ['b-own']);
});

test('PUT /v1/config: hooks declared twice, or a new webhook without its secret, are refused with pointers', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await refused(h, 'put', '/v1/config', { vips: [], hooks: [HOOK, HOOK] }, 422, 'CARPD_ERR_INVALID_VALUE', /\/hooks\/1\/name.*used twice/);
  const { secret: _s, ...noSecret } = WEBHOOK;
  await refused(h, 'put', '/v1/config', { vips: [], webhooks: [noSecret] }, 422, 'CARPD_ERR_INVALID_VALUE', /\/webhooks\/0\/secret.*needs a secret/);
  await refused(h, 'put', '/v1/config', { vips: [], hooks: [{ ...HOOK, command: '/bin/echo hi' }] }, 422, 'CARPD_ERR_INVALID_VALUE', /\/hooks\/0\/command.*never a shell string/);
  const ok = await h.api.put('/v1/config', { vips: [], hooks: [HOOK], webhooks: [WEBHOOK] });
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual([h.service.desired().hooks.length, h.service.desired().webhooks.length], [1, 1]);
  // Absent lists stay; an empty list removes them all.
  assert.equal((await h.api.put('/v1/config', { vips: [] })).status, 200);
  assert.equal(h.service.desired().hooks.length, 1);
  assert.equal((await h.api.put('/v1/config', { vips: [], hooks: [], webhooks: [] })).status, 200);
  assert.deepEqual([h.service.desired().hooks.length, h.service.desired().webhooks.length], [0, 0]);
});

test('a rollback makes an older revision hooks and webhooks current again, secret included', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/hooks', HOOK)).status, 201);
  assert.equal((await h.api.post('/v1/webhooks', WEBHOOK)).status, 201);
  const with2 = h.service.desired().revision;
  assert.equal((await h.api.delete('/v1/hooks/wan-up')).status, 204);
  assert.equal((await h.api.delete('/v1/webhooks/chat')).status, 204);
  assert.deepEqual([h.service.desired().hooks.length, h.service.desired().webhooks.length], [0, 0]);
  const back = await h.api.post('/v1/config/rollback', { revision: with2 });
  assert.equal(back.status, 200, back.text);
  assert.deepEqual(h.service.desired().hooks.map((x) => x.name), ['wan-up']);
  assert.deepEqual(h.service.desired().webhooks.map((x) => [x.name, x.secret]), [['chat', WEBHOOK.secret]]);
  assert.ok(!back.text.includes(WEBHOOK.secret), 'the answer never shows the secret');
});
