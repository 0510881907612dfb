/**
 * The one path every change takes: validate → plan (desired vs live) → apply → commit,
 * one change at a time. A change that fails half-way is undone by planning back to the
 * snapshot taken before it, and the stored revision stays as it was.
 *
 * What a change costs follows what it touches: the draft shares the untouched objects of the
 * revision, validation checks the touched VIPs against indexes of the rest, planning looks at
 * the touched vhids of a kept copy of the live state (live-cache.ts). Commits are grouped:
 * a change is staged in the store and answered once the group it joined is durable (one
 * journal append and one fsync for every change staged meanwhile). The next changes are
 * validated, applied and staged while a group is being written, so the writes of many clients
 * keep the disk and the event loop busy at once. A group that cannot be stored fails with every
 * change staged on top of it (each was planned on it): they are undone in the backend, newest
 * first, before any other change runs, and each fails.
 */
import type { Logger } from 'pino';
import { CarpdError, fromProblems } from '../errors.js';
import { sameContent, type DesiredState } from '../config/model.js';
import type { ConfigStore, RevisionMeta } from '../config/store.js';
import { checkChange, VipIndex } from '../config/validate.js';
import { diffStates, draftOf, settle } from '../config/change.js';
import { BatchError, type KernelBackend, type KernelStats, type LiveVhid, type PfStatus, type PfsyncLive, type StateChange } from '../kernel/backend.js';
import { KernelError } from '../kernel/errno.js';
import { changeScope, describeStep, plan, targetOf, type Snapshot, type Step } from './plan.js';
import { fromKernelError } from './kernel-errors.js';
import { SerialQueue } from './queue.js';
import { countChanges, describeChanges } from './changes.js';
import { LIVE_MAX_AGE_MS, LiveCache } from './live-cache.js';
import { declaredState, type DeclaredConfig } from './apply.js';
import { vipNotFound } from './vips.js';
import { checkIfMatch, TokenIndex, type AuthContext } from './tokens.js';
import { assembleStatus, StatusCache, type ReconcileStatus } from './status.js';
import { guardSynced } from './guard.js';
import { StagedCommits, type PendingCommit } from './commits.js';
import { applyStep, checkCapabilities, readSnapshot } from './backend-ops.js';
import { EventBus } from './events.js';
import { KernelWatch } from './watch.js';
import { effectiveSkew } from '../engine/timing.js';
import { checkNotify } from './notify.js';
import { TrackBoard } from './tracks.js';
import { storeFailure } from './store-errors.js';
import { ADMIN_DEMOTION_NAME, readAdminDemotion, writeAdminDemotion } from './admin-demotion.js';

export { vipNotFound };
export { hashToken, ifMatchAccepts, newTokenSecret, type AuthContext } from './tokens.js';
export type { ReconcileStatus, ServiceStatus } from './status.js';

export interface MutationOptions {
  actor: string;
  /** The If-Match header as sent, if any. */
  ifMatch?: string;
  dryRun?: boolean;
  /**
   * 'sync': the change is a snapshot from this node's sync primary. Any other change on a sync
   * secondary that touches a synced object is refused (CARPD_ERR_SYNC_MANAGED) unless `force`,
   * which detaches the objects it touches from sync and says so in the revision's summary.
   */
  origin?: 'api' | 'sync';
  force?: boolean;
}

export interface PlanView {
  dryRun: true;
  fromRevision: number;
  changes: string[];
  steps: { op: Step['op'] | 'state.force' | 'config.only'; target: string; detail: string }[];
}

export type MutationOutcome<T> =
  | { kind: 'plan'; plan: PlanView }
  | { kind: 'done'; state: DesiredState; result: T; changed: boolean };

export interface ServiceDeps {
  store: ConfigStore;
  backend: KernelBackend;
  logger: Logger;
  now?: () => Date;
  /** Where events go (default: a bus of its own, logging to `logger`). */
  events?: EventBus;
}

