/**
 * GET /metrics (src/api/metrics.ts): the Prometheus text, read with a strict parser
 * (helpers/prom-text.ts), agrees with /v1/status and /v1/stats; any token reads it and none is
 * refused; one scrape reads the kernel counters once; HTTP requests are counted by route
 * template; events are counted; the providers of split brain and the event stream feed their
 * series; the --metrics-listen listener answers /metrics without a token and nothing else; and
 * docs/prometheus/ (rules, dashboard, list of series) uses only series a real carpd has.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import YAML from 'yaml';
import { buildApp } from '../src/api/app.js';
import { CarpdMetrics, metricsListener } from '../src/api/metrics.js';
import { parseFlags, UsageError, type DaemonOptions } from '../src/daemon/flags.js';
import type { KernelStats } from '../src/kernel/backend.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import type { SyncManager } from '../src/sync/manager.js';
import { call, daemonArgs, spawnDaemon, startDaemon } from './helpers/daemon.js';
import { ADMIN_TOKEN, makeHarness, ManualClock, READ_TOKEN, type Harness } from './helpers/harness.js';
import { parsePrometheusText, sampleValue, type Family } from './helpers/prom-text.js';
import pino from 'pino';

/** A memory backend with distinct, non-zero kernel counters, counting its reads. */
class CountingBackend extends MemoryBackend {
  statsReads = 0;
  failStats = false;
  override async stats(): Promise<KernelStats> {
    this.statsReads++;
    if (this.failStats) throw new Error('carp(4) is not loaded');
    const s = await super.stats();
    const carp = Object.fromEntries(Object.keys(s.carp).map((k, i) => [k, 100 + i])) as KernelStats['carp'];
    return { ...s, carp, pfsync: { counters: { ipackets: 7, ipackets6: 1, badact: 3, stale: 4, opackets: 9, oerrors: 2 }, actMax: 0 } };
  }
}

async function harness(t: { after: (fn: () => unknown) => void }): Promise<Harness & { counting: CountingBackend }> {
  const clock = new ManualClock();
  const counting = new CountingBackend({ clock, interfaces: ['em0', 'em1'] });
  const h = await makeHarness({ clock, backend: counting });
  t.after(() => h.close());
  return Object.assign(h, { counting });
}

async function scrape(h: Harness, token: string | null = READ_TOKEN): Promise<{ status: number; type: string; text: string; families: Map<string, Family> }> {
  let req = request(h.app).get('/metrics');
  if (token !== null) req = req.set('Authorization', `Bearer ${token}`);
  const res = await req;
  return { status: res.status, type: String(res.headers['content-type']), text: res.text, families: res.status === 200 ? parsePrometheusText(res.text) : new Map() };
}

const v = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) => sampleValue(f, name, labels);

