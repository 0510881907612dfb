/**
 * A batch of changes (KernelBackend.apply) on carp(4): read once, write together, record once.
 *
 *  read     one GET dump per interface the batch names (on 13 one list-all SIOCGVH; on 14
 *           without netlink one SIOCGVH per vhid named), not one read per vhid and step
 *  plan     every step turned into kernel operations against a model of those vhids and the
 *           ledger, with the checks the single-step methods make before the kernel is asked
 *  record   the ledger as the batch leaves it, written once before the kernel is touched (the
 *           ledger order of addresses.ts: a crash leaves the ledger ahead of the kernel), one
 *           line appended to its log (ledger.ts)
 *  write    consecutive vhid SETs in one netlink batch (NetlinkSocket.requestMany), address
 *           ioctls and sysctls back to back, all under the backend's one lock
 *  read     one dump per interface again, for the states the tracker reports
 *
 * When an operation fails, what the batch applied is taken back: the planner (kernel/plan.ts)
 * plans from the model of what was applied to the state read at the start, for the vhids the
 * batch touched, and those steps run through this same path; the globals go back to what was
 * read. The ledger is then written again as the kernel is.
 */
import type { Logger } from 'pino';
import { canonicalCidr, formatCidr, parseCidr, type Cidr } from '../../wire/address.js';
import { BatchError, type BackendStep, type CarpState } from '../backend.js';
import { KernelError } from '../errno.js';
import { plan, type Snapshot, type SnapshotVhid } from '../plan.js';
import { ADD_HINTS, type AddressBinder } from './addresses.js';
import { type CarpChannel, type CarpSet, type CarpTransport, type KernelVhid, type NetlinkCarp, vrrpAttrs } from './carp.js';
import { HINTS, checkIfName, fail, isErrno } from './failure.js';
import { carpKeyText } from './layout-carp.js';
import type { AddressLedger } from './ledger.js';
import type { KernelSettings } from './settings.js';
import { CREATED, FIRST_SEEN, type StateTracker } from './tracker.js';
import { PLACEHOLDER_NET, carpSetOf, checkPeersCarried, checkVhidSet } from './vhids.js';
import { applyOp, cloneModel, holder, ifaceOf, index, keyOf, operationOf, paramsOf, vhidOf, type Model, type Op } from './batch-model.js';

interface Failure {
  step: number;
  error: KernelError;
}

export interface BatchDeps {
  carp: CarpChannel;
  binder: AddressBinder;
  ledger: AddressLedger;
  tracker: StateTracker;
  settings: KernelSettings;
  logger: Logger;
}

/** One batch, run once (the backend holds its lock around run()). */
export class FreebsdBatch {
  private t!: CarpTransport;
  private hasTransport = false;
  /** Interfaces whose read failed (ENXIO: no such interface): a step naming one fails with it. */
  private readonly unreadable = new Map<string, unknown>();
  /** The vhids created by the batch's own SETs, whose history starts "vhid created". */
  private readonly created = new Set<string>();
  /** The first address each vhid got in this batch, for the reason of its state change. */
  private readonly bound = new Map<string, string>();

  constructor(
    private readonly d: BatchDeps,
    private readonly steps: readonly BackendStep[],
  ) {}

