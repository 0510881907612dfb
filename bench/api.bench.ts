/**
 * API benchmark: throughput and p50/p99 latency of GET /v1/status (200 and 304) and of POST +
 * DELETE /v1/vips on a carpd with 64 VIPs, next to plain Express 5 handlers that answer the same
 * status bytes, so that the cost of carpd's own stack (auth, validation, status assembly) reads
 * as a ratio.
 *
 *   npm run bench:api                      10 s per scenario after a 2 s warm-up
 *   BENCH_DURATION=30 BENCH_WARMUP=5 npm run bench:api
 *   BENCH_DIAGNOSE=1 npm run bench:api     always run the breakdown scenarios
 *   BENCH_STATE_DIR=/var/tmp npm run bench:api   where the state dir (and its fsyncs) go
 *   BENCH_CONNECTIONS (50), BENCH_PACED_RATE (10 per connection), BENCH_WRITE_CONNECTIONS (1,8)
 *
 * The servers run in this process; the load comes from a child process (this same file run
 * with --client), so that the load generator does not share an event loop with the servers.
 * Besides req/s and latency, each scenario reports this process's CPU time per request, which
 * a busy machine distorts far less. Results go to stdout and to bench/results/api-latest.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import pino from 'pino';
import { buildApp } from '../src/api/app.js';
import { authenticate } from '../src/api/auth.js';
import { AuthLimiter } from '../src/api/auth-limit.js';
import { StatusEndpoint, statusRouter } from '../src/api/routes/status.js';
import { initialState } from '../src/config/model.js';
import { ConfigStore } from '../src/config/store.js';
import { createLogger } from '../src/daemon/logger.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { CarpService, hashToken } from '../src/service/service.js';
import { FS_TYPES, LOAD_PROCESS_FLAG, gitRevision, markMeasuring, percentile, runLoadProcess, sendResult } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

const DURATION_S = positive('BENCH_DURATION', 10);
const WARMUP_S = positive('BENCH_WARMUP', 2, true);
const STATUS_CONNECTIONS = positive('BENCH_CONNECTIONS', 50);
// Requests per second per connection in the paced status run: 50 monitors polling 10 times a
// second, well below saturation, where latency is the service time and not the queue.
const PACED_RATE = positive('BENCH_PACED_RATE', 10);
// The write path commits (and fsyncs) one change at a time, so few connections already saturate it.
const WRITE_CONNECTIONS = (process.env.BENCH_WRITE_CONNECTIONS ?? '1,8').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_WRITE_CONNECTIONS: "${s}" is not a positive integer`);
  return n;
});
const DIAGNOSE = process.env.BENCH_DIAGNOSE; // '1' always, '0' never, unset: only when the target is missed
const VIPS_PER_INTERFACE = 32;
// The targets for status reads: at least as fast as plain Express answering the same bytes.
const TARGET_RATIO = 1.0;
const TARGET_P99_MS = 10;

function positive(name: string, dflt: number, zeroOk = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) throw new Error(`${name}=${raw}: expected a ${zeroOk ? 'non-negative' : 'positive'} number`);
  return n;
}

// ---------------------------------------------------------------------------------------
// Jobs the parent hands to the load-generating child, and what comes back.

type Job =
  | { kind: 'get'; url: string; headers: Record<string, string>; connections: number; durationS: number; warmupS: number; expect?: number }
  | { kind: 'paced'; url: string; token: string; connections: number; durationS: number; warmupS: number; perConnectionRate: number }
  | { kind: 'vip-pairs'; base: string; token: string; connections: number; durationS: number; warmupS: number; tag: number };

interface Stats {
  count: number;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  firstFailure?: string;
}

type JobResult = { kind: 'get'; get: Stats } | { kind: 'vip-pairs'; post: Stats; del: Stats; pairsPerS: number };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Tells the parent that the measured phase starts or ends, so that it can take the servers'
 * CPU time over exactly that phase: CPU per request holds up better than req/s when other
 * work shares the machine.
 */
function stats(latencies: number[], seconds: number, failures: number, firstFailure?: string): Stats {
  const sorted = Float64Array.from(latencies).sort();
  return { count: sorted.length, rps: sorted.length / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), failures, firstFailure };
}

