import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN_TOKEN, READ_TOKEN, makeHarness } from './helpers/harness.js';
import { hashToken } from '../src/service/service.js';

test('GET /v1/config answers the desired state with ETag "<revision>" and no secrets', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], password: 'topsecret1' });
  await h.api.put('/v1/pfsync', { enabled: true, syncdev: 'em1' });
  const res = await h.api.get('/v1/config');
  assert.equal(res.status, 200);
  assert.equal(res.body.revision, 2);
  assert.equal(res.headers.etag, `"${res.body.revision}"`);
  assert.equal(res.body.schemaVersion, 1);
  assert.equal(res.body.vips.length, 1);
  assert.equal(res.body.vips[0].hasPassword, true);
  assert.equal(res.body.pfsync.syncdev, 'em1');
  assert.deepEqual(res.body.api.tokens.map((x: { name: string }) => x.name), ['admin', 'reader']);
  assert.doesNotMatch(res.text, /"password"/);
  assert.doesNotMatch(res.text, /sha256/i);
  assert.ok(!res.text.includes('topsecret1'));
  assert.ok(!res.text.includes(hashToken(ADMIN_TOKEN)));
  assert.ok(!res.text.includes(ADMIN_TOKEN));
});

test('the revision list grows with every change, newest first', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const first = await h.api.get('/v1/config/revisions');
  assert.equal(first.status, 200);
  assert.equal(first.body.current, 0);
  assert.deepEqual(first.body.items.map((r: { revision: number }) => r.revision), [0]);

  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] });
  await h.api.patch('/v1/carp', { preempt: false });
  // A change that changes nothing makes no revision.
  await h.api.patch('/v1/carp', { preempt: false });
  const list = await h.api.get('/v1/config/revisions');
  assert.equal(list.body.current, 2);
  assert.deepEqual(list.body.items.map((r: { revision: number }) => r.revision), [2, 1, 0]);
  assert.equal(list.body.items[0].actor, 'token:admin');
  assert.match(list.body.items[0].summary, /preempt=false/);
  assert.match(list.body.items[1].summary, /add VIP em0 vhid 1/);
});

test('a rollback restores the VIPs of an older revision as a new revision and keeps the tokens', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], advskew: 5 }); // 1
  await h.api.post('/v1/vips', { interface: 'em1', vhid: 2, addresses: ['198.51.100.2/24'] }); // 2
  await h.api.patch('/v1/vips/em0/1', { advskew: 77 }); // 3
  const created = await h.api.post('/v1/tokens', { name: 'ops', role: 'admin' }); // 4
  assert.equal(created.status, 201);

  const rolled = await h.api.post('/v1/config/rollback', { revision: 1 });
  assert.equal(rolled.status, 200);
  assert.equal(rolled.headers.etag, '"5"');
  assert.equal(rolled.body.revision, 5);
  assert.deepEqual(
    rolled.body.vips.map((v: { interface: string; vhid: number; advskew: number }) => [v.interface, v.vhid, v.advskew]),
    [['em0', 1, 5]],
  );
  assert.deepEqual(rolled.body.api.tokens.map((x: { name: string }) => x.name), ['admin', 'reader', 'ops']);
  const live = await h.backend.listVhids();
  assert.deepEqual(live.map((v) => [v.interface, v.vhid, v.advskew]), [['em0', 1, 5]]);
  // The token created after revision 1 still works.
  assert.equal((await h.api.get('/v1/status', { token: created.body.token })).status, 200);
  const revisions = await h.api.get('/v1/config/revisions');
  assert.equal(revisions.body.items[0].revision, 5);
  assert.match(revisions.body.items[0].summary, /roll back to revision 1/);
});

test('a rollback to a revision that is not stored is 404 CARPD_ERR_REVISION_NOT_FOUND', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] });
  const res = await h.api.post('/v1/config/rollback', { revision: 42 });
  assert.equal(res.status, 404);
  assert.equal(res.body.code, 'CARPD_ERR_REVISION_NOT_FOUND');
  assert.match(res.body.detail, /42/);
  assert.equal((await h.api.get('/v1/config')).body.revision, 1);
});

test('If-Match: the current revision and * succeed; a stale one is 412 with the current revision', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const ok = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] }, { headers: { 'If-Match': '"0"' } });
  assert.equal(ok.status, 201);
  assert.equal(ok.headers.etag, '"1"');
  const star = await h.api.patch('/v1/vips/em0/1', { advskew: 3 }, { headers: { 'If-Match': '*' } });
  assert.equal(star.status, 200);
  const list = await h.api.patch('/v1/vips/em0/1', { advskew: 4 }, { headers: { 'If-Match': '"0", "2"' } });
  assert.equal(list.status, 200);
  assert.equal(list.headers.etag, '"3"');

  const stale = await h.api.patch('/v1/vips/em0/1', { advskew: 9 }, { headers: { 'If-Match': '"1"' } });
  assert.equal(stale.status, 412);
  assert.equal(stale.body.code, 'CARPD_ERR_PRECONDITION_FAILED');
  assert.equal(stale.body.currentRevision, 3);
  assert.equal((await h.api.get('/v1/vips/em0/1')).body.advskew, 4);
  const staleRollback = await h.api.post('/v1/config/rollback', { revision: 0 }, { headers: { 'If-Match': '"2"' } });
  assert.equal(staleRollback.status, 412);
  const staleToken = await h.api.post('/v1/tokens', { name: 'late', role: 'read' }, { headers: { 'If-Match': '"2"' } });
  assert.equal(staleToken.status, 412);
  assert.equal((await h.api.get('/v1/config')).body.revision, 3);
});

