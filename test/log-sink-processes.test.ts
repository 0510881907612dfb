/**
 * carpd itself with its stdout on a full file system (a 64 KiB tmpfs) and on a pipe nobody
 * reads: the API keeps answering, lines are dropped and counted, the log comes back once there
 * is room, and SIGTERM stops carpd at once. Needs root (mounts a tmpfs); the FIFO case does not.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { call, cleanEnv, REPO_ROOT, type Reply } from './helpers/daemon.js';
import { pollUntil } from './helpers/poll.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';

const ENTRY = process.env.CARPD_TEST_DIST === '1' ? ['dist/daemon/main.js'] : ['--import', 'tsx', 'src/daemon/main.ts'];
/** The bound the issue sets: the API answers, and SIGTERM ends carpd, within a second. */
const BOUND_MS = 1000;
const notRoot = process.getuid?.() !== 0 ? 'needs root: mounts a 64 KiB tmpfs' : undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** `p`, or a rejection naming `what` if it takes longer than `ms`. */
async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

interface Carpd {
  child: ChildProcess;
  port: number;
  token: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** carpd (memory backend) with `stdoutFd` as its stdout; resolves once /healthz answers. */
async function startCarpd(t: TestContext, stdoutFd: number): Promise<Carpd> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-state-'));
  const port = await freePort();
  const child = spawn(process.execPath, [...ENTRY, '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--backend', 'memory'], { cwd: REPO_ROOT, env: cleanEnv(), stdio: ['ignore', stdoutFd, 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    rmSync(stateDir, { recursive: true, force: true });
  });
  await pollUntil(
    'carpd answering /healthz',
    async () => {
      if (child.exitCode !== null) throw new Error(`carpd exited ${child.exitCode}: ${stderr}`);
      return call(port, 'GET', '/healthz').then((r) => r.status, () => 0);
    },
    (s) => s === 200,
  );
  return { child, port, token: readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim(), exited };
}

async function logStats(c: Carpd): Promise<{ linesWritten: number; linesDropped: number; bytesQueued: number; lastError?: string }> {
  const r = await call(c.port, 'GET', '/v1/stats', { token: c.token });
  assert.equal(r.status, 200, r.text);
  return r.body.log;
}

/** GET /v1/status on a kept-alive connection: one access-log line. */
function status(c: Carpd, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port: c.port, path: '/v1/status', agent, headers: { authorization: `Bearer ${c.token}` } }, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Requests (each an access-log line, about 250 bytes) until carpd reports dropped log lines. */
async function floodUntilDropped(c: Carpd): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  try {
    await pollUntil(
      'log lines dropped',
      async () => {
        await Promise.all(Array.from({ length: 500 }, () => status(c, agent)));
        return logStats(c);
      },
      (s) => s.linesDropped > 0,
      30_000,
    );
  } finally {
    agent.destroy();
  }
}

/** /healthz and a write answer within the bound. */
async function apiAnswers(c: Carpd, vhid: number): Promise<Reply> {
  assert.equal((await within(BOUND_MS, '/healthz', call(c.port, 'GET', '/healthz'))).status, 200);
  const made = await within(BOUND_MS, 'POST /v1/vips', call(c.port, 'POST', '/v1/vips', { token: c.token, body: { interface: 'em0', vhid, addresses: [`192.0.2.${vhid}/24`] } }));
  assert.equal(made.status, 201, made.text);
  return made;
}

async function sigtermStops(c: Carpd): Promise<void> {
  c.child.kill('SIGTERM');
  const x = await within(BOUND_MS, 'carpd exiting after SIGTERM', c.exited);
  assert.deepEqual(x, { code: 0, signal: null });
}

