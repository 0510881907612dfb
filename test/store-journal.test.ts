/**
 * The journal on disk: torn tails, damage in the middle, a config.json edited under a journal,
 * snapshots and history across them, pruning, a failed fsync, and the conversion of a state
 * dir written by carpd 0.1.0 (test/fixtures/state-v1).
 */
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import request from 'supertest';
import { buildApp } from '../src/api/app.js';
import { readStoredState } from '../src/config/document.js';
import { encodeLine, readLines } from '../src/config/journal.js';
import { initialState, type DesiredState } from '../src/config/model.js';
import { ConfigFileError, ConfigStore, KEEP_REVISIONS, type RevisionMeta, type StoreLog } from '../src/config/store.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { CarpService } from '../src/service/service.js';
import { controlledIo } from './helpers/journal-io.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'state-v1');

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-journal-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
const init = () => initialState(new Date('2026-01-01T00:00:00Z'));
const never = () => assert.fail('must not re-initialise');
const plain = (s: unknown) => JSON.parse(JSON.stringify(s)) as unknown;
const mode = (f: string) => statSync(f).mode & 0o777;

/** Revision n: VIP em0/n added, or (every third) the advskew of VIP 1 changed. */
function step(s: DesiredState, n: number): DesiredState {
  const vips = n % 3 === 0 && s.vips.length > 0 ? s.vips.map((v, i) => (i === 0 ? { ...v, advskew: n } : v)) : [...s.vips, { interface: 'em0', vhid: n, addresses: [`192.0.2.${n}/24`], advbaseSec: 1, advskew: 0, mode: 'multicast' as const, description: `r${n}`, nosync: false, protocol: 'carp' as const }];
  return { ...s, revision: n, updatedAt: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(), vips };
}

async function commitUpTo(s: ConfigStore, last: number, seen?: Map<number, unknown>): Promise<void> {
  for (let n = s.head().revision + 1; n <= last; n++) {
    await s.commit(step(s.current(), n), { actor: 'test', summary: `r${n}` });
    seen?.set(n, plain(s.current()));
  }
}

function capture(): StoreLog & { warnings: Record<string, unknown>[] } {
  const warnings: Record<string, unknown>[] = [];
  return { warnings, warn: (fields) => void warnings.push(fields), info: () => undefined };
}

const journalOf = (dir: string, base = 0) => path.join(dir, 'revisions', `${String(base).padStart(10, '0')}.journal`);

/** Byte offset of the record of `revision` in a journal file. */
function offsetOf(file: string, revision: number): number {
  const line = readLines(readFileSync(file)).find((l) => l.ok && l.value.revision === revision);
  assert.ok(line, `no record of revision ${revision} in ${file}`);
  return line.offset;
}

for (const [name, tail] of [
  ['an incomplete record', (r: Buffer) => r.subarray(0, Math.floor(r.length / 2))],
  ['a whole record with a wrong checksum', (r: Buffer) => Buffer.concat([Buffer.from('00000000'), r.subarray(8)])],
  ['zeros, as a file system may leave after a crash', (r: Buffer) => Buffer.alloc(r.length)],
] as const) {
  test(`a torn journal tail (${name}) is dropped with a warning naming the file and the offset`, async (t) => {
    const dir = tmp(t);
    const s = await ConfigStore.open(dir, init);
    await commitUpTo(s, 3);
    const file = journalOf(dir);
    const size = statSync(file).size;
    const next = step(s.current(), 4);
    appendFileSync(file, tail(encodeLine({ revision: 4, createdAt: next.updatedAt, actor: 'test', summary: 'never acknowledged', patch: [] })));

    const log = capture();
    const again = await ConfigStore.open(dir, never, { log });
    assert.equal(again.current().revision, 3);
    assert.equal(log.warnings.length, 1);
    assert.deepEqual([log.warnings[0].event, log.warnings[0].file, log.warnings[0].offset], ['journal.torn', file, size]);
    assert.equal(statSync(file).size, size, 'the torn tail is cut off');
    // Appends go on after the last good record.
    await commitUpTo(again, 4);
    const third = await ConfigStore.open(dir, never, { log: capture() });
    assert.equal(third.current().revision, 4);
    assert.deepEqual(plain(third.current()), plain(again.current()));
  });
}

