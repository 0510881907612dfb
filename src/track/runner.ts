/**
 * The runner of health tracks: for each track of the desired state, a probe every
 * `intervalMs` (given `timeoutMs`), the outcome fed to the pure hysteresis (service/tracks.ts),
 * and while the track is down its weight held as the named demotion `track:<name>`
 * (CarpService.setDemotion: on FreeBSD through the maintenance ledger, so it is applied exactly
 * once across restarts; on linux/sim in the engine's demotion).
 *
 *  - Start: every track is `unknown` and holds nothing, except one whose demotion is still held
 *    from before a restart (FreeBSD: the kernel's demotion outlives carpd): it starts `down`
 *    and keeps holding it until `rise` good probes, so a restart does not move the VIPs back
 *    while the uplink is still dead. A held `track:*` demotion of a track that no longer exists
 *    is taken back.
 *  - A change of the desired state (onCommit): a track added starts; one removed or changed
 *    stops, gives back its demotion, and (changed) starts again from unknown. Each such reset
 *    of a decided track is a `track.changed` event to `unknown`.
 *  - Each change of state is a `track.changed` event (logged at warn going down).
 *  - Stop (close): probes end; demotions held stay held (see Start).
 *
 * Demotion writes are serialized; one that fails is retried after the next probe.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { trackDemotionName, type DesiredState, type TrackConfig } from '../config/model.js';
import type { EventBus } from '../service/events.js';
import { initialTrackStatus, observeProbe, trackDemotion, type ProbeResult, type TrackBoard, type TrackStatus } from '../service/tracks.js';
import { probe as realProbe, type Pinger, type ProbeDeps } from './probes.js';

/** What the runner needs of the service (CarpService has all of it). */
export interface TrackService {
  desired(): DesiredState;
  onCommit(listener: (state: DesiredState) => void): () => void;
  readonly tracks: TrackBoard;
  readonly events: EventBus;
  setDemotion(name: string, amount: number): Promise<void>;
  demotions(): Promise<Map<string, number>>;
  linkUp(iface: string): Promise<boolean | undefined>;
}

export interface TrackRunnerOptions {
  service: TrackService;
  clock: Clock;
  logger: Logger;
  pinger?: Pinger;
  /** Replaces the real probes (tests). */
  probe?: (t: TrackConfig, signal: AbortSignal) => Promise<ProbeResult>;
}

interface Task {
  cfg: TrackConfig;
  key: string;
  status: TrackStatus;
  /** What this task wants held now, and what was last applied. */
  want: number;
  applied: number;
  timer?: unknown;
  abort?: AbortController;
  stopped: boolean;
}

