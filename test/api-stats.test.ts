/** GET /v1/stats: kernel counters and demotion tunables, for read and admin tokens alike. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CARP_COUNTERS, type KernelStats } from '../src/kernel/backend.js';
import { KernelError } from '../src/kernel/errno.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { READ_TOKEN, ManualClock, makeHarness } from './helpers/harness.js';

/** A memory backend whose stats() answers what the test sets, or fails with what it sets. */
class StatsBackend extends MemoryBackend {
  answer?: KernelStats;
  failure?: KernelError;
  override async stats(): Promise<KernelStats> {
    if (this.failure) throw this.failure;
    return this.answer ?? super.stats();
  }
}

test('GET /v1/stats on the memory backend: every carp counter at 0, pfsync without counters, FreeBSD default tunables', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const res = await h.api.get('/v1/stats');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.equal(res.body.backend, 'memory');
  assert.deepEqual(Object.keys(res.body.carp), [...CARP_COUNTERS]);
  assert.ok(Object.values(res.body.carp).every((v) => v === 0));
  assert.deepEqual(res.body.pfsync, { counters: {}, actMax: 0 });
  assert.deepEqual(res.body.sysctls, { carpLog: 1, pfsyncCarpDemotionFactor: 240, senderrDemotionFactor: 240, ifdownDemotionFactor: 240 });
});

test('GET /v1/stats needs a token; a read token may use it', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const none = await h.api.get('/v1/stats', { token: null });
  assert.equal(none.status, 401);
  assert.equal(none.body.code, 'CARPD_ERR_UNAUTHORIZED');
  const read = await h.api.get('/v1/stats', { token: READ_TOKEN });
  assert.equal(read.status, 200);
  assert.equal(read.body.backend, 'memory');
  const post = await h.api.post('/v1/stats', {});
  assert.equal(post.status, 405);
  assert.equal(post.body.code, 'CARPD_ERR_METHOD_NOT_ALLOWED');
  assert.equal(post.headers.allow, 'GET');
});

test('GET /v1/stats passes the counters through, leaves pfsync and unknown tunables out when the backend has none', async (t) => {
  const clock = new ManualClock();
  const backend = new StatsBackend({ clock });
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  const carp = Object.fromEntries(CARP_COUNTERS.map((n, i) => [n, i * 1000])) as KernelStats['carp'];
  carp.ipackets = 2 ** 40 + 7;
  backend.answer = { carp, sysctls: { carpLog: 2 } };
  const res = await h.api.get('/v1/stats', { token: READ_TOKEN });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { backend: 'memory', carp, sysctls: { carpLog: 2 }, api: { authFailures: { missingToken: 0, invalidToken: 0 }, throttled: 0, blockedSources: 0 } });

  backend.answer = { carp, pfsync: { counters: { ipackets: 5, oerrors: 1 }, actMax: 17 }, sysctls: { carpLog: 0, pfsyncCarpDemotionFactor: 100 } };
  const withPfsync = await h.api.get('/v1/stats');
  assert.equal(withPfsync.status, 200);
  assert.deepEqual(withPfsync.body.pfsync, { counters: { ipackets: 5, oerrors: 1 }, actMax: 17 });
  assert.deepEqual(withPfsync.body.sysctls, { carpLog: 0, pfsyncCarpDemotionFactor: 100 });
});

test('a kernel failure reading the stats is a CARPD_ERR_KERNEL problem that speaks of no change', async (t) => {
  const clock = new ManualClock();
  const backend = new StatsBackend({ clock });
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  backend.failure = KernelError.of('EPROTONOSUPPORT', 'read the CARP statistics (read net.inet.carp.stats)');
  const res = await h.api.get('/v1/stats', { token: READ_TOKEN });
  assert.equal(res.status, 502);
  assert.match(res.headers['content-type'], /^application\/problem\+json/);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(res.body.kernel.errnoName, 'EPROTONOSUPPORT');
  assert.equal(res.body.kernel.errno, 43);
  assert.match(res.body.detail, /kldload carp/);

  backend.failure = KernelError.of('EIO', 'read the pfsync statistics (sysctl net.pfsync.stats)');
  const other = await h.api.get('/v1/stats');
  assert.equal(other.status, 502);
  assert.equal(other.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(other.body.kernel.errnoName, 'EIO');
  assert.match(other.body.detail, /net\.pfsync\.stats/);
  assert.doesNotMatch(other.body.detail, /undone/);
});
