/**
 * A LAN of network namespaces for tests and benches that need real Linux networking:
 *
 *                      bridge namespace: br0 (Linux bridge, no STP, no multicast snooping)
 *                        │ v0               │ v1        ...        │ vc      veth pairs
 *                        │ lan0             │ lan0                 │ lan0
 *   root namespace  ┌────┴───────┐    ┌─────┴──────┐        ┌──────┴──────┐
 *   cdm<k0> ────────┤ node 0     │    │ node 1     │        │ client      │
 *   cdm<k1> ───┐    │ mgmt0      │    │ mgmt0      │        └─────────────┘
 *              │    └────────────┘    └─────┬──────┘
 *              └────────────────────────────┘  management veth pairs
 *
 *   node i   lan0  192.0.2.(10+i)/24, with ipv6 also 2001:db8::(10+i)/64 (nodad)
 *            mgmt0 203.0.113.(4k+2)/30, its root-side peer cdm<k> 203.0.113.(4k+1)/30
 *   client   lan0  192.0.2.100/24, with ipv6 also 2001:db8::100/64 (nodad)
 *
 * Each node namespace has `lan0` on the bridge and, for the tests in the root namespace, a
 * management veth pair to the root namespace with a /30 of 203.0.113.0/24: a daemon listening on
 * node.mgmtAddress inside the namespace is reachable from the test process. The /30 blocks are
 * shared by every process on the host, so each is claimed with an exclusive file under /run
 * (released by destroy(), reclaimed from dead processes), which also makes the root-side
 * interface name cdm<k> unique.
 *
 * Every namespace: lo up, rp_filter 0 (strict reverse-path filtering drops multicast from a source
 * not routed back through the receiving interface, toolchain-notes.md), accept_dad 0 (link-local
 * addresses usable at once, so IPv6 multicast has its source from the start). The client accepts
 * gratuitous ARP and untracked neighbour advertisements (arp_accept; accept_untracked_na, which
 * Linux honours only with IPv6 forwarding on, so the client forwards IPv6), so a test can see an
 * announcement create its neighbour entry. createLan() returns once every lan0 is operationally up
 * with its link-local address (before that, IPv6 multicast sends fail with ENETUNREACH).
 *
 * Names carry the pid (base 36) and a random part: `cdl-<pid>-<rand>-n0`. destroy() kills the
 * processes started through the Lan and any other process left inside its namespaces, deletes
 * the namespaces and the root-side veths, and releases the /30 claims; it is idempotent and also
 * runs at process exit (and on SIGINT/SIGTERM when nothing else handles them). Namespaces of a
 * dead process (a run killed with SIGKILL) are removed by the next createLan.
 *
 * cut()/heal() drop frames in the bridge with nftables (this kernel has no netem).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { platform } from 'node:os';
import path from 'node:path';

export interface LanNode {
  ns: string;
  iface: 'lan0';
  /** '192.0.2.(10+i)' */
  address: string;
  prefix: 24;
  /** '2001:db8::(10+i)' (the decimal digits written as the last group); configured only with ipv6. */
  address6: string;
  /** In 203.0.113.0/24, on mgmt0 inside the namespace, reachable from the root namespace. */
  mgmtAddress: string;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Lan {
  id: string;
  nodes: LanNode[];
  /** address6 is configured only with ipv6. */
  client: { ns: string; iface: 'lan0'; address: '192.0.2.100'; address6: '2001:db8::100' };
  /** Runs argv inside ns (`ip netns exec`); never rejects on a non-zero exit. Default timeout 30 s (code -1 then). */
  exec(ns: string, argv: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** `ip netns exec NS argv...`: the child's pid is argv's own (ip execs it). Killed by destroy(). */
  spawn(ns: string, argv: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string }): ChildProcess;
  /** The kernel's view: every address of the interface (default lan0), as 'a.b.c.d/24' or '2001:db8::a/64'. */
  addresses(ns: string, iface?: string): Promise<string[]>;
  /** The lladdr of the neighbour entry for address, or undefined (none, or INCOMPLETE/FAILED). */
  neighbour(ns: string, address: string): Promise<string | undefined>;
  mac(ns: string, iface?: string): Promise<string>;
  /** Drops every frame between node a and node b (or between node a and everyone) in the bridge. */
  cut(a: number, b?: number): Promise<void>;
  /** Removes every cut. */
  heal(): Promise<void>;
  /** Idempotent: kills what runs inside, deletes namespaces and veths, releases the /30s. */
  destroy(): Promise<void>;
}

const PREFIX = 'cdl-';
const CLAIM_DIR = '/run/carpd-test-netns';
const MGMT_BLOCKS = 64; // /30s of 203.0.113.0/24
const MGMT_IFACE = 'mgmt0';
const CUT_TABLE = 'carpd_cut';
const DEFAULT_TIMEOUT_MS = 30_000;

