/**
 * Config sync between two nodes: the push loop of a primary, the receiving side of a
 * secondary, and what both answer about themselves (GET /v1/sync, /v1/sync/plan, /v1/cluster).
 *
 *   primary:   commit ──> schedule() ──> push the whole snapshot of the newest revision ──┐
 *                 (coalesced: one push in flight; commits during it only raise the target)  │
 *                 (failure: retry after 1 s, 2 s, 4 s ... 30 s; a returning peer gets the   │
 *                  newest snapshot, which is the full catch-up)                             │
 *   secondary: <── sync listener (mTLS, pinned, signed; transport.ts) <─────────────────────┘
 *                 role check (loop guard) ─> revision check ─> applySnapshot (derive.ts)
 *                 ─> the service's serialized validate → plan → apply → commit path
 *
 * Nothing about pending work is kept in memory only: the primary knows what it has (its
 * revision) and asks the peer what it applied (the secondary stores appliedRevision in the
 * same atomic commit as what it applied). After a restart of either node the primary pushes
 * again if the two differ; a snapshot already applied is acknowledged without a new commit, so
 * nothing is lost or applied twice.
 *
 * The push never runs inside the API call that caused it: commit listeners only schedule.
 *
 * Pushes, plans, status reads and the split-brain watch's states share one kept connection to
 * the peer (transport.ts), so a push costs no handshake. A commit that changes the peer or its fingerprint closes it at once:
 * nothing more is sent over a connection checked against a pin the configuration no longer has.
 *
 * Split brain (splitbrain.ts): both roles exchange their vhid states with the peer every few
 * seconds over the same connection; a vhid MASTER on both is an event, listed in /v1/sync and
 * /v1/cluster, and under the `demote` policy a secondary holds a named demotion while it lasts.
 *
 * Every message and answer is one of the kinds in messages.ts, checked on arrival on both
 * sides. Retry timers, request timeouts and the times shown in /v1/sync come from the injected
 * Clock, so the backoff can be followed on a manual one.
 */
import type { Logger } from 'pino';
import { systemClock, wallDate, type Clock } from '../clock.js';
import { SCHEMA_VERSION, SPLIT_BRAIN_DEMOTION, type DesiredState, type SplitBrainPolicy } from '../config/model.js';
import { CarpdError, problemOf } from '../errors.js';
import type { CarpService, PlanView } from '../service/service.js';
import { applySnapshot, snapshotOf } from './derive.js';
import type { SyncIdentity } from './identity.js';
import { SYNC_KINDS, exchange, isUnknownKindRefusal, readSnapshot, type InboundMessage, type NodeReport, type PfReport, type PfReportStatus, type PlanAnswer, type PushAck, type SyncAnswer, type SyncAnswers, type SyncMessageType, type SyncRequests, type VhidStates, type PeerHealth } from './messages.js';
import { SplitBrainWatch, type SplitVhid, type VhidStateEntry } from './splitbrain.js';
import { SyncClient, SyncServer, SyncTransportError } from './transport.js';

export type { NodeReport, PeerHealth, PfReport, PfReportStatus, SplitVhid };

/** The name of the switchover's demotion (switchover.ts; `demotion` events list it). */
export const SWITCHOVER_DEMOTION_NAME = 'switchover';

/**
 * What a node reports in its `health` answer beyond what every carpd knows: plugged in by the
 * parts that own them (health tracks, pf). A source left out is "not reported" in the answer;
 * a source that throws is left out of that one answer.
 */
export interface HealthSources {
  /** The names of this node's health tracks that are down now. */
  tracksDown?(): string[] | Promise<string[]>;
  /** pf's state count and pfsync's bulk update; undefined where there is no pf (sim, linux). */
  pfStatus?(): { stateCount: number; bulkUpdateDone: boolean } | undefined | Promise<{ stateCount: number; bulkUpdateDone: boolean } | undefined>;
}

/** The name of the split-brain policy's demotion (KernelBackend.setDemotion; `demotion` events list it). */
export const SPLIT_BRAIN_DEMOTION_NAME = 'splitbrain';

/** A node of /v1/cluster: its report when it answered, and whether and how it was reached. */
export type ClusterNode =
  | (NodeReport & { self: boolean; reachable: true; error: null; pf?: PfReportStatus | null })
  | { node: null; self: false; reachable: false; error: string };

export interface SyncListen {
  host: string;
  port: number;
}

