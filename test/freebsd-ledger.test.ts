/**
 * The FreeBSD backend's address ledger as a base and a log (src/kernel/freebsd/ledger.ts):
 * every save is one appended line that a crash of carpd keeps; opening replays the log and
 * compacts it; a torn or corrupt line is skipped; a failed append falls back to writing the base.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AddressLedger, COMPACT_BYTES, LEDGER_FILE, LEDGER_LOG, readLedger } from '../src/kernel/freebsd/ledger.js';

function stateDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carpd-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a save appends one line that a crash keeps; the next open replays it and compacts', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  a.setAddresses('em0', 1, ['192.0.2.1/24']);
  a.setAddresses('em0', 2, ['192.0.2.2/24', '2001:db8::2/64']);
  await a.save('test');
  const log = readFileSync(path.join(dir, LEDGER_LOG), 'utf8');
  assert.equal(log.split('\n').length, 2, 'one line');
  assert.match(log, /^[0-9a-f]{8} \{/);
  assert.equal(statSync(path.join(dir, LEDGER_LOG)).mode & 0o777, 0o600);
  a.setAddresses('em0', 1, []);
  // A batch's line: written without an fsync, kept by a crash of carpd all the same.
  await a.save('test', { fsync: false });
  // No close: as after a crash of carpd.
  const size = statSync(path.join(dir, LEDGER_LOG)).size;
  assert.deepEqual(await readLedger(dir), { interfaces: ['em0'], addresses: { 'em0/2': ['192.0.2.2/24', '2001:db8::2/64'] }, logLines: 2, skipped: 0, logEnd: size });

  const b = await AddressLedger.open(dir);
  assert.deepEqual([b.interfaces(), b.addresses('em0', 1), b.addresses('em0', 2)], [['em0'], [], ['192.0.2.2/24', '2001:db8::2/64']]);
  assert.equal(statSync(path.join(dir, LEDGER_LOG)).size, 0, 'the log is folded into the base');
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, LEDGER_FILE), 'utf8')).addresses, { 'em0/2': ['192.0.2.2/24', '2001:db8::2/64'] });
  assert.equal(statSync(path.join(dir, LEDGER_FILE)).mode & 0o777, 0o600);
  await b.close();
  await a.close();
});

test('a torn or corrupt line is skipped; the lines around it still count', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  a.setAddresses('em0', 1, ['192.0.2.1/24']);
  await a.save('test');
  const good = readFileSync(path.join(dir, LEDGER_LOG), 'utf8');
  a.setAddresses('em1', 3, ['198.51.100.3/24']);
  a.dropVhid('em0', 1);
  await a.save('test');
  // Between the two lines, one whose checksum does not match; after them, one cut short.
  const all = readFileSync(path.join(dir, LEDGER_LOG), 'utf8');
  writeFileSync(path.join(dir, LEDGER_LOG), `${good}00000000 {"a":{"em0/9":["192.0.2.9/24"]}}\n${all.slice(good.length)}0123abcd {"a":{"em0/5"`);
  const r = await readLedger(dir);
  assert.deepEqual([r.interfaces, r.addresses, r.logLines, r.skipped], [['em0', 'em1'], { 'em1/3': ['198.51.100.3/24'] }, 2, 2]);
  assert.equal(r.logEnd, statSync(path.join(dir, LEDGER_LOG)).size - '0123abcd {"a":{"em0/5"'.length, 'the torn tail starts where the last whole line ends');
  await a.close();
});

test('interfaces dropped and added go through the log; close folds it into the base', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  a.addAddress('vlan0.10', 10, '198.51.100.10/24');
  a.addInterface('em0');
  await a.save('test');
  assert.ok(a.dropInterface('vlan0.10'));
  await a.save('test');
  assert.deepEqual((await readLedger(dir)).interfaces, ['em0']);
  assert.deepEqual((await readLedger(dir)).addresses, {});
  await a.close();
  assert.equal(statSync(path.join(dir, LEDGER_LOG)).size, 0);
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, LEDGER_FILE), 'utf8')), { version: 1, interfaces: ['em0'], addresses: {} });
});

test('a log past COMPACT_BYTES is folded into the base at the next save', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  let i = 0;
  while (statSync(path.join(dir, LEDGER_LOG)).size < COMPACT_BYTES) {
    for (let v = 1; v <= 200; v++) a.setAddresses('em0', v, [`192.0.2.${v}/32`, `2001:db8::${(i % 9) + 1}:${v}/128`]);
    await a.save('test');
    i++;
  }
  a.setAddresses('em1', 1, ['198.51.100.1/24']);
  await a.save('test');
  assert.equal(statSync(path.join(dir, LEDGER_LOG)).size, 0);
  const r = await readLedger(dir);
  assert.equal(Object.keys(r.addresses).length, 201);
  assert.deepEqual(r.addresses['em1/1'], ['198.51.100.1/24']);
  await a.close();
});

test('a base of the old layout (indented JSON, no log) opens as before; an unknown layout is refused', async (t) => {
  const dir = stateDir(t);
  writeFileSync(path.join(dir, LEDGER_FILE), `${JSON.stringify({ version: 1, interfaces: ['em0'], addresses: { 'em0/4': ['192.0.2.4/24', 'nonsense'] } }, null, 2)}\n`);
  const a = await AddressLedger.open(dir);
  assert.deepEqual(a.addresses('em0', 4), ['192.0.2.4/24']);
  await a.close();
  writeFileSync(path.join(dir, LEDGER_FILE), '{"version":2}');
  await assert.rejects(AddressLedger.open(dir), /unknown layout/);
});

test('an append that cannot be written falls back to writing the whole base', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  a.setAddresses('em0', 1, ['192.0.2.1/24']);
  await a.save('test');
  // The log's descriptor closed behind the ledger's back: the append fails (EBADF).
  const fd = (a as unknown as { fd: number }).fd;
  const fs = await import('node:fs');
  fs.closeSync(fd);
  (a as unknown as { fd: number }).fd = 1_000_000;
  a.setAddresses('em0', 2, ['192.0.2.2/24']);
  await a.save('test');
  assert.deepEqual(JSON.parse(readFileSync(path.join(dir, LEDGER_FILE), 'utf8')).addresses, { 'em0/1': ['192.0.2.1/24'], 'em0/2': ['192.0.2.2/24'] });
  assert.deepEqual((await readLedger(dir)).addresses, { 'em0/1': ['192.0.2.1/24'], 'em0/2': ['192.0.2.2/24'] });
});

test('saves run one at a time: a change saved while a compaction is under way is not lost', async (t) => {
  const dir = stateDir(t);
  const a = await AddressLedger.open(dir);
  while (statSync(path.join(dir, LEDGER_LOG)).size < COMPACT_BYTES) {
    for (let v = 1; v <= 200; v++) a.setAddresses('em0', v, [`192.0.2.${v}/32`]);
    await a.save('test');
  }
  a.setAddresses('em1', 1, ['198.51.100.1/24']);
  const compacting = a.save('test');
  a.setAddresses('em1', 2, ['198.51.100.2/24']);
  const next = a.save('test');
  await Promise.all([compacting, next]);
  assert.deepEqual([(await readLedger(dir)).addresses['em1/1'], (await readLedger(dir)).addresses['em1/2']], [['198.51.100.1/24'], ['198.51.100.2/24']]);
  await a.close();
});
