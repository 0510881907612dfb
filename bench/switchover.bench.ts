/**
 * Planned maintenance, counted in lost datagrams: `switchover` (demotion, after checking the
 * peer) against entering maintenance by raising advskew, for 1, 16 and 64 vhids.
 *
 * Two carpd processes (`--backend linux`) in network namespaces on one bridged LAN
 * (test/helpers/netns.ts), paired by config sync over their LAN addresses (node-a primary,
 * node-b secondary). Each has the same N VIPs, `nosync` (so that each node's advskew is its own:
 * node-a 0, node-b 100), advbase 1, preemption on; node-a is MASTER of all of them. A small UDP
 * echo responder runs in each node's namespace (bound to any address: whichever node holds a VIP
 * answers for it), and a client in the client namespace sends numbered datagrams to every VIP at
 * BENCH_RATE per second each and counts those never answered.
 *
 * For each N and each run, with the client sending throughout:
 *   - switchover: POST /v1/cluster/switchover?wait=true on node-a; its job's handover time of
 *     each vhid; then `back` (not counted) so that node-a holds the VIPs again;
 *   - advskew: PATCH every VIP of node-a to advskew 200 (above node-b's 100); the time until
 *     node-b is MASTER of all of them; then advskew 0 again (not counted).
 * Lost = sent − answered, counted over the window from one second before the change to two
 * seconds after it ended (a reply has a second of grace).
 *
 *   npm run bench:switchover                                   (root)
 *   BENCH_VHIDS=1 BENCH_RUNS=1 npm run bench:switchover        (a quick look)
 *   BENCH_VHIDS=1,16,64 BENCH_RUNS=5 BENCH_RATE=100 npm run bench:switchover
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { setUpLan } from '../test/helpers/linux-node.js';
import { netnsUnavailable, type Lan } from '../test/helpers/netns.js';
import { pollUntil } from '../test/helpers/poll.js';
import { SyncNode, converged, pair } from '../test/helpers/sync-node.js';
import { gitRevision, percentile } from './common.js';

const VHIDS = (process.env.BENCH_VHIDS ?? '1,16,64').split(',').map(Number);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const RATE = Number(process.env.BENCH_RATE ?? 100);
const ECHO_PORT = 7007;
const SYNC_PORT = 8443;
const API_PORT = 8080;
/** VIP k (1-based) of N: 192.0.2.150 … 192.0.2.213, beside the nodes (.10, .11) and the client (.100). */
const vipOf = (k: number) => `192.0.2.${149 + k}`;

const cleanups: (() => unknown)[] = [];
const t = { after: (fn: () => unknown) => cleanups.push(fn) };
async function cleanup(): Promise<void> {
  for (const fn of cleanups.reverse()) await fn();
  cleanups.length = 0;
}