test('a corrupt record in the middle of the journal stops the open with the file, the offset and the reason; nothing is rewritten', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  await commitUpTo(s, 5);
  const file = journalOf(dir);
  const at = offsetOf(file, 3);
  const bytes = readFileSync(file);
  // One bit flipped inside the record's JSON (after the checksum and the space).
  bytes[at + 20] ^= 0x01;
  writeFileSync(file, bytes);
  await assert.rejects(ConfigStore.open(dir, never), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError, String(e));
    assert.equal(e.file, file);
    assert.equal(e.field, `offset ${at}`);
    assert.match(e.reason, /checksum mismatch/);
    assert.match(e.reason, /a valid record follows/);
    assert.ok(e.message.includes(file) && e.message.includes(`offset ${at}`));
    return true;
  });
  assert.ok(readFileSync(file).equals(bytes), 'the journal was rewritten');
});

test('a config.json changed by hand while the journal holds revisions on top of it is refused; with none on top it is the configuration', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  await commitUpTo(s, 2);
  const file = path.join(dir, 'config.json');
  const edited = JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), carp: { enabled: true, preempt: false, maintenance: false } }, null, 2);
  const original = readFileSync(file, 'utf8');
  writeFileSync(file, edited);
  await assert.rejects(ConfigStore.open(dir, never), (e: unknown) => {
    assert.ok(e instanceof ConfigFileError);
    assert.equal(e.file, file);
    assert.match(e.reason, /changed since carpd wrote it.*revisions 1\.\.2/);
    return true;
  });
  assert.equal(readFileSync(file, 'utf8'), edited);

  // After a clean close, config.json holds everything, and an edit of it is taken as it is.
  writeFileSync(file, original);
  const back = await ConfigStore.open(dir, never);
  assert.equal(back.current().revision, 2);
  await back.close();
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), carp: { enabled: true, preempt: false, maintenance: false } }));
  const adopted = await ConfigStore.open(dir, never);
  assert.equal(adopted.current().carp.preempt, false);
  await commitUpTo(adopted, 3);
  assert.equal((await ConfigStore.open(dir, never)).current().carp.preempt, false);
});

