import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { loadSpec } from '../src/api/spec.js';
import { ERROR_CODES } from '../src/errors.js';
import type { BackendStep, CarpGlobals, Capabilities, KernelBackend, KernelStats, LiveVhid, PfsyncLive, PfsyncSettings, StateChange, VhidParams } from '../src/kernel/backend.js';
import { applyStepwise } from '../src/kernel/batch.js';
import { KernelError } from '../src/kernel/errno.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { READ_TOKEN, ManualClock, makeHarness } from './helpers/harness.js';

test('/healthz answers 200 without a token', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const res = await h.api.get('/healthz', { token: null });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { status: 'ok' });
});

test('/openapi.json and /docs/ are served without a token', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const spec = await request(h.app).get('/openapi.json');
  assert.equal(spec.status, 200);
  assert.match(spec.headers['content-type'], /^application\/json/);
  const parsed = JSON.parse(spec.text);
  assert.equal(parsed.openapi, '3.1.0');
  assert.ok(parsed.paths['/v1/vips']);
  assert.deepEqual(parsed, loadSpec());

  const docs = await request(h.app).get('/docs/');
  assert.equal(docs.status, 200);
  assert.match(docs.headers['content-type'], /^text\/html/);
  assert.match(docs.text, /swagger/i);
  // The page renders from these: the bundle, and the init script that embeds carpd's spec.
  const bundle = await request(h.app).get('/docs/swagger-ui-bundle.js');
  assert.equal(bundle.status, 200);
  assert.ok(bundle.text.length > 100_000);
  const init = await request(h.app).get('/docs/swagger-ui-init.js');
  assert.equal(init.status, 200);
  assert.match(init.text, /\/v1\/vips\/\{interface\}\/\{vhid\}/);
});