function tmpfs(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the file system `dir` is on (the write stops at ENOSPC). */
function fill(dir: string): void {
  try {
    writeFileSync(path.join(dir, 'filler'), Buffer.alloc(1 << 20));
    assert.fail('the tmpfs took 1 MiB');
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  }
}

const logLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

test('stdout on a full file system: the API answers, drops are counted, the log resumes with a summary once there is room, and SIGTERM stops carpd', { skip: notRoot, timeout: 60_000 }, async (t) => {
  const dir = tmpfs(t);
  const file = path.join(dir, 'carpd.log');
  const fd = openSync(file, 'a');
  const c = await startCarpd(t, fd);
  closeSync(fd);
  fill(dir);
  await floodUntilDropped(c);
  await apiAnswers(c, 1);
  const s = await logStats(c);
  assert.equal(s.lastError, 'ENOSPC');
  const metrics = await call(c.port, 'GET', '/metrics', { token: c.token });
  assert.ok(sampleValue(parsePrometheusText(metrics.text), 'carpd_log_lines_dropped_total')! > 0, metrics.text);
  // Room again: carpd is still there, and its log goes on, the gap summarized.
  execFileSync('mount', ['-o', 'remount,size=8m', dir]);
  rmSync(path.join(dir, 'filler'));
  const summary = await pollUntil(
    'the log.dropped line in the file',
    async () => logLines(file).find((l) => l.includes('"event":"log.dropped"')),
    (l) => l !== undefined,
    10_000,
  );
  const parsedSummary = JSON.parse(summary!) as Record<string, unknown>;
  assert.equal(parsedSummary.level, 40);
  assert.equal(parsedSummary.reason, 'ENOSPC');
  assert.ok((parsedSummary.dropped as number) >= s.linesDropped);
  await apiAnswers(c, 2);
  await pollUntil(
    'the line of a request made after the room came back',
    async () => logLines(file).some((l) => l.includes('"vhid":2')),
    (v) => v,
    10_000,
  );
  // Every line in the file is whole JSON: a line cut short by ENOSPC was finished.
  for (const l of logLines(file)) JSON.parse(l);
  assert.ok(c.child.exitCode === null);
  await sigtermStops(c);
});

test('stdout on a full file system: SIGTERM stops carpd while the disk is still full', { skip: notRoot, timeout: 60_000 }, async (t) => {
  const dir = tmpfs(t);
  const fd = openSync(path.join(dir, 'carpd.log'), 'a');
  const c = await startCarpd(t, fd);
  closeSync(fd);
  fill(dir);
  await pollUntil(
    'a failed log write',
    async () => {
      await Promise.all(Array.from({ length: 20 }, () => call(c.port, 'GET', '/v1/status', { token: c.token })));
      return logStats(c);
    },
    (s) => s.lastError === 'ENOSPC',
  );
  await apiAnswers(c, 1);
  await sigtermStops(c);
});

test('stdout a pipe whose reader never reads: the API answers, drops are counted as stalled, and SIGTERM stops carpd', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-fifo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.after(() => closeSync(rfd));
  const wfd = openSync(fifo, constants.O_WRONLY);
  const c = await startCarpd(t, wfd);
  closeSync(wfd);
  await floodUntilDropped(c);
  await apiAnswers(c, 1);
  const s = await logStats(c);
  assert.equal(s.lastError, 'stalled');
  await sigtermStops(c);
});

test('stdout a pipe whose reader is gone (EPIPE): carpd goes on, counting the lines it cannot write', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-logsink-fifo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const wfd = openSync(fifo, constants.O_WRONLY);
  const c = await startCarpd(t, wfd);
  closeSync(wfd);
  closeSync(rfd);
  const s = await pollUntil(
    'a log write failing with EPIPE',
    async () => {
      await call(c.port, 'GET', '/v1/status', { token: c.token });
      return logStats(c);
    },
    (x) => x.lastError === 'EPIPE',
  );
  assert.ok(s.linesDropped > 0);
  await apiAnswers(c, 1);
  assert.ok((await logStats(c)).linesDropped > s.linesDropped, 'later lines are counted too');
  await sigtermStops(c);
});
