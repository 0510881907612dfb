/**
 * Two real carpd processes on a sim group of their own (CARP advbase 1): the master is
 * SIGSTOPped past its master-down interval, the backup takes over, the master is resumed
 * (SIGCONT). The two are never MASTER together for longer than one advertisement interval,
 * computed from both nodes' own vhid.state events (a stopped process counts as no master: it
 * sends nothing); they end with exactly one MASTER; and the resumed node reports its stall: the
 * loop.stalled line in its log naming the vhid, its /v1/stats and its /metrics counting it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { pollUntil } from './helpers/poll.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';
import { SseClient } from './helpers/sse.js';
import { freeUdpPort } from './helpers/sync-node.js';

/** One advertisement interval of the master: advbase 1 s, advskew 0. */
const INTERVAL_MS = 1000;

interface Node {
  d: RunningDaemon;
  token: string;
}

async function node(t: test.TestContext, root: string, name: string, group: string): Promise<Node> {
  const stateDir = path.join(root, name);
  const d = await startDaemon(t, ['--listen', '127.0.0.1:0', '--state-dir', stateDir, '--node-name', name, '--backend', 'sim', '--sim-group', group]);
  return { d, token: readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim() };
}

async function stateOf(n: Node): Promise<string | undefined> {
  const r = await call(n.d.port, 'GET', '/v1/status', { token: n.token });
  return (r.body.vhids as { interface: string; vhid: number; state: string }[]).find((v) => v.interface === 'em0' && v.vhid === 1)?.state;
}

type Interval = [number, number];

/** When the node held em0 vhid 1 as MASTER, from its own vhid.state events (an interval still open ends at `end`). */
async function masterIntervals(n: Node, end: number): Promise<Interval[]> {
  const r = await call(n.d.port, 'GET', '/v1/events/recent?after=0&types=vhid.state&limit=1000', { token: n.token });
  assert.equal(r.status, 200);
  const out: Interval[] = [];
  let since: number | undefined;
  for (const e of r.body.events as { time: string; data: { interface: string; vhid: number; from: string; to: string } }[]) {
    if (e.data.interface !== 'em0' || e.data.vhid !== 1) continue;
    const at = Date.parse(e.time);
    if (e.data.to === 'MASTER') since ??= at;
    else if (e.data.from === 'MASTER' && since !== undefined) {
      out.push([since, at]);
      since = undefined;
    }
  }
  if (since !== undefined) out.push([since, end]);
  return out;
}

/** The parts of `xs` outside `gap`. */
function minus(xs: Interval[], gap: Interval): Interval[] {
  return xs.flatMap(([a, b]): Interval[] => [
    [a, Math.min(b, gap[0])],
    [Math.max(a, gap[1]), b],
  ]).filter(([a, b]) => b > a);
}

/** The longest time both hold at once. */
function longestOverlap(xs: Interval[], ys: Interval[]): number {
  let longest = 0;
  for (const [a, b] of xs) for (const [c, d] of ys) longest = Math.max(longest, Math.min(b, d) - Math.max(a, c));
  return longest;
}

test('overlap arithmetic', () => {
  assert.deepEqual(minus([[0, 10]], [3, 5]), [[0, 3], [5, 10]]);
  assert.deepEqual(minus([[0, 10]], [-5, 20]), []);
  assert.equal(longestOverlap([[0, 3], [5, 10]], [[2, 6]]), 1);
  assert.equal(longestOverlap([[0, 3]], [[4, 6]]), 0);
});

test('sim processes: the master SIGSTOPped past master-down and resumed; never two masters for longer than an advertisement interval; the resumed node reports its stall', { timeout: 90_000 }, async (t) => {
  const group = `239.255.0.114:${await freeUdpPort()}`;
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-loop-proc-'));
  const clients: SseClient[] = [];
  t.after(() => {
    clients.forEach((c) => c.close());
    rmSync(root, { recursive: true, force: true });
  });
  const a = await node(t, root, 'node-a', group);
  const b = await node(t, root, 'node-b', group);
  // A process left stopped would never exit: it is resumed before the helper's SIGKILL.
  t.after(() => a.d.kill('SIGCONT'));
  const vip = (advskew: number) => ({ interface: 'em0', vhid: 1, addresses: ['192.0.2.21/24'], advbase: 1, advskew, password: 'loop-pw' });
  assert.equal((await call(a.d.port, 'POST', '/v1/vips', { token: a.token, body: vip(0) })).status, 201);
  await pollUntil('node-a MASTER', () => stateOf(a), (s) => s === 'MASTER');
  assert.equal((await call(b.d.port, 'POST', '/v1/vips', { token: b.token, body: vip(100) })).status, 201);
  await pollUntil('node-b BACKUP', () => stateOf(b), (s) => s === 'BACKUP');

  const stream = await SseClient.open({ port: b.d.port, token: b.token, query: '?types=vhid.state' });
  clients.push(stream);
  assert.equal(stream.status, 200);
  const stoppedAt = Date.now();
  a.d.kill('SIGSTOP');
  const takeover = await stream.waitFor((e) => e.data.vhid === 1 && e.data.to === 'MASTER', 'node-b taking over from the stopped master');
  assert.match(takeover.data.reason, /master-down timer expired/);
  const resumedAt = Date.now();
  a.d.kill('SIGCONT');

  // The resumed master (advskew 0) advertises; node-b (advskew 100) steps down.
  await stream.waitFor((e) => e.data.vhid === 1 && e.data.from === 'MASTER', 'node-b stepping down once node-a is back');
  await pollUntil('exactly one MASTER', async () => [await stateOf(a), await stateOf(b)].sort().join(','), (s) => s === 'BACKUP,MASTER');

  const end = Date.now();
  // node-a stopped is no master: it sends nothing, and its status cannot be read.
  const ofA = minus(await masterIntervals(a, end), [stoppedAt, resumedAt]);
  const ofB = await masterIntervals(b, end);
  assert.ok(ofB.length >= 1, 'node-b was MASTER while node-a was stopped');
  const overlap = longestOverlap(ofA, ofB);
  assert.ok(overlap < INTERVAL_MS, `both MASTER for ${overlap} ms (node-a ${JSON.stringify(ofA)}, node-b ${JSON.stringify(ofB)})`);

  // The resumed node logged the stall, naming the vhid, at warn.
  const line = await a.d.waitForEvent('loop.stalled');
  assert.equal(line.level, 40);
  assert.ok((line.ms as number) > INTERVAL_MS, `stalled ${line.ms as number} ms`);
  assert.deepEqual(line.vhids, [{ interface: 'em0', vhid: 1, protocol: 'carp', intervalMs: 1000 }]);
  assert.match(String(line.msg), /^the event loop stalled for \d+ ms \(threshold 1000 ms, the shortest advertisement interval\): timers delayed for em0 vhid 1 \(1000 ms\)$/);
  const stats = await call(a.d.port, 'GET', '/v1/stats', { token: a.token });
  assert.ok(stats.body.eventLoop.stalls >= 1, JSON.stringify(stats.body.eventLoop));
  assert.equal(stats.body.eventLoop.lastStall.vhids[0].vhid, 1);
  const m = parsePrometheusText((await call(a.d.port, 'GET', '/metrics', { token: a.token })).text);
  assert.ok(sampleValue(m, 'carpd_event_loop_stalls_total')! >= 1);
  assert.equal(sampleValue(m, 'carpd_event_loop_stalls_total'), stats.body.eventLoop.stalls);
  assert.deepEqual(stream.problems, []);
});
