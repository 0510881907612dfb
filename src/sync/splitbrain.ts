/**
 * The split-brain watch: two nodes that sync compare their vhid states over the sync link every
 * few seconds, so that a vhid both hold as MASTER (the CARP link between them is cut, or their
 * passwords differ) is an event within seconds, not something seen the next time someone asks
 * GET /v1/cluster.
 *
 * Every `intervalMs` (default 3 s) while a peer is configured and sync runs, this node sends its
 * vhid states in a `states` message (messages.ts) and gets the peer's back; a `states` message
 * the peer sends is read the same way (heard()), so both nodes know as soon as either exchange
 * got through. A vhid MASTER on both is split; it stays split until a fresh reading shows it
 * MASTER on at most one of them (or gone). Each start and end is one event:
 * `splitbrain.detected` (logged at warn) and `splitbrain.cleared` with how long it lasted.
 *
 * Stale data (the rule). The set changes only on a reading of the peer just received (its
 * answer, or its own states message), compared with this node's states read at that moment;
 * what was heard before is never compared with anything later, so no decision rests on data
 * older than one exchange. While the peer does not answer, the set stays as it was, neither
 * detected nor cleared, however long that lasts: the last heard from a peer that no longer
 * answers says nothing about now. The two ways can cross (the peer's message, read before its
 * answer to this node, arriving after it): a reading older, by the peer's own `at`, than one
 * already used is dropped. A vhid changing state here triggers an exchange at once (poke()),
 * rather than a comparison with the peer's last reading.
 *
 * A peer whose carpd predates the `states` message refuses it as an unknown type: the peer
 * cannot tell, which is logged once; the watch asks it again only every UNSUPPORTED_RETRY_MS
 * (it may be upgraded), so that its listener does not log a refusal every few seconds.
 *
 * The request has a short timeout (default min(2.5 s, the interval)), so that one exchange that
 * hangs does not hold the next: a split brain is seen within interval + timeout (5.5 s by
 * default) of both nodes becoming MASTER, well inside 10 s. Time comes from the injected Clock.
 */
import type { Logger } from 'pino';
import { wallDate, type Clock } from '../clock.js';
import type { SplitBrainPolicy } from '../config/model.js';
import type { EventBus } from '../service/events.js';
import type { VhidStates } from './messages.js';

export const SPLIT_BRAIN_INTERVAL_MS = 3000;
export const SPLIT_BRAIN_TIMEOUT_MS = 2500;
/** How long after a peer refused `states` as unknown it is asked again. */
export const UNSUPPORTED_RETRY_MS = 5 * 60_000;

export type VhidStateEntry = VhidStates['vhids'][number];

/** A vhid MASTER on both nodes, and since when this node knows it. */
export interface SplitVhid {
  interface: string;
  vhid: number;
  /** ISO 8601: when it was detected. */
  since: string;
}

export interface SplitBrainWatchOptions {
  clock: Clock;
  events: EventBus;
  logger: Logger;
  /** This node's name, sent with its states. */
  node: string;
  intervalMs?: number;
  timeoutMs?: number;
  /** Whether to exchange now: a peer configured and sync running (not paused, not closed). */
  active(): boolean;
  /** This node's vhid states now. */
  local(): Promise<VhidStateEntry[]>;
  /**
   * One exchange with the peer: its states, or `unsupported` when it refused the message as an
   * unknown type. Rejects when the peer was not reached or answered something else.
   */
  ask(mine: VhidStates, timeoutMs: number): Promise<VhidStates | 'unsupported'>;
  /** The peer as events name it (address:port). */
  peerName(): string;
  policy(): SplitBrainPolicy;
  /** Told after every change of the set of split vhids. */
  onChange?(split: readonly SplitVhid[]): void;
}

const keyOf = (v: { interface: string; vhid: number }) => `${v.interface}/${v.vhid}`;

export class SplitBrainWatch {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  private readonly split = new Map<string, { interface: string; vhid: number; sinceMs: number }>();
  /** When the peer's states were last heard (ms, this node's clock). */
  private lastHeard?: number;
  /** The peer's `at` of the newest reading used (ms, the peer's clock). */
  private lastPeerAt?: number;
  private timer?: unknown;
  private inFlight?: Promise<void>;
  private stopped = true;
  private unsupportedUntil?: number;
  private lastFailure?: string;
  /** Exchanges completed (for tests and diagnostics). */
  exchanges = 0;

  constructor(private readonly opts: SplitBrainWatchOptions) {
    this.intervalMs = opts.intervalMs ?? SPLIT_BRAIN_INTERVAL_MS;
    this.timeoutMs = opts.timeoutMs ?? Math.min(SPLIT_BRAIN_TIMEOUT_MS, this.intervalMs);
  }

  /** Starts the exchanges, the first one interval from now. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.arm();
  }

  /** Stops the exchanges; waits for one in flight. The set is kept as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.opts.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight?.catch(() => undefined);
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.opts.clock.setTimeout(() => {
      this.timer = undefined;
      // At a fixed rate: the next one is armed now; one still in flight makes this one skip.
      this.arm();
      this.poke();
    }, this.intervalMs);
  }

  /** An exchange now unless one is in flight (a vhid changed state here: the peer's side is wanted fresh). */
  poke(): void {
    if (this.stopped || this.inFlight) return;
    this.inFlight = this.tick().finally(() => (this.inFlight = undefined));
  }

