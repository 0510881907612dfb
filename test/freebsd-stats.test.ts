/**
 * The freebsd backend's stats() against the fake FreeBSD libc of native/: net.inet.carp.stats,
 * net.pfsync.stats sized by the kernel (336 / 368 / 400 bytes on 13 / 14 / 15, T15), and the
 * log / demotion-factor sysctls; then GET /v1/stats served from that backend.
 *
 * The fake keeps its state in the file FAKEBSD_STATE names, attached once per process when the
 * library first runs; this file gets its own and resets it before each test.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { CARP_COUNTERS, type KernelBackend } from '../src/kernel/backend.js';
import { KernelError } from '../src/kernel/errno.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { PFSYNCSTATS_FIELDS, PFSYNC_ACT_MAX } from '../src/kernel/freebsd/layout.js';
import { encodePfsyncstats, pfsyncstatsSize, type PfsyncCounters } from '../src/kernel/freebsd/layout-pfsync.js';
import { READ_TOKEN, makeHarness } from './helpers/harness.js';
import { LIBC, LIBNV, buildNative, useFakeKernel } from './helpers/fakebsd.js';


const WORK = useFakeKernel('carpd-fbsd-stats-');

const unavailable = buildNative();
const skip = unavailable ?? false;

/** The fake kernel's control API (native/fakebsd/fakebsd_control.h) and its sysctlbyname. */
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
    setOsreldate: f('int fakebsd_set_osreldate(int v)'),
    setModules: f('int fakebsd_set_modules(int carp, int pfsync)'),
    sysctlbyname: f('int sysctlbyname(const char *name, void *oldp, void *oldlenp, const void *newp, size_t newlen)'),
  };
  return {
    reset: () => ok('reset', fns.reset()),
    setOsreldate: (v: number) => ok('osreldate', fns.setOsreldate(v)),
    setModules: (carp: boolean, pfsync: boolean) => ok('modules', fns.setModules(carp ? 1 : 0, pfsync ? 1 : 0)),
    /** Writes a sysctl as root would on the box (sysctl(8), or pfsync's own updates). */
    write(name: string, value: Buffer) {
      ok(`sysctl ${name}`, fns.sysctlbyname(name, null, null, value, value.length));
    },
    writeInt(name: string, v: number) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      this.write(name, b);
    },
  };
}
type Fake = ReturnType<typeof loadFake>;
const fake: Fake = unavailable ? (undefined as unknown as Fake) : loadFake();

const OSREL = { 13: 1300139, 14: 1400097, 15: 1500045 } as const;

