/**
 * The orchestrated switchover: planned maintenance without a lost packet. Entering maintenance
 * by raising advskew lets a vhid go through a moment where neither node answers; demoting the
 * node does not (the MASTER keeps its addresses until the peer, preempting it, has taken over).
 * And before anything changes, the peer is asked whether it is ready at all.
 *
 *   POST /v1/cluster/switchover ──> checks (each pass/fail/skipped with its evidence)
 *        │ one fails: the job ends `failed`, nothing changed
 *        ▼
 *   demote this node: the named demotion `switchover` (240), as maintenance would
 *        ▼
 *   wait until the peer is MASTER of every vhid this node was MASTER of, and this node BACKUP
 *   of each (the peer's states over the sync link, this node's own), each vhid within its
 *   master-down interval plus a margin
 *        │ one did not move in time: the demotion is taken back; the job ends `rolled-back`,
 *        │ naming the vhid and what each node had it as
 *        ▼
 *   succeeded: the demotion stays (this node stays BACKUP) until `back`
 *
 * `back: true`, on the node that was switched away, is the same the other way: this node takes
 * its switchover demotion back and waits until it is MASTER again of every vhid the peer is
 * MASTER of (and the peer BACKUP), or puts the demotion back. The checks are then about this
 * node (it is the one to take over) and the peer (reachable, in step).
 *
 * One job runs at a time. Jobs are kept in memory (the newest MAX_JOBS), each step also an
 * event (`switchover.started`, `switchover.step`, `switchover.finished`). Time comes from the
 * sync manager's clock.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { CarpdError } from '../errors.js';
import type { CarpService } from '../service/service.js';
import type { VhidStateEntry } from './splitbrain.js';
import { SWITCHOVER_DEMOTION_NAME, type PeerHealth, type SyncManager } from './manager.js';

/** The switchover's demotion, as maintenance's (carp(4)'s CARP_MAXSKEW). */
export const SWITCHOVER_DEMOTION = 240;
/** Added to each vhid's master-down interval before it counts as not moved (default). */
export const SWITCHOVER_MARGIN_MS = 2000;
export const MAX_MARGIN_MS = 60_000;
/** Jobs kept for GET /v1/jobs. */
export const MAX_JOBS = 32;
/** How often the states of both nodes are read while the vhids move. */
export const POLL_MS = 100;
/** pf state counts within this many states (or this fraction of this node's count) of each other agree. */
export const STATE_TOLERANCE = { states: 100, fraction: 0.05 } as const;

export type JobState = 'running' | 'succeeded' | 'failed' | 'rolled-back';
export type CheckStatus = 'pass' | 'fail' | 'skipped';

export interface JobCheck {
  name: string;
  status: CheckStatus;
  evidence: string;
}

export interface JobStep {
  name: string;
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  detail: string;
  startedAt: string | null;
  endedAt: string | null;
}

export interface JobVhid {
  interface: string;
  vhid: number;
  /** waiting: not moved yet; moved: the taker MASTER and the other node BACKUP; stuck: not in time. */
  status: 'waiting' | 'moved' | 'stuck';
  /** ms from the demotion's change until the vhid moved (this node's state change where it saw one). */
  handoverMs: number | null;
  /** Its master-down interval plus the margin: how long it may take. */
  deadlineMs: number;
  detail: string;
}

export interface Job {
  id: string;
  kind: 'switchover';
  state: JobState;
  dryRun: boolean;
  back: boolean;
  from: string;
  to: string | null;
  marginMs: number;
  createdAt: string;
  finishedAt: string | null;
  checks: JobCheck[];
  steps: JobStep[];
  vhids: JobVhid[];
  /** What the switchover does (or would do), in words. */
  plan: string[];
  result: { ok: boolean; reason: string } | null;
}

export interface SwitchoverRequest {
  to?: string;
  back?: boolean;
  dryRun?: boolean;
  marginMs?: number;
}

export interface SwitchoverOptions {
  service: CarpService;
  sync: SyncManager;
  pollMs?: number;
  /** The timeout of one health question to the peer. */
  askTimeoutMs?: number;
}