// ---------------------------------------------------------------------------------------
// Child: the load generator.

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
}
interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  on(event: 'response', fn: (client: unknown, statusCode: number, bytes: number, ms: number) => void): void;
}
type Autocannon = (opts: { url: string; method: string; headers: Record<string, string>; connections: number; duration: number }) => AutocannonInstance;

async function runGet(job: Extract<Job, { kind: 'get' }>): Promise<JobResult> {
  // autocannon is CommonJS without type declarations; require keeps the types local.
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const opts = { url: job.url, method: 'GET', headers: job.headers, connections: job.connections };
  if (job.warmupS > 0) await autocannon({ ...opts, duration: job.warmupS });
  // autocannon's own histogram has 1 ms resolution; the raw response times are kept for
  // sub-millisecond percentiles.
  const ok: number[] = [];
  let bad = 0;
  let firstBad: string | undefined;
  await markMeasuring('start');
  const inst = autocannon({ ...opts, duration: job.durationS });
  const good = job.expect === undefined ? (status: number) => status >= 200 && status < 300 : (status: number) => status === job.expect;
  inst.on('response', (_c, status, _b, ms) => {
    if (good(status)) ok.push(ms);
    else if (bad++ === 0) firstBad = `HTTP ${status}`;
  });
  const r = await inst;
  await markMeasuring('end');
  const failures = bad + r.errors + r.timeouts;
  return { kind: 'get', get: stats(ok, r.duration, failures, firstBad ?? (failures > 0 ? `${r.errors} socket errors, ${r.timeouts} timeouts` : undefined)) };
}

interface Reply {
  status: number;
  location?: string;
  body: string;
}

function request(agent: http.Agent, base: URL, method: string, pathname: string, token: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const req = http.request({ agent, host: base.hostname, port: base.port, method, path: pathname, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Each connection sends a GET every 1/rate s on its own schedule (phases spread at random), or
 * right away when the previous answer came late. autocannon's rate option is not used: it
 * sends a connection's whole second's worth of requests back to back, which is a burst.
 */
async function runPaced(job: Extract<Job, { kind: 'paced' }>): Promise<JobResult> {
  const url = new URL(job.url);
  const interval = 1000 / job.perConnectionRate;
  const phase = async (seconds: number, record: boolean) => {
    const ok: number[] = [];
    let failures = 0;
    let firstFailure: string | undefined;
    if (record) await markMeasuring('start');
    const start = performance.now();
    const end = start + seconds * 1000;
    const loop = async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let next = start + Math.random() * interval;
      try {
        for (;;) {
          const wait = next - performance.now();
          if (wait > 0) await sleep(wait);
          if (performance.now() >= end) break;
          const t0 = performance.now();
          const r = await request(agent, url, 'GET', url.pathname, job.token);
          const ms = performance.now() - t0;
          if (r.status === 200) {
            if (record) ok.push(ms);
          } else if (failures++ === 0) firstFailure = `HTTP ${r.status}`;
          next = Math.max(next + interval, performance.now());
        }
      } finally {
        agent.destroy();
      }
    };
    await Promise.all(Array.from({ length: job.connections }, loop));
    if (record) await markMeasuring('end');
    return stats(ok, (performance.now() - start) / 1000, failures, firstFailure);
  };
  if (job.warmupS > 0) await phase(job.warmupS, false);
  return { kind: 'get', get: await phase(job.durationS, true) };
}

/**
 * Each connection loops: POST a VIP with an address no other POST of the run uses, then
 * DELETE it at the Location the POST answered. Latency is per request, send to last byte.
 */
async function runVipPairs(job: Extract<Job, { kind: 'vip-pairs' }>): Promise<JobResult> {
  const base = new URL(job.base);
  let seq = 0;
  const address = (n: number) => `2001:db8:${(0xb000 + job.tag).toString(16)}:${(n >>> 16).toString(16)}::${((n & 0xffff) + 1).toString(16)}/64`;
  const phase = async (seconds: number, record: boolean) => {
    const post: number[] = [];
    const del: number[] = [];
    const failed = { post: 0, del: 0 };
    let firstFailure: string | undefined;
    const fail = (which: 'post' | 'del', what: string) => {
      if (failed.post + failed.del === 0) firstFailure = what;
      failed[which]++;
    };
    let end = Infinity;
    const loop = async (worker: number) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const iface = worker % 2 === 0 ? 'em0' : 'em1';
      try {
        while (performance.now() < end) {
          const n = seq++;
          const body = JSON.stringify({ interface: iface, addresses: [address(n)], description: `bench ${job.tag}/${n}` });
          const t0 = performance.now();
          const created = await request(agent, base, 'POST', '/v1/vips', job.token, body);
          const t1 = performance.now();
          if (created.status !== 201 || !created.location) {
            fail('post', `POST ${created.status}: ${created.body.slice(0, 300)}`);
            continue;
          }
          if (record) post.push(t1 - t0);
          const t2 = performance.now();
          const removed = await request(agent, base, 'DELETE', created.location, job.token);
          const t3 = performance.now();
          if (removed.status !== 204) {
            fail('del', `DELETE ${created.location} ${removed.status}: ${removed.body.slice(0, 300)}`);
            continue;
          }
          if (record) del.push(t3 - t2);
        }
      } finally {
        agent.destroy();
      }
    };
    if (record) await markMeasuring('start');
    const t = performance.now();
    end = t + seconds * 1000;
    await Promise.all(Array.from({ length: job.connections }, (_, w) => loop(w)));
    const elapsed = (performance.now() - t) / 1000;
    if (record) await markMeasuring('end');
    return { post: stats(post, elapsed, failed.post, firstFailure), del: stats(del, elapsed, failed.del, firstFailure), pairsPerS: del.length / elapsed };
  };
  if (job.warmupS > 0) await phase(job.warmupS, false);
  return { kind: 'vip-pairs', ...(await phase(job.durationS, true)) };
}

async function clientMain(): Promise<void> {
  const job = JSON.parse(process.argv[3]) as Job;
  const result = job.kind === 'get' ? await runGet(job) : job.kind === 'paced' ? await runPaced(job) : await runVipPairs(job);
  await sendResult(result);
}

// ---------------------------------------------------------------------------------------
// Parent: the carpd under test, the plain Express baseline, the runs and the report.

function listen(app: Express): Promise<{ server: Server; url: string }> {
  const server = http.createServer(app);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
  });
}

