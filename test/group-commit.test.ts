/**
 * Group commit in the service: changes made while a journal write is under way share the
 * next one, keep their order (each its own revision, answered in that order, only once durable),
 * and a group whose fsync fails fails with the changes staged on top of it, undone in the
 * backend newest first. The journal's fsync is held or failed through an injected file layer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { readLines } from '../src/config/journal.js';
import { initialState } from '../src/config/model.js';
import { ConfigStore } from '../src/config/store.js';
import { CarpdError } from '../src/errors.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { CarpService } from '../src/service/service.js';
import { createVip } from '../src/service/vips.js';
import { controlledIo, type ControlledIo } from './helpers/journal-io.js';

/** The memory backend, recording the calls that change it. */
class RecordingBackend extends MemoryBackend {
  readonly calls: string[] = [];
  override async setVhid(...a: Parameters<MemoryBackend['setVhid']>) {
    this.calls.push(`set ${a[0]}/${a[1]}`);
    return super.setVhid(...a);
  }
  override async removeVhid(...a: Parameters<MemoryBackend['removeVhid']>) {
    this.calls.push(`remove ${a[0]}/${a[1]}`);
    return super.removeVhid(...a);
  }
  override async addAddress(...a: Parameters<MemoryBackend['addAddress']>) {
    this.calls.push(`add ${a[0]}/${a[1]} ${a[2]}`);
    return super.addAddress(...a);
  }
  override async removeAddress(...a: Parameters<MemoryBackend['removeAddress']>) {
    this.calls.push(`unbind ${a[0]}/${a[1]} ${a[2]}`);
    return super.removeAddress(...a);
  }
}