test('/metrics agrees with /v1/status (vhid states, skew, demotion, maintenance, revision) and /v1/stats (CARP and pfsync counters)', async (t) => {
  const h = await harness(t);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em1', vhid: 2, advskew: 100, addresses: ['198.51.100.10/24'] })).status, 201);
  assert.equal((await h.api.put('/v1/vips/em0/1/state', { state: 'master' })).status, 200);
  assert.equal((await h.api.put('/v1/carp/maintenance', { enabled: true })).status, 200);

  const { status, type, families } = await scrape(h);
  assert.equal(status, 200);
  assert.equal(type, 'text/plain; version=0.0.4; charset=utf-8');
  const st = (await h.api.get('/v1/status')).body;
  const stats = (await h.api.get('/v1/stats')).body;

  assert.equal(st.vhids.length, 2);
  assert.ok(st.vhids.some((x: { state: string }) => x.state === 'MASTER') && st.vhids.some((x: { state: string }) => x.state !== 'MASTER'), JSON.stringify(st.vhids));
  for (const x of st.vhids as { interface: string; vhid: number; state: string; effectiveSkew: number }[]) {
    for (const s of ['INIT', 'BACKUP', 'MASTER']) assert.equal(v(families, 'carpd_vhid_state', { interface: x.interface, vhid: String(x.vhid), state: s }), x.state === s ? 1 : 0, `${x.interface}/${x.vhid} ${s}`);
    assert.equal(v(families, 'carpd_vhid_effective_skew', { interface: x.interface, vhid: String(x.vhid) }), x.effectiveSkew);
  }
  assert.equal(families.get('carpd_vhid_state')!.samples.length, 6);
  assert.ok(st.carp.demotion >= 240 && st.carp.maintenance === true, JSON.stringify(st.carp));
  assert.equal(v(families, 'carpd_demotion'), st.carp.demotion);
  assert.equal(v(families, 'carpd_maintenance'), 1);
  assert.equal(v(families, 'carpd_demotion_contributor', { name: 'maintenance' }), 240);
  assert.equal(st.carp.enabled, true);
  assert.equal(v(families, 'carpd_carp_allowed'), 1);
  assert.equal(v(families, 'carpd_config_revision'), st.revision);
  assert.equal(v(families, 'carpd_info', { backend: 'memory', version: '0.0.0-test', node: 'test-node' }), 1);

  assert.equal(v(families, 'carpd_carp_received_packets_total', { family: 'inet' }), stats.carp.ipackets);
  assert.equal(v(families, 'carpd_carp_received_packets_total', { family: 'inet6' }), stats.carp.ipackets6);
  assert.equal(v(families, 'carpd_carp_sent_packets_total', { family: 'inet' }), stats.carp.opackets);
  assert.equal(v(families, 'carpd_carp_sent_packets_total', { family: 'inet6' }), stats.carp.opackets6);
  for (const reason of ['badif', 'badttl', 'hdrops', 'badsum', 'badver', 'badlen', 'badauth', 'badvhid', 'badaddrs']) {
    assert.equal(v(families, 'carpd_carp_dropped_packets_total', { reason }), stats.carp[reason], reason);
  }
  assert.equal(v(families, 'carpd_carp_send_nomem_total'), stats.carp.onomem);
  assert.equal(v(families, 'carpd_carp_state_updates_sent_total'), stats.carp.ostates);
  assert.equal(v(families, 'carpd_carp_preemptions_total'), stats.carp.preempt);
  assert.equal(v(families, 'carpd_pfsync_received_packets_total', { family: 'inet' }), stats.pfsync.counters.ipackets);
  assert.equal(v(families, 'carpd_pfsync_dropped_packets_total', { reason: 'badact' }), 3);
  assert.equal(v(families, 'carpd_pfsync_dropped_packets_total', { reason: 'stale' }), 4);
  assert.equal(v(families, 'carpd_pfsync_sent_packets_total', { family: 'inet' }), 9);
  assert.equal(v(families, 'carpd_pfsync_send_errors_total', { reason: 'oerrors' }), 2);
  assert.equal(v(families, 'carpd_pfsync_running'), st.pfsync.running ? 1 : 0);
  assert.equal(v(families, 'carpd_up', { read: 'stats' }), 1);
  // Without config sync, no sync gauges; the push counters are there, at 0.
  assert.equal(families.has('carpd_sync_lag_seconds'), false);
  assert.equal(v(families, 'carpd_sync_pushes_total', { result: 'failed' }), 0);

  assert.equal((await h.api.put('/v1/carp/temporary-disable', { disabled: true })).status, 200);
  assert.equal(v((await scrape(h)).families, 'carpd_carp_allowed'), 0);
});

test('one scrape reads the kernel counters once; scrapes at the same time share one reading', async (t) => {
  const h = await harness(t);
  const before = h.counting.statsReads;
  assert.equal((await scrape(h)).status, 200);
  assert.equal(h.counting.statsReads, before + 1);
  const both = await Promise.all([scrape(h), scrape(h), scrape(h)]);
  assert.ok(both.every((r) => r.status === 200));
  assert.ok(h.counting.statsReads <= before + 1 + 3, `${h.counting.statsReads - before} reads`);
  const metrics = new CarpdMetrics({ service: h.service });
  t.after(() => metrics.close());
  const n = h.counting.statsReads;
  const texts = await Promise.all([metrics.metrics(), metrics.metrics(), metrics.metrics()]);
  assert.equal(h.counting.statsReads, n + 1);
  assert.equal(new Set(texts).size, 1);
});

