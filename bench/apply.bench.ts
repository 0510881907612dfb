/**
 * Declarative apply benchmark: one `PUT /v1/config` adding 200 VIPs (a vhid with a password and
 * one IPv4 address each, 50 on each of em0..em3) to a carpd whose backend is `freebsd` on the
 * fake FreeBSD libc of native/, versus the same 200 VIPs the pfSense way: one stub `ifconfig`
 * process per step (`ifconfig IF vhid N advskew 0 pass P`, then `ifconfig IF inet A/P vhid N
 * alias`: 400 processes), both against the same fake kernel (FAKEBSD_STATE), as
 * bench/freebsd-backend.bench.ts does.
 *
 *   npm run bench:apply
 *   BENCH_ROUNDS=7 npm run bench:apply               rounds per approach (median reported; default 5)
 *   BENCH_WARMUP=20 npm run bench:apply              warm-up PUT pairs before the measured rounds (default 1)
 *   BENCH_STATE_DIR=/dev/shm npm run bench:apply     where carpd's state dir (and its fsyncs) go
 *
 * The PUT is timed from the request to the answer over HTTP on loopback, by a client in another
 * process (bench/http-client.ts) (auth, request and
 * response validation against the spec, validation of the document, planning, the kernel batch,
 * the durable commit). Inside it, the backend batch (KernelBackend.apply) and the commit are
 * timed too, so the report says where the time goes. Every kernel call of the PUT is counted
 * through a libc wrapper, and fsync(2) through FileHandle.sync, fs.fsync (the ledger's log) and the journal's file operations. Results go to stdout and to
 * bench/results/apply-latest.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import nodeFs, { promises as fs, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { buildApp } from '../src/api/app.js';
import { initialState } from '../src/config/model.js';
import { nodeJournalIo, type JournalIo } from '../src/config/journal.js';
import { ConfigStore } from '../src/config/store.js';
import type { BackendStep } from '../src/kernel/backend.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { SIOCGETPFSYNC, SIOCGETPFSYNCNV, SIOCGVH, ioctlName } from '../src/kernel/freebsd/layout.js';
import { AddressLedger } from '../src/kernel/freebsd/ledger.js';
import { type Libc, loadLibc } from '../src/kernel/freebsd/libc.js';
import { CarpService, hashToken } from '../src/service/service.js';
import { GENL_ID_CTRL, NLM_F_DUMP } from '../src/wire/netlink.js';
import { FS_TYPES, ROOT, gitRevision } from './common.js';
import { startHttpClient } from './http-client.js';

const BUILD = path.join(ROOT, 'native', 'build');
const LIBC = path.join(BUILD, 'libfakefreebsd.so');
const LIBNV = path.join(BUILD, 'libfakenv.so');
const IFCONFIG = path.join(BUILD, 'fake-ifconfig');
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5) || 5);
/** PUT pairs (add, remove) before the measured rounds: 1 by default; more measures a daemon whose code V8 has already optimized. */
const WARMUP = Math.max(1, Number(process.env.BENCH_WARMUP ?? 1) || 1);
const VIPS = 200;
const IFACES = ['em0', 'em1', 'em2', 'em3'];
const PASSWORD = 'benchpass';
const TOKEN = 'carpd_bench_admin_token_0123456789';

execFileSync('make', ['-C', path.join(ROOT, 'native')], { stdio: 'pipe' });
const WORK = mkdtempSync(path.join(process.env.BENCH_STATE_DIR ?? os.tmpdir(), 'carpd-bench-apply-'));
process.env.FAKEBSD_STATE = path.join(WORK, 'kernel.state');

const koffi = createRequire(import.meta.url)('koffi');
const lib = koffi.load(LIBC);
const fakeReset = lib.func('int fakebsd_reset(void)') as () => number;
const fakeAddInterface = lib.func('int fakebsd_add_interface(const char *name, int flags)') as (n: string, f: number) => number;
const fakeDump = lib.func('int fakebsd_dump(void *buf, size_t len)') as (b: Buffer | null, n: number) => number;

// 50 per interface: the fake keeps at most 64 addresses per interface.
const vips = Array.from({ length: VIPS }, (_, i) => {
  const iface = IFACES[Math.floor(i / (VIPS / IFACES.length))];
  const vhid = (i % (VIPS / IFACES.length)) + 1;
  return { iface, vhid, cidr: `10.${IFACES.indexOf(iface)}.${vhid}.1/24` };
});
const document = { vips: vips.map((v) => ({ interface: v.iface, vhid: v.vhid, addresses: [v.cidr], advskew: 0, password: PASSWORD })) };