/** The echo responder: every datagram back to where it came from, with this node's name after it. */
const ECHO = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
const name = Buffer.from(' ' + process.argv[2]);
s.on('message', (m, r) => s.send(Buffer.concat([m, name]), r.port, r.address));
s.bind(Number(process.argv[1]), '0.0.0.0', () => process.stdout.write('ready\\n'));
`;

/**
 * The client: every 1000/RATE ms one datagram "<vip index> <seq>" to each VIP; on "stop" on
 * stdin it stops sending, waits a second for late answers and prints, as JSON, how many it sent
 * and which were never answered (by VIP), and which node answered last per VIP.
 */
const CLIENT = `
const dgram = require('node:dgram');
const [port, rate, ...vips] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const sent = vips.map(() => 0);
const answered = vips.map(() => new Set());
const by = vips.map(() => '');
const at = vips.map(() => []);
let timer;
s.on('message', (m) => {
  const [i, seq, node] = m.toString().split(' ');
  answered[Number(i)].add(Number(seq));
  by[Number(i)] = node;
});
s.bind(0, () => {
  timer = setInterval(() => {
    const now = Date.now();
    for (let i = 0; i < vips.length; i++) {
      at[i].push(now);
      s.send(i + ' ' + sent[i]++, Number(port), vips[i]);
    }
  }, 1000 / Number(rate));
  process.stdout.write('ready\\n');
});
process.stdin.setEncoding('utf8').on('data', (d) => {
  if (!d.includes('stop')) return;
  clearInterval(timer);
  setTimeout(() => {
    const lost = vips.map((_, i) => sent[i] - answered[i].size);
    const missing = vips.map((_, i) => { const m = []; for (let q = 0; q < sent[i] && m.length < 5; q++) if (!answered[i].has(q)) m.push(at[i][q]); return m; });
    process.stdout.write(JSON.stringify({ sent: sent.reduce((a, b) => a + b, 0), lost, by, missing }) + '\\n');
    process.exit(0);
  }, 1000);
});
`;

function startProcess(lan: Lan, ns: string, script: string, args: string[]) {
  const p = lan.spawn(ns, [process.execPath, '-e', script, ...args]);
  let out = '';
  p.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  p.stderr!.setEncoding('utf8').on('data', (s: string) => process.stderr.write(`[${ns}] ${s}`));
  t.after(() => p.kill('SIGKILL'));
  return {
    proc: p,
    output: () => out,
    ready: () => pollUntil('process ready', async () => out, (o) => o.includes('ready\n'), 10_000),
  };
}

interface Sample {
  lost: number;
  sent: number;
  /** Per vhid, ms (switchover: the job's; advskew: from the PATCHes until node-b MASTER of it, polled). */
  handover: number[];
  totalMs: number;
}

async function countLoss(lan: Lan, n: number, action: () => Promise<{ handover: number[] }>): Promise<Sample> {
  const client = startProcess(lan, lan.client.ns, CLIENT, [String(ECHO_PORT), String(RATE), ...Array.from({ length: n }, (_, k) => vipOf(k + 1))]);
  await client.ready();
  await new Promise((r) => setTimeout(r, 1000));
  const start = Date.now();
  const { handover } = await action();
  const totalMs = Date.now() - start;
  await new Promise((r) => setTimeout(r, 2000));
  client.proc.stdin!.write('stop\n');
  const line = await pollUntil('client result', async () => client.output().split('\n').find((l) => l.startsWith('{')), (l) => l !== undefined, 10_000);
  const r = JSON.parse(line!) as { sent: number; lost: number[]; by: string[]; missing: number[][] };
  client.proc.kill('SIGKILL');
  // Which datagrams were lost: sent how many ms after the change began (the first five per VIP).
  const when = r.missing.flatMap((m, i) => m.map((sentAt) => `${vipOf(i + 1)}@${sentAt - start}ms`));
  if (when.length) process.stderr.write(`lost: ${when.join(' ')}\n`);
  return { lost: r.lost.reduce((a, b) => a + b, 0), sent: r.sent, handover, totalMs };
}

async function statesOf(n: SyncNode): Promise<Map<number, string>> {
  const s = await n.get('/v1/status');
  return new Map((s.vhids as { vhid: number; state: string }[]).map((v) => [v.vhid, v.state]));
}
const allIn = async (node: SyncNode, n: number, state: string) => [...(await statesOf(node)).values()].filter((s) => s === state).length === n;

async function cluster(n: number) {
  const { lan, root } = await setUpLan(t, { nodes: 2 }, 'carpd-bench-switchover-');
  const node = (i: number, name: string) =>
    new SyncNode(t, {
      name,
      stateDir: path.join(root, name),
      apiHost: lan.nodes[i].mgmtAddress,
      apiPort: API_PORT,
      syncHost: lan.nodes[i].address,
      syncPort: SYNC_PORT,
      localAddress: `${lan.nodes[i].address}/24`,
      args: ['--backend', 'linux', '--insecure-http'],
      netns: lan.nodes[i].ns,
    });
  const a = node(0, 'node-a');
  const b = node(1, 'node-b');
  await Promise.all([a.start(), b.start()]);
  await pair(a, b);
  for (const [x, advskew] of [
    [a, 0],
    [b, 100],
  ] as const) {
    for (let k = 1; k <= n; k++) {
      const r = await x.api('POST', '/v1/vips', { interface: 'lan0', vhid: k, addresses: [`${vipOf(k)}/24`], advskew, password: 'bench', nosync: true });
      if (r.status !== 201) throw new Error(`${x.name} POST /v1/vips: ${r.text}`);
    }
  }
  await converged(a, b);
  await pollUntil(`node-a MASTER of ${n}`, () => allIn(a, n, 'MASTER'), (x) => x, 30_000);
  await pollUntil(`node-b BACKUP of ${n}`, () => allIn(b, n, 'BACKUP'), (x) => x, 30_000);
  for (const i of [0, 1]) await startProcess(lan, lan.nodes[i].ns, ECHO, [String(ECHO_PORT), i === 0 ? 'node-a' : 'node-b']).ready();
  return { lan, a, b };
}

async function setAdvskew(a: SyncNode, n: number, advskew: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async (_, k) => {
      const r = await a.api('PATCH', `/v1/vips/lan0/${k + 1}`, { advskew });
      if (r.status !== 200) throw new Error(`PATCH advskew: ${r.text}`);
    }),
  );
}

async function measure(n: number): Promise<{ switchover: Sample[]; advskew: Sample[] }> {
  const { lan, a, b } = await cluster(n);
  const out = { switchover: [] as Sample[], advskew: [] as Sample[] };
  for (let run = 0; run < RUNS; run++) {
    out.switchover.push(
      await countLoss(lan, n, async () => {
        const r = await a.api('POST', '/v1/cluster/switchover?wait=true', {});
        if (r.status !== 200 || r.body.state !== 'succeeded') throw new Error(`switchover: ${r.status} ${JSON.stringify(r.body?.result ?? r.body)}`);
        return { handover: (r.body.vhids as { handoverMs: number }[]).map((v) => v.handoverMs) };
      }),
    );
    process.stderr.write(`${n} vhids, run ${run + 1}: switchover lost ${out.switchover.at(-1)!.lost}\n`);
    const back = await a.api('POST', '/v1/cluster/switchover?wait=true', { back: true });
    if (back.status !== 200 || back.body.state !== 'succeeded') throw new Error(`back: ${JSON.stringify(back.body?.result ?? back.body)}`);

    out.advskew.push(
      await countLoss(lan, n, async () => {
        const t0 = Date.now();
        const seen = new Map<number, number>();
        await setAdvskew(a, n, 200);
        await pollUntil(
          `node-b MASTER of ${n}`,
          async () => {
            for (const [vhid, s] of await statesOf(b)) if (s === 'MASTER' && !seen.has(vhid)) seen.set(vhid, Date.now() - t0);
            return seen.size;
          },
          (k) => k === n,
          30_000,
        );
        return { handover: [...seen.values()] };
      }),
    );
    process.stderr.write(`${n} vhids, run ${run + 1}: advskew lost ${out.advskew.at(-1)!.lost}\n`);
    await setAdvskew(a, n, 0);
    await pollUntil(`node-a MASTER of ${n} again`, () => allIn(a, n, 'MASTER'), (x) => x, 30_000);
  }
  await cleanup();
  return out;
}

function row(n: number, how: string, samples: Sample[]): string {
  const lost = samples.map((s) => s.lost);
  const h = samples.flatMap((s) => s.handover).sort((x, y) => x - y);
  const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '–');
  return `| ${n} | ${how} | ${lost.join(', ')} | ${Math.max(...lost)} | ${samples.reduce((x, s) => x + s.sent, 0)} | ${ms(percentile(h, 50))} | ${ms(h[h.length - 1])} | ${ms(Math.max(...samples.map((s) => s.totalMs)))} |`;
}

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) throw new Error(`cannot run: ${why}`);
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const out: string[] = [];
  out.push('# Switchover against advskew, in network namespaces (linux backend)\n');
  out.push(`${new Date().toISOString().slice(0, 10)}, ${gitRevision() ?? 'unknown'}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}.\n`);
  out.push(`UDP datagrams to every VIP at ${RATE}/s each, answered by whichever node holds it; lost = never answered, over the change and 2 s after it. ${RUNS} run(s) per row; advbase 1, node-b advskew 100.\n`);
  out.push('| vhids | how | lost per run | max lost | sent | handover p50 | handover max | whole change |');
  out.push('|---:|---|---|---:|---:|---:|---:|---:|');
  try {
    for (const n of VHIDS) {
      const r = await measure(n);
      out.push(row(n, '`switchover`', r.switchover));
      out.push(row(n, 'advskew 0 → 200', r.advskew));
    }
  } finally {
    await cleanup();
  }
  out.push('');
  const report = out.join('\n');
  process.stdout.write(report + '\n');
  writeFileSync(new URL('./results/switchover-latest.md', import.meta.url), report + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