test('a failed read of the kernel counters leaves their series out and says so in carpd_up; the rest still answers', async (t) => {
  const h = await harness(t);
  h.counting.failStats = true;
  const { status, families } = await scrape(h);
  assert.equal(status, 200);
  assert.equal(v(families, 'carpd_up', { read: 'stats' }), 0);
  assert.equal(v(families, 'carpd_up', { read: 'status' }), 1);
  assert.equal(families.get('carpd_carp_received_packets_total')!.samples.length, 0);
  assert.equal(families.get('carpd_carp_send_nomem_total')!.samples.length, 0);
  assert.equal(v(families, 'carpd_carp_allowed'), 1);
});

test('/metrics: 401 without a token or with a wrong one, 200 with a read or an admin token', async (t) => {
  const h = await harness(t);
  for (const token of [null, 'carpd_not_a_token']) {
    const res = await h.api.get('/metrics', { token });
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 'CARPD_ERR_UNAUTHORIZED');
  }
  assert.equal((await scrape(h, READ_TOKEN)).status, 200);
  assert.equal((await scrape(h, ADMIN_TOKEN)).status, 200);
  const res = await request(h.app).get('/metrics').set('Authorization', `Bearer ${READ_TOKEN}`);
  // Not JSON, and not passed through the response validator as JSON.
  assert.match(res.text, /^# HELP /);
  assert.equal(res.headers['cache-control'], 'no-store');
  assert.equal((await h.api.post('/metrics', {})).status, 405);
});

test('HTTP requests are counted by route template, method and status, the status fast path too', async (t) => {
  const h = await harness(t);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em1', vhid: 2, addresses: ['198.51.100.10/24'] })).status, 201);
  const first = (await scrape(h)).families;
  const route = '/v1/vips/{interface}/{vhid}';
  const count = (f: Map<string, Family>, labels: Record<string, string>) => v(f, 'carpd_http_requests_total', labels) ?? 0;
  assert.equal((await h.api.get('/v1/vips/em0/1')).status, 200);
  assert.equal((await h.api.get('/v1/vips/em1/2')).status, 200);
  assert.equal((await h.api.get('/v1/vips/em1/9')).status, 404);
  // Two polls of the status: the second is answered from the prebuilt body, before Express.
  assert.equal((await h.api.get('/v1/status')).status, 200);
  assert.equal((await h.api.get('/v1/status')).status, 200);
  assert.equal((await h.api.get('/no/such/path')).status, 404);
  const { families, text } = await scrape(h);
  assert.equal(count(families, { route, method: 'GET', status: '200' }) - count(first, { route, method: 'GET', status: '200' }), 2);
  assert.equal(count(families, { route, method: 'GET', status: '404' }) - count(first, { route, method: 'GET', status: '404' }), 1);
  assert.equal(count(families, { route: '/v1/status', method: 'GET', status: '200' }) - count(first, { route: '/v1/status', method: 'GET', status: '200' }), 2);
  assert.equal(count(families, { route: 'other', method: 'GET', status: '404' }), 1);
  assert.equal(count(families, { route: '/v1/vips', method: 'POST', status: '201' }), 2);
  assert.equal(count(families, { route: '/metrics', method: 'GET', status: '200' }), 1);
  assert.equal(v(families, 'carpd_http_request_duration_seconds_count', { route, method: 'GET' }), 3);
  assert.equal(v(families, 'carpd_http_request_duration_seconds_bucket', { route, method: 'GET', le: '+Inf' }), 3);
  // Paths never become labels.
  assert.doesNotMatch(text, /em1\/2|no\/such/);
});

