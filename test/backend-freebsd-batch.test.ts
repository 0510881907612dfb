/**
 * The freebsd backend's batch (src/kernel/freebsd/batch.ts) against the fake FreeBSD libc of
 * native/: what a batch costs in kernel calls and ledger writes (counted through a libc wrapper
 * and the fake's own counters, never timed), and a SET refused inside a netlink batch, whose
 * neighbours in the same send took effect and are taken back too.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import nodeFs, { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BatchError, type BackendStep, type KernelBackend } from '../src/kernel/backend.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { SIOCAIFADDR, SIOCGVH, SIOCSVH } from '../src/kernel/freebsd/layout.js';
import { AddressLedger, readLedger } from '../src/kernel/freebsd/ledger.js';
import { type Libc, loadLibc } from '../src/kernel/freebsd/libc.js';
import { GENL_ID_CTRL, NLM_F_DUMP } from '../src/wire/netlink.js';
import { LIBC, LIBNV, buildNative, useFakeKernel } from './helpers/fakebsd.js';

const WORK = useFakeKernel('carpd-fbsd-batch-');
const unavailable = buildNative();
const skip = unavailable ?? false;

function loadFake() {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  const f = (decl: string) => lib.func(decl) as (...a: unknown[]) => number;
  const fns = {
    reset: f('int fakebsd_reset(void)'),
    setOsreldate: f('int fakebsd_set_osreldate(int v)'),
    setModules: f('int fakebsd_set_modules(int carp, int pfsync)'),
    failNextNetlink: f('int fakebsd_fail_next_netlink(int carp_cmd, int fbsd_errno)'),
    ioctlCount: f('long fakebsd_ioctl_count(unsigned long request)'),
    netlinkCount: f('long fakebsd_netlink_count(int cmd)'),
    dump: f('int fakebsd_dump(void *buf, size_t len)'),
  };
  return {
    reset: () => fns.reset(),
    setOsreldate: (v: number) => fns.setOsreldate(v),
    setModules: (carp: boolean, pfsync: boolean) => fns.setModules(carp ? 1 : 0, pfsync ? 1 : 0),
    failNextSet: (errno: number) => fns.failNextNetlink(2, errno),
    ioctls: (request: number) => Number(fns.ioctlCount(request)),
    /** 1: carp GET, 2: carp SET messages the kernel handled. */
    netlink: (cmd: number) => Number(fns.netlinkCount(cmd)),
    dump(): { vhids: { interface: string; vhid: number; advskew: number }[]; interfaces: { name: string; addresses: { address: string; vhid: number }[] }[] } {
      const n = fns.dump(null, 0);
      const buf = Buffer.alloc(n + 1);
      fns.dump(buf, buf.length);
      return JSON.parse(buf.toString('utf8', 0, n));
    },
  };
}
const fake = unavailable ? (undefined as unknown as ReturnType<typeof loadFake>) : loadFake();

/** The backend's libc, counting the sends that carry carp SETs (not GET dumps or family lookups). */
function countingLibc(inner: Libc, counts: { setSends: number }): Libc {
  return {
    ...inner,
    path: inner.path,
    send: (fd, buf, flags) => {
      const type = buf.readUInt16LE(4);
      const dump = (buf.readUInt16LE(6) & NLM_F_DUMP) === NLM_F_DUMP;
      // Above GENL_ID_CTRL (16, family lookups): the carp family's messages; not dumps: SETs.
      if (type > GENL_ID_CTRL && !dump) counts.setSends++;
      return inner.send(fd, buf, flags);
    },
  };
}

/** Counts AddressLedger writes for the duration of a test. */
function countLedgerWrites(t: { after(fn: () => void): void }): { saves: number } {
  const counts = { saves: 0 };
  const save = AddressLedger.prototype.save;
  AddressLedger.prototype.save = function (this: AddressLedger, ...args: Parameters<AddressLedger['save']>) {
    counts.saves++;
    return save.apply(this, args);
  };
  t.after(() => {
    AddressLedger.prototype.save = save;
  });
  return counts;
}

