/**
 * Config sync benchmark: how long a change made on the primary takes to be applied on the
 * secondary, how pushes coalesce under a burst of changes, and whether pushing slows the
 * primary's API.
 *
 * Two real carpd processes (the compiled daemon, `--backend memory`, API on 127.0.0.1:0, sync
 * listeners on free ports of 127.0.0.1), paired through the API exactly as an operator would: GET /v1/sync
 * for each node's certificate fingerprint, then PATCH /v1/sync (role, peer, localAddresses) on
 * the secondary and then on the primary.
 *
 *   - Latency: BENCH_CHANGES sequential changes on the primary (POST of a VIP, then DELETE of
 *     it, alternating; at most one VIP exists at a time). Each one is measured from just before
 *     its request is sent (Date.now() here) to the `time` of the secondary's 'sync.applied' log
 *     line whose primaryRevision is the revision in the primary's answer (its ETag). Both are
 *     wall-clock milliseconds of the same machine: 1 ms resolution. Nothing is polled; the next
 *     change is sent once that line has arrived.
 *   - Paced: BENCH_PACED_CHANGES changes at BENCH_RATE changes/s (absolute deadlines, so a slow
 *     answer does not shift the ones after it), each measured the same way to the first
 *     'sync.applied' line at or past its revision; the next change does not wait for it.
 *   - Burst: BENCH_BURST changes sent as fast as the primary answers by BENCH_BURST_CONCURRENCY
 *     clients (each alternates POST and DELETE of its own VIP, so at most that many VIPs exist).
 *     Reported: from the first request to the secondary applying the primary's final revision,
 *     how many snapshots the secondary applied for those changes (pushes coalesce while one is
 *     in flight), and the primary's write latencies.
 *   - Connections and pushes in flight are the secondary's own count: it runs at log level debug
 *     and logs every TLS connection it accepts ('sync.connection') and every message it takes
 *     with the number of that peer's requests it is answering at that moment, this one included
 *     ('sync.received', inProgress).
 *   - Control: the same sequential changes and the same burst are run first, before the two
 *     nodes are paired (no push at all), for the primary's answer times and CPU time without
 *     sync next to those with it.
 *
 *   npm run bench:sync
 *   BENCH_CHANGES=500 BENCH_PACED_CHANGES=500 BENCH_RATE=10 BENCH_BURST=1000 BENCH_BURST_CONCURRENCY=8 BENCH_WARMUP_CHANGES=20 npm run bench:sync
 *   BENCH_BASE_VIPS=64 npm run bench:sync     a larger snapshot: 64 VIPs configured throughout
 *   BENCH_STATE_DIR=/var/tmp npm run bench:sync   where both state dirs (and their fsyncs) go
 *   BENCH_NICE=-10 npm run bench:sync           diagnostic on a shared machine: both daemons ahead of other work (root)
 *
 * `npm run bench:sync` compiles dist/ first and sets CARPD_TEST_DIST=1 (test/helpers/daemon.ts
 * starts dist/daemon/main.js). Results go to stdout and to bench/results/sync-latest.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { call, daemonArgs, etagRevision, startDaemon, type LogLine, type Reply, type RunningDaemon } from '../test/helpers/daemon.js';
import { pollUntil } from '../test/helpers/poll.js';
import { FS_TYPES, gitRevision, percentile } from './common.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

const CHANGES = positive('BENCH_CHANGES', 500);
const PACED = positive('BENCH_PACED_CHANGES', 500, true);
const RATE = positive('BENCH_RATE', 10);
const BURST = positive('BENCH_BURST', 1000);
const CONCURRENCY = positive('BENCH_BURST_CONCURRENCY', 8);
const WARMUP = positive('BENCH_WARMUP_CHANGES', 20, true);
const BASE_VIPS = positive('BENCH_BASE_VIPS', 0, true);
const STATE_ROOT = process.env.BENCH_STATE_DIR || os.tmpdir();
// Diagnostic: the primary alone on CPU 0, the secondary and this process on CPU 1 (taskset).
const PIN = process.env.BENCH_PIN === '1';
// Diagnostic: every thread of both daemons and of this process at this nice value (root: below 0),
// so that other work on a shared machine delays them less.
const NICE = process.env.BENCH_NICE === undefined || process.env.BENCH_NICE === '' ? undefined : Number(process.env.BENCH_NICE);
if (NICE !== undefined && (!Number.isInteger(NICE) || NICE < -20 || NICE > 19)) throw new Error(`BENCH_NICE=${process.env.BENCH_NICE}: expected an integer from -20 to 19`);

function positive(name: string, dflt: number, zeroOk = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !zeroOk)) throw new Error(`${name}=${raw}: expected a ${zeroOk ? 'non-negative' : 'positive'} integer`);
  return n;
}

if (BURST % 2 !== 0) throw new Error('BENCH_BURST: an even number (the burst is made of POST + DELETE pairs)');
if (CONCURRENCY > 200) throw new Error('BENCH_BURST_CONCURRENCY: at most 200 (one em1 vhid per client)');
if (BASE_VIPS > 200) throw new Error('BENCH_BASE_VIPS: at most 200');

// ---------------------------------------------------------------------------------------
// Processes and cleanup (what test/helpers/daemon.ts registers through t.after).

const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => cleanups.push(fn) };

async function cleanup(): Promise<void> {
  for (const fn of cleanups.reverse()) await fn();
  cleanups.length = 0;
}

interface Node {
  name: string;
  d: RunningDaemon;
  token: string;
  syncPort: number;
  fingerprint: string;
}

/** A port free on 127.0.0.1 right now (carpd refuses --sync-listen equal to --listen, so not port 0 for both). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function startNode(name: string, dir: string, logLevel = 'info'): Promise<Node> {
  const d = await startDaemon(t, daemonArgs(dir, '--node-name', name, '--sync-listen', `127.0.0.1:${await freePort()}`, '--log-level', logLevel));
  const listening = await d.waitForEvent('sync.listening');
  const m = /:(\d+)$/.exec(String(listening.address));
  if (!m) throw new Error(`cannot read the sync port from ${JSON.stringify(listening)}`);
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  const st = await call(d.port, 'GET', '/v1/sync', { token });
  if (st.status !== 200) throw new Error(`GET /v1/sync on ${name}: ${st.status} ${st.text}`);
  return { name, d, token, syncPort: Number(m[1]), fingerprint: String(st.body.identity.fingerprint) };
}

async function api(n: Node, method: string, url: string, body?: unknown): Promise<Reply> {
  return call(n.d.port, method, url, { token: n.token, body });
}

async function expect(n: Node, method: string, url: string, status: number, body?: unknown): Promise<Reply> {
  const r = await api(n, method, url, body);
  if (r.status !== status) throw new Error(`${method} ${url} on ${n.name}: expected ${status}, got ${r.status} ${r.text}`);
  return r;
}

/** utime + stime of a process, in ms (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Busy CPU time of the whole machine (all cores, /proc/stat), in ms. */
function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 10;
  } catch {
    return NaN;
  }
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** Every thread of the process (Linux: a nice value is per thread; fsyncs run on libuv's pool). */
function renice(pid: number, nice: number): void {
  for (const tid of readdirSync(`/proc/${pid}/task`)) os.setPriority(Number(tid), nice);
}

/** All threads of the process onto these CPUs. */
function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

const isApplied = (l: LogLine) => l.event === 'sync.applied';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What the secondary saw of the primary in its log lines from index `from` on: TLS connections, pushes, most requests answered at once. */
function seen(secondary: Node, primary: Node, from: number) {
  const lines = secondary.d.logs.slice(from).filter((l) => (l.peer as { fingerprint?: string } | undefined)?.fingerprint === primary.fingerprint);
  const received = lines.filter((l) => l.event === 'sync.received');
  return {
    connections: lines.filter((l) => l.event === 'sync.connection').length,
    pushes: received.filter((l) => l.type === 'push').length,
    maxInFlight: Math.max(0, ...received.map((l) => Number(l.inProgress))),
  };
}

// ---------------------------------------------------------------------------------------
// The changes.

/** A change on the primary: the VIP at `slot` is created if `create`, else removed. */
async function change(n: Node, iface: string, slot: number, create: boolean): Promise<Reply> {
  const vhid = slot + 1;
  if (create) {
    const net = iface === 'em0' ? '192.0.2' : '198.51.100';
    return expect(n, 'POST', '/v1/vips', 201, { interface: iface, vhid, addresses: [`${net}.${vhid}/24`] });
  }
  return expect(n, 'DELETE', `/v1/vips/${iface}/${vhid}`, 204);
}

interface Burst {
  /** First request sent (Date.now()). */
  startMs: number;
  /** Last answer received (Date.now()). */
  endMs: number;
  post: number[];
  del: number[];
  revisions: number[];
}

/**
 * `total` changes (an even number) by `clients` concurrent clients: each takes a pair at a time,
 * creates its own VIP on em1 and removes it again, so nothing is left behind.
 */
async function burst(n: Node, total: number, clients: number): Promise<Burst> {
  const out: Burst = { startMs: 0, endMs: 0, post: [], del: [], revisions: [] };
  let pairs = total / 2;
  const client = async (slot: number) => {
    while (pairs > 0) {
      pairs--;
      for (const create of [true, false]) {
        const t0 = performance.now();
        const r = await change(n, 'em1', slot, create);
        (create ? out.post : out.del).push(performance.now() - t0);
        out.revisions.push(etagRevision(r));
      }
    }
  };
  out.startMs = Date.now();
  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  out.endMs = Date.now();
  return out;
}

// ---------------------------------------------------------------------------------------
// Statistics and the report.

function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1], mean };
}

