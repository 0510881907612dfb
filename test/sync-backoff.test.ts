/**
 * The primary's push loop on a manual clock (SyncManager's `clock`): two nodes in this process,
 * the sync link real mutual TLS on 127.0.0.1, every timer of the loop (retries, request
 * timeouts) and the time sealed into and checked on every message on one manual clock that
 * both nodes share. Nothing waits on real time for a timer: the test moves the clock once a
 * failed attempt has armed the next one, and sees exactly when the next attempt starts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../src/daemon/logger.js';
import { loadOrCreateIdentity, type SyncIdentity } from '../src/sync/identity.js';
import { SyncManager } from '../src/sync/manager.js';
import { makeHarness, type Harness } from './helpers/harness.js';
import { ManualClock } from './helpers/manual-clock.js';
import { pollUntil } from './helpers/poll.js';

interface Node {
  h: Harness;
  identity: SyncIdentity;
  sync: SyncManager;
  logs: { event?: string; level: number }[];
  stopped?: boolean;
}

async function startNode(name: string, dir: string, clock: ManualClock, listen?: { port: number }): Promise<Node> {
  const h = await makeHarness({ dir });
  const identity = await loadOrCreateIdentity(dir, name);
  const logs: Node['logs'] = [];
  const logger = createLogger('debug', { write: (s: string) => void logs.push(JSON.parse(s) as Node['logs'][number]) });
  // No split-brain watch: its timer would share the clock with the retries this test counts.
  const sync = await SyncManager.start({ service: h.service, identity, logger, node: name, clock, splitBrainIntervalMs: 0, ...(listen ? { listen: { host: '127.0.0.1', port: listen.port } } : {}) });
  h.attachSync(sync);
  return { h, identity, sync, logs };
}

async function stopNode(n: Node): Promise<void> {
  if (n.stopped) return;
  n.stopped = true;
  await n.sync.close();
  await n.h.close();
}

test('a failing push is retried after 1, 2, 4, 8, 16, 30, 30 s; the secondary, back, gets the newest snapshot in one push; success starts the backoff over', async (t) => {
  const dirs = ['a', 'b'].map((n) => mkdtempSync(path.join(tmpdir(), `carpd-sync-backoff-${n}-`)));
  t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const clock = new ManualClock();

  // The primary needs no listener. The secondary is started once to learn its port and to pin
  // the primary, then stopped: the primary's first push finds nobody there.
  const a = await startNode('fw-a', dirs[0], clock);
  let b = await startNode('fw-b', dirs[1], clock, { port: 0 });
  const nodes = { b };
  t.after(async () => {
    await stopNode(a);
    await stopNode(nodes.b);
  });
  const bPort = b.sync.port!;
  let r = await b.h.api.patch('/v1/sync', { role: 'secondary', peer: { address: '127.0.0.1', port: 9, fingerprint: a.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  await stopNode(b);

  const failures = () => a.logs.filter((l) => l.event === 'sync.push.failed').length;
  const lastAttempt = () => a.sync.status().lastAttempt;
  /** Resolves once attempt n has failed and armed the next: then the retry is the clock's only timer. */
  const failed = (n: number) => pollUntil(`attempt ${n} to fail`, async () => ({ failures: failures(), pending: clock.pending }), (s) => s.failures === n && s.pending === 1);

  r = await a.h.api.patch('/v1/sync', { role: 'primary', peer: { address: '127.0.0.1', port: bPort, fingerprint: b.identity.fingerprint } });
  assert.equal(r.status, 200, r.text);
  const delays: number[] = [];
  for (let n = 1; n <= 7; n++) {
    await failed(n);
    const due = clock.nextDueInMs()!;
    delays.push(due);
    // A retry starts inside the timer that advance() fires, so its attempt is recorded by the
    // time advance() returns: 1 ms early nothing has started, on time it has.
    const before = lastAttempt();
    clock.advance(due - 1);
    assert.equal(lastAttempt(), before, `no attempt 1 ms before retry ${n} is due`);
    clock.advance(1);
    assert.equal(lastAttempt(), new Date(clock.now()).toISOString(), `retry ${n} starts when due`);
  }
  await failed(8);
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);

  // Changes while the peer is away only wait for the retry already due.
  for (let vhid = 1; vhid <= 3; vhid++) {
    assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid, addresses: [`192.0.2.${50 + vhid}/24`] })).status, 201);
  }
  const newest = a.h.service.desired().revision;
  const down = a.sync.status();
  assert.equal(down.pending, true);
  assert.equal(down.peerRevision, null);

  // The secondary comes back; the retry due pushes the newest revision, which is the whole catch-up.
  b = nodes.b = await startNode('fw-b', dirs[1], clock, { port: bPort });
  clock.advance(clock.nextDueInMs()!);
  await pollUntil('the secondary to apply the newest revision', async () => b.h.service.desired().sync.appliedRevision, (rev) => rev === newest);
  const st = await pollUntil('the primary to hear it', async () => a.sync.status(), (s) => s.peerRevision === newest);
  assert.equal(st.lastError, null);
  assert.equal(st.pending, false);
  assert.deepEqual(
    b.h.service.desired().vips.map((v) => v.vhid),
    [1, 2, 3],
  );
  const applied = b.h.service.revisions().filter((m) => /^sync: primary's revision/.test(m.summary)).map((m) => m.summary);
  assert.deepEqual(applied, [`sync: primary's revision ${newest}`], 'one push, of the newest revision');
  assert.equal(clock.pending, 0, 'nothing left to retry');

  // After a success the backoff starts over at 1 s.
  await stopNode(b);
  assert.equal((await a.h.api.post('/v1/vips', { interface: 'em0', vhid: 4, addresses: ['192.0.2.54/24'] })).status, 201);
  await failed(9);
  assert.equal(clock.nextDueInMs(), 1000);
  nodes.b = await startNode('fw-b', dirs[1], clock, { port: bPort });
});
