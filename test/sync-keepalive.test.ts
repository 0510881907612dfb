/**
 * The primary's kept connection to its secondary, end to end: two nodes in this process, each
 * with its own state dir, memory backend, service, API and SyncManager, the sync link real
 * mutual TLS on 127.0.0.1 (as in sync-cluster.test.ts). The primary's requests are counted by
 * wrapping SyncClient.request (pushes in flight, the connections its clients opened); the
 * secondary's listener logs at debug what it accepted and took. Outcomes are waited for with a
 * bound, never timed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../src/daemon/logger.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { SyncClient } from '../src/sync/transport.js';
import { ManualClock, makeHarness, type Harness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';

interface LogLine {
  level: number;
  event?: string;
  type?: string;
  inProgress?: number;
  peer?: { address: string; fingerprint: string | null };
}

interface SyncNode {
  name: string;
  dir: string;
  h: Harness;
  identity: SyncIdentity;
  sync: SyncManager;
  port: number;
  logs: LogLine[];
}

/** `syncClock`: the sync manager's timers and message times (default the system clock). */
async function startNode(name: string, dir: string, port = 0, syncClock?: ManualClock): Promise<SyncNode> {
  const clock = new ManualClock();
  const h = await makeHarness({ dir, clock, backend: new MemoryBackend({ clock, interfaces: ['em0', 'em1'] }) });
  const identity = await loadOrCreateIdentity(dir, name);
  const logs: LogLine[] = [];
  const logger = createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as LogLine) });
  const sync = await SyncManager.start({ service: h.service, identity, logger, node: name, listen: { host: '127.0.0.1', port }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000, clock: syncClock, ...(syncClock ? { splitBrainIntervalMs: 0 } : {}) });
  h.attachSync(sync);
  return { name, dir, h, identity, sync, port: sync.port!, logs };
}

async function stopNode(n: SyncNode): Promise<void> {
  await n.sync.close();
  await n.h.close();
}

/** A primary and a secondary pinned to each other; `nodes.b` is replaced when the secondary restarts. */
async function pair(t: test.TestContext, syncClock?: ManualClock) {
  const dirs = [mkdtempSync(path.join(tmpdir(), 'carpd-keepalive-a-')), mkdtempSync(path.join(tmpdir(), 'carpd-keepalive-b-'))];
  t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const nodes = { a: await startNode('node-a', dirs[0], 0, syncClock), b: await startNode('node-b', dirs[1], 0, syncClock) };
  const stopped = new Set<SyncNode>();
  const stop = async (n: SyncNode) => {
    if (stopped.has(n)) return;
    stopped.add(n);
    await stopNode(n);
  };
  t.after(async () => {
    await stop(nodes.a);
    await stop(nodes.b);
  });
  const link = async (self: SyncNode, other: SyncNode, role: 'primary' | 'secondary', local: string) => {
    const r = await self.h.api.patch('/v1/sync', { role, peer: { address: '127.0.0.1', port: other.port, fingerprint: other.identity.fingerprint }, localAddresses: [local] });
    assert.equal(r.status, 200, r.text);
  };
  await link(nodes.b, nodes.a, 'secondary', '192.0.2.11/24');
  await link(nodes.a, nodes.b, 'primary', '192.0.2.10/24');
  await synced(nodes.a, nodes.b);
  return { nodes, dirs, stop };
}

const synced = (a: SyncNode, b: SyncNode) => pollUntil('the secondary to catch up', async () => b.h.service.desired().sync.appliedRevision, (r) => r === a.h.service.desired().revision);

/**
 * The requests the primary's clients make to the secondary's port: pushes in flight at once,
 * and the TLS connections those clients opened (counted since each client was made).
 */
function watch(t: test.TestContext, port: number) {
  const clients = new Set<SyncClient>();
  const seen = { pushes: 0, inFlight: 0, maxInFlight: 0, connections: () => [...clients].reduce((n, c) => n + c.connectionsOpened, 0), clients };
  const request = SyncClient.prototype.request;
  t.mock.method(SyncClient.prototype, 'request', async function (this: SyncClient, type: string, body: unknown) {
    if (this.address !== `127.0.0.1:${port}`) return request.call(this, type, body);
    clients.add(this);
    if (type !== 'push') return request.call(this, type, body);
    seen.pushes++;
    seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
    try {
      return await request.call(this, type, body);
    } finally {
      seen.inFlight--;
    }
  });
  return seen;
}