async function open(t: { after(fn: () => unknown): void }, release: 13 | 14, counts: { setSends: number }, carpLoaded = true): Promise<KernelBackend> {
  fake.reset();
  fake.setOsreldate(release === 13 ? 1300139 : 1400097);
  if (!carpLoaded) fake.setModules(false, true);
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const b = await openFreebsdBackend({ stateDir, libc: countingLibc(loadLibc(LIBC), counts), libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe') });
  t.after(async () => {
    await b.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return b;
}

/** n VIPs, half on em0 and half on em1: a vhid with a password and one address each. */
function vipSteps(n: number): BackendStep[] {
  return Array.from({ length: n }, (_, i) => {
    const iface = i < n / 2 ? 'em0' : 'em1';
    const vhid = (i % (n / 2)) + 1;
    return [
      { op: 'vhid.set' as const, interface: iface, vhid, params: { advbaseSec: 1, advskew: 0, key: 'batch' } },
      { op: 'address.add' as const, interface: iface, vhid, address: `${iface === 'em0' ? '10.0' : '10.1'}.${vhid}.1/24` },
    ];
  }).flat();
}

test('freebsd 14 batch: 60 VIPs cost one netlink send of SETs, one ioctl per address, two reads per interface and one ledger write', { skip }, async (t) => {
  const counts = { setSends: 0 };
  const b = await open(t, 14, counts);
  const ledger = countLedgerWrites(t);
  const get0 = fake.netlink(1);
  const set0 = fake.netlink(2);
  const add0 = fake.ioctls(Number(SIOCAIFADDR));
  await b.apply(vipSteps(60));
  assert.equal(fake.netlink(2) - set0, 60, 'one SET message per vhid');
  assert.equal(counts.setSends, 1, 'the SETs went out in one send');
  assert.equal(fake.ioctls(Number(SIOCAIFADDR)) - add0, 60, 'one SIOCAIFADDR per address');
  assert.equal(fake.netlink(1) - get0, 4, 'one dump per interface before, one after');
  assert.equal(ledger.saves, 1, 'the ledger written once');
  const k = fake.dump();
  assert.equal(k.vhids.length, 60);
  assert.equal(k.interfaces.find((i) => i.name === 'em1')!.addresses.length, 30);
  const listed = await b.listVhids();
  assert.equal(listed.length, 60);
  assert.deepEqual(listed[0].addresses, ['10.0.1.1/24']);
  assert.equal(listed[0].key, 'batch');
});

test('freebsd 13 batch: SIOCSVH and SIOCAIFADDR back to back, one list-all SIOCGVH per interface before and after', { skip }, async (t) => {
  const counts = { setSends: 0 };
  const b = await open(t, 13, counts);
  const ledger = countLedgerWrites(t);
  const svh0 = fake.ioctls(Number(SIOCSVH));
  const gvh0 = fake.ioctls(Number(SIOCGVH));
  await b.apply(vipSteps(40));
  assert.equal(fake.ioctls(Number(SIOCSVH)) - svh0, 40);
  assert.equal(fake.ioctls(Number(SIOCGVH)) - gvh0, 4);
  assert.equal(counts.setSends, 0, 'no netlink on 13');
  assert.equal(ledger.saves, 1);
  assert.equal(fake.dump().vhids.length, 40);
});

test('freebsd 14 batch: a SET refused inside a netlink send fails the batch; the SETs after it in the same send took effect and are taken back too', { skip }, async (t) => {
  const counts = { setSends: 0 };
  const b = await open(t, 14, counts);
  await b.apply([
    { op: 'vhid.set', interface: 'em0', vhid: 9, params: { advbaseSec: 1, advskew: 90 } },
    { op: 'address.add', interface: 'em0', vhid: 9, address: '192.0.2.9/24' },
  ]);
  const before = fake.dump();
  const sends = counts.setSends;
  const handled = fake.netlink(2);
  // One send carries the SETs of vhids 9, 2 and 3; the fake kernel refuses the first it handles.
  fake.failNextSet(12);
  await assert.rejects(
    b.apply([
      { op: 'vhid.set', interface: 'em0', vhid: 9, params: { advbaseSec: 1, advskew: 10 } },
      { op: 'vhid.set', interface: 'em0', vhid: 2, params: { advbaseSec: 1, advskew: 0 } },
      { op: 'vhid.set', interface: 'em0', vhid: 3, params: { advbaseSec: 1, advskew: 0 } },
      { op: 'address.add', interface: 'em0', vhid: 2, address: '192.0.2.2/24' },
    ]),
    (e: unknown) => {
      assert.ok(e instanceof BatchError, String(e));
      assert.equal(e.index, 0);
      assert.equal(e.errnoName, 'ENOMEM');
      assert.match(e.message, /^set vhid 9 \(netlink carp SET\) on em0 failed: ENOMEM/);
      assert.deepEqual(e.undoErrors, []);
      return true;
    },
  );
  assert.equal(counts.setSends - sends, 1, 'the three SETs went out in one send');
  assert.equal(fake.netlink(2) - handled, 3, 'the kernel went on after the refused SET');
  const after = fake.dump();
  assert.deepEqual(after.vhids, before.vhids, 'vhids 2 and 3 were taken back; vhid 9 kept its skew');
  assert.deepEqual(after.interfaces, before.interfaces, 'no address left behind (not even a placeholder)');
  assert.deepEqual((await b.listVhids()).map((v) => [v.vhid, v.advskew, v.addresses]), [[9, 90, ['192.0.2.9/24']]]);
});

test('freebsd 14 batch: the ledger line is on disk before the kernel and survives a crash; a failed batch is taken back in the ledger too', { skip }, async (t) => {
  fake.reset();
  fake.setOsreldate(1400097);
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const openAt = () => openFreebsdBackend({ stateDir, libc: loadLibc(LIBC), libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe') });
  const b = await openAt();
  let again: KernelBackend | undefined;
  t.after(async () => {
    await b.close();
    await again?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  // The batch's ledger line is appended without an fsync of its own (ledger.ts).
  const fsync = nodeFs.fsync;
  let fsyncs = 0;
  nodeFs.fsync = ((fd: number, cb: (e: NodeJS.ErrnoException | null) => void) => (fsyncs++, fsync(fd, cb))) as typeof nodeFs.fsync;
  try {
    await b.apply(vipSteps(10));
  } finally {
    nodeFs.fsync = fsync;
  }
  assert.equal(fsyncs, 0);
  let ledger = await readLedger(stateDir);
  assert.equal(Object.keys(ledger.addresses).length, 10, 'the batch is in the ledger without a close');
  assert.deepEqual(ledger.addresses['em1/5'], ['10.1.5.1/24']);
  // The ledger is written ahead of the kernel: a refused SET leaves a vhid and address planned, then taken back.
  fake.failNextSet(12);
  await assert.rejects(
    b.apply([
      { op: 'vhid.set', interface: 'em0', vhid: 30, params: { advbaseSec: 1, advskew: 0 } },
      { op: 'address.add', interface: 'em0', vhid: 30, address: '192.0.2.30/24' },
    ]),
    BatchError,
  );
  ledger = await readLedger(stateDir);
  assert.equal(ledger.addresses['em0/30'], undefined);
  assert.equal(Object.keys(ledger.addresses).length, 10);
  assert.equal(ledger.skipped, 0);
  // A crash of carpd (b never closed): the next start finds every address the kernel has.
  again = await openAt();
  const listed = await again.listVhids();
  assert.equal(listed.length, 10);
  assert.deepEqual(listed.find((v) => v.interface === 'em1' && v.vhid === 5)?.addresses, ['10.1.5.1/24']);
});

test('freebsd batch without carp.ko: pfsync and maintenance still apply; a vhid step fails the batch (EPROTONOSUPPORT) before anything is applied', { skip }, async (t) => {
  const counts = { setSends: 0 };
  const b = await open(t, 14, counts, false);
  await b.apply([{ op: 'pfsync.set', settings: { syncdev: 'em1', maxupd: 100, defer: false, version: 1400 } }]);
  assert.equal((await b.getPfsync()).syncdev, 'em1');
  await assert.rejects(
    b.apply([
      { op: 'maintenance.set', enabled: true },
      { op: 'vhid.set', interface: 'em0', vhid: 1, params: { advbaseSec: 1, advskew: 0 } },
    ]),
    (e: unknown) => {
      assert.ok(e instanceof BatchError, String(e));
      assert.equal(e.index, 1);
      assert.equal(e.errnoName, 'EPROTONOSUPPORT');
      assert.match(e.message, /^set vhid 1 /);
      return true;
    },
  );
  assert.equal(await b.getMaintenance(), false, 'the maintenance step before it was not applied');
});