async function setup(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ dir: string; io: ControlledIo; store: ConfigStore; backend: RecordingBackend; service: CarpService; journal: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-group-'));
  const io = controlledIo();
  const store = await ConfigStore.open(dir, () => initialState(new Date('2026-01-01T00:00:00Z')), { io });
  const backend = new RecordingBackend();
  const service = new CarpService({ store, backend, logger: pino({ level: 'silent' }) });
  await service.start();
  t.after(async () => {
    io.release();
    await service.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, io, store, backend, service, journal: path.join(dir, 'revisions', '0000000000.journal') };
}

const add = (service: CarpService, n: number) => service.mutate({ actor: `writer ${n}` }, `add VIP em0 vhid ${n}`, (d) => createVip(d, 'em0', n, { addresses: [`192.0.2.${n}/24`] }));

/** End offset of each revision's record in the journal. */
function recordEnds(file: string): Map<number, number> {
  return new Map(readLines(readFileSync(file)).flatMap((l) => (l.ok && typeof l.value.revision === 'number' && 'patch' in l.value ? [[l.value.revision, l.end] as [number, number]] : [])));
}

test('concurrent writers share a commit: revisions in arrival order, answered in that order, each only once durable', async (t) => {
  const { io, store, service, journal } = await setup(t);
  const acks: { writer: number; revision: number; durable: number; storeRevision: number }[] = [];
  const write = (n: number) =>
    add(service, n).then((out) => {
      assert.equal(out.kind, 'done');
      acks.push({ writer: n, revision: out.kind === 'done' ? out.state.revision : -1, durable: io.durableSize(journal), storeRevision: store.current().revision });
    });

  // Writer 1's fsync is held; writers 2..8 arrive meanwhile and queue behind it.
  const held = io.holdNextSync();
  const first = write(1);
  await held;
  const rest = [2, 3, 4, 5, 6, 7, 8].map(write);
  assert.equal(acks.length, 0, 'nothing is answered before its fsync');
  io.release();
  await Promise.all([first, ...rest]);

  assert.deepEqual(acks.map((a) => a.writer), [1, 2, 3, 4, 5, 6, 7, 8], 'answered in arrival order');
  assert.deepEqual(acks.map((a) => a.revision), [1, 2, 3, 4, 5, 6, 7, 8], 'revisions in arrival order');
  // Two fsyncs for eight commits: writer 1's, then one for the seven that queued behind it.
  assert.equal(io.synced.length, 2);
  const ends = recordEnds(journal);
  for (const a of acks) {
    assert.ok(a.durable >= ends.get(a.revision)!, `revision ${a.revision} was answered before its record was fsynced`);
    assert.ok(a.storeRevision >= a.revision);
  }
  assert.deepEqual(store.revisions().slice(0, 8).map((m) => m.actor), [8, 7, 6, 5, 4, 3, 2, 1].map((n) => `writer ${n}`));
});

test('writes go on while a group is written; a group whose fsync fails fails with those staged on top of it, undone newest first; the next write goes on', async (t) => {
  const { dir, io, store, backend, service, journal } = await setup(t);
  await add(service, 1);
  const size = statSync(journal).size;
  backend.calls.length = 0;

  // Writer 2's fsync is held and will fail; 3 and 4 arrive meanwhile.
  const held = io.holdNextSync();
  io.failNextSync();
  const fails = (p: Promise<unknown>, n: number) =>
    p.then(
      () => assert.fail(`writer ${n} must fail`),
      (e: unknown) => e,
    );
  const f2 = fails(add(service, 2), 2);
  await held;
  const f34 = [fails(add(service, 3), 3), fails(add(service, 4), 4)];
  // They are validated, applied and staged without waiting for writer 2's fsync.
  while (store.head().revision < 4) await new Promise((r) => setImmediate(r));
  assert.deepEqual((await backend.listVhids()).map((v) => v.vhid), [1, 2, 3, 4]);
  assert.equal(store.current().revision, 1, 'nothing is in force before its fsync');
  io.release();
  for (const e of await Promise.all([f2, ...f34])) assert.ok(e instanceof CarpdError && e.code === 'CARPD_ERR_STORE_UNWRITABLE' && e.store?.errno === 'EIO', String(e));
  // Applied 2, 3, 4; undone 4, 3, 2 (3 and 4 were planned on 2).
  assert.deepEqual(
    backend.calls.filter((c) => c.startsWith('remove')),
    ['remove em0/4', 'remove em0/3', 'remove em0/2'],
  );
  assert.deepEqual((await backend.listVhids()).map((v) => v.vhid), [1]);
  assert.deepEqual([store.current().revision, store.head().revision], [1, 1]);
  assert.equal(statSync(journal).size, size, 'the group was cut back out of the journal');
  const next = await add(service, 5);
  assert.equal(next.kind === 'done' && next.state.revision, 2, 'the next write takes the revision the failed ones did not keep');
  const again = await ConfigStore.open(dir, () => assert.fail('must not re-initialise'));
  assert.deepEqual(again.current().vips.map((v) => v.vhid), [1, 5]);
  assert.deepEqual(again.revisions().slice(0, 2).map((m) => m.actor), ['writer 5', 'writer 1']);
});

test('a failed group of several writes: each fails, and the backend is undone newest first', async (t) => {
  const { io, store, backend, service, journal } = await setup(t);
  await add(service, 1);
  const size = statSync(journal).size;
  backend.calls.length = 0;
  // Three writers in the same turn: one group, whose fsync fails.
  io.failNextSync();
  const group = [2, 3, 4].map((n) =>
    add(service, n).then(
      () => assert.fail(`writer ${n} must fail`),
      (e: unknown) => e,
    ),
  );
  for (const e of await Promise.all(group)) assert.ok(e instanceof CarpdError && e.code === 'CARPD_ERR_STORE_UNWRITABLE' && e.store?.errno === 'EIO', String(e));
  // Writer 1's fsync, then (the group's having failed) the one that made the cut-back durable.
  assert.deepEqual(io.synced.map((x) => x.size), [size, size]);
  // Applied in order 2, 3, 4; undone 4, 3, 2.
  assert.deepEqual(
    backend.calls.filter((c) => c.startsWith('set')),
    ['set em0/2', 'set em0/3', 'set em0/4'],
  );
  assert.deepEqual(
    backend.calls.filter((c) => c.startsWith('remove')),
    ['remove em0/4', 'remove em0/3', 'remove em0/2'],
  );
  assert.deepEqual((await backend.listVhids()).map((v) => v.vhid), [1]);
  assert.deepEqual([store.current().revision, store.head().revision], [1, 1]);
  assert.equal(statSync(journal).size, size, 'the group was cut back out of the journal');
  const next = await add(service, 5);
  assert.equal(next.kind === 'done' && next.state.revision, 2);
});