const keyOf = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;
const nameOf = (v: { interface: string; vhid: number }) => `${v.interface} vhid ${v.vhid}`;

export class Switchover {
  private readonly jobs = new Map<string, Job>();
  private readonly done = new Map<string, Promise<Job>>();
  private running?: string;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly askTimeoutMs: number;

  constructor(private readonly opts: SwitchoverOptions) {
    this.clock = opts.sync.clockOf;
    this.pollMs = opts.pollMs ?? POLL_MS;
    this.askTimeoutMs = opts.askTimeoutMs ?? 3000;
  }

  /** GET /v1/jobs: the kept jobs, newest first. */
  list(): Job[] {
    return [...this.jobs.values()].reverse().map(copy);
  }

  /** GET /v1/jobs/{id} */
  get(id: string): Job {
    const j = this.jobs.get(id);
    if (!j) throw new CarpdError('CARPD_ERR_JOB_NOT_FOUND', `no job ${id} is kept here (only the newest ${MAX_JOBS}, and none from before carpd started); GET /v1/jobs lists them`);
    return copy(j);
  }

  /** The job once it has ended (`?wait=true`). */
  async wait(id: string): Promise<Job> {
    const p = this.done.get(id);
    if (p) await p;
    return this.get(id);
  }

  /**
   * Starts a switchover (or, with dryRun, only runs its checks and answers them with the plan,
   * changing nothing). Refuses at once, with nothing started, on a node without a sync peer
   * (CARPD_ERR_SWITCHOVER_STANDALONE) and while another one runs (CARPD_ERR_SWITCHOVER_RUNNING).
   */
  async start(req: SwitchoverRequest): Promise<Job> {
    if (!this.opts.service.desired().sync.peer) {
      throw new CarpdError('CARPD_ERR_SWITCHOVER_STANDALONE', 'this node has no sync peer to hand its vhids to; a switchover needs the two nodes joined by config sync (PATCH /v1/sync with the peer)');
    }
    if (this.running !== undefined) {
      throw new CarpdError('CARPD_ERR_SWITCHOVER_RUNNING', `switchover ${this.running} is running; wait for it (GET /v1/jobs/${this.running}) before starting another`);
    }
    const marginMs = req.marginMs ?? SWITCHOVER_MARGIN_MS;
    const job: Job = {
      id: randomUUID(),
      kind: 'switchover',
      state: 'running',
      dryRun: req.dryRun === true,
      back: req.back === true,
      from: this.opts.sync.nodeName,
      to: req.to ?? null,
      marginMs,
      createdAt: this.wallNow(),
      finishedAt: null,
      checks: [],
      steps: [
        { name: 'checks', status: 'pending', detail: '', startedAt: null, endedAt: null },
        { name: req.back ? 'undemote' : 'demote', status: 'pending', detail: '', startedAt: null, endedAt: null },
        { name: 'handover', status: 'pending', detail: '', startedAt: null, endedAt: null },
      ],
      vhids: [],
      plan: [],
      result: null,
    };
    if (job.dryRun) {
      // Nothing kept, nothing published: a dry run only reads.
      const ctx = await this.check(job, false);
      job.state = ctx ? 'succeeded' : 'failed';
      job.result = ctx ? { ok: true, reason: 'every check passed; the switchover would run as planned' } : { ok: false, reason: failedReason(job) };
      job.finishedAt = this.wallNow();
      for (const s of job.steps) if (s.status === 'pending') s.status = 'skipped';
      return job;
    }
    this.running = job.id;
    this.keep(job);
    const run = this.run(job).finally(() => {
      if (this.running === job.id) this.running = undefined;
    });
    this.done.set(job.id, run);
    return copy(job);
  }

  private keep(job: Job): void {
    this.jobs.set(job.id, job);
    while (this.jobs.size > MAX_JOBS) {
      const oldest = [...this.jobs.keys()].find((id) => id !== this.running);
      if (oldest === undefined) break;
      this.jobs.delete(oldest);
      this.done.delete(oldest);
    }
  }

