/**
 * Failover time of the linux backend in network namespaces, against the protocol's bound.
 *
 * Two carpd processes (`--backend linux`, advbase 1, both with the same advskew, preemption off)
 * share vhid 1 on a bridged LAN (test/helpers/netns.ts). Each run kills the MASTER with SIGKILL
 * and measures, on the surviving node, from the last advertisement of the dead master to the
 * VIP appearing on the survivor's interface:
 *
 *   - advertisements: `tcpdump -tt` on the survivor's lan0 (kernel receive timestamps);
 *   - the VIP: `ip -ts monitor address` in the survivor's namespace (the rtnetlink event).
 *
 * Both observers are outside carpd and stamp with the same system clock. The killed node is
 * then started again (it becomes the BACKUP, as preemption is off), so the roles alternate.
 * The bound is carp(4)'s master-down interval, 3 × advbase + advskew/256 s.
 *
 * Also measured: one carpd running 255 vhids at advbase 1 as MASTER of all of them, with a
 * second carpd as BACKUP — CPU (utime + stime from /proc) and resident memory of each over a
 * measurement window.
 *
 *   npm run bench:failover                           (root, tcpdump installed)
 *   BENCH_RUNS=20 BENCH_SKEWS=0,100 BENCH_VHID_SECONDS=60 npm run bench:failover
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { setUpLan, startLinuxNode, type LinuxNode } from '../test/helpers/linux-node.js';
import { netnsUnavailable } from '../test/helpers/netns.js';
import { pollUntil } from '../test/helpers/poll.js';
import { gitRevision } from './common.js';
import { Cleanups, monitorTime, observe, requireTcpdump, tcpdumpStamps } from './observe.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const SKEWS = (process.env.BENCH_SKEWS ?? '0,100').split(',').map(Number);
const VHID_SECONDS = Number(process.env.BENCH_VHID_SECONDS ?? 60);
const VIP = '192.0.2.50';

const cleanups = new Cleanups();
const t = cleanups.t;
const cleanup = () => cleanups.run();

/** How many of the node's vhids are in that state. */
async function countIn(n: LinuxNode, state: string): Promise<number> {
  return (await n.vhids()).filter((v) => v.state === state).length;
}

function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function failover(advskew: number): Promise<{ advskew: number; bound: number; samples: number[] }> {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-bench-');
  const configure = async (n: LinuxNode) => {
    await n.api('PATCH', '/v1/carp', { preempt: false });
    const r = await n.api('POST', '/v1/vips', { interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], password: 'bench', advskew });
    if (r.status !== 201 && r.status !== 409) throw new Error(r.text);
  };
  const nodes: LinuxNode[] = [];
  nodes[0] = await startLinuxNode(t, lan, root, 0);
  await configure(nodes[0]);
  await pollUntil('first master', () => nodes[0].state(1), (s) => s === 'MASTER');
  nodes[1] = await startLinuxNode(t, lan, root, 1);
  await configure(nodes[1]);
  await pollUntil('backup', () => nodes[1].state(1), (s) => s === 'BACKUP');

  const bound = 3 + advskew / 256;
  const samples: number[] = [];
  let master = 0;
  for (let run = 0; run < RUNS; run++) {
    const survivor = 1 - master;
    const ns = lan.nodes[survivor].ns;
    const masterAddr = lan.nodes[master].address;
    const dump = observe(lan, ns, ['tcpdump', '-tt', '-n', '-l', '-i', 'lan0', `ip proto 112 and src host ${masterAddr}`], cleanups);
    const mon = observe(lan, ns, ['ip', '-ts', 'monitor', 'address', 'dev', 'lan0'], cleanups);
    // Let both observers start and see a few advertisements before the kill.
    await pollUntil('observers running', async () => dump.lines.length, (n) => n >= 2);
    nodes[master].d.kill('SIGKILL');
    await nodes[master].d.exited;
    await pollUntil('takeover', async () => mon.lines.find((l) => l.includes(` ${VIP}/`) && !l.includes('Deleted')), (l) => l !== undefined);
    dump.stop();
    mon.stop();
    const lastAdvert = Math.max(...tcpdumpStamps(dump.lines));
    const installedAt = monitorTime(mon.lines.find((l) => l.includes(` ${VIP}/`) && !l.includes('Deleted'))!)!;
    samples.push(installedAt - lastAdvert);
    process.stderr.write(`advskew ${advskew} run ${run + 1}/${RUNS}: ${((installedAt - lastAdvert) * 1000).toFixed(1)} ms\n`);
    // The killed node comes back as BACKUP (preemption off) and the roles swap.
    nodes[master] = await startLinuxNode(t, lan, root, master);
    await pollUntil('returned as backup', () => nodes[master].state(1), (s) => s === 'BACKUP');
    master = survivor;
  }
  await cleanup();
  return { advskew, bound, samples };
}

function procStat(pid: number): { cpuSec: number; rssKiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSec: ticks / 100, rssKiB: Number(rss?.[1] ?? 0) };
}