export interface SyncManagerOptions {
  service: CarpService;
  identity: SyncIdentity;
  logger: Logger;
  /** This node's name in /v1/cluster. */
  node: string;
  /** The sync listener (--sync-listen); without it this node can push but not receive. */
  listen?: SyncListen;
  /** Retry delays of a failing push (default 1 s doubling to 30 s). */
  retry?: { firstMs: number; maxMs: number };
  /** Per-request timeout towards the peer (default 5 s). */
  timeoutMs?: number;
  /** How long the connection to the peer stays open with nothing to send (default 30 s). */
  idleMs?: number;
  /** Retry timers, request timeouts, message times and the times in status() (default: the system clock). */
  clock?: Clock;
  /**
   * Bind the listener but neither push nor take messages until resume(): the daemon binds it
   * before it changes the backend, so that a listener that cannot bind stops the start while
   * nothing has changed. A message that arrives meanwhile waits.
   */
  paused?: boolean;
  /** The listener, bound already (SyncManager.bind) before the rest of carpd was made; instead of `listen`. */
  bound?: BoundSyncListener;
  /** How often the split-brain watch exchanges vhid states with the peer (default 3 s; splitbrain.ts); 0: no watch (tests that count the clock's timers). */
  splitBrainIntervalMs?: number;
  /** The timeout of that exchange (default min(2.5 s, the interval)). */
  splitBrainTimeoutMs?: number;
  /** Health tracks and pf status for the `health` answer (also settable later: setHealthSources). */
  health?: HealthSources;
}

/** A sync listener bound before its manager exists (SyncManager.bind): messages wait for the manager. */
export interface BoundSyncListener {
  readonly server: SyncServer<InboundMessage>;
  readonly address: string;
  /** Hands the listener's messages to `m`, those waiting first. */
  attach(m: SyncManager): void;
}

export interface PushOutcome {
  ok: boolean;
  /** false: the peer was not reached at all (or not the pinned one); true with !ok: it refused. */
  reached: boolean;
  /** The primary's revision pushed. */
  revision: number;
  /** What the secondary said, in words. */
  detail: string;
}

export class SyncManager {
  private readonly service: CarpService;
  private readonly identity: SyncIdentity;
  private readonly logger: Logger;
  private readonly node: string;
  private readonly retry: { firstMs: number; maxMs: number };
  private readonly timeoutMs: number;
  private readonly idleMs?: number;
  private readonly clock: Clock;
  private server?: SyncServer<InboundMessage>;
  private client?: { key: string; client: SyncClient };
  private unsubscribe?: () => void;
  private unsubscribeStates?: () => void;
  private closed = false;
  /** Set while paused (SyncManagerOptions.paused): settles at resume() or close(). */
  private gate?: { open: Promise<void>; release: () => void };

  // The push loop (primary).
  private inFlight?: Promise<void>;
  private again = false;
  /** The push in flight lost its connection because the peer was changed: it goes again at once. */
  private superseded = false;
  private retryTimer?: unknown;
  private delayMs: number;
  /** The peer's applied revision as last heard (undefined: not heard since start). */
  private peerRevision?: number;
  private lastAttempt?: number;
  private lastSuccess?: number;
  /** monoOf(): revision → its creation on the monotonic clock. */
  private readonly revisionMono = new Map<number, number>();
  private lastError?: string;
  private listenAddress?: string;

  // The split-brain watch (both roles) and the demotion its policy holds.
  /** Made in start(): its callbacks (the demote policy) are the running manager's, not the constructor's. */
  private splitWatch!: SplitBrainWatch;
  /** The peer the watch's data is about (peerKey), to forget it when another is configured. */
  private watchedPeer?: string;
  private policyChain: Promise<void> = Promise.resolve();
  private policyError?: string;
  /** The peer's last pf report, from either side's exchange, and when (this clock's monotonic time) it arrived. */
  private peerPfHeard?: { report: PfReport; atMs: number };
  private healthSources: HealthSources = {};

  private constructor(opts: SyncManagerOptions) {
    this.service = opts.service;
    this.identity = opts.identity;
    this.logger = opts.logger;
    this.node = opts.node;
    this.retry = opts.retry ?? { firstMs: 1000, maxMs: 30_000 };
    this.delayMs = this.retry.firstMs;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.idleMs = opts.idleMs;
    this.clock = opts.clock ?? systemClock;
    this.healthSources = opts.health ?? {};
  }

  /**
   * Binds the sync listener before anything else of carpd is made: the daemon binds every
   * listener before it opens the backend. `pinned` names the peer fingerprints the TLS handshake
   * accepts (the stored configuration's peer); messages wait until a manager is attached.
   */
  static async bind(opts: { identity: SyncIdentity; listen: SyncListen; logger: Logger; pinned: () => string[]; clock?: Clock }): Promise<BoundSyncListener> {
    let attach!: (m: SyncManager) => void;
    let attached: SyncManager | undefined;
    const manager = new Promise<SyncManager>((resolve) => (attach = (m) => resolve((attached = m))));
    const clock = opts.clock ?? systemClock;
    const server = await SyncServer.start<InboundMessage>({
      identity: opts.identity,
      host: opts.listen.host,
      port: opts.listen.port,
      pinned: opts.pinned,
      schemaVersion: SCHEMA_VERSION,
      kinds: SYNC_KINDS,
      handle: async (msg) => (await manager).handle(msg),
      logger: opts.logger,
      // Logged by the listener; an event once carpd is up (a refusal during the start is only logged).
      onRejected: (r) => attached?.service.events.publish('sync.rejected', { reason: r.reason, source: r.address, fingerprint: r.fingerprint, detail: r.detail }, { level: false }),
      clock: () => clock.wall(),
    });
    const address = `${opts.listen.host.includes(':') ? `[${opts.listen.host}]` : opts.listen.host}:${server.port}`;
    return { server, address, attach };
  }