  async run(): Promise<void> {
    const { steps } = this;
    if (steps.length === 0) return;
    // carp(4) is needed only by the steps on vhids (pfsync and the sysctls work without carp.ko).
    const first = steps.findIndex((s) => 'interface' in s);
    if (first >= 0) {
      const s = steps[first] as Extract<BackendStep, { interface: string }>;
      try {
        this.t = await this.d.carp.get(operationOf(s), s.interface);
        this.hasTransport = true;
      } catch (e) {
        if (e instanceof KernelError) throw new BatchError(first, s, e);
        throw e;
      }
    }
    const before = await this.read();
    // Plan every step on a copy; a step the checks refuse fails the batch before the kernel is touched.
    const sim = cloneModel(before);
    const ops: Op[] = [];
    for (const [i, step] of steps.entries()) {
      try {
        for (const op of this.opsFor(sim, step, i)) {
          applyOp(sim, op);
          ops.push(op);
        }
      } catch (e) {
        if (e instanceof KernelError) throw new BatchError(i, step, e);
        throw e;
      }
    }
    // Plain loops, not flatMap: a batch has hundreds of operations.
    const touched = new Set<string>();
    for (const op of ops) {
      if ('iface' in op) touched.add(keyOf(op.iface, op.vhid));
      else if (op.kind === 'set') touched.add(keyOf(op.set.iface, op.set.vhid));
    }
    const newIfaces: string[] = [];
    for (const s of steps) if (s.op === 'vhid.set' && !this.d.ledger.hasInterface(s.interface)) newIfaces.push(s.interface);
    await this.record(sim, touched, newIfaces, 'apply a batch of changes');

    const live = cloneModel(before);
    const failure = await this.execute(live, ops, false);
    if (!failure) {
      await this.refreshStates(ops, live);
      return;
    }
    const undoErrors = await this.restore(before, live, touched);
    await this.record(live, touched, [], 'take back a failed batch of changes').catch((e: unknown) => undoErrors.push(e instanceof KernelError ? e : KernelError.of('EIO', 'take back a failed batch of changes', undefined, String(e))));
    await this.refreshStates(ops, live);
    throw new BatchError(failure.step, steps[failure.step], failure.error, undoErrors);
  }

  // ---- read -------------------------------------------------------------------------------

  /** The vhids of every interface the batch names, with the ledger's addresses; the globals it sets. */
  private async read(): Promise<Model> {
    const m: Model = { vhids: new Map(), held: new Map() };
    const named = new Map<string, Set<number>>();
    for (const s of this.steps) {
      if (!('interface' in s)) continue;
      if (!named.has(s.interface)) named.set(s.interface, new Set());
      named.get(s.interface)!.add(s.vhid);
    }
    for (const [iface, vhids] of named) {
      let found: KernelVhid[];
      try {
        found = await this.list(iface, vhids);
      } catch (e) {
        this.unreadable.set(iface, e);
        continue;
      }
      const present = new Set(found.map((v) => v.vhid));
      // Addresses recorded for vhids the kernel no longer has went with them.
      for (const v of this.d.ledger.vhidsWithAddresses(iface)) if (!present.has(v)) this.d.ledger.dropVhid(iface, v);
      for (const kv of found) {
        const key = keyOf(iface, kv.vhid);
        const addresses = this.d.ledger.addresses(iface, kv.vhid).map((a) => canonicalCidr(a) ?? a);
        m.vhids.set(key, { kv, addresses });
        index(m, key, addresses);
      }
    }
    const has = (op: BackendStep['op']) => this.steps.some((s) => s.op === op);
    if (has('carp.set')) {
      const g = this.d.settings.getCarpGlobals();
      m.carp = { allow: g.allow, preempt: g.preempt };
    }
    if (has('maintenance.set')) m.maintenance = await this.d.settings.getMaintenance();
    if (has('pfsync.set')) {
      const p = this.d.settings.getPfsync();
      m.pfsync = { syncdev: p.syncdev, syncpeer: p.syncpeer, maxupd: p.maxupd, defer: p.defer, version: p.version };
    }
    return m;
  }

  /** One dump of the interface, except where listing costs a read per possible vhid (14 without netlink). */
  private async list(iface: string, vhids: Set<number>): Promise<KernelVhid[]> {
    if (this.t.kind === 'netlink' || this.d.carp.major === 13) return this.t.list(iface);
    const wanted = new Set([...vhids, ...this.d.ledger.vhidsWithAddresses(iface)]);
    const out: KernelVhid[] = [];
    for (const v of wanted) {
      const got = await this.t.get(iface, v);
      if (got) out.push(got);
    }
    return out;
  }

  // ---- plan -------------------------------------------------------------------------------

  /** Checks the interface's name, and fails a step on an interface that could not be read. */
  private readable(operation: string, iface: string): void {
    checkIfName(operation, iface);
    if (this.unreadable.has(iface)) fail(this.unreadable.get(iface), operation, iface);
  }

