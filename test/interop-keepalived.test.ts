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
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon } from './helpers/daemon.js';
import { createLan, netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

function keepalivedMissing(): string | undefined {
  try {
    execFileSync('keepalived', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'keepalived is not installed (apt-get install keepalived)' : undefined;
  }
}

const skip = netnsUnavailable() ?? keepalivedMissing();
const VIP = '192.0.2.50';
const VRID = 51;
const PORT = 8080;

interface Keepalived {
  proc: ChildProcess;
  states(): string[];
  stop(signal: NodeJS.Signals): Promise<void>;
}

function startKeepalived(t: test.TestContext, lan: Lan, dir: string, i: number, opts: { priority: number; vrid?: number }): Keepalived {
  const n = lan.nodes[i];
  const log = path.join(dir, `keepalived${i}.states`);
  const notify = path.join(dir, `keepalived${i}-notify.sh`);
  // keepalived calls: notify TYPE NAME STATE PRIORITY
  writeFileSync(notify, `#!/bin/sh\necho "$3" >> ${log}\n`);
  chmodSync(notify, 0o755);
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
  const proc = lan.spawn(n.ns, ['keepalived', '-n', '-l', '-D', '-P', '-R', '-f', conf, '-p', path.join(dir, `ka${i}.pid`), '-r', path.join(dir, `ka${i}-vrrp.pid`)]);
  proc.stdout?.resume();
  proc.stderr?.resume();
  let exited = false;
  const done = new Promise<void>((resolve) => proc.on('exit', () => ((exited = true), resolve())));
  const stop = async (signal: NodeJS.Signals) => {
    if (!exited) proc.kill(signal);
    await done;
  };
  t.after(() => stop('SIGKILL'));
  return { proc, states: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []), stop };
}

async function startCarpd(t: test.TestContext, lan: Lan, root: string, i: number, priority: number) {
  const n = lan.nodes[i];
  const stateDir = path.join(root, `carpd${i}`);
  const d = await startDaemon(t, ['--listen', `${n.mgmtAddress}:${PORT}`, '--state-dir', stateDir, '--backend', 'linux', '--node-name', `carpd${i}`], { netns: n.ns });
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(PORT, method, url, { host: n.mgmtAddress, token, body });
  const r = await api('POST', '/v1/vips', { interface: 'lan0', vhid: VRID, addresses: [`${VIP}/24`], protocol: 'vrrpv3', vrrpPriority: priority, vrrpInterval: 100 });
  assert.equal(r.status, 201, r.text);
  const state = async () => {
    const s = await api('GET', '/v1/status');
    return (s.body.vhids as { interface: string; vhid: number; state: string; reason: string }[]).find((x) => x.interface === 'lan0' && x.vhid === VRID);
  };
  const carp = async () => (await api('GET', '/v1/stats')).body.carp as Record<string, number>;
  return { d, api, state, carp };
}

async function holds(lan: Lan, i: number): Promise<boolean> {
  return (await lan.addresses(lan.nodes[i].ns, 'lan0')).some((a) => a.startsWith(`${VIP}/`));
}

async function setUp(t: test.TestContext) {
  const lan = await createLan({ nodes: 2 });
  t.after(() => lan.destroy());
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-keepalived-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { lan, root };
}

test('keepalived interop (VRRPv3): carpd MASTER, keepalived stays BACKUP; carpd killed, keepalived takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const carpd = await startCarpd(t, lan, root, 0, 200);
  await pollUntil('carpd MASTER', () => carpd.state(), (s) => s?.state === 'MASTER');
  const ka = startKeepalived(t, lan, root, 1, { priority: 100 });
  await pollUntil('keepalived BACKUP', async () => ka.states(), (s) => s.includes('BACKUP'));
  const before = (await carpd.carp()).opackets;
  await pollUntil('eight more advertisements from carpd', () => carpd.carp(), (c) => c.opackets >= before + 8);
  assert.ok(!ka.states().includes('MASTER'), `keepalived became master: ${ka.states().join(',')}`);
  assert.equal(await holds(lan, 1), false);
  assert.equal(await holds(lan, 0), true);

  carpd.d.kill('SIGKILL');
  await carpd.d.exited;
  await pollUntil('keepalived takes over', async () => ka.states(), (s) => s.includes('MASTER'));
  await pollUntil('VIP on keepalived node', () => holds(lan, 1), (h) => h);
});

test('keepalived interop (VRRPv3): keepalived MASTER, carpd BACKUP accepting its advertisements; keepalived resigns, carpd takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const ka = startKeepalived(t, lan, root, 0, { priority: 200 });
  await pollUntil('keepalived MASTER', async () => ka.states(), (s) => s.includes('MASTER'));
  const carpd = await startCarpd(t, lan, root, 1, 100);
  await pollUntil('eight advertisements from keepalived accepted', () => carpd.carp(), (c) => c.ipackets >= 8);
  assert.equal((await carpd.state())?.state, 'BACKUP');
  const c = await carpd.carp();
  assert.equal(c.badsum + c.badttl + c.badver + c.badlen + c.badvhid, 0, JSON.stringify(c));
  assert.equal(await holds(lan, 1), false);

  // An orderly keepalived stop sends priority 0: carpd takes over after Skew_Time, not master-down.
  await ka.stop('SIGTERM');
  const after = await pollUntil('carpd takes over', () => carpd.state(), (s) => s?.state === 'MASTER');
  assert.match(after!.reason, /priority 0|resign/i);
  await pollUntil('VIP on carpd node', () => holds(lan, 1), (h) => h);
});

test('keepalived interop (VRRPv3): keepalived on another VRID is dropped as badvhid and both are MASTER', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const carpd = await startCarpd(t, lan, root, 0, 200);
  const ka = startKeepalived(t, lan, root, 1, { priority: 100, vrid: VRID + 1 });
  await pollUntil('keepalived MASTER', async () => ka.states(), (s) => s.includes('MASTER'));
  await pollUntil('badvhid counted', () => carpd.carp(), (c) => c.badvhid >= 3);
  assert.equal((await carpd.state())?.state, 'MASTER');
  const c = await carpd.carp();
  assert.equal(c.badvhid, c.ipackets, JSON.stringify(c));
});
