/**
 * carpd's metrics in the Prometheus text format (prom-client), served at GET /metrics on the
 * API listener (any token) and, with --metrics-listen, on a plain-HTTP listener of their own
 * without a token (metricsListener below).
 *
 * Each CarpdMetrics owns its registry (never prom-client's global one: a process may build
 * many apps, the tests do). Two kinds of series:
 *
 * - read at each scrape, from ONE status read and ONE stats read (`metrics()` reads both, then
 *   every collect() callback takes what it needs from that reading): vhid states and skews,
 *   demotion and its contributors, maintenance, CARP and pfsync kernel counters, config
 *   revision, sync lag and refusals, split brain, SSE clients, events published by type;
 * - counted as they happen: vhid transitions, sync pushes and applies, hook runs and webhook
 *   deliveries (from the event bus), and HTTP requests (`track`, hooked where the access log is).
 *
 * Process metrics (prom-client's defaults) keep their standard names (`process_*`, `nodejs_*`),
 * without carpd's prefix, so that existing Node.js dashboards work; `processMetrics` turns them on.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { EVENT_TYPES, type AnyEvent } from '../service/events.js';
import type { CarpCounter, KernelStats } from '../service/live.js';
import { DELAY_BUCKETS_SECONDS, type LoopWatch } from '../service/loop-watch.js';
import type { CarpService } from '../service/service.js';
import type { ServiceStatus } from '../service/status.js';
import { demotionContributors } from '../service/watch.js';
import type { SyncManager } from '../sync/manager.js';

export const CARP_STATES = ['INIT', 'BACKUP', 'MASTER'] as const;

/** Where each carpstats counter goes: received and sent packets by address family, received packets dropped by reason. */
const CARP_SERIES: Record<CarpCounter, { metric: 'received' | 'sent' | 'dropped' | 'nomem' | 'states' | 'preempt'; label?: string }> = {
  ipackets: { metric: 'received', label: 'inet' },
  ipackets6: { metric: 'received', label: 'inet6' },
  badif: { metric: 'dropped', label: 'badif' },
  badttl: { metric: 'dropped', label: 'badttl' },
  hdrops: { metric: 'dropped', label: 'hdrops' },
  badsum: { metric: 'dropped', label: 'badsum' },
  badver: { metric: 'dropped', label: 'badver' },
  badlen: { metric: 'dropped', label: 'badlen' },
  badauth: { metric: 'dropped', label: 'badauth' },
  badvhid: { metric: 'dropped', label: 'badvhid' },
  badaddrs: { metric: 'dropped', label: 'badaddrs' },
  opackets: { metric: 'sent', label: 'inet' },
  opackets6: { metric: 'sent', label: 'inet6' },
  onomem: { metric: 'nomem' },
  ostates: { metric: 'states' },
  preempt: { metric: 'preempt' },
};

/** struct pfsyncstats's counters (net.pfsync.stats) by name: received and sent by family, received dropped by reason, send errors by reason. */
const PFSYNC_SERIES: Record<string, { metric: 'received' | 'sent' | 'dropped' | 'send_errors'; label: string }> = {
  ipackets: { metric: 'received', label: 'inet' },
  ipackets6: { metric: 'received', label: 'inet6' },
  badif: { metric: 'dropped', label: 'badif' },
  badttl: { metric: 'dropped', label: 'badttl' },
  hdrops: { metric: 'dropped', label: 'hdrops' },
  badver: { metric: 'dropped', label: 'badver' },
  badact: { metric: 'dropped', label: 'badact' },
  badlen: { metric: 'dropped', label: 'badlen' },
  badauth: { metric: 'dropped', label: 'badauth' },
  stale: { metric: 'dropped', label: 'stale' },
  badval: { metric: 'dropped', label: 'badval' },
  badstate: { metric: 'dropped', label: 'badstate' },
  opackets: { metric: 'sent', label: 'inet' },
  opackets6: { metric: 'sent', label: 'inet6' },
  onomem: { metric: 'send_errors', label: 'onomem' },
  oerrors: { metric: 'send_errors', label: 'oerrors' },
};