const change = (n: SyncNode, i: number) => n.h.api.post('/v1/vips', { interface: 'em0', vhid: i, addresses: [`192.0.2.${100 + i}/24`] });
const fromPrimary = (b: SyncNode, a: SyncNode, event: string) => b.logs.filter((l) => l.event === event && l.peer?.fingerprint === a.identity.fingerprint);


/** Makes `node` take every push and never answer it: its applies wait forever. Answers how many it has taken. */
function holdSyncApplies(node: { h: Harness }): () => number {
  const service = node.h.service;
  const mutate = service.mutate.bind(service);
  let held = 0;
  service.mutate = ((opts, summary, fn) => {
    if (opts.origin !== 'sync') return mutate(opts, summary, fn);
    held++;
    return new Promise(() => undefined);
  }) as typeof service.mutate;
  return () => held;
}

test('keep-alive: pushes, plans and cluster reads go over one kept connection', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  const seen = watch(t, b.port);
  for (let i = 1; i <= 10; i++) {
    assert.equal((await change(a, i)).status, 201);
    await synced(a, b);
  }
  assert.equal((await a.h.api.get('/v1/sync/plan')).status, 200);
  const cluster = await a.h.api.get('/v1/cluster');
  assert.equal(cluster.status, 200, cluster.text);
  assert.equal(cluster.body.nodes[1].reachable, true);

  assert.equal(seen.clients.size, 1);
  assert.equal(seen.connections(), 1, 'the connection of the first push, kept since');
  assert.equal(fromPrimary(b, a, 'sync.connection').length, 1, 'the secondary accepted one connection from the primary');
  assert.ok(fromPrimary(b, a, 'sync.received').length >= 12);
  assert.equal(seen.maxInFlight, 1);
});

test('keep-alive: the secondary restarting between pushes; the next push goes through on a new connection, no failure', async (t) => {
  const { nodes, dirs, stop } = await pair(t);
  const { a } = nodes;
  const seen = watch(t, nodes.b.port);
  assert.equal((await change(a, 1)).status, 201);
  await synced(a, nodes.b);
  const port = nodes.b.port;
  await stop(nodes.b);
  nodes.b = await startNode('node-b', dirs[1], port);

  assert.equal((await change(a, 2)).status, 201);
  await synced(a, nodes.b);
  assert.deepEqual(
    nodes.b.h.service.desired().vips.map((v) => v.vhid),
    [1, 2],
  );
  assert.equal(seen.connections(), 2);
  assert.equal(a.logs.filter((l) => l.event === 'sync.push.failed').length, 0, 'the reconnect was not a failed push');
  assert.equal(a.sync.status().lastError, null);
});

test('keep-alive: a changed fingerprint drops the kept connection; the peer, no longer pinned, gets no message; pinned again, it does', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  assert.equal((await change(a, 1)).status, 201);
  await synced(a, b);
  assert.equal(fromPrimary(b, a, 'sync.connection.closed').length, 0);

  const otherDir = mkdtempSync(path.join(tmpdir(), 'carpd-keepalive-x-'));
  t.after(() => rmSync(otherDir, { recursive: true, force: true }));
  const other = await loadOrCreateIdentity(otherDir, 'node-x');
  const wrongPin = { address: '127.0.0.1', port: b.port, fingerprint: other.fingerprint };
  assert.equal((await a.h.api.patch('/v1/sync', { peer: wrongPin })).status, 200);
  // The kept connection is closed at the commit, by the primary, with nothing sent on it since.
  await pollUntil('the kept connection to close', async () => fromPrimary(b, a, 'sync.connection.closed').length, (n) => n === 1);
  // Counted once it is closed: until then the split-brain watch's periodic query may use it.
  const received = fromPrimary(b, a, 'sync.received').length;
  // The push of that commit opens a new connection (only a new one is checked against the pin;
  // on the kept one it would have gone through), which fails the pin before anything is sent.
  const st = await pollUntil('the push to fail on the pin', async () => a.sync.status(), (s) => s.lastError !== null);
  assert.match(st.lastError!, /presented certificate .* not the pinned/);
  assert.equal(fromPrimary(b, a, 'sync.received').length, received, 'not one message reached the secondary');

  assert.equal((await a.h.api.patch('/v1/sync', { peer: { ...wrongPin, fingerprint: b.identity.fingerprint } })).status, 200);
  await synced(a, b);
  assert.equal(fromPrimary(b, a, 'sync.received').length > received, true);
});

