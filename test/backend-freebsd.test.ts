/**
 * The freebsd backend (src/kernel/freebsd/backend.ts) against the fake FreeBSD libc and libnv of
 * native/: the shared backend contract on the 13, 14 and 15 code paths, then what only this
 * backend has: version paths, ledgers across restarts, key clearing, pfsync transports,
 * privileges, carp.ko missing, the service undoing a half-applied change, and carpd itself run
 * with `--backend freebsd`.
 *
 * The fake kernel keeps its state in the file FAKEBSD_STATE names, read once per process when
 * the library first runs; this file gets its own, reset through the control API before each
 * test, so that fake-ifconfig and a carpd child process see the same kernel.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import type { KernelBackend, StateChange } from '../src/kernel/backend.js';
import { masterDownMs } from '../src/engine/timing.js';
import { KernelError } from '../src/kernel/errno.js';
import { openFreebsdBackend, type FreebsdBackendOptions } from '../src/kernel/freebsd/backend.js';
import { DEMOTION_FILE, LEDGER_FILE, readLedger } from '../src/kernel/freebsd/ledger.js';
import { SIOCAIFADDR, SIOCGETPFSYNC, SIOCGETPFSYNCNV, SIOCGVH, SIOCSETPFSYNC, SIOCSETPFSYNCNV, SIOCSVH } from '../src/kernel/freebsd/layout.js';
import { backendContract, type ContractEnv } from './contract/backend-contract.js';
import { call, startDaemon } from './helpers/daemon.js';
import { makeHarness } from './helpers/harness.js';
import { LIBC, LIBNV, IFCONFIG, buildNative, useFakeKernel } from './helpers/fakebsd.js';

const SAFETY_MS = 15_000;

const WORK = useFakeKernel('carpd-fbsd-');

const unavailable = buildNative();
const skip = unavailable ?? false;

// ---- the fake kernel's control API (native/fakebsd/fakebsd_control.h) -------------------------

interface FakeDump {
  osreldate: number;
  boottime: { sec: number; usec: number };
  sysctl: Record<string, number>;
  pfsync: { syncdev: string; syncpeer: string | null; maxupdates: number; flags: number; version: number };
  interfaces: { name: string; flags: number; addresses: { family: string; address: string; prefixlen: number; vhid: number }[] }[];
  vhids: { interface: string; vhid: number; state: string; advbase: number; advskew: number; effective_skew: number; addresses: number; key: string; peer: string; peer6: string }[];
}

function loadFake() {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  const f = (decl: string) => lib.func(decl) as (...a: unknown[]) => number;
  const ok = (what: string, rc: number) => {
    if (rc < 0) throw new Error(`${what} failed (errno ${koffi.errno()})`);
    return rc;
  };
  const fns = {
    reset: f('int fakebsd_reset(void)'),
    reboot: f('int fakebsd_reboot(void)'),
    addInterface: f('int fakebsd_add_interface(const char *name, int flags)'),
    removeInterface: f('int fakebsd_remove_interface(const char *name)'),
    setOsreldate: f('int fakebsd_set_osreldate(int v)'),
    setModules: f('int fakebsd_set_modules(int carp, int pfsync)'),
    setUid: f('int fakebsd_set_uid(int uid)'),
    setVhidState: f('int fakebsd_set_vhid_state(const char *ifname, int vhid, int state)'),
    failNext: f('int fakebsd_fail_next(unsigned long request, int fbsd_errno)'),
    ioctlCount: f('long fakebsd_ioctl_count(unsigned long request)'),
    netlinkCount: f('long fakebsd_netlink_count(int cmd)'),
    pfsyncBulk: f('int fakebsd_pfsync_bulk(int pending)'),
    events: f('long fakebsd_events(unsigned long after, void *buf, size_t len)'),
    dump: f('int fakebsd_dump(void *buf, size_t len)'),
    sysctlbyname: f('int sysctlbyname(const char *name, void *oldp, void *oldlenp, const void *newp, size_t newlen)'),
  };
  return {
    reset: () => ok('reset', fns.reset()),
    reboot: () => ok('reboot', fns.reboot()),
    addInterface: (name: string, flags = 0x8043) => ok('add interface', fns.addInterface(name, flags)),
    removeInterface: (name: string) => ok('remove interface', fns.removeInterface(name)),
    setOsreldate: (v: number) => ok('osreldate', fns.setOsreldate(v)),
    setModules: (carp: boolean, pfsync: boolean) => ok('modules', fns.setModules(carp ? 1 : 0, pfsync ? 1 : 0)),
    setUid: (uid: number) => ok('uid', fns.setUid(uid)),
    setVhidState: (iface: string, vhid: number, state: 0 | 1 | 2) => ok('vhid state', fns.setVhidState(iface, vhid, state)),
    failNext: (request: number, errno: number) => ok('fail next', fns.failNext(request, errno)),
    ioctlCount: (request: number) => Number(fns.ioctlCount(request)),
    /** 1 = carp GET, 2 = carp SET, 3 = ctrl GETFAMILY. */
    netlinkCount: (cmd: number) => Number(fns.netlinkCount(cmd)),
    pfsyncBulk: (pending: boolean) => ok('pfsync bulk', fns.pfsyncBulk(pending ? 1 : 0)),
    /** Writes net.inet.carp.demotion, which adds (T9), as someone else on the box would. */
    addDemotion(delta: number) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(delta);
      ok('sysctl', fns.sysctlbyname('net.inet.carp.demotion', null, null, b, 4));
    },
    /** devctl lines after sequence number `after`, and the last sequence number. */
    events(afterSeq: number): { last: number; text: string } {
      const buf = Buffer.alloc(256 * 96);
      const last = Number(fns.events(afterSeq, buf, buf.length));
      return { last, text: buf.toString('utf8', 0, buf.indexOf(0)) };
    },
    dump(): FakeDump {
      const n = fns.dump(null, 0);
      const buf = Buffer.alloc(n + 1);
      fns.dump(buf, buf.length);
      return JSON.parse(buf.toString('utf8', 0, n)) as FakeDump;
    },
  };
}
type Fake = ReturnType<typeof loadFake>;
const fake: Fake = unavailable ? (undefined as unknown as Fake) : loadFake();