  /** A step as kernel operations on the model, with the checks its single-step method makes first. */
  private opsFor(m: Model, step: BackendStep, i: number): Op[] {
    switch (step.op) {
      case 'vhid.set': {
        const operation = operationOf(step);
        const { interface: iface, vhid, params: p } = step;
        checkVhidSet(operation, iface, vhid, p, this.d.carp.major);
        checkPeersCarried(operation, iface, p, this.t, this.d.carp);
        this.readable(operation, iface);
        const cur = m.vhids.get(keyOf(iface, vhid));
        const set = carpSetOf(iface, vhid, p, this.t, this.d.carp.major, cur?.kv);
        if (cur?.kv.key && cur.kv.key[0] !== 0 && p.key === undefined) {
          // Neither SET can clear a key (T10): the vhid goes and comes back without one (vhids.ts).
          return [...this.destroyOps(m, iface, vhid, i, operation), { kind: 'set', step: i, operation, set }, ...cur.addresses.map((cidr): Op => ({ kind: 'bind', step: i, operation, iface, vhid, cidr }))];
        }
        return [{ kind: 'set', step: i, operation, set }];
      }
      case 'vhid.remove': {
        const operation = operationOf(step);
        this.readable(operation, step.interface);
        if (!m.vhids.has(keyOf(step.interface, step.vhid))) throw KernelError.of('ENOENT', operation, step.interface, 'no such vhid');
        return this.destroyOps(m, step.interface, step.vhid, i, operation);
      }
      case 'address.add': {
        const operation = operationOf(step);
        const { interface: iface, vhid } = step;
        checkIfName(operation, iface);
        const c = parseCidr(step.address);
        if (!c) throw KernelError.of('EINVAL', operation, iface, 'not an address with a prefix');
        this.readable(operation, iface);
        const cidr = formatCidr(c);
        const held = holder(m, iface, cidr);
        // §12.2: a duplicate SIOCAIFADDR restarts the vhid; already bound as asked: nothing to do.
        if (held?.key === keyOf(iface, vhid) && held.cidr === cidr) return [];
        const bind: Op = { kind: 'bind', step: i, operation, iface, vhid, cidr };
        if (held && held.key !== keyOf(iface, vhid)) {
          // The address moves: off its old vhid first (which goes away if it was its last).
          return [{ kind: 'unbind', step: i, operation, iface, vhid: vhidOf(held.key), cidr: held.cidr }, bind];
        }
        if (held && c.family === 6) {
          // A new prefix length: IPv6 cannot change it in place; the vhid comes back if that emptied it.
          const cur = m.vhids.get(held.key)!;
          const unbind: Op = { kind: 'unbind', step: i, operation, iface, vhid, cidr: held.cidr };
          if (cur.addresses.length > 1) return [unbind, bind];
          const key = cur.kv.key ? carpKeyText(cur.kv.key) : undefined;
          const again: CarpSet = { iface, vhid, advbase: cur.kv.advbase, advskew: cur.kv.advskew, ...(key !== undefined ? { key } : {}), ...(cur.kv.peer ? { peer: cur.kv.peer } : {}), ...(cur.kv.peer6 ? { peer6: cur.kv.peer6 } : {}), ...vrrpAttrs(this.t, this.d.carp.major, cur.kv) };
          return [unbind, { kind: 'set', step: i, operation, set: again }, bind];
        }
        return [bind];
      }
      case 'address.remove': {
        const operation = operationOf(step);
        checkIfName(operation, step.interface);
        const c = parseCidr(step.address);
        const held = c ? holder(m, step.interface, formatCidr(c)) : undefined;
        // Only what carpd bound: SIOCDIFADDR does not look at vhids and would delete any address.
        if (!c || !held || held.key !== keyOf(step.interface, step.vhid)) throw KernelError.of('EADDRNOTAVAIL', operation, step.interface, 'the address is not on that vhid');
        return [{ kind: 'unbind', step: i, operation, iface: step.interface, vhid: step.vhid, cidr: held.cidr }];
      }
      case 'carp.set':
        return [{ kind: 'carp', step: i, globals: step.globals }];
      case 'maintenance.set':
        return [{ kind: 'maintenance', step: i, on: step.enabled }];
      case 'pfsync.set':
        return [{ kind: 'pfsync', step: i, settings: step.settings }];
    }
  }

