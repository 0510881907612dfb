/**
 * Hooks: programs run on events (as keepalived's notify scripts and ucarp's up/down scripts).
 *
 * The runner hears every event of the bus; for each hook of the desired state (read at each
 * event, so that a change applies at once) whose filters match, it queues a run. Per hook:
 * a bounded FIFO (the oldest run dropped, counted and reported when it overflows), one run at a
 * time, in the order of the events; hooks are independent of each other. Nothing here blocks
 * the bus: the subscriber only queues, and everything it publishes is published later.
 *
 * A run: `command[0]` spawned with `command.slice(1)` (no shell, no PATH search), in its own
 * process group, with the event in CARPD_* variables (event-env.ts) beside the hook's own
 * `env` and a fixed PATH, and the event as JSON on stdin. At `timeoutSec` the whole group gets
 * SIGTERM, then SIGKILL after a grace. Output is kept up to a bound per stream and logged. The
 * result is a `hook.succeeded` or `hook.failed` event. Hooks never run on hook.* events (the
 * rules refuse such filters): a hook's own results would run it again without end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { DesiredState, HookConfig } from '../config/model.js';
import type { AnyEvent, EventBus } from '../service/events.js';
import { hookNotFound, matches, testEventOf, type HookRunResult, type HookTester } from '../service/notify.js';
import { eventEnv, payloadOf } from './event-env.js';

export const HOOK_PATH = '/usr/bin:/bin:/usr/sbin:/sbin';

export interface HookRunnerOptions {
  events: EventBus;
  desired: () => DesiredState;
  logger: Logger;
  /** This node's name in the payload and CARPD_NODE. */
  node: string;
  /** Runs queued per hook (default 100). */
  queueLimit?: number;
  /** Bytes of stdout and of stderr kept per run (default 4096). */
  outputLimit?: number;
  /** Between SIGTERM and SIGKILL at the timeout (default 2000 ms). */
  killGraceMs?: number;
}

export interface HookStats {
  runs: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  dropped: number;
  queued: number;
  running: boolean;
}

/** A queued run: an event, or a test run (POST /v1/hooks/{name}/test) waiting for its result. */
interface Run {
  event: AnyEvent;
  answer?: (r: HookRunResult) => void;
}

interface Lane {
  queue: Run[];
  running?: { child?: ChildProcess; event: AnyEvent };
  stats: HookStats;
}

interface Captured {
  text: string;
  bytes: number;
}

const notRun = (hook: string, reason: string): HookRunResult => ({ hook, ok: false, reason, exitCode: null, signal: null, ms: 0, stdout: '', stderr: '', truncated: false });

/** Answers the test runs among `runs`, which will not run. */
function abandon(hook: string, runs: readonly Run[], reason: string): void {
  for (const r of runs) r.answer?.(notRun(hook, reason));
}

export class HookRunner implements HookTester {
  private readonly lanes = new Map<string, Lane>();
  private readonly unsubscribe: () => void;
  private closed = false;
  private readonly queueLimit: number;
  private readonly outputLimit: number;
  private readonly killGraceMs: number;
  private readonly idle = new Set<() => void>();

  constructor(private readonly opts: HookRunnerOptions) {
    this.queueLimit = opts.queueLimit ?? 100;
    this.outputLimit = opts.outputLimit ?? 4096;
    this.killGraceMs = opts.killGraceMs ?? 2000;
    this.unsubscribe = opts.events.subscribe((e) => this.onEvent(e));
  }

  /** Per hook: runs, results, drops, what is queued. */
  stats(): Record<string, HookStats> {
    return Object.fromEntries([...this.lanes].map(([n, l]) => [n, { ...l.stats, queued: l.queue.length, running: l.running !== undefined }]));
  }

  private onEvent(e: AnyEvent): void {
    if (this.closed || e.type.startsWith('hook.')) return;
    const hooks = this.opts.desired().hooks ?? [];
    this.prune(hooks);
    for (const h of hooks) {
      if (!matches(h.events, e)) continue;
      this.enqueue(h.name, { event: e });
    }
  }

