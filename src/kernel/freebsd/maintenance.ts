/**
 * carpd's maintenance demotion on a kernel whose net.inet.carp.demotion is a shared, signed
 * delta (T9): a write adds to the sum, which the kernel itself also moves (interface down,
 * send errors, pfsync bulk updates, §3.3, §5.5). So carpd never writes an absolute value: it adds
 * exactly MAINTENANCE_DEMOTION and later takes back exactly that, and remembers in its state
 * directory ({added, boottime}) that it did, so that a restarted carpd neither adds it twice nor
 * forgets to take it back. A reboot (another kern.boottime) resets the kernel's sum to 0, and
 * with it what carpd holds.
 *
 * Crash window. Each toggle is three steps: record the intent together with the demotion read
 * just before (pending), write the delta, record the outcome. A crash between the first two
 * steps or between the last two leaves a pending record, which the next start settles by reading
 * the sum again: before + 240 means "entered", before means "not entered" (and the reverse when
 * leaving). When the sum has moved for other reasons too, the answer cannot be known, and the
 * record settles on "carpd holds nothing". That choice is deliberate: the opposite mistake would
 * make carpd later subtract 240 it never added, driving the sum negative (which cancels the
 * kernel's own interface-down demotion, and on 13, which has no floor, wraps the advertised
 * skew), whereas a stray +240 only keeps this node demoted, which is safe: a demoted BACKUP still
 * takes over when no MASTER is heard. The same rule applies at every read: if the sum is below
 * what carpd believes it added (carp.ko reloaded, someone subtracted by hand), carpd stops
 * claiming it.
 *
 * Named demotions (KernelBackend.setDemotion: `splitbrain`, later health tracks) are kept the
 * same way in the same record, each under its name: a change from `from` to `to` adds exactly
 * to − from, recorded as pending first. A pending change settles as applied when the sum moved
 * by exactly that, as not applied when it did not move, and otherwise on the smaller of the two
 * amounts (the same rule: never claim more than carpd surely added). A sum below everything
 * carpd claims drops every claim, maintenance and names alike.
 */
import type { Logger } from 'pino';
import { MAINTENANCE_DEMOTION } from '../../config/model.js';
import { type BootTime, type DemotionRecord, readDemotionRecord, writeDemotionRecord } from './ledger.js';

export interface DemotionKernel {
  boottime(): BootTime;
  /** The current sum; throws (EPROTONOSUPPORT) when carp(4) is not loaded. */
  demotion(): number;
  /** Adds a delta to the sum (T9). */
  addDemotion(delta: number): void;
}

const sameBoot = (a: BootTime, b: BootTime) => a.sec === b.sec && a.usec === b.usec;

/** Everything carpd holds in the kernel's sum by this record. */
const held = (r: DemotionRecord) => r.added + Object.values(r.named ?? {}).reduce((a, b) => a + b, 0);

/** The record with `name` holding `amount` (0: not at all), and no pending step. */
function withNamed(r: DemotionRecord, name: string, amount: number): DemotionRecord {
  const named = { ...(r.named ?? {}) };
  if (amount !== 0) named[name] = amount;
  else delete named[name];
  return { version: 1, boottime: r.boottime, added: r.added, ...(Object.keys(named).length ? { named } : {}) };
}

export class Maintenance {
  private rec!: DemotionRecord;

  private constructor(
    private readonly stateDir: string,
    private readonly kernel: DemotionKernel,
    private readonly logger: Logger,
  ) {}

  static async open(stateDir: string, kernel: DemotionKernel, logger: Logger): Promise<Maintenance> {
    const m = new Maintenance(stateDir, kernel, logger);
    const boottime = kernel.boottime();
    const stored = await readDemotionRecord(stateDir);
    m.rec = stored ?? { version: 1, boottime, added: 0 };
    await m.settle();
    return m;
  }

  private tryDemotion(): number | undefined {
    try {
      return this.kernel.demotion();
    } catch {
      return undefined; // carp(4) not loaded: nothing can be demoted
    }
  }