const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');

const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

async function main(): Promise<void> {
  if (process.env.CARPD_TEST_DIST !== '1') log('CARPD_TEST_DIST is not 1: carpd runs through tsx (use npm run bench:sync for the compiled daemon)');
  const loadBefore = os.loadavg();
  if (loadBefore[0] > 0.5) log(`the 1-minute load average is ${fmt(loadBefore[0], 2)}; other work on this machine will skew the results`);
  mkdirSync(STATE_ROOT, { recursive: true });
  const dirs = ['primary', 'secondary'].map((n) => mkdtempSync(path.join(STATE_ROOT, `carpd-bench-sync-${n}-`)));
  cleanups.push(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const fsMagic = Number(statfsSync(dirs[0]).type);
  const fsType = FS_TYPES[fsMagic] ?? `statfs type 0x${fsMagic.toString(16)}`;

  const primary = await startNode('bench-primary', dirs[0]);
  const secondary = await startNode('bench-secondary', dirs[1], 'debug');
  // Graceful stops first (the SIGKILL registered by startDaemon is the fallback).
  cleanups.push(async () => {
    for (const n of [primary, secondary]) n.d.kill('SIGTERM');
    await Promise.all([primary, secondary].map((n) => n.d.waitForExit().catch(() => undefined)));
  });
  if (PIN) {
    if (os.cpus().length < 2) throw new Error('BENCH_PIN=1 needs 2 cores');
    pin(primary.d.child.pid!, '0');
    pin(secondary.d.child.pid!, '1');
    pin(process.pid, '1');
  }
  if (NICE !== undefined) {
    // The daemons have done their start-up file work: libuv's pool threads exist by now.
    for (const pid of [primary.d.child.pid!, secondary.d.child.pid!, process.pid]) renice(pid, NICE);
  }
  log(`primary pid ${primary.d.child.pid} (API :${primary.d.port}, sync :${primary.syncPort}); secondary pid ${secondary.d.child.pid} (API :${secondary.d.port}, sync :${secondary.syncPort})`);

  for (let i = 0; i < BASE_VIPS; i++) await change(primary, 'em0', 54 + i, true);

  // What the rest of the machine used meanwhile: all busy CPU minus the two daemons and this process.
  const ours = () => cpuMs(primary.d.child.pid!) + cpuMs(secondary.d.child.pid!) + ownCpuMs();
  const busy0 = machineBusyMs();
  const ours0 = ours();
  const wall0 = Date.now();

  // Warm-up and the control burst, before the two are paired: the same writes with no push.
  log(`warm-up: ${WARMUP} changes unpaired`);
  for (let i = 0; i < WARMUP + (WARMUP % 2); i++) await change(primary, 'em0', Math.floor(i / 2) % 50, i % 2 === 0);
  log(`control: ${CHANGES} sequential changes, no sync peer`);
  const answersControl: number[] = [];
  const cpuSeqControl0 = cpuMs(primary.d.child.pid!);
  for (let i = 0; i < CHANGES + (CHANGES % 2); i++) {
    const p0 = performance.now();
    await change(primary, 'em0', Math.floor(i / 2) % 50, i % 2 === 0);
    if (i < CHANGES) answersControl.push(performance.now() - p0);
  }
  const cpuSeqControl = cpuMs(primary.d.child.pid!) - cpuSeqControl0;
  log(`control burst: ${BURST} changes, ${CONCURRENCY} clients, no sync peer`);
  const cpuControl0 = cpuMs(primary.d.child.pid!);
  const control = await burst(primary, BURST, CONCURRENCY);
  const cpuControl = cpuMs(primary.d.child.pid!) - cpuControl0;

  // Pairing, through the API only.
  log('pairing');
  const link = (self: Node, other: Node, role: 'primary' | 'secondary', local: string) =>
    expect(self, 'PATCH', '/v1/sync', 200, { role, peer: { address: '127.0.0.1', port: other.syncPort, fingerprint: other.fingerprint }, localAddresses: [local] });
  await link(secondary, primary, 'secondary', '203.0.113.11/24');
  const pairedFrom = secondary.d.logs.length;
  await link(primary, secondary, 'primary', '203.0.113.10/24');
  await pollUntil(
    'the secondary caught up',
    async () => (await api(primary, 'GET', '/v1/sync')).body,
    (s) => s.lastError === null && s.peerRevision === s.localRevision,
  );

  // Latency: one change at a time, each waited for on the secondary.
  log(`latency: ${WARMUP} warm-up + ${CHANGES} sequential changes`);
  let logFrom = secondary.d.logs.length;
  const latencies: number[] = [];
  const answers: number[] = [];
  const afterAnswers: number[] = [];
  let cpuSeq0 = cpuMs(primary.d.child.pid!);
  for (let i = 0; i < WARMUP + CHANGES; i++) {
    if (i === WARMUP) {
      cpuSeq0 = cpuMs(primary.d.child.pid!);
      logFrom = secondary.d.logs.length;
    }
    const slot = Math.floor(i / 2) % 50;
    const t0 = Date.now();
    const p0 = performance.now();
    const r = await change(primary, 'em0', slot, i % 2 === 0);
    const answered = performance.now() - p0;
    const rev = etagRevision(r);
    const applied = await secondary.d.waitForEvent('sync.applied', (l) => l.primaryRevision === rev);
    if (i < WARMUP) continue;
    latencies.push(Number(applied.time) - t0);
    answers.push(answered);
    afterAnswers.push(Number(applied.time) - t0 - answered);
  }
  const cpuSeq = cpuMs(primary.d.child.pid!) - cpuSeq0;
  const seenSeq = seen(secondary, primary, logFrom);

  // Paced: RATE changes/s, open loop; each change's wait for the secondary runs beside the next ones.
  log(`paced: ${PACED} changes at ${RATE} changes/s`);
  logFrom = secondary.d.logs.length;
  const periodMs = 1000 / RATE;
  const pacedWaits: Promise<number>[] = [];
  const pacedAnswers: number[] = [];
  const pacedAfter: number[] = [];
  let late = 0;
  const pacedStart = performance.now() + periodMs;
  for (let i = 0; i < PACED + (PACED % 2); i++) {
    const wait = pacedStart + i * periodMs - performance.now();
    if (wait > 0) await sleep(wait);
    else late++;
    const t0 = Date.now();
    const p0 = performance.now();
    const r = await change(primary, 'em0', Math.floor(i / 2) % 50, i % 2 === 0);
    if (i >= PACED) break;
    const answered = performance.now() - p0;
    pacedAnswers.push(answered);
    const rev = etagRevision(r);
    pacedWaits.push(
      secondary.d.waitForEvent('sync.applied', (l) => Number(l.primaryRevision) >= rev).then((l) => {
        pacedAfter.push(Number(l.time) - t0 - answered);
        return Number(l.time) - t0;
      }),
    );
  }
  const pacedLatencies = await Promise.all(pacedWaits);
  const seenPaced = seen(secondary, primary, logFrom);

  // Burst, paired.
  const startRev = Number((await api(primary, 'GET', '/v1/sync')).body.localRevision);
  log(`burst: ${BURST} changes, ${CONCURRENCY} clients, from revision ${startRev}`);
  const cpuP0 = cpuMs(primary.d.child.pid!);
  const cpuS0 = cpuMs(secondary.d.child.pid!);
  logFrom = secondary.d.logs.length;
  const paired = await burst(primary, BURST, CONCURRENCY);
  const finalRev = Number((await api(primary, 'GET', '/v1/sync')).body.localRevision);
  if (finalRev !== startRev + BURST || Math.max(...paired.revisions) !== finalRev) {
    throw new Error(`the burst should end at revision ${startRev + BURST}: the primary is at ${finalRev}, the answers went up to ${Math.max(...paired.revisions)}`);
  }
  const appliedFinal = await secondary.d.waitForEvent('sync.applied', (l) => l.primaryRevision === finalRev);
  await primary.d.waitForEvent('sync.pushed', (l) => l.revision === finalRev);
  const cpuP = cpuMs(primary.d.child.pid!) - cpuP0;
  const cpuS = cpuMs(secondary.d.child.pid!) - cpuS0;
  const appliedLines = secondary.d.logs.filter((l) => isApplied(l) && Number(l.primaryRevision) > startRev && Number(l.primaryRevision) <= Number(appliedFinal.primaryRevision));
  const pushedLines = primary.d.logs.filter((l) => l.event === 'sync.pushed' && Number(l.revision) > startRev && Number(l.revision) <= Number(appliedFinal.primaryRevision));
  const burstToApplied = Number(appliedFinal.time) - paired.startMs;
  const burstAnswered = paired.endMs - paired.startMs;
  const failures = [...primary.d.logs, ...secondary.d.logs].filter((l) => l.event === 'sync.push.failed' || l.event === 'sync.apply.failed');
  const seenBurst = seen(secondary, primary, logFrom);
  const seenAll = seen(secondary, primary, pairedFrom);

  const otherCpuMs = machineBusyMs() - busy0 - (ours() - ours0);
  const wallMs = Date.now() - wall0;
  const otherPct = (otherCpuMs / wallMs) * 100;

  const lat = summary(latencies);
  const ans = summary(answers);
  const pac = summary(pacedLatencies);
  const pacAns = summary(pacedAnswers);
  const pacAfter = summary(pacedAfter);
  const after = summary(afterAnswers);
  const ansControl = summary(answersControl);
  const writes = (b: Burst) => ({ post: summary(b.post), del: summary(b.del) });
  const wc = writes(control);
  const wp = writes(paired);
  const loadAfter = os.loadavg();

  const cpus = os.cpus();
  const rev = gitRevision();
  const report = [
    `# carpd config sync benchmark`,
    ``,
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}; ` +
      `load average (1, 5, 15 min) ${loadBefore.map((x) => fmt(x, 2)).join(', ')} at the start (after \`tsc\` of the npm script), ${loadAfter.map((x) => fmt(x, 2)).join(', ')} at the end`,
    `- Other processes on this machine used ${fmt(otherCpuMs / 1000, 1)} s of CPU during the ${fmt(wallMs / 1000, 1)} s measured (${fmt(otherPct, 0)} % of one core; /proc/stat busy time minus the two daemons and this process)`,
    `- Node ${process.version}${rev ? `, carpd ${rev}` : ''}; two carpd processes (${process.env.CARPD_TEST_DIST === '1' ? 'compiled dist/' : 'through tsx'}), memory backend, ` +
      `API and sync listener (mutual TLS) on 127.0.0.1, logs at info; both on this machine`,
    `- State dirs on ${fsType} (every commit fsyncs, on both nodes); ${BASE_VIPS} VIPs configured throughout plus those the changes add (at most ${CONCURRENCY} at a time)`,
    `- The secondary logs at debug (a line per TLS connection and per message it takes: the counts below are its own), the primary at info`,
    ...(PIN ? [`- Pinned (BENCH_PIN=1): the primary alone on CPU 0; the secondary and the load generator on CPU 1`] : []),
    ...(NICE !== undefined ? [`- Every thread of both daemons and of the load generator at nice ${NICE} (BENCH_NICE), ahead of other work on this machine for the CPU`] : []),
    `- Paired through the API: GET /v1/sync (fingerprints), PATCH /v1/sync role/peer/localAddresses on the secondary, then on the primary`,
    ``,
    `## Change on the primary → applied on the secondary`,
    ``,
    `${CHANGES} sequential changes (POST /v1/vips of a VIP, then DELETE of it, alternating), after ${WARMUP} not counted. ` +
      `Each from just before the request is sent to the \`time\` of the secondary's \`sync.applied\` log line for the revision in the primary's ETag ` +
      `(both wall-clock ms on this machine: 1 ms resolution). The next change is sent once that line has arrived.`,
    ``,
    `| | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |`,
    `|---|---:|---:|---:|---:|---:|---:|`,
    `| change → applied on the secondary | ${lat.n} | ${fmt(lat.p50, 0)} | ${fmt(lat.p90, 0)} | ${fmt(lat.p99, 0)} | ${fmt(lat.max, 0)} | ${fmt(lat.mean)} |`,
    `| of which the primary's answer (commit) | ${ans.n} | ${fmt(ans.p50)} | ${fmt(ans.p90)} | ${fmt(ans.p99)} | ${fmt(ans.max)} | ${fmt(ans.mean)} |`,
    `| of which after the answer (push and apply) | ${after.n} | ${fmt(after.p50, 0)} | ${fmt(after.p90, 0)} | ${fmt(after.p99, 0)} | ${fmt(after.max, 0)} | ${fmt(after.mean)} |`,
    `| the primary's answer before pairing (control) | ${ansControl.n} | ${fmt(ansControl.p50)} | ${fmt(ansControl.p90)} | ${fmt(ansControl.p99)} | ${fmt(ansControl.max)} | ${fmt(ansControl.mean)} |`,
    ``,
    `The primary's CPU time per change (utime + stime, 10 ms ticks): ${fmt(cpuSeq / CHANGES, 2)} ms paired (a commit and a push each) against ` +
      `${fmt(cpuSeqControl / CHANGES, 2)} ms before pairing (a commit): **${fmt((cpuSeq - cpuSeqControl) / CHANGES, 2)} ms per push**. ` +
      `The secondary took ${seenSeq.pushes} pushes, at most ${seenSeq.maxInFlight} at a time, over ${seenSeq.connections} new TLS connection(s).`,
    ``,
    `## Change on the primary → applied on the secondary, at ${RATE} changes/s`,
    ``,
    `${PACED} changes (the same POST/DELETE pairs) sent every ${fmt(periodMs, 0)} ms on absolute deadlines, without waiting for the secondary; ` +
      `each measured the same way, to the first \`sync.applied\` at or past its revision.${late > 0 ? ` ${late} were sent late (the previous answer took longer than the period).` : ''}`,
    ``,
    `| | n | p50 ms | p90 ms | p99 ms | max ms | mean ms |`,
    `|---|---:|---:|---:|---:|---:|---:|`,
    `| change → applied on the secondary | ${pac.n} | ${fmt(pac.p50, 0)} | ${fmt(pac.p90, 0)} | ${fmt(pac.p99, 0)} | ${fmt(pac.max, 0)} | ${fmt(pac.mean)} |`,
    `| of which the primary's answer (commit) | ${pacAns.n} | ${fmt(pacAns.p50)} | ${fmt(pacAns.p90)} | ${fmt(pacAns.p99)} | ${fmt(pacAns.max)} | ${fmt(pacAns.mean)} |`,
    `| of which after the answer (push and apply) | ${pacAfter.n} | ${fmt(pacAfter.p50, 0)} | ${fmt(pacAfter.p90, 0)} | ${fmt(pacAfter.p99, 0)} | ${fmt(pacAfter.max, 0)} | ${fmt(pacAfter.mean)} |`,
    ``,
    `The secondary took ${seenPaced.pushes} pushes, at most ${seenPaced.maxInFlight} at a time, over **${seenPaced.connections} new TLS connection(s)**.`,
    ``,
    `## Burst: ${BURST} changes, ${CONCURRENCY} concurrent clients`,
    ``,
    `Each client alternates POST and DELETE of its own VIP, as fast as the primary answers.`,
    ``,
    `| | value |`,
    `|---|---:|`,
    `| first request → last answer from the primary | ${burstAnswered} ms (${fmt((BURST * 1000) / burstAnswered, 0)} changes/s committed) |`,
    `| first request → secondary applied the primary's final revision (${appliedFinal.primaryRevision}) | **${burstToApplied} ms** (${burstToApplied - burstAnswered} ms after the last answer) |`,
    `| changes/s, end to end (${BURST} / that time) | **${fmt((BURST * 1000) / burstToApplied, 0)}** |`,
    `| snapshots the secondary applied for the ${BURST} changes | **${appliedLines.length}** (${fmt(BURST / appliedLines.length)} changes per push) |`,
    `| pushes the primary completed | ${pushedLines.length} |`,
    `| pushes the secondary took / new TLS connections it accepted from the primary | ${seenBurst.pushes} / ${seenBurst.connections} |`,
    `| most pushes in flight at once (the secondary's count) | **${seenBurst.maxInFlight}** |`,
    `| push or apply failures logged | ${failures.length} |`,
    `| CPU time, primary / secondary | ${fmt(cpuP, 0)} ms / ${fmt(cpuS, 0)} ms (unpaired control: primary ${fmt(cpuControl, 0)} ms) |`,
    `| primary CPU per push (paired − control, per push; 10 ms ticks) | ${fmt((cpuP - cpuControl) / pushedLines.length)} ms |`,
    ``,
    `The primary's write latency during the burst, paired and (before pairing) with no sync peer:`,
    ``,
    `| | POST n | POST p50 ms | POST p99 ms | DELETE p50 ms | DELETE p99 ms | changes/s committed |`,
    `|---|---:|---:|---:|---:|---:|---:|`,
    `| no sync peer (control) | ${wc.post.n} | ${fmt(wc.post.p50)} | ${fmt(wc.post.p99)} | ${fmt(wc.del.p50)} | ${fmt(wc.del.p99)} | ${fmt((BURST * 1000) / (control.endMs - control.startMs), 0)} |`,
    `| paired, pushing | ${wp.post.n} | ${fmt(wp.post.p50)} | ${fmt(wp.post.p99)} | ${fmt(wp.del.p50)} | ${fmt(wp.del.p99)} | ${fmt((BURST * 1000) / burstAnswered, 0)} |`,
    ``,
    PIN
      ? `The primary had CPU 0 to itself in both bursts; the secondary's fsyncs still share the disk.`
      : `Both nodes share this machine's ${cpus.length} cores and disk, so the secondary's applies (validate, plan, apply, fsync) compete with the primary here; on two machines they would not.`,
  ];
  report.push(
    ``,
    `From pairing to the end the secondary accepted **${seenAll.connections} TLS connection(s)** from the primary and took ${seenAll.pushes} pushes from it, ` +
      `at most ${seenAll.maxInFlight} at a time.`,
  );
  if (failures.length > 0) report.push(``, `First failure: \`${JSON.stringify(failures[0])}\``);
  const text = report.join('\n') + '\n';
  process.stdout.write('\n' + text);
  mkdirSync(path.join(HERE, 'results'), { recursive: true });
  writeFileSync(path.join(HERE, 'results', 'sync-latest.md'), text);
  log(`written to ${path.relative(process.cwd(), path.join(HERE, 'results', 'sync-latest.md'))}`);
}

process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
main()
  .then(cleanup)
  .then(
    () => process.exit(0),
    async (e) => {
      process.stderr.write(`${(e as Error).stack}\n`);
      await cleanup();
      process.exit(1);
    },
  );