  private enqueue(name: string, run: Run): void {
    let lane = this.lanes.get(name);
    if (!lane) this.lanes.set(name, (lane = { queue: [], stats: { runs: 0, succeeded: 0, failed: 0, timedOut: 0, dropped: 0, queued: 0, running: false } }));
    if (lane.queue.length >= this.queueLimit) {
      const lost = lane.queue.shift()!;
      lane.stats.dropped++;
      const reason = `dropped: ${this.queueLimit} runs were already queued`;
      abandon(name, [lost], reason);
      this.later(() => this.report(name, lost.event, { reason, exitCode: null, signal: null, ms: 0 }));
    }
    lane.queue.push(run);
    if (!lane.running) this.later(() => this.pump(name));
  }

  /**
   * Runs a hook once on a made-up event (testEventOf), in its queue like any run, and answers
   * its result; published as hook.succeeded or hook.failed like any run, with event id 0.
   */
  test(name: string): Promise<HookRunResult> {
    const hook = (this.opts.desired().hooks ?? []).find((h) => h.name === name);
    if (!hook) return Promise.reject(hookNotFound(name));
    if (this.closed) return Promise.resolve(notRun(name, 'carpd is stopping'));
    return new Promise((answer) => this.enqueue(name, { event: testEventOf(hook, 0, new Date().toISOString()), answer }));
  }

  /** Drops the queues of hooks no longer in the desired state (a run under way finishes). */
  private prune(hooks: readonly HookConfig[]): void {
    if (this.lanes.size === 0) return;
    const names = new Set(hooks.map((h) => h.name));
    for (const [n, lane] of this.lanes) {
      if (names.has(n)) continue;
      abandon(n, lane.queue, 'the hook was removed');
      lane.queue = [];
      if (!lane.running) this.lanes.delete(n);
    }
  }

  /** Out of the publisher's call: the bus hands events over synchronously. */
  private later(fn: () => void): void {
    setImmediate(() => {
      if (!this.closed) fn();
    });
  }

  private pump(name: string): void {
    const lane = this.lanes.get(name);
    if (!lane || lane.running || this.closed) return;
    const next = lane.queue.shift();
    if (!next) {
      this.checkIdle();
      return;
    }
    const e = next.event;
    // The hook as it is now: a change made since the event applies.
    const hook = (this.opts.desired().hooks ?? []).find((h) => h.name === name);
    if (!hook) {
      abandon(name, [next, ...lane.queue], 'the hook was removed');
      lane.queue = [];
      this.lanes.delete(name);
      this.checkIdle();
      return;
    }
    lane.running = { event: e };
    lane.stats.runs++;
    void this.run(hook, e, lane).then((result) => {
      next.answer?.(result);
      lane.running = undefined;
      if (this.lanes.get(name) !== lane) return this.checkIdle();
      if (lane.queue.length === 0 && !(this.opts.desired().hooks ?? []).some((h) => h.name === name)) this.lanes.delete(name);
      this.pump(name);
    });
  }

  private run(hook: HookConfig, e: AnyEvent, lane: Lane): Promise<HookRunResult> {
    const started = performance.now();
    const env = { PATH: HOOK_PATH, ...hook.env, ...eventEnv(e, this.opts.node) };
    return new Promise<HookRunResult>((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn(hook.command[0], hook.command.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env, cwd: '/' });
      } catch (err) {
        resolve(this.finish(hook, e, lane, { reason: `cannot start ${hook.command[0]}: ${String((err as Error).message)}`, exitCode: null, signal: null, ms: performance.now() - started }, undefined));
        return;
      }
      lane.running!.child = child;
      const out: Captured = { text: '', bytes: 0 };
      const err: Captured = { text: '', bytes: 0 };
      const keep = (c: Captured) => (chunk: Buffer) => {
        if (c.bytes < this.outputLimit) c.text += chunk.subarray(0, this.outputLimit - c.bytes).toString('utf8');
        c.bytes += chunk.length;
      };
      child.stdout!.on('data', keep(out));
      child.stderr!.on('data', keep(err));
      // A hook that does not read its stdin, or exits first, closes the pipe: not a failure.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(JSON.stringify(payloadOf(e, this.opts.node)) + '\n');

      let timedOut = false;
      let killTimer: NodeJS.Timeout | undefined;
      const killGroup = (signal: NodeJS.Signals) => {
        if (child.pid === undefined) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          // The group is gone already.
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        killTimer = setTimeout(() => killGroup('SIGKILL'), this.killGraceMs);
      }, hook.timeoutSec * 1000);

