/**
 * The event loop's watch (src/service/loop-watch.ts) on an injected clock: the advertisement
 * intervals of the desired state; a lateness over the shortest interval is a stall, counted,
 * published as loop.stalled and logged at warn, naming exactly the vhids whose interval is
 * shorter; a short delay is neither; the delay histogram's counts from percentiles; and what
 * GET /v1/stats and /metrics show of it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import request from 'supertest';
import pino from 'pino';
import { buildApp } from '../src/api/app.js';
import { CarpdMetrics } from '../src/api/metrics.js';
import { VIP_DEFAULTS, type VipConfig } from '../src/config/model.js';
import { EventBus, type AnyEvent } from '../src/service/events.js';
import {
  advertisementIntervals,
  countsAtMost,
  DEFAULT_STALL_THRESHOLD_MS,
  DELAY_BUCKETS_SECONDS,
  LoopWatch,
  MIN_STALL_THRESHOLD_MS,
  StallDetector,
  stallMessage,
  stallThresholdMs,
  type TimedVhid,
} from '../src/service/loop-watch.js';
import { capturingLogger } from './helpers/log-capture.js';
import { ADMIN_TOKEN, makeHarness, READ_TOKEN } from './helpers/harness.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';

const vip = (p: Partial<VipConfig>): VipConfig => ({ ...VIP_DEFAULTS, interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], ...p });

const WALL = Date.parse('2026-12-07T10:00:00.000Z');

test('advertisement intervals: CARP advbase + advskew/256 s, VRRPv3 centiseconds, sorted by interface and vhid', () => {
  const got = advertisementIntervals({
    vips: [
      vip({ interface: 'em1', vhid: 2, advbaseSec: 3, advskew: 0 }),
      vip({ interface: 'em0', vhid: 7, protocol: 'vrrpv3', vrrpInterval: 50 }),
      vip({ interface: 'em0', vhid: 1, advbaseSec: 1, advskew: 128 }),
    ],
  });
  assert.deepEqual(got, [
    { interface: 'em0', vhid: 1, protocol: 'carp', intervalMs: 1500 },
    { interface: 'em0', vhid: 7, protocol: 'vrrpv3', intervalMs: 500 },
    { interface: 'em1', vhid: 2, protocol: 'carp', intervalMs: 3000 },
  ]);
  assert.equal(stallThresholdMs(got), 500);
  assert.equal(stallThresholdMs([]), DEFAULT_STALL_THRESHOLD_MS);
  assert.equal(stallThresholdMs([{ interface: 'em0', vhid: 1, protocol: 'vrrpv3', intervalMs: 10 }]), MIN_STALL_THRESHOLD_MS);
});

const VHIDS: TimedVhid[] = [
  { interface: 'em0', vhid: 1, protocol: 'carp', intervalMs: 1000 },
  { interface: 'em0', vhid: 2, protocol: 'carp', intervalMs: 2500 },
  { interface: 'em1', vhid: 3, protocol: 'vrrpv3', intervalMs: 6000 },
];

test('a stall is a lateness over the shortest interval; it names the vhids whose interval is shorter, and is counted', () => {
  const d = new StallDetector(100);
  assert.equal(d.ran(50, VHIDS, WALL), undefined, 'never armed: nothing to measure');
  // Due at 150; on time, then 999 ms late (just under the threshold of 1000 ms).
  assert.equal(d.ran(150, VHIDS, WALL), undefined);
  assert.equal(d.ran(250 + 999, VHIDS, WALL), undefined);
  assert.equal(d.stalls, 0);
  // Due at 1349, runs 3000 ms late: vhids 1 and 2 (1000, 2500 ms) delayed, not 3 (6000 ms).
  const s = d.ran(1349 + 3000, VHIDS, WALL + 5000);
  assert.deepEqual(s, { at: '2026-12-07T10:00:05.000Z', ms: 3000, thresholdMs: 1000, vhids: [VHIDS[0], VHIDS[1]] });
  assert.equal(d.stalls, 1);
  assert.equal(d.stalledMs, 3000);
  assert.deepEqual(d.last, s);
  // Back on time: no stall, the count stays.
  assert.equal(d.ran(4349 + 100, VHIDS, WALL), undefined);
  // A 7 s stall names all three.
  const t = d.ran(4449 + 100 + 7000, VHIDS, WALL);
  assert.deepEqual(t?.vhids.map((v) => v.vhid), [1, 2, 3]);
  assert.equal(d.stalls, 2);
  assert.equal(d.stalledMs, 10_000);
});

test('without any vhid the threshold is 1 s and a stall names none', () => {
  const d = new StallDetector(100);
  d.armed(0);
  assert.equal(d.ran(100 + 900, [], WALL), undefined);
  const s = d.ran(1100 + 1500, [], WALL);
  assert.deepEqual(s?.vhids, []);
  assert.equal(s?.thresholdMs, 1000);
  assert.match(stallMessage(s!), /stalled for 1500 ms .*no vhid configured/);
});

test('LoopWatch: a stall is published as loop.stalled and logged at warn once; a short delay is neither', () => {
  const { logger, lines } = capturingLogger('debug');
  const events = new EventBus({ logger, now: () => WALL });
  const seen: AnyEvent[] = [];
  events.subscribe((e) => seen.push(e));
  let vhids = VHIDS;
  const w = new LoopWatch({ vhids: () => vhids, events, periodMs: 100, wallNow: () => WALL });
  w.detector.armed(0);
  assert.equal(w.check(100 + 400), undefined);
  assert.equal(w.check(600 + 50), undefined);
  assert.equal(seen.length, 0);
  assert.equal(lines.length, 0, 'nothing logged for a short delay');

  const s = w.check(750 + 2000);
  assert.ok(s);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.type, 'loop.stalled');
  assert.deepEqual(seen[0]!.data, s);
  const warn = lines.filter((l) => l.event === 'loop.stalled');
  assert.equal(warn.length, 1);
  assert.equal(warn[0]!.level, 40, 'warn');
  assert.equal(warn[0]!.msg, 'the event loop stalled for 2000 ms (threshold 1000 ms, the shortest advertisement interval): timers delayed for em0 vhid 1 (1000 ms)');
  assert.deepEqual(warn[0]!.vhids, [VHIDS[0]]);

  // The vhids are read at each check: removing vhid 1 raises the threshold to 2.5 s.
  vhids = VHIDS.slice(1);
  assert.equal(w.check(2850 + 2000), undefined);
  assert.equal(w.stats().stalls, 1);
  assert.equal(w.stats().stallThresholdMs, 2500);
  assert.equal(w.stats().lastStall?.ms, 2000);
});

test('LoopWatch without an event bus logs the stall line at warn', () => {
  const { logger, lines } = capturingLogger();
  const w = new LoopWatch({ vhids: () => [], logger, periodMs: 100, wallNow: () => WALL });
  w.detector.armed(0);
  w.check(100 + 1200);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.level, 40);
  assert.equal(lines[0]!.event, 'loop.stalled');
  assert.equal(lines[0]!.ms, 1200);
});

/** A histogram of known samples, answering percentiles as HDR does (the sample of rank round(p/100 × n), at least 1). */
function fakeHistogram(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    min: sorted[0] ?? 0,
    max: sorted.at(-1) ?? 0,
    percentile: (p: number) => sorted[Math.max(1, Math.round((p / 100) * sorted.length)) - 1]!,
  };
}