  static async start(opts: SyncManagerOptions): Promise<SyncManager> {
    const m = new SyncManager(opts);
    m.splitWatch = new SplitBrainWatch({
      clock: m.clock,
      events: m.service.events,
      logger: m.logger,
      node: m.node,
      intervalMs: opts.splitBrainIntervalMs || undefined,
      timeoutMs: opts.splitBrainTimeoutMs,
      active: () => !m.closed && !m.gate && m.service.desired().sync.peer !== undefined,
      local: () => m.localStates(),
      ask: (mine, timeoutMs) => m.askStates(mine, timeoutMs),
      peerName: () => m.peerName(),
      policy: () => m.policy(),
      onChange: () => void m.applyPolicy(),
    });
    if (opts.paused) {
      let release!: () => void;
      const open = new Promise<void>((resolve) => (release = resolve));
      m.gate = { open, release };
    }
    const bound =
      opts.bound ??
      (opts.listen &&
        (await SyncManager.bind({
          identity: opts.identity,
          listen: opts.listen,
          logger: opts.logger,
          pinned: () => {
            const p = m.service.desired().sync.peer;
            return p ? [p.fingerprint] : [];
          },
          clock: m.clock,
        })));
    if (bound) {
      m.server = bound.server;
      m.listenAddress = bound.address;
      bound.attach(m);
    }
    m.unsubscribe = m.service.onCommit((state) => {
      // When the revision was made, on the monotonic clock: its lag never jumps with the wall clock.
      if (!m.revisionMono.has(state.revision)) m.revisionMono.set(state.revision, m.clock.now());
      if (m.revisionMono.size > 1000) m.revisionMono.delete(m.revisionMono.keys().next().value!);
      m.dropStalePeer();
      m.followPeer();
      m.schedule();
      void m.applyPolicy();
    });
    m.followPeer();
    m.schedule();
    if (opts.splitBrainIntervalMs !== 0) m.splitWatch.start();
    // A vhid changing state here: the split-brain watch asks the peer at once.
    m.unsubscribeStates = m.service.events.subscribe((e) => {
      if (e.type === 'vhid.state') m.splitWatch.poke();
    });
    // Takes back a split-brain demotion a previous run left held (the split it was for is not
    // known now); when paused, at resume(), once the service has started.
    if (!m.gate) void m.applyPolicy();
    return m;
  }

  /** Starts pushing and taking messages after start({ paused: true }). */
  resume(): void {
    const gate = this.gate;
    this.gate = undefined;
    gate?.release();
    this.schedule();
    void this.applyPolicy();
  }

  /** The port the sync listener got (for --sync-listen with port 0). */
  get port(): number | undefined {
    return this.server?.port;
  }

  /**
   * Stops at once: a push in flight is aborted rather than waited for (a peer that does not
   * answer would hold the stop for the whole request timeout). Nothing is lost by that: pushes
   * derive from revisions, and the next start asks the peer what it applied and pushes again.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.gate?.release();
    this.unsubscribe?.();
    this.unsubscribeStates?.();
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.client?.client.close();
    await Promise.all([this.inFlight?.catch(() => undefined), this.server?.close(), this.splitWatch.stop()]);
    // A split-brain demotion is held only while this carpd watches: it is taken back at the stop.
    await this.applyPolicy();
  }

  // --- the primary's side --------------------------------------------------------------------

  /**
   * The client of the configured peer. It keeps one connection open between requests (see
   * transport.ts); a new peer address, port or fingerprint gets a new client, so a connection
   * checked against the old pin is never used for the new one.
   */
  private peerClient(): SyncClient {
    const peer = this.service.desired().sync.peer;
    if (!peer) throw new CarpdError('CARPD_ERR_SYNC_NOT_CONFIGURED', 'this node has no sync peer; set one with PATCH /v1/sync (its address and the fingerprint carpctl sync identity prints there)');
    const key = peerKey(peer);
    if (this.client?.key !== key) {
      this.client?.client.close();
      this.client = {
        key,
        client: new SyncClient({ identity: this.identity, peer: { host: peer.address, port: peer.port, fingerprint: peer.fingerprint }, schemaVersion: SCHEMA_VERSION, timeoutMs: this.timeoutMs, idleMs: this.idleMs, clock: this.clock }),
      };
      this.peerRevision = undefined;
    }
    return this.client.client;
  }

  /**
   * After a commit: when the peer is no longer the one the client was made for, its connection
   * is closed now rather than at the next request, and whatever it had in flight is aborted:
   * nothing more goes to a peer, or over a connection, that the configuration no longer names.
   */
  private dropStalePeer(): void {
    if (!this.client) return;
    const peer = this.service.desired().sync.peer;
    if (peer && peerKey(peer) === this.client.key) return;
    this.client.client.close();
    this.client = undefined;
    this.peerRevision = undefined;
  }

  /** The configured peer as `address:port`, for events. */
  private peerName(): string {
    const p = this.service.desired().sync.peer;
    return p ? `${p.address.includes(':') ? `[${p.address}]` : p.address}:${p.port}` : 'none';
  }

