/**
 * Write-path benchmark: what one VIP change costs as the configuration grows, and what
 * concurrent writers add. Two carpd APIs run in this process (memory backend, real clock,
 * a state dir each): one with 10 VIPs, one with 1000. A separate load process sends pairs of
 * POST /v1/vips + DELETE of the VIP just made, from 1 or 8 keep-alive connections.
 *
 *   npm run bench:write                    5 s per scenario after a 1 s warm-up, 2 rounds (compiled dist/)
 *   BENCH_SOURCE=1 npm run bench:write     the TypeScript sources through tsx instead
 *   BENCH_DURATION=10 BENCH_ROUNDS=3 npm run bench:write
 *   BENCH_STATE_DIR=/var/tmp npm run bench:write     where the state dirs (and fsyncs) go
 *   BENCH_OUT=write-before npm run bench:write       results file name under bench/results/
 *   BENCH_LABEL='main, before the journal' …          says in the report what was measured
 *   BENCH_SIZES=10 BENCH_WRITERS=8 node --cpu-prof …  one scenario only (the ratios then show –)
 *
 * Both ratios come from the same run: p50 of a create+delete pair with 1000 VIPs / with 10
 * (target ≤ 1.5), and pairs/s of 8 writers / 1 writer with 10 VIPs (target ≥ 4). The
 * scenarios are interleaved round by round, so a burst of other work on the machine skews
 * them alike. Each round's latencies are pooled; throughput is pairs over total time.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { VipConfig } from '../src/config/model.js';
import type { MemoryBackend } from '../src/kernel/memory.js';
import type { CarpService } from '../src/service/service.js';
import { FS_TYPES, LOAD_PROCESS_FLAG, gitRevision, markMeasuring, percentile, runLoadProcess, sendResult } from './common.js';

// carpd as operators run it: the compiled dist/ (the npm script builds it first). BENCH_SOURCE=1
// runs the TypeScript sources through tsx instead, whose transform adds work of its own.
const FROM = process.env.BENCH_SOURCE === '1' ? '../src' : '../dist';
const { buildApp } = (await import(`${FROM}/api/app.js`)) as typeof import('../src/api/app.js');
const { initialState } = (await import(`${FROM}/config/model.js`)) as typeof import('../src/config/model.js');
const { ConfigStore } = (await import(`${FROM}/config/store.js`)) as typeof import('../src/config/store.js');
const { createLogger } = (await import(`${FROM}/daemon/logger.js`)) as typeof import('../src/daemon/logger.js');
const { MemoryBackend: Memory } = (await import(`${FROM}/kernel/memory.js`)) as typeof import('../src/kernel/memory.js');
const { CarpService: Service, hashToken } = (await import(`${FROM}/service/service.js`)) as typeof import('../src/service/service.js');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

const DURATION_S = positive('BENCH_DURATION', 5);
const WARMUP_S = positive('BENCH_WARMUP', 1, true);
const ROUNDS = positive('BENCH_ROUNDS', 2);
const OUT = process.env.BENCH_OUT ?? 'write-latest';
const LABEL = process.env.BENCH_LABEL;
const SIZES = list('BENCH_SIZES', [10, 1000]);
const WRITERS = list('BENCH_WRITERS', [1, 8]);
const INTERFACES = Array.from({ length: 10 }, (_, i) => `em${i}`);
const TARGET_SIZE_RATIO = 1.5;
const TARGET_WRITERS_RATIO = 4;

/** A comma-separated list of positive integers (a subset of the scenarios, for profiling one). */
function list(name: string, dflt: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const out = raw.split(',').map(Number);
  if (out.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`${name}=${raw}: expected positive integers, comma-separated`);
  return out;
}

function positive(name: string, dflt: number, zeroOk = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) throw new Error(`${name}=${raw}: expected a ${zeroOk ? 'non-negative' : 'positive'} number`);
  return n;
}

// ---------------------------------------------------------------------------------------
// Child: the load generator.

interface Job {
  base: string;
  token: string;
  writers: number;
  durationS: number;
  warmupS: number;
  /** Keeps the addresses of every run apart. */
  tag: number;
}

interface JobResult {
  /** ms from the POST sent to the DELETE's last byte, per pair. */
  pairs: number[];
  seconds: number;
  failures: number;
  firstFailure?: string;
}

