/**
 * Health tracks: the hysteresis (pure), the rules through the API (every bad input a 4xx
 * problem+json that changes nothing), CRUD and the desired-state document, sync's handling of
 * nosync, the bootstrap file; the runner on a manual clock with injected probes (down after
 * `fall` failures, up after `rise` successes, the demotion held as track:<name> while down and
 * given back on removal or change, track.changed events, metrics, a held demotion picked up at
 * a restart); and the real probes: a tcp listener closed, an http server answering 500, a
 * script true/false, an interface's link, ping of loopback.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { makeHarness, READ_TOKEN, type Harness } from './helpers/harness.js';
import { initialState, type TrackConfig } from '../src/config/model.js';
import { readBootstrap, DocumentError } from '../src/config/document.js';
import { initialTrackStatus, observeProbe, trackDemotion, type ProbeResult, type TrackStatus } from '../src/service/tracks.js';
import { TrackRunner } from '../src/track/runner.js';
import { probeHttp, probeScript, probeTcp, probeInterface } from '../src/track/probes.js';
import { applySnapshot, snapshotOf } from '../src/sync/derive.js';
import { CarpdMetrics } from '../src/api/metrics.js';
import { parsePrometheusText } from './helpers/prom-text.js';
import type { MemoryBackend } from '../src/kernel/memory.js';
import type { AnyEvent } from '../src/service/events.js';

const quiet = pino({ level: 'silent' });
const PING = { name: 'wan-gw', kind: 'ping', target: '203.0.113.1' };

test('hysteresis: unknown until rise or fall is reached; fall failures in a row take it down, rise successes bring it up; only down demotes', () => {
  const h = { rise: 2, fall: 3 };
  const ok: ProbeResult = { ok: true, ms: 1, detail: 'fine' };
  const bad: ProbeResult = { ok: false, ms: 1, detail: 'timeout' };
  let s: TrackStatus = initialTrackStatus(0);
  const feed = (r: ProbeResult, at: number) => {
    const o = observeProbe(s, h, r, at);
    s = o.status;
    return o.changed;
  };
  assert.equal(s.state, 'unknown');
  assert.equal(trackDemotion(s, 100), 0);
  assert.equal(feed(bad, 1), undefined);
  assert.equal(feed(bad, 2), undefined);
  assert.equal(feed(ok, 3), undefined, 'a success resets the failures');
  assert.equal(s.failures, 0);
  assert.equal(feed(bad, 4), undefined);
  assert.equal(feed(bad, 5), undefined);
  assert.deepEqual(feed(bad, 6), { from: 'unknown', to: 'down' });
  assert.equal(s.since, 6);
  assert.match(s.reason, /^3 failed probes in a row \(fall 3\): timeout$/);
  assert.equal(trackDemotion(s, 100), 100);
  assert.equal(feed(bad, 7), undefined, 'no second transition while down');
  assert.equal(feed(ok, 8), undefined);
  assert.deepEqual(feed(ok, 9), { from: 'down', to: 'up' });
  assert.equal(trackDemotion(s, 100), 0);
  assert.equal(s.probes, 9);
  // From unknown, rise successes decide up.
  s = initialTrackStatus(0);
  feed(ok, 1);
  assert.deepEqual(feed(ok, 2), { from: 'unknown', to: 'up' });
});

async function refused(h: Harness, method: 'post' | 'put', url: string, body: unknown, status: number, code: string, detail?: RegExp): Promise<void> {
  const stored = JSON.stringify(h.service.desired());
  const res = await h.api[method](url, body);
  assert.equal(res.status, status, `${method} ${url} ${JSON.stringify(body)}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
  assert.equal(res.body.code, code, res.text);
  if (detail) assert.match(res.body.detail + ' ' + JSON.stringify(res.body.errors ?? []), detail);
  assert.equal(JSON.stringify(h.service.desired()), stored, 'nothing changed');
}

test('bad tracks are refused with 4xx problem+json and stable codes, and change nothing', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  await refused(h, 'post', '/v1/tracks', { ...PING, kind: 'dns' }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, intervalMs: 50 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, intervalMs: 3_600_001 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, rise: 0 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, fall: 101 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, weight: 241 }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, name: 'WAN' }, 400, 'CARPD_ERR_VALIDATION');
  await refused(h, 'post', '/v1/tracks', { ...PING, intervalMs: 1000, timeoutMs: 1000 }, 422, 'CARPD_ERR_INVALID_VALUE', /timeoutMs 1000 must be 1\.\.999/);
  await refused(h, 'post', '/v1/tracks', { ...PING, target: 'gw.example.net' }, 422, 'CARPD_ERR_INVALID_VALUE', /not an IP address/);
  await refused(h, 'post', '/v1/tracks', { ...PING, target: '224.0.0.18' }, 422, 'CARPD_ERR_INVALID_VALUE', /multicast/);
  await refused(h, 'post', '/v1/tracks', { name: 'p', kind: 'ping' }, 422, 'CARPD_ERR_INVALID_VALUE', /needs a target/);
  await refused(h, 'post', '/v1/tracks', { ...PING, port: 53 }, 422, 'CARPD_ERR_INVALID_VALUE', /port is not a field of a ping track/);
  await refused(h, 'post', '/v1/tracks', { name: 's', kind: 'script', command: '/usr/local/bin/check && echo ok' }, 422, 'CARPD_ERR_INVALID_VALUE', /never a shell string/);
  await refused(h, 'put', '/v1/tracks/s', { kind: 'script', command: 'true' }, 422, 'CARPD_ERR_INVALID_VALUE', /argv array/);
  await refused(h, 'post', '/v1/tracks', { name: 's', kind: 'script', command: ['true'] }, 422, 'CARPD_ERR_INVALID_VALUE', /not an absolute path/);
  await refused(h, 'post', '/v1/tracks', { name: 't', kind: 'tcp', target: '192.0.2.1' }, 422, 'CARPD_ERR_INVALID_VALUE', /needs a port/);
  await refused(h, 'post', '/v1/tracks', { name: 't', kind: 'tcp', target: 'bad host!', port: 80 }, 422, 'CARPD_ERR_INVALID_VALUE', /not an IP address or a host name/);
  await refused(h, 'post', '/v1/tracks', { name: 'w', kind: 'http', url: 'ftp://192.0.2.1/' }, 422, 'CARPD_ERR_INVALID_VALUE', /ftp: URLs are not allowed/);
  await refused(h, 'post', '/v1/tracks', { name: 'w', kind: 'http', url: 'http://192.0.2.1/', statusMin: 300, statusMax: 200 }, 422, 'CARPD_ERR_INVALID_VALUE', /below statusMin/);
  await refused(h, 'post', '/v1/tracks', { name: 'i', kind: 'interface' }, 422, 'CARPD_ERR_INVALID_VALUE', /needs the interface/);
  // PUT /v1/config: a JSON pointer into the document.
  const cfg = (await h.api.get('/v1/config')).body;
  const put = await h.api.put('/v1/config', { vips: [], tracks: [{ name: 'ok', kind: 'tcp', target: '127.0.0.1', port: 53 }, { ...PING, target: 'not-an-ip' }] });
  assert.equal(put.status, 422, put.text);
  assert.equal(put.body.code, 'CARPD_ERR_INVALID_VALUE');
  assert.ok(put.body.errors.some((e: { path: string }) => e.path === '/tracks/1/target'), JSON.stringify(put.body.errors));
  assert.deepEqual((await h.api.get('/v1/config')).body, cfg);
  // A name taken; a track that is not there.
  assert.equal((await h.api.post('/v1/tracks', PING)).status, 201);
  await refused(h, 'post', '/v1/tracks', PING, 409, 'CARPD_ERR_TRACK_EXISTS');
  const missing = await h.api.get('/v1/tracks/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.code, 'CARPD_ERR_TRACK_NOT_FOUND');
  assert.equal((await h.api.delete('/v1/tracks/nope')).body.code, 'CARPD_ERR_TRACK_NOT_FOUND');
  // Writes need an admin token.
  assert.equal((await h.api.post('/v1/tracks', { ...PING, name: 'x' }, { token: READ_TOKEN })).status, 403);
});

test('tracks: CRUD with defaults, the live state in GET /v1/tracks, the document, dry runs and rollback', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/tracks', { ...PING, target: '2001:db8:0::1' });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.headers.location, '/v1/tracks/wan-gw');
  assert.deepEqual(created.body, {
    name: 'wan-gw', kind: 'ping', target: '2001:db8::1', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, weight: 240, nosync: false,
    status: { state: 'unknown', since: created.body.status.since, reason: 'not probed yet', successes: 0, failures: 0, probes: 0, lastProbe: null, demotion: 0 },
  });
  const list = await h.api.get('/v1/tracks', { token: READ_TOKEN });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.items.map((x: { name: string }) => x.name), ['wan-gw']);
  const dry = await h.api.put('/v1/tracks/proxy?dryRun=true', { kind: 'http', url: 'http://127.0.0.1:3128/health' });
  assert.equal(dry.status, 200);
  assert.deepEqual(dry.body.changes, ['add track proxy (http)']);
  assert.equal(h.service.desired().tracks.length, 1);
  const put = await h.api.put('/v1/tracks/proxy', { kind: 'http', url: 'http://127.0.0.1:3128/health', intervalMs: 5000 });
  assert.equal(put.status, 201);
  assert.equal(put.body.timeoutMs, 2500);
  assert.equal(put.body.statusMin, undefined, 'defaults of the kind are not written out');
  const rev = h.service.desired().revision;
  const doc = (await h.api.get('/v1/config')).body;
  assert.deepEqual(doc.tracks.map((x: { name: string }) => x.name), ['wan-gw', 'proxy']);
  assert.equal(doc.tracks[0].status, undefined, 'the document carries no live state');
  const del = await h.api.delete('/v1/tracks/proxy');
  assert.equal(del.status, 204);
  assert.deepEqual(h.service.desired().tracks.map((x) => x.name), ['wan-gw']);
  const back = await h.api.post("/v1/config/rollback", { revision: rev });
  assert.equal(back.status, 200, back.text);
  assert.deepEqual(h.service.desired().tracks.map((x) => x.name), ['wan-gw', 'proxy']);
  // PUT /v1/config with tracks replaces the list; without, keeps it.
  const same = await h.api.put('/v1/config', { vips: [] });
  assert.equal(same.status, 200, same.text);
  assert.equal(h.service.desired().tracks.length, 2);
  const one = await h.api.put('/v1/config', { vips: [], tracks: [{ name: 'lan-link', kind: 'interface', interface: 'em1', rise: 1, fall: 1 }] });
  assert.equal(one.status, 200, one.text);
  assert.deepEqual(h.service.desired().tracks, [{ name: 'lan-link', kind: 'interface', interface: 'em1', intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 1, weight: 240, nosync: false }]);
});

test('sync: tracks without nosync go to the secondary; the secondary keeps its own nosync tracks', () => {
  const primary = initialState(new Date(0));
  const base = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, weight: 240 };
  primary.tracks = [{ name: 'shared', kind: 'tcp', target: '192.0.2.53', port: 53, ...base, nosync: false }, { name: 'mine', kind: 'ping', target: '192.0.2.1', ...base, nosync: true }];
  const snap = snapshotOf(primary);
  assert.deepEqual(snap.tracks!.map((x) => x.name), ['shared']);
  const secondary = initialState(new Date(0));
  secondary.sync.role = 'secondary';
  secondary.tracks = [{ name: 'own-gw', kind: 'ping', target: '198.51.100.1', ...base, nosync: true }, { name: 'old', kind: 'ping', target: '198.51.100.2', ...base, nosync: false }];
  const next = applySnapshot(secondary, snap);
  assert.deepEqual(next.tracks.map((x) => x.name), ['own-gw', 'shared']);
});

test('the bootstrap file takes tracks; a shell string or a bad field is refused with the field', () => {
  const s = initialState(new Date(0));
  const b = readBootstrap({ tracks: [{ name: 'wan-gw', kind: 'ping', target: '203.0.113.1', fall: 2 }] }, s);
  assert.equal(b.tracks![0].fall, 2);
  assert.equal(b.tracks![0].weight, 240);
  assert.throws(() => readBootstrap({ tracks: [{ name: 's', kind: 'script', command: 'check-wan' }] }, s), (e: unknown) => e instanceof DocumentError && e.field === '/tracks/0/command');
  assert.throws(() => readBootstrap({ tracks: [{ name: 's', kind: 'nope' }] }, s), (e: unknown) => e instanceof DocumentError && e.field === '/tracks/0/kind');
  assert.throws(() => readBootstrap({ tracks: [{ name: 'p', kind: 'ping', target: 'gw' }] }, s), /not an IP address/);
});

/** Lets the runner's awaited probes and demotion writes run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

function fakeRunner(h: Harness, results: Map<string, boolean>) {
  return new TrackRunner({
    service: h.service,
    clock: h.clock,
    logger: quiet,
    probe: async (t: TrackConfig) => ({ ok: results.get(t.name) ?? true, ms: 2, detail: results.get(t.name) === false ? 'injected failure' : 'injected success' }),
  });
}

async function step(h: Harness, ms: number, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    h.clock.advance(ms);
    await settle();
  }
}

test('runner on a manual clock: every kind goes down after fall failures and up after rise successes; the demotion is track:<name> while down; removal and change give it back', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const kinds = [
    { name: 'link', kind: 'interface', interface: 'em0' },
    { name: 'gw', kind: 'ping', target: '203.0.113.1' },
    { name: 'dns', kind: 'tcp', target: '127.0.0.1', port: 53 },
    { name: 'web', kind: 'http', url: 'http://127.0.0.1:8080/' },
    { name: 'check', kind: 'script', command: ['/bin/true'] },
  ];
  for (const [i, k] of kinds.entries()) assert.equal((await h.api.post('/v1/tracks', { ...k, intervalMs: 1000, timeoutMs: 400, rise: 2, fall: 3, weight: 10 + i })).status, 201);
  const results = new Map<string, boolean>();
  const events: AnyEvent[] = [];
  h.service.events.subscribe((e) => e.type === 'track.changed' && events.push(e));
  const runner = fakeRunner(h, results);
  t.after(() => runner.close());
  await runner.start();
  await step(h, 0);
  assert.deepEqual(h.service.tracks.entries().map(([, l]) => l.status.state), ['unknown', 'unknown', 'unknown', 'unknown', 'unknown']);
  await step(h, 1000);
  // Two good probes: up (the first at start, the second one interval later).
  assert.deepEqual(h.service.tracks.entries().map(([, l]) => l.status.state), ['up', 'up', 'up', 'up', 'up']);
  assert.deepEqual(await h.service.demotions(), new Map());
  for (const k of kinds) results.set(k.name, false);
  await step(h, 1000, 2);
  assert.ok(h.service.tracks.entries().every(([, l]) => l.status.state === 'up'), 'two failures are not fall 3');
  await step(h, 1000);
  await runner.settled();
  assert.deepEqual(runner.tracksDown(), ['check', 'dns', 'gw', 'link', 'web']);
  assert.deepEqual(h.service.tracksDown(), ['check', 'dns', 'gw', 'link', 'web']);
  assert.deepEqual(await h.service.demotions(), new Map([['track:check', 14], ['track:dns', 12], ['track:gw', 11], ['track:link', 10], ['track:web', 13]]));
  assert.equal((await h.service.liveCarp()).demotion, 60);
  const carp = await h.api.get('/v1/carp', { token: READ_TOKEN });
  assert.deepEqual(carp.body.contributors, [{ name: 'track:check', value: 14 }, { name: 'track:dns', value: 12 }, { name: 'track:gw', value: 11 }, { name: 'track:link', value: 10 }, { name: 'track:web', value: 13 }]);
  const status = await h.api.get('/v1/status', { token: READ_TOKEN });
  assert.deepEqual(status.body.carp.contributors, carp.body.contributors);
  const view = (await h.api.get('/v1/tracks/gw', { token: READ_TOKEN })).body;
  assert.equal(view.status.state, 'down');
  assert.equal(view.status.demotion, 11);
  assert.equal(view.status.failures, 3);
  assert.deepEqual(view.status.lastProbe, { ok: false, ms: 2, detail: 'injected failure', at: new Date(h.clock.wall()).toISOString() });
  assert.match(view.status.reason, /^3 failed probes in a row \(fall 3\): injected failure$/);
  // The metrics.
  const metrics = new CarpdMetrics({ service: h.service });
  t.after(() => metrics.close());
  const fam = parsePrometheusText(await metrics.metrics());
  const sample = (n: string, labels: Record<string, string>) => fam.get(n)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  assert.equal(sample('carpd_track_up', { track: 'gw' }), 0);
  assert.equal(sample('carpd_track_demotion', { track: 'gw' }), 11);
  assert.equal(sample('carpd_track_transitions_total', { track: 'gw', to: 'down' }), 1);
  assert.equal(sample('carpd_track_transitions_total', { track: 'gw', to: 'up' }), 1);
  assert.equal(sample('carpd_track_probe_duration_seconds', { track: 'gw' }), 0.002);
  assert.equal(sample('carpd_demotion_contributor', { name: 'track:gw' }), 11);
  // Up again after rise successes.
  results.set('gw', true);
  await step(h, 1000);
  assert.equal(h.service.tracks.get('gw')!.status.state, 'down', 'one success is not rise 2');
  await step(h, 1000);
  await runner.settled();
  assert.equal(h.service.tracks.get('gw')!.status.state, 'up');
  assert.equal((await h.service.demotions()).get('track:gw'), undefined);
  // Removed: its demotion is given back, its live state gone, an event to unknown.
  assert.equal((await h.api.delete('/v1/tracks/dns')).status, 204);
  await runner.settled();
  assert.equal((await h.service.demotions()).get('track:dns'), undefined);
  assert.equal(h.service.tracks.get('dns'), undefined);
  // Changed: back to unknown, demotion given back, probed again from scratch.
  assert.equal((await h.api.put('/v1/tracks/link', { kind: 'interface', interface: 'em1', weight: 50, rise: 2, fall: 3 })).status, 200);
  await runner.settled();
  assert.equal((await h.service.demotions()).get('track:link'), undefined);
  assert.equal(h.service.tracks.get('link')!.status.state, 'unknown');
  const types = events.map((e) => (e.type === 'track.changed' ? `${e.data.track}:${e.data.from}->${e.data.to}:${e.data.demotion}` : ''));
  for (const x of ['gw:unknown->up:0', 'gw:up->down:11', 'gw:down->up:0', 'dns:down->unknown:0', 'link:down->unknown:0']) assert.ok(types.includes(x), `${x} in ${types.join(' ')}`);
  // Back to down after fall failures with its new weight.
  await step(h, 1000, 3);
  await runner.settled();
  assert.equal((await h.service.demotions()).get('track:link'), 50);
});

test('runner: a demotion still held at start (carpd restarted while a track was down) is kept until rise successes; one of a track gone is given back', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  assert.equal((await h.api.post('/v1/tracks', { ...PING, rise: 2, fall: 3, weight: 100 })).status, 201);
  await h.service.setDemotion('track:wan-gw', 100);
  await h.service.setDemotion('track:gone', 30);
  const results = new Map([['wan-gw', true]]);
  const runner = fakeRunner(h, results);
  t.after(() => runner.close());
  await runner.start();
  await runner.settled();
  assert.equal(h.service.tracks.get('wan-gw')!.status.state, 'down');
  assert.match(h.service.tracks.get('wan-gw')!.status.reason, /still down when carpd stopped/);
  assert.deepEqual(await h.service.demotions(), new Map([['track:wan-gw', 100]]));
  await step(h, 0);
  await runner.settled();
  assert.deepEqual(await h.service.demotions(), new Map([['track:wan-gw', 100]]), 'one success is not rise 2');
  await step(h, 1000);
  await runner.settled();
  assert.equal(h.service.tracks.get('wan-gw')!.status.state, 'up');
  assert.deepEqual(await h.service.demotions(), new Map());
});

test('real probes: tcp to a listener then closed, http 200 then 500, script true/false, an interface link, a hung probe times out', async (t) => {
  const server: Server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const never = new AbortController().signal;
  assert.equal((await probeTcp('127.0.0.1', port, 1000, never)).ok, true);
  await new Promise<void>((r) => server.close(() => r()));
  const closed = await probeTcp('127.0.0.1', port, 1000, never);
  assert.equal(closed.ok, false);
  assert.match(closed.detail, /ECONNREFUSED/);

  let status = 200;
  const web = createHttpServer((_req, res) => res.writeHead(status).end('x'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
  t.after(() => web.close());
  const url = `http://127.0.0.1:${(web.address() as { port: number }).port}/health`;
  assert.deepEqual({ ...(await probeHttp(url, 200, 399, 1000, never)), ms: 0 }, { ok: true, ms: 0, detail: 'HTTP 200' });
  status = 500;
  assert.deepEqual({ ...(await probeHttp(url, 200, 399, 1000, never)), ms: 0 }, { ok: false, ms: 0, detail: 'HTTP 500 (expected 200..399)' });

  assert.equal((await probeScript(['/bin/true'], 2000, never)).ok, true);
  const f = await probeScript(['/bin/false'], 2000, never);
  assert.equal(f.ok, false);
  assert.equal(f.detail, 'exit 1');
  const slow = await probeScript(['/bin/sleep', '5'], 100, never);
  assert.equal(slow.ok, false);
  assert.match(slow.detail, /did not exit within 100 ms \(killed\)/);
  const missing = await probeScript(['/nonexistent/check'], 1000, never);
  assert.match(missing.detail, /cannot start \/nonexistent\/check: ENOENT/);

  const h = await makeHarness();
  t.after(() => h.close());
  assert.deepEqual({ ...(await probeInterface(h.service, 'em0')), ms: 0 }, { ok: true, ms: 0, detail: 'link of em0 up' });
  (h.backend as MemoryBackend).setLink('em0', false);
  assert.deepEqual({ ...(await probeInterface(h.service, 'em0')), ms: 0 }, { ok: false, ms: 0, detail: 'link of em0 down' });
  assert.match((await probeInterface(h.service, 'nope0')).detail, /ENXIO|does not exist|no such interface/i);
});

test('ping: an echo reply from loopback; no reply from an address nobody answers (root only)', { skip: process.getuid?.() !== 0 || process.platform !== 'linux' ? 'needs root on Linux' : false }, async () => {
  const { LinuxPinger } = await import('../src/kernel/linux/ping.js');
  const p = new LinuxPinger();
  try {
    const r = await p.ping('127.0.0.1', 1000);
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^echo reply from 127\.0\.0\.1 in [\d.]+ ms$/);
    const r6 = await p.ping('::1', 1000);
    assert.equal(r6.ok, true, r6.detail);
  } finally {
    p.close();
  }
});

test('carpctl track: add, list, show, set, remove against carpd; usage errors and refusals', async (t) => {
  const { createServer: createHttp } = await import('node:http');
  const { run } = await import('../src/cli/run.js');
  const { ADMIN_TOKEN } = await import('./helpers/harness.js');
  const h = await makeHarness();
  const server = createHttp(h.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await h.close();
  });
  const url = `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  const carpctl = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: ADMIN_TOKEN } });
    return { code, stdout, stderr };
  };
  let r = await carpctl(['track', 'add', 'wan-gw', 'ping', '203.0.113.1', '--interval', '2000', '--fall', '4', '--weight', '120']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(h.service.desired().tracks[0], { name: 'wan-gw', kind: 'ping', target: '203.0.113.1', intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 4, weight: 120, nosync: false });
  assert.match(r.stdout, /added track wan-gw/);
  r = await carpctl(['track', 'add', 'dns', 'tcp', '127.0.0.1', '53', '--nosync']);
  assert.equal(r.code, 0, r.stderr);
  r = await carpctl(['track', 'add', 'web', 'http', 'http://127.0.0.1:3128/health', '--status', '200-299']);
  assert.equal(r.code, 0, r.stderr);
  r = await carpctl(['track', 'add', 'uplink', 'script', '--', '/usr/local/libexec/check-uplink', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(h.service.desired().tracks.find((x) => x.name === 'uplink')!.command, ['/usr/local/libexec/check-uplink', '--quiet']);
  r = await carpctl(['track', 'list']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /wan-gw\s+ping 203\.0\.113\.1\s+unknown\s+0\s+-\s+no/);
  assert.match(r.stdout, /dns\s+tcp 127\.0\.0\.1:53\s+unknown/);
  assert.match(r.stdout, /web\s+GET http:\/\/127\.0\.0\.1:3128\/health \(200\.\.299\)/);
  r = await carpctl(['track', 'show', 'wan-gw']);
  assert.match(r.stdout, /state:\s+unknown since /);
  assert.match(r.stdout, /rise\/fall:\s+2\/4/);
  r = await carpctl(['track', 'set', 'wan-gw', 'interface', 'em0', '--weight', '30']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().tracks[0].kind, 'interface');
  r = await carpctl(['track', 'add', 'bad', 'ping', 'gw.example.net']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /not an IP address/);
  r = await carpctl(['track', 'add', 'bad', 'dns', 'x']);
  assert.equal(r.code, 2, 'an unknown kind: a usage error');
  r = await carpctl(['track', 'add', 'bad', 'tcp', '127.0.0.1']);
  assert.equal(r.code, 2, 'tcp without a port: a usage error');
  r = await carpctl(['track', 'remove', 'dns']);
  assert.equal(r.code, 0, r.stderr);
  r = await carpctl(['track', 'rm', 'web']);
  assert.equal(r.code, 0, r.stderr);
  r = await carpctl(['track', 'remove', 'web']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no track named "web"/);
  assert.deepEqual(h.service.desired().tracks.map((x) => x.name), ['wan-gw', 'uplink']);
});

test('ICMP echo codec: a request with its checksum; a reply matched by type, identifier and sequence, a bad checksum or a request refused', async () => {
  const { encodeEchoRequest, decodeEchoReply } = await import('../src/wire/icmp.js');
  const { internetChecksum } = await import('../src/wire/checksum.js');
  const req = encodeEchoRequest(4, 0x1234, 7, Buffer.from('carpd'));
  assert.deepEqual([req[0], req[1], req.readUInt16BE(4), req.readUInt16BE(6)], [8, 0, 0x1234, 7]);
  assert.equal(internetChecksum(req), 0, 'the checksum covers the message');
  // The reply as an IPv4 raw socket delivers it: a 20-byte IP header first.
  const reply = Buffer.from(req);
  reply[0] = 0;
  reply.writeUInt16BE(0, 2);
  reply.writeUInt16BE(internetChecksum(reply), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.set([192, 0, 2, 1], 12);
  assert.deepEqual(decodeEchoReply(4, Buffer.concat([ip, reply])), { id: 0x1234, seq: 7, source: '192.0.2.1' });
  const bad = Buffer.concat([ip, reply]);
  bad[bad.length - 1] ^= 0xff;
  assert.equal(decodeEchoReply(4, bad), undefined, 'a bad checksum');
  assert.equal(decodeEchoReply(4, Buffer.concat([ip, req])), undefined, 'a request is not a reply');
  assert.equal(decodeEchoReply(4, Buffer.concat([ip, reply.subarray(0, 4)])), undefined, 'truncated');
  // ICMPv6: type 128/129, no IP header, the checksum the kernel's.
  const req6 = encodeEchoRequest(6, 9, 65535);
  assert.deepEqual([req6[0], req6.readUInt16BE(2)], [128, 0]);
  const reply6 = Buffer.from(req6);
  reply6[0] = 129;
  assert.deepEqual(decodeEchoReply(6, reply6), { id: 9, seq: 65535 });
});

test('FreeBSD ping: sockaddrs with their length byte; a request sent with FreeBSD constants, its reply read and matched by identifier, sequence and source', async () => {
  const { FreebsdPinger, freebsdSockaddr, freebsdSockaddrAddress } = await import('../src/kernel/freebsd/ping.js');
  const { encodeEchoRequest } = await import('../src/wire/icmp.js');
  const { internetChecksum } = await import('../src/wire/checksum.js');
  assert.deepEqual([...freebsdSockaddr('192.0.2.1')], [16, 2, 0, 0, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const six = freebsdSockaddr('2001:db8::1');
  assert.deepEqual([six.length, six[0], six[1], six.readUInt16BE(8), six[23]], [28, 28, 28, 0x2001, 1]);
  assert.equal(freebsdSockaddrAddress(six), '2001:db8::1');
  assert.equal(freebsdSockaddrAddress(freebsdSockaddr('198.51.100.7')), '198.51.100.7');

  // A fake libc: the reply to each request waits in a queue for recvfrom (EAGAIN when empty).
  const opened: number[][] = [];
  const queue: { data: Buffer; from: Buffer }[] = [];
  let errno = 0;
  const calls = {
    socket: (d: number, t: number, p: number) => (opened.push([d, t, p]), 7),
    close: () => 0,
    sendto: (_fd: number, msg: Buffer, _len: number, _flags: number, to: Buffer) => {
      const target = freebsdSockaddrAddress(to)!;
      if (target === '203.0.113.9') {
        errno = 65; // EHOSTUNREACH
        return -1;
      }
      if (target === '198.51.100.99') return msg.length; // nobody answers
      const reply = Buffer.from(msg);
      reply[0] = 0;
      reply.writeUInt16BE(0, 2);
      reply.writeUInt16BE(internetChecksum(reply), 2);
      const ip = Buffer.alloc(20);
      ip[0] = 0x45;
      ip.set(target.split('.').map(Number), 12);
      // A stranger's reply (another identifier) first: it must be skipped.
      const other = Buffer.from(encodeEchoRequest(4, (msg.readUInt16BE(4) + 1) & 0xffff, msg.readUInt16BE(6)));
      other[0] = 0;
      other.writeUInt16BE(0, 2);
      other.writeUInt16BE(internetChecksum(other), 2);
      queue.push({ data: Buffer.concat([ip, other]), from: to }, { data: Buffer.concat([ip, reply]), from: to });
      return msg.length;
    },
    recvfrom: (_fd: number, buf: Buffer, _len: number, _flags: number, from: Buffer) => {
      const p = queue.shift();
      if (!p) {
        errno = 35; // EAGAIN
        return -1;
      }
      p.data.copy(buf);
      p.from.copy(from);
      return p.data.length;
    },
    errno: () => errno,
  };
  const pinger = new FreebsdPinger({ calls });
  try {
    const r = await pinger.ping('192.0.2.1', 1000);
    assert.equal(r.ok, true, r.detail);
    assert.match(r.detail, /^echo reply from 192\.0\.2\.1 in /);
    assert.deepEqual(opened, [[2, 3 | 0x20000000 | 0x10000000, 1]], 'AF_INET, SOCK_RAW|SOCK_NONBLOCK|SOCK_CLOEXEC, IPPROTO_ICMP');
    const silent = await pinger.ping('198.51.100.99', 50);
    assert.deepEqual([silent.ok, silent.detail], [false, 'no echo reply from 198.51.100.99 within 50 ms']);
    const refused = await pinger.ping('203.0.113.9', 1000);
    assert.deepEqual([refused.ok, refused.detail], [false, 'cannot send an echo request to 203.0.113.9: EHOSTUNREACH']);
  } finally {
    pinger.close();
  }
});

test('config sync carries tracks from primary to secondary over the wire; nosync ones stay home; a synced one is the primary\'s to change', async (t) => {
  const { startSyncNodeInProcess } = await import('./helpers/sync-inprocess.js');
  const { pollUntil } = await import('./helpers/poll.js');
  const a = await startSyncNodeInProcess('node-a', 'carpd-tracks-sync');
  const b = await startSyncNodeInProcess('node-b', 'carpd-tracks-sync');
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  const patch = (h: Harness, body: unknown) => h.api.patch('/v1/sync', body, { contentType: 'application/merge-patch+json' });
  let r = await patch(b.h, { role: 'secondary', peer: { address: '127.0.0.1', port: a.syncPort, fingerprint: a.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  r = await patch(a.h, { role: 'primary', peer: { address: '127.0.0.1', port: b.syncPort, fingerprint: b.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await b.h.api.post('/v1/tracks', { name: 'b-gw', kind: 'ping', target: '198.51.100.1', nosync: true })).status, 201);
  assert.equal((await a.h.api.post('/v1/tracks', { name: 'dns', kind: 'tcp', target: '127.0.0.1', port: 53, weight: 100 })).status, 201);
  assert.equal((await a.h.api.post('/v1/tracks', { name: 'a-gw', kind: 'ping', target: '203.0.113.1', nosync: true })).status, 201);
  await pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (x) => x === a.h.service.desired().revision);
  assert.deepEqual(b.h.service.desired().tracks.map((x) => x.name).sort(), ['b-gw', 'dns']);
  assert.equal(b.h.service.desired().tracks.find((x) => x.name === 'dns')!.weight, 100);
  const local = await b.h.api.put('/v1/tracks/dns', { kind: 'tcp', target: '127.0.0.1', port: 53, weight: 10 });
  assert.equal(local.status, 409, local.text);
  assert.equal(local.body.code, 'CARPD_ERR_SYNC_MANAGED');
  assert.match(local.body.detail, /track dns is managed by this node's sync primary/);
  assert.equal((await a.h.api.delete('/v1/tracks/dns')).status, 204);
  await pollUntil('secondary caught up again', async () => b.h.service.desired().sync.appliedRevision, (x) => x === a.h.service.desired().revision);
  assert.deepEqual(b.h.service.desired().tracks.map((x) => x.name), ['b-gw']);
});