  /** Every address carpd bound to the vhid, then (when it had none) the placeholder that ends it (vhids.ts). */
  private destroyOps(m: Model, iface: string, vhid: number, step: number, operation: string): Op[] {
    const addresses = m.vhids.get(keyOf(iface, vhid))?.addresses ?? [];
    if (addresses.length === 0) return [{ kind: 'destroy', step, operation, iface, vhid }];
    return addresses.map((cidr): Op => ({ kind: 'unbind', step, operation, iface, vhid, cidr }));
  }

  // ---- record -----------------------------------------------------------------------------

  /** The ledger for the touched vhids as `m` has them, written once when that changes it. */
  private async record(m: Model, touched: Set<string>, newIfaces: string[], operation: string): Promise<void> {
    const l = this.d.ledger;
    let changed = false;
    for (const iface of newIfaces) changed = l.addInterface(iface) || changed;
    for (const key of touched) {
      const want = m.vhids.get(key)?.addresses ?? [];
      const has = l.addresses(ifaceOf(key), vhidOf(key));
      if (want.length === has.length && want.every((a, i) => a === has[i])) continue;
      l.setAddresses(ifaceOf(key), vhidOf(key), want);
      changed = true;
    }
    // Appended without an fsync: a crash of carpd keeps the line, one of the machine the kernel's side with it (ledger.ts).
    if (changed) await l.save(operation, { fsync: false });
  }

  // ---- write ------------------------------------------------------------------------------

  /**
   * Runs the operations in order, the model following each one that succeeded. Without
   * `bestEffort` it stops at the first failure and answers it; with it (the undo) it goes on
   * and collects every failure.
   */
  private async execute(m: Model, ops: Op[], bestEffort: boolean, errors: KernelError[] = []): Promise<Failure | undefined> {
    const done = new Array<boolean>(ops.length).fill(false);
    for (let i = 0; i < ops.length; i++) {
      if (done[i]) continue;
      const op = ops[i];
      if (op.kind === 'set' && this.t.kind === 'netlink') {
        const group = this.setGroup(ops, i, done);
        const results = await (this.t as NetlinkCarp).setMany(group.map((g) => g.set));
        let failure: Failure | undefined;
        // The kernel goes on after a failed message: every acknowledged SET took effect.
        group.forEach((g, j) => {
          const e = results[j];
          if (!e) return this.succeeded(m, g);
          const error = this.named(e, g.operation, g.set.iface);
          errors.push(error);
          failure ??= { step: g.step, error };
        });
        if (failure && !bestEffort) return failure;
        continue;
      }
      done[i] = true;
      try {
        // Address ioctls and sysctls are synchronous calls: only a SET without netlink and maintenance are awaited.
        const pending = this.one(op);
        if (pending) await pending;
        this.succeeded(m, op);
      } catch (e) {
        const error = e instanceof KernelError ? e : KernelError.of('EIO', 'kernel operation', undefined, e instanceof Error ? e.message : String(e));
        errors.push(error);
        if (!bestEffort) return { step: op.step, error };
      }
    }
    return undefined;
  }

  /**
   * The SET at `start` and every later SET that may go out with it: SETs move ahead of address
   * operations on other vhids (which do not depend on them), never past an operation on their
   * own vhid or a global one (maintenance comes first so that no new vhid advertises undemoted).
   */
  private setGroup(ops: Op[], start: number, done: boolean[]): Extract<Op, { kind: 'set' }>[] {
    const group: Extract<Op, { kind: 'set' }>[] = [];
    const passed = new Set<string>();
    for (let j = start; j < ops.length; j++) {
      if (done[j]) continue;
      const op = ops[j];
      if (op.kind === 'carp' || op.kind === 'maintenance' || op.kind === 'pfsync') break;
      if (op.kind === 'set' && !passed.has(keyOf(op.set.iface, op.set.vhid))) {
        group.push(op);
        done[j] = true;
        continue;
      }
      passed.add(op.kind === 'set' ? keyOf(op.set.iface, op.set.vhid) : keyOf(op.iface, op.vhid));
    }
    return group;
  }