function resetKernel(): void {
  fakeReset();
  // em0 and em1 exist after a reset; the others are Ethernet-like too (UP|BROADCAST|RUNNING|MULTICAST).
  for (const name of IFACES.slice(2)) fakeAddInterface(name, 0x8043);
}

function check(what: string, expect: number): void {
  const n = fakeDump(null, 0);
  const b = Buffer.alloc(n + 1);
  fakeDump(b, b.length);
  const d = JSON.parse(b.toString('utf8', 0, n)) as { vhids: unknown[]; interfaces: { addresses: unknown[] }[] };
  const addrs = d.interfaces.reduce((a, i) => a + i.addresses.length, 0);
  if (d.vhids.length !== expect || addrs !== expect) throw new Error(`${what}: the fake kernel has ${d.vhids.length} vhids and ${addrs} addresses, expected ${expect} of each`);
}

// ---- counting ---------------------------------------------------------------------------------

interface Counts {
  reads: Map<string, number>;
  writes: Map<string, number>;
  sends: number;
  recvs: number;
  fsyncs: number;
  /** Time inside the kernel calls (koffi and the fake libc), and inside the ledger's writes. */
  kernelMs: number;
  ledgerMs: number;
}
const newCounts = (): Counts => ({ reads: new Map(), writes: new Map(), sends: 0, recvs: 0, fsyncs: 0, kernelMs: 0, ledgerMs: 0 });
const bump = (m: Map<string, number>, k: string, n = 1) => m.set(k, (m.get(k) ?? 0) + n);
const READ_IOCTLS = new Set([SIOCGVH, SIOCGETPFSYNC, SIOCGETPFSYNCNV].map(Number));

/** The backend's libc with every kernel call counted (netlink messages by kind, per send) and timed. */
function countingLibc(inner: Libc, c: { now: Counts }): Libc {
  const names = new Map<number, string>();
  const timed = <T>(call: () => T): T => {
    const s = process.hrtime.bigint();
    try {
      return call();
    } finally {
      c.now.kernelMs += Number(process.hrtime.bigint() - s) / 1e6;
    }
  };
  return {
    ...inner,
    path: inner.path,
    ioctl: (fd, request, arg, iface) => {
      const r = Number(request);
      if (!names.has(r)) names.set(r, `ioctl ${ioctlName(r) ?? `0x${r.toString(16)}`}`);
      bump(READ_IOCTLS.has(r) ? c.now.reads : c.now.writes, names.get(r)!);
      timed(() => inner.ioctl(fd, request, arg, iface));
    },
    sysctlbyname: (name, oldp, oldlen, newp) => {
      bump(newp ? c.now.writes : c.now.reads, newp ? 'sysctl write' : 'sysctl read');
      return timed(() => inner.sysctlbyname(name, oldp, oldlen, newp));
    },
    ifNameToIndex: (name) => {
      bump(c.now.reads, 'if_nametoindex');
      return timed(() => inner.ifNameToIndex(name));
    },
    send: (fd, buf, flags) => {
      c.now.sends++;
      for (let off = 0; off + 16 <= buf.length; ) {
        const len = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        const dump = (buf.readUInt16LE(off + 6) & NLM_F_DUMP) === NLM_F_DUMP;
        if (type === GENL_ID_CTRL) bump(c.now.reads, 'netlink GETFAMILY');
        else if (dump) bump(c.now.reads, 'netlink GET');
        else bump(c.now.writes, 'netlink SET');
        off += (len + 3) & ~3;
      }
      return timed(() => inner.send(fd, buf, flags));
    },
    recv: (fd, buf, flags) => {
      c.now.recvs++;
      return timed(() => inner.recv(fd, buf, flags));
    },
  };
}

/** Times the freebsd backend's ledger writes (one appended line each; a batch's without an fsync). */
function timeLedger(c: { now: Counts }): () => void {
  const save = AddressLedger.prototype.save;
  AddressLedger.prototype.save = async function (this: AddressLedger, ...args: Parameters<AddressLedger['save']>) {
    const s = process.hrtime.bigint();
    try {
      return await save.apply(this, args);
    } finally {
      c.now.ledgerMs += Number(process.hrtime.bigint() - s) / 1e6;
    }
  };
  return () => {
    AddressLedger.prototype.save = save;
  };
}