const OSREL = { 13: 1300139, 14: 1400097, 15: 1500045 } as const;

/** A stand-in for devd(8): a stream socket that relays lines to every connected client. */
class FakeDevd {
  readonly clients = new Set<Socket>();
  private waiters: (() => void)[] = [];
  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {}

  static async start(file: string): Promise<FakeDevd> {
    const server = createServer();
    const d = new FakeDevd(file, server);
    server.on('connection', (s) => {
      d.clients.add(s);
      s.on('close', () => d.clients.delete(s));
      s.on('error', () => undefined);
      for (const w of d.waiters.splice(0)) w();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => resolve());
    });
    return d;
  }

  connected(): Promise<void> {
    if (this.clients.size > 0) return Promise.resolve();
    return withTimeout(new Promise<void>((r) => this.waiters.push(r)), 'a devd client');
  }

  write(text: string): void {
    for (const c of this.clients) c.write(text);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${SAFETY_MS} ms`)), SAFETY_MS);
  });
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

function waitForState(b: KernelBackend, iface: string, vhid: number, state: string): Promise<StateChange> {
  return withTimeout(
    new Promise<StateChange>((resolve) => {
      const off = b.onStateChange((c) => {
        if (c.interface === iface && c.vhid === vhid && c.state === state) {
          off();
          resolve(c);
        }
      });
    }),
    `${iface} vhid ${vhid} ${state} event`,
  );
}

let serial = 0;
interface Opened {
  backend: KernelBackend;
  stateDir: string;
  devd: FakeDevd;
  /** Lets the master-down timers of the fake kernel (which has none) expire, and devd tell. */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** A backend on a fresh fake kernel (unless `keepKernel`), its own state dir and devd socket. */
async function open(t: { after(fn: () => unknown): void } | undefined, o: { release?: 13 | 14 | 15; stateDir?: string; keepKernel?: boolean; options?: Partial<FreebsdBackendOptions> } = {}): Promise<Opened> {
  if (!o.keepKernel) {
    fake.reset();
    fake.setOsreldate(OSREL[o.release ?? 14]);
  }
  const n = ++serial;
  const stateDir = o.stateDir ?? mkdtempSync(path.join(WORK, 'state-'));
  const devd = await FakeDevd.start(path.join(WORK, `devd-${n}.pipe`));
  const backend = await openFreebsdBackend({ stateDir, libcPath: LIBC, libnvPath: LIBNV, devdPipe: devd.path, devdBackoffMs: { min: 10, max: 100 }, ...o.options });
  let seq = fake.events(0).last;
  const env: Opened = {
    backend,
    stateDir,
    devd,
    async elapse(ms) {
      const d = fake.dump();
      const due = d.vhids.filter((v) => v.state === 'BACKUP' && masterDownMs(v.advbase, v.effective_skew) <= ms);
      const heard = due.map((v) => waitForState(backend, v.interface, v.vhid, 'MASTER'));
      for (const v of due) fake.setVhidState(v.interface, v.vhid, 2);
      const ev = fake.events(seq);
      seq = ev.last;
      await devd.connected();
      devd.write(ev.text);
      await Promise.all(heard);
    },
    async close() {
      await backend.close();
      await devd.close();
      if (!o.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
  t?.after(() => env.close());
  return env;
}

const P = { advbaseSec: 1, advskew: 0 };

async function rejectsWith(p: Promise<unknown>, errnoName: string, match?: RegExp): Promise<KernelError> {
  let caught: KernelError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KernelError, `expected KernelError, got ${String(e)}`);
    assert.equal(e.errnoName, errnoName, e.message);
    if (match) assert.match(e.message, match);
    caught = e;
    return true;
  });
  return caught!;
}

// ---- the shared contract, on each release's code path --------------------------------------

if (unavailable) {
  test('freebsd backend (fake libc)', { skip }, () => {});
} else {
  for (const release of [14, 13, 15] as const) {
    backendContract(`freebsd ${release} (fake libc)`, async (): Promise<ContractEnv> => {
      const env = await open(undefined, { release });
      assert.equal(fake.dump().interfaces.some((i) => i.name === 'nosuch0'), false);
      return { backend: env.backend, elapse: (ms) => env.elapse(ms), close: () => env.close() };
    });
  }
}

// ---- release paths ------------------------------------------------------------------------

test('FreeBSD 13: SIOCSVH/SIOCGVH only; unicast peers are refused with EOPNOTSUPP', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 13 });
  assert.match(b.description, /FreeBSD 13/);
  assert.doesNotMatch(b.description, /netlink/);
  assert.deepEqual(b.capabilities(), { unicast: false, ipv6: true, pfsync: true, pfsyncVersions: [1301], forceState: true, vrrpv3: false, macModes: ['virtual'] });
  await rejectsWith(b.setVhid('em0', 3, { ...P, peer: '192.0.2.2' }), 'EOPNOTSUPP', /netlink/);
  assert.equal(fake.dump().vhids.length, 0, 'refused before the kernel was asked');

  const svh = fake.ioctlCount(SIOCSVH);
  await b.setVhid('em0', 3, { ...P, advskew: 20, key: 'secret' });
  assert.equal(fake.ioctlCount(SIOCSVH), svh + 1);
  await b.addAddress('em0', 3, '192.0.2.3/24');
  await b.forceState('em0', 3, 'MASTER');
  assert.equal(fake.ioctlCount(SIOCSVH), svh + 2, 'forcing goes through SIOCSVH too');
  assert.equal(fake.netlinkCount(2), 0, 'no netlink on 13');
  const [v] = await b.listVhids();
  assert.deepEqual([v.vhid, v.advskew, v.key, v.state, v.addresses], [3, 20, 'secret', 'MASTER', ['192.0.2.3/24']]);
  assert.match(v.reason, /forced to MASTER/);
});

test('FreeBSD 14: carp through netlink, never the broken list-all SIOCGVH', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 14 });
  assert.match(b.description, /FreeBSD 14 .*netlink/);
  assert.deepEqual(b.capabilities(), { unicast: true, ipv6: true, pfsync: true, pfsyncVersions: [1301, 1400], forceState: true, vrrpv3: false, macModes: ['virtual'] });
  const sets = fake.netlinkCount(2);
  await b.setVhid('em0', 4, { ...P, advskew: 40, peer: '192.0.2.2', peer6: '2001:db8::2' });
  await b.setVhid('em0', 5, P);
  await b.addAddress('em0', 4, '192.0.2.4/24');
  await b.addAddress('em0', 5, '192.0.2.5/24');
  assert.equal(fake.netlinkCount(2), sets + 2);
  assert.equal(fake.ioctlCount(SIOCSVH), 0);
  assert.equal(fake.ioctlCount(SIOCGVH), 0, 'vhids are read with the netlink dump');
  const list = await b.listVhids();
  assert.deepEqual(list.map((v) => [v.vhid, v.advskew, v.peer, v.peer6]), [[4, 40, '192.0.2.2', '2001:db8::2'], [5, 0, undefined, undefined]]);
  // Forcing sends the whole attribute set back: the peer and advskew survive it (T11).
  await b.forceState('em0', 4, 'MASTER');
  const k = fake.dump().vhids.find((v) => v.vhid === 4)!;
  assert.deepEqual([k.state, k.advskew, k.peer, k.peer6], ['MASTER', 40, '192.0.2.2', '2001:db8::2']);
});

test('FreeBSD 15: pfsync 1500, vhids set through netlink; VRRPv3 not driven yet (EOPNOTSUPP)', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 15 });
  assert.deepEqual(b.capabilities().pfsyncVersions, [1301, 1400, 1500]);
  // carp(4) of 15 has a VRRP mode, but carpd does not drive it yet.
  assert.equal(b.capabilities().vrrpv3, false);
  const netlinkBefore = fake.netlinkCount(2);
  const e = await rejectsWith(b.setVhid('em0', 6, { ...P, protocol: 'vrrpv3', vrrpPriority: 100, vrrpIntervalCs: 100 }), 'EOPNOTSUPP', /VRRP/);
  assert.equal(e.operation, 'set vhid 6');
  assert.equal(fake.netlinkCount(2), netlinkBefore, 'refused before the kernel was asked');
  assert.equal(fake.dump().vhids.length, 0);
  const sets = fake.netlinkCount(2);
  await b.setVhid('em0', 6, P);
  await b.addAddress('em0', 6, '192.0.2.6/24');
  await b.setVhid('em0', 6, { ...P, advskew: 60 });
  assert.equal(fake.netlinkCount(2), sets + 2);
  assert.equal((await b.listVhids())[0].advskew, 60);
  await b.setPfsync({ syncdev: 'em1', maxupd: 128, defer: false, version: 1500 });
  assert.equal((await b.getPfsync()).version, 1500);
});

// ---- vhids and addresses ---------------------------------------------------------------------

test('the ledger (0600) carries addresses across a restart; the kernel stays the truth for vhids', { skip }, async (t) => {
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  let env = await open(undefined, { stateDir });
  await env.backend.setVhid('em0', 1, { ...P, key: 'k1' });
  await env.backend.addAddress('em0', 1, '192.0.2.1/24');
  await env.backend.addAddress('em0', 1, '2001:db8::1/64');
  await env.close();
  const file = path.join(stateDir, LEDGER_FILE);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')).addresses, { 'em0/1': ['192.0.2.1/24', '2001:db8::1/64'] });

  // Another tool adds a vhid on an interface carpd manages: it is listed too.
  execFileSync(IFCONFIG, ['em0', 'vhid', '9', 'advskew', '90'], { env: { ...process.env, CARPD_FREEBSD_LIBC: LIBC } });
  env = await open(t, { stateDir, keepKernel: true });
  const list = await env.backend.listVhids();
  assert.deepEqual(list.map((v) => [v.vhid, v.advskew, v.addresses]), [[1, 0, ['192.0.2.1/24', '2001:db8::1/64']], [9, 90, []]]);
  assert.equal(list[0].reason, 'state found at carpd start');
  rmSync(stateDir, { recursive: true, force: true });
});

test('clearing a key recreates the vhid without one, with its addresses', { skip }, async (t) => {
  for (const release of [14, 13] as const) {
    const { backend: b } = await open(t, { release });
    await b.setVhid('em0', 2, { ...P, key: 'old-secret' });
    await b.addAddress('em0', 2, '192.0.2.2/24');
    await b.addAddress('em0', 2, '2001:db8::2/64');
    await b.setVhid('em0', 2, { ...P, advskew: 10 });
    const [v] = await b.listVhids();
    assert.deepEqual([v.key, v.advskew, v.addresses], [undefined, 10, ['192.0.2.2/24', '2001:db8::2/64']], `FreeBSD ${release}`);
    const k = fake.dump();
    assert.equal(k.vhids[0].key, '00'.repeat(20));
    assert.equal(k.interfaces.find((i) => i.name === 'em0')!.addresses.filter((a) => a.vhid === 2).length, 2);
    await b.close();
  }
});

test('a vhid without addresses is removed (placeholder bound and removed), leaving nothing behind', { skip }, async (t) => {
  const { backend: b } = await open(t);
  await b.setVhid('em0', 8, P);
  assert.equal(fake.dump().vhids.length, 1);
  await b.removeVhid('em0', 8);
  const k = fake.dump();
  assert.deepEqual(k.vhids, []);
  assert.deepEqual(k.interfaces.find((i) => i.name === 'em0')!.addresses, []);
  await rejectsWith(b.removeVhid('em0', 8), 'ENOENT');
});

test('a duplicate address is detected before the kernel, which would restart the vhid (§12.2)', { skip }, async (t) => {
  const { backend: b } = await open(t);
  await b.setVhid('em0', 3, P);
  await b.addAddress('em0', 3, '192.0.2.3/24');
  const adds = fake.ioctlCount(SIOCAIFADDR);
  const events = fake.events(0).last;
  await b.addAddress('em0', 3, '192.0.2.3/24');
  assert.equal(fake.ioctlCount(SIOCAIFADDR), adds);
  assert.equal(fake.events(0).last, events, 'no state change in the kernel');
  // A new prefix length is a real change.
  await b.addAddress('em0', 3, '192.0.2.3/25');
  assert.deepEqual((await b.listVhids())[0].addresses, ['192.0.2.3/25']);
  assert.equal(fake.dump().interfaces[0].addresses[0].prefixlen, 25);
  // Removing an address carpd never bound is refused without touching the kernel.
  await rejectsWith(b.removeAddress('em0', 3, '192.0.2.99/24'), 'EADDRNOTAVAIL');
});

test('an IPv6 address whose carp attach fails is not left behind on the interface', { skip }, async (t) => {
  const { backend: b } = await open(t);
  await rejectsWith(b.addAddress('em0', 4, '2001:db8::4/64'), 'ENOPROTOOPT', /set the vhid/);
  await b.setVhid('em0', 5, P);
  await b.addAddress('em0', 5, '2001:db8::5/64');
  await rejectsWith(b.addAddress('em0', 4, '2001:db8::4/64'), 'ENOENT');
  assert.deepEqual(fake.dump().interfaces.find((i) => i.name === 'em0')!.addresses.map((a) => `${a.address}@${a.vhid}`), ['2001:db8::5@5']);
  // Link-local VIPs carry the interface index as their scope.
  await b.addAddress('em0', 5, 'fe80::5/64');
  assert.deepEqual((await b.listVhids())[0].addresses, ['2001:db8::5/64', 'fe80::5/64']);
  await b.removeAddress('em0', 5, 'fe80::5/64');
  assert.equal(fake.dump().interfaces.find((i) => i.name === 'em0')!.addresses.length, 1);
});

test('an interface that disappears takes its vhids with it, and leaves the ledger', { skip }, async (t) => {
  const { backend: b, stateDir } = await open(t);
  fake.addInterface('vlan0.10');
  await b.setVhid('vlan0.10', 10, P);
  await b.addAddress('vlan0.10', 10, '198.51.100.10/24');
  assert.deepEqual((await b.listVhids()).map((v) => `${v.interface}/${v.vhid}`), ['vlan0.10/10']);
  fake.removeInterface('vlan0.10');
  assert.deepEqual(await b.listVhids(), []);
  const ledger = await readLedger(stateDir);
  assert.deepEqual([ledger.interfaces, ledger.addresses], [[], {}]);
  await rejectsWith(b.setVhid('lo0', 1, P), 'EOPNOTSUPP', /Ethernet/);
});

// ---- the service on this backend -----------------------------------------------------------------

test('through the service: an address refused half-way (ENOPROTOOPT) is reported with interface, vhid and address, and undone', { skip }, async (t) => {
  const { backend } = await open(t);
  const h = await makeHarness({ backend });
  t.after(() => h.close());
  fake.failNext(SIOCAIFADDR, 42);
  const res = await h.api.post('/v1/vips', { interface: 'em0', vhid: 12, addresses: ['192.0.2.12/24'], password: 'pw' });
  assert.equal(res.status, 502, res.text);
  assert.equal(res.body.code, 'CARPD_ERR_KERNEL');
  assert.match(res.body.detail, /em0/);
  assert.match(res.body.detail, /vhid 12/);
  assert.match(res.body.detail, /192\.0\.2\.12\/24/);
  assert.match(res.body.detail, /ENOPROTOOPT/);
  assert.deepEqual(res.body.kernel, { operation: 'add address 192.0.2.12/24 to vhid 12 (ioctl SIOCAIFADDR)', interface: 'em0', errno: 42, errnoName: 'ENOPROTOOPT' });
  const k = fake.dump();
  assert.deepEqual(k.vhids, [], 'the vhid created before the failed address is gone');
  assert.deepEqual(k.interfaces.find((i) => i.name === 'em0')!.addresses, []);
  assert.deepEqual(await backend.listVhids(), []);
  assert.equal(h.store.current().revision, 0);
  // And the same change goes through once the kernel agrees.
  const ok = await h.api.post('/v1/vips', { interface: 'em0', vhid: 12, addresses: ['192.0.2.12/24'], password: 'pw' });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(fake.dump().vhids[0].vhid, 12);
});

// ---- maintenance ---------------------------------------------------------------------------------

test('maintenance is applied once across restarts, and a reboot resets it', { skip }, async (t) => {
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  let env = await open(undefined, { stateDir });
  await env.backend.setMaintenance(true);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 240);
  await env.close();
  assert.equal(statSync(path.join(stateDir, DEMOTION_FILE)).mode & 0o777, 0o600);

  env = await open(undefined, { stateDir, keepKernel: true });
  assert.equal(await env.backend.getMaintenance(), true);
  assert.equal((await env.backend.getCarpGlobals()).demotion, 240);
  await env.backend.setMaintenance(true);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 240, 'not applied twice');

  fake.reboot();
  assert.equal((await env.backend.getCarpGlobals()).demotion, 0);
  assert.equal(await env.backend.getMaintenance(), false);
  await env.backend.setMaintenance(false);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 0, 'nothing taken back that was not there');
  await env.close();

  // Other contributors to the sum are left alone: only carpd's 240 comes and goes.
  env = await open(t, { stateDir, keepKernel: true });
  fake.pfsyncBulk(true); // pfsync adds its own 240 while a bulk update is pending
  await env.backend.setMaintenance(true);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 480);
  await env.backend.setMaintenance(false);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 240);
});

test('a crash between recording and applying maintenance is settled at the next start', { skip }, async (t) => {
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  fake.reset();
  const { boottime } = fake.dump();
  const record = (demotionBefore: number, op: 'enter' | 'leave', added: number) =>
    writeFileSync(path.join(stateDir, DEMOTION_FILE), JSON.stringify({ version: 1, boottime, added, pending: { op, demotionBefore, at: new Date().toISOString() } }));

  // Recorded, then killed before the sysctl: not applied.
  record(0, 'enter', 0);
  let env = await open(undefined, { stateDir, keepKernel: true });
  assert.equal(await env.backend.getMaintenance(), false);
  await env.close();
  assert.equal(JSON.parse(readFileSync(path.join(stateDir, DEMOTION_FILE), 'utf8')).pending, undefined);

  // Recorded and applied, killed before the outcome was written: applied.
  record(0, 'enter', 0);
  fake.addDemotion(240);
  env = await open(undefined, { stateDir, keepKernel: true });
  assert.equal(await env.backend.getMaintenance(), true);
  await env.backend.setMaintenance(false);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 0);
  await env.close();

  // The sum moved for other reasons too: carpd cannot tell, and claims nothing.
  fake.addDemotion(240);
  record(240, 'leave', 240);
  fake.pfsyncBulk(true);
  env = await open(t, { stateDir, keepKernel: true });
  assert.equal(await env.backend.getMaintenance(), false);
});

test("named demotions: only carpd's amount moves the shared sum, kept across restarts beside maintenance; a reboot resets them", { skip }, async (t) => {
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  let env = await open(undefined, { stateDir });
  fake.pfsyncBulk(true); // pfsync's own 240, which carpd never touches
  await env.backend.setDemotion('splitbrain', 240);
  await env.backend.setMaintenance(true);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 720);
  const rec = JSON.parse(readFileSync(path.join(stateDir, DEMOTION_FILE), 'utf8'));
  assert.deepEqual([rec.added, rec.named, rec.pending], [240, { splitbrain: 240 }, undefined]);
  await env.close();

  env = await open(undefined, { stateDir, keepKernel: true });
  assert.deepEqual([...(await env.backend.demotions())], [['splitbrain', 240]]);
  await env.backend.setDemotion('splitbrain', 240);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 720, 'not applied twice');
  await env.backend.setDemotion('splitbrain', 0);
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 480);
  assert.equal(await env.backend.getMaintenance(), true);
  await env.backend.setDemotion('splitbrain', 100);
  fake.reboot();
  assert.deepEqual([...(await env.backend.demotions())], [], 'a reboot reset the sum, and what carpd held');
  assert.equal(await env.backend.getMaintenance(), false);
  await env.close();
});

test('a crash while moving a named demotion is settled at the next start: applied, not applied, or the smaller amount', { skip }, async (t) => {
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  fake.reset();
  const { boottime } = fake.dump();
  const record = (named: Record<string, number>, from: number, to: number, demotionBefore: number) =>
    writeFileSync(path.join(stateDir, DEMOTION_FILE), JSON.stringify({ version: 1, boottime, added: 0, named, pending: { op: 'set', name: 'splitbrain', from, to, demotionBefore, at: new Date().toISOString() } }));
  const named = async () => {
    const env = await open(undefined, { stateDir, keepKernel: true });
    const m = [...(await env.backend.demotions())];
    await env.close();
    return m;
  };

  record({}, 0, 240, 0); // recorded, killed before the sysctl
  assert.deepEqual(await named(), []);
  assert.equal(JSON.parse(readFileSync(path.join(stateDir, DEMOTION_FILE), 'utf8')).pending, undefined);

  record({}, 0, 240, 0); // applied, killed before the outcome was written
  fake.addDemotion(240);
  assert.deepEqual(await named(), [['splitbrain', 240]]);

  record({ splitbrain: 240 }, 240, 0, 240); // taking back, and the sum moved for another reason too
  fake.pfsyncBulk(true);
  assert.deepEqual(await named(), [], 'cannot tell: the smaller amount, nothing');
  assert.equal(fake.dump().sysctl['net.inet.carp.demotion'], 480);
});

// ---- pfsync ----------------------------------------------------------------------------------------

test('pfsync on 14 uses the nvlist ioctls (every key), refuses version 1500, reports the bulk update', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 14 });
  await b.setPfsync({ syncdev: 'em1', syncpeer: '2001:db8::99', maxupd: 32, defer: true, version: 1301 });
  assert.equal(fake.ioctlCount(SIOCSETPFSYNCNV), 1);
  assert.equal(fake.ioctlCount(SIOCSETPFSYNC), 0);
  let p = await b.getPfsync();
  assert.deepEqual([p.syncdev, p.syncpeer, p.maxupd, p.defer, p.version, p.running, p.bulkUpdateDone], ['em1', '2001:db8::99', 32, true, 1301, true, true]);
  assert.ok(fake.ioctlCount(SIOCGETPFSYNCNV) >= 1);
  assert.ok(fake.dump().interfaces.find((i) => i.name === 'pfsync0')!.flags & 1, 'pfsync0 brought up');
  fake.pfsyncBulk(true);
  assert.equal((await b.getPfsync()).bulkUpdateDone, false);
  await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 32, defer: false, version: 1500 }), 'EINVAL', /FreeBSD 14/);
  await rejectsWith(b.setPfsync({ syncdev: 'nosuch0', maxupd: 32, defer: false, version: 1400 }), 'EINVAL', /nosuch0/);
  await b.setPfsync({ maxupd: 128, defer: false, version: 1400 });
  p = await b.getPfsync();
  assert.deepEqual([p.syncdev, p.running], [undefined, false]);
});

test('pfsync on 13 falls back to the legacy ioctls on ENOTTY', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 13 });
  await b.setPfsync({ syncdev: 'em1', syncpeer: '192.0.2.200', maxupd: 64, defer: true, version: 1301 });
  assert.equal(fake.ioctlCount(SIOCSETPFSYNC), 1);
  assert.ok(fake.ioctlCount(SIOCGETPFSYNC) >= 1);
  const p = await b.getPfsync();
  assert.deepEqual([p.syncdev, p.syncpeer, p.maxupd, p.defer, p.version, p.running], ['em1', '192.0.2.200', 64, true, 1301, true]);
  assert.equal(fake.dump().pfsync.flags & 2, 2, 'defer written as PFSYNCF_DEFER');
  await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 64, defer: false, version: 1400 }), 'EINVAL', /1301/);
  await rejectsWith(b.setPfsync({ syncdev: 'em1', syncpeer: '2001:db8::1', maxupd: 64, defer: false, version: 1301 }), 'EOPNOTSUPP');
});

test('without libnv on 14, pfsync falls back to the legacy ioctls at the default version; CARP is unaffected', { skip }, async (t) => {
  const { backend: b } = await open(t, { release: 14, options: { libnvPath: path.join(WORK, 'no-such-libnv.so') } });
  assert.deepEqual(b.capabilities().pfsyncVersions, [1400]);
  assert.equal(b.capabilities().unicast, true);
  await b.setPfsync({ syncdev: 'em1', maxupd: 100, defer: true, version: 1400 });
  assert.equal(fake.ioctlCount(SIOCSETPFSYNC), 1);
  assert.equal(fake.ioctlCount(SIOCSETPFSYNCNV), 0);
  const p = await b.getPfsync();
  assert.deepEqual([p.syncdev, p.maxupd, p.defer, p.version, p.bulkUpdateDone], ['em1', 100, true, 1400, true]);
  await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 100, defer: true, version: 1301 }), 'EINVAL');
});

// ---- modules and privileges ----------------------------------------------------------------------

test('carp.ko not loaded: EPROTONOSUPPORT that says what to load', { skip }, async (t) => {
  for (const release of [14, 13] as const) {
    fake.reset();
    fake.setOsreldate(OSREL[release]);
    fake.setModules(false, true);
    const { backend: b } = await open(t, { keepKernel: true });
    assert.equal(b.capabilities().unicast, false);
    await rejectsWith(b.setVhid('em0', 1, P), 'EPROTONOSUPPORT', /kldload carp/);
    await rejectsWith(b.getCarpGlobals(), 'EPROTONOSUPPORT', /kldload carp/);
    await rejectsWith(b.setMaintenance(true), 'EPROTONOSUPPORT');
    await b.close();
  }
});

test('pfsync.ko not loaded: pfsync reads as detached and cannot be attached', { skip }, async (t) => {
  fake.reset();
  fake.setModules(true, false);
  const { backend: b } = await open(t, { keepKernel: true });
  assert.deepEqual([b.capabilities().pfsync, b.capabilities().pfsyncVersions], [false, []]);
  assert.equal((await b.getPfsync()).running, false);
  await b.setPfsync({ maxupd: 128, defer: false, version: 1400 });
  await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 128, defer: false, version: 1400 }), 'ENXIO', /kldload pfsync/);
});

test('not root: EPERM, and keys are not shown', { skip }, async (t) => {
  const { backend: b } = await open(t);
  await b.setVhid('em0', 1, { ...P, key: 'secret' });
  await b.addAddress('em0', 1, '192.0.2.1/24');
  fake.setUid(1000);
  const e = await rejectsWith(b.setVhid('em0', 2, P), 'EPERM', /root/);
  assert.equal(e.iface, 'em0');
  await rejectsWith(b.addAddress('em0', 1, '192.0.2.9/24'), 'EPERM');
  await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 128, defer: false, version: 1400 }), 'EPERM');
  await rejectsWith(b.setMaintenance(true), 'EPERM');
  const [v] = await b.listVhids();
  assert.deepEqual([v.vhid, v.key, v.addresses], [1, undefined, ['192.0.2.1/24']]);
  assert.equal(fake.dump().vhids.length, 1, 'nothing half-created');
});

// ---- carpd itself ---------------------------------------------------------------------------------------

test('carpd --backend freebsd: a VIP posted through the API lands in the (fake) kernel', { skip }, async (t) => {
  fake.reset();
  const stateDir = mkdtempSync(path.join(WORK, 'daemon-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const d = await startDaemon(t, ['--backend', 'freebsd', '--listen', '127.0.0.1:0', '--state-dir', stateDir], {
    env: {
      CARPD_FREEBSD_LIBC: LIBC,
      CARPD_FREEBSD_LIBNV: LIBNV,
      FAKEBSD_STATE: process.env.FAKEBSD_STATE!,
      CARPD_DEVD_PIPE: path.join(WORK, 'no-devd.pipe'),
    },
  });
  assert.equal(d.listening.backend, 'freebsd');
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const res = await call(d.port, 'POST', '/v1/vips', { token, body: { interface: 'em0', vhid: 21, addresses: ['192.0.2.21/24', '2001:db8::21/64'], advskew: 100, password: 'daemonpw' } });
  assert.equal(res.status, 201, res.text);
  const k = fake.dump();
  const v = k.vhids.find((x) => x.interface === 'em0' && x.vhid === 21);
  assert.ok(v, JSON.stringify(k.vhids));
  assert.deepEqual([v.advskew, v.state, v.addresses], [100, 'BACKUP', 2]);
  assert.equal(Buffer.from(v.key, 'hex').toString('utf8').replace(/\0+$/, ''), 'daemonpw');
  assert.deepEqual(
    k.interfaces.find((i) => i.name === 'em0')!.addresses.map((a) => `${a.address}/${a.prefixlen}@${a.vhid}`),
    ['192.0.2.21/24@21', '2001:db8::21/64@21'],
  );
  const status = await call(d.port, 'GET', '/v1/status', { token });
  assert.equal(status.status, 200, status.text);
  assert.match(status.body.backend.description, /FreeBSD 14/);
});