async function call(url: string, token: string, method = 'GET', body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; text: string; etag?: string }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text(), etag: res.headers.get('etag') ?? undefined };
}

/** 64 VIPs: em0 holds IPv4 VIPs, em1 dual-stack ones (an IPv4 and an IPv6 address each). */
function seedVips(): { interface: string; vhid: number; addresses: string[]; description: string }[] {
  const out = [];
  for (let i = 1; i <= VIPS_PER_INTERFACE; i++) {
    out.push({ interface: 'em0', vhid: i, addresses: [`192.0.2.${i + 10}/24`], description: `lan vip ${i}` });
    out.push({ interface: 'em1', vhid: i, addresses: [`198.51.100.${i + 10}/24`, `2001:db8:1::${(i + 16).toString(16)}/64`], description: `wan vip ${i}` });
  }
  return out;
}

async function waitForMaster(backend: MemoryBackend, timeoutMs: number): Promise<{ master: number; total: number; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const live = await backend.listVhids();
    const master = live.filter((v) => v.state === 'MASTER').length;
    if (master === live.length || performance.now() - t0 > timeoutMs) return { master, total: live.length, ms: performance.now() - t0 };
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Row {
  scenario: string;
  connections: number;
  stats: Stats;
  /** Server CPU time (all threads of the servers' process) per request, in µs. */
  cpuUs: number;
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

function table(rows: Row[]): string {
  const lines = ['| Scenario | Conns | req/s | p50 ms | p99 ms | Server CPU µs/req | Failed |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) lines.push(`| ${r.scenario} | ${r.connections} | ${fmt(r.stats.rps, 0)} | ${fmt(r.stats.p50)} | ${fmt(r.stats.p99)} | ${fmt(r.cpuUs, 0)} | ${r.stats.failures} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  // Anything else on the machine skews a run; the load average is reported with the results.
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) process.stderr.write(`bench: the 1-minute load average is ${fmt(loadBefore)}; other work on this machine will skew the results\n`);
  const stateParent = process.env.BENCH_STATE_DIR ?? os.tmpdir();
  const dir = mkdtempSync(path.join(stateParent, 'carpd-bench-'));
  const fsMagic = Number(statfsSync(dir).type);
  const fsType = FS_TYPES[fsMagic] ?? `statfs type 0x${fsMagic.toString(16)}`;
  const adminToken = `carpd_bench_admin_${randomBytes(12).toString('hex')}`;
  const readToken = `carpd_bench_read_${randomBytes(12).toString('hex')}`;
  const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  // As the daemon runs it, except that the logs (at the default level) go to /dev/null.
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }), false);
  const backend = new MemoryBackend({ interfaces: ['em0', 'em1'] });
  const store = await ConfigStore.open(dir, () => {
    const s = initialState(new Date());
    const createdAt = new Date().toISOString();
    s.api.tokens.push({ name: 'bench-admin', role: 'admin', sha256: hashToken(adminToken), createdAt });
    s.api.tokens.push({ name: 'bench-monitor', role: 'read', sha256: hashToken(readToken), createdAt });
    return s;
  });
  const service = new CarpService({ store, backend, logger });
  await service.start();

  const servers: Server[] = [];
  const serve = async (app: Express) => {
    const s = await listen(app);
    servers.push(s.server);
    return s.url;
  };
  const carpdUrl = await serve(buildApp({ service, logger, version }));

  try {
    // The VIPs go in through the API, one commit each, as an operator would add them.
    for (const v of seedVips()) {
      const r = await call(`${carpdUrl}/v1/vips`, adminToken, 'POST', v);
      if (r.status !== 201) throw new Error(`seeding ${v.interface} vhid ${v.vhid}: HTTP ${r.status} ${r.text}`);
    }
    // On the real clock the memory backend elects MASTER after the master-down interval (~3 s).
    const election = await waitForMaster(backend, 15_000);
    const carpState = election.master === election.total ? `all ${election.total} vhids MASTER (after ${fmt(election.ms / 1000, 1)} s)` : `${election.master} of ${election.total} vhids MASTER, the rest BACKUP (gave up after ${fmt(election.ms / 1000, 1)} s)`;

    const status = await call(`${carpdUrl}/v1/status`, readToken);
    if (status.status !== 200) throw new Error(`GET /v1/status: HTTP ${status.status} ${status.text}`);
    const statusBody = JSON.parse(status.text) as unknown;
    const statusBytes = Buffer.from(status.text, 'utf8');
    const etag = status.etag;
    if (!etag) throw new Error('GET /v1/status has no ETag');

    // The baselines: the same body re-serialized per request (what carpd did before it kept the
    // bytes), and the same bytes sent as they are; the app settings carpd changes (no ETag, no
    // X-Powered-By) are matched so that only the stack differs.
    const plainApp = () => {
      const app = express();
      app.disable('x-powered-by');
      app.set('etag', false);
      return app;
    };
    const plainJson = plainApp();
    plainJson.get('/v1/status', (_req, res) => {
      res.json(statusBody);
    });
    const plainBytes = plainApp();
    plainBytes.get('/v1/status', (_req, res) => {
      res.type('application/json').send(statusBytes);
    });
    const plainJsonUrl = await serve(plainJson);
    const plainBytesUrl = await serve(plainBytes);
    for (const u of [plainJsonUrl, plainBytesUrl]) {
      if ((await call(`${u}/v1/status`, readToken)).text !== status.text) throw new Error('a plain Express body differs from carpd /v1/status');
    }
    const notModified = await call(`${carpdUrl}/v1/status`, readToken, 'GET', undefined, { 'if-none-match': etag });
    if (notModified.status !== 304) throw new Error(`GET /v1/status with If-None-Match: HTTP ${notModified.status}`);

    const auth = { authorization: `Bearer ${readToken}` };
    const get = async (scenario: string, url: string, headers: Record<string, string> = auth, opts: { perConnectionRate?: number; expect?: number } = {}): Promise<Row> => {
      process.stderr.write(`bench: ${scenario} (${STATUS_CONNECTIONS} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s)\n`);
      const common = { url, connections: STATUS_CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S };
      const { result: r, cpuMs } = await runLoadProcess<JobResult>(import.meta.url, opts.perConnectionRate === undefined ? { kind: 'get', headers, expect: opts.expect, ...common } : { kind: 'paced', token: readToken, perConnectionRate: opts.perConnectionRate, ...common });
      if (r.kind !== 'get') throw new Error('unexpected result');
      if (r.get.failures > 0) process.stderr.write(`bench: ${scenario}: ${r.get.failures} failed, first: ${r.get.firstFailure}\n`);
      return { scenario, connections: STATUS_CONNECTIONS, stats: r.get, cpuUs: (cpuMs * 1000) / r.get.count };
    };

    const rows: Row[] = [];
    const plainJsonRow = await get('plain Express 5, same status JSON (res.json per request)', `${plainJsonUrl}/v1/status`, {});
    const plainRow = await get('plain Express 5, same status bytes (res.send of a Buffer)', `${plainBytesUrl}/v1/status`, {});
    const carpdRow = await get('carpd GET /v1/status', `${carpdUrl}/v1/status`);
    const carpd304Row = await get('carpd GET /v1/status, If-None-Match: current tag (304)', `${carpdUrl}/v1/status`, { ...auth, 'if-none-match': etag }, { expect: 304 });
    const pacedRow = await get(`carpd GET /v1/status, paced at ${PACED_RATE} req/s per connection`, `${carpdUrl}/v1/status`, auth, { perConnectionRate: PACED_RATE });
    rows.push(plainJsonRow, plainRow, carpdRow, carpd304Row, pacedRow);
    const ratio = carpdRow.stats.rps / plainRow.stats.rps;
    const missed = ratio < TARGET_RATIO || !(carpdRow.stats.p99 < TARGET_P99_MS);

    // The breakdown: each step adds one layer of carpd's stack on top of the plain handler.
    const diagnostics: Row[] = [];
    if (DIAGNOSE === '1' || (DIAGNOSE !== '0' && missed)) {
      const endpoint = () => new StatusEndpoint({ service, logger, version, check: () => undefined });
      const routeOnly = plainApp();
      routeOnly.use(statusRouter(endpoint()));
      diagnostics.push(await get('diag: status route only (prebuilt body, no auth)', `${await serve(routeOnly)}/v1/status`));

      const withAuth = plainApp();
      withAuth.use(authenticate(service, { limiter: new AuthLimiter(), logger, routeOf: () => undefined }));
      withAuth.use(statusRouter(endpoint()));
      diagnostics.push(await get('diag: + bearer auth', `${await serve(withAuth)}/v1/status`));

      const noResponseValidation = await serve(buildApp({ service, logger, version, validateResponses: false }));
      diagnostics.push(await get('diag: full carpd app, validateResponses: false', `${noResponseValidation}/v1/status`));
    }

    const writes: { connections: number; post: Stats; del: Stats; pairsPerS: number }[] = [];
    for (const [i, connections] of WRITE_CONNECTIONS.entries()) {
      process.stderr.write(`bench: carpd POST+DELETE /v1/vips (${connections} connections, ${WARMUP_S} s warm-up + ${DURATION_S} s)\n`);
      const { result: r, cpuMs } = await runLoadProcess<JobResult>(import.meta.url, { kind: 'vip-pairs', base: carpdUrl, token: adminToken, connections, durationS: DURATION_S, warmupS: WARMUP_S, tag: i });
      if (r.kind !== 'vip-pairs') throw new Error('unexpected result');
      if (r.post.failures + r.del.failures > 0) process.stderr.write(`bench: POST+DELETE: ${r.post.failures + r.del.failures} failed, first: ${r.post.firstFailure}\n`);
      writes.push({ connections, post: r.post, del: r.del, pairsPerS: r.pairsPerS });
      // The server's CPU time cannot be split between the POST and the DELETE of a pair.
      const cpuUs = (cpuMs * 1000) / (r.post.count + r.del.count);
      rows.push({ scenario: 'carpd POST /v1/vips (of a POST+DELETE pair)', connections, stats: r.post, cpuUs });
      rows.push({ scenario: 'carpd DELETE /v1/vips/{if}/{vhid} (of the pair)', connections, stats: r.del, cpuUs });
    }
    const left = service.desired().vips.length;
    if (left !== 2 * VIPS_PER_INTERFACE) throw new Error(`after the write runs ${left} VIPs are configured, expected ${2 * VIPS_PER_INTERFACE}`);

    const cpus = os.cpus();
    const revision = gitRevision();
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const report = [
      `# carpd API benchmark`,
      ``,
      `- Date: ${new Date().toISOString()}`,
      `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; 1-minute load average ${fmt(loadBefore)} before the run`,
      `- Node ${process.version}, carpd ${version}${revision ? ` (${revision})` : ''}; load generator in a separate process: autocannon (saturated GETs), a keep-alive http client (paced GETs, writes)`,
      `- carpd: memory backend, real clock, 64 VIPs (32 on em0, 32 on em1; 96 addresses), ${carpState}; logs at info to /dev/null; response validation on (the status body: once per change)`,
      `- State dir on ${fsType} (every commit fsyncs); ${WARMUP_S} s warm-up, then ${DURATION_S} s per scenario`,
      `- Status body: ${Buffer.byteLength(status.text)} bytes; GET requests use a read-role token`,
      ``,
      table(rows),
      ``,
      `- carpd status / plain Express answering the same bytes, throughput: **${fmt(ratio)}** (target ≥ ${TARGET_RATIO}: ${verdict(ratio >= TARGET_RATIO)}); ` +
        `server CPU per request ${fmt(carpdRow.cpuUs, 0)} µs vs ${fmt(plainRow.cpuUs, 0)} µs (${fmt(plainRow.cpuUs / carpdRow.cpuUs)})`,
      `- carpd status / plain Express re-serializing the JSON per request: ${fmt(carpdRow.stats.rps / plainJsonRow.stats.rps)} (CPU ${fmt(carpdRow.cpuUs, 0)} vs ${fmt(plainJsonRow.cpuUs, 0)} µs per request)`,
      `- carpd status 304 (If-None-Match with the current tag): ${fmt(carpd304Row.stats.rps, 0)} req/s, p50 ${fmt(carpd304Row.stats.p50)} ms, p99 ${fmt(carpd304Row.stats.p99)} ms, ${fmt(carpd304Row.cpuUs, 0)} µs CPU per request`,
      `- carpd status p99 at ${STATUS_CONNECTIONS} connections, saturated: **${fmt(carpdRow.stats.p99)} ms** (target < ${TARGET_P99_MS} ms: ${verdict(carpdRow.stats.p99 < TARGET_P99_MS)}); ` +
        `paced at ${fmt(pacedRow.stats.rps, 0)} req/s: ${fmt(pacedRow.stats.p99)} ms`,
      ...writes.map((w) => `- POST+DELETE at ${w.connections} connection${w.connections === 1 ? '' : 's'}: ${fmt(w.pairsPerS, 0)} pairs/s (${fmt(2 * w.pairsPerS, 0)} writes/s)`),
    ];
    if (diagnostics.length > 0) {
      report.push(``, `## Breakdown of the status path (diagnostic)`, ``, table([plainRow, ...diagnostics, carpdRow]), ``);
      const extra = (r: Row) => `${r.cpuUs >= plainRow.cpuUs ? '+' : '−'}${fmt(Math.abs(r.cpuUs - plainRow.cpuUs), 0)} µs`;
      for (const d of [...diagnostics, carpdRow]) report.push(`- ${d.scenario}: ${fmt(d.stats.rps / plainRow.stats.rps)} × plain throughput, ${extra(d)} CPU per request against plain`);
    }
    const text = report.join('\n') + '\n';
    process.stdout.write('\n' + text);
    mkdirSync(path.join(HERE, 'results'), { recursive: true });
    writeFileSync(path.join(HERE, 'results', 'api-latest.md'), text);
    process.stderr.write(`bench: written to ${path.relative(process.cwd(), path.join(HERE, 'results', 'api-latest.md'))}\n`);
  } finally {
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await service.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === LOAD_PROCESS_FLAG) await clientMain();
else await main();
