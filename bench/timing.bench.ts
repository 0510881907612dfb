/**
 * Timing of the linux backend in network namespaces, at each advertisement interval, next to the
 * protocol's bound: how regular the MASTER's advertisements are, and how long a failover takes.
 *
 * For each configuration (VRRPv3 at 1, 10 and 100 cs; CARP at advbase 1) two carpd processes
 * (`--backend linux`, preemption off) share vhid 1 on a bridged LAN (test/helpers/netns.ts):
 *
 *   - advertisement period: `tcpdump -tt` on the BACKUP's lan0 (kernel receive timestamps) for
 *     BENCH_PERIOD_SECONDS; the consecutive differences between the MASTER's advertisements:
 *     mean, min, max, against the configured interval;
 *   - failover: the MASTER killed with SIGKILL; from its last advertisement (tcpdump on the
 *     survivor) to the VIP on the survivor's interface (`ip -ts monitor address`), against the
 *     survivor's master-down interval (VRRPv3: 3 × interval + (256 − priority) × interval / 256;
 *     CARP: 3 × advbase + advskew / 256). The killed node is started again (BACKUP, as
 *     preemption is off) and the roles alternate.
 *
 * Both nodes use the same priority (100) or skew (0), so each side's bound is the same.
 *
 *   npm run bench:timing                               (root, tcpdump installed)
 *   BENCH_RUNS=20 BENCH_PERIOD_SECONDS=20 BENCH_CONFIGS=vrrp1,vrrp10,vrrp100,carp1 npm run bench:timing
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { setUpLan, startLinuxNode, type LinuxNode } from '../test/helpers/linux-node.js';
import { netnsUnavailable } from '../test/helpers/netns.js';
import { pollUntil } from '../test/helpers/poll.js';
import { gitRevision } from './common.js';
import { Cleanups, monitorTime, observe, requireTcpdump, tcpdumpStamps } from './observe.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const PERIOD_SECONDS = Number(process.env.BENCH_PERIOD_SECONDS ?? 10);
const VIP = '192.0.2.50';

interface Config {
  id: string;
  label: string;
  /** The VIP's protocol fields. */
  fields: Record<string, unknown>;
  intervalMs: number;
  /** The BACKUP's master-down interval, ms. */
  boundMs: number;
}

const vrrp = (cs: number): Config => ({
  id: `vrrp${cs}`,
  label: `VRRPv3, ${cs} cs`,
  fields: { protocol: 'vrrpv3', vrrpPriority: 100, vrrpInterval: cs },
  intervalMs: cs * 10,
  boundMs: 3 * cs * 10 + ((256 - 100) * cs * 10) / 256,
});
const ALL: Config[] = [vrrp(1), vrrp(10), vrrp(100), { id: 'carp1', label: 'CARP, advbase 1', fields: { advbase: 1, advskew: 0, password: 'bench' }, intervalMs: 1000, boundMs: 3000 }];
const CONFIGS = process.env.BENCH_CONFIGS ? ALL.filter((c) => process.env.BENCH_CONFIGS!.split(',').includes(c.id)) : ALL;

const cleanups = new Cleanups();
const t = cleanups.t;
const cleanup = () => cleanups.run();

interface Result {
  cfg: Config;
  periods: number[];
  failovers: number[];
}