      let done = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      const settle = (spawnError?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        // Whatever the hook left in its group is not waited for; at a timeout it is killed.
        if (timedOut) {
          if (killTimer) clearTimeout(killTimer);
          killGroup('SIGKILL');
        }
        child.stdout!.destroy();
        child.stderr!.destroy();
        const ms = performance.now() - started;
        const output = { stdout: out.text, stderr: err.text, truncated: out.bytes > this.outputLimit || err.bytes > this.outputLimit };
        if (spawnError) {
          const code = (spawnError as NodeJS.ErrnoException).code;
          resolve(this.finish(hook, e, lane, { reason: `cannot start ${hook.command[0]}: ${code ?? spawnError.message}`, exitCode: null, signal: null, ms }, undefined));
        } else if (timedOut) {
          lane.stats.timedOut++;
          resolve(this.finish(hook, e, lane, { reason: `timeout: killed after ${hook.timeoutSec} s`, exitCode: exit?.code ?? null, signal: exit?.signal ?? null, ms }, output));
        } else if (exit?.code === 0) {
          resolve(this.finish(hook, e, lane, { exitCode: 0, ms }, output));
        } else {
          resolve(this.finish(hook, e, lane, { reason: exit?.signal ? `killed by ${exit.signal}` : `exit code ${exit?.code}`, exitCode: exit?.code ?? null, signal: exit?.signal ?? null, ms }, output));
        }
      };
      child.once('error', (x) => settle(x));
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        // Output still in the pipes comes with 'close'; a child the hook left holding them does not hold the run up.
        setTimeout(() => settle(), 200).unref();
      });
      child.once('close', () => {
        if (exit) settle();
      });
    });
  }

  private finish(hook: HookConfig, e: AnyEvent, lane: Lane, r: { reason?: string; exitCode: number | null; signal?: string | null; ms: number }, output: { stdout: string; stderr: string; truncated: boolean } | undefined): HookRunResult {
    const ms = Math.round(r.ms);
    const result: HookRunResult = { hook: hook.name, ok: r.reason === undefined, exitCode: r.exitCode, signal: r.signal ?? null, ms, stdout: output?.stdout ?? '', stderr: output?.stderr ?? '', truncated: output?.truncated ?? false };
    if (r.reason !== undefined) result.reason = r.reason;
    if (output && (output.stdout !== '' || output.stderr !== '')) {
      this.opts.logger.info({ event: 'hook.output', hook: hook.name, eventId: e.id, stdout: output.stdout, stderr: output.stderr, truncated: output.truncated }, `hook ${hook.name} wrote output`);
    }
    if (r.reason === undefined) {
      lane.stats.succeeded++;
      this.opts.events.publish('hook.succeeded', { hook: hook.name, eventId: e.id, eventType: e.type, exitCode: r.exitCode ?? 0, ms }, { msg: `hook ${hook.name} ran on ${e.type} ${e.id} (${ms} ms)` });
      return result;
    }
    lane.stats.failed++;
    this.report(hook.name, e, { reason: r.reason, exitCode: r.exitCode, signal: r.signal ?? null, ms });
    return result;
  }

  private report(name: string, e: AnyEvent, r: { reason: string; exitCode: number | null; signal: string | null; ms: number }): void {
    this.opts.events.publish('hook.failed', { hook: name, eventId: e.id, eventType: e.type, reason: r.reason, exitCode: r.exitCode, signal: r.signal, ms: r.ms }, { level: 'warn', msg: `hook ${name} failed on ${e.type} ${e.id}: ${r.reason}` });
  }

  private checkIdle(): void {
    if ([...this.lanes.values()].some((l) => l.running || l.queue.length > 0)) return;
    for (const f of this.idle) f();
    this.idle.clear();
  }

  /** Resolves once no run is queued or under way (for tests and a clean stop). */
  whenIdle(): Promise<void> {
    if (![...this.lanes.values()].some((l) => l.running || l.queue.length > 0)) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  /** Stops hearing events, drops the queues and kills the process group of every run under way. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const [name, lane] of this.lanes) {
      abandon(name, lane.queue, 'carpd is stopping');
      lane.queue = [];
      const pid = lane.running?.child?.pid;
      if (pid !== undefined) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    for (const f of this.idle) f();
    this.idle.clear();
  }
}