export class CarpService {
  private readonly commitListeners = new Set<(state: DesiredState, origin: 'api' | 'sync') => void>();
  readonly store: ConfigStore;
  readonly backend: KernelBackend;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly queue = new SerialQueue();
  /** carpd's events: vhid states, commits, demotion and maintenance from here; the other layers publish theirs. */
  readonly events: EventBus;
  /** Demotion, maintenance and pfsync's bulk update, compared with their last reading after each change. */
  private readonly watch: KernelWatch;
  /** The live state of the health tracks this process runs (src/track/ keeps it up to date). */
  readonly tracks = new TrackBoard();
  /** A step of the job just run may have moved the demotion (maintenance, CARP globals, pfsync): read it again when it ends. */
  private kernelTouched = false;
  /** Every job may change live state: the status cache is dropped when it ends. */
  private run<T>(job: () => Promise<T>): Promise<T> {
    return this.queue.run(job).finally(() => {
      this.generation++;
      if (this.kernelTouched && !this.closing) void this.watch.check();
      this.kernelTouched = false;
    });
  }
  private closing = false;
  /** carpd's named demotions as last read (KernelWatch names them in `demotion` events). */
  private named: ReadonlyMap<string, number> = new Map();
  private unsubscribe?: () => void;
  private readonly tokens = new TokenIndex();
  lastReconcile: ReconcileStatus;
  readonly startedAt: Date;
  /** Bumped on every live change carpd knows of; a cached status older than that is stale. */
  private generation = 0;
  private readonly statusCache = new StatusCache();
  /** The store's health the cached status was assembled after (an object the store replaces on each change). */
  private storeHealthSeen: ReturnType<ConfigStore['health']>;
  /** The live state as planning sees it; undefined: read the backend at the next change. */
  private live?: LiveCache;
  /** Indexes of the head revision's VIPs, for validating a change. */
  private vipIndex?: { revision: number; index: VipIndex };
  /** Changes staged in the store and not yet durable (group commit). */
  private readonly commits: StagedCommits;
  /**
   * CARP disabled on this node until re-enabled or restarted (net.inet.carp.allow=0, never
   * stored): while set, every plan takes `carp.enabled` as false, whatever the desired state says.
   */
  private temporaryDisable?: { since: Date; actor: string };

  constructor(deps: ServiceDeps) {
    this.store = deps.store;
    this.storeHealthSeen = deps.store.health();
    this.backend = deps.backend;
    this.logger = deps.logger;
    this.now = deps.now ?? (() => new Date());
    this.startedAt = this.now();
    this.lastReconcile = { ok: false, at: this.startedAt, error: 'not reconciled yet' };
    this.events = deps.events ?? new EventBus({ logger: deps.logger });
    this.watch = new KernelWatch(
      async () => {
        const [g, maintenance, pfsync, named] = await Promise.all([
          this.backend.getCarpGlobals(),
          this.backend.getMaintenance(),
          this.backend.getPfsync().catch(() => undefined),
          this.backend.demotions().catch(() => this.named),
        ]);
        this.named = named;
        return { demotion: g.demotion, maintenance, pfsync };
      },
      this.events,
      () => this.named,
    );
    this.commits = new StagedCommits({
      store: this.store,
      committed: (p) => {
        this.events.publish('config.committed', { revision: p.next.revision, actor: p.actor, origin: p.origin, summary: p.words, steps: p.steps }, { msg: `revision ${p.next.revision}: ${p.words}` });
        for (const l of this.commitListeners) l(p.next, p.origin);
      },
      undo: async (dropped, cause) => {
        const what = dropped.length === 1 ? `revision ${dropped[0].next.revision}` : `revisions ${dropped[0].next.revision}..${dropped[dropped.length - 1].next.revision}`;
        this.logger.error({ event: 'store.failed', err: String(cause), revisions: dropped.map((p) => p.next.revision) }, `could not store ${what}; undoing ${dropped.length === 1 ? 'the change' : `its ${dropped.length} changes, newest first`}`);
        this.vipIndex = undefined;
        await this.undo(dropped);
      },
      exclusive: (job) => this.run(job),
    });
  }

  /**
   * Reads demotion, maintenance and pfsync's bulk update now and tells what changed since the
   * last reading (the daemon calls it every few seconds for changes made outside carpd).
   */
  checkKernel(): Promise<void> {
    return this.closing ? Promise.resolve() : this.watch.check();
  }