  private wallNow(): string {
    return new Date(this.clock.wall()).toISOString();
  }

  private publishStep(job: Job, step: string, status: 'running' | 'passed' | 'failed' | 'skipped' | 'done', detail: string, live: boolean): void {
    if (!live) return;
    this.opts.service.events.publish('switchover.step', { job: job.id, step, status, detail }, { level: status === 'failed' ? 'warn' : 'info', msg: `switchover ${job.id}: ${step} ${status}${detail ? `: ${detail}` : ''}` });
  }

  private stepStart(job: Job, name: string, detail: string): JobStep {
    const s = job.steps.find((x) => x.name === name)!;
    s.status = 'running';
    s.detail = detail;
    s.startedAt = this.wallNow();
    this.publishStep(job, name, 'running', detail, !job.dryRun);
    return s;
  }

  private stepEnd(job: Job, s: JobStep, status: 'done' | 'failed', detail: string): void {
    s.status = status;
    s.detail = detail;
    s.endedAt = this.wallNow();
    this.publishStep(job, s.name, status, detail, !job.dryRun);
  }

  private addCheck(job: Job, name: string, status: CheckStatus, evidence: string, live: boolean): void {
    job.checks.push({ name, status, evidence });
    this.publishStep(job, `check ${name}`, status === 'pass' ? 'passed' : status === 'fail' ? 'failed' : 'skipped', evidence, live);
  }