/** A backend on a fresh fake kernel of the given release; no devd (stats need none). */
async function open(t: { after(fn: () => unknown): void }, release: 13 | 14 | 15 = 14, modules?: { carp: boolean; pfsync: boolean }): Promise<KernelBackend> {
  fake.reset();
  fake.setOsreldate(OSREL[release]);
  if (modules) fake.setModules(modules.carp, modules.pfsync);
  const stateDir = mkdtempSync(path.join(WORK, 'state-'));
  const backend = await openFreebsdBackend({ stateDir, libcPath: LIBC, libnvPath: LIBNV, devdPipe: path.join(WORK, 'no-devd.pipe'), devdBackoffMs: { min: 60_000, max: 60_000 } });
  t.after(async () => {
    await backend.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return backend;
}

for (const release of [13, 14, 15] as const) {
  test(`FreeBSD ${release}: net.pfsync.stats is parsed by the length the kernel reports (ACT_MAX ${PFSYNC_ACT_MAX[release]})`, { skip }, async (t) => {
    const b = await open(t, release);
    const s = await b.stats();
    assert.equal(s.pfsync?.actMax, PFSYNC_ACT_MAX[release]);
    assert.equal(pfsyncstatsSize(s.pfsync!.actMax), { 13: 336, 14: 368, 15: 400 }[release]);
    assert.deepEqual(Object.keys(s.pfsync!.counters), [...PFSYNCSTATS_FIELDS]);
    assert.ok(Object.values(s.pfsync!.counters).every((v) => v === 0));
    // The fake cannot set carpstats (a write zeroes them, as PCPUSTAT does): every counter, at 0.
    assert.deepEqual(Object.keys(s.carp), [...CARP_COUNTERS]);
    assert.ok(Object.values(s.carp).every((v) => v === 0));
    assert.deepEqual(s.sysctls, { carpLog: 1, senderrDemotionFactor: 240, ifdownDemotionFactor: 240, pfsyncCarpDemotionFactor: 240 });
  });

  test(`FreeBSD ${release}: pfsync counters written to the kernel read back by name, the per-action arrays kept apart`, { skip }, async (t) => {
    const b = await open(t, release);
    const actMax = PFSYNC_ACT_MAX[release];
    const counters = Object.fromEntries(PFSYNCSTATS_FIELDS.map((n, i) => [n, BigInt(i * 3 + 1)])) as PfsyncCounters;
    counters.ipackets = 2n ** 52n + 3n; // above 2^32, still exact as a number
    counters.oerrors = 9n;
    const raw = Buffer.alloc(pfsyncstatsSize(actMax));
    // Per-action counters large enough that a misplaced read would show up in the named ones.
    const iacts = Array.from({ length: actMax }, (_, i) => 1_000_000n + BigInt(i));
    const oacts = Array.from({ length: actMax }, (_, i) => 2_000_000n + BigInt(i));
    encodePfsyncstats({ counters, actMax, iacts, oacts }, raw, 0);
    fake.write('net.pfsync.stats', raw);

    const s = await b.stats();
    assert.equal(s.pfsync?.actMax, actMax);
    assert.deepEqual(s.pfsync?.counters, Object.fromEntries(Object.entries(counters).map(([k, v]) => [k, Number(v)])));
    assert.equal(s.pfsync?.counters.ipackets, 2 ** 52 + 3);
  });
}

test('net.inet.carp.log and the demotion factors are read as the kernel has them', { skip }, async (t) => {
  const b = await open(t);
  fake.writeInt('net.inet.carp.log', 2);
  fake.writeInt('net.pfsync.carp_demotion_factor', 100);
  fake.writeInt('net.inet.carp.senderr_demotion_factor', 50);
  fake.writeInt('net.inet.carp.ifdown_demotion_factor', 0);
  const s = await b.stats();
  assert.deepEqual(s.sysctls, { carpLog: 2, senderrDemotionFactor: 50, ifdownDemotionFactor: 0, pfsyncCarpDemotionFactor: 100 });
});

test('pfsync.ko not loaded: no pfsync part and no pfsync factor, the CARP part as usual', { skip }, async (t) => {
  const b = await open(t, 14, { carp: true, pfsync: false });
  const s = await b.stats();
  assert.equal(s.pfsync, undefined);
  assert.equal('pfsync' in s, false);
  assert.equal(s.sysctls.pfsyncCarpDemotionFactor, undefined);
  assert.equal(s.sysctls.carpLog, 1);
  assert.equal(Object.keys(s.carp).length, 16);
});

test('carp.ko not loaded: EPROTONOSUPPORT that says what to load', { skip }, async (t) => {
  const b = await open(t, 14, { carp: false, pfsync: true });
  await assert.rejects(b.stats(), (e: unknown) => {
    assert.ok(e instanceof KernelError, String(e));
    assert.equal(e.errnoName, 'EPROTONOSUPPORT');
    assert.match(e.message, /CARP statistics/);
    assert.match(e.message, /kldload carp/);
    return true;
  });
});

test('GET /v1/stats from the freebsd backend matches the spec; without carp.ko it is CARPD_ERR_KERNEL', { skip }, async (t) => {
  const b = await open(t, 15);
  const counters = Object.fromEntries(PFSYNCSTATS_FIELDS.map((n) => [n, 0n])) as PfsyncCounters;
  counters.opackets = 42n;
  const raw = Buffer.alloc(pfsyncstatsSize(17));
  encodePfsyncstats({ counters, actMax: 17, iacts: Array(17).fill(0n), oacts: Array(17).fill(0n) }, raw, 0);
  fake.write('net.pfsync.stats', raw);
  const h = await makeHarness({ backend: b });
  t.after(() => h.close());
  const res = await h.api.get('/v1/stats', { token: READ_TOKEN });
  assert.equal(res.status, 200);
  assert.equal(res.body.backend, 'freebsd');
  assert.equal(res.body.pfsync.actMax, 17);
  assert.equal(res.body.pfsync.counters.opackets, 42);
  assert.deepEqual(res.body.sysctls, { carpLog: 1, senderrDemotionFactor: 240, ifdownDemotionFactor: 240, pfsyncCarpDemotionFactor: 240 });

  fake.setModules(false, true);
  const gone = await h.api.get('/v1/stats');
  assert.equal(gone.status, 502);
  assert.equal(gone.body.code, 'CARPD_ERR_KERNEL');
  assert.equal(gone.body.kernel.errnoName, 'EPROTONOSUPPORT');
  assert.match(gone.body.detail, /kldload carp/);
});