  /** Subscribes to state changes and makes the backend match the stored desired state. */
  async start(): Promise<ReconcileStatus> {
    this.unsubscribe = this.backend.onStateChange((c: StateChange) => {
      this.generation++;
      // An interface down or gone: its vhids may be gone too.
      if (c.state === 'INIT') this.live = undefined;
      // The index of the head's VIPs (kept in step with every change), not a scan per event: a batch reports hundreds.
      const vip = this.indexOf(this.store.head()).vip(`${c.interface}/${c.vhid}`);
      const skew = vip && (vip.protocol ?? 'carp') === 'carp' ? effectiveSkew(vip.advskew, this.watch.demotion) : null;
      this.events.publish(
        'vhid.state',
        { interface: c.interface, vhid: c.vhid, from: c.previous, to: c.state, reason: c.reason, effectiveSkew: skew },
        { level: c.state === 'MASTER' || c.previous === 'MASTER' ? 'warn' : 'info', msg: `${c.interface} vhid ${c.vhid}: ${c.previous} -> ${c.state} (${c.reason})` },
      );
      // A vhid going to or from INIT (its interface down or up) moves the kernel's ifdown
      // demotion; a BACKUP/MASTER change does not, and a burst of them reads nothing.
      if ((c.state === 'INIT' || c.previous === 'INIT') && !this.closing) void this.watch.check();
    });
    await this.watch.check();
    return this.reconcile();
  }

  /**
   * Makes the backend match the stored desired state as far as it can: a step that fails is
   * reported and skipped (with the addresses of a vhid that could not be set), the others are
   * applied, so one missing interface does not keep every other VIP down.
   */
  reconcile(): Promise<ReconcileStatus> {
    return this.run(async () => {
      const desired = this.store.head();
      const failures: string[] = [];
      let applied = 0;
      this.kernelTouched = true;
      try {
        const live = new LiveCache(await this.snapshot(), performance.now());
        this.live = live;
        const steps = plan(targetOf(this.effective(desired)), live.snapshot());
        const failedVhids = new Set<string>();
        for (const step of steps) {
          const vhidKey = 'vhid' in step ? `${step.interface}/${step.vhid}` : '';
          if (step.op === 'address.add' && failedVhids.has(vhidKey)) continue;
          try {
            await applyStep(this.backend, step);
            live.apply(step);
            applied++;
          } catch (e) {
            if (step.op === 'vhid.set') failedVhids.add(vhidKey);
            const d = describeStep(step);
            const why = e instanceof KernelError ? fromKernelError(e).message : e instanceof Error ? e.message : String(e);
            failures.push(`${d.target}: ${why}`);
          }
        }
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
      }
      if (failures.length > 0) this.live = undefined;
      this.lastReconcile = failures.length === 0 ? { ok: true, at: this.now() } : { ok: false, at: this.now(), error: failures.join('; ') };
      if (failures.length > 0) {
        this.logger.error({ event: 'reconcile.failed', revision: desired.revision, applied, errors: failures }, `revision ${desired.revision} only partly applied to the backend: ${failures.join('; ')}`);
      } else if (applied > 0) {
        this.logger.info({ event: 'reconcile', revision: desired.revision, steps: applied }, `backend reconciled to revision ${desired.revision} in ${applied} steps`);
      }
      return this.lastReconcile;
    });
  }

  /**
   * Refuses new changes, waits for those in flight (and the group commit they joined), then
   * closes the store, which writes a snapshot if the journal holds revisions since the last.
   */
  async close(): Promise<void> {
    this.closing = true;
    do await this.queue.drain();
    while (!(await this.commits.settled()));
    await this.store.close();
    this.unsubscribe?.();
  }

  desired(): DesiredState {
    return this.store.current();
  }

  revisions(): RevisionMeta[] {
    return this.store.revisions();
  }