test('a created token is shown once, then authenticates; the list never shows secrets', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/tokens', { name: 'monitoring', role: 'read' });
  assert.equal(created.status, 201);
  assert.equal(created.headers.etag, '"1"');
  assert.equal(created.body.name, 'monitoring');
  assert.equal(created.body.role, 'read');
  assert.match(created.body.token, /^carpd_/);
  const secret = created.body.token as string;

  const status = await h.api.get('/v1/status', { token: secret });
  assert.equal(status.status, 200);
  const list = await h.api.get('/v1/tokens', { token: secret });
  assert.deepEqual(list.body.items.map((x: { name: string; role: string }) => [x.name, x.role]), [
    ['admin', 'admin'],
    ['reader', 'read'],
    ['monitoring', 'read'],
  ]);
  assert.ok(!list.text.includes(secret));
  assert.ok(!list.text.includes(hashToken(secret)));
  assert.ok(!(await h.api.get('/v1/config')).text.includes(hashToken(secret)));

  const denied = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] }, { token: secret });
  assert.equal(denied.status, 403);
  assert.equal(denied.body.code, 'CARPD_ERR_FORBIDDEN');
});

test('a read token is refused every change with 403', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const attempts = [
    await h.api.post('/v1/tokens', { name: 'x', role: 'admin' }, { token: READ_TOKEN }),
    await h.api.delete('/v1/tokens/admin', { token: READ_TOKEN }),
    await h.api.patch('/v1/carp', { enabled: false }, { token: READ_TOKEN }),
    await h.api.post('/v1/config/rollback', { revision: 0 }, { token: READ_TOKEN }),
  ];
  for (const r of attempts) {
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'CARPD_ERR_FORBIDDEN');
  }
  assert.equal((await h.api.get('/v1/tokens', { token: READ_TOKEN })).status, 200);
  assert.equal((await h.api.get('/v1/config')).body.revision, 0);
});

test('a revoked token stops working; unknown tokens are 404', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const del = await h.api.delete('/v1/tokens/reader');
  assert.equal(del.status, 204);
  assert.equal(del.headers.etag, '"1"');
  const after = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(after.status, 401);
  assert.equal(after.body.code, 'CARPD_ERR_UNAUTHORIZED');
  assert.deepEqual((await h.api.get('/v1/tokens')).body.items.map((x: { name: string }) => x.name), ['admin']);
  const again = await h.api.delete('/v1/tokens/reader');
  assert.equal(again.status, 404);
  assert.equal(again.body.code, 'CARPD_ERR_TOKEN_NOT_FOUND');
});

test('the last admin token cannot be revoked (409); with a second admin it can', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const last = await h.api.delete('/v1/tokens/admin');
  assert.equal(last.status, 409);
  assert.equal(last.body.code, 'CARPD_ERR_LAST_ADMIN_TOKEN');
  assert.equal((await h.api.get('/v1/status')).status, 200);

  const second = await h.api.post('/v1/tokens', { name: 'admin2', role: 'admin' });
  const gone = await h.api.delete('/v1/tokens/admin');
  assert.equal(gone.status, 204);
  assert.equal((await h.api.get('/v1/status', { token: ADMIN_TOKEN })).status, 401);
  const lastAgain = await h.api.delete('/v1/tokens/admin2', { token: second.body.token });
  assert.equal(lastAgain.status, 409);
  assert.equal(lastAgain.body.code, 'CARPD_ERR_LAST_ADMIN_TOKEN');
});

test('a second token with the same name is 409 CARPD_ERR_TOKEN_EXISTS and nothing is stored', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const dup = await h.api.post('/v1/tokens', { name: 'reader', role: 'admin' });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.code, 'CARPD_ERR_TOKEN_EXISTS');
  assert.ok(!('token' in dup.body));
  const tokens = (await h.api.get('/v1/tokens')).body.items;
  assert.equal(tokens.length, 2);
  assert.equal(tokens[1].role, 'read');
  assert.equal((await h.api.get('/v1/config')).body.revision, 0);
});

test('only the last 50 revisions are kept; a rollback to a pruned one is 404', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'] }); // 1
  for (let i = 0; i < 54; i++) {
    const r = await h.api.patch('/v1/vips/em0/1', { advskew: i + 1 }); // 2..55
    assert.equal(r.status, 200);
  }
  const list = await h.api.get('/v1/config/revisions');
  assert.equal(list.body.current, 55);
  assert.equal(list.body.items.length, 50);
  assert.equal(list.body.items[0].revision, 55);
  assert.equal(list.body.items[49].revision, 6);

  const pruned = await h.api.post('/v1/config/rollback', { revision: 5 });
  assert.equal(pruned.status, 404);
  assert.equal(pruned.body.code, 'CARPD_ERR_REVISION_NOT_FOUND');
  assert.match(pruned.body.detail, /6\.\.55/);

  const kept = await h.api.post('/v1/config/rollback', { revision: 6 });
  assert.equal(kept.status, 200);
  assert.equal(kept.body.revision, 56);
  assert.equal(kept.body.vips[0].advskew, 5);
  assert.equal((await h.backend.listVhids())[0].advskew, 5);
});
