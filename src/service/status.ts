/**
 * Live status as the API shows it, and its cache: assembled at most once per second while
 * nothing carpd knows of changes (a generation the service bumps on every live change).
 */
import type { ConfigStore } from '../config/store.js';
import type { KernelBackend } from '../kernel/backend.js';
import { effectiveSkew } from '../engine/timing.js';
import { demotionContributors } from './watch.js';

const STATUS_MAX_AGE_MS = 1000;

export interface ReconcileStatus {
  ok: boolean;
  at: Date;
  error?: string;
}

/** What status is assembled from (the service). */
export interface StatusSource {
  readonly store: ConfigStore;
  readonly backend: KernelBackend;
  readonly startedAt: Date;
  readonly lastReconcile: ReconcileStatus;
  liveCarp(): Promise<{ allow: boolean; preempt: boolean; demotion: number; maintenance: boolean; temporarilyDisabled: boolean }>;
}

export async function assembleStatus(src: StatusSource) {
  const store = src.store.health();
  // pf is shown when it can be read: a kernel refusing pf's status does not take the rest away,
  // and the refusal (operation and errno) is shown instead.
  const [vhids, live, pfsync, pfRead, named] = await Promise.all([
    src.backend.listVhids(),
    src.liveCarp(),
    src.backend.getPfsync(),
    src.backend.pfStatus().then(
      (pf) => ({ pf }),
      (e: unknown) => ({ pf: null, pfError: e instanceof Error ? e.message : String(e) }),
    ),
    src.backend.demotions().catch(() => new Map<string, number>()),
  ]);
  // What the demotion is made of: maintenance, named demotions (splitbrain, track:<name>), other.
  const carp = { ...live, contributors: demotionContributors(live.demotion, live.maintenance, named) };
  return {
    revision: src.store.current().revision,
    startedAt: src.startedAt,
    reconcile: src.lastReconcile,
    backend: { name: src.backend.name, description: src.backend.description, capabilities: src.backend.capabilities() },
    carp,
    vhids: vhids.map((v) => ({ ...v, effectiveSkew: effectiveSkew(v.advskew, carp.demotion) })),
    pfsync,
    ...pfRead,
    store,
  };
}

export type ServiceStatus = Awaited<ReturnType<typeof assembleStatus>>;

/** The last assembled status and the assembly under way, each with the generation it was started at. */
export class StatusCache {
  private cache?: { generation: number; at: number; value: ServiceStatus };
  private pending?: { generation: number; value: Promise<ServiceStatus> };

  /** The cached status, when it is of `generation` and younger than a second at `now`; otherwise undefined. */
  fresh(generation: number, now: number): ServiceStatus | undefined {
    const c = this.cache;
    return c && c.generation === generation && now - c.at < STATUS_MAX_AGE_MS ? c.value : undefined;
  }

  /**
   * A new status, started at `now`. Callers that find the cache stale together share one
   * assembly (and so one object, whose API body is then built once), unless something changed
   * since it started.
   */
  async assemble(generation: number, now: number, assemble: () => Promise<ServiceStatus>): Promise<ServiceStatus> {
    if (this.pending?.generation === generation) return this.pending.value;
    const value = assemble();
    const pending = { generation, value };
    this.pending = pending;
    try {
      const done = await value;
      this.cache = { generation, at: now, value: done };
      return done;
    } finally {
      if (this.pending === pending) this.pending = undefined;
    }
  }
}
