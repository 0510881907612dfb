/**
 * The log sink (src/daemon/log-sink.ts): a bounded queue in front of carpd's stdout that never
 * blocks and never throws. Here with writers whose completions the test controls, a real FIFO
 * nobody reads, and a real file; test/log-sink-processes.test.ts runs carpd itself on a full
 * file system and a stalled pipe.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import request from 'supertest';
import { CarpdMetrics } from '../src/api/metrics.js';
import { buildApp } from '../src/api/app.js';
import { renderStats } from '../src/cli/stats.js';
import { CARP_COUNTERS } from '../src/kernel/backend.js';
import { LogSink, writerFor, type LogWriter } from '../src/daemon/log-sink.js';
import { createLogger } from '../src/daemon/logger.js';
import { ADMIN_TOKEN, makeHarness, ManualClock } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';
import pino from 'pino';

type Done = (err: NodeJS.ErrnoException | null, n: number) => void;

/** A writer that answers only when the test says so; what it was given and what "reached the file". */
class FakeWriter implements LogWriter {
  calls: Buffer[] = [];
  pending?: { data: Buffer; done: Done };
  out = '';
  closed = false;
  throwOnWrite = false;
  constructor(readonly fatal = false) {}
  write(data: Buffer, done: Done): void {
    if (this.throwOnWrite) throw new Error('boom');
    this.calls.push(data);
    this.pending = { data, done };
  }
  close(): void {
    this.closed = true;
  }
  /** The pending write succeeds (all of it, or its first `n` bytes). */
  ok(n?: number): void {
    const p = this.pending!;
    this.pending = undefined;
    const k = n ?? p.data.length;
    this.out += p.data.subarray(0, k).toString();
    p.done(null, k);
  }
  fail(code: string, n = 0): void {
    const p = this.pending!;
    this.pending = undefined;
    this.out += p.data.subarray(0, n).toString();
    p.done(Object.assign(new Error(code), { code }), n);
  }
}

const line = (i: number, pad = 0) => JSON.stringify({ level: 30, time: 1, name: 'carpd', i, msg: 'x'.repeat(pad) }) + '\n';
const parsed = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

test('one write in flight; lines queued meanwhile go out together, in order; counted as written', () => {
  const w = new FakeWriter();
  const sink = new LogSink(w, { clock: new ManualClock() });
  sink.write(line(0));
  sink.write(line(1));
  sink.write(line(2));
  assert.equal(w.calls.length, 1);
  assert.equal(sink.stats().bytesQueued, 3 * line(0).length);
  w.ok();
  assert.equal(w.calls.length, 2);
  assert.equal(w.calls[1].toString(), line(1) + line(2));
  w.ok();
  assert.deepEqual(parsed(w.out).map((l) => l.i), [0, 1, 2]);
  assert.deepEqual(sink.stats(), { linesWritten: 3, linesDropped: 0, bytesQueued: 0 });
});