/** A track's settings as one string, whatever the order of its fields: a change restarts it, a rewrite does not. */
const keyOf = (t: TrackConfig) => JSON.stringify(Object.entries(t).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export class TrackRunner {
  private readonly tasks = new Map<string, Task>();
  private unsubscribe?: () => void;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly deps: ProbeDeps;
  /** Demotion names whose last write failed (logged once until one succeeds). */
  private readonly failing = new Set<string>();

  constructor(private readonly opts: TrackRunnerOptions) {
    this.deps = { linkUp: (i) => opts.service.linkUp(i), pinger: opts.pinger };
    opts.service.tracks.clock = opts.clock;
  }

  /** Starts the tracks of the desired state and follows its changes. */
  async start(): Promise<void> {
    const s = this.opts.service;
    let held = new Map<string, number>();
    try {
      held = await s.demotions();
    } catch {
      // A backend without named demotions holds none.
    }
    if (this.closed) return;
    const tracks = s.desired().tracks ?? [];
    const names = new Set(tracks.map((t) => trackDemotionName(t.name)));
    for (const [name, amount] of held) {
      if (name.startsWith('track:') && !names.has(name) && amount > 0) this.write(name, 0, () => {});
    }
    for (const t of tracks) this.startTask(t, held.get(trackDemotionName(t.name)) ?? 0);
    this.unsubscribe = s.onCommit((state) => this.reconcile(state));
  }

  /** The names of the tracks down now (for the orchestrated switchover and the cluster view). */
  tracksDown(): string[] {
    return this.opts.service.tracks.down();
  }

  /** Follows a new desired state: adds, removes and restarts tracks. */
  reconcile(state: DesiredState): void {
    if (this.closed) return;
    const want = new Map((state.tracks ?? []).map((t) => [t.name, t]));
    for (const [name, task] of this.tasks) {
      const next = want.get(name);
      if (next && keyOf(next) === task.key) continue;
      this.stopTask(task, next ? 'the track was changed' : 'the track was removed');
      if (!next) this.opts.service.tracks.delete(name);
    }
    for (const t of want.values()) if (!this.tasks.has(t.name)) this.startTask(t, 0);
  }

  /** Ends every probe; demotions held stay held (a restart picks them up). */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    for (const task of this.tasks.values()) {
      task.stopped = true;
      if (task.timer !== undefined) this.opts.clock.clearTimeout(task.timer);
      task.abort?.abort();
    }
    this.tasks.clear();
    await this.chain;
  }

  private startTask(cfg: TrackConfig, held: number): void {
    const now = this.opts.clock.now();
    const status = initialTrackStatus(now);
    const task: Task = { cfg, key: keyOf(cfg), status, want: 0, applied: held, stopped: false };
    if (held > 0) {
      task.status = { ...status, state: 'down', reason: `still down when carpd stopped (its demotion of ${held} was still held); up again after ${cfg.rise} good probe${cfg.rise === 1 ? '' : 's'}` };
      task.want = cfg.weight;
    }
    this.tasks.set(cfg.name, task);
    this.publishLive(task);
    this.sync(task);
    this.schedule(task, 0);
  }

  /** Stops a task, gives back its demotion and reports it unknown when it had decided. */
  private stopTask(task: Task, why: string): void {
    task.stopped = true;
    if (task.timer !== undefined) this.opts.clock.clearTimeout(task.timer);
    task.abort?.abort();
    this.tasks.delete(task.cfg.name);
    const name = trackDemotionName(task.cfg.name);
    if (task.applied > 0 || task.want > 0) this.write(name, 0, () => {});
    if (task.status.state !== 'unknown') this.announce(task, task.status.state, 'unknown', why, 0);
  }

  private schedule(task: Task, delayMs: number): void {
    task.timer = this.opts.clock.setTimeout(() => void this.tick(task), delayMs);
  }

  private async tick(task: Task): Promise<void> {
    task.timer = undefined;
    if (task.stopped) return;
    const clock = this.opts.clock;
    const started = clock.now();
    const ac = new AbortController();
    task.abort = ac;
    // The runner's own bound on top of the probe's: a probe that does not end in time failed.
    let guard: unknown;
    const timedOut = new Promise<ProbeResult>((resolve) => {
      guard = clock.setTimeout(() => {
        ac.abort();
        resolve({ ok: false, ms: task.cfg.timeoutMs, detail: `no answer within ${task.cfg.timeoutMs} ms` });
      }, task.cfg.timeoutMs + 50);
    });
    let result: ProbeResult;
    try {
      const run = this.opts.probe ? this.opts.probe(task.cfg, ac.signal) : realProbe(task.cfg, this.deps, ac.signal);
      result = await Promise.race([run, timedOut]);
    } catch (e) {
      result = { ok: false, ms: clock.now() - started, detail: `probe failed: ${(e as Error).message}` };
    } finally {
      clock.clearTimeout(guard);
      task.abort = undefined;
    }
    if (task.stopped) return;
    this.observe(task, result);
    const elapsed = clock.now() - started;
    this.schedule(task, Math.max(0, task.cfg.intervalMs - elapsed));
  }

  /** Feeds one probe's result to the hysteresis, publishes the live state and moves the demotion. */
  private observe(task: Task, result: ProbeResult): void {
    const { status, changed } = observeProbe(task.status, task.cfg, result, this.opts.clock.now());
    task.status = status;
    task.want = trackDemotion(status, task.cfg.weight);
    this.publishLive(task, changed);
    if (changed) this.announce(task, changed.from, changed.to, status.reason, task.want);
    this.sync(task);
  }

  private publishLive(task: Task, changed?: { to: TrackStatus['state'] }): void {
    this.opts.service.tracks.set(task.cfg.name, { kind: task.cfg.kind, status: task.status, demotion: task.want }, changed);
  }

  private announce(task: Task, from: TrackStatus['state'], to: TrackStatus['state'], reason: string, demotion: number): void {
    const t = task.cfg;
    const msg = `track ${t.name} (${t.kind}) ${from} -> ${to}: ${reason}${demotion ? `; demoting this node by ${demotion} (${trackDemotionName(t.name)})` : ''}`;
    this.opts.service.events.publish('track.changed', { track: t.name, kind: t.kind, from, to, reason, weight: t.weight, demotion }, { level: to === 'down' ? 'warn' : 'info', msg });
  }

  /** Brings the held demotion to what the task wants, in order with every other write. */
  private sync(task: Task): void {
    if (task.want === task.applied) return;
    const amount = task.want;
    this.write(trackDemotionName(task.cfg.name), amount, (ok) => {
      if (ok && this.tasks.get(task.cfg.name) === task) task.applied = amount;
    });
  }

  private write(name: string, amount: number, done: (ok: boolean) => void): void {
    this.chain = this.chain.then(async () => {
      try {
        await this.opts.service.setDemotion(name, amount);
        if (this.failing.delete(name)) this.opts.logger.info({ event: 'track.demotion.set', demotion: name, amount }, `the demotion ${name} is ${amount} now`);
        done(true);
      } catch (e) {
        // Logged once per name until a write succeeds: a retry after every probe must not flood the log.
        if (!this.failing.has(name)) this.opts.logger.warn({ event: 'track.demotion.failed', demotion: name, amount, err: (e as Error).message }, `cannot set the demotion ${name} to ${amount}: ${(e as Error).message}; retried after each probe`);
        this.failing.add(name);
        done(false);
      }
    });
  }

  /** Probes under way now (tests on a manual clock wait for them before moving time on). */
  get probing(): number {
    let n = 0;
    for (const t of this.tasks.values()) if (t.abort) n++;
    return n;
  }

  /** Resolves when the demotion writes queued so far are done (tests). */
  settled(): Promise<void> {
    return this.chain;
  }
}