function request(agent: http.Agent, base: URL, method: string, pathname: string, token: string, body?: string): Promise<{ status: number; location?: string; body: string }> {
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

async function runPairs(job: Job): Promise<JobResult> {
  const base = new URL(job.base);
  let seq = 0;
  const address = (n: number) => `2001:db8:${(0xc000 + job.tag).toString(16)}:${(n >>> 16).toString(16)}::${((n & 0xffff) + 1).toString(16)}/64`;
  const phase = async (seconds: number, record: boolean): Promise<JobResult> => {
    const pairs: number[] = [];
    let failures = 0;
    let firstFailure: string | undefined;
    const end = performance.now() + seconds * 1000;
    const loop = async (worker: number) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const iface = INTERFACES[worker % 2];
      try {
        while (performance.now() < end) {
          const n = seq++;
          const body = JSON.stringify({ interface: iface, addresses: [address(n)], description: `bench ${job.tag}/${n}` });
          const t0 = performance.now();
          const created = await request(agent, base, 'POST', '/v1/vips', job.token, body);
          if (created.status !== 201 || !created.location) {
            if (failures++ === 0) firstFailure = `POST ${created.status}: ${created.body.slice(0, 300)}`;
            continue;
          }
          const removed = await request(agent, base, 'DELETE', created.location, job.token);
          if (removed.status !== 204) {
            if (failures++ === 0) firstFailure = `DELETE ${created.location} ${removed.status}: ${removed.body.slice(0, 300)}`;
            continue;
          }
          if (record) pairs.push(performance.now() - t0);
        }
      } finally {
        agent.destroy();
      }
    };
    const t = performance.now();
    await Promise.all(Array.from({ length: job.writers }, (_, w) => loop(w)));
    return { pairs, seconds: (performance.now() - t) / 1000, failures, firstFailure };
  };
  if (job.warmupS > 0) await phase(job.warmupS, false);
  await markMeasuring('start');
  const r = await phase(job.durationS, true);
  await markMeasuring('end');
  return r;
}

async function clientMain(): Promise<void> {
  const result = await runPairs(JSON.parse(process.argv[3]) as Job);
  await sendResult(result);
}

// ---------------------------------------------------------------------------------------
// Parent: two carpd APIs, the rounds, the report.

/** `n` VIPs over em0..em9, one IPv6 address each; em0/em1 keep room for the pairs' vhids. */
function seedVips(n: number): VipConfig[] {
  const out: VipConfig[] = [];
  for (let i = 0; i < n; i++) {
    const iface = INTERFACES[i % INTERFACES.length];
    out.push({
      interface: iface,
      vhid: Math.floor(i / INTERFACES.length) + 1,
      addresses: [`2001:db8:a:${(i >>> 16).toString(16)}::${((i & 0xffff) + 1).toString(16)}/64`],
      advbaseSec: 1,
      advskew: i % 200,
      mode: 'multicast',
      description: `seeded vip ${i}`,
      nosync: false,
      protocol: 'carp',
    });
  }
  return out;
}

interface Instance {
  size: number;
  url: string;
  token: string;
  dir: string;
  server: Server;
  service: CarpService;
  backend: MemoryBackend;
  stateBytes: number;
}