/** The HTTP methods counted by name; any other is counted as `other`. */
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Request durations: the status poll answers in well under a millisecond, a large apply in tens. */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Paths remembered with their route template (the validator's lookup is a scan of every path of the spec). */
const ROUTE_CACHE_MAX = 512;

export interface SplitBrainVhid {
  interface: string;
  vhid: number;
}

export interface MetricsOptions {
  service: CarpService;
  /** Config sync: lag, pushes, refusals; without it the `carpd_sync_*` gauges are left out. */
  sync?: SyncManager;
  version?: string;
  node?: string;
  /** The vhids both nodes hold as MASTER now (`carpd_splitbrain`); default: `sync`'s watch; without either the series is left out. */
  splitBrain?: () => SplitBrainVhid[];
  /** The event stream's clients (`carpd_sse_clients`, `carpd_sse_clients_dropped_total`); without it they are left out. */
  streams?: { clients(): number; dropped(): number };
  /** carpd's log destination (`carpd_log_lines_dropped_total`); without it the series is left out. */
  log?: { stats(): { linesDropped: number } };
  /** Demotions carpd holds by name, besides maintenance (the contributors' names); default: the service's. */
  demotionExtra?: () => ReadonlyMap<string, number>;
  /** prom-client's process and Node.js metrics (`process_*`, `nodejs_*`), default off. The daemon turns them on. */
  processMetrics?: boolean;
  /** The event loop's watch (`carpd_event_loop_*`); without it those series are left out. */
  loop?: LoopWatch;
}

interface Reading {
  status?: ServiceStatus;
  stats?: KernelStats;
  sync?: ReturnType<SyncManager['status']>;
}

export class CarpdMetrics {
  readonly registry = new Registry();
  private reading: Reading = {};
  private scrape?: Promise<string>;
  private readonly routes = new Map<string, string>();
  private readonly unsubscribe: () => void;
  private readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: Histogram<'route' | 'method'>;

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    const self = this;
    const { service, sync } = opts;

    new Gauge({
      name: 'carpd_info',
      help: 'carpd on this node: version, node name and backend (always 1).',
      labelNames: ['version', 'node', 'backend'],
      registers,
      collect() {
        this.reset();
        this.set({ version: opts.version ?? 'unknown', node: opts.node ?? 'unknown', backend: service.backend.name }, 1);
      },
    });
    new Gauge({
      name: 'carpd_up',
      help: 'Whether this scrape read the live state (read="status") and the kernel counters (read="stats"): 1 read, 0 failed (those series are then left out).',
      labelNames: ['read'],
      registers,
      collect() {
        this.set({ read: 'status' }, self.reading.status ? 1 : 0);
        this.set({ read: 'stats' }, self.reading.stats ? 1 : 0);
      },
    });

    // --- vhids ------------------------------------------------------------------------------
    new Gauge({
      name: 'carpd_vhid_state',
      help: 'The live CARP state of each vhid: 1 for its current state, 0 for the other two (INIT, BACKUP, MASTER).',
      labelNames: ['interface', 'vhid', 'state'],
      registers,
      collect() {
        this.reset();
        for (const v of self.reading.status?.vhids ?? []) {
          for (const s of CARP_STATES) this.set({ interface: v.interface, vhid: String(v.vhid), state: s }, v.state === s ? 1 : 0);
        }
      },
    });
    const transitions = new Counter({
      name: 'carpd_vhid_transitions_total',
      help: 'vhid state changes since carpd started, by vhid and the state it entered (sum by (state) for the node). A failover to this node: an increase with state="MASTER".',
      labelNames: ['interface', 'vhid', 'state'],
      registers,
      collect() {
        // Every vhid shown has all three series from its first scrape, so that the first change
        // after a start is an increase (a series that appears at 1 is not one).
        for (const v of self.reading.status?.vhids ?? []) for (const s of CARP_STATES) this.inc({ interface: v.interface, vhid: String(v.vhid), state: s }, 0);
      },
    });
    new Gauge({
      name: 'carpd_vhid_effective_skew',
      help: 'Each vhid\'s advskew plus the node\'s demotion, capped at 240: what it advertises (lower wins).',
      labelNames: ['interface', 'vhid'],
      registers,
      collect() {
        this.reset();
        for (const v of self.reading.status?.vhids ?? []) this.set({ interface: v.interface, vhid: String(v.vhid) }, v.effectiveSkew);
      },
    });
    new Gauge({
      name: 'carpd_vhid_advbase_seconds',
      help: 'Each vhid\'s advertisement interval base (advbase), in seconds.',
      labelNames: ['interface', 'vhid'],
      registers,
      collect() {
        this.reset();
        for (const v of self.reading.status?.vhids ?? []) this.set({ interface: v.interface, vhid: String(v.vhid) }, v.advbaseSec);
      },
    });
    // Config sync's split-brain watch, unless another source is given.
    const splitBrainOf = opts.splitBrain ?? (sync ? () => sync.splitBrainNow() : undefined);
    if (splitBrainOf) {
      const splitBrain = splitBrainOf;
      new Gauge({
        name: 'carpd_splitbrain',
        help: 'Split brain per vhid: 1 while this node and its peer both hold the vhid as MASTER, else 0.',
        labelNames: ['interface', 'vhid'],
        registers,
        collect() {
          this.reset();
          for (const v of self.reading.status?.vhids ?? []) this.set({ interface: v.interface, vhid: String(v.vhid) }, 0);
          for (const v of splitBrain()) this.set({ interface: v.interface, vhid: String(v.vhid) }, 1);
        },
      });
    }

    // --- CARP globals and demotion ----------------------------------------------------------
    /** A gauge of one value of the status read for this scrape: absent while the status cannot be read. */
    const statusGauge = <K extends 'carp' | 'pfsync' | 'pf'>(part: K, name: string, help: string, value: (v: ServiceStatus[K]) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const v = self.reading.status?.[part];
          if (v) this.set(value(v));
          else this.remove();
        },
      });
    const carpGauge = (name: string, help: string, value: (c: ServiceStatus['carp']) => number) => statusGauge('carp', name, help, value);
    carpGauge('carpd_demotion', 'The node\'s demotion counter (net.inet.carp.demotion): added to every vhid\'s advskew.', (c) => c.demotion);
    carpGauge('carpd_maintenance', 'Whether carpd\'s maintenance demotion is applied (1) or not (0).', (c) => (c.maintenance ? 1 : 0));
    carpGauge('carpd_carp_allowed', 'Whether CARP runs on this node (net.inet.carp.allow): 1 yes, 0 no.', (c) => (c.allow ? 1 : 0));
    carpGauge('carpd_carp_preempt', 'net.inet.carp.preempt: 1 on, 0 off.', (c) => (c.preempt ? 1 : 0));
    new Gauge({
      name: 'carpd_demotion_contributor',
      help: 'The parts of the demotion carpd can name: maintenance, a named demotion carpd holds, and other (the rest of the kernel\'s counter).',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        const c = self.reading.status?.carp;
        if (!c) return;
        for (const d of demotionContributors(c.demotion, c.maintenance, (opts.demotionExtra ?? (() => service.namedDemotions()))())) this.set({ name: d.name }, d.value);
      },
    });

    // --- health tracks (service.tracks, kept by src/track/) ---------------------------------
    new Gauge({
      name: 'carpd_track_up',
      help: 'Whether a health track is up (1) or down (0, demoting this node by its weight); absent while it is unknown (not decided yet).',
      labelNames: ['track'],
      registers,
      collect() {
        this.reset();
        for (const [name, l] of service.tracks.entries()) if (l.status.state !== 'unknown') this.set({ track: name }, l.status.state === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'carpd_track_demotion',
      help: 'The demotion a health track adds now (its weight while down, else 0), held as track:<name>.',
      labelNames: ['track'],
      registers,
      collect() {
        this.reset();
        for (const [name, l] of service.tracks.entries()) this.set({ track: name }, l.demotion);
      },
    });
    new Gauge({
      name: 'carpd_track_probe_duration_seconds',
      help: 'How long the last probe of a health track took (its round trip for ping), whether it passed or not.',
      labelNames: ['track'],
      registers,
      collect() {
        this.reset();
        for (const [name, l] of service.tracks.entries()) if (l.status.last) this.set({ track: name }, l.status.last.ms / 1000);
      },
    });
    new Counter({
      name: 'carpd_track_transitions_total',
      help: 'Changes of state of a health track since carpd started, by the state entered (up, down; unknown when it was changed or removed).',
      labelNames: ['track', 'to'],
      registers,
      collect() {
        this.reset();
        for (const [name, m] of service.tracks.transitions) for (const [to, n] of m) this.inc({ track: name, to }, n);
      },
    });

    // --- kernel counters --------------------------------------------------------------------
    const carpCounter = (name: string, help: string, kind: (typeof CARP_SERIES)[CarpCounter]['metric'], label?: 'family' | 'reason') =>
      new Counter({
        name,
        help,
        labelNames: label ? [label] : [],
        registers,
        collect() {
          this.reset();
          const carp = self.reading.stats?.carp;
          if (!carp) return label ? undefined : this.remove();
          for (const [counter, series] of Object.entries(CARP_SERIES) as [CarpCounter, (typeof CARP_SERIES)[CarpCounter]][]) {
            if (series.metric !== kind) continue;
            if (label) this.inc({ [label]: series.label! }, carp[counter]);
            else this.inc(carp[counter]);
          }
        },
      });
    carpCounter('carpd_carp_received_packets_total', 'CARP packets received, by address family (carpstats ipackets, ipackets6).', 'received', 'family');
    carpCounter('carpd_carp_sent_packets_total', 'CARP packets sent, by address family (carpstats opackets, opackets6).', 'sent', 'family');
    carpCounter('carpd_carp_dropped_packets_total', 'Received CARP packets dropped, by reason: the carpstats counter (badif, badttl, hdrops, badsum, badver, badlen, badauth, badvhid, badaddrs).', 'dropped', 'reason');
    carpCounter('carpd_carp_send_nomem_total', 'CARP packets not sent for want of memory (carpstats onomem).', 'nomem');
    carpCounter('carpd_carp_state_updates_sent_total', 'CARP state updates sent (carpstats ostates).', 'states');
    carpCounter('carpd_carp_preemptions_total', 'CARP preemptions (carpstats preempt).', 'preempt');

    const pfsyncCounter = (name: string, help: string, kind: (typeof PFSYNC_SERIES)[string]['metric'], label: 'family' | 'reason') =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers,
        collect() {
          this.reset();
          const counters = self.reading.stats?.pfsync?.counters;
          if (!counters) return;
          for (const [counter, value] of Object.entries(counters)) {
            const series = PFSYNC_SERIES[counter];
            if (series?.metric === kind) this.inc({ [label]: series.label }, value);
          }
        },
      });
    pfsyncCounter('carpd_pfsync_received_packets_total', 'pfsync packets received, by address family (pfsyncstats ipackets, ipackets6); absent without pfsync counters.', 'received', 'family');
    pfsyncCounter('carpd_pfsync_sent_packets_total', 'pfsync packets sent, by address family (pfsyncstats opackets, opackets6); absent without pfsync counters.', 'sent', 'family');
    pfsyncCounter('carpd_pfsync_dropped_packets_total', 'Received pfsync packets dropped, by reason: the pfsyncstats counter (badif, badttl, hdrops, badver, badact, badlen, badauth, stale, badval, badstate).', 'dropped', 'reason');
    pfsyncCounter('carpd_pfsync_send_errors_total', 'pfsync packets not sent, by reason (pfsyncstats onomem, oerrors).', 'send_errors', 'reason');
    if (service.backend.capabilities().pfsync) {
      const pfsyncGauge = (name: string, help: string, value: (p: ServiceStatus['pfsync']) => number) => statusGauge('pfsync', name, help, value);
      pfsyncGauge('carpd_pfsync_running', 'Whether pfsync runs (a sync interface is set): 1 yes, 0 no.', (p) => (p.running ? 1 : 0));
      pfsyncGauge('carpd_pfsync_bulk_update_done', 'Whether pfsync\'s bulk update from the peer has completed (1) or is still awaited (0).', (p) => (p.bulkUpdateDone ? 1 : 0));
    }

    // --- pf's state table (read with the status of this scrape; absent on a node without pf) ---
    const pfGauge = (name: string, help: string, value: (p: NonNullable<ServiceStatus['pf']>) => number) => statusGauge('pf', name, help, (p) => value(p!));
    pfGauge('carpd_pf_running', 'Whether pf is enabled (pfctl -e): 1 yes, 0 no; absent on a node without pf.', (p) => (p.running ? 1 : 0));
    pfGauge('carpd_pf_states', 'Entries in pf\'s state table now (the states pfsync keeps in step with the peer).', (p) => p.states);
    const pfCounter = (name: string, help: string, value: (p: NonNullable<ServiceStatus['pf']>) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const p = self.reading.status?.pf;
          if (p) this.inc(value(p));
          else this.remove();
        },
      });
    pfCounter('carpd_pf_state_inserts_total', 'States inserted into pf\'s state table since pf was loaded (pfctl -si "inserts").', (p) => p.stateInserts);
    pfCounter('carpd_pf_state_removals_total', 'States removed from pf\'s state table since pf was loaded (pfctl -si "removals").', (p) => p.stateRemovals);
    pfCounter('carpd_pf_state_searches_total', 'Lookups in pf\'s state table since pf was loaded (pfctl -si "searches").', (p) => p.stateSearches);

    // --- desired state and sync -------------------------------------------------------------
    new Gauge({
      name: 'carpd_config_revision',
      help: 'The revision of this node\'s desired state.',
      registers,
      collect() {
        this.set(service.store.current().revision);
      },
    });
    const pushes = new Counter({ name: 'carpd_sync_pushes_total', help: 'Config sync pushes to the peer since carpd started, by result (ok, failed).', labelNames: ['result'], registers });
    pushes.inc({ result: 'ok' }, 0);
    pushes.inc({ result: 'failed' }, 0);
    const applied = new Counter({ name: 'carpd_sync_applied_total', help: 'Config sync snapshots from the primary applied on this node since carpd started.', registers });
    if (sync) {
      const syncGauge = (name: string, help: string, value: (s: ReturnType<SyncManager['status']>) => number | null) =>
        new Gauge({
          name,
          help,
          registers,
          collect() {
            this.reset();
            const s = self.reading.sync;
            const v = s ? value(s) : null;
            if (v === null) this.remove();
            else this.set(v);
          },
        });
      syncGauge('carpd_sync_lag_revisions', 'Revisions the peer is behind this primary; absent on a node that is not a primary, or before the peer\'s revision is known.', (s) => s.lag.revisions);
      syncGauge('carpd_sync_lag_seconds', 'Seconds since the oldest revision the peer has not applied was made (0 when up to date); absent like carpd_sync_lag_revisions.', (s) => s.lag.seconds);
      syncGauge('carpd_sync_pending', 'Whether a primary has a revision its peer has not confirmed (1) or not (0).', (s) => (s.pending ? 1 : 0));
      syncGauge('carpd_sync_last_error', 'Whether the last push (or attempt) failed (1) or not (0); the error is in GET /v1/sync.', (s) => (s.lastError ? 1 : 0));
      syncGauge('carpd_sync_last_success_timestamp_seconds', 'When the last push or apply succeeded (Unix time); absent before the first.', (s) => (s.lastSuccess ? Date.parse(s.lastSuccess) / 1000 : null));
      new Gauge({
        name: 'carpd_sync_role',
        help: 'This node\'s config sync role: 1 for the current one (standalone, primary, secondary), 0 for the others.',
        labelNames: ['role'],
        registers,
        collect() {
          this.reset();
          const role = self.reading.sync?.role;
          if (role === undefined) return;
          for (const r of ['standalone', 'primary', 'secondary']) this.set({ role: r }, r === role ? 1 : 0);
        },
      });
      new Counter({
        name: 'carpd_sync_rejected_total',
        help: 'Messages the sync listener refused since carpd started, by reason; absent without a sync listener.',
        labelNames: ['reason'],
        registers,
        collect() {
          this.reset();
          for (const [reason, n] of Object.entries(self.reading.sync?.rejected ?? {})) this.inc({ reason }, n);
        },
      });
    }

    // --- hooks, webhooks, event stream, events ---------------------------------------------
    const hooks = new Counter({ name: 'carpd_hook_runs_total', help: 'Hook runs since carpd started, by hook and result (ok, failed).', labelNames: ['hook', 'result'], registers });
    const webhooks = new Counter({ name: 'carpd_webhook_deliveries_total', help: 'Webhook deliveries since carpd started, by webhook and result (ok, failed; dropped: never attempted, the queue was full).', labelNames: ['webhook', 'result'], registers });
    if (opts.streams) {
      const streams = opts.streams;
      new Gauge({ name: 'carpd_sse_clients', help: 'Clients of the event stream (GET /v1/events) connected now.', registers, collect() { this.set(streams.clients()); } });
      new Counter({
        name: 'carpd_sse_clients_dropped_total',
        help: 'Event stream clients disconnected by carpd for falling behind, since it started.',
        registers,
        collect() {
          this.reset();
          this.inc(streams.dropped());
        },
      });
    }
    new Gauge({
      name: 'carpd_state_dir_writable',
      help: 'Whether carpd\'s state directory took its last write (1) or not (0: out of space or quota, read-only, failing); see store in GET /v1/status.',
      registers,
      collect() {
        this.set(service.store.health().writable ? 1 : 0);
      },
    });
    if (opts.log) {
      const log = opts.log;
      new Counter({
        name: 'carpd_log_lines_dropped_total',
        help: 'Log lines carpd dropped since it started: its log destination was full, failing or not taking lines (stalled), and the queue was full.',
        registers,
        collect() {
          this.reset();
          this.inc(log.stats().linesDropped);
        },
      });
    }
    new Counter({
      name: 'carpd_events_published_total',
      help: 'Events published since carpd started, by type.',
      labelNames: ['type'],
      registers,
      collect() {
        this.reset();
        for (const type of EVENT_TYPES) this.inc({ type }, service.events.published.get(type) ?? 0);
      },
    });

    this.unsubscribe = service.events.subscribe((e: AnyEvent) => {
      switch (e.type) {
        case 'vhid.state':
          transitions.inc({ interface: e.data.interface, vhid: String(e.data.vhid), state: e.data.to });
          break;
        case 'sync.pushed':
          pushes.inc({ result: 'ok' });
          break;
        case 'sync.failed':
          pushes.inc({ result: 'failed' });
          break;
        case 'sync.applied':
          applied.inc();
          break;
        case 'hook.succeeded':
          hooks.inc({ hook: e.data.hook, result: 'ok' });
          hooks.inc({ hook: e.data.hook, result: 'failed' }, 0);
          break;
        case 'hook.failed':
          hooks.inc({ hook: e.data.hook, result: 'failed' });
          hooks.inc({ hook: e.data.hook, result: 'ok' }, 0);
          break;
        case 'webhook.delivered':
          webhooks.inc({ webhook: e.data.webhook, result: 'ok' });
          webhooks.inc({ webhook: e.data.webhook, result: 'failed' }, 0);
          break;
        case 'webhook.failed':
          webhooks.inc({ webhook: e.data.webhook, result: e.data.dropped ? 'dropped' : 'failed' });
          webhooks.inc({ webhook: e.data.webhook, result: 'ok' }, 0);
          break;
        default:
          break;
      }
    });

    // --- the event loop ---------------------------------------------------------------------
    // Unlike nodejs_eventloop_lag_* (process metrics: gauges over the time since the previous
    // scrape, which each scrape resets, a second scraper included, and which include the
    // sampler's 10 ms), a histogram since carpd started, of the delay alone: quantiles over any
    // window with rate(), and the same answer to every scraper.
    if (opts.loop) {
      const loop = opts.loop;
      const name = 'carpd_event_loop_delay_seconds';
      const help = 'How late a timer due now runs on carpd\'s event loop (Node\'s monitorEventLoopDelay, sampled every 10 ms, less those 10 ms), since carpd started.';
      this.registry.registerMetric({
        name,
        help,
        type: 'histogram',
        get() {
          const d = loop.delayHistogram();
          const values = DELAY_BUCKETS_SECONDS.map((le, i) => ({ metricName: `${name}_bucket`, labels: { le }, value: d.buckets[i]! }));
          values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf' as never }, value: d.count });
          return { name, help, type: 'histogram', aggregator: 'sum', values: [...values, { metricName: `${name}_sum`, labels: {} as never, value: d.sum }, { metricName: `${name}_count`, labels: {} as never, value: d.count }] };
        },
      } as never);
      new Counter({
        name: 'carpd_event_loop_stalls_total',
        help: 'Times carpd\'s event loop did not run for longer than the shortest advertisement interval configured (each logged at warn as loop.stalled), since carpd started.',
        registers,
        collect() {
          this.reset();
          this.inc(loop.detector.stalls);
        },
      });
      new Counter({
        name: 'carpd_event_loop_stalled_seconds_total',
        help: 'The total length of those stalls, in seconds.',
        registers,
        collect() {
          this.reset();
          this.inc(loop.detector.stalledMs / 1000);
        },
      });
      new Gauge({
        name: 'carpd_event_loop_stall_threshold_seconds',
        help: 'The stall threshold: the shortest advertisement interval configured (at least 0.05 s; 1 s without any vhid).',
        registers,
        collect() {
          this.set(loop.stats().stallThresholdMs / 1000);
        },
      });
    }

    // --- HTTP -------------------------------------------------------------------------------
    this.httpRequests = new Counter({ name: 'carpd_http_requests_total', help: 'API requests answered, by route template, method and status (aborted: the connection closed first).', labelNames: ['route', 'method', 'status'], registers });
    this.httpDuration = new Histogram({ name: 'carpd_http_request_duration_seconds', help: 'Time from a request\'s arrival to its answer (or its connection closing), by route template and method.', labelNames: ['route', 'method'], buckets: HTTP_BUCKETS, registers });

    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The Content-Type of `metrics()`'s text: `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Every series, as text. One status read and one stats read per scrape; scrapes that arrive
   * while one is being read share its answer.
   */
  metrics(): Promise<string> {
    this.scrape ??= (async () => {
      try {
        // The backend's counters as they are (GET /v1/stats answers a failed read in API terms;
        // here it is carpd_up{read="stats"} 0, and the rest of the scrape still answers).
        const [status, stats] = await Promise.all([this.opts.service.status().catch(() => undefined), this.opts.service.backend.stats().catch(() => undefined)]);
        this.reading = { status, stats, sync: this.opts.sync?.status() };
        return await this.registry.metrics();
      } finally {
        this.reading = {};
        this.scrape = undefined;
      }
    })();
    return this.scrape;
  }

  /**
   * Counts a request once it is answered (or its connection closed first), by its route
   * template (`routeOf`, the spec's; `other` for a path that is none), never by its path.
   */
  track(req: IncomingMessage, res: ServerResponse, routeOf: (path: string) => string | undefined): void {
    const start = performance.now();
    res.once('close', () => {
      const seconds = (performance.now() - start) / 1000;
      const method = req.method && HTTP_METHODS.has(req.method) ? req.method : 'other';
      const route = this.routeName(req.url ?? '', routeOf);
      this.httpRequests.inc({ route, method, status: res.writableFinished ? String(res.statusCode) : 'aborted' });
      this.httpDuration.observe({ route, method }, seconds);
    });
  }

  private routeName(url: string, routeOf: (path: string) => string | undefined): string {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let route = this.routes.get(path);
    if (route === undefined) {
      route = routeOf(path) ?? (path === '/openapi.json' ? path : path === '/docs' || path.startsWith('/docs/') ? '/docs' : 'other');
      if (this.routes.size >= ROUTE_CACHE_MAX) this.routes.clear();
      this.routes.set(path, route);
    }
    return route;
  }

  /** Stops counting events (the bus keeps no reference to this object). */
  close(): void {
    this.unsubscribe();
  }
}

