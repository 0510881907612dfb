/**
 * Two sim nodes in this process on one in-memory segment and a manual clock, each a whole
 * carpd service: a tcp health track on the master pointing at a local TCP service. The service
 * stops: the master's track goes down after `fall` probes, it holds track:<name>, and the
 * backup takes the VIP over. The service starts again: after `rise` probes the demotion is
 * given back and (preempt on) the first node takes the VIP back. Probes are real connects; only
 * the runner's timers and CARP run on the manual clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer, type Server } from 'node:net';
import pino from 'pino';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { TrackRunner } from '../src/track/runner.js';
import { ManualClock, makeHarness, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';

async function listen(port = 0): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return s;
}

test('a tcp track on the master: its service stops, the master demotes by track:<name> and the backup takes over; it starts again, the demotion goes and the master preempts back', async (t) => {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  let seed = 7n;
  const nodes: Harness[] = [];
  for (const name of ['a', 'b']) {
    const backend = await SimBackend.open({ clock, transport: net.endpoint(name), interfaces: ['em0', 'em1'], node: name, random: () => (seed = seed * 6364136223846793005n + 1442695040888963407n) });
    const h = await makeHarness({ backend, clock });
    t.after(() => h.close());
    nodes.push(h);
  }
  const [a, b] = nodes as [Harness, Harness];
  for (const [h, advskew] of [[a, 0], [b, 100]] as const) {
    const r = await h.api.post('/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.10/24'], advskew, password: 'track-test' });
    assert.equal(r.status, 201, r.text);
  }
  const state = async (h: Harness) => (await h.service.liveVhid('em0', 1))?.state;
  clock.advance(4000);
  assert.equal(await state(a), 'MASTER');
  assert.equal(await state(b), 'BACKUP');

  let server = await listen();
  const port = (server.address() as { port: number }).port;
  t.after(() => server.close());
  assert.equal((await a.api.post('/v1/tracks', { name: 'svc', kind: 'tcp', target: '127.0.0.1', port, intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2, weight: 240 })).status, 201);
  const runner = new TrackRunner({ service: a.service, clock, logger: pino({ level: 'silent' }) });
  t.after(() => runner.close());
  await runner.start();

  // One interval of simulated time, then the real probe it started has to end.
  const probes = () => a.service.tracks.get('svc')?.status.probes ?? 0;
  // Time moves from timer to timer; a real probe under way is waited for before time moves on,
  // so that its own timeout on the manual clock does not fire while the connect is in flight.
  const run = async (ms: number) => {
    const end = clock.now() + ms;
    do {
      clock.advance(Math.max(0, Math.min(clock.nextDueInMs() ?? ms, end - clock.now())));
      await pollUntil('the probe to end', async () => runner.probing, (n) => n === 0, 10_000);
    } while (clock.now() < end);
    await runner.settled();
  };
  const interval = () => run(1000);
  await run(0);
  assert.equal(probes(), 1);
  await interval();
  assert.equal(a.service.tracks.get('svc')!.status.state, 'up');
  assert.equal(a.service.tracksDown().length, 0);

  await new Promise<void>((r) => server.close(() => r()));
  await interval();
  assert.equal(a.service.tracks.get('svc')!.status.state, 'up', 'one failure is not fall 2');
  await interval();
  assert.equal(a.service.tracks.get('svc')!.status.state, 'down');
  assert.match(a.service.tracks.get('svc')!.status.last!.detail, /ECONNREFUSED/);
  assert.deepEqual(a.service.tracksDown(), ['svc']);
  assert.deepEqual(await a.service.demotions(), new Map([['track:svc', 240]]));
  // The backup (preempt is on by default) takes over at its next advertisement.
  await run(3000);
  assert.equal(await state(b), 'MASTER');
  assert.equal(await state(a), 'BACKUP');

  server = await listen(port);
  await interval();
  assert.equal(a.service.tracks.get('svc')!.status.successes, 1, JSON.stringify(a.service.tracks.get('svc')));
  assert.equal(a.service.tracks.get('svc')!.status.state, 'down', 'one success is not rise 2');
  await interval();
  assert.equal(a.service.tracks.get('svc')!.status.state, 'up');
  assert.deepEqual(await a.service.demotions(), new Map());
  await run(3000);
  assert.equal(await state(a), 'MASTER');
  assert.equal(await state(b), 'BACKUP');
});
