/**
 * FreeBSD backend benchmark: 200 VIP changes applied through the freebsd backend (in-process
 * ioctl/netlink over koffi) versus the same 200 changes done the pfSense way, one ifconfig
 * process per step, both against the same fake FreeBSD libc of native/ (shared through
 * FAKEBSD_STATE), so that the kernel work is identical and what differs is how it is reached.
 *
 *   npm run bench:freebsd
 *   BENCH_ROUNDS=5 npm run bench:freebsd           rounds per approach (median reported; default 3)
 *   BENCH_STATE_DIR=/dev/shm npm run bench:freebsd  where the backend's ledger (and its fsyncs) go
 *
 * The changes: 100 VIP creations (a vhid with a password and one IPv4 address; 50 on em0, 50 on
 * em1), then 100 removals. pfSense creates a VIP with `ifconfig IF vhid N advskew K pass P`
 * then `ifconfig IF inet A/P vhid N alias` (two processes) and removes it with
 * `ifconfig IF inet A -alias` (one): 300 processes for the 200 changes. The backend does the
 * same as a library call each; it also writes its address ledger (fsync) per change and reads
 * the vhid back, which the fork path does not. Results go to stdout and to
 * bench/results/freebsd-backend-latest.md.
 *
 * The cost of each change is counted too, on FreeBSD 14 (netlink) and 13 (ioctl) paths of the
 * fake: the backend is handed a libc wrapper that counts every kernel call it makes (reads:
 * netlink GET and family lookups, SIOCGVH, sysctl reads, if_nametoindex; writes: netlink SET,
 * SIOCSVH, SIOCAIFADDR, SIOCDIFADDR, sysctl writes; and the recv() calls that collect netlink
 * replies), and FileHandle.sync is wrapped to count fsync(2) calls (the ledger's atomic write
 * fsyncs its new file; see src/kernel/freebsd/ledger.ts for why not its directory).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promises as fs } from 'node:fs';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { SIOCGETPFSYNC, SIOCGETPFSYNCNV, SIOCGVH, ioctlName } from '../src/kernel/freebsd/layout.js';
import { type Libc, loadLibc } from '../src/kernel/freebsd/libc.js';
import { GENL_ID_CTRL, NLM_F_DUMP } from '../src/wire/netlink.js';
import { FS_TYPES, gitRevision } from './common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = path.join(ROOT, 'native', 'build');
const LIBC = path.join(BUILD, 'libfakefreebsd.so');
const LIBNV = path.join(BUILD, 'libfakenv.so');
const IFCONFIG = path.join(BUILD, 'fake-ifconfig');
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) || 3);
const VIPS = 100;
const PASSWORD = 'benchpass';


execFileSync('make', ['-C', path.join(ROOT, 'native')], { stdio: 'pipe' });
const WORK = mkdtempSync(path.join(process.env.BENCH_STATE_DIR ?? os.tmpdir(), 'carpd-bench-fbsd-'));
process.env.FAKEBSD_STATE = path.join(WORK, 'kernel.state');

const koffi = createRequire(import.meta.url)('koffi');
const lib = koffi.load(LIBC);
const fakeReset = lib.func('int fakebsd_reset(void)') as () => number;
const fakeDump = lib.func('int fakebsd_dump(void *buf, size_t len)') as (b: Buffer | null, n: number) => number;
const ioctlTotal = lib.func('long fakebsd_ioctl_count(unsigned long request)') as (r: number) => number;
const netlinkTotal = lib.func('long fakebsd_netlink_count(int cmd)') as (c: number) => number;
const fakeOsreldate = lib.func('int fakebsd_set_osreldate(int v)') as (v: number) => number;

// ---- counting what a change costs -------------------------------------------------------------

/** Kernel calls by name ("netlink GET", "ioctl SIOCAIFADDR", ...), split into reads and writes. */
class CallCounter {
  readonly reads = new Map<string, number>();
  readonly writes = new Map<string, number>();
  recvs = 0;
  fsyncs = 0;

  read(name: string): void {
    this.reads.set(name, (this.reads.get(name) ?? 0) + 1);
  }

  write(name: string): void {
    this.writes.set(name, (this.writes.get(name) ?? 0) + 1);
  }

  snapshot(): Snapshot {
    return { reads: new Map(this.reads), writes: new Map(this.writes), recvs: this.recvs, fsyncs: this.fsyncs };
  }
}

interface Snapshot {
  reads: Map<string, number>;
  writes: Map<string, number>;
  recvs: number;
  fsyncs: number;
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

function minus(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of a) if (v - (b.get(k) ?? 0) !== 0) out.set(k, v - (b.get(k) ?? 0));
  return out;
}

const READ_IOCTLS = new Set([SIOCGVH, SIOCGETPFSYNC, SIOCGETPFSYNCNV].map(Number));

