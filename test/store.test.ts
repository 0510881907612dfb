import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { initialState, type DesiredState } from '../src/config/model.js';
import { DocumentError, readBootstrap, readStoredState } from '../src/config/document.js';
import { ConfigFileError, ConfigStore, KEEP_REVISIONS } from '../src/config/store.js';

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-store-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
const init = () => initialState(new Date('2026-01-01T00:00:00Z'));
const withVip = (s: DesiredState, n: number): DesiredState => ({
  ...s,
  revision: s.revision + 1,
  vips: [...s.vips, { interface: 'em0', vhid: n, addresses: [`192.0.2.${n}/24`], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, protocol: 'carp', password: 'pw' }],
});

test('a first open creates revision 0 with 0600 files in a 0700 directory', async (t) => {
  const dir = path.join(tmp(t), 'state');
  const s = await ConfigStore.open(dir, init);
  assert.equal(s.current().revision, 0);
  assert.equal(statSync(path.join(dir, 'config.json')).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  for (const f of readdirSync(path.join(dir, 'revisions'))) assert.equal(statSync(path.join(dir, 'revisions', f)).mode & 0o777, 0o600);
});

test('commits survive a reopen; revisions are listed newest first', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  await s.commit(withVip(s.current(), 1), { actor: 'a', summary: 'one' });
  await s.commit(withVip(s.current(), 2), { actor: 'b', summary: 'two' });
  const again = await ConfigStore.open(dir, () => assert.fail('must not re-initialise'));
  assert.equal(again.current().revision, 2);
  assert.equal(again.current().vips.length, 2);
  assert.deepEqual(again.revisions().map((r) => r.summary), ['two', 'one', 'initial configuration']);
  assert.equal((await again.loadRevision(1))?.vips.length, 1);
});

test('only the last 50 revisions are kept', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  for (let i = 1; i <= KEEP_REVISIONS + 5; i++) await s.commit({ ...s.current(), revision: i, carp: { ...s.current().carp, preempt: i % 2 === 0 } }, { actor: 'x', summary: `r${i}` });
  assert.equal(s.revisions().length, KEEP_REVISIONS);
  // One journal holds them (revisions/<N>.journal, N the revision config.json holds).
  assert.deepEqual(readdirSync(path.join(dir, 'revisions')), ['0000000000.journal']);
  assert.equal(await s.loadRevision(5), undefined);
  assert.equal((await s.loadRevision(55))?.revision, 55);
});

test('a commit out of sequence is refused', async (t) => {
  const s = await ConfigStore.open(tmp(t), init);
  await assert.rejects(s.commit({ ...s.current(), revision: 5 }, { actor: 'x', summary: 'skip' }));
});

test('a revision file newer than config.json (crash between the two writes) is dropped; stale temp files are removed', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  await s.commit(withVip(s.current(), 1), { actor: 'a', summary: 'one' });
  writeFileSync(path.join(dir, 'revisions', '0000000002.json'), JSON.stringify({ meta: { revision: 2, createdAt: 'x', actor: 'a', summary: 'never acked' }, state: {} }));
  writeFileSync(path.join(dir, 'config.json.tmp-abc'), '{"half');
  const again = await ConfigStore.open(dir, init);
  assert.equal(again.current().revision, 1);
  assert.ok(!readdirSync(path.join(dir, 'revisions')).includes('0000000002.json'));
  assert.ok(!readdirSync(dir).some((n) => n.includes('.tmp-')));
});