async function countFsyncs(c: { now: Counts }): Promise<() => void> {
  const h = await fs.open(ROOT, 'r');
  const proto = Object.getPrototypeOf(h) as { sync: () => Promise<void>; datasync: () => Promise<void> };
  await h.close();
  const { sync, datasync } = proto;
  proto.sync = function (this: unknown) {
    c.now.fsyncs++;
    return sync.call(this);
  };
  proto.datasync = function (this: unknown) {
    c.now.fsyncs++;
    return datasync.call(this);
  };
  // The ledger's log: a plain descriptor, fsynced with fs.fsync (the journal's own fsync is counted through its JournalIo).
  const fsync = nodeFs.fsync;
  nodeFs.fsync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => {
    c.now.fsyncs++;
    return fsync(fd, cb);
  }) as typeof nodeFs.fsync;
  return () => {
    proto.sync = sync;
    proto.datasync = datasync;
    nodeFs.fsync = fsync;
  };
}

// ---- the three ways -----------------------------------------------------------------------------

interface PutRun {
  totalMs: number;
  batchMs: number;
  commitMs: number;
  revisions: number;
  counts: Counts;
}

interface Carpd {
  put(doc: unknown, expectVhids: number): Promise<PutRun>;
  close(): Promise<void>;
}

/**
 * One carpd (in this process, listening on loopback) for every round, as a running daemon is:
 * its validators compiled and its code warm after the first requests. Its client is another
 * process (bench/http-client.ts), which times each PUT from the request to the answer's last byte.
 */
