/**
 * pf's status on FreeBSD: the decoders of each release's format (13: struct pf_status of
 * DIOCGETSTATUS, 14 and 15: the nvlist of DIOCGETSTATUSNV) with bytes laid out from
 * reference/pf-status-abi.json, then the freebsd backend's pfStatus() against the fake FreeBSD
 * libc of native/, on each release's code path: the fake's counts come back, with how they were
 * read, the bulk update of pfsync beside them, null without pf.ko, and kernel errors by name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { KernelBackend } from '../src/kernel/backend.js';
import { KernelError } from '../src/kernel/errno.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import {
  DIOCGETSTATUS,
  DIOCGETSTATUSNV,
  PF_STATUS_LAYOUT,
  PFIOC_NV_LAYOUT,
  decodePfStatus,
  encodePfStatus,
  pfStatusFromNv,
} from '../src/kernel/freebsd/layout-pf.js';
import { ioctlName } from '../src/kernel/freebsd/layout.js';
import { LIBC, LIBNV, buildNative, useFakeKernel } from './helpers/fakebsd.js';

const WORK = useFakeKernel('carpd-fbsd-pf-');
const unavailable = buildNative();
const skip = unavailable ?? false;

interface PfAbi {
  structs: Record<string, { size: number; fields: Record<string, { offset: number; size: number }> }>;
  ioctls: Record<string, { value: number }>;
  constants: Record<string, number>;
}
const manifest = JSON.parse(readFileSync(fileURLToPath(new URL('../reference/pf-status-abi.json', import.meta.url)), 'utf8')) as { abi: Record<string, PfAbi> };

// --- decoding, per release format ---------------------------------------------------------------

test('13/14: struct pf_status decodes running, states and the FCNT counters at the manifest offsets', () => {
  for (const v of ['13', '14']) {
    const j = manifest.abi[v]!;
    const ps = j.structs.pf_status!;
    const buf = Buffer.alloc(ps.size, 0xee); // every byte set: a field read from the wrong place shows
    buf.writeUInt32LE(1, ps.fields.running!.offset);
    buf.writeUInt32LE(4242, ps.fields.states!.offset);
    buf.writeUInt32LE(7, ps.fields.src_nodes!.offset);
    const fc = ps.fields.fcounters!.offset;
    buf.writeBigUInt64LE(2n ** 40n + 1n, fc + 8 * j.constants.FCNT_STATE_SEARCH!);
    buf.writeBigUInt64LE(5000n, fc + 8 * j.constants.FCNT_STATE_INSERT!);
    buf.writeBigUInt64LE(758n, fc + 8 * j.constants.FCNT_STATE_REMOVALS!);
    assert.deepEqual(decodePfStatus(buf), { running: true, states: 4242, srcNodes: 7, stateSearches: 2 ** 40 + 1, stateInserts: 5000, stateRemovals: 758 }, `FreeBSD ${v}`);
    buf.writeUInt32LE(0, ps.fields.running!.offset);
    assert.equal(decodePfStatus(buf).running, false);
    assert.throws(() => decodePfStatus(buf.subarray(0, ps.size - 1)), RangeError);
  }
});

test('encodePfStatus writes each field where the manifest puts it (round trip)', () => {
  const ps = manifest.abi['14']!.structs.pf_status!;
  const v = { running: true, states: 3, srcNodes: 1, stateSearches: 9, stateInserts: 8, stateRemovals: 5 };
  const buf = Buffer.alloc(ps.size);
  encodePfStatus(v, buf);
  assert.equal(buf.readUInt32LE(ps.fields.states!.offset), 3);
  assert.equal(buf.readBigUInt64LE(ps.fields.fcounters!.offset + 8), 8n);
  assert.deepEqual(decodePfStatus(buf), v);
});

test('the pf layouts and request numbers match the manifest for 13, 14 and 15 (DIOCGETSTATUS absent from 15)', () => {
  for (const v of ['13', '14', '15']) {
    const j = manifest.abi[v]!;
    assert.equal(j.ioctls.DIOCGETSTATUSNV?.value, DIOCGETSTATUSNV, `${v} DIOCGETSTATUSNV`);
    assert.deepEqual(j.structs.pfioc_nv, { size: PFIOC_NV_LAYOUT.size, fields: PFIOC_NV_LAYOUT.fields });
    if (v === '15') {
      assert.equal(j.ioctls.DIOCGETSTATUS, undefined);
      assert.equal(j.structs.pf_status, undefined);
    } else {
      assert.equal(j.ioctls.DIOCGETSTATUS?.value, DIOCGETSTATUS, `${v} DIOCGETSTATUS`);
      assert.deepEqual(j.structs.pf_status, { size: PF_STATUS_LAYOUT.size, fields: PF_STATUS_LAYOUT.fields });
    }
  }
  // _IOWR('D', 21, ...) with the struct's size: both requests carry their size in bits 16..28.
  assert.equal((DIOCGETSTATUS >>> 16) & 0x1fff, PF_STATUS_LAYOUT.size);
  assert.equal((DIOCGETSTATUSNV >>> 16) & 0x1fff, PFIOC_NV_LAYOUT.size);
  assert.equal(DIOCGETSTATUS, 0xc1a04415);
  assert.equal(DIOCGETSTATUSNV, 0xc0184415);
  assert.equal(ioctlName(DIOCGETSTATUSNV), 'DIOCGETSTATUSNV');
});

test('the fake libc of native/ answers the same request numbers and struct size as the manifest', () => {
  const h = readFileSync(fileURLToPath(new URL('../native/fakebsd/fbsd_abi.h', import.meta.url)), 'utf8');
  const def = (name: string) => Number(new RegExp(`#define FBSD_${name} (0x[0-9a-f]+)u`).exec(h)?.[1]);
  assert.equal(def('DIOCGETSTATUS'), manifest.abi['14']!.ioctls.DIOCGETSTATUS!.value);
  assert.equal(def('DIOCGETSTATUSNV'), manifest.abi['15']!.ioctls.DIOCGETSTATUSNV!.value);
  assert.match(h, new RegExp(`FBSD_CHECK_SIZE\\(fbsd_pf_status, ${manifest.abi['13']!.structs.pf_status!.size}\\)`));
  for (const f of ['fcounters', 'running', 'states', 'src_nodes']) {
    assert.match(h, new RegExp(`FBSD_CHECK_OFF\\(fbsd_pf_status, ${f}, ${manifest.abi['13']!.structs.pf_status!.fields[f]!.offset}\\)`), f);
  }
});

test('14/15: the nvlist reply is read by key, fcounters by their ids; a missing key is an error, not a zero', () => {
  const nv = { running: true, states: 12, src_nodes: 0, fcounters: { counters: [100, 20, 8], ids: [0, 1, 2] } };
  assert.deepEqual(pfStatusFromNv(nv), { running: true, states: 12, srcNodes: 0, stateSearches: 100, stateInserts: 20, stateRemovals: 8 });
  // ids, not positions, name the counters.
  assert.deepEqual(pfStatusFromNv({ ...nv, fcounters: { counters: [8, 20, 100], ids: [2, 1, 0] } }).stateSearches, 100);
  // Without ids, the kernel's order.
  assert.equal(pfStatusFromNv({ ...nv, fcounters: { counters: [1, 2, 3] } }).stateRemovals, 3);
  assert.throws(() => pfStatusFromNv({ ...nv, states: undefined as unknown as number }), /"states"/);
  assert.throws(() => pfStatusFromNv({ states: 1, src_nodes: 0, fcounters: nv.fcounters }), /"running"/);
  assert.throws(() => pfStatusFromNv({ ...nv, fcounters: { counters: [1, 2], ids: [0, 1] } }), /counter 2/);
});

// --- the backend against the fake libc ----------------------------------------------------------

function loadFake() {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  const f = (decl: string) => lib.func(decl) as (...a: unknown[]) => number;
  const fns = {
    reset: f('int fakebsd_reset(void)'),
    setOsreldate: f('int fakebsd_set_osreldate(int v)'),
    pfSet: f('int fakebsd_pf_set(int loaded, int running, long states, long searches, long inserts, long removals)'),
    pfsyncBulk: f('int fakebsd_pfsync_bulk(int pending)'),
    failNext: f('int fakebsd_fail_next(unsigned long request, int fbsd_errno)'),
    count: f('long fakebsd_ioctl_count(unsigned long request)'),
  };
  return {
    reset: () => fns.reset(),
    setOsreldate: (v: number) => fns.setOsreldate(v),
    pf: (o: { loaded?: boolean; running?: boolean; states?: number; searches?: number; inserts?: number; removals?: number }) =>
      fns.pfSet(o.loaded === false ? 0 : 1, o.running === false ? 0 : 1, o.states ?? -1, o.searches ?? -1, o.inserts ?? -1, o.removals ?? -1),
    pfsyncBulk: (pending: boolean) => fns.pfsyncBulk(pending ? 1 : 0),
    failNext: (request: number, errno: number) => fns.failNext(request, errno),
    count: (request: number) => Number(fns.count(request)),
  };
}
type Fake = ReturnType<typeof loadFake>;
const fake: Fake = unavailable ? (undefined as unknown as Fake) : loadFake();

// 13.0 (binary only), 13.1+ (both), 14, 15 (nvlist only).
const OSREL = { '13.0': 1300139, '13.2': 1302001, '14': 1400097, '15': 1500045 } as const;
type Release = keyof typeof OSREL;

async function open(t: { after(fn: () => unknown): void }, release: Release, opts: { libnv?: boolean } = {}): Promise<KernelBackend> {
  fake.reset();
  fake.setOsreldate(OSREL[release]);
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const backend = await openFreebsdBackend({
    stateDir,
    libcPath: LIBC,
    libnvPath: opts.libnv === false ? path.join(WORK, 'no-libnv.so') : LIBNV,
    devdPipe: path.join(WORK, 'no-devd.pipe'),
    devdBackoffMs: { min: 60_000, max: 60_000 },
  });
  t.after(async () => {
    await backend.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return backend;
}

const EXPECT_VIA: Record<Release, 'ioctl' | 'nvlist'> = { '13.0': 'ioctl', '13.2': 'ioctl', '14': 'nvlist', '15': 'nvlist' };

for (const release of Object.keys(OSREL) as Release[]) {
  test(`FreeBSD ${release}: pfStatus() returns the kernel's state count and counters, read via ${EXPECT_VIA[release]}`, { skip }, async (t) => {
    const b = await open(t, release);
    fake.pf({ running: true, states: 1234, searches: 2 ** 33 + 5, inserts: 4000, removals: 2766 });
    const before = { bin: fake.count(DIOCGETSTATUS), nv: fake.count(DIOCGETSTATUSNV) };
    const s = await b.pfStatus();
    assert.deepEqual(s, { running: true, states: 1234, srcNodes: 0, stateSearches: 2 ** 33 + 5, stateInserts: 4000, stateRemovals: 2766, via: EXPECT_VIA[release], pfsyncBulkUpdateDone: null });
    const used = { bin: fake.count(DIOCGETSTATUS) - before.bin, nv: fake.count(DIOCGETSTATUSNV) - before.nv };
    if (EXPECT_VIA[release] === 'ioctl') assert.deepEqual(used, { bin: 1, nv: 0 });
    // 15 has no DIOCGETSTATUS: the nvlist request is the only one asked (a size probe, then the read).
    else assert.deepEqual(used, { bin: 0, nv: 2 });

    fake.pf({ running: false, states: 0 });
    const off = await b.pfStatus();
    assert.equal(off?.running, false);
    assert.equal(off?.states, 0);
    assert.equal(off?.stateInserts, 4000, 'the counters outlive pfctl -d');
  });
}

test('FreeBSD 14 without libnv: DIOCGETSTATUS answers; on 15 without libnv the status cannot be read (named error)', { skip }, async (t) => {
  const b14 = await open(t, '14', { libnv: false });
  fake.pf({ states: 7 });
  assert.deepEqual(await b14.pfStatus().then((s) => [s?.via, s?.states]), ['ioctl', 7]);
  await b14.close();
  const b15 = await open(t, '15', { libnv: false });
  await assert.rejects(b15.pfStatus(), (e: unknown) => e instanceof KernelError && e.errnoName === 'EACCES' && /DIOCGETSTATUS/.test(e.message));
});

test('13.2: a refused DIOCGETSTATUS falls back to the nvlist request and is not asked again', { skip }, async (t) => {
  const b = await open(t, '13.2');
  fake.pf({ states: 3 });
  fake.failNext(DIOCGETSTATUS, 13 /* EACCES */);
  assert.equal((await b.pfStatus())?.via, 'nvlist');
  const bin = fake.count(DIOCGETSTATUS);
  assert.equal((await b.pfStatus())?.states, 3);
  assert.equal(fake.count(DIOCGETSTATUS), bin);
});

