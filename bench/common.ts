/** What the benchmarks share: the commit measured, file system names, percentiles. */
import { execFileSync, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The commit measured, so that results can be told apart; undefined outside a git checkout. */
export function gitRevision(): string | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--untracked-files=no', '--', 'src', 'openapi') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/ or openapi/' : ''}`;
  } catch {
    return undefined;
  }
}

/** statfs magic numbers of the file systems a state dir is likely to be on. */
export const FS_TYPES: Record<number, string> = { 0x01021994: 'tmpfs', 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x2fc12fc1: 'zfs', 0x794c7630: 'overlayfs' };

/** Nearest-rank percentile (p in 0..100) of values sorted ascending; NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * A load generator in a process of its own, so that it does not share the measured servers'
 * event loop: the bench file runs itself again with LOAD_PROCESS_FLAG and the job as JSON.
 */
export const LOAD_PROCESS_FLAG = '--client';

/** In the load process: tells the parent that measuring starts or ends (it reads its own CPU time then). */
export function markMeasuring(phase: 'start' | 'end'): Promise<void> {
  return new Promise((resolve, reject) => process.send!({ mark: phase }, (e: Error | null) => (e ? reject(e) : resolve())));
}

/** In the load process: hands the result to the parent and lets the process end. */
export async function sendResult(result: unknown): Promise<void> {
  await new Promise<void>((resolve, reject) => process.send!(result, (e: Error | null) => (e ? reject(e) : resolve())));
  process.disconnect();
}

/**
 * Runs `job` in a load process made from `benchFile` (its import.meta.url); `cpuMs` is this (the
 * servers') process's CPU time between the load process's two markMeasuring calls. fork() reuses
 * this process's execArgv, so the child gets the same TypeScript loader.
 */
export function runLoadProcess<R>(benchFile: string, job: unknown): Promise<{ result: R; cpuMs: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(benchFile), [LOAD_PROCESS_FLAG, JSON.stringify(job)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: R | undefined;
    let cpuStart: NodeJS.CpuUsage | undefined;
    let cpuMs = NaN;
    child.on('message', (m: { mark: 'start' | 'end' } | R) => {
      if (typeof m === 'object' && m !== null && 'mark' in m) {
        if (m.mark === 'start') cpuStart = process.cpuUsage();
        else if (cpuStart) {
          const d = process.cpuUsage(cpuStart);
          cpuMs = (d.user + d.system) / 1000;
        }
      } else result = m as R;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => (result !== undefined ? resolve({ result, cpuMs }) : reject(new Error(`load generator exited (${signal ?? code}) without a result`))));
  });
}