test('history and rollback across snapshots: every kept revision is rebuilt from the snapshot before it and the records after', async (t) => {
  const dir = tmp(t);
  const every = 4;
  const seen = new Map<number, unknown>([[0, plain(init())]]);
  const s = await ConfigStore.open(dir, init, { snapshotEveryRevisions: every });
  seen.set(0, plain(s.current()));
  await commitUpTo(s, 11, seen);
  // Snapshots were taken at 4 and 8: config.json holds 8, revisions/ the older ones.
  assert.equal(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).revision, 8);
  assert.deepEqual(readdirSync(path.join(dir, 'revisions')).sort(), ['0000000000.journal', '0000000000.snapshot.json', '0000000004.journal', '0000000004.snapshot.json', '0000000008.journal']);
  for (let n = 0; n <= 11; n++) assert.deepEqual(plain(await s.loadRevision(n)), seen.get(n), `revision ${n}`);

  // The same after a reopen.
  const again = await ConfigStore.open(dir, never, { snapshotEveryRevisions: every });
  assert.deepEqual(again.revisions().map((m) => m.revision), [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  for (let n = 0; n <= 11; n++) assert.deepEqual(plain(await again.loadRevision(n)), seen.get(n), `revision ${n} after a reopen`);

  // A rollback to a revision before both snapshots, through the service as the API does it.
  const backend = new MemoryBackend();
  const service = new CarpService({ store: again, backend, logger: pino({ level: 'silent' }) });
  await service.start();
  const old = (await again.loadRevision(2))!;
  const out = await service.mutate({ actor: 'test' }, 'roll back to revision 2', (draft) => {
    draft.vips = old.vips;
    draft.carp = old.carp;
    draft.pfsync = old.pfsync;
  });
  assert.equal(out.kind === 'done' && out.state.revision, 12);
  assert.deepEqual(plain(again.current().vips), plain(old.vips));
  assert.deepEqual((await backend.listVhids()).map((v) => v.vhid), [1, 2]);
  await service.close();
  assert.deepEqual(plain((await ConfigStore.open(dir, never)).current().vips), plain(old.vips));
});

test('revisions are pruned to the last 50, and the files with them', async (t) => {
  const dir = tmp(t);
  const every = 7;
  const seen = new Map<number, unknown>();
  const s = await ConfigStore.open(dir, init, { snapshotEveryRevisions: every });
  await commitUpTo(s, 130, seen);
  const kept = s.revisions().map((m) => m.revision);
  assert.equal(kept.length, KEEP_REVISIONS);
  assert.deepEqual([kept[0], kept[kept.length - 1]], [130, 81]);
  assert.equal(await s.loadRevision(80), undefined);
  assert.deepEqual(plain(await s.loadRevision(81)), seen.get(81));
  // The snapshot at or before 81 (77) and what follows it; nothing older.
  const files = readdirSync(path.join(dir, 'revisions')).sort();
  assert.equal(files[0], '0000000077.journal');
  assert.ok(files.length <= 2 * Math.ceil(KEEP_REVISIONS / every) + 2, files.join(' '));
  for (const f of files) assert.equal(mode(path.join(dir, 'revisions', f)), 0o600, f);
  const again = await ConfigStore.open(dir, never, { snapshotEveryRevisions: every });
  assert.deepEqual(again.revisions().map((m) => m.revision), kept);
  assert.deepEqual(plain(await again.loadRevision(81)), seen.get(81));
});

test('a commit whose fsync fails is not stored: it is rejected, cut back out of the journal, and the next one takes its revision', async (t) => {
  const dir = tmp(t);
  const io = controlledIo();
  const s = await ConfigStore.open(dir, init, { io });
  await commitUpTo(s, 2);
  const file = journalOf(dir);
  const size = statSync(file).size;
  io.failNextSync();
  await assert.rejects(s.commit(step(s.current(), 3), { actor: 'test', summary: 'lost' }), /EIO/);
  assert.equal(s.current().revision, 2);
  assert.equal(s.head().revision, 2);
  assert.equal(statSync(file).size, size);
  await s.commit(step(s.current(), 3), { actor: 'test', summary: 'kept' });
  const again = await ConfigStore.open(dir, never);
  assert.equal(again.current().revision, 3);
  assert.equal(again.revisions()[0].summary, 'kept');
});

test('a journal that cannot be cut back after a failed fsync refuses every later commit', async (t) => {
  const dir = tmp(t);
  const io = controlledIo();
  const s = await ConfigStore.open(dir, init, { io });
  await commitUpTo(s, 1);
  io.failNextSync();
  io.failNextTruncate();
  await assert.rejects(s.commit(step(s.current(), 2), { actor: 'test', summary: 'lost' }), /EIO/);
  assert.match(String(s.refusal()?.message), /could not be cut back.*restart carpd/);
  await assert.rejects(s.commit(step(s.current(), 2), { actor: 'test', summary: 'refused' }), /restart carpd/);
});

/** The fixture as carpd 0.1.0 wrote it: revision in force, history entries and documents. */
function fixture(): { current: DesiredState; revisions: { meta: RevisionMeta; state: DesiredState }[] } {
  const current = readStoredState(JSON.parse(readFileSync(path.join(FIXTURE, 'config.json'), 'utf8')));
  const revisions = readdirSync(path.join(FIXTURE, 'revisions'))
    .sort()
    .map((n) => JSON.parse(readFileSync(path.join(FIXTURE, 'revisions', n), 'utf8')) as { meta: RevisionMeta; state: unknown })
    .map((r) => ({ meta: r.meta, state: readStoredState(r.state) }));
  return { current, revisions };
}

test('a state dir of carpd 0.1.0 is converted on first open: revision, history and rollback stay; the old revision files go', async (t) => {
  const dir = path.join(tmp(t), 'state');
  cpSync(FIXTURE, dir, { recursive: true });
  rmSync(path.join(dir, 'README.md'));
  const want = fixture();
  assert.equal(want.current.revision, 51);
  assert.equal(want.revisions.length, KEEP_REVISIONS);

  const infos: string[] = [];
  const s = await ConfigStore.open(dir, never, { log: { warn: () => assert.fail('no warning expected'), info: (_f, m) => void infos.push(m) } });
  assert.match(infos.join('\n'), /converted .* revision 51 in force, 50 revisions of history kept, 50 revision files of the earlier format removed/);
  assert.deepEqual(plain(s.current()), plain(want.current));
  assert.deepEqual(
    s.revisions(),
    want.revisions.map((r) => r.meta).reverse(),
  );
  for (const r of want.revisions) assert.deepEqual(plain(await s.loadRevision(r.meta.revision)), plain(r.state), `revision ${r.meta.revision}`);
  // config.json is kept as it was (it is the snapshot the journal starts from); the history
  // became one snapshot and one journal; every file private.
  assert.ok(readFileSync(path.join(dir, 'config.json')).equals(readFileSync(path.join(FIXTURE, 'config.json'))));
  assert.deepEqual(readdirSync(path.join(dir, 'revisions')).sort(), ['0000000002.journal', '0000000002.snapshot.json', '0000000051.journal']);
  assert.equal(mode(dir), 0o700);
  assert.equal(mode(path.join(dir, 'revisions')), 0o700);
  for (const f of ['config.json', ...readdirSync(path.join(dir, 'revisions')).map((n) => path.join('revisions', n))]) assert.equal(mode(path.join(dir, f)), 0o600, f);

  // Through the API: the history is listed and a rollback to revision 40 works.
  const backend = new MemoryBackend({ interfaces: ['em0', 'em1', 'em2'] });
  const logger = pino({ level: 'silent' });
  const service = new CarpService({ store: s, backend, logger });
  assert.equal((await service.start()).ok, true);
  const app = buildApp({ service, logger, version: '0.0.0-test' });
  const auth = { authorization: 'Bearer carpd_fixture_admin_token' };
  const listed = await request(app).get('/v1/config/revisions').set(auth);
  assert.equal(listed.status, 200);
  assert.deepEqual([listed.body.current, listed.body.items.length, listed.body.items[49].revision], [51, 50, 2]);
  const rolled = await request(app).post('/v1/config/rollback').set(auth).send({ revision: 40 });
  assert.equal(rolled.status, 200, rolled.text);
  const r40 = want.revisions.find((r) => r.meta.revision === 40)!.state;
  assert.deepEqual(plain(s.current().vips), plain(r40.vips));
  assert.equal(s.current().revision, 52);
  await service.close();

  const again = await ConfigStore.open(dir, never);
  assert.equal(again.current().revision, 52);
  assert.deepEqual(again.revisions().slice(1), want.revisions.map((r) => r.meta).reverse().slice(0, KEEP_REVISIONS - 1));
  assert.deepEqual(plain(await again.loadRevision(30)), plain(want.revisions.find((r) => r.meta.revision === 30)!.state));
});

test('a conversion interrupted before it removed the old revision files is finished by the next open', async (t) => {
  const dir = path.join(tmp(t), 'state');
  cpSync(FIXTURE, dir, { recursive: true });
  const old = readdirSync(path.join(dir, 'revisions'));
  await ConfigStore.open(dir, never);
  // The old files back, as a kill right after the new journal was written leaves them.
  for (const n of old) cpSync(path.join(FIXTURE, 'revisions', n), path.join(dir, 'revisions', n));
  const again = await ConfigStore.open(dir, never);
  assert.equal(again.current().revision, 51);
  assert.equal(again.revisions().length, KEEP_REVISIONS);
  assert.deepEqual(readdirSync(path.join(dir, 'revisions')).sort(), ['0000000002.journal', '0000000002.snapshot.json', '0000000051.journal']);
});