  /**
   * The serialized change path. `change` edits a copy of the current desired state (and may
   * throw a CarpdError such as "not found"); what it returns is handed back on success.
   */
  mutate<T>(opts: MutationOptions, summary: string | ((result: T) => string), change: (draft: DesiredState) => T | Promise<T>): Promise<MutationOutcome<T>> {
    if (this.closing) return Promise.reject(new CarpdError('CARPD_ERR_SHUTTING_DOWN', 'carpd is shutting down; retry once it is back'));
    // The job hands back a promise to wait for outside the queue, in a box: the queue would wait for a bare one.
    return this.run(async (): Promise<{ wait: Promise<MutationOutcome<T>> }> => {
      const head = this.store.head();
      this.commits.refuseWhileUndoing();
      checkIfMatch(opts.ifMatch, head.revision);
      const edited = draftOf(head);
      const result = await change(edited);
      const draft = settle(edited, head);
      // A change may hand in a stored revision's (frozen) list, as a rollback does.
      if (Object.isFrozen(draft.vips)) draft.vips = [...draft.vips];
      let diff = diffStates(head, draft, { adopt: true });
      const detachedNow = opts.origin === 'sync' ? undefined : guardSynced(head, draft, diff, opts.force === true);
      if (detachedNow !== undefined) diff = diffStates(head, draft, { adopt: true });
      const problems = checkChange(draft, diff, this.indexOf(head));
      if (diff.sections.has('hooks') || diff.sections.has('webhooks')) problems.push(...checkNotify(draft));
      if (problems.length > 0) throw fromProblems(problems);
      checkCapabilities(this.backend, diff.added, diff.sections.has('pfsync') ? draft.pfsync : undefined);
      const live = await this.liveState();
      const scope = changeScope(this.effective(head), this.effective(draft), diff, live);
      const steps = plan(scope.target, scope.live);
      if (opts.dryRun) {
        return { wait: Promise.resolve({ kind: 'plan', plan: { dryRun: true, fromRevision: head.revision, changes: describeChanges(head, draft), steps: steps.map(describeStep) } } as const) };
      }
      const unchanged = diff.ops.length === 0;
      if (unchanged && steps.length === 0) return { wait: this.commits.afterLast({ kind: 'done', state: head, result, changed: false }) };
      const refusal = this.store.refusal();
      if (refusal && !unchanged) throw storeFailure(refusal, (why) => `the configuration cannot be stored (${why}); nothing was changed`);
      await this.applySteps(steps, live);
      // Only the backend drifted; it has been repaired, nothing to store.
      if (unchanged) return { wait: this.commits.afterLast({ kind: 'done', state: head, result, changed: false }) };
      const next: DesiredState = { ...draft, revision: head.revision + 1, updatedAt: this.now().toISOString() };
      const words = (typeof summary === 'string' ? summary : summary(result)) + (detachedNow ? ` (detached from sync: ${detachedNow})` : '');
      const durable = this.store.stage(next, { actor: opts.actor, summary: words }, diff);
      this.indexOf(head).apply(diff);
      this.vipIndex = { revision: next.revision, index: this.indexOf(head) };
      const answered = this.commits.track({ next, words, actor: opts.actor, origin: opts.origin ?? 'api', steps: steps.length, before: scope.live, keys: scope.keys }, durable);
      return { wait: answered.then(() => ({ kind: 'done', state: next, result, changed: true }) as const) };
    }).then((r) => r.wait);
  }

  /** Plans each change of a group that could not be stored back to its live state before it, newest first. */
  private async undo(group: PendingCommit[]): Promise<void> {
    let live: LiveCache;
    try {
      live = new LiveCache(await this.snapshot(), performance.now());
    } catch (e) {
      this.live = undefined;
      this.logger.error({ event: 'undo.failed', err: String(e) }, 'undo failed: the backend cannot be read; it differs from the stored configuration until the next reconcile');
      return;
    }
    this.live = live;
    for (const p of [...group].reverse()) {
      try {
        const steps = plan(p.before, live.partial(p.keys));
        await this.applyWithUndo(steps, live.snapshot());
        for (const s of steps) live.apply(s);
      } catch (undoError) {
        this.live = undefined;
        this.logger.error({ event: 'undo.failed', revision: p.next.revision, err: String(undoError) }, `undo of revision ${p.next.revision} failed; the backend differs from the stored configuration until the next reconcile`);
        try {
          live = new LiveCache(await this.snapshot(), performance.now());
          this.live = live;
        } catch {
          return;
        }
      }
    }
  }

