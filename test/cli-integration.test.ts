/** carpctl against the real API (not a fake): the client and the server agree on the contract. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { run } from '../src/cli/run.js';
import { SyncManager } from '../src/sync/manager.js';
import { ADMIN_TOKEN, READ_TOKEN, makeHarness } from './helpers/harness.js';
import { pollUntil } from './helpers/poll.js';
import { startSyncNodeInProcess } from './helpers/sync-inprocess.js';

async function serve(t: { after: (fn: () => unknown) => void }) {
  const h = await makeHarness();
  const server = createServer(h.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await h.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const carpctl = async (args: string[], token = ADMIN_TOKEN) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: token } });
    return { code, stdout, stderr };
  };
  return { h, carpctl };
}

test('carpctl manages a VIP end to end against carpd', async (t) => {
  const { h, carpctl } = await serve(t);
  let r = await carpctl(['vip', 'add', 'em0', '--address', '192.0.2.10/24', '--address', '2001:db8::10/64', '--advskew', '100', '--password', 'hunter2']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes('hunter2') && !r.stderr.includes('hunter2'));
  h.clock.advance(4000);
  r = await carpctl(['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /em0\s+1\s+MASTER/);
  r = await carpctl(['--json', 'vip', 'show', 'em0', '1']);
  assert.equal(JSON.parse(r.stdout).advskew, 100);
  r = await carpctl(['vip', 'set', 'em0', '1', '--advskew', '50', '--if-match', String(h.service.desired().revision)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().vips[0].advskew, 50);
  r = await carpctl(['vip', 'set', 'em0', '1', '--advskew', '60', '--if-match', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CARPD_ERR_PRECONDITION_FAILED/);
  r = await carpctl(['vip', 'state', 'em0', '1', 'backup']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await h.backend.listVhids())[0].state, 'BACKUP');
  r = await carpctl(['vip', 'rm', 'em0', '1', '--dry-run']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().vips.length, 1);
  r = await carpctl(['vip', 'rm', 'em0', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().vips.length, 0);
});

test('carpctl maintenance, pfsync, history and rollback against carpd', async (t) => {
  const { h, carpctl } = await serve(t);
  assert.equal((await carpctl(['maintenance', 'on'])).code, 0);
  assert.equal((await h.backend.getCarpGlobals()).demotion, 240);
  let r = await carpctl(['pfsync', 'set', '--enabled', 'true', '--syncdev', 'em1', '--syncpeer', '198.51.100.2', '--maxupd', '64']);
  assert.equal(r.code, 0, r.stderr);
  const p = await h.backend.getPfsync();
  assert.deepEqual([p.syncdev, p.syncpeer, p.maxupd], ['em1', '198.51.100.2', 64]);
  r = await carpctl(['config', 'history']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /maintenance/);
  const before = h.service.desired().revision;
  r = await carpctl(['config', 'rollback', String(before - 2)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(h.service.desired().carp.maintenance, false);
  assert.equal(h.service.desired().pfsync.enabled, false);
  r = await carpctl(['maintenance', 'off'], READ_TOKEN);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CARPD_ERR_FORBIDDEN/);
  r = await carpctl(['vip', 'add', 'em0', '--address', 'not-an-address/24']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CARPD_ERR_INVALID_ADDRESS/);
});

/**
 * A node with config sync for carpctl: its own state dir, memory backend, API over HTTP and a
 * SyncManager whose listener is real mutual TLS on 127.0.0.1.
 */
async function syncNode(name: string) {
  const { h, sync, url, syncPort, stop } = await startSyncNodeInProcess(name, 'carpctl-sync');
  const carpctl = async (...args: string[]) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: ADMIN_TOKEN } });
    return { code, stdout, stderr };
  };
  return { h, sync, syncPort, carpctl, stop };
}