test('pfsync bulk update: null while pfsync runs nowhere, false while the bulk update is pending, true when done', { skip }, async (t) => {
  const b = await open(t, '14');
  assert.equal((await b.pfStatus())?.pfsyncBulkUpdateDone, null);
  await b.setPfsync({ syncdev: 'em1', maxupd: 128, defer: false, version: 1400 });
  fake.pfsyncBulk(true);
  assert.equal((await b.pfStatus())?.pfsyncBulkUpdateDone, false);
  fake.pfsyncBulk(false);
  assert.equal((await b.pfStatus())?.pfsyncBulkUpdateDone, true);
});

test('without pf.ko there is no /dev/pf: pfStatus() is null, and pf loaded later is seen', { skip }, async (t) => {
  const b = await open(t, '14');
  fake.pf({ loaded: false });
  assert.equal(await b.pfStatus(), null);
  fake.pf({ loaded: true, states: 9 });
  assert.equal((await b.pfStatus())?.states, 9);
});

test('a kernel error is a KernelError named by its errno and request', { skip }, async (t) => {
  const b = await open(t, '14');
  fake.failNext(DIOCGETSTATUSNV, 1 /* EPERM */);
  await assert.rejects(b.pfStatus(), (e: unknown) => e instanceof KernelError && e.errnoName === 'EPERM' && /ioctl DIOCGETSTATUSNV/.test(e.message));
  // The next read works: the error changed nothing.
  fake.pf({ states: 2 });
  assert.equal((await b.pfStatus())?.states, 2);
});
