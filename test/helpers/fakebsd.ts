/**
 * The fake FreeBSD libc of native/ for tests: where it is, building it once, and a per-file
 * fake kernel state. The library attaches to FAKEBSD_STATE once per process, so call
 * `useFakeKernel()` at the top of a test file, before anything loads the library.
 */
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