// ---- availability --------------------------------------------------------------------------------

let unavailable: string | false | undefined;

/** undefined when namespaces can be used here; otherwise a one-line reason to skip. */
export function netnsUnavailable(): string | undefined {
  unavailable ??= probe();
  return unavailable || undefined;
}

function probe(): string | false {
  if (platform() !== 'linux') return `needs Linux network namespaces; this host is ${platform()}`;
  if (process.getuid?.() !== 0) return 'needs root: creates network namespaces and raw sockets';
  const v = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return 'needs iproute2: `ip` not found';
  const name = `${PREFIX}probe-${process.pid.toString(36)}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot create network namespaces: ${(add.stderr || add.error?.message || '').trim().split('\n')[0]}`;
  spawnSync('ip', ['netns', 'del', name]);
  return false;
}

// ---- commands ------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms]`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    child.on('error', (e) => {
      stderr += e.message;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on('error', () => { /* the command did not read its input */ });
    child.stdin.end(opts.input ?? '');
  });
}

async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}${input ? `\ninput:\n${input}` : ''}`);
  return r.stdout;
}

/** `ip -batch -` (in ns when given): one process for many commands. */
function ipBatch(lines: string[], ns?: string): Promise<string> {
  return must('ip', [...(ns ? ['-n', ns] : []), '-batch', '-'], lines.join('\n') + '\n');
}

function sysctlScript(settings: Record<string, string | number>, optional: Record<string, string | number> = {}): string {
  const line = (k: string, v: string | number) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`;
  return [
    ...Object.entries(settings).map(([k, v]) => line(k, v)),
    ...Object.entries(optional).map(([k, v]) => `${line(k, v)} 2>/dev/null || true`),
  ].join('\n');
}

/** Whether pid is a running process (a zombie, killed but not yet reaped, is not). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// ---- /30 claims for the management links ---------------------------------------------------------

function claimPath(k: number): string {
  return path.join(CLAIM_DIR, `mgmt-${k}`);
}

const mgmtIface = (k: number) => `cdm${k}`;

function tryClaim(k: number): boolean {
  try {
    writeFileSync(claimPath(k), String(process.pid), { flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return false;
  }
}

function claimBlock(): number {
  mkdirSync(CLAIM_DIR, { recursive: true });
  for (let k = 0; k < MGMT_BLOCKS; k++) {
    if (tryClaim(k)) return k;
    let owner = NaN;
    try {
      owner = Number(readFileSync(claimPath(k), 'utf8'));
    } catch { /* released meanwhile */ }
    if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) continue;
    // Released meanwhile, or a dead process's claim whose veth may still exist: take it over.
    if (!Number.isNaN(owner)) {
      spawnSync('ip', ['link', 'del', mgmtIface(k)], { stdio: 'ignore' });
      try {
        unlinkSync(claimPath(k));
      } catch { /* another process took it over first */ }
    }
    if (tryClaim(k)) return k;
  }
  throw new Error(`all ${MGMT_BLOCKS} management /30 blocks of 203.0.113.0/24 are claimed (${CLAIM_DIR})`);
}

function releaseBlock(k: number): void {
  try {
    if (readFileSync(claimPath(k), 'utf8') === String(process.pid)) unlinkSync(claimPath(k));
  } catch { /* already gone */ }
}

// ---- cleanup -------------------------------------------------------------------------------------

interface Owned {
  namespaces: string[];
  blocks: number[];
  spawned: Set<ChildProcess>;
}

const live = new Set<Owned>();
let hooksInstalled = false;