test('carpctl pairs two nodes and runs config sync end to end: identity, set, status, plan, run, --force, reattach, cluster', async (t) => {
  const a = await syncNode('node-a');
  const b = await syncNode('node-b');
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  // 1. Each node's identity: the fingerprint and the --peer to give the other one.
  const idA = await a.carpctl('sync', 'identity');
  const idB = await b.carpctl('sync', 'identity');
  assert.equal(idA.code, 0, idA.stderr);
  const fpA = /^fingerprint:\s+(\S+)$/m.exec(idA.stdout)![1];
  const fpB = /^fingerprint:\s+(\S+)$/m.exec(idB.stdout)![1];
  assert.equal(fpA, a.sync.status().identity.fingerprint);
  assert.match(idA.stdout, new RegExp(`carpctl sync set --peer 127\\.0\\.0\\.1:${a.syncPort} --fingerprint ${fpA}`));

  // 2. Each node pins the other (the secondary first, so the primary's first push is taken).
  let r = await b.carpctl('sync', 'set', '--role', 'secondary', '--peer', `127.0.0.1:${a.syncPort}`, '--fingerprint', fpA, '--local-address', '192.0.2.11/24');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^role:\s+secondary$/m);
  r = await a.carpctl('sync', 'set', '--role', 'primary', '--peer', `127.0.0.1:${b.syncPort}`, '--fingerprint', fpB.replace(/:/g, '').toLowerCase(), '--local-address', '192.0.2.10/24');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(a.h.service.desired().sync.peer?.fingerprint, fpB, 'any spelling of the fingerprint is stored canonically');

  // 3. A VIP on the primary reaches the secondary with its own skew.
  r = await a.carpctl('vip', 'add', 'em0', '1', '--address', '192.0.2.50/24');
  assert.equal(r.code, 0, r.stderr);
  const synced = () => pollUntil('secondary caught up', async () => b.h.service.desired().sync.appliedRevision, (x) => x === a.h.service.desired().revision);
  await synced();
  assert.equal(b.h.service.desired().vips[0].advskew, 100);
  const stA = await pollUntil('primary heard back', () => a.carpctl('sync', 'status'), (x) => /^lag:\s+none$/m.test(x.stdout));
  assert.match(stA.stdout, /^last error:\s+none$/m);
  assert.match(stA.stdout, new RegExp(`^revisions:\\s+local ${a.h.service.desired().revision}, peer ${a.h.service.desired().revision} `, 'm'));
  const stB = await b.carpctl('--json', 'sync', 'status');
  assert.equal(JSON.parse(stB.stdout).role, 'secondary');

  // 4. A new rule on the secondary: the plan shows it, the run applies it.
  assert.equal((await b.carpctl('sync', 'set', '--add', '50')).code, 0);
  r = await a.carpctl('sync', 'plan');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^a push of revision \d+, planned on the secondary at its revision \d+: nothing was applied or stored$/m);
  assert.match(r.stdout, /advskew.*100.*50/);
  assert.equal(b.h.service.desired().vips[0].advskew, 100, 'a plan applies nothing');
  r = await a.carpctl('sync', 'run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^pushed revision \d+ to the secondary: applied as revision \d+$/m);
  assert.equal(b.h.service.desired().vips[0].advskew, 50);
  r = await b.carpctl('sync', 'run');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CARPD_ERR_SYNC_ROLE/);

  // 5. The secondary's own edit is refused with the way out; --force detaches, --reattach undoes it.
  r = await b.carpctl('vip', 'set', 'em0', '1', '--advskew', '7');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error 409 CARPD_ERR_SYNC_MANAGED: VIP em0\/1 is managed by this node's sync primary/);
  assert.match(r.stderr, /hint: .*--force/);
  r = await b.carpctl('vip', 'set', 'em0', '1', '--advskew', '7', '--force');
  assert.equal(r.code, 0, r.stderr);
  r = await b.carpctl('sync', 'status');
  assert.match(r.stdout, /^detached:\s+em0\/1 \(/m);
  r = await b.carpctl('sync', 'set', '--reattach', 'em0/1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^detached:\s+none$/m);

  // 6. Both memory backends elect themselves: split brain, loudly.
  a.h.clock.advance(10_000);
  b.h.clock.advance(10_000);
  r = await a.carpctl('cluster');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^SPLIT BRAIN: em0 vhid 1 is MASTER on both nodes$/m);
  assert.match(r.stdout, /^NODE\s+node-a \(this node\)\s+node-b$/m);
  assert.match(r.stdout, /^role\s+primary\s+secondary$/m);
  assert.match(r.stdout, /^em0\s+1\s+MASTER\s+MASTER\s+<- MASTER ON BOTH$/m);

  // 7. The secondary gone: run fails with the reason, cluster shows the peer as not reached.
  await b.stop();
  r = await a.carpctl('sync', 'run');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error 502 CARPD_ERR_SYNC_PEER_UNREACHABLE: .*ECONNREFUSED/);
  r = await a.carpctl('cluster');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^peer not reached: .*ECONNREFUSED/m);
  assert.match(r.stdout, /^role\s+primary\s+\?$/m);
});