  /** The live state to plan on: the kept copy while it is fresh, else a new read of the backend. */
  private async liveState(): Promise<LiveCache> {
    const now = performance.now();
    if (!this.live || now - this.live.readAtMs > LIVE_MAX_AGE_MS) this.live = new LiveCache(await this.snapshot(), now);
    return this.live;
  }

  /** Applies a change's steps (undoing them on a failure) and keeps the live copy in step. */
  private async applySteps(steps: Step[], live: LiveCache): Promise<void> {
    if (steps.length === 0) return;
    try {
      await this.applyWithUndo(steps, live.snapshot());
    } catch (e) {
      // The backend refused a step, and the undo may not have restored everything: read it again next time.
      this.live = undefined;
      throw e;
    }
    for (const s of steps) live.apply(s);
  }

  /** The VIP indexes of `head`, built once and then kept in step with every staged change. */
  private indexOf(head: DesiredState): VipIndex {
    if (this.vipIndex?.revision !== head.revision) this.vipIndex = { revision: head.revision, index: VipIndex.of(head) };
    return this.vipIndex.index;
  }

  /**
   * PUT /v1/config: the whole desired state a document declares (apply.ts), as one change of
   * the serialized path: one revision, one backend batch, one commit (so one sync push). A
   * document that declares the state in force changes nothing and is answered at once: no
   * revision, and the backend is not asked anything, not even read (mutate reads the live state
   * before it plans, which such a document does not need).
   */
  async applyDocument(opts: MutationOptions, doc: DeclaredConfig): Promise<MutationOutcome<{ changes: number }>> {
    try {
      return await this.mutate(
        opts,
        (r) => `apply a declared desired state (${r.changes} change${r.changes === 1 ? '' : 's'})`,
        (draft) => {
          const next = declaredState(draft, doc);
          if (sameContent(draft, next)) throw new Unchanged(draft);
          const changes = countChanges(draft, next);
          draft.vips = next.vips;
          draft.carp = next.carp;
          draft.pfsync = next.pfsync;
          draft.hooks = next.hooks;
          draft.webhooks = next.webhooks;
          draft.tracks = next.tracks;
          return { changes };
        },
      );
    } catch (e) {
      if (!(e instanceof Unchanged)) throw e;
      if (opts.dryRun) return { kind: 'plan', plan: { dryRun: true, fromRevision: e.state.revision, changes: [], steps: [] } };
      return { kind: 'done', state: e.state, result: { changes: 0 }, changed: false };
    }
  }

  /** Called after every committed revision (config sync pushes from here); returns the unsubscribe function. */
  onCommit(listener: (state: DesiredState, origin: 'api' | 'sync') => void): () => void {
    this.commitListeners.add(listener);
    return () => this.commitListeners.delete(listener);
  }

  /** A desired state as the backend is to follow it: CARP off while it is temporarily disabled. */
  private effective(s: DesiredState): DesiredState {
    return this.temporaryDisable && s.carp.enabled ? { ...s, carp: { ...s.carp, enabled: false } } : s;
  }

  /** Since when, and by whom, CARP is temporarily disabled on this node; undefined when it is not. */
  temporarilyDisabled(): { since: Date; actor: string } | undefined {
    return this.temporaryDisable && { ...this.temporaryDisable };
  }

