/**
 * What the network-namespace benchmarks share (bench:failover, bench:timing): long-running
 * observers (tcpdump, ip monitor) in a namespace whose lines are collected as they come, their
 * timestamps, and the cleanups a run registers (a stand-in for node:test's `t.after`).
 */
import { spawn } from 'node:child_process';
import type { Lan } from '../test/helpers/netns.js';

/** Cleanups registered during a run, run in reverse order by `run()`. */
export class Cleanups {
  private readonly fns: (() => unknown)[] = [];
  /** The `t` the test helpers (setUpLan, startLinuxNode) expect. */
  readonly t = { after: (fn: () => unknown) => void this.fns.push(fn) };

  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) await fn();
    this.fns.length = 0;
  }
}

/** A long-running observer whose stdout lines are collected as they come; killed at cleanup or by `stop`. */
export function observe(lan: Lan, ns: string, argv: string[], cleanups: Cleanups) {
  const lines: string[] = [];
  const proc = lan.spawn(ns, argv);
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  proc.stderr!.resume();
  cleanups.t.after(() => proc.kill('SIGKILL'));
  return { lines, stop: () => proc.kill('SIGKILL') };
}

/** `ip -ts monitor` prints "[2026-11-26T00:12:34.123456] ..." in local time: seconds since the epoch. */
export function monitorTime(line: string): number | undefined {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\]/.exec(line);
  return m ? new Date(m[1]).getTime() / 1000 + Number(m[2]) / 1e6 : undefined;
}

/** The leading `tcpdump -tt` timestamps (seconds) of the lines that have one. */
export const tcpdumpStamps = (lines: string[]) => lines.map((l) => Number(l.split(' ')[0])).filter((x) => Number.isFinite(x));

/** Resolves when tcpdump can be run; rejects with how to install it otherwise. */
export function requireTcpdump(): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const p = spawn('tcpdump', ['--version'], { stdio: 'ignore' });
    p.on('error', () => reject(new Error('tcpdump is needed (apt-get install tcpdump)')));
    p.on('exit', () => resolve());
  });
}