test('events are counted: transitions by target state, sync pushes, hooks, webhooks, and every type published', async (t) => {
  const h = await harness(t);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  const before = (await scrape(h)).families;
  const masters = (f: Map<string, Family>) => v(f, 'carpd_vhid_transitions_total', { interface: 'em0', vhid: '1', state: 'MASTER' });
  assert.equal(masters(before), 0, 'the MASTER series is there at 0 before the first change to MASTER');
  assert.equal((await h.api.put('/v1/vips/em0/1/state', { state: 'master' })).status, 200);
  const ev = h.service.events;
  ev.publish('vhid.state', { interface: 'em1', vhid: 7, from: 'BACKUP', to: 'MASTER', reason: 'test', effectiveSkew: 0 }, { level: false });
  ev.publish('sync.pushed', { revision: 2, peer: 'peer', detail: '' }, { level: false });
  ev.publish('sync.failed', { revision: 3, peer: 'peer', error: 'refused', reached: false, retryInMs: 1000 }, { level: false });
  ev.publish('sync.failed', { revision: 3, peer: 'peer', error: 'refused', reached: false, retryInMs: 2000 }, { level: false });
  ev.publish('hook.failed', { hook: 'notify', eventId: 1, eventType: 'vhid.state', reason: 'exit 1', exitCode: 1, signal: null, ms: 3 }, { level: false });
  ev.publish('hook.succeeded', { hook: 'notify', eventId: 2, eventType: 'vhid.state', exitCode: 0, ms: 3 }, { level: false });
  ev.publish('webhook.delivered', { webhook: 'chat', eventId: 1, eventType: 'vhid.state', status: 204, attempts: 1, ms: 5 }, { level: false });
  ev.publish('webhook.failed', { webhook: 'chat', eventId: 2, eventType: 'vhid.state', reason: 'timeout', attempts: 3, dropped: false }, { level: false });
  ev.publish('webhook.failed', { webhook: 'chat', eventId: null, eventType: null, reason: 'queue full', attempts: 0, dropped: true }, { level: false });

  const { families } = await scrape(h);
  assert.equal(masters(families), 1);
  assert.equal(v(families, 'carpd_vhid_transitions_total', { interface: 'em1', vhid: '7', state: 'MASTER' }), 1);
  assert.equal(v(families, 'carpd_sync_pushes_total', { result: 'ok' }), 1);
  assert.equal(v(families, 'carpd_sync_pushes_total', { result: 'failed' }), 2);
  assert.equal(v(families, 'carpd_hook_runs_total', { hook: 'notify', result: 'failed' }), 1);
  assert.equal(v(families, 'carpd_hook_runs_total', { hook: 'notify', result: 'ok' }), 1);
  assert.equal(v(families, 'carpd_webhook_deliveries_total', { webhook: 'chat', result: 'ok' }), 1);
  assert.equal(v(families, 'carpd_webhook_deliveries_total', { webhook: 'chat', result: 'failed' }), 1);
  assert.equal(v(families, 'carpd_webhook_deliveries_total', { webhook: 'chat', result: 'dropped' }), 1);
  for (const [type, n] of ev.published) assert.equal(v(families, 'carpd_events_published_total', { type }), n, type);
  assert.equal(v(families, 'carpd_events_published_total', { type: 'splitbrain.detected' }), 0);
});

test('split brain and event stream providers feed their series; without a split-brain source the series is left out', async (t) => {
  const h = await harness(t);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'] })).status, 201);
  assert.equal((await h.api.post('/v1/vips', { interface: 'em1', vhid: 2, addresses: ['198.51.100.10/24'] })).status, 201);
  assert.equal((await scrape(h)).families.has('carpd_splitbrain'), false);
  // An app's own metrics count its own event streams.
  assert.equal(v((await scrape(h)).families, 'carpd_sse_clients'), 0);
  let split = [{ interface: 'em0', vhid: 1 }];
  const metrics = new CarpdMetrics({ service: h.service, splitBrain: () => split, streams: { clients: () => 3, dropped: () => 5 } });
  t.after(() => metrics.close());
  const app = buildApp({ service: h.service, logger: pino({ level: 'silent' }), version: '0.0.0-test', metrics });
  const read = async () => parsePrometheusText((await request(app).get('/metrics').set('Authorization', `Bearer ${READ_TOKEN}`).expect(200)).text);
  let f = await read();
  assert.equal(v(f, 'carpd_splitbrain', { interface: 'em0', vhid: '1' }), 1);
  assert.equal(v(f, 'carpd_splitbrain', { interface: 'em1', vhid: '2' }), 0);
  assert.equal(v(f, 'carpd_sse_clients'), 3);
  assert.equal(v(f, 'carpd_sse_clients_dropped_total'), 5);
  split = [];
  f = await read();
  assert.equal(v(f, 'carpd_splitbrain', { interface: 'em0', vhid: '1' }), 0);
});