  /**
   * Disables CARP on this node until it is re-enabled here or carpd restarts, like pfSense's
   * "Temporarily Disable CARP": net.inet.carp.allow=0, through the same queue, not stored (the
   * reconcile at the next start applies the stored `enabled` again). Re-enabling applies the
   * stored `enabled`. Changes to the desired state meanwhile are stored and applied, except that
   * CARP stays off.
   */
  setTemporaryDisable(disabled: boolean, opts: MutationOptions): Promise<MutationOutcome<undefined>> {
    if (this.closing) return Promise.reject(new CarpdError('CARPD_ERR_SHUTTING_DOWN', 'carpd is shutting down; retry once it is back'));
    return this.run(async () => {
      const head = this.store.head();
      this.commits.refuseWhileUndoing();
      checkIfMatch(opts.ifMatch, head.revision);
      const live = await this.liveState();
      const allow = disabled ? false : head.carp.enabled;
      const current = live.carp;
      const steps: Step[] = current.allow === allow ? [] : [{ op: 'carp.set', globals: { allow, preempt: current.preempt } }];
      if (opts.dryRun) {
        const change = disabled ? 'disable CARP on this node until re-enabled or restarted (not stored)' : 're-enable CARP on this node (the stored setting applies)';
        return { kind: 'plan', plan: { dryRun: true, fromRevision: head.revision, changes: [change], steps: steps.map(describeStep) } } as const;
      }
      await this.applySteps(steps, live);
      const was = this.temporaryDisable !== undefined;
      this.temporaryDisable = disabled ? (this.temporaryDisable ?? { since: this.now(), actor: opts.actor }) : undefined;
      if (was !== disabled) {
        this.logger.info(
          { event: disabled ? 'carp.disabled.temporarily' : 'carp.reenabled', actor: opts.actor, allow },
          disabled ? `CARP temporarily disabled on this node by ${opts.actor} (until re-enabled or restarted)` : `CARP re-enabled on this node by ${opts.actor} (stored setting: ${head.carp.enabled ? 'enabled' : 'disabled'})`,
        );
      }
      return { kind: 'done', state: head, result: undefined, changed: false } as const;
    });
  }

  /** Forces a vhid's state, through the same queue (it is not stored). */
  forceState(iface: string, vhid: number, state: 'BACKUP' | 'MASTER', opts: MutationOptions): Promise<MutationOutcome<LiveVhid>> {
    if (this.closing) return Promise.reject(new CarpdError('CARPD_ERR_SHUTTING_DOWN', 'carpd is shutting down; retry once it is back'));
    return this.run(async () => {
      const current = this.store.head();
      checkIfMatch(opts.ifMatch, current.revision);
      if (!current.vips.some((v) => v.interface === iface && v.vhid === vhid)) throw vipNotFound(iface, vhid);
      if (!this.backend.capabilities().forceState) throw new CarpdError('CARPD_ERR_UNSUPPORTED', `the ${this.backend.name} backend cannot force a vhid's state`);
      const live = await this.liveVhid(iface, vhid);
      if (!live || live.state === 'INIT') {
        throw new CarpdError('CARPD_ERR_VHID_NOT_RUNNING', `${iface} vhid ${vhid} is ${live ? 'in INIT' : 'not in the kernel'}${this.lastReconcile.ok ? '' : ` (${this.lastReconcile.error})`}; carp(4) only forces BACKUP or MASTER on a running vhid: check that the interface is up and CARP is enabled`);
      }
      if (opts.dryRun) {
        return { kind: 'plan', plan: { dryRun: true, fromRevision: current.revision, changes: [], steps: [{ op: 'state.force', target: `${iface} vhid ${vhid}`, detail: `force ${state} (now ${live.state})` }] } } as const;
      }
      try {
        await this.backend.forceState(iface, vhid, state);
      } catch (e) {
        throw e instanceof KernelError ? fromKernelError(e) : e;
      }
      this.logger.info({ event: 'carp.force', interface: iface, vhid, state, actor: opts.actor }, `${iface} vhid ${vhid} forced to ${state} by ${opts.actor}`);
      const after = (await this.liveVhid(iface, vhid))!;
      return { kind: 'done', state: current, result: after, changed: false } as const;
    });
  }

  async liveVhids(): Promise<LiveVhid[]> {
    return this.backend.listVhids();
  }

  /** One vhid as the backend has it (undefined when it is not there), without reading the others where the backend can. */
  async liveVhid(iface: string, vhid: number): Promise<LiveVhid | undefined> {
    return (await this.backend.listVhids({ vhids: [{ interface: iface, vhid }] })).find((v) => v.interface === iface && v.vhid === vhid);
  }

  async liveCarp(): Promise<{ allow: boolean; preempt: boolean; demotion: number; maintenance: boolean; temporarilyDisabled: boolean }> {
    const [g, maintenance] = await Promise.all([this.backend.getCarpGlobals(), this.backend.getMaintenance()]);
    return { ...g, maintenance, temporarilyDisabled: this.temporaryDisable !== undefined };
  }

