/**
 * Events benchmark: how soon a state change reaches an event-stream client (GET /v1/events)
 * and a webhook's receiver, and what 100 connected event-stream clients cost GET /v1/status.
 *
 *   npm run bench:events                     400 changes per latency run, 10 s per status run
 *   BENCH_EVENTS=1000 BENCH_DURATION=20 npm run bench:events
 *
 * carpd runs in this process (memory backend, 10 VIPs, state dir in the OS's temp dir); the
 * stream clients, the webhook receiver and the load generator run in a child process (this
 * file with --client). A change is a forced state of a VIP (PUT .../state), alternating BACKUP
 * and MASTER, one every 20 ms; its latency is from the moment the event is published here to
 * the moment the child has read it, both read from the same wall clock (performance.timeOrigin +
 * performance.now(), on one machine). Results go to stdout and bench/results/events-latest.md.
 */
import { fork } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { buildApp } from '../src/api/app.js';
import { EventStreams } from '../src/api/routes/events.js';
import { initialState } from '../src/config/model.js';
import { ConfigStore } from '../src/config/store.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { CarpService, hashToken } from '../src/service/service.js';
import { WebhookRunner } from '../src/notify/webhooks.js';
import { SseParser } from '../src/cli/sse.js';
import { LOAD_PROCESS_FLAG, ROOT, gitRevision, percentile } from './common.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 400);
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const CHANGE_EVERY_MS = 20;
const STREAM_CLIENTS = 100;
const TOKEN = 'carpd_bench_events_token_0123456789';
const WEBHOOK_SECRET = 'bench-webhook-secret';

const wall = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------
// Child: stream clients, webhook receiver, load generator.

type Job =
  | { kind: 'streams'; url: string; clients: number; expect: number }
  | { kind: 'webhook'; expect: number }
  | { kind: 'status'; url: string; clients: number; durationS: number };

type Msg = { ready: true; port?: number } | { result: unknown };

function openStream(url: string, onEvent: (id: number, type: string) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/events?types=vhid.state`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET /v1/events: HTTP ${res.statusCode}`));
      const parser = new SseParser();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        for (const m of parser.push(chunk)) onEvent(Number(m.id), m.event);
      });
      resolve(req);
    });
    req.once('error', reject);
    req.end();
  });
}

async function child(job: Job): Promise<void> {
  const send = (m: Msg) => new Promise<void>((r) => process.send!(m, () => r()));
  if (job.kind === 'streams') {
    // For each event id: when the first and when the last of the clients read it.
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    const counts = new Map<number, number>();
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const reqs = await Promise.all(
      Array.from({ length: job.clients }, () =>
        openStream(job.url, (id) => {
          const t = wall();
          if (!first.has(id)) first.set(id, t);
          last.set(id, t);
          const n = (counts.get(id) ?? 0) + 1;
          counts.set(id, n);
          if (n === job.clients && [...counts.values()].filter((c) => c === job.clients).length === job.expect) done();
        }),
      ),
    );
    await send({ ready: true });
    await all;
    reqs.forEach((r) => r.destroy());
    await send({ result: { first: [...first], last: [...last] } });
  } else if (job.kind === 'webhook') {
    const got: [number, number][] = [];
    let bad = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const t = wall();
        const body = Buffer.concat(chunks);
        const want = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
        if (req.headers['x-carpd-signature'] !== want) bad++;
        const e = JSON.parse(body.toString('utf8')) as { id: number; type: string };
        if (e.type === 'vhid.state') got.push([e.id, t]);
        res.writeHead(204).end();
        if (got.length === job.expect) done();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    await send({ ready: true, port: (server.address() as AddressInfo).port });
    await all;
    server.close();
    await send({ result: { got, bad } });
  } else {
    const reqs = await Promise.all(Array.from({ length: job.clients }, () => openStream(job.url, () => undefined)));
    await send({ ready: true });
    const autocannon = createRequire(import.meta.url)('autocannon') as (o: object) => PromiseLike<{ requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number }>;
    const opts = { url: `${job.url}/v1/status`, headers: { authorization: `Bearer ${TOKEN}` }, connections: 50 };
    await autocannon({ ...opts, duration: 2 });
    const r = await autocannon({ ...opts, duration: job.durationS });
    reqs.forEach((q) => q.destroy());
    await send({ result: { rps: r.requests.total / job.durationS, p50: r.latency.p50, p99: r.latency.p99, failed: r.non2xx + r.errors } });
  }
  process.disconnect();
}

// ---------------------------------------------------------------------------------------
// Parent: carpd, the changes, the report.