/** The backend's libc with every kernel call counted; the calls themselves are unchanged. */
function countingLibc(inner: Libc, c: CallCounter): Libc {
  return {
    ...inner,
    path: inner.path,
    ioctl: (fd, request, arg, iface) => {
      const r = Number(request);
      const name = `ioctl ${ioctlName(r) ?? `0x${r.toString(16)}`}`;
      if (READ_IOCTLS.has(r)) c.read(name);
      else c.write(name);
      inner.ioctl(fd, request, arg, iface);
    },
    sysctlbyname: (name, oldp, oldlen, newp) => {
      if (newp) c.write('sysctl write');
      else c.read('sysctl read');
      return inner.sysctlbyname(name, oldp, oldlen, newp);
    },
    // if_nametoindex(3) asks the kernel too (SIOCGIFINDEX on FreeBSD).
    ifNameToIndex: (name) => {
      c.read('if_nametoindex');
      return inner.ifNameToIndex(name);
    },
    send: (fd, buf, flags) => {
      const type = buf.readUInt16LE(4);
      const dump = (buf.readUInt16LE(6) & NLM_F_DUMP) === NLM_F_DUMP;
      if (type === GENL_ID_CTRL) c.read('netlink GETFAMILY');
      else if (dump) c.read('netlink GET');
      else c.write('netlink SET');
      return inner.send(fd, buf, flags);
    },
    recv: (fd, buf, flags) => {
      c.recvs++;
      return inner.recv(fd, buf, flags);
    },
  };
}

/** Counts fsync(2) through every FileHandle (the ledger's atomic writes go through one). */
async function countFsyncs(c: CallCounter): Promise<() => void> {
  const h = await fs.open(ROOT, 'r');
  const proto = Object.getPrototypeOf(h) as { sync: () => Promise<void>; datasync: () => Promise<void> };
  await h.close();
  const { sync, datasync } = proto;
  proto.sync = function (this: unknown) {
    c.fsyncs++;
    return sync.call(this);
  };
  proto.datasync = function (this: unknown) {
    c.fsyncs++;
    return datasync.call(this);
  };
  return () => {
    proto.sync = sync;
    proto.datasync = datasync;
  };
}

interface ChangeCost {
  reads: Map<string, number>;
  writes: Map<string, number>;
  recvs: number;
  fsyncs: number;
  ms: number;
}

interface CostRun {
  release: number;
  create: ChangeCost[];
  remove: ChangeCost[];
}

