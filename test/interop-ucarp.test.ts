/**
 * Interop with real ucarp (Debian's ucarp 1.5.2): carpd (`--backend linux`) and ucarp in two
 * network namespaces on one bridge, one vhid with a single IPv4 VIP — the configuration
 * ucarp supports (carp-protocol.md §9). ucarp's up/down scripts record its transitions and add
 * or remove the VIP, so both sides are judged by what they did, not by what they print.
 *
 *   - carpd master (advskew 0), ucarp backup (advskew 100): ucarp stays backup while carpd
 *     advertises; carpd killed → ucarp takes over.
 *   - the reverse: ucarp master, carpd backup (its advertisements counted, none refused);
 *     ucarp killed → carpd takes over.
 *   - wrong password: carpd counts ucarp's advertisements as badauth, ucarp ignores carpd's —
 *     both become MASTER, although carpd advertises the better skew.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { commandMissing, linesOf, spawnInLan, writeScript } from './helpers/lan-process.js';
import { holdsAddress, setUpLan, startLinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable() ?? commandMissing(['ucarp', '--help'], 'ucarp');
const VIP = '192.0.2.50';

interface Ucarp {
  proc: ChildProcess;
  /** "up" / "down" lines, one per script run. */
  transitions(): string[];
  kill(): Promise<void>;
}

function startUcarp(t: test.TestContext, lan: Lan, dir: string, i: number, opts: { advskew: number; password: string; preempt?: boolean }): Ucarp {
  const n = lan.nodes[i];
  const log = path.join(dir, `ucarp${i}.transitions`);
  // ucarp runs the script with the interface and the VIP as $1 and $2.
  const script = (word: string, ip: string) =>
    writeScript(path.join(dir, `ucarp${i}-${word}.sh`), `#!/bin/sh\necho ${word} >> ${log}\nip addr ${ip} "$2/24" dev "$1" 2>/dev/null\nexit 0\n`);
  const args = [
    'ucarp', '--interface=lan0', `--srcip=${n.address}`, '--vhid=1', `--pass=${opts.password}`, `--addr=${VIP}`,
    '--advbase=1', `--advskew=${opts.advskew}`, `--upscript=${script('up', 'add')}`, `--downscript=${script('down', 'del')}`,
    '--neutral', '--shutdown', ...(opts.preempt ? ['--preempt'] : []),
  ];
  const { proc, stop } = spawnInLan(t, lan, n.ns, args);
  return { proc, transitions: () => linesOf(log), kill: () => stop('SIGKILL') };
}

async function startCarpd(t: test.TestContext, lan: Lan, root: string, i: number, vip: { advskew: number; password: string }) {
  const carpd = await startLinuxNode(t, lan, root, i, { name: `carpd${i}` });
  await carpd.addVip({ interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], password: vip.password, advskew: vip.advskew });
  return carpd;
}

test('ucarp interop: carpd MASTER, ucarp stays BACKUP; carpd killed, ucarp takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-ucarp-');
  const carpd = await startCarpd(t, lan, root, 0, { advskew: 0, password: 'interop-pw' });
  await pollUntil('carpd MASTER', () => carpd.vhid(1), (s) => s?.state === 'MASTER');
  const ucarp = startUcarp(t, lan, root, 1, { advskew: 100, password: 'interop-pw' });
  // ucarp hears carpd's advertisements; its master-down (~4.5 s) would have run out several times over.
  const before = (await carpd.carp()).opackets;
  await pollUntil('eight more advertisements from carpd', () => carpd.carp(), (c) => c.opackets >= before + 8);
  assert.ok(!ucarp.transitions().includes('up'), `ucarp became master: ${ucarp.transitions().join(',')}`);
  assert.equal(await holdsAddress(lan, 1, VIP), false);
  assert.equal(await holdsAddress(lan, 0, VIP), true);

  carpd.d.kill('SIGKILL');
  await carpd.d.exited;
  await pollUntil('ucarp takes over', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  assert.equal(await holdsAddress(lan, 1, VIP), true);
});

test('ucarp interop: ucarp MASTER, carpd stays BACKUP and accepts its advertisements; ucarp killed, carpd takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-ucarp-');
  const ucarp = startUcarp(t, lan, root, 0, { advskew: 0, password: 'interop-pw' });
  await pollUntil('ucarp MASTER', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  const carpd = await startCarpd(t, lan, root, 1, { advskew: 100, password: 'interop-pw' });
  await pollUntil('eight advertisements from ucarp accepted', () => carpd.carp(), (c) => c.ipackets >= 8);
  const s = await carpd.vhid(1);
  assert.equal(s?.state, 'BACKUP', JSON.stringify(s));
  const c = await carpd.carp();
  assert.equal(c.badauth + c.badsum + c.badttl + c.badver + c.badlen, 0, JSON.stringify(c));
  assert.equal(await holdsAddress(lan, 1, VIP), false);

  await ucarp.kill();
  const after = await pollUntil('carpd takes over', () => carpd.vhid(1), (x) => x?.state === 'MASTER');
  assert.match(after!.reason, /master-down timer expired/);
  assert.equal(await holdsAddress(lan, 1, VIP), true);
});

test('ucarp interop: a wrong password is rejected on both sides', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-ucarp-');
  const carpd = await startCarpd(t, lan, root, 0, { advskew: 0, password: 'carpd-side' });
  await pollUntil('carpd MASTER', () => carpd.vhid(1), (s) => s?.state === 'MASTER');
  const ucarp = startUcarp(t, lan, root, 1, { advskew: 100, password: 'ucarp-side' });
  // ucarp ignores carpd's (better) advertisements and becomes master after its master-down.
  await pollUntil('ucarp MASTER despite carpd', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  const c = await pollUntil('badauth from ucarp counted', () => carpd.carp(), (x) => x.badauth >= 3);
  // ipackets counts refused packets too: every one received was refused.
  assert.equal(c.badauth, c.ipackets, JSON.stringify(c));
  assert.equal((await carpd.vhid(1))?.state, 'MASTER');
});