test('config sync: lag, pending, last error, role and refusals from SyncManager.status()', async (t) => {
  const h = await harness(t);
  let lag: { revisions: number | null; seconds: number | null } = { revisions: null, seconds: null };
  const sync = {
    splitBrainNow: () => [],
    status: () => ({ role: 'primary', lag, pending: lag.revisions !== 0, lastError: lag.revisions ? 'peer unreachable' : null, lastSuccess: '2026-01-02T03:04:05.000Z', rejected: { untrusted: 2, replay: 0 } }),
  } as unknown as SyncManager;
  const metrics = new CarpdMetrics({ service: h.service, sync });
  t.after(() => metrics.close());
  let f = parsePrometheusText(await metrics.metrics());
  assert.equal(f.get('carpd_sync_lag_seconds')!.samples.length, 0, 'unknown lag is left out, not 0');
  assert.equal(v(f, 'carpd_sync_role', { role: 'primary' }), 1);
  assert.equal(v(f, 'carpd_sync_role', { role: 'secondary' }), 0);
  assert.equal(v(f, 'carpd_sync_rejected_total', { reason: 'untrusted' }), 2);
  assert.equal(v(f, 'carpd_sync_last_success_timestamp_seconds'), Date.parse('2026-01-02T03:04:05.000Z') / 1000);
  lag = { revisions: 3, seconds: 42.5 };
  f = parsePrometheusText(await metrics.metrics());
  assert.equal(v(f, 'carpd_sync_lag_revisions'), 3);
  assert.equal(v(f, 'carpd_sync_lag_seconds'), 42.5);
  assert.equal(v(f, 'carpd_sync_pending'), 1);
  assert.equal(v(f, 'carpd_sync_last_error'), 1);
});

function get(port: number, pathname: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: pathname, method }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the metrics listener: 503 until it has the metrics, then /metrics without a token; 404 elsewhere, 405 for another method; a taken port is refused', async (t) => {
  const h = await harness(t);
  const l = await metricsListener('127.0.0.1', 0);
  t.after(() => {
    l.server.close();
    l.server.closeAllConnections();
  });
  const port = (l.server.address() as AddressInfo).port;
  assert.equal((await get(port, '/metrics')).status, 503);
  const metrics = new CarpdMetrics({ service: h.service });
  t.after(() => metrics.close());
  l.serve(metrics);
  const r = await get(port, '/metrics?x=1');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(v(parsePrometheusText(r.text), 'carpd_up', { read: 'status' }), 1);
  assert.equal((await get(port, '/metrics', 'HEAD')).status, 200);
  for (const p of ['/', '/v1/status', '/metrics/x', '/healthz']) assert.equal((await get(port, p)).status, 404, p);
  const post = await get(port, '/metrics', 'POST');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  await assert.rejects(metricsListener('127.0.0.1', port), (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
});

test('--metrics-listen / CARPD_METRICS_LISTEN: parsed as HOST:PORT, never the API\'s or the sync listener\'s address', () => {
  const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseFlags(argv, env) as DaemonOptions;
  assert.equal(parse([]).metricsListen, undefined);
  assert.deepEqual(parse(['--metrics-listen', '192.0.2.1:9109']).metricsListen, { host: '192.0.2.1', port: 9109 });
  assert.deepEqual(parse(['--metrics-listen', '[::1]:9109']).metricsListen, { host: '::1', port: 9109 });
  assert.deepEqual(parse([], { CARPD_METRICS_LISTEN: '127.0.0.1:9109' }).metricsListen, { host: '127.0.0.1', port: 9109 });
  const refused = (argv: string[], message: RegExp) => assert.throws(() => parseFlags(argv, {}), (e: unknown) => e instanceof UsageError && message.test(e.message));
  refused(['--metrics-listen', '9109'], /--metrics-listen "9109" is not HOST:PORT/);
  refused(['--metrics-listen', '127.0.0.1:8080'], /is the management address/);
  refused(['--sync-listen', '192.0.2.1:8443', '--metrics-listen', '192.0.2.1:8443'], /is the sync address/);
});

/** The families of a real carpd's scrape (its own process), kept for the docs test below. */
let daemonFamilies: Map<string, Family> | undefined;