  /** carpd's named demotions as last read (after each change that may move them, and every few seconds). */
  namedDemotions(): ReadonlyMap<string, number> {
    return this.named;
  }

  /**
   * carpd's named demotions held now (name -> amount), besides maintenance. A backend without
   * named demotions answers CARPD_ERR_UNSUPPORTED.
   */
  async demotions(): Promise<Map<string, number>> {
    try {
      return await this.backend.demotions();
    } catch (e) {
      throw e instanceof KernelError ? fromKernelError(e, 'read') : e;
    }
  }

  /**
   * Holds `amount` of demotion under `name` (0 takes it back): the split-brain policy, later
   * health tracks. Not a change of the desired state: nothing is stored, no revision. The
   * `demotion` event that follows names it among the contributors. A kernel refusal is answered
   * in API terms (EOPNOTSUPP: CARPD_ERR_UNSUPPORTED).
   */
  async setDemotion(name: string, amount: number): Promise<void> {
    try {
      await this.backend.setDemotion(name, amount);
    } catch (e) {
      throw e instanceof KernelError ? fromKernelError(e) : e;
    }
    this.generation++;
    if (!this.closing) await this.watch.check();
  }

  /** Serializes changes of the admin adjustment (file and backend move together). */
  private adminChain: Promise<unknown> = Promise.resolve();

  /** The administrative demotion adjustment stored for this node (0: none); see admin-demotion.ts. */
  async adminDemotion(): Promise<number> {
    return readAdminDemotion(this.store.dir);
  }

  /**
   * Sets this node's administrative demotion adjustment (−240..240, 0 clears it): stored in the
   * state directory, then held as the `admin` named demotion. When the backend refuses, the
   * stored value is put back and nothing changed. Never synced to a peer.
   */
  setAdminDemotion(value: number): Promise<number> {
    const job = this.adminChain.then(async () => {
      const before = await readAdminDemotion(this.store.dir);
      await writeAdminDemotion(this.store.dir, value);
      try {
        await this.setDemotion(ADMIN_DEMOTION_NAME, value);
      } catch (e) {
        await writeAdminDemotion(this.store.dir, before).catch(() => undefined);
        throw e;
      }
      if (before !== value) this.logger.info({ event: 'demotion.admin', from: before, to: value }, `administrative demotion adjustment ${before} -> ${value}`);
      return value;
    });
    this.adminChain = job.catch(() => undefined);
    return job;
  }

  /**
   * Brings the backend in line with the stored adjustment at start (the daemon calls it once,
   * after the backend is open): the stored value, or 0 when none is stored, which on FreeBSD
   * takes back an `admin` delta the ledger still holds. Idempotent.
   */
  restoreAdminDemotion(): Promise<number> {
    const job = this.adminChain.then(async () => {
      const value = await readAdminDemotion(this.store.dir);
      const held = (await this.backend.demotions().catch(() => new Map<string, number>())).get(ADMIN_DEMOTION_NAME) ?? 0;
      if (held !== value) await this.setDemotion(ADMIN_DEMOTION_NAME, value);
      return value;
    });
    this.adminChain = job.catch(() => undefined);
    return job;
  }

  /** The names of this node's health tracks that are down now (each holding its weight as `track:<name>`), sorted. */
  tracksDown(): string[] {
    return this.tracks.down();
  }

  /**
   * Whether an interface's link is up (a health track of kind `interface`); undefined when the
   * backend cannot tell. A kernel refusal (ENXIO: no such interface) is answered in API terms.
   */
  async linkUp(iface: string): Promise<boolean | undefined> {
    if (!this.backend.linkUp) return undefined;
    try {
      return await this.backend.linkUp(iface);
    } catch (e) {
      throw e instanceof KernelError ? fromKernelError(e, 'read') : e;
    }
  }

  async livePfsync(): Promise<PfsyncLive> {
    return this.backend.getPfsync();
  }

  /**
   * pf's state table and pfsync's bulk update, read now (no cache): null on a node without pf.
   * A kernel refusal is answered in API terms. The sync link's `pf` exchange and a switchover
   * read it here.
   */
  async pfStatus(): Promise<PfStatus | null> {
    try {
      return await this.backend.pfStatus();
    } catch (e) {
      throw e instanceof KernelError ? fromKernelError(e) : e;
    }
  }