  /**
   * The checks. Answers what the switchover then needs (the vhids to move and the taker), or
   * undefined when one failed. Every check runs, so that the job shows all that is wrong at once.
   */
  private async check(job: Job, live: boolean): Promise<{ moving: VhidStateEntry[]; held: number } | undefined> {
    const svc = this.opts.service;
    const sync = this.opts.sync;
    const step = this.stepStart(job, 'checks', 'asking the peer over the sync link');
    let peer: PeerHealth | undefined;
    let peerError = '';
    const asked = this.clock.now();
    try {
      peer = await sync.peerHealth(this.askTimeoutMs);
    } catch (e) {
      peerError = (e as Error).message;
    }
    const took = Math.round(this.clock.now() - asked);
    if (job.back) {
      if (job.to !== null && job.to !== job.from) this.addCheck(job, 'peer.name', 'fail', `handing back goes to this node, ${job.from}, not ${job.to}`, live);
      job.to = job.from;
    }
    if (peer) {
      job.to ??= peer.node;
      this.addCheck(job, 'peer.reachable', 'pass', `${peer.node} answered over the sync link in ${took} ms`, live);
    } else {
      this.addCheck(job, 'peer.reachable', 'fail', peerError, live);
    }
    if (!job.back && job.to !== null && peer && job.to !== peer.node) {
      this.addCheck(job, 'peer.name', 'fail', `the sync peer is ${peer.node}, not ${job.to}; a switchover hands over to the sync peer only`, live);
    }
    const self = await sync.localHealth();
    const held = self.carp.switchover;
    // The taker: the peer, or this node when handing back.
    const taker = job.back ? self : peer;
    const who = job.back ? 'this node' : 'the peer';
    if (job.back) {
      this.addCheck(job, 'local.switchover', held > 0 ? 'pass' : 'fail', held > 0 ? `this node holds the switchover demotion (${held})` : 'this node holds no switchover demotion: there is nothing to hand back (run the switchover on the node that holds the vhids)', live);
    } else if (held > 0) {
      this.addCheck(job, 'local.switchover', 'fail', `this node already holds the switchover demotion (${held}): it was switched away; hand back with { "back": true }`, live);
    }
    if (!taker) {
      for (const name of ['taker.maintenance', 'taker.carp', 'taker.demotion', 'taker.tracks']) this.addCheck(job, name, 'fail', `not known: ${peerError}`, live);
    } else {
      const c = taker.carp;
      this.addCheck(job, 'taker.maintenance', c.maintenance ? 'fail' : 'pass', c.maintenance ? `${who} (${taker.node}) is in maintenance: it would not take over` : `${who} (${taker.node}) is not in maintenance`, live);
      const carpOk = c.enabled && c.preempt;
      this.addCheck(
        job,
        'taker.carp',
        carpOk ? 'pass' : 'fail',
        !c.enabled ? `CARP is disabled on ${who} (${taker.node})` : !c.preempt ? `preemption is off on ${who} (${taker.node}): it would not take a vhid from a demoted MASTER` : `CARP enabled and preempting on ${who} (${taker.node})`,
        live,
      );
      // Its demotion apart from the switchover's own (handing back takes that away).
      const other = c.demotion - (job.back ? c.switchover : 0);
      this.addCheck(
        job,
        'taker.demotion',
        other <= 0 ? 'pass' : 'fail',
        other <= 0
          ? `${who} (${taker.node}) is not demoted (demotion ${c.demotion}${job.back ? `, of which the switchover's ${c.switchover}` : ''})`
          : !job.back && c.switchover > 0
            ? `${who} (${taker.node}) holds a switchover demotion (${c.switchover}): hand back there first ({ "back": true } on ${taker.node})`
            : `${who} (${taker.node}) is demoted by ${other}: it would not win`,
        live,
      );
      if (taker.tracksDown === undefined) this.addCheck(job, 'taker.tracks', 'pass', `not reported: ${who} (${taker.node}) has no health tracks`, live);
      else this.addCheck(job, 'taker.tracks', taker.tracksDown.length === 0 ? 'pass' : 'fail', taker.tracksDown.length === 0 ? `no health track is down on ${who} (${taker.node})` : `health tracks down on ${who} (${taker.node}): ${taker.tracksDown.join(', ')}`, live);
    }
    // Config lag: the secondary has applied the primary's newest revision.
    if (!peer) this.addCheck(job, 'sync.lag', 'fail', `not known: ${peerError}`, live);
    else {
      const r = lagOf(self, peer);
      this.addCheck(job, 'sync.lag', r.ok ? 'pass' : 'fail', r.evidence, live);
    }
    // pf: the taker's bulk update done and its state count near the other's.
    const localPf = await sync.localPf();
    if (!localPf) this.addCheck(job, 'pf.states', 'skipped', 'no pf on this backend', live);
    else if (!peer) this.addCheck(job, 'pf.states', 'fail', `not known: ${peerError}`, live);
    else if (!peer.pf) this.addCheck(job, 'pf.states', 'fail', `not reported: the peer (${peer.node}) did not send its pf status`, live);
    else {
      const takerPf = job.back ? localPf : peer.pf;
      const giverPf = job.back ? peer.pf : localPf;
      const tolerance = Math.max(STATE_TOLERANCE.states, Math.ceil(giverPf.stateCount * STATE_TOLERANCE.fraction));
      const diff = Math.abs(takerPf.stateCount - giverPf.stateCount);
      const ok = takerPf.bulkUpdateDone && diff <= tolerance;
      const ev = !takerPf.bulkUpdateDone
        ? `pfsync's bulk update has not completed on ${who}: its states are not all there`
        : `${who} has ${takerPf.stateCount} states, the other node ${giverPf.stateCount} (difference ${diff}, tolerance ${tolerance})${ok ? '' : ': the states are not in step'}`;
      this.addCheck(job, 'pf.states', ok ? 'pass' : 'fail', ev, live);
    }
    // Split brain on a fresh reading of both nodes (the peer's answer and this node's states just
    // read), handed to the split-brain watch as one more reading: what the watch listed from a
    // moment of a previous handover is not held against this one.
    const listed = sync.splitBrainNow();
    if (!peer) {
      this.addCheck(job, 'splitbrain', listed.length === 0 ? 'pass' : 'fail', listed.length === 0 ? 'the split-brain watch lists no vhid MASTER on both nodes (the peer could not be asked now)' : `split brain: ${listed.map(nameOf).join(', ')} MASTER on both nodes`, live);
    } else {
      sync.splitBrainWatch.heard({ node: peer.node, at: peer.at, vhids: peer.vhids }, self.vhids);
      const theirs = new Set(peer.vhids.filter((v) => v.state === 'MASTER').map(keyOf));
      const both = self.vhids.filter((v) => v.state === 'MASTER' && theirs.has(keyOf(v)));
      this.addCheck(job, 'splitbrain', both.length === 0 ? 'pass' : 'fail', both.length === 0 ? 'no vhid is MASTER on both nodes (read on both just now)' : `split brain: ${both.map(nameOf).join(', ')} MASTER on both nodes`, live);
    }
    // What moves: the giver's MASTER vhids that the taker has.
    const giverVhids = job.back ? (peer?.vhids ?? []) : self.vhids;
    const takerVhids = new Set((job.back ? self.vhids : (peer?.vhids ?? [])).map(keyOf));
    const moving = giverVhids.filter((v) => v.state === 'MASTER');
    const missing = peer ? moving.filter((v) => !takerVhids.has(keyOf(v))) : [];
    if (moving.length === 0) {
      this.addCheck(job, 'vhids', 'fail', peer || !job.back ? `${job.back ? 'the peer' : 'this node'} is MASTER of no vhid: nothing to hand over` : `not known: ${peerError}`, live);
    } else if (missing.length > 0) {
      this.addCheck(job, 'vhids', 'fail', `${job.back ? 'this node' : 'the peer'} has no ${missing.map(nameOf).join(', ')}: it cannot take ${missing.length === 1 ? 'it' : 'them'} over`, live);
    } else {
      this.addCheck(job, 'vhids', 'pass', `${moving.length} vhid${moving.length === 1 ? '' : 's'} to move: ${moving.map(nameOf).join(', ')}`, live);
    }
    // Each vhid's deadline: its master-down interval (from this node's configuration) plus the margin.
    const vips = svc.desired().vips;
    job.vhids = moving.map((v) => {
      const vip = vips.find((x) => x.interface === v.interface && x.vhid === v.vhid);
      return { interface: v.interface, vhid: v.vhid, status: 'waiting', handoverMs: null, deadlineMs: Math.round(masterDownOf(vip) + job.marginMs), detail: '' };
    });
    const failed = job.checks.filter((c) => c.status === 'fail');
    const takerName = job.back ? this.opts.sync.nodeName : (peer?.node ?? 'the peer');
    job.plan = job.back
      ? [`take back this node's switchover demotion (${held})`, `wait until this node is MASTER and ${peer?.node ?? 'the peer'} BACKUP of ${moving.length} vhid(s), each within its master-down interval + ${job.marginMs} ms`, `if one does not move: put the demotion back (${held})`]
      : [`demote this node by ${SWITCHOVER_DEMOTION} (the named demotion ${SWITCHOVER_DEMOTION_NAME})`, `wait until ${takerName} is MASTER and this node BACKUP of ${moving.length} vhid(s), each within its master-down interval + ${job.marginMs} ms`, 'if one does not move: take the demotion back', `then this node stays BACKUP until { "back": true } here`];
    this.stepEnd(job, step, failed.length ? 'failed' : 'done', failed.length ? `failed: ${failed.map((c) => c.name).join(', ')}` : `${job.checks.length} checks passed or skipped`);
    return failed.length ? undefined : { moving, held };
  }