  private succeeded(m: Model, op: Op): void {
    if (op.kind === 'set') {
      const key = keyOf(op.set.iface, op.set.vhid);
      if (!m.vhids.has(key)) this.created.add(key);
    } else if (op.kind === 'bind') {
      const key = keyOf(op.iface, op.vhid);
      if (!this.bound.has(key)) this.bound.set(key, op.cidr);
    }
    applyOp(m, op);
  }

  /** A failure named as the single-step method names it: the operation, then the call inside it. */
  private named(e: unknown, operation: string, iface: string | undefined, hints = HINTS): KernelError {
    try {
      return fail(e, operation, iface, hints);
    } catch (named) {
      return named instanceof KernelError ? named : KernelError.of('EIO', operation, iface, String(named));
    }
  }

  /** One operation; a promise only for those that wait (a SET through ioctls, maintenance). */
  private one(op: Op): Promise<void> | undefined {
    const { binder, settings } = this.d;
    switch (op.kind) {
      case 'set': {
        const named = (e: unknown) => this.named(e, op.operation, op.set.iface);
        let setting: Promise<void>;
        try {
          setting = this.t.set(op.set);
        } catch (e) {
          throw named(e);
        }
        return setting.catch((e: unknown) => {
          throw named(e);
        });
      }
      case 'bind': {
        const c = parseCidr(op.cidr)!;
        try {
          binder.kernelAdd(op.iface, op.vhid, c);
        } catch (e) {
          // in6_control keeps a new IPv6 address whose carp attach failed, without a vhid: remove it.
          if (c.family === 6) {
            try {
              binder.kernelDel(op.iface, c);
            } catch { /* it was not added */ }
          }
          throw this.named(e, op.operation, op.iface, ADD_HINTS);
        }
        return;
      }
      case 'unbind':
        try {
          binder.kernelDel(op.iface, parseCidr(op.cidr)!);
        } catch (e) {
          // An address the kernel no longer has counts as removed (addresses.ts).
          if (isErrno(e, 'EADDRNOTAVAIL')) return;
          throw this.named(e, op.operation, op.iface, { ...HINTS, EADDRNOTAVAIL: 'the address is not on the interface' });
        }
        return;
      case 'destroy': {
        // The same placeholder for a vhid every time: one left behind by a crash is reused (vhids.ts).
        let host = op.vhid;
        for (let tries = 0; this.d.ledger.holder(op.iface, `${PLACEHOLDER_NET}${host}/32`); tries++) {
          if (tries >= 254) throw KernelError.of('EBUSY', op.operation, op.iface, `every placeholder address in ${PLACEHOLDER_NET}0/24 is bound on ${op.iface}`);
          host = (host % 254) + 1;
        }
        const placeholder: Cidr = { family: 4, address: `${PLACEHOLDER_NET}${host}`, prefix: 32 };
        try {
          binder.kernelAdd(op.iface, op.vhid, placeholder);
          binder.kernelDel(op.iface, placeholder);
        } catch (e) {
          throw this.named(e, `${op.operation}: bind and remove the placeholder ${placeholder.address}/32`, op.iface);
        }
        return;
      }
      case 'carp':
        settings.setCarpGlobals(op.globals);
        return;
      case 'maintenance':
        return settings.setMaintenance(op.on);
      case 'pfsync':
        settings.setPfsync(op.settings);
        return;
    }
  }

  // ---- undo -------------------------------------------------------------------------------