test('a running carpd with --metrics-listen: /metrics there without a token, with process metrics; the API\'s /metrics still wants one; closed on stop', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-metrics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const d = await startDaemon(t, daemonArgs(dir, '--metrics-listen', '127.0.0.1:0'));
  const line = await d.waitForEvent('metrics.listening');
  const port = Number(/:(\d+)$/.exec(String(line.address))![1]);
  const r = await get(port, '/metrics');
  assert.equal(r.status, 200, r.text);
  daemonFamilies = parsePrometheusText(r.text);
  assert.equal(v(daemonFamilies, 'carpd_info', { backend: 'memory' }), 1);
  assert.ok(daemonFamilies.has('process_cpu_seconds_total') && daemonFamilies.has('nodejs_heap_size_used_bytes'));
  assert.ok(daemonFamilies.has('carpd_sync_pushes_total') && daemonFamilies.has('carpd_sync_role'));
  assert.equal((await get(port, '/v1/status')).status, 404);
  assert.equal((await call(d.port, 'GET', '/metrics')).status, 401);
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  const api = await call(d.port, 'GET', '/metrics', { token });
  assert.equal(api.status, 200);
  assert.ok(parsePrometheusText(api.text).has('carpd_vhid_state'));
  d.kill('SIGTERM');
  assert.equal((await d.waitForExit()).code, 0, d.output);
  await assert.rejects(get(port, '/metrics'));
});

