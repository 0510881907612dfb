/**
 * VRRPv3 interop with real keepalived (Debian's 2.2.7, `vrrp_version 3`): carpd
 * (`--backend linux`, a VIP with `protocol: vrrpv3`) and keepalived in two network namespaces on
 * one bridge, VRID 51 with one IPv4 VIP (carp-protocol.md §11.4). keepalived's notify script
 * records its states; it adds and removes the VIP itself.
 *
 *   - carpd priority 200 is MASTER, keepalived (100) stays BACKUP; carpd killed → keepalived
 *     takes over.
 *   - keepalived priority 200 is MASTER, carpd (100) stays BACKUP and accepts every
 *     advertisement (checksum with the IPv4 pseudo-header, as keepalived computes it);
 *     keepalived stopped (SIGTERM) → it sends priority 0 and carpd takes over after Skew_Time,
 *     reported as a resignation.
 *
 * VRRPv3 has no authentication, so there is no password case; a wrong VRID is dropped as badvhid.
 */
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { commandMissing, linesOf, spawnInLan, writeScript } from './helpers/lan-process.js';
import { holdsAddress, setUpLan, startLinuxNode } from './helpers/linux-node.js';
import { netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

const skip = netnsUnavailable() ?? commandMissing(['keepalived', '--version'], 'keepalived');
const VIP = '192.0.2.50';
const VRID = 51;

interface Keepalived {
  proc: ChildProcess;
  states(): string[];
  stop(signal: NodeJS.Signals): Promise<void>;
}

function startKeepalived(t: test.TestContext, lan: Lan, dir: string, i: number, opts: { priority: number; vrid?: number }): Keepalived {
  const n = lan.nodes[i];
  const log = path.join(dir, `keepalived${i}.states`);
  // keepalived calls: notify TYPE NAME STATE PRIORITY
  const notify = writeScript(path.join(dir, `keepalived${i}-notify.sh`), `#!/bin/sh\necho "$3" >> ${log}\n`);
  const conf = path.join(dir, `keepalived${i}.conf`);
  writeFileSync(
    conf,
    `global_defs {
  router_id carpd_interop_${i}
  vrrp_version 3
  script_user root
  enable_script_security
}
vrrp_instance VI_${i} {
  state BACKUP
  interface lan0
  virtual_router_id ${opts.vrid ?? VRID}
  priority ${opts.priority}
  advert_int 1
  virtual_ipaddress {
    ${VIP}/24
  }
  notify ${notify}
}
`,
  );
  const { proc, stop } = spawnInLan(t, lan, n.ns, ['keepalived', '-n', '-l', '-D', '-P', '-R', '-f', conf, '-p', path.join(dir, `ka${i}.pid`), '-r', path.join(dir, `ka${i}-vrrp.pid`)]);
  return { proc, states: () => linesOf(log), stop };
}

async function startCarpd(t: test.TestContext, lan: Lan, root: string, i: number, priority: number) {
  const carpd = await startLinuxNode(t, lan, root, i, { name: `carpd${i}` });
  await carpd.addVip({ interface: 'lan0', vhid: VRID, addresses: [`${VIP}/24`], protocol: 'vrrpv3', vrrpPriority: priority, vrrpInterval: 100 });
  return carpd;
}

test('keepalived interop (VRRPv3): carpd MASTER, keepalived stays BACKUP; carpd killed, keepalived takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-keepalived-');
  const carpd = await startCarpd(t, lan, root, 0, 200);
  await pollUntil('carpd MASTER', () => carpd.vhid(VRID), (s) => s?.state === 'MASTER');
  const ka = startKeepalived(t, lan, root, 1, { priority: 100 });
  await pollUntil('keepalived BACKUP', async () => ka.states(), (s) => s.includes('BACKUP'));
  const before = (await carpd.carp()).opackets;
  await pollUntil('eight more advertisements from carpd', () => carpd.carp(), (c) => c.opackets >= before + 8);
  assert.ok(!ka.states().includes('MASTER'), `keepalived became master: ${ka.states().join(',')}`);
  assert.equal(await holdsAddress(lan, 1, VIP), false);
  assert.equal(await holdsAddress(lan, 0, VIP), true);

  carpd.d.kill('SIGKILL');
  await carpd.d.exited;
  await pollUntil('keepalived takes over', async () => ka.states(), (s) => s.includes('MASTER'));
  await pollUntil('VIP on keepalived node', () => holdsAddress(lan, 1, VIP), (h) => h);
});

test('keepalived interop (VRRPv3): keepalived MASTER, carpd BACKUP accepting its advertisements; keepalived resigns, carpd takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-keepalived-');
  const ka = startKeepalived(t, lan, root, 0, { priority: 200 });
  await pollUntil('keepalived MASTER', async () => ka.states(), (s) => s.includes('MASTER'));
  const carpd = await startCarpd(t, lan, root, 1, 100);
  await pollUntil('eight advertisements from keepalived accepted', () => carpd.carp(), (c) => c.ipackets >= 8);
  assert.equal((await carpd.vhid(VRID))?.state, 'BACKUP');
  const c = await carpd.carp();
  assert.equal(c.badsum + c.badttl + c.badver + c.badlen + c.badvhid, 0, JSON.stringify(c));
  assert.equal(await holdsAddress(lan, 1, VIP), false);

  // An orderly keepalived stop sends priority 0: carpd takes over after Skew_Time, not master-down.
  await ka.stop('SIGTERM');
  const after = await pollUntil('carpd takes over', () => carpd.vhid(VRID), (s) => s?.state === 'MASTER');
  assert.match(after!.reason, /priority 0|resign/i);
  await pollUntil('VIP on carpd node', () => holdsAddress(lan, 1, VIP), (h) => h);
});

test('keepalived interop (VRRPv3): keepalived on another VRID is dropped as badvhid and both are MASTER', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-keepalived-');
  const carpd = await startCarpd(t, lan, root, 0, 200);
  const ka = startKeepalived(t, lan, root, 1, { priority: 100, vrid: VRID + 1 });
  await pollUntil('keepalived MASTER', async () => ka.states(), (s) => s.includes('MASTER'));
  await pollUntil('badvhid counted', () => carpd.carp(), (c) => c.badvhid >= 3);
  assert.equal((await carpd.vhid(VRID))?.state, 'MASTER');
  const c = await carpd.carp();
  assert.equal(c.badvhid, c.ipackets, JSON.stringify(c));
});