test('keep-alive: a push in flight when the connection dies is retried; the secondary, back, converges', async (t) => {
  const { nodes, dirs, stop } = await pair(t);
  const { a } = nodes;
  const seen = watch(t, nodes.b.port);
  assert.equal((await change(a, 1)).status, 201);
  await synced(a, nodes.b);

  // The secondary takes the next push and never answers it: its apply waits on a gate that is
  // never opened, and the node stops under it.
  const b = nodes.b;
  const held = holdSyncApplies(b);
  assert.equal((await change(a, 2)).status, 201);
  await pollUntil('the push to be in flight', async () => held(), (n) => n === 1);
  const port = b.port;
  await stop(b);
  await pollUntil('the push to fail', async () => a.sync.status().lastError, (e) => e !== null);

  nodes.b = await startNode('node-b', dirs[1], port);
  await synced(a, nodes.b);
  assert.deepEqual(
    nodes.b.h.service.desired().vips.map((v) => v.vhid),
    [1, 2],
  );
  assert.equal((await pollUntil('the primary to hear it', async () => a.sync.status(), (s) => s.lastError === null)).pending, false);
  assert.equal(seen.maxInFlight, 1);
});

test('keep-alive: the peer changed while a push to the old one is in flight: the push goes to the new peer at once, without backoff', async (t) => {
  // One manual clock for the sync managers of all three nodes, never moved: a retry timer would
  // never fire, so the new peer converges only if the push goes to it straight away.
  const clock = new ManualClock();
  const { nodes } = await pair(t, clock);
  const { a, b } = nodes;
  assert.equal((await change(a, 1)).status, 201);
  await synced(a, b);
  const held = holdSyncApplies(b);
  assert.equal((await change(a, 2)).status, 201);
  await pollUntil('the push to be in flight', async () => held(), (n) => n === 1);

  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-keepalive-c-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const c = await startNode('node-c', dir, 0, clock);
  t.after(() => stopNode(c));
  const r = await c.h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: a.port, fingerprint: a.identity.fingerprint }, localAddresses: ['192.0.2.12/24'] });
  assert.equal(r.status, 200, r.text);
  assert.equal((await a.h.api.patch('/v1/sync', { peer: { address: '127.0.0.1', port: c.port, fingerprint: c.identity.fingerprint } })).status, 200);
  await synced(a, c);
  assert.deepEqual(
    c.h.service.desired().vips.map((v) => v.vhid),
    [1, 2],
  );
  assert.equal(a.sync.status().lastError, null);
  assert.equal(a.logs.filter((l) => l.event === 'sync.push.failed').length, 0, 'the aborted push is not a failure of the new peer');
  assert.equal(clock.pending, 0, 'no retry armed');
});

test('keep-alive: a burst of 200 changes from 8 clients converges with at most one push in flight, over one connection', async (t) => {
  const { nodes } = await pair(t);
  const { a, b } = nodes;
  const seen = watch(t, b.port);
  let pairs = 100;
  const client = async (slot: number) => {
    const vhid = slot + 1;
    while (pairs > 0) {
      pairs--;
      const add = await a.h.api.post('/v1/vips', { interface: 'em1', vhid, addresses: [`198.51.100.${vhid}/24`] });
      assert.equal(add.status, 201, add.text);
      assert.equal((await a.h.api.delete(`/v1/vips/em1/${vhid}`)).status, 204);
    }
  };
  const from = a.h.service.desired().revision;
  const fromLog = b.logs.length;
  await Promise.all(Array.from({ length: 8 }, (_, i) => client(i)));
  assert.equal(a.h.service.desired().revision, from + 200);
  await synced(a, b);
  // Every client removed what it added: the secondary has the primary's final state, no VIP.
  assert.deepEqual(a.h.service.desired().vips, []);
  assert.deepEqual(b.h.service.desired().vips, []);

  assert.equal(seen.maxInFlight, 1, 'the primary never had two pushes in flight');
  assert.ok(seen.pushes >= 1 && seen.pushes <= 200, `${seen.pushes} pushes`);
  const taken = b.logs.slice(fromLog).filter((l) => l.event === 'sync.received' && l.type === 'push');
  assert.equal(taken.length, seen.pushes);
  assert.equal(Math.max(...taken.map((l) => l.inProgress!)), 1, 'nor did the secondary take two at once');
  assert.equal(seen.connections(), 1);
});