  private async run(job: Job): Promise<Job> {
    const events = this.opts.service.events;
    const started = this.clock.now();
    try {
      events.publish('switchover.started', { job: job.id, from: job.from, to: job.to, back: job.back }, { msg: `switchover ${job.id} started${job.back ? ' (back to this node)' : ''}` });
      const ctx = await this.check(job, true);
      if (!ctx) return this.finish(job, 'failed', failedReason(job), started);
      await this.move(job, ctx.held, started);
    } catch (e) {
      this.finish(job, 'failed', `the switchover failed: ${(e as Error).message}`, started);
    }
    return job;
  }

  private async move(job: Job, held: number, started: number): Promise<void> {
    const svc = this.opts.service;
    const before = job.back ? held : 0;
    const after = job.back ? 0 : SWITCHOVER_DEMOTION;
    const demote = this.stepStart(job, job.back ? 'undemote' : 'demote', job.back ? `taking back the switchover demotion (${held})` : `demoting this node by ${after}`);
    // This node's own state changes, timed as they happen (the polling confirms them).
    const seen = new Map<string, number>();
    const wanted = job.back ? 'MASTER' : 'BACKUP';
    const keys = new Set(job.vhids.map(keyOf));
    const unsubscribe = svc.events.subscribe((e) => {
      if (e.type === 'vhid.state' && e.data.to === wanted && keys.has(keyOf(e.data)) && !seen.has(keyOf(e.data))) seen.set(keyOf(e.data), this.clock.now());
    });
    try {
      const t0 = this.clock.now();
      try {
        await svc.setDemotion(SWITCHOVER_DEMOTION_NAME, after);
      } catch (e) {
        this.stepEnd(job, demote, 'failed', (e as Error).message);
        this.finish(job, 'failed', `could not ${job.back ? 'take back' : 'set'} the switchover demotion: ${(e as Error).message}`, started);
        return;
      }
      this.stepEnd(job, demote, 'done', job.back ? 'the switchover demotion is taken back' : `this node is demoted by ${after} (${SWITCHOVER_DEMOTION_NAME})`);
      const hand = this.stepStart(job, 'handover', `waiting for ${job.vhids.length} vhid(s)`);
      const stuck = await this.follow(job, t0, seen);
      if (stuck.length === 0) {
        const slowest = Math.max(0, ...job.vhids.map((v) => v.handoverMs ?? 0));
        this.stepEnd(job, hand, 'done', `${job.vhids.length} vhid(s) moved; the slowest in ${slowest} ms`);
        this.finish(job, 'succeeded', job.back ? `this node is MASTER again of ${job.vhids.length} vhid(s)` : `${job.to ?? 'the peer'} is MASTER of ${job.vhids.length} vhid(s); this node stays BACKUP (demoted by ${after}) until a switchover with { "back": true } here`, started);
        return;
      }
      const why = stuck.map((v) => `${nameOf(v)} (${v.detail})`).join('; ');
      this.stepEnd(job, hand, 'failed', `not moved in time: ${why}`);
      job.steps.push({ name: 'rollback', status: 'pending', detail: '', startedAt: null, endedAt: null });
      const rb = this.stepStart(job, 'rollback', job.back ? `putting the switchover demotion back (${before})` : 'taking the switchover demotion back');
      try {
        await svc.setDemotion(SWITCHOVER_DEMOTION_NAME, before);
        this.stepEnd(job, rb, 'done', before ? `the switchover demotion is back at ${before}` : 'the switchover demotion is taken back');
      } catch (e) {
        this.stepEnd(job, rb, 'failed', (e as Error).message);
        this.finish(job, 'failed', `not moved in time: ${why}; and the rollback failed: ${(e as Error).message}`, started);
        return;
      }
      this.finish(job, 'rolled-back', `not moved in time: ${why}; the demotion was ${job.back ? 'put back' : 'taken back'}`, started);
    } finally {
      unsubscribe();
    }
  }

