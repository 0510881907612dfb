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
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { createLan, netnsUnavailable, type Lan } from './helpers/netns.js';
import { pollUntil } from './helpers/poll.js';

function ucarpMissing(): string | undefined {
  try {
    execFileSync('ucarp', ['--help'], { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    // ucarp --help exits 0 on Debian; a spawn error means it is not installed.
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'ucarp is not installed (apt-get install ucarp)' : undefined;
  }
}

const skip = netnsUnavailable() ?? ucarpMissing();
const VIP = '192.0.2.50';
const PORT = 8080;

interface Ucarp {
  proc: ChildProcess;
  /** "up" / "down" lines, one per script run. */
  transitions(): string[];
  kill(): Promise<void>;
}

function startUcarp(t: test.TestContext, lan: Lan, dir: string, i: number, opts: { advskew: number; password: string; preempt?: boolean }): Ucarp {
  const n = lan.nodes[i];
  const log = path.join(dir, `ucarp${i}.transitions`);
  const script = (word: string, ip: string) => {
    const p = path.join(dir, `ucarp${i}-${word}.sh`);
    // ucarp runs the script with the interface and the VIP as $1 and $2.
    writeFileSync(p, `#!/bin/sh\necho ${word} >> ${log}\nip addr ${ip} "$2/24" dev "$1" 2>/dev/null\nexit 0\n`);
    chmodSync(p, 0o755);
    return p;
  };
  const args = [
    'ucarp', '--interface=lan0', `--srcip=${n.address}`, '--vhid=1', `--pass=${opts.password}`, `--addr=${VIP}`,
    '--advbase=1', `--advskew=${opts.advskew}`, `--upscript=${script('up', 'add')}`, `--downscript=${script('down', 'del')}`,
    '--neutral', '--shutdown', ...(opts.preempt ? ['--preempt'] : []),
  ];
  const proc = lan.spawn(n.ns, args);
  let exited = false;
  const done = new Promise<void>((resolve) => proc.on('exit', () => ((exited = true), resolve())));
  const kill = async () => {
    if (!exited) proc.kill('SIGKILL');
    await done;
  };
  t.after(kill);
  return {
    proc,
    transitions: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
    kill,
  };
}

async function startCarpd(t: test.TestContext, lan: Lan, root: string, i: number, vip: { advskew: number; password: string }) {
  const n = lan.nodes[i];
  const stateDir = path.join(root, `carpd${i}`);
  const d = await startDaemon(t, ['--listen', `${n.mgmtAddress}:${PORT}`, '--state-dir', stateDir, '--backend', 'linux', '--node-name', `carpd${i}`], { netns: n.ns });
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(PORT, method, url, { host: n.mgmtAddress, token, body });
  const r = await api('POST', '/v1/vips', { interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], password: vip.password, advskew: vip.advskew });
  assert.equal(r.status, 201, r.text);
  const state = async () => {
    const s = await api('GET', '/v1/status');
    return (s.body.vhids as { interface: string; vhid: number; state: string; reason: string }[]).find((x) => x.interface === 'lan0' && x.vhid === 1);
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
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-ucarp-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return { lan, root };
}

test('ucarp interop: carpd MASTER, ucarp stays BACKUP; carpd killed, ucarp takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const carpd = await startCarpd(t, lan, root, 0, { advskew: 0, password: 'interop-pw' });
  await pollUntil('carpd MASTER', () => carpd.state(), (s) => s?.state === 'MASTER');
  const ucarp = startUcarp(t, lan, root, 1, { advskew: 100, password: 'interop-pw' });
  // ucarp hears carpd's advertisements; its master-down (~4.5 s) would have run out several times over.
  const before = (await carpd.carp()).opackets;
  await pollUntil('eight more advertisements from carpd', () => carpd.carp(), (c) => c.opackets >= before + 8);
  assert.ok(!ucarp.transitions().includes('up'), `ucarp became master: ${ucarp.transitions().join(',')}`);
  assert.equal(await holds(lan, 1), false);
  assert.equal(await holds(lan, 0), true);

  carpd.d.kill('SIGKILL');
  await carpd.d.exited;
  await pollUntil('ucarp takes over', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  assert.equal(await holds(lan, 1), true);
});

test('ucarp interop: ucarp MASTER, carpd stays BACKUP and accepts its advertisements; ucarp killed, carpd takes over', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const ucarp = startUcarp(t, lan, root, 0, { advskew: 0, password: 'interop-pw' });
  await pollUntil('ucarp MASTER', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  const carpd = await startCarpd(t, lan, root, 1, { advskew: 100, password: 'interop-pw' });
  await pollUntil('eight advertisements from ucarp accepted', () => carpd.carp(), (c) => c.ipackets >= 8);
  const s = await carpd.state();
  assert.equal(s?.state, 'BACKUP', JSON.stringify(s));
  const c = await carpd.carp();
  assert.equal(c.badauth + c.badsum + c.badttl + c.badver + c.badlen, 0, JSON.stringify(c));
  assert.equal(await holds(lan, 1), false);

  await ucarp.kill();
  const after = await pollUntil('carpd takes over', () => carpd.state(), (x) => x?.state === 'MASTER');
  assert.match(after!.reason, /master-down timer expired/);
  assert.equal(await holds(lan, 1), true);
});

test('ucarp interop: a wrong password is rejected on both sides', { skip, timeout: 120_000 }, async (t) => {
  const { lan, root } = await setUp(t);
  const carpd = await startCarpd(t, lan, root, 0, { advskew: 0, password: 'carpd-side' });
  await pollUntil('carpd MASTER', () => carpd.state(), (s) => s?.state === 'MASTER');
  const ucarp = startUcarp(t, lan, root, 1, { advskew: 100, password: 'ucarp-side' });
  // ucarp ignores carpd's (better) advertisements and becomes master after its master-down.
  await pollUntil('ucarp MASTER despite carpd', async () => ucarp.transitions(), (tr) => tr.includes('up'));
  const c = await pollUntil('badauth from ucarp counted', () => carpd.carp(), (x) => x.badauth >= 3);
  // ipackets counts refused packets too: every one received was refused.
  assert.equal(c.badauth, c.ipackets, JSON.stringify(c));
  assert.equal((await carpd.state())?.state, 'MASTER');
});
