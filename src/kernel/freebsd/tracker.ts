/**
 * What the FreeBSD backend knows about vhid states beyond the kernel's answer.
 *
 *  truth   vhids, their parameters and states are read from the kernel every time; which
 *          interfaces to look at and which addresses carpd bound come from the ledger
 *          (ledger.ts), because carp(4) has no request that lists a vhid's addresses.
 *  states  the kernel keeps neither when a state began nor why: `since` and `reason` are what
 *          this process saw. The first sight of a vhid starts its history; every later read
 *          that finds another state is a change, published with the reason of whoever read it
 *          (carpd's own change, a devd event, a resync).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { CarpState, LiveVhid, StateChange } from '../backend.js';
import type { CarpTransport, KernelVhid } from './carp.js';
import { fail, isErrno } from './failure.js';
import { carpKeyText } from './layout-carp.js';
import type { AddressLedger } from './ledger.js';

export interface SeenState {
  state: CarpState;
  since: Date;
  reason: string;
}

/** The reason of a change nobody announced: carpd found it reading the kernel. */
export const READ_BY_CARPD = (s: CarpState) => `kernel reports ${s} (read by carpd; no devd event seen for it)`;
export const FIRST_SEEN = 'state found when carpd first saw the vhid';
/** The history of a vhid carpd has just created. */
export const CREATED = 'vhid created; waiting for an address';

const keyOf = (iface: string, vhid: number) => `${iface}/${vhid}`;
const ifaceOf = (key: string) => key.slice(0, key.lastIndexOf('/'));

export class StateTracker {
  private readonly events = new EventEmitter();
  private readonly seen = new Map<string, SeenState>();

  constructor(
    private readonly ledger: AddressLedger,
    private readonly logger: Logger,
  ) {}

  onStateChange(listener: (c: StateChange) => void): () => void {
    this.events.on('state', listener);
    return () => this.events.off('state', listener);
  }

  close(): void {
    this.events.removeAllListeners();
  }

  /**
   * Records the state the kernel reports. The first sight of a vhid starts its history with
   * `firstReason`; a different state than the last one seen is a change, reported with `reason`.
   */
  observe(iface: string, vhid: number, state: CarpState, reason: (s: CarpState) => string, firstReason: string, at?: Date): SeenState {
    const k = keyOf(iface, vhid);
    const cur = this.seen.get(k);
    if (!cur) {
      // The time taken only when there is something to record (a batch observes hundreds of vhids).
      const e = { state, since: at ?? new Date(), reason: firstReason };
      this.seen.set(k, e);
      return e;
    }
    if (cur.state !== state) {
      const previous = cur.state;
      const when = at ?? new Date();
      cur.state = state;
      cur.since = when;
      cur.reason = reason(state);
      const change: StateChange = { interface: iface, vhid, state, previous, reason: cur.reason, at: when };
      for (const l of this.events.listeners('state') as ((c: StateChange) => void)[]) {
        try {
          l(change);
        } catch (e) {
          this.logger.error({ event: 'freebsd.listener', err: String(e) }, `a state-change listener threw: ${String(e)}`);
        }
      }
    }
    return cur;
  }

  forget(iface: string, vhid?: number): void {
    if (vhid !== undefined) this.seen.delete(keyOf(iface, vhid));
    else for (const k of [...this.seen.keys()]) if (ifaceOf(k) === iface) this.seen.delete(k);
  }

  toLive(iface: string, k: KernelVhid, s: SeenState): LiveVhid {
    return {
      interface: iface,
      vhid: k.vhid,
      advbaseSec: k.advbase,
      advskew: k.advskew,
      key: k.key ? carpKeyText(k.key) : undefined,
      peer: k.peer,
      peer6: k.peer6,
      state: k.state,
      since: s.since,
      reason: s.reason,
      addresses: this.ledger.addresses(iface, k.vhid),
    };
  }

  /**
   * Reads one vhid again after carpd changed something, to attribute a state change to it. Only
   * bookkeeping: the change itself is done, so a failed read is logged, not thrown.
   */
  async refresh(t: CarpTransport, iface: string, vhid: number, reason: (s: CarpState) => string, firstReason = CREATED): Promise<void> {
    try {
      const k = await t.get(iface, vhid);
      if (!k) this.forget(iface, vhid);
      else this.observe(iface, vhid, k.state, reason, firstReason);
    } catch (e) {
      this.logger.warn({ event: 'freebsd.refresh', interface: iface, vhid, err: (e as Error).message }, `${iface} vhid ${vhid}: cannot read its state back: ${(e as Error).message}`);
    }
  }

  /**
   * Every vhid of every interface in the ledger, as the kernel has them. Interfaces that no
   * longer exist and vhids the kernel no longer has are dropped from the ledger.
   */
  async readAll(carp: (operation: string) => Promise<CarpTransport>, reason: ((s: CarpState) => string) | undefined, firstReason: string): Promise<LiveVhid[]> {
    const ifaces = this.ledger.interfaces();
    if (ifaces.length === 0) return [];
    const changeReason = reason ?? READ_BY_CARPD;
    const t = await carp('list vhids');
    const out: LiveVhid[] = [];
    let pruned = false;
    for (const iface of ifaces) {
      let vhids: KernelVhid[];
      try {
        vhids = await t.list(iface);
      } catch (e) {
        if (isErrno(e, 'ENXIO')) {
          this.logger.info({ event: 'freebsd.interface.gone', interface: iface }, `${iface} no longer exists; its vhids went with it`);
          pruned = this.ledger.dropInterface(iface) || pruned;
          this.forget(iface);
          continue;
        }
        fail(e, 'list vhids', iface);
      }
      const present = new Set(vhids.map((v) => v.vhid));
      for (const v of this.ledger.vhidsWithAddresses(iface)) if (!present.has(v)) pruned = this.ledger.dropVhid(iface, v) || pruned;
      for (const k of [...this.seen.keys()]) {
        if (ifaceOf(k) === iface && !present.has(Number(k.slice(k.lastIndexOf('/') + 1)))) this.seen.delete(k);
      }
      for (const k of vhids) out.push(this.toLive(iface, k, this.observe(iface, k.vhid, k.state, changeReason, firstReason)));
    }
    if (pruned) await this.ledger.save('forget vhids the kernel no longer has');
    return out.sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
  }
}