  /**
   * Reads both nodes' states every pollMs until every vhid has moved or one is past its
   * deadline. Answers the vhids that did not move in time (empty: all moved).
   */
  private async follow(job: Job, t0: number, seen: Map<string, number>): Promise<JobVhid[]> {
    for (;;) {
      let peer: PeerHealth | undefined;
      let peerError = '';
      try {
        peer = await this.opts.sync.peerHealth(Math.min(this.askTimeoutMs, 1000));
      } catch (e) {
        peerError = (e as Error).message;
      }
      const local = new Map((await this.opts.service.liveVhids()).map((v) => [keyOf(v), v.state]));
      const remote = new Map((peer?.vhids ?? []).map((v) => [keyOf(v), v.state]));
      const now = this.clock.now();
      for (const v of job.vhids) {
        if (v.status !== 'waiting') continue;
        const mine = local.get(keyOf(v)) ?? 'gone';
        const theirs = peer ? (remote.get(keyOf(v)) ?? 'gone') : 'unknown';
        const moved = job.back ? mine === 'MASTER' && theirs === 'BACKUP' : mine === 'BACKUP' && theirs === 'MASTER';
        if (moved) {
          v.status = 'moved';
          v.handoverMs = Math.round((seen.get(keyOf(v)) ?? now) - t0);
          v.detail = `${job.back ? 'this node' : (peer?.node ?? 'the peer')} MASTER after ${v.handoverMs} ms`;
          this.publishStep(job, `vhid ${v.interface}/${v.vhid}`, 'done', v.detail, true);
        } else if (now - t0 > v.deadlineMs) {
          v.status = 'stuck';
          v.detail = `after ${Math.round(now - t0)} ms (master-down interval + ${job.marginMs} ms: ${v.deadlineMs} ms) this node has it ${mine} and the peer ${peer ? theirs : `unknown (${peerError})`}`;
        }
      }
      const stuck = job.vhids.filter((v) => v.status === 'stuck');
      if (stuck.length > 0) return stuck;
      if (job.vhids.every((v) => v.status === 'moved')) return [];
      await new Promise<void>((resolve) => this.clock.setTimeout(resolve, this.pollMs));
    }
  }

