/**
 * Events from two real carpd processes on a sim group of their own: a client of the backup's
 * event stream sees the takeover (BACKUP -> MASTER, with its reason) when the master is
 * SIGKILLed, the same event is in the backup's log, its /metrics agrees with its /v1/status and
 * /v1/stats, and a client that reconnects with Last-Event-ID gets every event it missed, no
 * more, no fewer. Only outcomes are asserted.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { pollUntil } from './helpers/poll.js';
import { SseClient } from './helpers/sse.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';
import { freeUdpPort } from './helpers/sync-node.js';

async function node(t: test.TestContext, root: string, name: string, group: string): Promise<{ d: RunningDaemon; token: string }> {
  const stateDir = path.join(root, name);
  const d = await startDaemon(t, ['--listen', '127.0.0.1:0', '--state-dir', stateDir, '--node-name', name, '--backend', 'sim', '--sim-group', group]);
  return { d, token: readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim() };
}

async function stateOf(n: { d: RunningDaemon; token: string }, vhid: number): Promise<string | undefined> {
  const r = await call(n.d.port, 'GET', '/v1/status', { token: n.token });
  return (r.body.vhids as { interface: string; vhid: number; state: string }[]).find((v) => v.interface === 'em0' && v.vhid === vhid)?.state;
}

test('sim processes: the backup streams its takeover when the master is SIGKILLed; a reconnect with Last-Event-ID misses nothing', { timeout: 90_000 }, async (t) => {
  const group = `239.255.0.113:${await freeUdpPort()}`;
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-events-proc-'));
  const clients: SseClient[] = [];
  t.after(() => {
    clients.forEach((c) => c.close());
    rmSync(root, { recursive: true, force: true });
  });
  const a = await node(t, root, 'node-a', group);
  const b = await node(t, root, 'node-b', group);
  const vip = (vhid: number, advskew: number) => ({ interface: 'em0', vhid, addresses: [`192.0.2.${vhid + 20}/24`], advskew, password: 'events-pw' });
  assert.equal((await call(a.d.port, 'POST', '/v1/vips', { token: a.token, body: vip(1, 0) })).status, 201);
  await pollUntil('node-a MASTER', () => stateOf(a, 1), (s) => s === 'MASTER');
  assert.equal((await call(b.d.port, 'POST', '/v1/vips', { token: b.token, body: vip(1, 100) })).status, 201);
  await pollUntil('node-b BACKUP', () => stateOf(b, 1), (s) => s === 'BACKUP');

  const first = await SseClient.open({ port: b.d.port, token: b.token, query: '?types=vhid.state,config.committed' });
  clients.push(first);
  assert.equal(first.status, 200);
  a.d.kill('SIGKILL');
  const takeover = await first.waitFor((e) => e.type === 'vhid.state' && e.data.vhid === 1 && e.data.to === 'MASTER', 'the takeover');
  assert.equal(takeover.data.from, 'BACKUP');
  assert.equal(takeover.data.interface, 'em0');
  assert.match(takeover.data.reason, /master-down timer expired/);
  assert.equal(takeover.data.effectiveSkew, 100);
  const logged = await b.d.waitForEvent('vhid.state', (l) => l.eventId === takeover.id);
  assert.equal(logged.to, 'MASTER');
  assert.equal(logged.level, 40, 'a takeover is logged at warn');

  // The backup's /metrics, parsed, says what its /v1/status and /v1/stats say: the takeover, the
  // revision, the demotion, and packet counters between two reads of /v1/stats around the scrape.
  const statsBefore = (await call(b.d.port, 'GET', '/v1/stats', { token: b.token })).body;
  const scrape = await call(b.d.port, 'GET', '/metrics', { token: b.token });
  const statsAfter = (await call(b.d.port, 'GET', '/v1/stats', { token: b.token })).body;
  const status = (await call(b.d.port, 'GET', '/v1/status', { token: b.token })).body;
  assert.equal(scrape.status, 200);
  const m = parsePrometheusText(scrape.text);
  for (const v of status.vhids as { interface: string; vhid: number; state: string }[]) {
    for (const state of ['INIT', 'BACKUP', 'MASTER']) {
      assert.equal(sampleValue(m, 'carpd_vhid_state', { interface: v.interface, vhid: String(v.vhid), state }), v.state === state ? 1 : 0, `${v.interface}/${v.vhid} ${state}`);
    }
  }
  const takeovers = (await call(b.d.port, 'GET', '/v1/events/recent?types=vhid.state&limit=1000', { token: b.token })).body.events.filter((e: { data: { vhid: number; to: string } }) => e.data.vhid === 1 && e.data.to === 'MASTER').length;
  assert.ok(takeovers >= 1);
  assert.equal(sampleValue(m, 'carpd_vhid_transitions_total', { interface: 'em0', vhid: '1', state: 'MASTER' }), takeovers, 'transitions to MASTER, as the events count them');
  assert.equal(sampleValue(m, 'carpd_config_revision'), status.revision);
  assert.equal(sampleValue(m, 'carpd_demotion'), status.carp.demotion);
  for (const [metric, counter] of [
    ['carpd_carp_received_packets_total', 'ipackets'],
    ['carpd_carp_sent_packets_total', 'opackets'],
  ] as const) {
    const value = sampleValue(m, metric, { family: 'inet' })!;
    assert.ok(statsBefore.carp[counter] <= value && value <= statsAfter.carp[counter], `${metric} ${value} within ${statsBefore.carp[counter]}..${statsAfter.carp[counter]}`);
  }
  assert.ok(statsAfter.carp.opackets > 0, 'the new master advertises');

  // Disconnected while more happens: a new VIP is committed and comes up.
  first.close();
  assert.equal((await call(b.d.port, 'POST', '/v1/vips', { token: b.token, body: vip(2, 0) })).status, 201);
  await pollUntil('vhid 2 MASTER on node-b', () => stateOf(b, 2), (s) => s === 'MASTER');
  const again = await SseClient.open({ port: b.d.port, token: b.token, lastEventId: takeover.id, query: '?types=vhid.state,config.committed' });
  clients.push(again);
  await again.waitFor((e) => e.type === 'vhid.state' && e.data.vhid === 2 && e.data.to === 'MASTER', 'vhid 2 MASTER after the reconnect');
  const page = await call(b.d.port, 'GET', `/v1/events/recent?after=${takeover.id}&types=vhid.state,config.committed`, { token: b.token });
  assert.equal(page.status, 200);
  const kept = (page.body.events as { id: number }[]).map((e) => e.id);
  assert.deepEqual(
    again.events.map((e) => e.id),
    kept,
    'exactly the events after the last one seen',
  );
  assert.deepEqual(
    again.events.map((e) => `${e.type}:${e.data.vhid ?? ''}:${e.data.to ?? ''}`),
    ['vhid.state:2:BACKUP', 'config.committed::', 'vhid.state:2:MASTER'],
  );
  assert.deepEqual([...first.problems, ...again.problems], []);
});