function runChild<R>(job: Job, onReady: (m: { port?: number }) => Promise<void>): Promise<R> {
  return new Promise((resolve, reject) => {
    const c = fork(fileURLToPath(import.meta.url), [LOAD_PROCESS_FLAG, JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.on('message', (m: Msg) => {
      if ('ready' in m) onReady(m).catch(reject);
      else resolve(m.result as R);
    });
    c.on('error', reject);
    c.on('exit', (code) => code !== 0 && reject(new Error(`load process exited ${code}`)));
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'carpd-bench-events-'));
  const store = await ConfigStore.open(dir, () => {
    const s = initialState(new Date());
    s.api.tokens.push({ name: 'bench', role: 'admin', sha256: hashToken(TOKEN), createdAt: new Date().toISOString() });
    return s;
  });
  const logger = pino({ level: 'silent' });
  const backend = new MemoryBackend({ interfaces: ['em0'] });
  const service = new CarpService({ store, backend, logger });
  await service.start();
  const streams = new EventStreams(service.events);
  const app = buildApp({ service, logger, version: 'bench', streams });
  const server: Server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const api = async (method: string, p: string, body?: unknown) => {
    const r = await fetch(`${url}${p}`, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!r.ok) throw new Error(`${method} ${p}: HTTP ${r.status} ${await r.text()}`);
    return r;
  };
  for (let i = 1; i <= 10; i++) await api('POST', '/v1/vips', { interface: 'em0', vhid: i, addresses: [`192.0.2.${i + 10}/24`] });
  await new Promise((r) => setTimeout(r, 3500));

  const published = new Map<number, number>();
  service.events.subscribe((e) => {
    if (e.type === 'vhid.state') published.set(e.id, wall());
  });
  let flip = false;
  /** `n` changes, one every CHANGE_EVERY_MS; each makes one vhid.state event. */
  const changes = async (n: number) => {
    for (let i = 0; i < n; i++) {
      flip = !flip;
      await api('PUT', '/v1/vips/em0/1/state', { state: flip ? 'backup' : 'master' });
      await new Promise((r) => setTimeout(r, CHANGE_EVERY_MS));
    }
  };
  const latency = (pairs: [number, number][]) => {
    const ms = pairs.filter(([id]) => published.has(id)).map(([id, t]) => t - published.get(id)!).sort((a, b) => a - b);
    return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: ms[ms.length - 1] };
  };

  const rows: string[] = [];
  for (const clients of [1, STREAM_CLIENTS]) {
    published.clear();
    const r = await runChild<{ first: [number, number][]; last: [number, number][] }>({ kind: 'streams', url, clients, expect: EVENTS }, () => changes(EVENTS));
    const f = latency(r.first);
    const l = latency(r.last);
    rows.push(`| state change → event stream, ${clients} client${clients > 1 ? 's' : ''} (first / last client) | ${f.n} | ${f.p50.toFixed(2)} / ${l.p50.toFixed(2)} | ${f.p99.toFixed(2)} / ${l.p99.toFixed(2)} |`);
    console.log(rows[rows.length - 1]);
  }

  let webhookRow = '| state change → webhook receiver | – | not measured: this carpd has no webhooks | |';
  if ('webhooks' in store.current()) {
    // As the daemon does (src/daemon/main.ts): the runner hears the service's events.
    const runner = new WebhookRunner({ events: service.events, desired: () => service.desired(), logger, node: 'bench', version: 'bench' });
    published.clear();
    const r = await runChild<{ got: [number, number][]; bad: number }>({ kind: 'webhook', expect: EVENTS }, async ({ port }) => {
      await api('POST', '/v1/webhooks', { name: 'bench', url: `http://127.0.0.1:${port}/hook`, secret: WEBHOOK_SECRET, events: [{ type: 'vhid.state' }] });
      await changes(EVENTS);
    });
    const w = latency(r.got);
    webhookRow = `| state change → webhook receiver (signature checked: ${r.bad} bad) | ${w.n} | ${w.p50.toFixed(2)} | ${w.p99.toFixed(2)} |`;
    await api('DELETE', '/v1/webhooks/bench');
    runner.close();
  }
  console.log(webhookRow);

  const statusRows: string[] = [];
  const rates: number[] = [];
  for (const clients of [0, STREAM_CLIENTS]) {
    let stop = false;
    const r = await runChild<{ rps: number; p50: number; p99: number; failed: number }>({ kind: 'status', url, clients, durationS: DURATION_S }, async () => {
      // 10 changes a second while the status is read, with or without clients to stream them to.
      void (async () => {
        while (!stop) {
          flip = !flip;
          await api('PUT', '/v1/vips/em0/1/state', { state: flip ? 'backup' : 'master' });
          await new Promise((res) => setTimeout(res, 100));
        }
      })();
    });
    stop = true;
    rates.push(r.rps);
    statusRows.push(`| GET /v1/status, 50 connections, ${clients} event-stream clients connected | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.failed} |`);
    console.log(statusRows[statusRows.length - 1]);
  }

  const report = [
    '# Events benchmark (latest run)',
    '',
    `- ${new Date().toISOString()}, Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}; commit ${gitRevision() ?? 'unknown'}`,
    `- memory backend, 10 VIPs; ${EVENTS} changes per latency run, one every ${CHANGE_EVERY_MS} ms; status runs ${DURATION_S} s after 2 s warm-up with 10 changes/s`,
    '',
    '| latency | events | p50 ms | p99 ms |',
    '|---|---|---|---|',
    ...rows,
    webhookRow,
    '',
    '| throughput | req/s | p50 ms | p99 ms | failed |',
    '|---|---|---|---|---|',
    ...statusRows,
    '',
    `Ratio with ${STREAM_CLIENTS} stream clients to none: ×${(rates[1] / rates[0]).toFixed(2)}.`,
    '',
  ].join('\n');
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', 'events-latest.md'), report);
  console.log(`\n${report}`);
  streams.close();
  server.closeAllConnections();
  server.close();
  await service.close();
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === LOAD_PROCESS_FLAG) await child(JSON.parse(process.argv[3]) as Job);
else await main();
