/**
 * Hooks on a takeover: a backup whose master dies runs its hook, which gets the takeover in its
 * environment; a hook that hangs is killed at its timeout and holds nothing up, the takeover
 * included. First on simulated time (two sim backends on one in-memory segment, the backup a
 * whole service with its hook runner), where "on time" is exact; then with two carpd processes
 * (--backend sim, UDP on loopback), through the daemon's own wiring.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { HookRunner } from '../src/notify/hooks.js';
import { masterDownMs } from '../src/engine/timing.js';
import type { AnyEvent } from '../src/service/events.js';
import { ManualClock, makeHarness } from './helpers/harness.js';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { pollUntil } from './helpers/poll.js';

function tempRoot(t: { after: (f: () => void) => void }): string {
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-hooks-cluster-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** A script that writes its environment to $OUT once it is complete (renamed into place). */
function recorder(root: string): string {
  const file = path.join(root, 'record.sh');
  writeFileSync(file, '#!/bin/sh\nenv > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"\n', { mode: 0o755 });
  return file;
}

const envOf = (file: string) =>
  Object.fromEntries(
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

test('simulated time: the backup takes over at exactly master-down time while a hook hangs, and its hook records the takeover', async (t) => {
  const root = tempRoot(t);
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  let seed = 7n;
  const random = () => (seed = seed * 6364136223846793005n + 1442695040888963407n);
  const wire = net.endpoint('a');
  const master = await SimBackend.open({ clock, transport: wire, interfaces: ['em0'], node: 'a', random });
  t.after(() => master.close());
  await master.setCarpGlobals({ allow: true, preempt: false });
  let masterSince = 0;
  master.onStateChange((c) => {
    if (c.state === 'MASTER') masterSince = c.at.getTime();
  });
  const backupBackend = await SimBackend.open({ clock, transport: net.endpoint('b'), interfaces: ['em0'], node: 'b', random });
  const h = await makeHarness({ backend: backupBackend, clock });
  t.after(() => h.close());
  const events: AnyEvent[] = [];
  h.service.events.subscribe((e) => events.push(e));
  const runner = new HookRunner({ events: h.service.events, desired: () => h.service.desired(), logger: pino({ level: 'silent' }), node: 'b', killGraceMs: 200 });
  t.after(() => runner.close());

  const out = path.join(root, 'b.env');
  assert.equal((await h.api.post('/v1/hooks', { name: 'hang', events: [{ type: 'vhid.state' }], command: ['/bin/sleep', '60'], timeoutSec: 1 })).status, 201);
  assert.equal((await h.api.post('/v1/hooks', { name: 'record', events: [{ type: 'vhid.state', state: 'MASTER' }], command: ['/bin/sh', recorder(root)], env: { OUT: out } })).status, 201);

  await master.setVhid('em0', 1, { advbaseSec: 1, advskew: 0, key: 'secret' });
  await master.addAddress('em0', 1, '192.0.2.10/24');
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], advskew: 100, password: 'secret' })).status, 201);
  clock.advance(10_000);
  const state = async () => (await backupBackend.listVhids()).find((v) => v.vhid === 1)?.state;
  assert.equal((await master.listVhids())[0].state, 'MASTER');
  assert.equal(await state(), 'BACKUP');
  // The hook on the BACKUP event is hanging now.
  await pollUntil('the hanging run started', async () => runner.stats().hang?.running ?? false, (x) => x, 10_000);

  // The master advertises every second from when it became MASTER; the backup's master-down
  // timer runs from the last advertisement it heard.
  const lastHeard = masterSince + Math.floor((clock.now() - masterSince) / 1000) * 1000;
  wire.partitioned = true;
  const takeover = Math.ceil(lastHeard + masterDownMs(1, 100));
  clock.advance(takeover - 1 - clock.now());
  assert.equal(await state(), 'BACKUP');
  clock.advance(1);
  assert.equal(await state(), 'MASTER', 'taken over at master-down time exactly, the hanging hook notwithstanding');

  await pollUntil('the hook recorded the takeover', async () => existsSync(out), (x) => x, 15_000);
  const env = envOf(out);
  assert.equal(env.CARPD_EVENT, 'vhid.state');
  assert.equal(env.CARPD_STATE, 'MASTER');
  assert.equal(env.CARPD_PREVIOUS_STATE, 'BACKUP');
  assert.equal(env.CARPD_INTERFACE, 'em0');
  assert.equal(env.CARPD_VHID, '1');
  assert.match(env.CARPD_REASON, /master-down timer expired/);
  const timeouts = await pollUntil('the hanging runs were killed', async () => events.filter((e) => e.type === 'hook.failed' && e.data.hook === 'hang'), (x) => x.length >= 2, 15_000);
  assert.ok(timeouts.every((e) => /^timeout/.test((e.data as { reason: string }).reason)));
});