/** Synchronous cleanup for process exit: no await possible there. */
function destroySync(o: Owned): void {
  for (const c of o.spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const ns of o.namespaces) killInside(ns);
  for (const ns of o.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  for (const k of o.blocks) {
    spawnSync('ip', ['link', 'del', mgmtIface(k)], { stdio: 'ignore' });
    releaseBlock(k);
  }
  live.delete(o);
}

function killInside(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  for (const p of (r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number)) {
    if (p !== process.pid) {
      try {
        process.kill(p, 'SIGKILL');
      } catch { /* gone */ }
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const o of [...live]) destroySync(o);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    if (process.listenerCount(sig) > 0) continue;
    process.once(sig, () => {
      for (const o of [...live]) destroySync(o);
      process.kill(process.pid, sig);
    });
  }
}

/** Namespaces of processes that no longer exist (killed before they could clean up). */
function removeStale(): void {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const name = line.split(' ')[0];
    const m = /^cdl-([0-9a-z]+)-/.exec(name ?? '');
    if (!m || m[1] === 'probe') continue;
    const pid = parseInt(m[1], 36);
    if (pid === process.pid || pidAlive(pid)) continue;
    killInside(name);
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

// ---- the LAN -------------------------------------------------------------------------------------

export async function createLan(opts: { nodes: number; ipv6?: boolean }): Promise<Lan> {
  const reason = netnsUnavailable();
  if (reason) throw new Error(`network namespaces unavailable: ${reason}`);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > 89) throw new RangeError('nodes must be 1..89 (192.0.2.10..98)');
  installHooks();
  removeStale();

  const id = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  const bridgeNs = `${PREFIX}${id}-br`;
  const clientNs = `${PREFIX}${id}-c`;
  const owned: Owned = { namespaces: [], blocks: [], spawned: new Set() };
  live.add(owned);

  try {
    const nodes: LanNode[] = [];
    const blocks: number[] = [];
    for (let i = 0; i < opts.nodes; i++) {
      const k = claimBlock();
      owned.blocks.push(k);
      blocks.push(k);
      nodes.push({
        ns: `${PREFIX}${id}-n${i}`,
        iface: 'lan0',
        address: `192.0.2.${10 + i}`,
        prefix: 24,
        address6: `2001:db8::${10 + i}`,
        mgmtAddress: `203.0.113.${4 * k + 2}`,
      });
    }
    const all = [bridgeNs, clientNs, ...nodes.map((n) => n.ns)];
    await ipBatch(all.map((ns) => `netns add ${ns}`));
    owned.namespaces.push(...all);

    // Defaults before the interfaces exist, so that lan0 inherits them.
    const common = {
      'net.ipv4.conf.all.rp_filter': 0,
      'net.ipv4.conf.default.rp_filter': 0,
      'net.ipv6.conf.all.accept_dad': 0,
      'net.ipv6.conf.default.accept_dad': 0,
    };
    await Promise.all([
      must('ip', ['netns', 'exec', bridgeNs, 'sh', '-ec', sysctlScript({ ...common, 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 })]),
      must('ip', ['netns', 'exec', clientNs, 'sh', '-ec', sysctlScript(
        { ...common, 'net.ipv4.conf.all.arp_accept': 1, 'net.ipv4.conf.default.arp_accept': 1 },
        // Linux creates an entry from an untracked NA only on a forwarding interface (RFC 9131).
        { 'net.ipv6.conf.all.forwarding': 1, 'net.ipv6.conf.all.accept_untracked_na': 1, 'net.ipv6.conf.default.accept_untracked_na': 1 },
      )]),
      ...nodes.map((n) => must('ip', ['netns', 'exec', n.ns, 'sh', '-ec', sysctlScript(common)])),
    ]);

    const ports = [...nodes.map((n, i) => ({ port: `v${i}`, ns: n.ns })), { port: 'vc', ns: clientNs }];
    await Promise.all([
      ipBatch(
        [
          'link set lo up',
          'link add br0 type bridge stp_state 0 mcast_snooping 0',
          'link set br0 up',
          ...ports.flatMap(({ port, ns }) => [`link add ${port} type veth peer name lan0 netns ${ns}`, `link set ${port} master br0`, `link set ${port} up`]),
        ],
        bridgeNs,
      ),
      ipBatch(
        nodes.flatMap((n, i) => {
          const k = blocks[i];
          return [`link add ${mgmtIface(k)} type veth peer name ${MGMT_IFACE} netns ${n.ns}`, `addr add 203.0.113.${4 * k + 1}/30 dev ${mgmtIface(k)}`, `link set ${mgmtIface(k)} up`];
        }),
      ),
    ]);
    await Promise.all([
      ...nodes.map((n) =>
        ipBatch(
          [
            'link set lo up',
            `addr add ${n.address}/24 dev lan0`,
            ...(opts.ipv6 ? [`addr add ${n.address6}/64 dev lan0 nodad`] : []),
            'link set lan0 up',
            `addr add ${n.mgmtAddress}/30 dev ${MGMT_IFACE}`,
            `link set ${MGMT_IFACE} up`,
          ],
          n.ns,
        ),
      ),
      ipBatch(['link set lo up', 'addr add 192.0.2.100/24 dev lan0', ...(opts.ipv6 ? ['addr add 2001:db8::100/64 dev lan0 nodad'] : []), 'link set lan0 up'], clientNs),
    ]);

    await Promise.all([...nodes.map((n) => n.ns), clientNs].map((ns) => waitReady(ns)));
    return makeLan(id, nodes, clientNs, bridgeNs, owned);
  } catch (e) {
    destroySync(owned);
    throw e;
  }
}

/**
 * Waits until lan0 is operationally up and has its IPv6 link-local address. IPv6 configures an
 * interface (multicast route, link-local) only once the kernel's link watcher has seen the carrier,
 * a moment after `ip link set up`; before that an IPv6 multicast send fails with ENETUNREACH.
 */
async function waitReady(ns: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = '';
  for (;;) {
    last = await must('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', 'lan0']);
    const [l] = JSON.parse(last) as { operstate?: string; addr_info?: { family?: string; local?: string; tentative?: boolean }[] }[];
    if (l?.operstate === 'UP' && (l.addr_info ?? []).some((a) => a.family === 'inet6' && a.local?.startsWith('fe80:') && !a.tentative)) return;
    if (Date.now() > deadline) throw new Error(`${ns}: lan0 not ready after 10 s: ${last}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function makeLan(id: string, nodes: LanNode[], clientNs: string, bridgeNs: string, owned: Owned): Lan {
  let destroyed: Promise<void> | undefined;
  const nodeIndex = (i: number) => {
    if (!Number.isInteger(i) || i < 0 || i >= nodes.length) throw new RangeError(`no node ${i} (the LAN has ${nodes.length})`);
    return i;
  };
  const json = async (ns: string, args: string[]): Promise<unknown[]> => {
    const out = await must('ip', ['-n', ns, '-j', ...args]);
    return out.trim() ? (JSON.parse(out) as unknown[]) : [];
  };

  return {
    id,
    nodes,
    client: { ns: clientNs, iface: 'lan0', address: '192.0.2.100', address6: '2001:db8::100' },

    exec: (ns, argv, o = {}) => run('ip', ['netns', 'exec', ns, ...argv], o),

    spawn: (ns, argv, o = {}) => {
      const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env: o.env ?? process.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
      owned.spawned.add(child);
      child.on('exit', () => owned.spawned.delete(child));
      return child;
    },

    addresses: async (ns, iface = 'lan0') => {
      const links = (await json(ns, ['addr', 'show', 'dev', iface])) as { addr_info?: { local?: string; prefixlen?: number }[] }[];
      return links.flatMap((l) => (l.addr_info ?? []).filter((a) => a.local).map((a) => `${a.local}/${a.prefixlen}`));
    },

    neighbour: async (ns, address) => {
      const entries = (await json(ns, ['neigh', 'show', 'to', address])) as { dst?: string; lladdr?: string; state?: string[] }[];
      const e = entries.find((x) => x.lladdr && !(x.state ?? []).some((s) => s === 'FAILED' || s === 'INCOMPLETE'));
      return e?.lladdr;
    },

    mac: async (ns, iface = 'lan0') => {
      const links = (await json(ns, ['link', 'show', 'dev', iface])) as { address?: string }[];
      const mac = links[0]?.address;
      if (!mac) throw new Error(`${ns}: ${iface} has no link-layer address`);
      return mac;
    },

    cut: async (a, b) => {
      const pa = `v${nodeIndex(a)}`;
      const rules =
        b === undefined
          ? [`add rule bridge ${CUT_TABLE} forward iifname "${pa}" drop`, `add rule bridge ${CUT_TABLE} forward oifname "${pa}" drop`]
          : [
              `add rule bridge ${CUT_TABLE} forward iifname "${pa}" oifname "v${nodeIndex(b)}" drop`,
              `add rule bridge ${CUT_TABLE} forward iifname "v${b}" oifname "${pa}" drop`,
            ];
      await must('ip', ['netns', 'exec', bridgeNs, 'nft', '-f', '-'], [`add table bridge ${CUT_TABLE}`, `add chain bridge ${CUT_TABLE} forward { type filter hook forward priority 0; policy accept; }`, ...rules].join('\n') + '\n');
    },

    heal: async () => {
      // Declaring the table first makes the delete succeed whether or not anything was cut.
      await must('ip', ['netns', 'exec', bridgeNs, 'nft', '-f', '-'], `add table bridge ${CUT_TABLE}\ndelete table bridge ${CUT_TABLE}\n`);
    },

    destroy: () => {
      destroyed ??= (async () => {
        if (!live.has(owned)) return;
        const exits = [...owned.spawned].map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        );
        await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000).unref())]);
        for (const ns of owned.namespaces) killInside(ns);
        await run('ip', ['-force', '-batch', '-'], {
          input: [...owned.namespaces.map((ns) => `netns del ${ns}`), ...owned.blocks.map((k) => `link del ${mgmtIface(k)}`)].join('\n') + '\n',
        });
        for (const k of owned.blocks) releaseBlock(k);
        live.delete(owned);
      })();
      return destroyed;
    },
  };
}

/** For tests of this helper: the root-side interface of node i's management link. */
export function mgmtPeerInterface(lan: Lan, i: number): string {
  const k = (Number(lan.nodes[i].mgmtAddress.split('.')[3]) - 2) / 4;
  return mgmtIface(k);
}