test('ENOSPC: retried on the timer with backoff, never at once; the queue is bounded, newer lines dropped; once space returns the queue, ONE summary line and later lines are written', () => {
  const clock = new ManualClock();
  const w = new FakeWriter();
  const L = line(0, 100).length;
  const sink = new LogSink(w, { clock, limitBytes: 10 * L });
  sink.write(line(0, 100));
  w.fail('ENOSPC', 40); // a short write first: part of line 0 reached the file
  for (let i = 1; i < 25; i++) sink.write(line(i, 100));
  assert.equal(w.calls.length, 1, 'no synchronous retry');
  const s = sink.stats();
  assert.equal(s.linesDropped, 15);
  assert.equal(s.lastError, 'ENOSPC');
  assert.ok(s.bytesQueued <= 10 * L, `${s.bytesQueued}`);
  // Backoff: 100, 200, 400 ms between the retries while the disk stays full.
  clock.advance(99);
  assert.equal(w.calls.length, 1);
  clock.advance(1);
  assert.equal(w.calls.length, 2);
  assert.equal(w.calls[1].toString(), line(0, 100).slice(40), 'the rest of the short write, not the whole line again');
  w.fail('ENOSPC');
  clock.advance(199);
  assert.equal(w.calls.length, 2);
  clock.advance(1);
  assert.equal(w.calls.length, 3);
  w.fail('ENOSPC');
  clock.advance(400);
  assert.equal(w.calls.length, 4);
  // Space again.
  while (w.pending) w.ok();
  const out = parsed(w.out);
  assert.deepEqual(out.slice(0, 10).map((l) => l.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const summaries = out.filter((l) => l.event === 'log.dropped');
  assert.equal(summaries.length, 1);
  assert.deepEqual({ ...summaries[0], time: 0 }, { level: 40, time: 0, name: 'carpd', event: 'log.dropped', dropped: 15, reason: 'ENOSPC', msg: '15 log lines dropped: the log destination was full (ENOSPC)' });
  assert.equal(out[10].event, 'log.dropped', 'the summary stands where the gap is');
  // Later lines are not lost.
  sink.write(line(100));
  w.ok();
  assert.equal(parsed(w.out).at(-1)!.i, 100);
  assert.deepEqual(sink.stats(), { linesWritten: 12, linesDropped: 15, bytesQueued: 0, lastError: 'ENOSPC' });
  // The backoff starts again from its shortest after a success.
  sink.write(line(101));
  w.fail('ENOSPC');
  clock.advance(100);
  assert.equal((w.pending as { data: Buffer } | undefined)?.data.toString(), line(101));
});

test('a stalled destination: lines are dropped as "stalled" once the queue is full, and summarized once it moves again', () => {
  const w = new FakeWriter();
  const L = line(0).length;
  const sink = new LogSink(w, { clock: new ManualClock(), limitBytes: 4 * L });
  for (let i = 0; i < 10; i++) sink.write(line(i));
  assert.equal(sink.stats().linesDropped, 6);
  assert.equal(sink.stats().lastError, 'stalled');
  w.ok();
  // The queue drained to half: the summary follows the queued lines, before any new one.
  while (w.pending) w.ok();
  sink.write(line(50));
  while (w.pending) w.ok();
  const out = parsed(w.out);
  assert.deepEqual(out.map((l) => l.i ?? l.event), [0, 1, 2, 3, 'log.dropped', 50]);
  assert.equal(out[4].reason, 'stalled');
  assert.equal(out[4].dropped, 6);
});

test('a pipe that fails (EPIPE) is given up: every queued and later line is counted as dropped; nothing throws', () => {
  const w = new FakeWriter(true);
  const sink = new LogSink(w, { clock: new ManualClock() });
  sink.write(line(0));
  sink.write(line(1));
  w.fail('EPIPE');
  assert.equal(w.closed, true);
  sink.write(line(2));
  assert.equal(w.calls.length, 1);
  assert.deepEqual(sink.stats(), { linesWritten: 0, linesDropped: 3, bytesQueued: 0, lastError: 'EPIPE' });
});

test('a writer that throws does not throw out of write(); the line is retried later', () => {
  const clock = new ManualClock();
  const w = new FakeWriter();
  w.throwOnWrite = true;
  const sink = new LogSink(w, { clock });
  assert.doesNotThrow(() => sink.write(line(0)));
  assert.equal(sink.stats().lastError, 'EIO');
  w.throwOnWrite = false;
  clock.advance(100);
  w.ok();
  assert.equal(parsed(w.out)[0].i, 0);
});

test('drain and end are bounded on a destination that never answers; end releases it and later lines are dropped', async () => {
  const w = new FakeWriter();
  const sink = new LogSink(w, { clock: new ManualClock() });
  sink.write(line(0));
  await sink.end(20);
  assert.equal(w.closed, true);
  sink.write(line(1));
  assert.equal(sink.stats().linesDropped, 1);
  // An idle sink drains at once.
  const idle = new LogSink(new FakeWriter(), { clock: new ManualClock() });
  await idle.drain(60_000);
});

test('through pino: carpd\'s lines go through the sink', () => {
  const w = new FakeWriter();
  const sink = new LogSink(w, { clock: new ManualClock() });
  const logger = createLogger('info', sink, false);
  logger.info({ event: 'e1' }, 'hello');
  w.ok();
  assert.equal(parsed(w.out)[0].event, 'e1');
  assert.equal(parsed(w.out)[0].name, 'carpd');
});

test('a real FIFO whose reader never reads: writes never block the event loop, lines are dropped as stalled, and once read again the summary arrives', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const wfd = openSync(fifo, constants.O_WRONLY);
  t.after(() => closeSync(rfd));
  const sink = new LogSink(writerFor(wfd), { limitBytes: 256 * 1024 });
  t.after(() => sink.close());
  const big = line(0, 900);
  let ticks = 0;
  const tick = setInterval(() => ticks++, 1);
  t.after(() => clearInterval(tick));
  // 2 MiB into a 64 KiB pipe and a 256 KiB queue: the loop keeps running.
  for (let i = 0; i < 2048; i++) {
    sink.write(line(i, 900));
    if (i % 256 === 0) await new Promise((r) => setImmediate(r));
  }
  await pollUntil('timer ticks while the pipe is full', async () => ticks, (n) => n > 3);
  const s = sink.stats();
  assert.ok(s.linesDropped > 0, JSON.stringify(s));
  assert.equal(s.lastError, 'stalled');
  assert.ok(s.bytesQueued <= 256 * 1024 + big.length);
  // The reader reads again: what was queued comes out, then the summary.
  let text = '';
  const buf = Buffer.alloc(1 << 16);
  await pollUntil(
    'the summary line through the FIFO',
    async () => {
      for (;;) {
        let n = 0;
        try {
          n = readSync(rfd, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw e;
        }
        if (n <= 0) break;
        text += buf.subarray(0, n).toString();
      }
      return text.includes('"event":"log.dropped"');
    },
    (v) => v,
    10_000,
  );
  const summary = parsed(text.slice(0, text.lastIndexOf('\n') + 1)).find((l) => l.event === 'log.dropped')!;
  assert.equal(summary.dropped, s.linesDropped);
  assert.equal(summary.reason, 'stalled');
});

test('a regular file is written with asynchronous writes, in order', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'log');
  const fd = openSync(file, 'a');
  t.after(() => closeSync(fd));
  const sink = new LogSink(writerFor(fd));
  for (let i = 0; i < 1000; i++) sink.write(line(i));
  await sink.drain(10_000);
  assert.deepEqual(parsed(readFileSync(file, 'utf8')).map((l) => l.i), [...Array(1000).keys()]);
  assert.equal(sink.stats().linesWritten, 1000);
});