async function vhidState(d: RunningDaemon, token: string): Promise<{ state: string; reason: string } | undefined> {
  const r = await call(d.port, 'GET', '/v1/status', { token });
  assert.equal(r.status, 200, r.text);
  const v = (r.body.vhids as { interface: string; vhid: number; state: string; reason: string }[]).find((x) => x.interface === 'em0' && x.vhid === 1);
  return v && { state: v.state, reason: v.reason };
}

test('two carpd processes: the master is killed, the backup takes over and its hook writes the takeover to a file; a hanging hook is killed', async (t) => {
  const root = tempRoot(t);
  const script = recorder(root);
  const group = `239.255.0.113:${20000 + Math.floor(Math.random() * 40000)}`;
  const start = (name: string) => startDaemon(t, ['--listen', '127.0.0.1:0', '--state-dir', path.join(root, name), '--backend', 'sim', '--sim-group', group, '--node-name', name]);
  const [a, b] = await Promise.all([start('node-a'), start('node-b')]);
  const token = (name: string) => readFileSync(path.join(root, name, 'admin.token'), 'utf8').trim();
  const nodes = [
    { name: 'node-a', d: a, token: token('node-a') },
    { name: 'node-b', d: b, token: token('node-b') },
  ];
  for (const n of nodes) {
    const hooks = [
      { name: 'record', events: [{ type: 'vhid.state', state: 'MASTER' }], command: ['/bin/sh', script], env: { OUT: path.join(root, `${n.name}.env`) } },
      { name: 'hang', events: [{ type: 'vhid.state' }], command: ['/bin/sleep', '60'], timeoutSec: 1 },
    ];
    for (const body of hooks) {
      const r = await call(n.d.port, 'POST', '/v1/hooks', { token: n.token, body });
      assert.equal(r.status, 201, r.text);
    }
  }
  await Promise.all(
    nodes.map(async (n, i) => {
      const r = await call(n.d.port, 'POST', '/v1/vips', { token: n.token, body: { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], password: 'sim-secret', advskew: i === 0 ? 0 : 100 } });
      assert.equal(r.status, 201, r.text);
    }),
  );
  const both = () => Promise.all(nodes.map((n) => vhidState(n.d, n.token)));
  const elected = await pollUntil('election', both, (s) => s.map((x) => x?.state).sort().join() === 'BACKUP,MASTER');
  const m = elected.findIndex((x) => x?.state === 'MASTER');
  const master = nodes[m];
  const backup = nodes[1 - m];
  await pollUntil("the master's hook ran", async () => existsSync(path.join(root, `${master.name}.env`)), (x) => x);
  // (The backup may have been MASTER for a moment before the election settled: only a file
  // written for an event after the kill counts.)
  const killedAt = Date.now();
  master.d.kill('SIGKILL');
  await master.d.exited;
  const after = await pollUntil('takeover', () => vhidState(backup.d, backup.token), (s) => s?.state === 'MASTER');
  assert.match(after!.reason, /master-down timer expired/);
  const out = path.join(root, `${backup.name}.env`);
  const env = await pollUntil("the backup's hook recorded the takeover", async () => (existsSync(out) ? envOf(out) : undefined), (e) => e !== undefined && Date.parse(e.CARPD_EVENT_TIME) >= killedAt);
  assert.deepEqual([env!.CARPD_EVENT, env!.CARPD_STATE, env!.CARPD_INTERFACE, env!.CARPD_VHID, env!.CARPD_NODE], ['vhid.state', 'MASTER', 'em0', '1', backup.name]);
  assert.match(env!.CARPD_REASON, /master-down timer expired/);
  // The hanging hook's runs end in hook.failed (timeout), in the log.
  await backup.d.waitForEvent('hook.failed');
});