  /**
   * The backend's counters and demotion tunables, read at each call (counters are what a
   * poller wants fresh; no cache). A kernel refusal is answered in API terms.
   */
  async stats(): Promise<KernelStats> {
    try {
      return await this.backend.stats();
    } catch (e) {
      throw e instanceof KernelError ? fromKernelError(e, 'read') : e;
    }
  }

  /**
   * Live status, assembled at most once per second while nothing carpd knows of changes, so
   * API polling does not turn into kernel polling. Changes carpd makes or hears of (state
   * events) are visible at once; others (someone running ifconfig) within a second.
   */
  async status() {
    // Monotonic: a wall clock set back must not make a cached status look fresh for hours.
    const now = performance.now();
    const fresh = this.freshStatus(now);
    if (fresh) return fresh;
    // Callers that find the cache stale together share one assembly (and so one object, whose
    // API body is then built once), unless something changed since it started.
    return this.statusCache.assemble(this.generation, now, () => assembleStatus(this));
  }

  /** The status status() would hand out now, when that needs no assembly; otherwise undefined. */
  freshStatus(now = performance.now()) {
    // A write that failed or went through again changes the status (store.writable) at once.
    const health = this.store.health();
    if (health !== this.storeHealthSeen) {
      this.storeHealthSeen = health;
      this.generation++;
    }
    return this.statusCache.fresh(this.generation, now);
  }

  /** The token's owner, or undefined. Compares hashes in constant time. */
  authenticate(token: string): AuthContext | undefined {
    return this.tokens.authenticate(this.store.current(), token);
  }

  /** The live state in planning terms. */
  private snapshot(): Promise<Snapshot> {
    return readSnapshot(this.backend);
  }

  /**
   * Applies the steps as one backend batch, which takes itself back when a step fails (the
   * contract's apply); the failure is answered in API terms, naming the step. Should the
   * backend report that it could not take everything back, carpd plans back to `before` once
   * more (the reconciler's repair, at once).
   */
  private async applyWithUndo(steps: Step[], before?: Snapshot): Promise<void> {
    if (steps.length === 0) return;
    // A VIP's steps leave the demotion alone; these may move it (the periodic check sees the rest).
    if (steps.some((s) => s.op === 'maintenance.set' || s.op === 'carp.set' || s.op === 'pfsync.set')) this.kernelTouched = true;
    try {
      await this.backend.apply(steps);
    } catch (e) {
      const failed = e instanceof BatchError ? steps[e.index] : undefined;
      const d = failed ? describeStep(failed) : undefined;
      const where = e instanceof BatchError && d ? `step ${e.index + 1}/${steps.length} (${d.op} ${d.target})` : `a batch of ${steps.length} steps`;
      this.logger.warn({ event: 'apply.failed', step: e instanceof BatchError ? e.index + 1 : undefined, of: steps.length, op: d?.op, target: d?.target, err: e instanceof Error ? e.message : String(e) }, `${where} failed; the backend took the batch back`);
      if (e instanceof BatchError && e.undoErrors.length > 0) {
        this.logger.error({ event: 'undo.failed', err: e.undoErrors.map(String) }, 'the backend could not take the whole batch back; planning back to the state before it');
        if (before) {
          await this.snapshot()
            .then((now) => this.backend.apply(plan(before, now)))
            .catch((undoError: unknown) => this.logger.error({ event: 'undo.failed', err: String(undoError) }, 'undo failed; the backend differs from the stored configuration until the next reconcile'));
        }
      }
      const err = e instanceof KernelError ? fromKernelError(e) : e;
      if (err instanceof CarpdError && e instanceof KernelError && err.code === 'CARPD_ERR_KERNEL' && d) {
        throw new CarpdError(err.code, `${d.target}: ${err.message}`, { kernel: err.kernel });
      }
      throw err;
    }
  }
}

/** A document that declares the desired state in force: nothing to do (applyDocument). */
class Unchanged extends Error {
  constructor(readonly state: DesiredState) {
    super('the declared desired state is the one in force');
  }
}