test('GET /v1/stats shows the sink\'s counters as `log`, and /metrics carpd_log_lines_dropped_total', async (t) => {
  const h = await makeHarness();
  t.after(() => h.close());
  const w = new FakeWriter();
  const sink = new LogSink(w, { clock: new ManualClock(), limitBytes: 2 * line(0).length });
  for (let i = 0; i < 5; i++) sink.write(line(i));
  const metrics = new CarpdMetrics({ service: h.service, log: sink });
  t.after(() => metrics.close());
  const app = buildApp({ service: h.service, logger: pino({ level: 'silent' }), version: '0.0.0-test', log: sink, metrics });
  const res = await request(app).get('/v1/stats').set('Authorization', `Bearer ${ADMIN_TOKEN}`);
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.log, { linesWritten: 0, linesDropped: 3, bytesQueued: 2 * line(0).length, lastError: 'stalled' });
  const text = (await request(app).get('/metrics').set('Authorization', `Bearer ${ADMIN_TOKEN}`)).text;
  assert.equal(sampleValue(parsePrometheusText(text), 'carpd_log_lines_dropped_total'), 3);
  // Without a sink (carpd embedded, or pretty output on a terminal) `log` is left out.
  assert.equal((await h.api.get('/v1/stats')).body.log, undefined);
});

test('carpctl stats shows the event loop line when carpd reports `eventLoop`', () => {
  const base = { backend: 'memory', carp: {}, sysctls: {}, api: { authFailures: 0, rateLimited: 0, blockedSources: 0 } } as unknown as Parameters<typeof renderStats>[0];
  const text = renderStats({ ...base, eventLoop: { delayMs: { p50: 0.2, p99: 1.25, max: 40 }, stalls: 1, stalledMs: 1500, stallThresholdMs: 1000, lastStall: { at: '2026-12-08T00:00:00.000Z', ms: 1500, thresholdMs: 1000, vhids: [] } } });
  assert.match(text, /^event loop: delay p50 0\.2 ms, p99 1\.3 ms, max 40\.0 ms; 1 stall\(s\) over 1000 ms; last 1500 ms at 2026-12-08T00:00:00\.000Z$/m);
  assert.doesNotMatch(renderStats(base), /event loop/);
});

test('carpctl stats shows the log line when carpd reports `log`, and nothing of it otherwise', () => {
  const base = { backend: 'memory' as const, carp: Object.fromEntries(CARP_COUNTERS.map((n) => [n, 0])) as Record<(typeof CARP_COUNTERS)[number], number>, sysctls: { carpLog: 1 }, api: { authFailures: { missingToken: 0, invalidToken: 0 }, throttled: 0, blockedSources: 0 } };
  const text = renderStats({ ...base, log: { linesWritten: 10, linesDropped: 3, bytesQueued: 512, lastError: 'ENOSPC' } });
  assert.match(text, /^log: 10 lines written, 3 dropped, 512 bytes queued; last error ENOSPC$/m);
  assert.doesNotMatch(renderStats(base), /^log:/m);
});

test('at exit, queued lines are written synchronously where that cannot block, never cutting into a line in flight', () => {
  // A file: what waits for a retry (the rest of a short write) first, then the queue, then the summary of a gap.
  const clock = new ManualClock();
  const file = Object.assign(new FakeWriter(), { syncBesideInFlight: true, synced: '', writeSync(d: Buffer) {
    this.synced += d.toString();
    return d.length;
  } });
  const sink = new LogSink(file, { clock, limitBytes: 3 * line(0).length });
  sink.write(line(0));
  file.fail('ENOSPC', 10);
  for (let i = 1; i < 5; i++) sink.write(line(i));
  sink.exitFlush();
  const whole = file.out + file.synced;
  assert.deepEqual(parsed(whole).map((l) => l.i ?? l.event), [0, 1, 2, 'log.dropped']);
  // A pipe with a write in flight: nothing, since part of it may be written already.
  const pipe = Object.assign(new FakeWriter(true), { syncBesideInFlight: false, synced: '', writeSync(d: Buffer) {
    this.synced += d.toString();
    return d.length;
  } });
  const p = new LogSink(pipe, { clock });
  p.write(line(0));
  p.write(line(1));
  p.exitFlush();
  assert.equal(pipe.synced, '');
  pipe.ok();
  p.exitFlush(); // line 1 is in flight now
  assert.equal(pipe.synced, '');
  // A writer that cannot write synchronously (a terminal): nothing either, and no throw.
  const term = new LogSink(new FakeWriter(true), { clock });
  term.write(line(0));
  term.write(line(1));
  assert.doesNotThrow(() => term.exitFlush());
});