  /** One exchange now (the timer's, or a test's); resolves when its outcome is applied. */
  async tick(): Promise<void> {
    if (!this.opts.active()) return;
    const now = this.opts.clock.now();
    if (this.unsupportedUntil !== undefined && now < this.unsupportedUntil) return;
    let mine: VhidStateEntry[];
    try {
      mine = await this.opts.local();
    } catch {
      return; // the backend cannot be read now: nothing to compare
    }
    let answer: VhidStates | 'unsupported';
    try {
      answer = await this.opts.ask({ node: this.opts.node, at: new Date(this.opts.clock.wall()).toISOString(), vhids: mine }, this.timeoutMs);
    } catch (e) {
      const why = (e as Error).message;
      if (this.lastFailure !== why) this.opts.logger.debug({ event: 'splitbrain.exchange.failed', err: why }, `split-brain watch: no states from the sync peer: ${why}`);
      this.lastFailure = why;
      return;
    }
    this.lastFailure = undefined;
    if (answer === 'unsupported') {
      if (this.unsupportedUntil === undefined) {
        this.opts.logger.warn(
          { event: 'splitbrain.unsupported', peer: this.opts.peerName() },
          `split-brain watch: the sync peer ${this.opts.peerName()} does not know the states message (an older carpd); it cannot tell whether both nodes are MASTER of a vhid until it is upgraded`,
        );
      }
      this.unsupportedUntil = this.opts.clock.now() + UNSUPPORTED_RETRY_MS;
      return;
    }
    this.unsupportedUntil = undefined;
    this.exchanges++;
    // Compared with this node's states now, not those sent: they may have changed meanwhile.
    try {
      mine = await this.opts.local();
    } catch {
      return;
    }
    this.heard(answer, mine);
  }

  /**
   * The peer's states, from its answer or its own exchange, beside this node's own read now.
   * Without `at` (its report in GET /v1/cluster) the reading is used as it comes.
   */
  heard(peer: Omit<VhidStates, 'at'> & { at?: string }, mine: readonly VhidStateEntry[]): void {
    if (peer.at !== undefined) {
      const at = Date.parse(peer.at);
      if (this.lastPeerAt !== undefined && at < this.lastPeerAt) return; // overtaken by a newer reading
      this.lastPeerAt = at;
    }
    this.lastHeard = this.opts.clock.now();
    this.evaluate(peer, mine);
  }

  /** When the peer's states were last heard (ISO 8601), or null. */
  get lastHeardAt(): string | null {
    return this.lastHeard === undefined ? null : wallDate(this.opts.clock, this.lastHeard).toISOString();
  }

  /**
   * Drops every split vhid without a `cleared` event: nothing is watched any more (the peer was
   * removed), so nobody can tell that it ended.
   */
  reset(why: string): void {
    this.lastHeard = undefined;
    this.lastPeerAt = undefined;
    this.unsupportedUntil = undefined;
    if (this.split.size === 0) return;
    const list = [...this.split.keys()].join(', ');
    this.split.clear();
    this.opts.logger.info({ event: 'splitbrain.unwatched', vhids: list }, `split-brain watch: ${why}; ${list} no longer watched`);
    this.opts.onChange?.(this.now());
  }

  /** The vhids split now, ordered by interface then vhid. */
  now(): SplitVhid[] {
    return [...this.split.values()]
      .sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1))
      .map((s) => ({ interface: s.interface, vhid: s.vhid, since: wallDate(this.opts.clock, s.sinceMs).toISOString() }));
  }

  private evaluate(peerStates: Omit<VhidStates, 'at'>, mine: readonly VhidStateEntry[]): void {
    const now = this.opts.clock.now();
    const theirs = new Set(peerStates.vhids.filter((v) => v.state === 'MASTER').map(keyOf));
    const both = mine.filter((v) => v.state === 'MASTER' && theirs.has(keyOf(v)));
    let changed = false;
    const peer = this.opts.peerName();
    for (const v of both) {
      const k = keyOf(v);
      if (this.split.has(k)) continue;
      this.split.set(k, { interface: v.interface, vhid: v.vhid, sinceMs: now });
      changed = true;
      const policy = this.opts.policy();
      this.opts.events.publish(
        'splitbrain.detected',
        { interface: v.interface, vhid: v.vhid, peer, policy, since: wallDate(this.opts.clock, now).toISOString() },
        { level: 'warn', msg: `split brain: ${v.interface} vhid ${v.vhid} is MASTER on this node and on its peer ${peerStates.node} (${peer})${policy === 'demote' ? '; policy demote' : ''}` },
      );
    }
    const still = new Set(both.map(keyOf));
    for (const [k, s] of [...this.split]) {
      if (still.has(k)) continue;
      this.split.delete(k);
      changed = true;
      const seconds = Math.max(0, Math.round((now - s.sinceMs) / 100) / 10);
      this.opts.events.publish(
        'splitbrain.cleared',
        { interface: s.interface, vhid: s.vhid, peer, seconds, since: wallDate(this.opts.clock, s.sinceMs).toISOString() },
        { level: 'warn', msg: `split brain over: ${s.interface} vhid ${s.vhid} is no longer MASTER on both nodes (it lasted ${seconds} s)` },
      );
    }
    if (changed) this.opts.onChange?.(this.now());
  }
}
