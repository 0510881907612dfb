/**
 * pf's state table in the API: GET /v1/status has `pf`, null on the memory and sim backends
 * (no pf: they say so rather than showing zeros) and an object on the freebsd backend over the
 * fake libc, each answer checked against the spec; the metrics of it; GET /v1/cluster shows
 * both nodes' pf and the difference of their state counts (two in-process nodes, each with a
 * fake pf source injected into its backend), the `pf` sync exchange both ways, and a peer whose
 * carpd predates the exchange.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { KernelBackend, PfStatus } from '../src/kernel/backend.js';
import { KernelError } from '../src/kernel/errno.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { CarpdMetrics } from '../src/api/metrics.js';
import { LIBC, LIBNV, buildNative, useFakeKernel } from './helpers/fakebsd.js';
import { ManualClock, READ_TOKEN, makeHarness } from './helpers/harness.js';
import { parsePrometheusText } from './helpers/prom-text.js';
import { assertMatchesSpec } from './helpers/spec.js';
import { startSyncNodeInProcess } from './helpers/sync-inprocess.js';

const WORK = useFakeKernel('carpd-api-pf-');
const unavailable = buildNative();

const pf = (states: number, over: Partial<PfStatus> = {}): PfStatus => ({
  running: true,
  states,
  srcNodes: 0,
  stateSearches: 10 * states,
  stateInserts: 2 * states,
  stateRemovals: states,
  via: 'nvlist',
  pfsyncBulkUpdateDone: true,
  ...over,
});

/** Replaces a backend's pf source (a test's fake pf). */
function injectPf(b: KernelBackend, source: () => Promise<PfStatus | null>): void {
  (b as { pfStatus: KernelBackend['pfStatus'] }).pfStatus = source;
}

test('GET /v1/status: pf is null on the memory backend, valid against the spec', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const res = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(res.status, 200, res.text);
  assert.ok('pf' in res.body, 'pf is always present');
  assert.equal(res.body.pf, null);
  assertMatchesSpec('GET', '/v1/status', res);
});

test('GET /v1/status: a kernel refusing pf\'s status leaves pf null and says why in pfError; the rest is answered', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  let fail = true;
  injectPf(h.backend, async () => {
    if (fail) throw KernelError.of('EACCES', 'ioctl DIOCGETSTATUSNV');
    return pf(5);
  });
  const res = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.pf, null);
  assert.equal(res.body.pfError, 'ioctl DIOCGETSTATUSNV failed: EACCES');
  assert.ok(Array.isArray(res.body.vhids));
  assertMatchesSpec('GET', '/v1/status', res);
  fail = false;
  // A change makes the next status a new one (a poll within the second gets the same).
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.7/24'] })).status, 201);
  const again = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(again.body.pf.states, 5);
  assert.ok(!('pfError' in again.body), 'no pfError once pf is read');
});

test('GET /v1/status: pf is null on the sim backend', async (t) => {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const b = await SimBackend.open({ clock, transport: net.endpoint('a'), interfaces: ['em0'], node: 'a' });
  const h = await makeHarness({ backend: b, clock });
  t.after(() => h.close());
  assert.equal(await b.pfStatus(), null);
  const res = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.pf, null);
  assertMatchesSpec('GET', '/v1/status', res);
});