test('carpd refuses to start when --metrics-listen cannot be bound, naming the flag', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-metrics-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  const d = spawnDaemon(t, daemonArgs(dir, '--metrics-listen', `127.0.0.1:${port}`));
  const failed = await d.waitForEvent('start.failed');
  assert.match(String(failed.err), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use \\(--metrics-listen\\)`));
  assert.equal((await d.waitForExit()).code, 1, d.output);
});

/** The metric names a PromQL expression uses (not its functions, keywords, label names or Grafana variables). */
function metricNames(expr: string): string[] {
  const e = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\$\{?\w+\}?/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const keywords = new Set(['and', 'or', 'unless', 'offset', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'Inf', 'NaN']);
  const out: string[] = [];
  for (const m of e.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = e[m.index - 1] ?? ' ';
    const after = e.slice(m.index + m[0].length);
    if (/[\w.]/.test(before) || /^\s*\(/.test(after) || keywords.has(m[0])) continue;
    out.push(m[0]);
  }
  return out;
}

test('docs/prometheus: the rules parse, and every series the rules, the dashboard and the list use is in a real scrape (and the list has every carpd series)', async (t) => {
  assert.ok(daemonFamilies, 'the running-carpd test ran first');
  // The split brain and event stream series come with their providers: an in-process scrape
  // with fakes of both, and with config sync, adds them to the daemon's.
  const h = await harness(t);
  const sync = { status: () => ({ role: 'primary', lag: { revisions: 0, seconds: 0 }, pending: false, lastError: null, lastSuccess: null, rejected: {} }) } as unknown as SyncManager;
  const metrics = new CarpdMetrics({ service: h.service, sync, splitBrain: () => [], streams: { clients: () => 0, dropped: () => 0 } });
  t.after(() => metrics.close());
  const names = new Set([...daemonFamilies.keys(), ...parsePrometheusText(await metrics.metrics()).keys()]);
  const known = (n: string) => names.has(n) || names.has(n.replace(/_(bucket|sum|count)$/, '')) || n === 'up';

  const rules = YAML.parse(readFileSync('docs/prometheus/carpd.rules.yml', 'utf8')) as { groups: { name: string; rules: Record<string, unknown>[] }[] };
  const exprs: string[] = [];
  assert.ok(rules.groups.length > 0);
  const alerts = new Set<string>();
  for (const g of rules.groups) {
    assert.equal(typeof g.name, 'string');
    for (const r of g.rules) {
      assert.equal(typeof r.alert, 'string', JSON.stringify(r));
      assert.ok(!alerts.has(r.alert as string), `alert ${r.alert} twice`);
      alerts.add(r.alert as string);
      assert.equal(typeof r.expr, 'string');
      assert.deepEqual(Object.keys(r).filter((k) => !['alert', 'expr', 'for', 'labels', 'annotations'].includes(k)), [], `${r.alert}: unknown keys`);
      assert.match(String((r.labels as Record<string, string>).severity), /^(critical|warning|info)$/);
      assert.ok((r.annotations as Record<string, string>).summary && (r.annotations as Record<string, string>).description, `${r.alert}: summary and description`);
      if (r.for !== undefined) assert.match(String(r.for), /^\d+[smh]$/);
      exprs.push(r.expr as string);
    }
  }
  for (const a of ['CarpdFailover', 'CarpdSplitBrain', 'CarpdDemoted', 'CarpdMaintenance', 'CarpdSyncLagging', 'CarpdSyncFailing', 'CarpdHookFailing', 'CarpdWebhookFailing']) assert.ok(alerts.has(a), a);

  const dash = JSON.parse(readFileSync('docs/prometheus/grafana-carpd.json', 'utf8')) as { panels: { title: string; type: string; targets?: { expr: string }[] }[]; templating: { list: { name: string; query?: unknown; definition?: string }[] }; annotations: { list: { expr?: string }[] } };
  assert.ok(dash.templating.list.some((x) => x.name === 'instance'));
  assert.ok(dash.panels.some((p) => p.type === 'state-timeline' && p.targets!.some((x) => x.expr.includes('carpd_vhid_state'))));
  for (const p of dash.panels) for (const x of p.targets ?? []) exprs.push(x.expr);
  for (const a of dash.annotations.list) if (a.expr) exprs.push(a.expr);
  for (const x of dash.templating.list) if (x.definition) exprs.push(x.definition.replace(/^label_values\((\w+),.*$/, '$1'));

  let used = 0;
  for (const expr of exprs) {
    const found = metricNames(expr);
    assert.ok(found.length > 0, `no series in ${expr}`);
    for (const n of found) {
      assert.ok(known(n), `${n} (in ${expr}) is not in a scrape of carpd`);
      used++;
    }
  }
  assert.ok(used > 30, `${used} series uses`);

  const list = readFileSync('docs/prometheus/README.md', 'utf8');
  const listed = new Set([...list.matchAll(/`((?:carpd|process|nodejs)_[a-z0-9_]+)`/g)].map((m) => m[1]));
  for (const n of listed) assert.ok(known(n), `docs/prometheus/README.md lists ${n}, which no scrape has`);
  for (const n of names) if (n.startsWith('carpd_')) assert.ok(listed.has(n), `${n} is not in docs/prometheus/README.md`);

  const prom = YAML.parse(readFileSync('docs/prometheus/prometheus.yml', 'utf8')) as { rule_files: string[]; scrape_configs: Record<string, any>[] };
  assert.deepEqual(prom.rule_files, ['carpd.rules.yml']);
  const jobs = prom.scrape_configs.map((c) => c.job_name as string);
  assert.equal(new Set(jobs).size, jobs.length, 'job names are unique');
  for (const c of prom.scrape_configs) {
    assert.deepEqual(c.authorization.type, 'Bearer');
    assert.match(c.authorization.credentials_file, /^\/.+\.token$/);
    assert.equal(c.static_configs.length, 1);
  }
  // The --metrics-listen variant, commented out, parses once uncommented.
  const text = readFileSync('docs/prometheus/prometheus.yml', 'utf8');
  const variant = text.slice(text.indexOf('  # - job_name:')).split('\n').map((l) => l.replace(/^  # ?/, '  ')).join('\n');
  const parsed = YAML.parse(`scrape_configs:\n${variant}`) as { scrape_configs: Record<string, any>[] };
  assert.equal(parsed.scrape_configs[0].scheme, 'http');
  assert.equal(parsed.scrape_configs[0].authorization, undefined);
  assert.equal(parsed.scrape_configs[0].static_configs.length, 2);
});

test('metricNames reads the series out of PromQL, and only them', () => {
  assert.deepEqual(metricNames('sum by (instance, state) (increase(carpd_vhid_transitions_total{instance=~"$instance"}[$__rate_interval]))'), ['carpd_vhid_transitions_total']);
  assert.deepEqual(metricNames('carpd_demotion > 0 and carpd_maintenance == 0'), ['carpd_demotion', 'carpd_maintenance']);
  assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b(c)"}[5m])))'), ['x_bucket']);
  assert.deepEqual(metricNames('a unless b offset 10m'), ['a', 'b']);
});