  /** Brings the record in line with the running kernel: same boot, no pending step, no over-claim. */
  private async settle(): Promise<void> {
    const boottime = this.kernel.boottime();
    const r = this.rec;
    let next: DemotionRecord = r;
    if (!sameBoot(r.boottime, boottime)) {
      if (held(r) !== 0 || r.pending) {
        this.logger.info(
          { event: 'maintenance.reboot', was: r.boottime, now: boottime },
          `kern.boottime changed since carpd recorded its maintenance demotion: the kernel was rebooted and its demotion sum reset, so carpd holds none of it now (a clock step moves kern.boottime too; if net.inet.carp.demotion still includes carpd's ${MAINTENANCE_DEMOTION}, take it back by hand)`,
        );
      }
      next = { version: 1, boottime, added: 0 };
    } else {
      const now = this.tryDemotion();
      if (r.pending?.op === 'set') {
        const { name, from, to, demotionBefore: before } = r.pending;
        const applied = now === before + (to - from);
        const notApplied = now === before;
        if (now === undefined || (!applied && !notApplied)) {
          this.logger.warn(
            { event: 'demotion.uncertain', name, from, to, demotionBefore: before, demotionNow: now },
            `carpd stopped while moving its ${name} demotion from ${from} to ${to} and net.inet.carp.demotion moved from ${before} to ${now ?? '(carp not loaded)'} since: it cannot tell which applies, so it assumes it holds ${Math.min(from, to)} (check the sysctl)`,
          );
        }
        next = withNamed(r, name, now !== undefined && applied ? to : now !== undefined && notApplied ? from : Math.min(from, to));
      } else if (r.pending) {
        const { op, demotionBefore: before } = r.pending;
        const entered = op === 'enter' ? now === before + MAINTENANCE_DEMOTION : now === before;
        const notEntered = op === 'enter' ? now === before : now === before - MAINTENANCE_DEMOTION;
        const added = now !== undefined && entered ? MAINTENANCE_DEMOTION : 0;
        if (now === undefined || (!entered && !notEntered)) {
          this.logger.warn(
            { event: 'maintenance.uncertain', op, demotionBefore: before, demotionNow: now },
            `carpd stopped while ${op === 'enter' ? 'entering' : 'leaving'} maintenance and net.inet.carp.demotion moved from ${before} to ${now ?? '(carp not loaded)'} since: it cannot tell whether its ${MAINTENANCE_DEMOTION} is applied, so it assumes it holds none (check the sysctl if this node should not be demoted)`,
          );
        }
        next = { version: 1, boottime, added, ...(r.named ? { named: r.named } : {}) };
      } else if (held(r) > 0 && (now === undefined || now < held(r))) {
        this.logger.warn(
          { event: 'maintenance.lost', added: held(r), demotionNow: now },
          `net.inet.carp.demotion is ${now ?? '(carp not loaded)'}, below the ${held(r)} carpd added: carp.ko was reloaded or someone took it back; carpd no longer counts it as applied`,
        );
        next = { version: 1, boottime, added: 0 };
      }
    }
    if (next !== r) {
      this.rec = next;
      await writeDemotionRecord(this.stateDir, next, 'record the maintenance demotion');
    }
  }

  async get(): Promise<boolean> {
    await this.settle();
    return this.rec.added > 0;
  }

  /** What carpd holds in the kernel's sum right now (maintenance and named demotions). */
  get added(): number {
    return held(this.rec);
  }

  /** carpd's named demotions held now (KernelBackend.demotions). */
  async named(): Promise<Map<string, number>> {
    await this.settle();
    return new Map(Object.entries(this.rec.named ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /** Holds `amount` under `name` (0: takes it back): adds exactly the difference to the sum (KernelBackend.setDemotion). */
  async setNamed(name: string, amount: number): Promise<void> {
    await this.settle();
    const base = this.rec;
    const from = base.named?.[name] ?? 0;
    if (from === amount) return;
    const what = `set the ${name} demotion to ${amount}`;
    const before = this.kernel.demotion();
    await writeDemotionRecord(this.stateDir, { ...base, pending: { op: 'set', name, from, to: amount, demotionBefore: before, at: new Date().toISOString() } }, what);
    try {
      this.kernel.addDemotion(amount - from);
    } catch (e) {
      // The sysctl refused: nothing changed in the kernel.
      this.rec = base;
      await writeDemotionRecord(this.stateDir, base, what).catch(() => undefined);
      throw e;
    }
    this.rec = withNamed(base, name, amount);
    await writeDemotionRecord(this.stateDir, this.rec, what);
  }

  async set(on: boolean): Promise<void> {
    await this.settle();
    const want = on ? MAINTENANCE_DEMOTION : 0;
    const { added, boottime, named } = this.rec;
    const keep = named ? { named } : {};
    if (added === want) return;
    const before = this.kernel.demotion();
    const op = on ? 'enter' : 'leave';
    const what = on ? 'enter maintenance' : 'leave maintenance';
    await writeDemotionRecord(this.stateDir, { version: 1, boottime, added, ...keep, pending: { op, demotionBefore: before, at: new Date().toISOString() } }, what);
    try {
      this.kernel.addDemotion(want - added);
    } catch (e) {
      // The sysctl refused: nothing changed in the kernel.
      this.rec = { version: 1, boottime, added, ...keep };
      await writeDemotionRecord(this.stateDir, this.rec, what).catch(() => undefined);
      throw e;
    }
    this.rec = { version: 1, boottime, added: want, ...keep };
    await writeDemotionRecord(this.stateDir, this.rec, what);
  }
}