async function startInstance(size: number, parent: string, version: string): Promise<Instance> {
  const dir = mkdtempSync(path.join(parent, `carpd-bench-write-${size}-`));
  const token = `carpd_bench_admin_${randomBytes(12).toString('hex')}`;
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: true }), false);
  const backend = new Memory({ interfaces: INTERFACES });
  const store = await ConfigStore.open(dir, () => {
    const s = initialState(new Date());
    s.api.tokens.push({ name: 'bench-admin', role: 'admin', sha256: hashToken(token), createdAt: new Date().toISOString() });
    s.vips = seedVips(size);
    return s;
  });
  const service = new Service({ store, backend, logger });
  const reconciled = await service.start();
  if (!reconciled.ok) throw new Error(`reconcile of ${size} VIPs failed: ${reconciled.error}`);
  const server = http.createServer(buildApp({ service, logger, version }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const stateBytes = Buffer.byteLength(JSON.stringify(store.current(), null, 2));
  return { size, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token, dir, server, service, backend, stateBytes };
}

interface Cell {
  size: number;
  writers: number;
  pairs: number[];
  seconds: number;
  cpuMs: number;
  failures: number;
}

const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  if (loadBefore > 0.5) process.stderr.write(`bench: the 1-minute load average is ${fmt(loadBefore)}; other work on this machine will skew the results\n`);
  const parent = process.env.BENCH_STATE_DIR ?? os.tmpdir();
  const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const instances: Instance[] = [];
  const cells = new Map<string, Cell>();
  try {
    for (const size of SIZES) instances.push(await startInstance(size, parent, version));
    const fsMagic = Number(statfsSync(instances[0].dir).type);
    const fsType = FS_TYPES[fsMagic] ?? `statfs type 0x${fsMagic.toString(16)}`;
    let tag = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const inst of instances) {
        for (const writers of WRITERS) {
          process.stderr.write(`bench: round ${round}/${ROUNDS}: ${inst.size} VIPs, ${writers} writer${writers === 1 ? '' : 's'} (${WARMUP_S} s warm-up + ${DURATION_S} s)\n`);
          const { result, cpuMs } = await runLoadProcess<JobResult>(import.meta.url, { base: inst.url, token: inst.token, writers, durationS: DURATION_S, warmupS: WARMUP_S, tag: tag++ });
          if (result.failures > 0) process.stderr.write(`bench: ${result.failures} failed, first: ${result.firstFailure}\n`);
          const key = `${inst.size}/${writers}`;
          const c = cells.get(key) ?? { size: inst.size, writers, pairs: [], seconds: 0, cpuMs: 0, failures: 0 };
          c.pairs.push(...result.pairs);
          c.seconds += result.seconds;
          c.cpuMs += cpuMs;
          c.failures += result.failures;
          cells.set(key, c);
        }
      }
    }
    for (const inst of instances) {
      const left = inst.service.desired().vips.length;
      if (left !== inst.size) throw new Error(`after the runs ${left} VIPs are configured, expected ${inst.size}`);
    }

    const row = (c: Cell) => {
      const sorted = Float64Array.from(c.pairs).sort();
      return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), rate: c.pairs.length / c.seconds, cpuUs: (c.cpuMs * 1000) / c.pairs.length };
    };
    const get = (size: number, writers: number) => {
      const c = cells.get(`${size}/${writers}`);
      return c ? row(c) : { p50: NaN, p99: NaN, rate: NaN, cpuUs: NaN };
    };
    const lines = ['| VIPs present | Writers | pairs/s | pair p50 ms | pair p99 ms | Server CPU µs/pair | Failed |', '|---:|---:|---:|---:|---:|---:|---:|'];
    for (const c of cells.values()) {
      const r = row(c);
      lines.push(`| ${c.size} | ${c.writers} | ${fmt(r.rate, 0)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.cpuUs, 0)} | ${c.failures} |`);
    }
    const sizeRatio = get(1000, 1).p50 / get(10, 1).p50;
    const writersRatio = get(10, 8).rate / get(10, 1).rate;
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    // NaN (a scenario not run) compares false: MISSED, with – for the figures.
    const cpus = os.cpus();
    const revision = gitRevision();
    const text = [
      `# carpd write-path benchmark`,
      ``,
      `- Date: ${new Date().toISOString()}`,
      `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; 1-minute load average ${fmt(loadBefore)} before the run`,
      `- Node ${process.version}, carpd ${version}${revision ? ` (${revision})` : ''}${LABEL ? `, ${LABEL}` : ''}; load from a separate process, keep-alive connections, each looping POST /v1/vips + DELETE of that VIP`,
      `- carpd: ${FROM === '../dist' ? 'compiled dist/' : 'sources through tsx'}, memory backend, real clock, logs at info to /dev/null; state dirs on ${fsType}; stored document ${instances.map((i) => `${fmt(i.stateBytes / 1024, 1)} KiB with ${i.size} VIPs`).join(', ')}`,
      `- ${ROUNDS} rounds of every scenario, interleaved, each ${WARMUP_S} s warm-up + ${DURATION_S} s; latencies pooled over the rounds`,
      ``,
      ...lines,
      ``,
      `- one create+delete pair, p50: **${fmt(get(10, 1).p50)} ms** with 10 VIPs, **${fmt(get(1000, 1).p50)} ms** with 1000: **×${fmt(sizeRatio)}** (target ≤ ${TARGET_SIZE_RATIO}: ${verdict(sizeRatio <= TARGET_SIZE_RATIO)})`,
      `- throughput with 10 VIPs: **${fmt(get(10, 1).rate, 0)} pairs/s** with 1 writer, **${fmt(get(10, 8).rate, 0)} pairs/s** with 8: **×${fmt(writersRatio)}** (target ≥ ${TARGET_WRITERS_RATIO}: ${verdict(writersRatio >= TARGET_WRITERS_RATIO)})`,
    ].join('\n') + '\n';
    process.stdout.write('\n' + text);
    mkdirSync(path.join(HERE, 'results'), { recursive: true });
    writeFileSync(path.join(HERE, 'results', `${OUT}.md`), text);
    process.stderr.write(`bench: written to ${path.relative(process.cwd(), path.join(HERE, 'results', `${OUT}.md`))}\n`);
  } finally {
    for (const i of instances) {
      i.server.closeAllConnections();
      await new Promise((r) => i.server.close(r));
      await i.service.close();
      await i.backend.close();
      rmSync(i.dir, { recursive: true, force: true });
    }
  }
}

if (process.argv[2] === LOAD_PROCESS_FLAG) await clientMain();
else await main();
