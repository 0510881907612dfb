/**
 * Health tracks across network namespaces: two carpd processes with `--backend linux`, each
 * with a ping track to a "gateway" (the LAN's third namespace, 192.0.2.100). nftables in the
 * master's namespace drops its echo requests to the gateway: its track goes down, it holds
 * track:gw (GET /v1/carp names it) and the VIP moves to the backup, as the kernels' addresses
 * show. The rule removed: the track comes up, the demotion goes, and with preemption on the
 * VIP moves back. Only outcomes are asserted, polled with generous deadlines.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holdsAddress, setUpLan, startLinuxNode, type LinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable();
const VIP = '192.0.2.51';
const GATEWAY = '192.0.2.100';
const TABLE = 'carpd_track_test';

async function vipHolders(lan: Lan): Promise<number[]> {
  const held: number[] = [];
  for (let i = 0; i < lan.nodes.length; i++) if (await holdsAddress(lan, i, VIP)) held.push(i);
  return held;
}

const trackState = async (n: LinuxNode) => (await n.api('GET', '/v1/tracks/gw')).body.status?.state as string | undefined;
const contributors = async (n: LinuxNode) => (await n.api('GET', '/v1/carp')).body.contributors as { name: string; value: number }[];

test('a ping track in each node: the gateway unreachable from the master moves the VIP to the backup; reachable again, it comes back (preempt)', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-tracks-');
  const nodes = await Promise.all([0, 1].map((i) => startLinuxNode(t, lan, root, i, { name: `node${i + 1}` })));
  for (const n of nodes) {
    assert.equal((await n.api('PATCH', '/v1/carp', { preempt: true })).status, 200);
    await n.addVip({ interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], password: 'track-secret', advskew: n.i === 0 ? 0 : 100 });
    const r = await n.api('POST', '/v1/tracks', { name: 'gw', kind: 'ping', target: GATEWAY, intervalMs: 200, timeoutMs: 150, rise: 2, fall: 3, weight: 240 });
    assert.equal(r.status, 201, r.text);
  }
  await pollUntil('election', () => Promise.all(nodes.map((n) => n.state(1))), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  await pollUntil('both tracks up', () => Promise.all(nodes.map(trackState)), (s) => s[0] === 'up' && s[1] === 'up');
  assert.deepEqual(await vipHolders(lan), [0]);

  // The gateway's echo replies to the master are dropped on their way in: the probes time out.
  const ns = lan.nodes[0].ns;
  const nft = async (script: string) => {
    const r = await lan.exec(ns, ['nft', '-f', '-'], { input: script });
    assert.equal(r.code, 0, r.stderr);
  };
  await nft(`table inet ${TABLE} {\n chain in {\n  type filter hook input priority 0;\n  ip saddr ${GATEWAY} icmp type echo-reply drop\n }\n}\n`);
  t.after(() => lan.exec(ns, ['nft', 'delete', 'table', 'inet', TABLE]));
  await pollUntil('the master\'s track down', () => trackState(nodes[0]), (s) => s === 'down');
  const view = (await nodes[0].api('GET', '/v1/tracks/gw')).body;
  assert.equal(view.status.demotion, 240);
  assert.match(view.status.lastProbe.detail, /^no echo reply from 192\.0\.2\.100 within 150 ms$/);
  assert.ok((await contributors(nodes[0])).some((c) => c.name === 'track:gw' && c.value === 240));
  await pollUntil('takeover by the backup', () => Promise.all(nodes.map((n) => n.state(1))), (s) => s[0] === 'BACKUP' && s[1] === 'MASTER');
  assert.deepEqual(await pollUntil('VIP on the backup only', () => vipHolders(lan), (h) => h.length === 1 && h[0] === 1), [1]);
  assert.equal(await trackState(nodes[1]), 'up', 'the backup still reaches the gateway');

  // Reachable again: up after rise probes, the demotion given back, the VIP back (preempt).
  const r = await lan.exec(ns, ['nft', 'delete', 'table', 'inet', TABLE]);
  assert.equal(r.code, 0, r.stderr);
  await pollUntil('the master\'s track up', () => trackState(nodes[0]), (s) => s === 'up');
  await pollUntil('the demotion given back', () => contributors(nodes[0]), (c) => !c.some((x) => x.name.startsWith('track:')));
  await pollUntil('preemption back', () => Promise.all(nodes.map((n) => n.state(1))), (s) => s[0] === 'MASTER' && s[1] === 'BACKUP');
  assert.deepEqual(await pollUntil('VIP back on the first node only', () => vipHolders(lan), (h) => h.length === 1 && h[0] === 0), [0]);
});
