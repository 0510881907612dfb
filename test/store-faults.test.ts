/**
 * Storage faults answered as such: a write to the state directory that fails with ENOSPC or
 * EDQUOT is 507 CARPD_ERR_STORE_FULL, with EROFS (EIO, EACCES, EPERM) 503
 * CARPD_ERR_STORE_UNWRITABLE with Retry-After, anything else 500 CARPD_ERR_STORE; the problem
 * names the file and the errno. Nothing of the undone change stays in the state directory (a
 * record cut short by the fault, a snapshot's files), status shows the directory not writable
 * until the next write goes through, and a restart loads the state. The faults are injected in
 * the journal's file layer (test/helpers/faulty-io.ts); test/store-full-tmpfs.test.ts makes a
 * real file system run full.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { ConfigStore, StoreWriteError, type StoreOptions } from '../src/config/store.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { loadOrCreateIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { storeWriteError } from '../src/config/store-error.js';
import { CarpdError, ERROR_CODES, problemOf } from '../src/errors.js';
import { STORE_RETRY_AFTER_SEC, storeErrorCode, storeFailure } from '../src/service/store-errors.js';
import { renderStatus, storeLine } from '../src/cli/status.js';
import { createVip } from '../src/service/vips.js';
import { faultyIo, fsError } from './helpers/faulty-io.js';
import { ManualClock, makeHarness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { listing } from './helpers/state-listing.js';

test('errno to code: ENOSPC and EDQUOT are 507, EROFS, EIO, EACCES and EPERM 503, others 500', () => {
  const cases: [string | undefined, string, number][] = [
    ['ENOSPC', 'CARPD_ERR_STORE_FULL', 507],
    ['EDQUOT', 'CARPD_ERR_STORE_FULL', 507],
    ['EROFS', 'CARPD_ERR_STORE_UNWRITABLE', 503],
    ['EIO', 'CARPD_ERR_STORE_UNWRITABLE', 503],
    ['EACCES', 'CARPD_ERR_STORE_UNWRITABLE', 503],
    ['EPERM', 'CARPD_ERR_STORE_UNWRITABLE', 503],
    ['EBADF', 'CARPD_ERR_STORE', 500],
    [undefined, 'CARPD_ERR_STORE', 500],
  ];
  for (const [errno, code, status] of cases) {
    assert.equal(storeErrorCode(errno), code, String(errno));
    assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES].status, status);
  }
  const fault = storeWriteError('could not append to', '/state/revisions/0000000000.journal', fsError('ENOSPC', 'write'));
  assert.equal(fault.message, 'could not append to /state/revisions/0000000000.journal: ENOSPC (file system error)');
  const e = storeFailure(fault, (why) => `not stored (${why})`);
  assert.equal(e.code, 'CARPD_ERR_STORE_FULL');
  assert.deepEqual(problemOf(e).store, { path: '/state/revisions/0000000000.journal', errno: 'ENOSPC' });
  assert.equal(e.retryAfterSec, undefined);
  const ro = storeFailure(storeWriteError('could not append to', '/s/j', fsError('EROFS', 'write')), (why) => why);
  assert.equal(ro.retryAfterSec, STORE_RETRY_AFTER_SEC);
  // A failure the file system did not name (a closed store, a bug) stays a 500 without `store`.
  const other = storeFailure(new Error('the configuration store is closed'), (why) => why);
  assert.equal(other.code, 'CARPD_ERR_STORE');
  assert.equal(problemOf(other).store, undefined);
});

for (const [errno, code, status] of [
  ['ENOSPC', 'CARPD_ERR_STORE_FULL', 507],
  ['EDQUOT', 'CARPD_ERR_STORE_FULL', 507],
  ['EROFS', 'CARPD_ERR_STORE_UNWRITABLE', 503],
] as const) {
  test(`${errno} on a commit: ${status} ${code} naming the journal, the change undone and cut out of the file, status not writable until the next write, a restart loads it`, async (t) => {
    const io = faultyIo();
    const dir = mkdtempSync(path.join(tmpdir(), 'carpd-faults-'));
    const h = await makeHarness({ dir, storeOptions: { io } });
    let open = true;
    t.after(async () => {
      if (open) await h.close();
      rmSync(dir, { recursive: true, force: true });
    });
    assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] })).status, 201);
    const before = listing(h.dir);
    const statusBefore = (await h.api.get('/v1/status')).body;
    assert.deepEqual(statusBefore.store, { writable: true, lastError: null });

    // A short write: part of the record reaches the file, then the file system refuses the rest.
    io.failNextAppend(errno);
    const r = await h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'], description: 'x'.repeat(200) });
    assert.equal(r.status, status, r.text);
    assert.equal(r.body.code, code);
    const journal = path.join(h.dir, 'revisions', '0000000000.journal');
    assert.deepEqual(r.body.store, { path: journal, errno });
    assert.match(r.body.detail, new RegExp(`${errno}.*undone`));
    assert.equal(r.headers['retry-after'], status === 503 ? String(STORE_RETRY_AFTER_SEC) : undefined);
    // Nothing stored, nothing applied, nothing left behind.
    assert.deepEqual(listing(h.dir), before, 'the state dir holds exactly what it held before');
    assert.deepEqual((await h.api.get('/v1/vips')).body.items.map((v: { vhid: number }) => v.vhid), [1]);
    assert.deepEqual((await h.backend.listVhids()).map((v) => v.vhid), [1]);

    const down = (await h.api.get('/v1/status')).body;
    assert.equal(down.store.writable, false);
    assert.equal(down.store.lastError.errno, errno);
    assert.equal(down.store.lastError.path, journal);
    assert.equal(typeof down.store.lastError.at, 'string');
    assert.match(renderStatus(down), /^store: +state dir NOT WRITABLE/m);
    assert.match((await h.api.get('/metrics')).text, /^carpd_state_dir_writable 0$/m);
    assert.doesNotMatch(renderStatus(statusBefore), /^store:/m);
    assert.match(storeLine(down.store), new RegExp(`^state dir NOT WRITABLE since .*: ${errno} on ${journal.replace(/[.]/g, '\\.')}`));

    // Space is back: the next write goes through and status says so.
    const ok = await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'] });
    assert.equal(ok.status, 201, ok.text);
    assert.deepEqual((await h.api.get('/v1/status')).body.store, { writable: true, lastError: null });
    assert.match((await h.api.get('/metrics')).text, /^carpd_state_dir_writable 1$/m);

    await h.close();
    open = false;
    const again = await ConfigStore.open(h.dir, () => assert.fail('must not re-initialise'));
    t.after(() => again.close());
    assert.deepEqual(again.current().vips.map((v) => v.vhid), [1, 3]);
    assert.equal(again.current().revision, 2);
  });
}

test('a store fault changes the status at once, also while the status is cached (the fast path)', async (t) => {
  const io = faultyIo();
  const h = await makeHarness({ storeOptions: { io } });
  t.after(() => h.close());
  const s1 = await h.service.status();
  assert.equal(h.service.freshStatus(), s1, 'cached');
  io.failNextAppend('ENOSPC', 0);
  await assert.rejects(
    h.service.mutate({ actor: 't' }, 'add', (d) => createVip(d, 'em0', 9, { addresses: ['192.0.2.9/24'] })),
    (e: unknown) => e instanceof CarpdError && e.code === 'CARPD_ERR_STORE_FULL',
  );
  assert.equal(h.service.freshStatus(), undefined, 'the cached status is stale once the store failed');
  const s2 = await h.service.status();
  assert.equal(s2.store.writable, false);
  const first = (await h.api.get('/v1/status')).headers.etag;
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 4, addresses: ['192.0.2.4/24'] })).status, 201);
  const after = await h.api.get('/v1/status');
  assert.equal(after.body.store.writable, true);
  assert.notEqual(after.headers.etag, first);
});

test('a snapshot that cannot be finished leaves none of its files; the commit before it stands', async (t) => {
  const io = faultyIo();
  const h = await makeHarness({ storeOptions: { io, snapshotEveryRevisions: 2 } });
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] })).status, 201);
  // The second revision is due for a snapshot: config.json linked into revisions/, a new journal
  // written — and opening it fails. Neither may stay.
  io.failNextOpen('ENOSPC');
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'] })).status, 201);
  // The snapshot follows the commit's answer: wait for it to have failed.
  await pollUntil('the snapshot failed', async () => h.store.health().writable, (w) => !w);
  assert.deepEqual(Object.keys(listing(h.dir)).filter((f) => f !== 'admin.token').sort(), ['config.json', 'revisions/0000000000.journal']);
  const st = (await h.api.get('/v1/status')).body.store;
  assert.equal(st.writable, false);
  assert.equal(st.lastError.errno, 'ENOSPC');
  assert.equal(st.lastError.path, path.join(h.dir, 'revisions', '0000000002.journal'));
  // The snapshot is tried again after the next flush, and the next commit is stored: writable again.
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'] })).status, 201);
  await h.store.flush();
  assert.equal((await h.api.get('/v1/status')).body.store.writable, true);
  assert.ok(readdirSync(path.join(h.dir, 'revisions')).includes('0000000003.journal'), JSON.stringify(listing(h.dir)));
  assert.equal(JSON.parse(readFileSync(path.join(h.dir, 'config.json'), 'utf8')).revision, 3);
});

test('a journal that cannot be cut back refuses further changes with the errno of that failure', async (t) => {
  const io = faultyIo();
  const h = await makeHarness({ storeOptions: { io } });
  t.after(() => h.close());
  // The append fails with ENOSPC, and cutting the half-written record back fails with EIO.
  const orig = io.open.bind(io);
  let failTruncate = true;
  io.open = async (file) => {
    const hd = await orig(file);
    return {
      get size() {
        return hd.size;
      },
      append: (d) => hd.append(d),
      sync: () => hd.sync(),
      truncate: (n) => (failTruncate ? ((failTruncate = false), Promise.reject(fsError('EIO', 'ftruncate'))) : hd.truncate(n)),
      close: () => hd.close(),
    };
  };
  await h.store.close();
  const h2 = await makeHarness({ dir: h.dir, storeOptions: { io } });
  let open = true;
  t.after(() => (open ? h2.close() : undefined));
  io.failNextAppend('ENOSPC');
  const r1 = await h2.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] });
  assert.equal(r1.status, 507, r1.text);
  assert.match(r1.body.detail, /part of its record stays at the end of the journal until carpd is restarted/);
  const r2 = await h2.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'] });
  assert.equal(r2.status, 503, r2.text);
  assert.equal(r2.body.code, 'CARPD_ERR_STORE_UNWRITABLE');
  assert.equal(r2.body.store.errno, 'EIO');
  assert.match(r2.body.detail, /restart carpd/);
  assert.ok(h2.store.refusal() instanceof StoreWriteError);
  // The restart drops the half-written record and loads the state as it was.
  await h2.close();
  open = false;
  const again = await ConfigStore.open(h.dir, () => assert.fail('must not re-initialise'));
  t.after(() => again.close());
  assert.deepEqual(again.current().vips, []);
  assert.equal(again.current().revision, 0);
});

test('sync: a secondary that cannot store a pushed revision refuses it with the store problem (ENOSPC, the file); it keeps its state, and the primary pushes again until it is stored', async (t) => {
  const dirs = [mkdtempSync(path.join(tmpdir(), 'carpd-faults-a-')), mkdtempSync(path.join(tmpdir(), 'carpd-faults-b-'))];
  t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const io = faultyIo();
  const node = async (name: string, dir: string, storeOptions?: StoreOptions) => {
    const clock = new ManualClock();
    const h = await makeHarness({ dir, clock, backend: new MemoryBackend({ clock, interfaces: ['em0', 'em1'] }), storeOptions });
    const identity = await loadOrCreateIdentity(dir, name);
    const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: name, listen: { host: '127.0.0.1', port: 0 }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000 });
    h.attachSync(sync);
    t.after(async () => {
      await sync.close();
      await h.close();
    });
    return { h, identity, sync, port: sync.port! };
  };
  const a = await node('node-a', dirs[0]);
  const b = await node('node-b', dirs[1], { io });
  assert.equal((await b.h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: a.port, fingerprint: a.identity.fingerprint }, localAddresses: ['192.0.2.11/24'] })).status, 200);
  assert.equal((await a.h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: b.port, fingerprint: b.identity.fingerprint }, localAddresses: ['192.0.2.10/24'] })).status, 200);
  const synced = () => pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (r) => r === a.h.service.desired().revision);
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] })).status, 201);
  await synced();
  const kept = b.h.service.desired();

  const failures: string[] = [];
  t.after(a.h.service.events.subscribe((e) => void (e.type === 'sync.failed' && failures.push((e.data as { error: string }).error))));
  io.failNextAppend('ENOSPC');
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'] })).status, 201);
  // The first push is refused with the secondary's problem; the next one (the fault was once) is stored.
  await synced();
  assert.equal(failures.length, 1, failures.join('\n'));
  assert.match(failures[0], new RegExp(`the secondary refused revision ${a.h.service.desired().revision}: .*could not be stored.*ENOSPC`));
  assert.ok(failures[0].includes(path.join(dirs[1], 'revisions', '0000000000.journal')), failures[0]);
  assert.deepEqual(b.h.service.desired().vips.map((v) => v.vhid), [1, 2]);
  assert.equal(b.h.service.desired().revision, kept.revision + 1, 'the refused push left no revision behind');
  assert.equal((await b.h.api.get('/v1/status')).body.store.writable, true);
});