  /** Starts a push if this node is a primary whose peer is behind; coalesces with one in flight. */
  schedule(): void {
    if (this.closed || this.gate) return;
    const s = this.service.desired().sync;
    if (s.role !== 'primary' || !s.peer) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    if (this.retryTimer !== undefined) return; // a retry is already due; it pushes the newest revision
    this.inFlight = this.loop().finally(() => (this.inFlight = undefined));
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const state = this.service.desired();
      if (state.sync.role !== 'primary') return;
      if (this.peerRevision === state.revision) continue;
      const out = await this.push(state);
      if (!out.ok && this.superseded) {
        this.superseded = false;
        this.again = true;
        continue;
      }
      if (!out.ok) {
        if (this.closed) return;
        this.retryTimer = this.clock.setTimeout(() => {
          this.retryTimer = undefined;
          this.schedule();
        }, this.delayMs);
        this.delayMs = Math.min(this.delayMs * 2, this.retry.maxMs);
        return;
      }
      this.delayMs = this.retry.firstMs;
    } while (this.again && !this.closed);
  }

  private async push(state: DesiredState): Promise<PushOutcome> {
    this.lastAttempt = this.clock.now();
    const snap = snapshotOf(state);
    let client: SyncClient | undefined;
    try {
      client = this.peerClient();
      const r = await exchange(client, 'push', snap);
      if (r.ok) {
        // Answers may arrive out of order (run() beside the loop): the peer never goes back.
        this.peerRevision = Math.max(this.peerRevision ?? 0, snap.revision);
        this.lastSuccess = this.clock.now();
        this.lastError = undefined;
        const detail = r.body.detail;
        this.service.events.publish('sync.pushed', { revision: snap.revision, peer: this.peerName(), detail }, { msg: `sync: revision ${snap.revision} pushed to the secondary: ${detail}` });
        return { ok: true, reached: true, revision: snap.revision, detail };
      }
      if (r.problem.appliedRevision !== undefined) this.peerRevision = r.problem.appliedRevision;
      return this.failed(snap.revision, `the secondary refused revision ${snap.revision}: ${r.problem.detail}`, true);
    } catch (e) {
      if (client && client !== this.client?.client && !this.closed) {
        // Not a failure of the peer now configured: the push goes to it next, without backoff.
        this.superseded = true;
        return { ok: false, reached: false, revision: snap.revision, detail: `the sync peer was changed while revision ${snap.revision} was being pushed; it is pushed to the new peer` };
      }
      // Aborted by close(), not failed: a timeout that came first is a failure like any other.
      if (this.closed && !(e instanceof SyncTransportError && e.kind === 'timeout')) {
        this.logger.info({ event: 'sync.push.aborted', revision: snap.revision }, `sync: the push of revision ${snap.revision} was aborted by the stop; the next start pushes again`);
        return { ok: false, reached: false, revision: snap.revision, detail: `the push of revision ${snap.revision} was aborted: carpd is stopping` };
      }
      const why = e instanceof SyncTransportError || e instanceof CarpdError ? e.message : `unexpected: ${(e as Error).message}`;
      return this.failed(snap.revision, why, false);
    }
  }

  private failed(revision: number, why: string, reached: boolean): PushOutcome {
    const first = this.lastError !== why;
    this.lastError = why;
    const e = this.service.events.publish('sync.failed', { revision, peer: this.peerName(), error: why, reached, retryInMs: this.delayMs }, { level: false });
    this.logger[first ? 'warn' : 'debug']({ event: 'sync.push.failed', eventId: e.id, revision, err: why, retryInMs: this.delayMs }, `sync: ${why}; retrying in ${(this.delayMs / 1000).toFixed(0)} s`);
    return { ok: false, reached, revision, detail: why };
  }

  /** POST /v1/sync/run: push the newest revision now, whatever the backoff, and say how it went. */
  async run(): Promise<PushOutcome> {
    const s = this.service.desired();
    if (s.sync.role !== 'primary') throw new CarpdError('CARPD_ERR_SYNC_ROLE', `this node is ${s.sync.role}: only a primary pushes; run it on the primary`);
    this.peerClient();
    await this.inFlight?.catch(() => undefined);
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.delayMs = this.retry.firstMs;
    // This push takes the loop's place, so that no two pushes are ever in flight at once.
    let out!: PushOutcome;
    this.inFlight = (async () => {
      out = await this.push(this.service.desired());
    })().finally(() => (this.inFlight = undefined));
    await this.inFlight;
    // Superseded or not, the loop started here pushes to the peer configured now.
    this.superseded = false;
    if (!out.ok || this.again) this.schedule();
    return out;
  }

  /** GET /v1/sync/plan: what a push would change on the secondary, computed there without applying. */
  async plan(): Promise<{ revision: number; plan: PlanView }> {
    const s = this.service.desired();
    if (s.sync.role !== 'primary') throw new CarpdError('CARPD_ERR_SYNC_ROLE', `this node is ${s.sync.role}: the plan is computed for the primary's push; ask the primary`);
    const snap = snapshotOf(s);
    const r = await this.ask('plan', snap);
    return { revision: snap.revision, plan: r.plan };
  }

  /** One request to the peer whose answer is needed: a refusal or no answer is an error. */
  private async ask<K extends SyncMessageType>(type: K, body: SyncRequests[K]): Promise<SyncAnswers[K]> {
    let r: SyncAnswer<K>;
    try {
      r = await exchange(this.peerClient(), type, body);
    } catch (e) {
      if (e instanceof CarpdError) throw e;
      // An answer that could not be read was an answer all the same: its error says what it was.
      const why = e instanceof SyncTransportError && e.kind === 'protocol' ? e.message : `the sync peer did not answer: ${(e as Error).message}`;
      throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', why);
    }
    if (!r.ok) throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', `the sync peer refused the ${type} request (HTTP ${r.status}): ${r.problem.detail}`);
    return r.body;
  }

  // --- what both sides answer ------------------------------------------------------------------

  /** A monotonic instant of this manager's clock as an ISO 8601 wall time, or null. */
  private shown(monoMs: number | undefined): string | null {
    return monoMs === undefined ? null : wallDate(this.clock, monoMs).toISOString();
  }

  /**
   * A revision's creation on the monotonic clock: placed once, from its stored wall time and the
   * clock's offset the first time it is asked for, then kept, so that the lag in seconds does not
   * jump when the wall clock is set. Revisions the peer has reached are forgotten.
   */
  private monoOf(revision: number, createdAt: string): number {
    let at = this.revisionMono.get(revision);
    if (at === undefined) {
      at = this.clock.now() - Math.max(0, this.clock.wall() - Date.parse(createdAt));
      this.revisionMono.set(revision, at);
    }
    for (const r of this.revisionMono.keys()) if (r < revision) this.revisionMono.delete(r);
    return at;
  }

  /** GET /v1/sync */
  status() {
    const s = this.service.desired();
    const y = s.sync;
    const peerRevision = y.role === 'primary' ? (this.peerRevision ?? null) : y.role === 'secondary' ? y.appliedRevision : null;
    let lag: { revisions: number | null; seconds: number | null } = { revisions: null, seconds: null };
    if (y.role === 'primary' && peerRevision !== null) {
      const behind = s.revision - peerRevision;
      const oldest = this.service.revisions().find((r) => r.revision === peerRevision + 1);
      lag = { revisions: Math.max(0, behind), seconds: behind > 0 && oldest ? Math.max(0, (this.clock.now() - this.monoOf(oldest.revision, oldest.createdAt)) / 1000) : 0 };
    }
    return {
      node: this.node,
      role: y.role,
      identity: { fingerprint: this.identity.fingerprint },
      listen: this.listenAddress ?? null,
      peer: y.peer ? { ...y.peer } : null,
      localRevision: s.revision,
      peerRevision,
      lag,
      pending: y.role === 'primary' && (peerRevision === null || peerRevision < s.revision),
      lastAttempt: this.shown(this.lastAttempt),
      lastSuccess: this.shown(this.lastSuccess),
      lastError: this.lastError ?? null,
      advskewRule: { ...y.advskewRule },
      overrides: y.overrides.map((o) => ({ ...o })),
      localAddresses: [...y.localAddresses],
      detached: { vips: [...y.detached.vips], carp: y.detached.carp },
      rejected: this.server?.rejected() ?? null,
      splitBrainPolicy: this.policy(),
      splitBrain: this.splitBrainNow(),
    };
  }

  /** What this node tells about itself to its peer and in /v1/cluster. */
  async report(): Promise<NodeReport> {
    const st = await this.service.status();
    const s = this.service.desired();
    return {
      node: this.node,
      role: s.sync.role,
      revision: s.revision,
      appliedRevision: s.sync.appliedRevision,
      carp: { enabled: st.carp.allow, preempt: st.carp.preempt, maintenance: st.carp.maintenance, demotion: st.carp.demotion },
      pfsync: { enabled: s.pfsync.enabled, running: st.pfsync.running, syncdev: st.pfsync.syncdev ?? null, syncpeer: st.pfsync.syncpeer ?? null, bulkUpdateDone: st.pfsync.bulkUpdateDone },
      vhids: st.vhids.map((v) => ({ interface: v.interface, vhid: v.vhid, state: v.state, since: v.since.toISOString(), reason: v.reason })),
    };
  }

  /**
   * GET /v1/cluster: both nodes, the peer's part fetched over the sync link. `splitBrain` is the
   * split-brain watch's set, the same as GET /v1/sync's; the peer's report read here is one more
   * reading for the watch, so a split seen here is an event too.
   */
  async cluster(): Promise<{ nodes: ClusterNode[]; splitBrain: SplitVhid[]; pfStateDifference: number | null }> {
    const [mine, myPf] = await Promise.all([this.report(), this.pfReport()]);
    const self: ClusterNode = { ...mine, self: true, reachable: true, error: null, ...(myPf.error === undefined ? { pf: myPf.pf } : {}) };
    const nodes: ClusterNode[] = [self];
    let peer: NodeReport | undefined;
    let peerPf: PfReport | undefined;
    if (this.service.desired().sync.peer) {
      // The pf exchange goes beside the status read; its failure leaves the peer's pf unknown, nothing more.
      const [status, pf] = await Promise.allSettled([this.ask('status', {}), this.exchangePf(myPf)]);
      if (status.status === 'fulfilled') {
        peer = status.value;
        // A refusal (a carpd without the exchange, one shutting down) leaves the peer's pf unknown.
        peerPf = pf.status === 'fulfilled' && pf.value.ok && pf.value.body.error === undefined ? pf.value.body : undefined;
        nodes.push({ ...peer, self: false, reachable: true, error: null, ...(peerPf ? { pf: peerPf.pf } : {}) });
      } else {
        nodes.push({ node: null, self: false, reachable: false, error: (status.reason as Error).message });
      }
    }
    const theirs = peerPf?.pf;
    const pfStateDifference = myPf.pf && theirs ? myPf.pf.states - theirs.states : null;
    if (peer) {
      const states = (r: NodeReport): VhidStateEntry[] => r.vhids.map((v) => ({ interface: v.interface, vhid: v.vhid, state: v.state }));
      this.splitWatch.heard({ node: peer.node, vhids: states(peer) }, states(self));
    }
    return { nodes, splitBrain: this.splitBrainNow(), pfStateDifference };
  }

  // --- pf's state table on both nodes -----------------------------------------------------------

  /** What this node tells about its pf (the `pf` exchange): read now; a kernel refusal is told as `error`. */
  async pfReport(): Promise<PfReport> {
    const at = new Date(this.clock.wall()).toISOString();
    try {
      // The backend's own answer: its KernelError's words (errno and request) are what the peer is told.
      const pf = await this.service.backend.pfStatus();
      return { node: this.node, at, pf: pf ? { ...pf } : null };
    } catch (e) {
      return { node: this.node, at, pf: null, error: (e as Error).message };
    }
  }

  /**
   * The peer's pf state table and pfsync bulk update, asked now over the sync link (the `pf`
   * exchange: this node's own goes with the question, so the peer learns it too). 'unsupported'
   * when the peer runs a carpd without the exchange. Rejects with CARPD_ERR_SYNC_NOT_CONFIGURED
   * without a peer and CARPD_ERR_SYNC_PEER_UNREACHABLE when it cannot be asked. A report with
   * `error` means the peer has pf but could not read it; `pf: null` that it has none.
   */
  async peerPf(opts: { timeoutMs?: number } = {}): Promise<PfReport | 'unsupported'> {
    const r = await this.exchangePf(await this.pfReport(), opts);
    if (r.ok) return r.body;
    if (isUnknownKindRefusal(r.problem)) return 'unsupported';
    throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', `the sync peer refused the pf request (HTTP ${r.status}): ${r.problem.detail}`);
  }

  /** The peer's last pf report heard over either side's exchange, with its age in ms on this clock; undefined before any. */
  lastPeerPf(): { report: PfReport; ageMs: number } | undefined {
    const h = this.peerPfHeard;
    return h ? { report: h.report, ageMs: this.clock.now() - h.atMs } : undefined;
  }

  /** One pf exchange; the peer's report is remembered (lastPeerPf). A refusal is returned as it came. */
  private async exchangePf(mine: PfReport, opts: { timeoutMs?: number } = {}): Promise<SyncAnswer<'pf'>> {
    let r: SyncAnswer<'pf'>;
    try {
      r = await exchange(this.peerClient(), 'pf', mine, opts);
    } catch (e) {
      if (e instanceof CarpdError) throw e;
      throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', e instanceof SyncTransportError && e.kind === 'protocol' ? e.message : `the sync peer did not answer: ${(e as Error).message}`);
    }
    if (r.ok) this.peerPfHeard = { report: r.body, atMs: this.clock.now() };
    return r;
  }

  // --- the split-brain watch -------------------------------------------------------------------

  /** The vhids MASTER on both nodes as the split-brain watch knows them now (splitbrain.ts), each with since when. */
  splitBrainNow(): { interface: string; vhid: number; since: string }[] {
    return this.splitWatch.now();
  }

  /** The split-brain watch itself (tests, diagnostics). */
  get splitBrainWatch(): SplitBrainWatch {
    return this.splitWatch;
  }

  /** This node's split-brain policy. */
  policy(): SplitBrainPolicy {
    return this.service.desired().sync.splitBrainPolicy ?? 'alert';
  }

  /**
   * Before PATCH /v1/sync stores a policy: `demote` needs a backend that holds named demotions
   * (one whose demotions() answers EOPNOTSUPP: 422 CARPD_ERR_UNSUPPORTED, nothing changed).
   */
  async checkPolicy(policy: SplitBrainPolicy): Promise<void> {
    if (policy === 'demote') await this.service.demotions();
  }

  private async localStates(): Promise<VhidStateEntry[]> {
    return (await this.service.liveVhids()).map((v) => ({ interface: v.interface, vhid: v.vhid, state: v.state }));
  }

  private async askStates(mine: VhidStates, timeoutMs: number): Promise<VhidStates | 'unsupported'> {
    const r = await exchange(this.peerClient(), 'states', mine, { timeoutMs });
    if (r.ok) return r.body;
    if (isUnknownKindRefusal(r.problem)) return 'unsupported';
    throw new Error(`the sync peer refused the states request (HTTP ${r.status}): ${r.problem.detail}`);
  }

  /** After a commit: the watch's data about another peer (or none) is dropped, with its split set. */
  private followPeer(): void {
    const peer = this.service.desired().sync.peer;
    const key = peer ? peerKey(peer) : undefined;
    if (key === this.watchedPeer) return;
    const had = this.watchedPeer !== undefined;
    this.watchedPeer = key;
    if (had) this.splitWatch.reset(key ? 'another sync peer is configured' : 'no sync peer is configured');
  }

  /**
   * The `demote` policy: a secondary holds SPLIT_BRAIN_DEMOTION while a split brain lasts, and
   * takes it back when it ends, when the policy or the role changes and when carpd stops.
   * One change at a time, in order; a failure is logged (once per reason) and tried again at
   * the next change.
   */
  private applyPolicy(): Promise<void> {
    this.policyChain = this.policyChain.then(async () => {
      if (this.gate && !this.closed) return; // paused: the backend is not ours to change yet
      const y = this.service.desired().sync;
      const want = !this.closed && this.policy() === 'demote' && y.role === 'secondary' && this.splitWatch.now().length > 0 ? SPLIT_BRAIN_DEMOTION : 0;
      // What the backend holds, read each time rather than remembered: it may have dropped it
      // (FreeBSD: carp.ko reloaded, a reboot), or a previous run left it.
      let held = 0;
      try {
        held = (await this.service.demotions()).get(SPLIT_BRAIN_DEMOTION_NAME) ?? 0;
      } catch {
        // A backend without named demotions holds none.
      }
      if (held === want) return;
      try {
        await this.service.setDemotion(SPLIT_BRAIN_DEMOTION_NAME, want);
        this.policyError = undefined;
      } catch (e) {
        const why = (e as Error).message;
        if (this.policyError !== why) this.logger.warn({ event: 'splitbrain.demotion.failed', demotion: want, err: why }, `split brain: could not ${want ? 'demote this node' : 'take back the split-brain demotion'}: ${why}`);
        this.policyError = why;
        return;
      }
      if (want > 0) this.logger.warn({ event: 'splitbrain.demoted', demotion: want }, `split brain: this secondary demotes itself by ${want} while it lasts (policy demote)`);
      else this.logger.info({ event: 'splitbrain.undemoted', demotion: held }, `split brain: the split-brain demotion (${held}) is taken back`);
    });
    return this.policyChain;
  }

  // --- health, for the switchover ---------------------------------------------------------------

  /** This node's name as its peer and /v1/cluster know it. */
  get nodeName(): string {
    return this.node;
  }

  /** The clock this manager runs on (the switchover's deadlines use the same). */
  get clockOf(): Clock {
    return this.clock;
  }

  /** Plugs in the health tracks' and pf's sources for the `health` answer (replacing those given before). */
  setHealthSources(sources: HealthSources): void {
    this.healthSources = { ...sources };
  }

  /** pf's state count and bulk update on this node, or undefined where there is none (or it cannot be read). */
  async localPf(): Promise<{ stateCount: number; bulkUpdateDone: boolean } | undefined> {
    try {
      return (await this.healthSources.pfStatus?.()) ?? undefined;
    } catch {
      return undefined;
    }
  }

  /** What this node answers to `health`: whether it could take over now. */
  async localHealth(): Promise<PeerHealth> {
    const s = this.service.desired();
    const [carp, vhids, named] = await Promise.all([this.service.liveCarp(), this.localStates(), this.service.demotions().catch(() => new Map<string, number>())]);
    const out: PeerHealth = {
      node: this.node,
      at: new Date(this.clock.wall()).toISOString(),
      role: s.sync.role,
      revision: s.revision,
      appliedRevision: s.sync.appliedRevision,
      carp: { enabled: carp.allow, preempt: carp.preempt, maintenance: carp.maintenance, demotion: carp.demotion, switchover: Math.max(0, named.get(SWITCHOVER_DEMOTION_NAME) ?? 0) },
      vhids,
    };
    if (this.healthSources.tracksDown) {
      try {
        out.tracksDown = [...(await this.healthSources.tracksDown())];
      } catch {
        // not reported in this answer
      }
    }
    const pf = await this.localPf();
    if (pf) out.pf = { stateCount: pf.stateCount, bulkUpdateDone: pf.bulkUpdateDone };
    return out;
  }

  /**
   * Asks the peer for its health over the sync link (the switchover's checks and its polling).
   * Rejects with CARPD_ERR_SYNC_NOT_CONFIGURED without a peer, CARPD_ERR_SYNC_PEER_UNREACHABLE
   * when it does not answer, refuses, or is an older carpd without `health`.
   */
  async peerHealth(timeoutMs?: number): Promise<PeerHealth> {
    let r: SyncAnswer<'health'>;
    try {
      r = await exchange(this.peerClient(), 'health', { node: this.node }, timeoutMs === undefined ? undefined : { timeoutMs });
    } catch (e) {
      if (e instanceof CarpdError) throw e;
      const why = e instanceof SyncTransportError && e.kind === 'protocol' ? e.message : `the sync peer did not answer: ${(e as Error).message}`;
      throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', why);
    }
    if (r.ok) return r.body;
    if (isUnknownKindRefusal(r.problem)) throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', 'the sync peer is an older carpd that does not answer health; upgrade it first');
    throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', `the sync peer refused the health request (HTTP ${r.status}): ${r.problem.detail}`);
  }

  // --- the receiving side ----------------------------------------------------------------------

  /** A message the listener has verified and read as one of the kinds (SYNC_KINDS). */
  private async handle(msg: InboundMessage): Promise<{ status: number; body: unknown }> {
    if (this.gate) await this.gate.open;
    if (this.closed) return problem(new CarpdError('CARPD_ERR_SHUTTING_DOWN', 'carpd is shutting down; the message was not taken'));
    switch (msg.type) {
      case 'push':
      case 'plan':
        return this.receive(msg);
      case 'status':
        return { status: 200, body: (await this.report()) satisfies NodeReport };
      case 'states': {
        const mine = await this.localStates();
        this.splitWatch.heard(msg.body, mine);
        return { status: 200, body: { node: this.node, at: new Date(this.clock.wall()).toISOString(), vhids: mine } satisfies VhidStates };
      }
      case 'pf':
        this.peerPfHeard = { report: msg.body, atMs: this.clock.now() };
        return { status: 200, body: (await this.pfReport()) satisfies PfReport };
      case 'health':
        return { status: 200, body: (await this.localHealth()) satisfies PeerHealth };
    }
  }

  private async receive(msg: Extract<InboundMessage, { type: 'push' | 'plan' }>): Promise<{ status: number; body: unknown }> {
    const local = this.service.desired();
    const applied = local.sync.appliedRevision;
    if (local.sync.role !== 'secondary') {
      // Loop guard: only a secondary takes snapshots, and it never pushes back.
      return problem(new CarpdError('CARPD_ERR_SYNC_ROLE', `this node is ${local.sync.role}, not a secondary: it does not take pushes (two primaries, or a push sent back to its primary)`));
    }
    let snap;
    try {
      snap = readSnapshot(msg.body);
    } catch (e) {
      return problem(e as CarpdError);
    }
    if (snap.revision < applied) {
      return problem(new CarpdError('CARPD_ERR_SYNC_OLDER_REVISION', `revision ${snap.revision} is older than revision ${applied} already applied here; if the primary's state was reset, set this node's sync peer again to start over`), { appliedRevision: applied });
    }
    const dryRun = msg.type === 'plan';
    // The same revision again (a restart, a retry after a lost answer) is applied again: it
    // changes nothing and commits nothing, unless this node's own rules changed meanwhile.
    try {
      const outcome = await this.service.mutate({ actor: `sync:${local.sync.peer?.address ?? 'peer'}`, origin: 'sync', dryRun }, `sync: primary's revision ${snap.revision}`, (draft) => {
        // Checked again inside the serialized queue: an older push that passed the check above
        // while a newer one waited in the queue must not roll this node back.
        if (draft.sync.role !== 'secondary') throw new CarpdError('CARPD_ERR_SYNC_ROLE', `this node is ${draft.sync.role}, not a secondary`);
        if (snap.revision < draft.sync.appliedRevision) {
          throw new CarpdError('CARPD_ERR_SYNC_OLDER_REVISION', `revision ${snap.revision} is older than revision ${draft.sync.appliedRevision} already applied here`);
        }
        const next = applySnapshot(draft, snap);
        Object.assign(draft, next);
      });
      if (outcome.kind === 'plan') return { status: 200, body: { plan: outcome.plan } satisfies PlanAnswer };
      if (!outcome.changed) return { status: 200, body: { detail: `revision ${snap.revision} was already applied`, appliedRevision: snap.revision } satisfies PushAck };
      this.service.events.publish(
        'sync.applied',
        { primaryRevision: snap.revision, revision: outcome.state.revision, peer: local.sync.peer?.address ?? 'peer' },
        { msg: `sync: applied the primary's revision ${snap.revision} as revision ${outcome.state.revision}` },
      );
      return { status: 200, body: { detail: `applied as revision ${outcome.state.revision}`, appliedRevision: snap.revision } satisfies PushAck };
    } catch (e) {
      const err = e instanceof CarpdError ? e : new CarpdError('CARPD_ERR_INTERNAL', (e as Error).message);
      this.logger.warn({ event: 'sync.apply.failed', primaryRevision: snap.revision, err: err.message }, `sync: the primary's revision ${snap.revision} was not applied: ${err.message}`);
      return problem(err, { appliedRevision: applied });
    }
  }
}

function peerKey(peer: { address: string; port: number; fingerprint: string }): string {
  return `${peer.address}|${peer.port}|${peer.fingerprint}`;
}

function problem(e: CarpdError, extra: Record<string, unknown> = {}): { status: number; body: unknown } {
  return { status: e.status, body: { ...problemOf(e), ...extra } };
}