test('/v1/status needs a valid token: none or a wrong one is 401 with WWW-Authenticate', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const none = await h.api.get('/v1/status', { token: null });
  assert.equal(none.status, 401);
  assert.equal(none.body.code, 'CARPD_ERR_UNAUTHORIZED');
  assert.match(none.headers['content-type'], /^application\/problem\+json/);
  assert.match(none.headers['www-authenticate'], /^Bearer /);

  const wrong = await h.api.get('/v1/status', { token: 'carpd_not_a_token' });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.code, 'CARPD_ERR_UNAUTHORIZED');
  assert.match(wrong.headers['www-authenticate'], /^Bearer /);

  const basic = await h.api.get('/v1/status', { token: null, headers: { Authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` } });
  assert.equal(basic.status, 401);

  const read = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(read.status, 200);
  assert.equal(read.body.backend.name, 'memory');
  assert.equal(read.body.revision, 0);
  assert.equal(read.body.reconcile.ok, true);
});

test('an unknown route is a 404 problem and a wrong method a 405 problem', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const unknown = await h.api.get('/v1/nothing-here');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.code, 'CARPD_ERR_ROUTE_NOT_FOUND');
  assert.match(unknown.headers['content-type'], /^application\/problem\+json/);
  const outside = await h.api.get('/not/v1');
  assert.equal(outside.status, 404);
  assert.equal(outside.body.code, 'CARPD_ERR_ROUTE_NOT_FOUND');

  const method = await h.api.delete('/v1/status');
  assert.equal(method.status, 405);
  assert.equal(method.body.code, 'CARPD_ERR_METHOD_NOT_ALLOWED');
  assert.match(method.headers['content-type'], /^application\/problem\+json/);
  assert.equal(method.headers.allow, 'GET');
  const post = await h.api.post('/v1/vhids/free', {});
  assert.equal(post.status, 405);
  assert.equal(post.body.code, 'CARPD_ERR_METHOD_NOT_ALLOWED');
  const onVip = await h.api.post('/v1/vips/em0/1', { addresses: ['192.0.2.10/24'] });
  assert.equal(onVip.status, 405);
  assert.deepEqual(String(onVip.headers.allow).split(', ').sort(), ['DELETE', 'GET', 'PATCH', 'PUT']);
});

test('every error code is documented: the registry and the spec ErrorCode enum are the same set', () => {
  const spec = loadSpec() as { components: { schemas: { ErrorCode: { enum: string[] } } } };
  const documented = spec.components.schemas.ErrorCode.enum;
  const registered = Object.keys(ERROR_CODES);
  assert.equal(new Set(documented).size, documented.length, 'the enum lists a code twice');
  for (const code of registered) assert.ok(documented.includes(code), `${code} is in src/errors.ts but not in the spec`);
  for (const code of documented) assert.ok(registered.includes(code), `${code} is in the spec but not in src/errors.ts`);
  for (const [code, { status }] of Object.entries(ERROR_CODES)) assert.ok(status >= 400 && status <= 599, `${code}: status ${status}`);
});

/** A memory backend whose addAddress can be made to fail from a given call on. */
class FaultyBackend implements KernelBackend {
  readonly name = 'memory' as const;
  readonly description = 'memory backend with injected addAddress failures';
  /** addAddress calls still allowed to succeed; undefined = all succeed. */
  addsBeforeFailure?: number;
  readonly inner: MemoryBackend;
  constructor(clock: ManualClock) {
    this.inner = new MemoryBackend({ clock, interfaces: ['em0', 'em1'] });
  }
  capabilities(): Capabilities {
    return this.inner.capabilities();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  listVhids(): Promise<LiveVhid[]> {
    return this.inner.listVhids();
  }
  setVhid(iface: string, vhid: number, params: VhidParams): Promise<void> {
    return this.inner.setVhid(iface, vhid, params);
  }
  removeVhid(iface: string, vhid: number): Promise<void> {
    return this.inner.removeVhid(iface, vhid);
  }
  async addAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    if (this.addsBeforeFailure !== undefined) {
      if (this.addsBeforeFailure === 0) throw KernelError.of('ENOPROTOOPT', `add address ${cidr} to vhid ${vhid}`, iface, 'injected failure');
      this.addsBeforeFailure--;
    }
    return this.inner.addAddress(iface, vhid, cidr);
  }
  removeAddress(iface: string, vhid: number, cidr: string): Promise<void> {
    return this.inner.removeAddress(iface, vhid, cidr);
  }
  forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER'): Promise<void> {
    return this.inner.forceState(iface, vhid, state);
  }
  getCarpGlobals(): Promise<CarpGlobals & { demotion: number }> {
    return this.inner.getCarpGlobals();
  }
  setCarpGlobals(g: CarpGlobals): Promise<void> {
    return this.inner.setCarpGlobals(g);
  }
  getMaintenance(): Promise<boolean> {
    return this.inner.getMaintenance();
  }
  setMaintenance(on: boolean): Promise<void> {
    return this.inner.setMaintenance(on);
  }
  demotions(): Promise<Map<string, number>> {
    return this.inner.demotions();
  }
  setDemotion(name: string, amount: number): Promise<void> {
    return this.inner.setDemotion(name, amount);
  }
  getPfsync(): Promise<PfsyncLive> {
    return this.inner.getPfsync();
  }
  setPfsync(s: PfsyncSettings): Promise<void> {
    return this.inner.setPfsync(s);
  }
  pfStatus(): ReturnType<KernelBackend['pfStatus']> {
    return this.inner.pfStatus();
  }
  stats(): Promise<KernelStats> {
    return this.inner.stats();
  }
  // A batch of this backend's own steps, so that the injected failures happen inside it.
  apply(steps: readonly BackendStep[]): Promise<void> {
    return applyStepwise(this, steps);
  }
  onStateChange(listener: (c: StateChange) => void): () => void {
    return this.inner.onStateChange(listener);
  }
}

test('a change that fails half-way in the kernel is undone and answered as CARPD_ERR_KERNEL', async (t) => {
  const clock = new ManualClock();
  const backend = new FaultyBackend(clock);
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  const file = path.join(h.dir, 'config.json');
  const before = readFileSync(file);

  backend.addsBeforeFailure = 1;
  const res = await h.api.post('/v1/vips', { interface: 'em0', vhid: 4, addresses: ['192.0.2.10/24', '192.0.2.11/24'] });
  assert.equal(res.status, 502);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.match(res.headers['content-type'], /^application\/problem\+json/);
  assert.equal(res.body.kernel.errnoName, 'ENOPROTOOPT');
  assert.equal(res.body.kernel.errno, 42);
  assert.equal(res.body.kernel.interface, 'em0');
  assert.match(res.body.detail, /em0/);
  assert.match(res.body.detail, /vhid 4/);
  assert.match(res.body.detail, /192\.0\.2\.11/);

  // The first address and the vhid were applied, then taken back.
  assert.deepEqual(await h.backend.listVhids(), []);
  assert.equal((await h.api.get('/v1/config')).body.revision, 0);
  assert.deepEqual((await h.api.get('/v1/vips')).body.items, []);
  assert.deepEqual(readFileSync(file), before);

  // With the fault cleared, the same request goes through.
  backend.addsBeforeFailure = undefined;
  const ok = await h.api.post('/v1/vips', { interface: 'em0', vhid: 4, addresses: ['192.0.2.10/24', '192.0.2.11/24'] });
  assert.equal(ok.status, 201);
  assert.deepEqual((await h.backend.listVhids())[0].addresses, ['192.0.2.10/24', '192.0.2.11/24']);
});

test('a kernel failure while changing an existing VIP restores its previous addresses', async (t) => {
  const clock = new ManualClock();
  const backend = new FaultyBackend(clock);
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], advskew: 5 });
  const before = JSON.stringify((await h.backend.listVhids()).map(({ since: _s, reason: _r, state: _st, ...v }) => v));

  backend.addsBeforeFailure = 0;
  const res = await h.api.put('/v1/vips/em0/1', { addresses: ['192.0.2.20/24'], advskew: 50 });
  assert.equal(res.status, 502);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(res.body.kernel.errnoName, 'ENOPROTOOPT');
  const after = JSON.stringify((await h.backend.listVhids()).map(({ since: _s, reason: _r, state: _st, ...v }) => v));
  assert.equal(after, before);
  const vip = (await h.api.get('/v1/vips/em0/1')).body;
  assert.deepEqual(vip.addresses, ['192.0.2.10/24']);
  assert.equal(vip.advskew, 5);
  assert.equal((await h.api.get('/v1/config')).body.revision, 1);
});
