/**
 * The koffi bindings of src/kernel/freebsd/libc.ts and libnv.ts, on Linux:
 *  - against a tiny stand-in libc compiled here with gcc (records the ioctl request as the C side
 *    sees it, follows ifr_data, sets FreeBSD errno values), to check the calling conventions;
 *  - against native/build/libfakefreebsd.so and libfakenv.so when they have been built.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { KernelError } from '../src/kernel/errno.js';
import { AF_INET, SIOCGIFFLAGS, SIOCGVH, SOCK_DGRAM, ifreqBytes } from '../src/kernel/freebsd/layout.js';
import { carpreqBytes, decodeCarpreq } from '../src/kernel/freebsd/layout-carp.js';
import { type Libc, loadLibc } from '../src/kernel/freebsd/libc.js';
import { PFSYNC_NV_SCHEMA, loadLibnv } from '../src/kernel/freebsd/libnv.js';

const STUB_C = String.raw`
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
static unsigned long last_req;
static int eintr_left, calls;
static int32_t demotion;
unsigned long stub_last_request(void) { return last_req; }
int stub_calls(void) { return calls; }
void stub_eintr(int n) { eintr_left = n; }
int socket(int d, int t, int p) { (void)t; (void)p; if (d == 99) { errno = 47; return -1; } return 7; }
int close(int fd) { if (fd != 7) { errno = 9; return -1; } return 0; }
int ioctl(int fd, unsigned long req, ...) {
  va_list ap; va_start(ap, req); char *arg = va_arg(ap, char *); va_end(ap);
  calls++; last_req = req;
  if (eintr_left > 0) { eintr_left--; errno = 4; return -1; }
  if (fd != 7) { errno = 9; return -1; }
  if (strcmp(arg, "nope0") == 0) { errno = 6; return -1; }
  if (req == 0xc02069f6UL) { int32_t *cr = *(int32_t **)(arg + 16); cr[2] = 2; cr[3] = cr[1] * 2; return 0; }
  if (req == 0xc0206911UL) { arg[16] = 0x43; arg[17] = (char)0x80; return 0; }
  return 0;
}
int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, const void *newp, size_t newlen) {
  if (strcmp(name, "net.inet.carp.demotion") != 0) { errno = 2; return -1; }
  if (oldlenp) {
    if (oldp) { if (*oldlenp < 4) { errno = 12; return -1; } memcpy(oldp, &demotion, 4); }
    *oldlenp = 4;
  }
  if (newp) { int32_t d; if (newlen != 4) { errno = 22; return -1; } memcpy(&d, newp, 4); demotion += d; }
  return 0;
}
unsigned int if_nametoindex(const char *n) { if (strcmp(n, "em0") == 0) return 1; errno = 6; return 0; }
ssize_t send(int fd, const void *b, size_t l, int f) { (void)b; (void)f; if (fd != 7) { errno = 9; return -1; } return (ssize_t)l; }
ssize_t recv(int fd, void *b, size_t l, int f) { (void)fd; if (f == 0x80) { errno = 35; return -1; } size_t n = l < 3 ? l : 3; memset(b, 0xab, n); return (ssize_t)n; }
void free(void *p) { (void)p; }
`;

const hasGcc = spawnSync('gcc', ['--version']).status === 0;
let dir = '';
let libc: Libc;
let stub: { lastRequest: () => unknown; calls: () => number; eintr: (n: number) => void };

before(() => {
  if (!hasGcc) return;
  dir = mkdtempSync(path.join(tmpdir(), 'carpd-libc-'));
  writeFileSync(path.join(dir, 'stub.c'), STUB_C);
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-o', path.join(dir, 'libstubc.so'), path.join(dir, 'stub.c')]);
  libc = loadLibc(path.join(dir, 'libstubc.so'));
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(path.join(dir, 'libstubc.so'));
  stub = { lastRequest: lib.func('unsigned long stub_last_request(void)'), calls: lib.func('int stub_calls(void)'), eintr: lib.func('void stub_eintr(int)') };
});
after(() => dir && rmSync(dir, { recursive: true, force: true }));

const skipStub = hasGcc ? false : 'gcc not installed: cannot build the stand-in libc';
const isKernelError = (errno: number, operation: string, iface?: string) => (e: unknown) =>
  e instanceof KernelError && e.errno === errno && e.operation === operation && e.iface === iface;

test('loadLibc names the path and CARPD_FREEBSD_LIBC when the library is missing', () => {
  assert.throws(() => loadLibc('/nonexistent/libc.so.7'), (e: Error) => /\/nonexistent\/libc\.so\.7/.test(e.message) && /CARPD_FREEBSD_LIBC/.test(e.message));
  assert.throws(() => loadLibnv({ free: () => {} }, '/nonexistent/libnv.so.1'), /CARPD_FREEBSD_LIBNV/);
});

test('loadLibc refuses a libc without sysctlbyname (glibc)', { skip: process.platform === 'linux' ? false : 'Linux only' }, () => {
  assert.throws(() => loadLibc('libc.so.6'), (e: Error) => /sysctlbyname/.test(e.message) && /CARPD_FREEBSD_LIBC/.test(e.message));
});

test('ioctl: the request reaches C as an unsigned 64-bit value, ifr_data points at the live carpreq', { skip: skipStub }, () => {
  const fd = libc.socket(AF_INET, SOCK_DGRAM, 0);
  const cr = carpreqBytes({ count: 1, vhid: 21, state: 0, advskew: 0, advbase: 0, key: Buffer.alloc(0) });
  libc.ioctl(fd, SIOCGVH, ifreqBytes({ name: 'em0', data: libc.addressOf(cr) }));
  assert.equal(stub.lastRequest(), 0xc02069f6, 'never sign-extended (T4)');
  assert.deepEqual([decodeCarpreq(cr, 0).state, decodeCarpreq(cr, 0).advskew], [2, 42]);
  const flags = ifreqBytes({ name: 'em0', flags: 0 });
  libc.ioctl(fd, BigInt(SIOCGIFFLAGS), flags);
  assert.equal(flags.readUInt16LE(16), 0x8043, 'the kernel writes into the Buffer in place');
  assert.throws(() => libc.ioctl(fd, SIOCGIFFLAGS, ifreqBytes({ name: 'nope0' })), isKernelError(6, 'ioctl SIOCGIFFLAGS', 'nope0'));
  assert.throws(() => libc.ioctl(99, 0xc0106924, Buffer.alloc(16)), isKernelError(9, 'ioctl 0xc0106924', undefined));
  assert.throws(() => libc.ioctl(fd, SIOCGVH, Buffer.alloc(16)), /moves 32 bytes/, 'a buffer shorter than the request size');
  assert.throws(() => libc.ioctl(fd, -1068996107, Buffer.alloc(32)), RangeError, 'a sign-extended request');
  const before = stub.calls();
  stub.eintr(2);
  libc.ioctl(fd, SIOCGIFFLAGS, flags);
  assert.equal(stub.calls() - before, 3, 'EINTR is retried');
  libc.close(fd);
  assert.throws(() => libc.close(8), isKernelError(9, 'close'));
});

test('sysctlbyname: size query, read, write, and errors', { skip: skipStub }, () => {
  const name = 'net.inet.carp.demotion';
  assert.equal(libc.sysctlbyname(name, null, 0, null), 4, 'size query');
  const delta = Buffer.alloc(4);
  delta.writeInt32LE(240);
  assert.equal(libc.sysctlbyname(name, null, null, delta), 0, 'pure write');
  const out = Buffer.alloc(4);
  assert.equal(libc.sysctlbyname(name, out, null, null), 4);
  assert.equal(out.readInt32LE(0), 240);
  assert.throws(() => libc.sysctlbyname(name, Buffer.alloc(2), null, null), isKernelError(12, `sysctl ${name}`));
  assert.throws(() => libc.sysctlbyname('net.nope', null, 0, null), isKernelError(2, 'sysctl net.nope'));
  assert.throws(() => libc.sysctlbyname(name, Buffer.alloc(2), 8, null), RangeError, 'oldlen beyond the buffer');
});

test('socket, if_nametoindex, send, recv and free map failures to KernelError', { skip: skipStub }, () => {
  assert.throws(() => libc.socket(99, SOCK_DGRAM, 0), isKernelError(47, 'socket'));
  assert.equal(libc.ifNameToIndex('em0'), 1);
  assert.throws(() => libc.ifNameToIndex('nope0'), isKernelError(6, 'if_nametoindex', 'nope0'));
  assert.equal(libc.send(7, Buffer.alloc(20)), 20);
  assert.throws(() => libc.send(3, Buffer.alloc(1)), isKernelError(9, 'netlink send'));
  const buf = Buffer.alloc(8);
  assert.equal(libc.recv(7, buf, 0), 3);
  assert.equal(buf.toString('hex'), 'ababab0000000000');
  assert.throws(() => libc.recv(7, buf, 0x80), (e: unknown) => e instanceof KernelError && e.errnoName === 'EAGAIN');
  libc.free(null);
  libc.free(0x1234n);
});

const FAKE_LIBC = path.resolve('native', 'build', 'libfakefreebsd.so');
const FAKE_LIBNV = path.resolve('native', 'build', 'libfakenv.so');

test('smoke: libc bindings against the fake FreeBSD libc', { skip: existsSync(FAKE_LIBC) ? false : `${FAKE_LIBC} not built` }, () => {
  const fake = loadLibc(FAKE_LIBC);
  const fd = fake.socket(AF_INET, SOCK_DGRAM, 0);
  try {
    assert.throws(() => fake.ioctl(fd, SIOCGIFFLAGS, ifreqBytes({ name: 'nonexist0' })), isKernelError(6, 'ioctl SIOCGIFFLAGS', 'nonexist0'));
    assert.throws(() => fake.ifNameToIndex('nonexist0'), (e: unknown) => e instanceof KernelError && e.iface === 'nonexist0');
  } finally {
    fake.close(fd);
  }
});

test('smoke: pfsync nvlist round trip through the fake libnv', { skip: existsSync(FAKE_LIBNV) ? false : `${FAKE_LIBNV} not built` }, () => {
  const koffi = createRequire(import.meta.url)('koffi');
  const free = koffi.load('libc.so.6').func('void free(void *)');
  const nv = loadLibnv({ free: (p) => free(p) }, FAKE_LIBNV);
  assert.equal(nv.prefix, 'FreeBSD_', 'the 14+ names are tried first');
  const sin = Buffer.from('10020000c00002020000000000000000', 'hex');
  const value = { syncdev: 'em1', syncpeer: { af: 2, address: sin }, maxupdates: 128, flags: 2, version: 1400 };
  const packed = nv.packNvlist(value);
  assert.deepEqual(nv.unpackNvlist(packed, PFSYNC_NV_SCHEMA), value);
  // Keys that are absent or of another type are skipped, never fetched (a get would abort, T13).
  assert.deepEqual(nv.unpackNvlist(packed, { missing: 'string', syncdev: 'number', nested: { x: 'binary' } }), {});
  assert.deepEqual(nv.unpackNvlist(nv.packNvlist({ n: 2n ** 63n }), { n: 'bigint' }), { n: 2n ** 63n });
  assert.throws(() => nv.unpackNvlist(nv.packNvlist({ n: 2n ** 63n }), { n: 'number' }), RangeError);
  assert.throws(() => nv.unpackNvlist(Buffer.from('not an nvlist'), PFSYNC_NV_SCHEMA), (e: unknown) => e instanceof KernelError);
  assert.throws(() => nv.packNvlist({ n: -1 }), RangeError);
});
