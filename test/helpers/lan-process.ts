/**
 * Another implementation (ucarp, keepalived) as a process in a namespace of a Lan (netns.ts),
 * for the interop tests: whether it is installed, starting it with a stop that waits for its
 * exit, and the scripts and files through which it reports what it did.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Lan } from './netns.js';

interface TestContextLike {
  after(fn: () => unknown): void;
}

/** Why a test needing argv[0] skips ("… is not installed (apt-get install PKG)"), or undefined when it runs. */
export function commandMissing(argv: string[], pkg: string): string | undefined {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: 'ignore' });
    return undefined;
  } catch (e) {
    // Only a spawn error means it is not installed; a non-zero exit still means it is there.
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${argv[0]} is not installed (apt-get install ${pkg})` : undefined;
  }
}

export interface LanProcess {
  proc: ChildProcess;
  /** Sends signal unless it has exited, and resolves once it has. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

/** argv in namespace ns, its output discarded; t.after kills it with SIGKILL. */
export function spawnInLan(t: TestContextLike, lan: Lan, ns: string, argv: string[]): LanProcess {
  const proc = lan.spawn(ns, argv);
  proc.stdout?.resume();
  proc.stderr?.resume();
  let exited = false;
  const done = new Promise<void>((resolve) => proc.on('exit', () => ((exited = true), resolve())));
  const stop = async (signal: NodeJS.Signals) => {
    if (!exited) proc.kill(signal);
    await done;
  };
  t.after(() => stop('SIGKILL'));
  return { proc, stop };
}

/** Writes an executable shell script and returns its path. */
export function writeScript(file: string, text: string): string {
  writeFileSync(file, text);
  chmodSync(file, 0o755);
  return file;
}

/** The non-empty lines of a file a script appends to; none before it exists. */
export function linesOf(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}
