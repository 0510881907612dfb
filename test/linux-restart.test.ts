/**
 * A restart never takes the VIP from a healthy master (preemption off). Two carpd processes with
 * `--backend linux` on a veth LAN in network namespaces; node2 (the lower priority / the larger
 * skew) is MASTER and advertises all along; node1 (the higher priority) is killed with SIGKILL
 * and started again ten times. Each time node1 must come back as BACKUP: it starts its engines
 * only when its raw sockets are open and the start-up work is done, and a master-down timer that
 * fires after a start-up stall reads the advertisements queued on the socket before it acts.
 *
 * Three configurations, each on its own LAN and run side by side: VRRPv3 at 1 cs and at 10 cs,
 * and CARP at advbase 1. Before each negative assertion the restarted node must have received
 * more advertisements than its master-down interval holds (its /v1/stats carpstats), so it has
 * had every chance to take over wrongly; nothing waits a fixed time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setUpLan, startLinuxNode, type LinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable();
const VIP = '192.0.2.50';
const RESTARTS = 10;

interface Config {
  name: string;
  /** The VIP's fields for node1 (better) or node2. */
  vip: (better: boolean) => Record<string, unknown>;
  /** Advertisements the restarted node must have received: more than its master-down interval's worth. */
  enough: number;
}

const CONFIGS: Config[] = [
  // Master_Down_Interval = 3 × interval + Skew_Time < 4 intervals: 6 advertisements span 5.
  { name: 'VRRPv3 at 1 cs', vip: (better) => ({ protocol: 'vrrpv3', vrrpPriority: better ? 200 : 100, vrrpInterval: 1 }), enough: 6 },
  { name: 'VRRPv3 at 10 cs', vip: (better) => ({ protocol: 'vrrpv3', vrrpPriority: better ? 200 : 100, vrrpInterval: 10 }), enough: 6 },
  // carp(4): master-down = 3 × advbase + advskew/256 = 3 s for node1 (skew 0): 5 advertisements span 4 s.
  { name: 'CARP at advbase 1', vip: (better) => ({ password: 'ns-secret', advbase: 1, advskew: better ? 0 : 100 }), enough: 5 },
];

const masterLines = (n: LinuxNode) => n.d.logs.filter((l) => /-> MASTER/.test(String(l.msg))).length;
const stateLines = (n: LinuxNode) => n.d.logs.filter((l) => /vhid 1: \w+ -> \w+/.test(String(l.msg))).length;
const received = async (n: LinuxNode) => {
  const c = await n.carp();
  return (c.ipackets ?? 0) + (c.ipackets6 ?? 0);
};

async function run(t: test.TestContext, cfg: Config): Promise<void> {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-restart-');
  const start = (i: number) => startLinuxNode(t, lan as Lan, root, i, { name: `node${i + 1}` });
  const vip = (better: boolean) => ({ interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], ...cfg.vip(better) });

  // node2 first: alone on the LAN, it becomes MASTER.
  const survivor = await start(1);
  assert.equal((await survivor.api('PATCH', '/v1/carp', { preempt: false })).status, 200);
  await survivor.addVip(vip(false));
  await pollUntil(`${cfg.name}: node2 MASTER`, () => survivor.vhid(1), (v) => v?.state === 'MASTER');
  const masterSince = (await survivor.vhid(1))!.since;
  const survivorLines = stateLines(survivor);

  let node1 = await start(0);
  assert.equal((await node1.api('PATCH', '/v1/carp', { preempt: false })).status, 200);
  await node1.addVip(vip(true));
  for (let round = 0; round <= RESTARTS; round++) {
    if (round > 0) {
      node1.d.kill('SIGKILL');
      await node1.d.exited;
      node1 = await start(0);
    }
    const what = `${cfg.name}, ${round === 0 ? 'first start' : `restart ${round}`}`;
    // The positive signal: enough of the master's advertisements heard since this start.
    await pollUntil(`${what}: ${cfg.enough} advertisements received`, () => received(node1), (n) => n >= cfg.enough);
    const v = await node1.vhid(1);
    assert.equal(v?.state, 'BACKUP', `${what}: node1 is ${v?.state} (${v?.reason})`);
    assert.equal(masterLines(node1), 0, `${what}: node1 became MASTER at some point:\n${node1.d.stdout}`);
    const s = await survivor.vhid(1);
    assert.equal(s?.state, 'MASTER', `${what}: node2 is ${s?.state} (${s?.reason})`);
    assert.equal(s?.since, masterSince, `${what}: node2's state changed and came back`);
    assert.equal(stateLines(survivor), survivorLines, `${what}: node2 logged a transition`);
  }
}

test('linux backend, preemption off: the higher-priority node killed and restarted 10 times never takes the VIP from the healthy master', { skip, timeout: 110_000 }, async (t) => {
  await Promise.all(CONFIGS.map((cfg) => run(t, cfg)));
});