async function measure(cfg: Config): Promise<Result> {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-bench-timing-');
  const configure = async (n: LinuxNode) => {
    await n.api('PATCH', '/v1/carp', { preempt: false });
    const r = await n.api('POST', '/v1/vips', { interface: 'lan0', vhid: 1, addresses: [`${VIP}/24`], ...cfg.fields });
    if (r.status !== 201 && r.status !== 409) throw new Error(r.text);
  };
  const nodes: LinuxNode[] = [];
  nodes[0] = await startLinuxNode(t, lan, root, 0);
  await configure(nodes[0]);
  await pollUntil('first master', () => nodes[0].state(1), (s) => s === 'MASTER');
  nodes[1] = await startLinuxNode(t, lan, root, 1);
  await configure(nodes[1]);
  await pollUntil('backup', () => nodes[1].state(1), (s) => s === 'BACKUP');

  // The period, on the backup's interface.
  const dump = observe(lan, lan.nodes[1].ns, ['tcpdump', '-tt', '-n', '-l', '-i', 'lan0', `ip proto 112 and src host ${lan.nodes[0].address}`], cleanups);
  await pollUntil('tcpdump running', async () => dump.lines.length, (n) => n >= 2);
  await new Promise((r) => setTimeout(r, PERIOD_SECONDS * 1000));
  dump.stop();
  const s = tcpdumpStamps(dump.lines);
  const periods = s.slice(1).map((x, i) => (x - s[i]) * 1000);
  process.stderr.write(`${cfg.label}: ${periods.length} periods\n`);

  const failovers: number[] = [];
  let master = 0;
  for (let run = 0; run < RUNS; run++) {
    const survivor = 1 - master;
    const ns = lan.nodes[survivor].ns;
    const d = observe(lan, ns, ['tcpdump', '-tt', '-n', '-l', '-i', 'lan0', `ip proto 112 and src host ${lan.nodes[master].address}`], cleanups);
    const mon = observe(lan, ns, ['ip', '-ts', 'monitor', 'address', 'dev', 'lan0'], cleanups);
    await pollUntil('observers running', async () => d.lines.length, (n) => n >= 2);
    nodes[master].d.kill('SIGKILL');
    await nodes[master].d.exited;
    const installed = await pollUntil('takeover', async () => mon.lines.find((l) => l.includes(` ${VIP}/`) && !l.includes('Deleted')), (l) => l !== undefined);
    d.stop();
    mon.stop();
    const ms = (monitorTime(installed!)! - Math.max(...tcpdumpStamps(d.lines))) * 1000;
    failovers.push(ms);
    process.stderr.write(`${cfg.label} run ${run + 1}/${RUNS}: ${ms.toFixed(1)} ms (bound ${cfg.boundMs.toFixed(1)} ms)\n`);
    nodes[master] = await startLinuxNode(t, lan, root, master);
    await pollUntil('returned as backup', () => nodes[master].state(1), (st) => st === 'BACKUP');
    master = survivor;
  }
  await cleanup();
  return { cfg, periods, failovers };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const f = (x: number) => `${x.toFixed(x < 100 ? 2 : 1)} ms`;

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) throw new Error(`cannot run: ${why}`);
  await requireTcpdump();
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const rev = gitRevision() ?? 'unknown';
  const results: Result[] = [];
  try {
    for (const cfg of CONFIGS) results.push(await measure(cfg));
  } finally {
    await cleanup();
  }
  const out: string[] = [];
  out.push(`# Advertisement period and failover at each interval (linux backend)\n`);
  out.push(`${new Date().toISOString().slice(0, 10)}, ${rev}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}.\n`);
  out.push(`Period: consecutive advertisements of the MASTER as the BACKUP's tcpdump stamps them, over ${PERIOD_SECONDS} s. Failover: from the killed master's last advertisement to the VIP on the survivor's interface, ${RUNS} SIGKILLs per row; the bound is the survivor's master-down interval.\n`);
  out.push('| configuration | interval | period mean | period min | period max | failover bound | failover mean | min | max | mean − bound |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const { cfg, periods, failovers } of results) {
    out.push(
      `| ${cfg.label} | ${f(cfg.intervalMs)} | ${f(mean(periods))} | ${f(Math.min(...periods))} | ${f(Math.max(...periods))} | ${f(cfg.boundMs)} | ${f(mean(failovers))} | ${f(Math.min(...failovers))} | ${f(Math.max(...failovers))} | ${(mean(failovers) - cfg.boundMs).toFixed(1)} ms |`,
    );
  }
  const report = out.join('\n');
  process.stdout.write(report + '\n');
  writeFileSync(new URL('./results/timing-latest.md', import.meta.url), report + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