async function manyVhids(): Promise<{ role: string; cpuPct: number; rssMiB: number; opackets: number; ipackets: number }[]> {
  const { lan, root } = await setUpLan(t, { nodes: 3 }, 'carpd-bench-');
  // 255 vhids: VIPs 198.51.100.1..254 and 192.0.2.254, advbase 1; node0 skew 0, node1 skew 100.
  const vip = (v: number) => (v <= 254 ? `198.51.100.${v}/24` : '192.0.2.254/24');
  const boot = (skew: number) => {
    const file = path.join(root, `bootstrap-${skew}.json`);
    mkdirSync(root, { recursive: true });
    writeFileSync(file, JSON.stringify({ carp: { enabled: true, preempt: false, maintenance: false }, vips: Array.from({ length: 255 }, (_, k) => ({ interface: 'lan0', vhid: k + 1, addresses: [vip(k + 1)], advskew: skew, password: 'bench' })) }));
    return file;
  };
  const nodes: LinuxNode[] = [];
  for (const i of [0, 1]) {
    nodes[i] = await startLinuxNode(t, lan, root, i, { args: ['--config', boot(i * 100)] });
    if (i === 0) await pollUntil('255 MASTER', () => countIn(nodes[0], 'MASTER'), (k) => k === 255, 60_000);
  }
  // For comparison: a carpd on the same LAN with no vhid at all.
  nodes[2] = await startLinuxNode(t, lan, root, 2);
  await pollUntil('255 BACKUP', () => countIn(nodes[1], 'BACKUP'), (k) => k === 255, 60_000);
  // Settle, then measure over the window.
  await new Promise((r) => setTimeout(r, 5000));
  const before = nodes.map((n) => procStat(n.d.child.pid!));
  const statsBefore = await Promise.all(nodes.map((n) => n.carp()));
  await new Promise((r) => setTimeout(r, VHID_SECONDS * 1000));
  const after = nodes.map((n) => procStat(n.d.child.pid!));
  const statsAfter = await Promise.all(nodes.map((n) => n.carp()));
  await cleanup();
  return [0, 1, 2].map((i) => ({
    role: ['MASTER of 255 vhids (sends)', 'BACKUP of 255 vhids (receives)', 'no vhid (for comparison)'][i],
    cpuPct: ((after[i].cpuSec - before[i].cpuSec) / VHID_SECONDS) * 100,
    rssMiB: after[i].rssKiB / 1024,
    opackets: (statsAfter[i].opackets - statsBefore[i].opackets) / VHID_SECONDS,
    ipackets: (statsAfter[i].ipackets - statsBefore[i].ipackets) / VHID_SECONDS,
  }));
}

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) throw new Error(`cannot run: ${why}`);
  await requireTcpdump();
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const rev = gitRevision() ?? 'unknown';
  const out: string[] = [];
  out.push(`# Failover in network namespaces (linux backend)\n`);
  out.push(`${new Date().toISOString().slice(0, 10)}, ${rev}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}.\n`);
  out.push(`From the dead master's last advertisement (tcpdump on the survivor) to the VIP on the survivor's interface (ip monitor); ${RUNS} SIGKILLs per row, advbase 1.\n`);
  out.push('| backup advskew | bound 3 × advbase + advskew/256 | median | p10 | p90 | min | max | median − bound |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
  try {
    for (const skew of SKEWS) {
      const r = await failover(skew);
      const s = [...r.samples].sort((a, b) => a - b);
      const ms = (x: number) => `${(x * 1000).toFixed(1)} ms`;
      out.push(`| ${skew} | ${ms(r.bound)} | ${ms(quantile(s, 0.5))} | ${ms(quantile(s, 0.1))} | ${ms(quantile(s, 0.9))} | ${ms(s[0])} | ${ms(s[s.length - 1])} | ${((quantile(s, 0.5) - r.bound) * 1000).toFixed(1)} ms |`);
    }
    out.push('');
    if (VHID_SECONDS > 0) {
      out.push(`## 255 vhids at advbase 1\n`);
      out.push(`Two carpd processes, 255 vhids each (one IPv4 VIP per vhid), and a third with none, measured over ${VHID_SECONDS} s after all vhids settled. CPU is utime + stime of the process over the window; RSS at its end.\n`);
      out.push('| node | CPU (% of one core) | RSS | advertisements sent/s | received/s |');
      out.push('|---|---:|---:|---:|---:|');
      for (const r of await manyVhids()) out.push(`| ${r.role} | ${r.cpuPct.toFixed(1)} % | ${r.rssMiB.toFixed(1)} MiB | ${r.opackets.toFixed(0)} | ${r.ipackets.toFixed(0)} |`);
      out.push('');
    }
  } finally {
    await cleanup();
  }
  const report = out.join('\n');
  process.stdout.write(report + '\n');
  writeFileSync(new URL('./results/failover-latest.md', import.meta.url), report + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
