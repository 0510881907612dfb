/**
 * The fake FreeBSD libc of native/ for tests: where it is, building it once, and a per-file
 * fake kernel state. The library attaches to FAKEBSD_STATE once per process, so call
 * `useFakeKernel()` at the top of a test file, before anything loads the library.
 */
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const LIBC = path.join(ROOT, 'native', 'build', 'libfakefreebsd.so');
export const LIBNV = path.join(ROOT, 'native', 'build', 'libfakenv.so');
export const IFCONFIG = path.join(ROOT, 'native', 'build', 'fake-ifconfig');

/** Builds native/; returns a reason to skip when there is no C toolchain, else undefined. */
export function buildNative(): string | undefined {
  for (const tool of ['gcc', 'make']) {
    if (spawnSync(tool, ['--version']).status !== 0) return `${tool} not installed: cannot build the fake FreeBSD libc of native/`;
  }
  execFileSync('make', ['-C', path.join(ROOT, 'native')], { stdio: 'pipe' });
  return undefined;
}

/** A temporary work dir removed after the file's tests, holding this process's fake kernel state. */
export function useFakeKernel(prefix: string): string {
  const work = mkdtempSync(path.join(tmpdir(), prefix));
  after(() => rmSync(work, { recursive: true, force: true }));
  process.env.FAKEBSD_STATE = path.join(work, 'kernel.state');
  return work;
}

/**
 * The fake kernel's controls a daemon test needs: reset it, and read net.inet.carp.demotion from
 * its state dump. Call only once buildNative() has succeeded.
 */
export function fakeKernelControls(): { reset(): void; demotion(): number } {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  const reset = lib.func('int fakebsd_reset(void)') as () => number;
  const dump = lib.func('int fakebsd_dump(void *buf, size_t len)') as (b: Buffer | null, n: number) => number;
  return {
    reset: () => assert.ok(reset() >= 0),
    demotion(): number {
      const n = dump(null, 0);
      const buf = Buffer.alloc(n + 1);
      dump(buf, buf.length);
      return (JSON.parse(buf.toString('utf8', 0, n)) as { sysctl: Record<string, number> }).sysctl['net.inet.carp.demotion']!;
    },
  };
}

/** The environment of a compiled carpd on the freebsd backend over the fake kernel (`work`: useFakeKernel's directory). */
export function fakeDaemonEnv(work: string): Record<string, string> {
  return { CARPD_FREEBSD_LIBC: LIBC, CARPD_FREEBSD_LIBNV: LIBNV, FAKEBSD_STATE: process.env.FAKEBSD_STATE!, CARPD_DEVD_PIPE: path.join(work, 'no-devd.pipe') };
}