/** The 200 changes once more, each one's kernel calls and fsyncs counted on its own. */
async function runCost(release: 13 | 14): Promise<CostRun> {
  fakeReset();
  if (release === 13) fakeOsreldate(1302001);
  const counter = new CallCounter();
  const restore = await countFsyncs(counter);
  const stateDir = mkdtempSync(path.join(WORK, 'carpd-bench-cost-'));
  try {
    const b = await openFreebsdBackend({ stateDir, libc: countingLibc(loadLibc(LIBC), counter), libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe') });
    const measure = async (change: () => Promise<void>): Promise<ChangeCost> => {
      const before = counter.snapshot();
      const s = process.hrtime.bigint();
      await change();
      const ms = Number(process.hrtime.bigint() - s) / 1e6;
      const after = counter.snapshot();
      return { reads: minus(after.reads, before.reads), writes: minus(after.writes, before.writes), recvs: after.recvs - before.recvs, fsyncs: after.fsyncs - before.fsyncs, ms };
    };
    const run: CostRun = { release, create: [], remove: [] };
    for (const v of vips) {
      run.create.push(
        await measure(async () => {
          await b.setVhid(v.iface, v.vhid, { advbaseSec: 1, advskew: 0, key: PASSWORD });
          await b.addAddress(v.iface, v.vhid, v.cidr);
        }),
      );
    }
    check(`cost on FreeBSD ${release}, after the creations`, VIPS);
    for (const v of vips) run.remove.push(await measure(() => b.removeVhid(v.iface, v.vhid)));
    check(`cost on FreeBSD ${release}, after the removals`, 0);
    await b.close();
    return run;
  } finally {
    restore();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** "3.02 (GET 3.02)": the mean per change, then each kind of call's mean. */
function perChange(costs: ChangeCost[], pick: (c: ChangeCost) => Map<string, number>): string {
  const total = new Map<string, number>();
  for (const c of costs) for (const [k, v] of pick(c)) total.set(k, (total.get(k) ?? 0) + v);
  const n = costs.length;
  const mean = (x: number) => (Number.isInteger(x / n) ? String(x / n) : (x / n).toFixed(2));
  const max = Math.max(...costs.map((c) => sum(pick(c))));
  const parts = [...total].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${mean(v)} ${k}`);
  return `${mean(sum(total))} (max ${max})${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

function costRows(r: CostRun): string[] {
  const row = (what: string, costs: ChangeCost[]) => {
    const n = costs.length;
    const recvs = costs.reduce((a, c) => a + c.recvs, 0) / n;
    const fsyncs = costs.map((c) => c.fsyncs);
    const ms = [...costs.map((c) => c.ms)].sort((a, b) => a - b);
    return `| ${r.release} (${r.release === 13 ? 'ioctl' : 'netlink'}) | ${what} | ${perChange(costs, (c) => c.reads)} | ${perChange(costs, (c) => c.writes)} | ${(recvs).toFixed(2)} | ${(fsyncs.reduce((a, b) => a + b, 0) / n).toFixed(2)} (max ${Math.max(...fsyncs)}) | ${ms[Math.floor(n / 2)].toFixed(3)} |`;
  };
  return [row('create: setVhid + addAddress', r.create), row('remove: removeVhid', r.remove)];
}

function dump(): { vhids: unknown[]; interfaces: { name: string; addresses: unknown[] }[] } {
  const n = fakeDump(null, 0);
  const b = Buffer.alloc(n + 1);
  fakeDump(b, b.length);
  return JSON.parse(b.toString('utf8', 0, n));
}

interface Vip {
  iface: string;
  vhid: number;
  cidr: string;
}
// 50 per interface: the fake keeps at most 64 addresses per interface.
const vips: Vip[] = Array.from({ length: VIPS }, (_, i) => {
  const iface = i < VIPS / 2 ? 'em0' : 'em1';
  const vhid = (i % (VIPS / 2)) + 1;
  return { iface, vhid, cidr: `${iface === 'em0' ? '10.0' : '10.1'}.${vhid}.1/24` };
});

interface Run {
  totalMs: number;
  perChange: number[];
  processes: number;
  ioctls: number;
  netlink: number;
}

function check(what: string, expectVhids: number): void {
  const d = dump();
  const addrs = d.interfaces.reduce((n, i) => n + i.addresses.length, 0);
  if (d.vhids.length !== expectVhids || addrs !== expectVhids) throw new Error(`${what}: the fake kernel has ${d.vhids.length} vhids and ${addrs} addresses, expected ${expectVhids} of each`);
}

async function runBackend(stateRoot = WORK): Promise<Run> {
  fakeReset();
  const stateDir = mkdtempSync(path.join(stateRoot, 'carpd-bench-state-'));
  const b = await openFreebsdBackend({ stateDir, libcPath: LIBC, libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe') });
  const io0 = ioctlTotal(0);
  const nl0 = netlinkTotal(0);
  const perChange: number[] = [];
  const t0 = process.hrtime.bigint();
  for (const v of vips) {
    const s = process.hrtime.bigint();
    await b.setVhid(v.iface, v.vhid, { advbaseSec: 1, advskew: 0, key: PASSWORD });
    await b.addAddress(v.iface, v.vhid, v.cidr);
    perChange.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  check('backend, after the creations', VIPS);
  for (const v of vips) {
    const s = process.hrtime.bigint();
    await b.removeVhid(v.iface, v.vhid);
    perChange.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  check('backend, after the removals', 0);
  const run = { totalMs, perChange, processes: 0, ioctls: ioctlTotal(0) - io0, netlink: netlinkTotal(0) - nl0 };
  await b.close();
  rmSync(stateDir, { recursive: true, force: true });
  return run;
}

function ifconfig(args: string[]): void {
  const r = spawnSync(IFCONFIG, args, { env: { ...process.env, CARPD_FREEBSD_LIBC: LIBC }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fake-ifconfig ${args.join(' ')}: ${r.stderr || r.error}`);
}

function runForks(): Run {
  fakeReset();
  const io0 = ioctlTotal(0);
  const perChange: number[] = [];
  let processes = 0;
  const t0 = process.hrtime.bigint();
  for (const v of vips) {
    const s = process.hrtime.bigint();
    ifconfig([v.iface, 'vhid', String(v.vhid), 'advskew', '0', 'pass', PASSWORD]);
    ifconfig([v.iface, 'inet', v.cidr, 'vhid', String(v.vhid), 'alias']);
    processes += 2;
    perChange.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  check('fork per step, after the creations', VIPS);
  for (const v of vips) {
    const s = process.hrtime.bigint();
    ifconfig([v.iface, 'inet', v.cidr.split('/')[0], '-alias']);
    processes += 1;
    perChange.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  check('fork per step, after the removals', 0);
  return { totalMs, perChange, processes, ioctls: ioctlTotal(0) - io0, netlink: 0 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

/** The round with the median total, so that its per-change figures belong to it. */
function medianRun(runs: Run[]): Run {
  const m = median(runs.map((r) => r.totalMs));
  return runs.reduce((best, r) => (Math.abs(r.totalMs - m) < Math.abs(best.totalMs - m) ? r : best));
}

async function main(): Promise<void> {
  const load = os.loadavg();
  // One warm-up of each (JIT, page cache, the binaries), then the measured rounds, interleaved.
  await runBackend();
  runForks();
  const fsOf = (dir: string) => FS_TYPES[Number(statfsSync(dir).type)] ?? `statfs type 0x${Number(statfsSync(dir).type).toString(16)}`;
  const fsType = fsOf(WORK);
  // Where the ledger's fsyncs cost nothing: what the kernel calls themselves cost.
  const shm = fsType !== 'tmpfs' && existsSync('/dev/shm') && fsOf('/dev/shm') === 'tmpfs' ? '/dev/shm' : undefined;
  const backendRuns: Run[] = [];
  const shmRuns: Run[] = [];
  const forkRuns: Run[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    backendRuns.push(await runBackend());
    if (shm) shmRuns.push(await runBackend(shm));
    forkRuns.push(runForks());
  }
  const b = medianRun(backendRuns);
  const f = medianRun(forkRuns);
  const changes = vips.length * 2;
  const fmt = (n: number, d = 2) => n.toFixed(d);
  const row = (name: string, r: Run, calls: string) =>
    `| ${name} | ${changes} | ${fmt(r.totalMs, 1)} | ${fmt(r.totalMs / changes, 3)} | ${fmt(pct(r.perChange, 50), 3)} | ${fmt(pct(r.perChange, 99), 3)} | ${calls} |`;
  const costs = [await runCost(14), await runCost(13)];
  const cpus = os.cpus();
  const ratio = f.totalMs / b.totalMs;
  const rev = gitRevision();
  const md = [
    '# carpd FreeBSD backend benchmark',
    '',
    `- Date: ${new Date().toISOString()}${rev ? `, commit ${rev}` : ''}`,
    `- Machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${os.type()} ${os.release()}; Node ${process.version}; load average ${load.map((x) => x.toFixed(2)).join(' ')} before the run`,
    `- Kernel: the fake FreeBSD 14 libc of native/ (shared state file, flock per call), for both approaches`,
    `- Changes: ${VIPS} VIP creations (vhid with a password + one IPv4 address) then ${VIPS} removals; median of ${ROUNDS} rounds after one warm-up`,
    `- Backend ledger on ${fsType} (one atomic write + fsync per address change)`,
    '',
    '| Approach | Changes | Wall ms | ms/change | p50 ms | p99 ms | Kernel calls |',
    '|---|---:|---:|---:|---:|---:|---|',
    row('freebsd backend, in-process (koffi: ioctl + netlink)', b, `${b.ioctls} ioctls, ${b.netlink} netlink messages`),
    ...(shm ? [row('freebsd backend, in-process, ledger on tmpfs (no fsync cost)', medianRun(shmRuns), `${medianRun(shmRuns).ioctls} ioctls, ${medianRun(shmRuns).netlink} netlink messages`)] : []),
    row(`pfSense way: one fake-ifconfig process per step (${f.processes} processes)`, f, `${f.ioctls} ioctls`),
    '',
    `- Fork per step / in-process: **${fmt(ratio, 1)}×** the wall time (${fmt(f.totalMs / changes, 3)} vs ${fmt(b.totalMs / changes, 3)} ms per change)`,
    ...(shm ? [`- Fork per step / in-process with the ledger on tmpfs: **${fmt(f.totalMs / medianRun(shmRuns).totalMs, 1)}×**; the difference between the two backend rows is the ledger's fsyncs`] : []),
    `- Rounds (wall ms): backend ${backendRuns.map((r) => fmt(r.totalMs, 0)).join(', ')}${shm ? `; backend on tmpfs ${shmRuns.map((r) => fmt(r.totalMs, 0)).join(', ')}` : ''}; fork ${forkRuns.map((r) => fmt(r.totalMs, 0)).join(', ')}`,
    '',
    '## Kernel calls per VIP change',
    '',
    `Each of the ${VIPS} creations and ${VIPS} removals counted on its own (one more pass, ledger on ${fsType}): mean per change (max), by kind. ` +
      'A netlink request is one send() and the recv() calls that collect its reply; an atomic ledger write is one fsync() (the new file, before its rename).',
    '',
    '| FreeBSD | Change | Kernel reads | Kernel writes | recv() calls | fsync() calls | p50 ms |',
    '|---|---|---|---|---:|---:|---:|',
    ...costs.flatMap(costRows),
    '',
  ].join('\n');
  process.stdout.write(md);
  mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench', 'results', 'freebsd-backend-latest.md'), md);
}

try {
  await main();
} finally {
  rmSync(WORK, { recursive: true, force: true });
}