  private finish(job: Job, state: Exclude<JobState, 'running'>, reason: string, started: number): Job {
    job.state = state;
    job.result = { ok: state === 'succeeded', reason };
    job.finishedAt = this.wallNow();
    for (const s of job.steps) if (s.status === 'pending') s.status = 'skipped';
    const ms = Math.round(this.clock.now() - started);
    this.opts.service.events.publish('switchover.finished', { job: job.id, state, reason, ms }, { level: state === 'succeeded' ? 'info' : 'warn', msg: `switchover ${job.id} ${state}: ${reason}` });
    return job;
  }
}

/** The config lag between the two nodes, from both nodes' revisions as they stand now. */
function lagOf(self: PeerHealth, peer: PeerHealth): { ok: boolean; evidence: string } {
  if (self.role === 'primary' && peer.role === 'secondary') {
    const ok = peer.appliedRevision === self.revision;
    return { ok, evidence: ok ? `the peer has applied revision ${self.revision}, this primary's newest` : `the peer has applied revision ${peer.appliedRevision}; this primary is at revision ${self.revision} (POST /v1/sync/run, or wait for the push)` };
  }
  if (self.role === 'secondary' && peer.role === 'primary') {
    const ok = self.appliedRevision === peer.revision;
    return { ok, evidence: ok ? `this node has applied revision ${peer.revision}, the primary's newest` : `this node has applied revision ${self.appliedRevision}; the primary is at revision ${peer.revision}` };
  }
  return { ok: true, evidence: `no config is pushed between these nodes (this node ${self.role}, the peer ${peer.role}): nothing can lag` };
}

/** A vhid's master-down interval from this node's configuration (3 × advbase + skew/256; VRRPv3: 3 × interval + skew time). */
function masterDownOf(vip: { protocol?: string; advbaseSec: number; advskew: number; vrrpInterval?: number; vrrpPriority?: number } | undefined): number {
  if (!vip) return 3000 + 1000;
  if (vip.protocol === 'vrrpv3') {
    const intervalMs = (vip.vrrpInterval ?? 100) * 10;
    return 3 * intervalMs + ((256 - (vip.vrrpPriority ?? 100)) * intervalMs) / 256;
  }
  // The skew of a demoted advertiser at most (CARP_MAXSKEW): the taker's own skew is below it.
  return (3 * vip.advbaseSec + SWITCHOVER_DEMOTION / 256) * 1000;
}

function failedReason(job: Job): string {
  const failed = job.checks.filter((c) => c.status === 'fail');
  return `${failed.length === 1 ? 'a check failed' : `${failed.length} checks failed`}: ${failed.map((c) => `${c.name} (${c.evidence})`).join('; ')}`;
}

function copy(j: Job): Job {
  return structuredClone(j);
}