  /** Plans the touched vhids back to `before` from what `live` says was applied, and the globals; runs it to the end. */
  private async restore(before: Model, live: Model, touched: Set<string>): Promise<KernelError[]> {
    const snap = (m: Model): Snapshot => {
      const vhids: SnapshotVhid[] = [];
      for (const [key, v] of m.vhids) if (touched.has(key)) vhids.push({ interface: ifaceOf(key), vhid: vhidOf(key), params: paramsOf(v.kv), addresses: [...v.addresses] });
      // The globals are restored below, not by the planner.
      return { vhids, carp: { allow: true, preempt: true }, maintenance: false, pfsync: { maxupd: 0, defer: false, version: 0 } };
    };
    const steps: BackendStep[] = plan(snap(before), snap(live));
    if (before.carp && live.carp && (before.carp.allow !== live.carp.allow || before.carp.preempt !== live.carp.preempt)) steps.push({ op: 'carp.set', globals: before.carp });
    if (before.maintenance !== undefined && before.maintenance !== live.maintenance) steps.push({ op: 'maintenance.set', enabled: before.maintenance });
    if (before.pfsync && JSON.stringify(before.pfsync) !== JSON.stringify(live.pfsync)) steps.push({ op: 'pfsync.set', settings: before.pfsync });
    const errors: KernelError[] = [];
    const sim = cloneModel(live);
    const ops: Op[] = [];
    for (const [i, step] of steps.entries()) {
      try {
        for (const op of this.opsFor(sim, step, i)) {
          applyOp(sim, op);
          ops.push(op);
        }
      } catch (e) {
        errors.push(e instanceof KernelError ? e : KernelError.of('EIO', `undo ${step.op}`, undefined, String(e)));
      }
    }
    await this.execute(live, ops, true, errors);
    if (errors.length > 0) this.d.logger.error({ event: 'freebsd.batch.undo', errors: errors.map((e) => e.message) }, `a failed batch could not be taken back entirely: ${errors.map((e) => e.message).join('; ')}`);
    return errors;
  }

  // ---- read again -------------------------------------------------------------------------

  /** One dump per interface the batch wrote to (every interface after carp.set), for the states carpd reports and why. */
  private async refreshStates(ops: Op[], live: Model): Promise<void> {
    const { tracker, ledger } = this.d;
    for (const key of this.created) {
      if (!live.vhids.has(key)) continue;
      // A vhid created again (a key cleared) starts a new history, as one created for the first time.
      tracker.forget(ifaceOf(key), vhidOf(key));
      tracker.observe(ifaceOf(key), vhidOf(key), 'INIT', () => CREATED, CREATED);
    }
    const carp = ops.find((op): op is Extract<Op, { kind: 'carp' }> => op.kind === 'carp');
    if (!this.hasTransport) {
      if (!carp || ledger.interfaces().length === 0) return;
      try {
        this.t = await this.d.carp.get('read the vhids back');
        this.hasTransport = true;
      } catch (e) {
        this.d.logger.warn({ event: 'freebsd.refresh', err: (e as Error).message }, `cannot read the vhids back after setting net.inet.carp: ${(e as Error).message}`);
        return;
      }
    }
    let ifaces: string[];
    if (carp) ifaces = ledger.interfaces();
    else {
      const written = new Set<string>();
      for (const op of ops) {
        if ('iface' in op) written.add(op.iface);
        else if (op.kind === 'set') written.add(op.set.iface);
      }
      ifaces = [...written];
    }
    // The vhids the batch knew of, by interface: those a dump no longer shows are forgotten.
    const byIface = new Map<string, string[]>();
    const known = (key: string) => {
      const iface = ifaceOf(key);
      const list = byIface.get(iface);
      if (list) list.push(key);
      else byIface.set(iface, [key]);
    };
    for (const key of live.vhids.keys()) known(key);
    for (const key of this.created) known(key);
    for (const iface of ifaces) {
      let found: KernelVhid[];
      try {
        found = await this.t.list(iface);
      } catch (e) {
        this.d.logger.warn({ event: 'freebsd.refresh', interface: iface, err: (e as Error).message }, `${iface}: cannot read its vhids back: ${(e as Error).message}`);
        continue;
      }
      const present = new Set(found.map((k) => k.vhid));
      for (const key of byIface.get(iface) ?? []) if (!present.has(vhidOf(key))) tracker.forget(iface, vhidOf(key));
      for (const k of found) {
        const address = this.bound.get(keyOf(iface, k.vhid));
        tracker.observe(iface, k.vhid, k.state, (s: CarpState) => stateReason(s, carp?.globals.allow, address), FIRST_SEEN);
      }
    }
  }
}

/** Why a vhid is in the state a dump after the batch shows: the carp.allow the batch set, else the first address it bound. */
function stateReason(s: CarpState, allow: boolean | undefined, address: string | undefined): string {
  if (allow !== undefined) return `net.inet.carp.allow set to ${allow ? 1 : 0}; kernel reports ${s}`;
  return address ? `address ${address} bound; kernel reports ${s}` : `kernel reports ${s} after the vhid's parameters were set`;
}