test('GET /v1/status and /metrics on the freebsd backend (fake libc): pf is the kernel\'s, valid against the spec', { skip: unavailable ?? false }, async (t) => {
  const koffi = (await import('node:module')).createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  lib.func('int fakebsd_reset(void)')();
  lib.func('int fakebsd_pf_set(int loaded, int running, long states, long searches, long inserts, long removals)')(1, 1, 321, 7000, 900, 579);
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const b = await openFreebsdBackend({ stateDir, libcPath: LIBC, libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe'), devdBackoffMs: { min: 60_000, max: 60_000 } });
  const h = await makeHarness({ backend: b });
  t.after(async () => {
    await h.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  const res = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.body.pf, { running: true, states: 321, srcNodes: 0, stateSearches: 7000, stateInserts: 900, stateRemovals: 579, via: 'nvlist', pfsyncBulkUpdateDone: null });
  assertMatchesSpec('GET', '/v1/status', res);

  const metrics = new CarpdMetrics({ service: h.service });
  t.after(() => metrics.close());
  const fam = parsePrometheusText(await metrics.metrics());
  const one = (name: string) => fam.get(name)?.samples[0]?.value;
  assert.equal(one('carpd_pf_running'), 1);
  assert.equal(one('carpd_pf_states'), 321);
  assert.equal(one('carpd_pf_state_inserts_total'), 900);
  assert.equal(one('carpd_pf_state_removals_total'), 579);
  assert.equal(one('carpd_pf_state_searches_total'), 7000);
});

test('metrics: no pf series samples on a node without pf (memory backend)', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const metrics = new CarpdMetrics({ service: h.service });
  t.after(() => metrics.close());
  const fam = parsePrometheusText(await metrics.metrics());
  for (const n of ['carpd_pf_running', 'carpd_pf_states', 'carpd_pf_state_inserts_total', 'carpd_pf_state_removals_total', 'carpd_pf_state_searches_total']) {
    assert.equal(fam.get(n)?.samples.length ?? 0, 0, n);
  }
});

async function pairInProcess(t: { after(fn: () => unknown): void }) {
  const a = await startSyncNodeInProcess('node-a', 'carpd-pf');
  const b = await startSyncNodeInProcess('node-b', 'carpd-pf');
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  const link = async (self: typeof a, other: typeof a, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.syncPort, fingerprint: other.identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(b, a, 'secondary', '192.0.2.11/24');
  await link(a, b, 'primary', '192.0.2.10/24');
  return { a, b };
}

test('GET /v1/cluster: both nodes\' pf side by side and the difference of their state counts', async (t) => {
  const { a, b } = await pairInProcess(t);
  let mine = pf(1500);
  injectPf(a.h.backend, async () => mine);
  injectPf(b.h.backend, async () => pf(1420, { via: 'ioctl', pfsyncBulkUpdateDone: false }));

  const c = await a.h.api.get('/v1/cluster');
  assert.equal(c.status, 200, c.text);
  assertMatchesSpec('GET', '/v1/cluster', c);
  assert.deepEqual(c.body.nodes[0].pf, pf(1500));
  assert.deepEqual(c.body.nodes[1].pf, pf(1420, { via: 'ioctl', pfsyncBulkUpdateDone: false }));
  assert.equal(c.body.pfStateDifference, 80);

  // The peer's view has the opposite sign.
  const d = await b.h.api.get('/v1/cluster');
  assert.equal(d.body.pfStateDifference, -80);

  // What the switchover asks: the peer's pf over the sync link, and the last one heard (either way).
  mine = pf(10);
  const asked = await b.sync.peerPf();
  assert.ok(asked !== 'unsupported');
  assert.equal(asked.node, 'node-a');
  assert.equal(asked.pf?.states, 10);
  assert.equal(a.sync.lastPeerPf()?.report.pf?.pfsyncBulkUpdateDone, false, 'the asking side\'s own pf reached the peer too');
  assert.equal(b.sync.lastPeerPf()?.report.pf?.states, 10);
});

test('GET /v1/cluster: a node without pf is null and the difference is null; a peer whose pf read fails is unknown', async (t) => {
  const { a, b } = await pairInProcess(t);
  injectPf(a.h.backend, async () => pf(3));
  // b keeps the memory backend's answer: no pf.
  let c = await a.h.api.get('/v1/cluster');
  assert.equal(c.status, 200, c.text);
  assertMatchesSpec('GET', '/v1/cluster', c);
  assert.equal(c.body.nodes[1].pf, null);
  assert.equal(c.body.pfStateDifference, null);

  injectPf(b.h.backend, async () => {
    throw KernelError.of('EPERM', 'ioctl DIOCGETSTATUSNV');
  });
  c = await a.h.api.get('/v1/cluster');
  assert.equal(c.status, 200, c.text);
  assertMatchesSpec('GET', '/v1/cluster', c);
  assert.ok(!('pf' in c.body.nodes[1]), 'unknown, not null');
  assert.equal(c.body.pfStateDifference, null);
  const r = await a.sync.peerPf();
  assert.ok(r !== 'unsupported');
  assert.match(String(r.error), /DIOCGETSTATUSNV.*EPERM/);
});

test('GET /v1/cluster with a peer that predates the pf exchange: its report is shown, its pf unknown', async (t) => {
  const { a, b } = await pairInProcess(t);
  injectPf(a.h.backend, async () => pf(3));
  // An older carpd refuses the kind as unknown, as its listener does for every type it lacks.
  const handle = (b.sync as unknown as { handle(m: { type: string }): Promise<unknown> }).handle.bind(b.sync);
  (b.sync as unknown as { handle(m: { type: string }): Promise<unknown> }).handle = async (m) => {
    if (m.type === 'pf') {
      return { status: 400, body: { type: 'about:blank', title: 'Bad Request', status: 400, code: 'CARPD_ERR_SYNC_BAD_MESSAGE', detail: 'unknown sync message type "pf"; this node takes push, plan, status, states' } };
    }
    return handle(m);
  };
  const c = await a.h.api.get('/v1/cluster');
  assert.equal(c.status, 200, c.text);
  assertMatchesSpec('GET', '/v1/cluster', c);
  assert.equal(c.body.nodes[1].reachable, true);
  assert.equal(c.body.nodes[1].node, 'node-b');
  assert.ok(!('pf' in c.body.nodes[1]));
  assert.equal(c.body.pfStateDifference, null);
  assert.equal(await a.sync.peerPf(), 'unsupported');
});

test('the pf sync message: read as its kind, a malformed one refused with the field named', async () => {
  const { SYNC_KINDS } = await import('../src/sync/messages.js');
  const msg = (body: unknown) => ({ protocol: 1 as const, type: 'pf', from: 'a', to: 'b', nonce: '0'.repeat(32), issuedAt: '2025-01-01T00:00:00.000Z', schemaVersion: 1, body });
  const good = { node: 'fw1', at: '2025-01-01T00:00:00.000Z', pf: pf(4) };
  assert.equal(SYNC_KINDS.read(msg(good)).ok, true);
  assert.equal(SYNC_KINDS.read(msg({ ...good, pf: null })).ok, true);
  assert.equal(SYNC_KINDS.read(msg({ ...good, pf: null, error: 'ioctl DIOCGETSTATUSNV failed: EPERM' })).ok, true);
  const bad = SYNC_KINDS.read(msg({ ...good, pf: { ...pf(4), states: -1 } }));
  assert.equal(bad.ok, false);
  assert.match((bad as { detail: string }).detail, /pf message.*\/pf/);
  const extra = SYNC_KINDS.read(msg({ ...good, secret: 'x' }));
  assert.equal(extra.ok, false);
  assert.match((extra as { detail: string }).detail, /unknown field "secret"/);
});
