import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeHarness } from './helpers/harness.js';

test('a VIP is created, becomes MASTER after the master-down interval, and is listed without its password', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'em0', addresses: ['192.0.2.10/24'], password: 'secret', advskew: 100 });
  assert.equal(created.status, 201);
  assert.equal(created.headers.location, '/v1/vips/em0/1');
  assert.equal(created.body.live.state, 'BACKUP');
  h.clock.advance(3000 + (100 / 256) * 1000);
  const one = await h.api.get('/v1/vips/em0/1');
  assert.equal(one.body.live.state, 'MASTER');
  assert.match(one.body.live.reason, /master-down/);
  assert.equal(one.body.hasPassword, true);
  assert.ok(!JSON.stringify(one.body).includes('secret'));
  const status = await h.api.get('/v1/status');
  assert.equal(status.status, 200);
  assert.equal(status.body.vhids[0].state, 'MASTER');
});
