/**
 * What the kernel holds that no state-change callback reports: the demotion counter, carpd's
 * maintenance demotion and pfsync's bulk update. The service reads them after each of its own
 * changes and each vhid state change, and the daemon every few seconds (changes made outside
 * carpd: an interface down, pfsync's bulk update, someone running sysctl); each difference
 * from the last reading is an event.
 */
import { MAINTENANCE_DEMOTION } from '../config/model.js';
import type { PfsyncLive } from '../kernel/backend.js';
import type { DemotionContributor, EventBus } from './events.js';

export interface CarpReading {
  demotion: number;
  maintenance: boolean;
  pfsync?: PfsyncLive;
}

/**
 * The parts of a demotion total carpd can name: its maintenance demotion, the extra demotions
 * carpd holds by name (`extra`), and `other` for the rest of the kernel's counter (an interface
 * down, send errors, pfsync's bulk update, another program).
 */
export function demotionContributors(total: number, maintenance: boolean, extra: ReadonlyMap<string, number> = new Map()): DemotionContributor[] {
  const out: DemotionContributor[] = [];
  let known = 0;
  if (maintenance) {
    out.push({ name: 'maintenance', value: MAINTENANCE_DEMOTION });
    known += MAINTENANCE_DEMOTION;
  }
  for (const [name, value] of [...extra].sort(([a], [b]) => a.localeCompare(b))) {
    if (value === 0) continue;
    out.push({ name, value });
    known += value;
  }
  if (total - known !== 0) out.push({ name: 'other', value: total - known });
  return out;
}

export class KernelWatch {
  private last?: CarpReading;
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly read: () => Promise<CarpReading>,
    private readonly events: EventBus,
    private readonly extra: () => ReadonlyMap<string, number> = () => new Map(),
  ) {}

  /** The demotion last read (0 before the first reading). */
  get demotion(): number {
    return this.last?.demotion ?? 0;
  }

  /** Reads now, or once more after the reading in progress; a failed read is skipped (the next one tells). */
  check(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          this.compare(await this.read());
        } catch {
          // The backend could not be read (carp(4) unloaded, shutting down): nothing to compare.
        }
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private compare(now: CarpReading): void {
    const before = this.last;
    this.last = now;
    if (!before) return;
    if (before.maintenance !== now.maintenance) {
      this.events.publish('maintenance', { enabled: now.maintenance }, { msg: now.maintenance ? 'this node entered maintenance mode' : 'this node left maintenance mode' });
    }
    if (before.demotion !== now.demotion) {
      const contributors = demotionContributors(now.demotion, now.maintenance, this.extra());
      this.events.publish(
        'demotion',
        { total: now.demotion, previous: before.demotion, contributors },
        { level: now.demotion > before.demotion ? 'warn' : 'info', msg: `demotion ${before.demotion} -> ${now.demotion}${contributors.length ? ` (${contributors.map((c) => `${c.name} ${c.value}`).join(', ')})` : ''}` },
      );
    }
    const a = before.pfsync;
    const b = now.pfsync;
    if (a && b && b.running && a.running && a.bulkUpdateDone !== b.bulkUpdateDone) {
      const syncdev = b.syncdev ?? null;
      if (b.bulkUpdateDone) this.events.publish('pfsync', { phase: 'bulk.done', syncdev, detail: 'the bulk update from the peer completed' }, { msg: 'pfsync: bulk update done' });
      else this.events.publish('pfsync', { phase: 'bulk.start', syncdev, detail: 'waiting for the bulk update from the peer' }, { msg: 'pfsync: bulk update started' });
    } else if (a && b && !a.running && b.running && !b.bulkUpdateDone) {
      this.events.publish('pfsync', { phase: 'bulk.start', syncdev: b.syncdev ?? null, detail: 'pfsync started; waiting for the bulk update from the peer' }, { msg: 'pfsync: bulk update started' });
    }
  }
}