test('countsAtMost: exact counts of samples at most each bound, from percentiles', () => {
  const samples = [1, 1, 2, 3, 3, 3, 5, 8, 13, 21, 34, 55, 400, 4000];
  const bounds = [0, 1, 2, 3, 4, 10, 100, 1000, 10_000];
  assert.deepEqual(
    countsAtMost(fakeHistogram(samples), bounds),
    bounds.map((b) => samples.filter((s) => s <= b).length),
  );
  const down = [...bounds].reverse();
  assert.deepEqual(countsAtMost(fakeHistogram(samples), down), down.map((b) => samples.filter((s) => s <= b).length), 'bounds in any order');
  assert.deepEqual(countsAtMost(fakeHistogram([]), bounds), bounds.map(() => 0));
  const many = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 1013);
  assert.deepEqual(
    countsAtMost(fakeHistogram(many), [10, 500, 1000]),
    [10, 500, 1000].map((b) => many.filter((s) => s <= b).length),
  );
});

test('GET /v1/stats has eventLoop, and /metrics the carpd_event_loop_* series, when the app has the watch', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const created = await h.api.post('/v1/vips', { interface: 'em0', vhid: 5, addresses: ['192.0.2.50/24'], advbase: 1, advskew: 64 });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const loop = new LoopWatch({ vhids: () => advertisementIntervals(h.service.desired()), events: h.service.events, periodMs: 100 }).start();
  t.after(() => loop.stop());
  const metrics = new CarpdMetrics({ service: h.service, loop });
  t.after(() => metrics.close());
  const app = buildApp({ service: h.service, logger: pino({ level: 'silent' }), version: '0.0.0-test', metrics, loop });

  // A stall, as the timer would measure it: 3 s late.
  loop.detector.armed(0);
  loop.check(100 + 3000);

  const stats = await request(app).get('/v1/stats').set('Authorization', `Bearer ${ADMIN_TOKEN}`);
  assert.equal(stats.status, 200);
  const el = stats.body.eventLoop;
  assert.equal(el.stalls, 1);
  assert.equal(el.stalledMs, 3000);
  assert.equal(el.stallThresholdMs, 1250);
  assert.deepEqual(el.lastStall.vhids, [{ interface: 'em0', vhid: 5, protocol: 'carp', intervalMs: 1250 }]);
  for (const k of ['p50', 'p99', 'max'] as const) assert.ok(el.delayMs[k] >= 0, k);

  const page = await h.api.get(`/v1/events/recent?after=0&limit=1000`, { token: READ_TOKEN });
  assert.ok(page.body.events.some((e: { type: string; data: { ms: number } }) => e.type === 'loop.stalled' && e.data.ms === 3000), 'published (and valid against the spec)');

  const res = await request(app).get('/metrics').set('Authorization', `Bearer ${READ_TOKEN}`);
  assert.equal(res.status, 200);
  const f = parsePrometheusText(res.text);
  assert.equal(sampleValue(f, 'carpd_event_loop_stalls_total'), 1);
  assert.equal(sampleValue(f, 'carpd_event_loop_stalled_seconds_total'), 3);
  assert.equal(sampleValue(f, 'carpd_event_loop_stall_threshold_seconds'), 1.25);
  assert.equal(f.get('carpd_event_loop_delay_seconds')?.type, 'histogram');
  const count = sampleValue(f, 'carpd_event_loop_delay_seconds_count')!;
  assert.equal(sampleValue(f, 'carpd_event_loop_delay_seconds_bucket', { le: '+Inf' }), count);
  let prev = 0;
  for (const le of DELAY_BUCKETS_SECONDS) {
    const c = sampleValue(f, 'carpd_event_loop_delay_seconds_bucket', { le: String(le) })!;
    assert.ok(c >= prev && c <= count, `bucket ${le}: ${c}`);
    prev = c;
  }
});

test('the delay histogram counts the loop blocked: a 300 ms block lands above the 0.25 s bound', async (t) => {
  const loop = new LoopWatch({ vhids: () => [] }).start();
  t.after(() => loop.stop());
  await new Promise((r) => setTimeout(r, 50));
  const end = performance.now() + 300;
  while (performance.now() < end) {
    // busy: the loop does not run
  }
  await new Promise((r) => setTimeout(r, 30));
  const d = loop.delayHistogram();
  const i = DELAY_BUCKETS_SECONDS.indexOf(0.25);
  assert.ok(d.count > 0);
  assert.ok(d.buckets[i]! < d.count, `some sample above 0.25 s: ${JSON.stringify(d)}`);
  assert.ok(loop.stats().delayMs.max >= 250, `max ${loop.stats().delayMs.max}`);
  // Counts never go down from one reading to the next.
  const again = loop.delayHistogram();
  for (let k = 0; k < d.buckets.length; k++) assert.ok(again.buckets[k]! >= d.buckets[k]!);
});