for (const [name, content, field] of [
  ['truncated JSON', '{"schemaVersion": 1, "revis', ''],
  ['an advskew of 999', null, '/vips/em0/1/advskew'],
  ['an unknown field', 'unknown', '/bogus'],
  ['a newer schema version', 'schema', '/schemaVersion'],
] as const) {
  test(`a config.json with ${name} is refused naming the field, and left untouched`, async (t) => {
    const dir = tmp(t);
    const s = await ConfigStore.open(dir, init);
    await s.commit(withVip(s.current(), 1), { actor: 'a', summary: 'one' });
    // A clean close writes the whole configuration in force to config.json.
    await s.close();
    const file = path.join(dir, 'config.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    let text = content as string | null;
    if (content === null) {
      doc.vips[0].advskew = 999;
      text = JSON.stringify(doc);
    } else if (content === 'unknown') text = JSON.stringify({ ...doc, bogus: 1 });
    else if (content === 'schema') text = JSON.stringify({ ...doc, schemaVersion: 2 });
    writeFileSync(file, text!);
    await assert.rejects(ConfigStore.open(dir, init), (e: unknown) => {
      assert.ok(e instanceof ConfigFileError);
      assert.equal(e.file, file);
      assert.equal(e.field, field);
      assert.ok(e.reason.length > 5);
      return true;
    });
    assert.equal(readFileSync(file, 'utf8'), text);
  });
}

test('config.json missing while revisions exist is refused rather than silently starting empty', async (t) => {
  const dir = tmp(t);
  const s = await ConfigStore.open(dir, init);
  await s.commit(withVip(s.current(), 1), { actor: 'a', summary: 'one' });
  rmSync(path.join(dir, 'config.json'));
  await assert.rejects(ConfigStore.open(dir, init), ConfigFileError);
});

test('a VIP stored without protocol reads as carp; a stored vrrpv3 VIP round-trips through a reopen', async (t) => {
  const dir = tmp(t);
  await ConfigStore.open(dir, init);
  const file = path.join(dir, 'config.json');
  // The shape every document written before VRRPv3 has: no protocol, no VRRP fields.
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  doc.vips = [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], advbaseSec: 1, advskew: 10, mode: 'multicast', description: '', nosync: false }];
  writeFileSync(file, JSON.stringify(doc));
  const old = await ConfigStore.open(dir, init);
  assert.deepEqual(JSON.parse(JSON.stringify(old.current().vips[0])), { ...doc.vips[0], protocol: 'carp' });

  const vrrp = { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'], advbaseSec: 1, advskew: 0, mode: 'multicast' as const, description: '', nosync: false, protocol: 'vrrpv3' as const, vrrpPriority: 150, vrrpInterval: 50 };
  await old.commit({ ...old.current(), revision: 1, vips: [...old.current().vips, vrrp] }, { actor: 'a', summary: 'vrrp' });
  const again = await ConfigStore.open(dir, init);
  assert.deepEqual(again.current().vips.map((v) => [v.vhid, v.protocol, v.vrrpPriority, v.vrrpInterval]), [[1, 'carp', undefined, undefined], [2, 'vrrpv3', 150, 50]]);
});

test('stored and bootstrap VRRPv3 rules: the field and the reason', () => {
  const base = init();
  const stored = (vip: Record<string, unknown>) => ({ ...base, vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, ...vip }] });
  const refused = (fn: () => unknown, field: string, reason: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof DocumentError, String(e));
      assert.equal(e.field, field);
      assert.match(e.reason, reason);
      return true;
    });
  refused(() => readStoredState(stored({ protocol: 'vrrpv3', vrrpPriority: 255 })), '/vips/em0/1/vrrpPriority', /address owner/);
  refused(() => readStoredState(stored({ protocol: 'vrrpv3', password: 'pw' })), '/vips/em0/1/password', /no authentication/);
  refused(() => readStoredState(stored({ protocol: 'vrrpv3', advskew: 20 })), '/vips/em0/1/advskew', /vrrpPriority/);
  refused(() => readStoredState(stored({ vrrpInterval: 100 })), '/vips/em0/1/vrrpInterval', /only used with protocol vrrpv3/);
  refused(() => readStoredState(stored({ protocol: 'vrrp' })), '/vips/0/protocol', /carp, vrrpv3/);
  const defaults = readStoredState(stored({ protocol: 'vrrpv3' })).vips[0];
  assert.deepEqual([defaults.vrrpPriority, defaults.vrrpInterval], [100, 100]);

  const boot = (vip: Record<string, unknown>) => ({ vips: [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], ...vip }] });
  refused(() => readBootstrap(boot({ protocol: 'vrrpv3', advbase: 1 }), base), '/vips/0/advbase', /vrrpInterval/);
  refused(() => readBootstrap(boot({ protocol: 'vrrpv3', password: 'pw' }), base), '/vips/em0/1/password', /no authentication/);
  const b = readBootstrap(boot({ protocol: 'vrrpv3', vrrpPriority: 120 }), base);
  assert.deepEqual([b.vips?.[0].protocol, b.vips?.[0].vrrpPriority, b.vips?.[0].vrrpInterval], ['vrrpv3', 120, 100]);
});