/** Answers one request with the metrics: their text to GET and HEAD, 500 in plain text should reading them fail. */
export function sendMetrics(metrics: CarpdMetrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return metrics.metrics().then(
    (text) => {
      res.statusCode = 200;
      res.setHeader('Content-Type', metrics.contentType);
      res.setHeader('Cache-Control', 'no-store');
      res.setHeader('Content-Length', Buffer.byteLength(text));
      res.end(req.method === 'HEAD' ? undefined : text);
    },
    (e: unknown) => {
      res.statusCode = 500;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(`carpd could not collect its metrics: ${String(e)}\n`);
    },
  );
}

/**
 * The --metrics-listen listener: plain HTTP, no token, only GET /metrics (404 elsewhere, 405
 * for another method). Bound before the rest of carpd is opened; until `serve` hands it the
 * metrics, a scrape is answered 503.
 */
export async function metricsListener(host: string, port: number): Promise<{ server: Server; serve: (metrics: CarpdMetrics) => void }> {
  let metrics: CarpdMetrics | undefined;
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const text = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
      res.end(body);
    };
    if (path !== '/metrics') return text(404, 'not found: this listener serves only /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, `${req.method} not allowed: GET /metrics\n`, { Allow: 'GET, HEAD' });
    if (!metrics) return text(503, 'carpd is starting\n', { 'Retry-After': '1' });
    void sendMetrics(metrics, req, res);
  });
  // A scraper holds its connection open between scrapes; nothing else is kept.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    const failed = (e: Error) => {
      server.close();
      reject(e);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  return { server, serve: (m) => (metrics = m) };
}