async function startCarpd(counter: { now: Counts }): Promise<Carpd> {
  resetKernel();
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const logger = pino({ level: 'silent' });
  // The journal's appends and fsyncs counted through its file operations (they use plain descriptors, not FileHandle).
  const io: JournalIo = {
    async open(file) {
      const h = await nodeJournalIo.open(file);
      return {
        get size() {
          return h.size;
        },
        append: (data) => h.append(data),
        sync: () => {
          counter.now.fsyncs++;
          return h.sync();
        },
        truncate: (n) => h.truncate(n),
        close: () => h.close(),
      };
    },
  };
  const store = await ConfigStore.open(
    stateDir,
    () => {
      const s = initialState(new Date());
      s.api.tokens.push({ name: 'admin', role: 'admin', sha256: hashToken(TOKEN), createdAt: new Date().toISOString() });
      return s;
    },
    { io },
  );
  const backend = await openFreebsdBackend({ stateDir, libc: countingLibc(loadLibc(LIBC), counter), libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe') });
  // The batch and the commit, timed where the service calls them.
  const timed = { batchMs: 0, commitMs: 0 };
  const apply = backend.apply.bind(backend);
  backend.apply = async (steps: readonly BackendStep[]) => {
    const s = process.hrtime.bigint();
    try {
      return await apply(steps);
    } finally {
      timed.batchMs += Number(process.hrtime.bigint() - s) / 1e6;
    }
  };
  // The commit: staging the revision (its journal record encoded) and the group's flush (the
  // append and its fsync), which the service runs on a later turn of the event loop.
  const stage = store.stage.bind(store);
  store.stage = (...args: Parameters<ConfigStore['stage']>) => {
    const s = process.hrtime.bigint();
    try {
      return stage(...args);
    } finally {
      timed.commitMs += Number(process.hrtime.bigint() - s) / 1e6;
    }
  };
  const flush = store.flush.bind(store);
  store.flush = async () => {
    const s = process.hrtime.bigint();
    try {
      return await flush();
    } finally {
      timed.commitMs += Number(process.hrtime.bigint() - s) / 1e6;
    }
  };
  const service = new CarpService({ store, backend, logger });
  await service.start();
  const server = createServer(buildApp({ service, logger, version: 'bench' }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/config`;
  // The client in a process of its own, as Ansible or curl would be: its work is not carpd's.
  const client = startHttpClient();
  return {
    async put(doc, expectVhids) {
      const body = JSON.stringify(doc);
      const revisionBefore = service.desired().revision;
      timed.batchMs = 0;
      timed.commitMs = 0;
      counter.now = newCounts();
      const res = await client.request({ url, method: 'PUT', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', 'If-Match': `"${revisionBefore}"` }, body });
      const answer = JSON.parse(res.text) as { revision?: number; detail?: string };
      const totalMs = res.ms;
      const counts = counter.now;
      counter.now = newCounts();
      if (res.status !== 200) throw new Error(`PUT /v1/config answered ${res.status}: ${answer.detail ?? ''}`);
      check('PUT /v1/config', expectVhids);
      return { totalMs, batchMs: timed.batchMs, commitMs: timed.commitMs, revisions: (answer.revision ?? -1) - revisionBefore, counts };
    },
    async close() {
      client.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await service.close();
      await backend.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

function ifconfig(args: string[]): void {
  const r = spawnSync(IFCONFIG, args, { env: { ...process.env, CARPD_FREEBSD_LIBC: LIBC }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fake-ifconfig ${args.join(' ')}: ${r.stderr || r.error}`);
}

/** The same 200 VIPs, one fake-ifconfig process per step. */
function runForks(): { totalMs: number; processes: number } {
  resetKernel();
  let processes = 0;
  const t0 = process.hrtime.bigint();
  for (const v of vips) {
    ifconfig([v.iface, 'vhid', String(v.vhid), 'advskew', '0', 'pass', PASSWORD]);
    ifconfig([v.iface, 'inet', v.cidr, 'vhid', String(v.vhid), 'alias']);
    processes += 2;
  }
  const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;
  check('fork per step', VIPS);
  return { totalMs, processes };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function callList(m: Map<string, number>): string {
  const total = [...m.values()].reduce((a, b) => a + b, 0);
  return `${total}${m.size ? ` (${[...m].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${v} ${k}`).join(', ')})` : ''}`;
}

async function main(): Promise<void> {
  const load = os.loadavg();
  const counter = { now: newCounts() };
  const restoreFsyncs = await countFsyncs(counter);
  const restoreLedger = timeLedger(counter);
  try {
    const carpd = await startCarpd(counter);
    const empty = { vips: [] };
    const puts: PutRun[] = [];
    const removals: PutRun[] = [];
    const forks: { totalMs: number; processes: number }[] = [];
    try {
      // WARMUP warm-ups of the PUTs and one of the forks (JIT, the validators, page cache, the
      // binaries), then the measured rounds: every PUT round (the 200 VIPs added with one PUT,
      // removed with another), then every fork round. Not interleaved: a fork round leaves this
      // process's heap and caches full of 400 children's leftovers, which the PUT right after
      // it would be charged for.
      for (let i = 0; i < WARMUP; i++) {
        await carpd.put(document, VIPS);
        await carpd.put(empty, 0);
      }
      for (let i = 0; i < ROUNDS; i++) {
        puts.push(await carpd.put(document, VIPS));
        removals.push(await carpd.put(empty, 0));
      }
      runForks();
      for (let i = 0; i < ROUNDS; i++) forks.push(runForks());
      resetKernel();
    } finally {
      await carpd.close();
    }
    const put = {
      total: median(puts.map((p) => p.totalMs)),
      batch: median(puts.map((p) => p.batchMs)),
      commit: median(puts.map((p) => p.commitMs)),
      kernel: median(puts.map((p) => p.counts.kernelMs)),
      ledger: median(puts.map((p) => p.counts.ledgerMs)),
    };
    const fork = median(forks.map((f) => f.totalMs));
    const c = puts[puts.length - 1].counts;
    const revisions = [...puts, ...removals].map((p) => p.revisions);
    if (revisions.some((r) => r !== 1)) throw new Error(`a PUT made ${revisions.join(', ')} revisions, expected 1 each`);
    const removal = { total: median(removals.map((p) => p.totalMs)), batch: median(removals.map((p) => p.batchMs)) };
    const rc = removals[removals.length - 1].counts;
    const fsType = FS_TYPES[Number(statfsSync(WORK).type)] ?? `statfs type 0x${Number(statfsSync(WORK).type).toString(16)}`;
    const cpus = os.cpus();
    const rev = gitRevision();
    const fmt = (n: number, d = 1) => n.toFixed(d);
    const rest = put.total - put.batch - put.commit;
    const md = [
      '# carpd declarative apply benchmark',
      '',
      `- Date: ${new Date().toISOString()}${rev ? `, commit ${rev}` : ''}`,
      `- Machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${os.type()} ${os.release()}; Node ${process.version}; load average ${load.map((x) => x.toFixed(2)).join(' ')} before the run`,
      `- Kernel: the fake FreeBSD 14 libc of native/ (shared state file, flock per call), for both approaches`,
      `- Change: ${VIPS} new VIPs (a vhid with a password and one IPv4 address each, ${VIPS / IFACES.length} on each of ${IFACES.join(', ')}) in one \`PUT /v1/config\` to a running carpd (backend \`freebsd\`, over HTTP on loopback), then all removed in another; median of ${ROUNDS} rounds of each after ${WARMUP === 1 ? 'one warm-up' : `${WARMUP} warm-up PUT pairs and one fork round`} (the PUT rounds first, then the fork rounds); carpd's state dir on ${fsType}`,
      '',
      '| Approach | Wall ms | Revisions | Kernel calls |',
      '|---|---:|---:|---|',
      `| carpd \`PUT /v1/config\` (HTTP on loopback → answer: validation, plan, batch, durable commit) | ${fmt(put.total)} | 1 | ${c.sends} netlink sends, ${[...c.writes].reduce((a, [, v]) => a + v, 0)} writes, ${[...c.reads].reduce((a, [, v]) => a + v, 0)} reads |`,
      `| of which the backend batch (\`KernelBackend.apply\`) | ${fmt(put.batch)} | | |`,
      `| carpd \`PUT /v1/config\` with \`vips: []\` (the 200 VIPs removed) | ${fmt(removal.total)} | 1 | ${rc.sends} netlink sends, ${[...rc.writes].reduce((a, [, v]) => a + v, 0)} writes, ${[...rc.reads].reduce((a, [, v]) => a + v, 0)} reads (batch ${fmt(removal.batch)} ms) |`,
      `| pfSense way: one fake-ifconfig process per step (${forks[0].processes} processes) | ${fmt(fork)} | | ${VIPS * 2} ioctls |`,
      '',
      `- Fork per step / \`PUT /v1/config\`: **${fmt(fork / put.total)}×** (${fmt(fork)} vs ${fmt(put.total)} ms for ${VIPS} VIPs)`,
      `- Fork per step / the backend batch alone: **${fmt(fork / put.batch)}×** (${fmt(fork)} vs ${fmt(put.batch)} ms)`,
      `- Fork per step / the kernel calls of the PUT (koffi and the fake libc, ${[...c.writes, ...c.reads].reduce((a, [, v]) => a + v, 0)} calls): **${fmt(fork / put.kernel, 0)}×** (${fmt(fork)} vs ${fmt(put.kernel)} ms)`,
      `- Where the PUT's ${fmt(put.total)} ms go (medians): the backend batch ${fmt(put.batch)} ms, of which ${fmt(put.kernel)} ms in kernel calls and ${fmt(put.ledger)} ms writing the ledger (one line appended, not fsynced: ledger.ts), the rest planning and bookkeeping; the durable commit ${fmt(put.commit)} ms (the revision staged, its journal record appended and fsynced); everything else (HTTP, auth, request and response validation against the spec, the document's rules, reading the live state, planning) ${fmt(rest)} ms`,
      `- Rounds (wall ms): PUT ${puts.map((p) => fmt(p.totalMs, 0)).join(', ')}; its batch ${puts.map((p) => fmt(p.batchMs, 0)).join(', ')}; its commit ${puts.map((p) => fmt(p.commitMs, 0)).join(', ')}; removal PUT ${removals.map((p) => fmt(p.totalMs, 0)).join(', ')}; fork ${forks.map((f) => fmt(f.totalMs, 0)).join(', ')}`,
      '',
      '## Kernel calls and fsyncs of one PUT adding the 200 VIPs',
      '',
      `- Kernel writes: ${callList(c.writes)}`,
      `- Kernel reads: ${callList(c.reads)}`,
      `- netlink: ${c.sends} send() calls, ${c.recvs} recv() calls`,
      `- fsync(): ${c.fsyncs} (the commit's journal append; the ledger's line is appended without one)`,
      '',
    ].join('\n');
    process.stdout.write(md);
    mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench', 'results', 'apply-latest.md'), md);
  } finally {
    restoreFsyncs();
    restoreLedger();
  }
}

try {
  await main();
} finally {
  rmSync(WORK, { recursive: true, force: true });
}
