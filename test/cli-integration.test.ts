/** carpctl against the real API (not a fake): the client and the server agree on the contract. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { run } from '../src/cli/run.js';
import { ADMIN_TOKEN, READ_TOKEN, makeHarness } from './helpers/harness.js';

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
