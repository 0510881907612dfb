/**
 * A batch (KernelBackend.apply) made of the single-step methods, for the backends whose steps
 * cost nothing to make one by one (memory, the userspace engines, wrappers around a backend):
 * the model of the state a batch changes, the steps that take a step back, and the batch
 * itself. The freebsd backend has a batch of its own (freebsd/batch.ts), which writes to the
 * kernel in bulk and plans its undo with kernel/plan.ts.
 *
 * Undo is planned step by step while the batch runs: before a step, the model (the state as it
 * was read once at the start, then moved on by every applied step) says what it replaces, and
 * that becomes its inverse. The inverses run in reverse order. Each inverse is an ordinary step,
 * so a backend takes its own batch back with the machinery that made it.
 */
import { parseCidr } from '../wire/address.js';
import { BatchError, type BackendStep, type CarpGlobals, type KernelBackend, type PfsyncSettings, type StateChange, type VhidParams } from './backend.js';
import { KernelError } from './errno.js';

export interface ModelVhid {
  params: VhidParams;
  /** Canonical CIDRs in the order they were bound. */
  addresses: string[];
}

/** The part of the backend a batch touches, as it is before (and then during) the batch. */
export interface BatchModel {
  vhids: Map<string, ModelVhid>;
  /**
   * Who holds each address (by interface and address without prefix length): the vhid's key and
   * the CIDR as it holds it, kept in step with `vhids`. A batch asks it for every address it
   * adds, so that a batch of n addresses costs n look-ups, not n scans of every address.
   */
  holders: Map<string, { key: string; cidr: string }>;
  /** Read only when the batch sets them. */
  carp?: CarpGlobals;
  maintenance?: boolean;
  pfsync?: PfsyncSettings;
}

export const stepKey = (iface: string, vhid: number) => `${iface}/${vhid}`;
const vhidOfKey = (key: string) => Number(key.slice(key.lastIndexOf('/') + 1));
const ifaceOfKey = (key: string) => key.slice(0, key.lastIndexOf('/'));
const addrOf = (cidr: string) => parseCidr(cidr)?.address ?? cidr;
/** The key of `holders`: an address (without prefix length) on an interface. */
const holderKey = (iface: string, address: string) => `${iface} ${address}`;

/** The vhid of `iface` holding `cidr` (compared without prefix length), with the form it is held in. */
export function holderOf(model: BatchModel, iface: string, cidr: string): { key: string; cidr: string } | undefined {
  return model.holders.get(holderKey(iface, addrOf(cidr)));
}

/** A model of `vhids`, with the index of who holds each address. */
export function modelOf(vhids: Map<string, ModelVhid>): BatchModel {
  const holders = new Map<string, { key: string; cidr: string }>();
  for (const [key, v] of vhids) {
    const iface = ifaceOfKey(key);
    for (const cidr of v.addresses) {
      const k = holderKey(iface, addrOf(cidr));
      // Were an address held twice, the first vhid holding it is the one a scan would find.
      if (!holders.has(k)) holders.set(k, { key, cidr });
    }
  }
  return { vhids, holders };
}

/** `key` gives up `cidr`. */
function release(model: BatchModel, key: string, cidr: string): void {
  const k = holderKey(ifaceOfKey(key), addrOf(cidr));
  if (model.holders.get(k)?.key === key) model.holders.delete(k);
}

/** `key` gives up every address it holds, and goes. */
function removeVhid(model: BatchModel, key: string, v: ModelVhid): void {
  for (const cidr of v.addresses) release(model, key, cidr);
  model.vhids.delete(key);
}

/** The vhid set back as it was, then its addresses: what a vhid that went away needs to return. */
function recreate(key: string, v: ModelVhid): BackendStep[] {
  const iface = ifaceOfKey(key);
  const vhid = vhidOfKey(key);
  return [{ op: 'vhid.set', interface: iface, vhid, params: v.params }, ...v.addresses.map((address) => ({ op: 'address.add' as const, interface: iface, vhid, address }))];
}

/**
 * The steps that take `step` back from the state `model` holds before it, and the model moved on
 * to the state after it (as the contract's methods define each step). A step the model says
 * will fail (a vhid to remove that is not there) has no inverse and leaves the model alone.
 */
export function inverseOf(model: BatchModel, step: BackendStep): BackendStep[] {
  switch (step.op) {
    case 'vhid.set': {
      const key = stepKey(step.interface, step.vhid);
      const cur = model.vhids.get(key);
      if (cur) {
        const inv: BackendStep[] = [{ op: 'vhid.set', interface: step.interface, vhid: step.vhid, params: cur.params }];
        cur.params = step.params;
        return inv;
      }
      model.vhids.set(key, { params: step.params, addresses: [] });
      return [{ op: 'vhid.remove', interface: step.interface, vhid: step.vhid }];
    }
    case 'vhid.remove': {
      const key = stepKey(step.interface, step.vhid);
      const cur = model.vhids.get(key);
      if (!cur) return [];
      removeVhid(model, key, cur);
      return recreate(key, cur);
    }
    case 'address.add': {
      const key = stepKey(step.interface, step.vhid);
      const target = model.vhids.get(key);
      const c = parseCidr(step.address);
      if (!target || !c) return [];
      const heldKey = holderKey(step.interface, c.address);
      const held = model.holders.get(heldKey);
      let inv: BackendStep[];
      if (held?.key === key) {
        inv = held.cidr === step.address ? [] : [{ op: 'address.add', interface: step.interface, vhid: step.vhid, address: held.cidr }];
        target.addresses = target.addresses.filter((x) => x !== held.cidr);
      } else if (held) {
        // The address moves: back to its old vhid, which comes back first if it lost its last one.
        const old = model.vhids.get(held.key)!;
        const back: BackendStep = { op: 'address.add', interface: step.interface, vhid: vhidOfKey(held.key), address: held.cidr };
        inv = old.addresses.length === 1 ? [{ op: 'vhid.set', interface: step.interface, vhid: vhidOfKey(held.key), params: old.params }, back] : [back];
        old.addresses = old.addresses.filter((x) => x !== held.cidr);
        if (old.addresses.length === 0) model.vhids.delete(held.key);
      } else {
        inv = [{ op: 'address.remove', interface: step.interface, vhid: step.vhid, address: step.address }];
      }
      target.addresses.push(step.address);
      model.holders.set(heldKey, { key, cidr: step.address });
      return inv;
    }
    case 'address.remove': {
      const key = stepKey(step.interface, step.vhid);
      const cur = model.vhids.get(key);
      const held = holderOf(model, step.interface, step.address);
      if (!cur || held?.key !== key) return [];
      cur.addresses = cur.addresses.filter((x) => x !== held.cidr);
      release(model, key, held.cidr);
      const back: BackendStep = { op: 'address.add', interface: step.interface, vhid: step.vhid, address: held.cidr };
      if (cur.addresses.length > 0) return [back];
      // carp(4): the vhid went with its last address.
      model.vhids.delete(key);
      return [{ op: 'vhid.set', interface: step.interface, vhid: step.vhid, params: cur.params }, back];
    }
    case 'carp.set': {
      const old = model.carp;
      model.carp = { ...step.globals };
      return old ? [{ op: 'carp.set', globals: old }] : [];
    }
    case 'maintenance.set': {
      const old = model.maintenance;
      model.maintenance = step.enabled;
      return old === undefined ? [] : [{ op: 'maintenance.set', enabled: old }];
    }
    case 'pfsync.set': {
      const old = model.pfsync;
      model.pfsync = { ...step.settings };
      return old ? [{ op: 'pfsync.set', settings: old }] : [];
    }
  }
}

/** The single-step methods a stepwise batch is made of. */
export type StepTarget = Pick<KernelBackend, 'listVhids' | 'setVhid' | 'removeVhid' | 'addAddress' | 'removeAddress' | 'getCarpGlobals' | 'setCarpGlobals' | 'getMaintenance' | 'setMaintenance' | 'getPfsync' | 'setPfsync'>;

export function runStep(b: StepTarget, s: BackendStep): Promise<void> {
  switch (s.op) {
    case 'vhid.set':
      return b.setVhid(s.interface, s.vhid, s.params);
    case 'vhid.remove':
      return b.removeVhid(s.interface, s.vhid);
    case 'address.add':
      return b.addAddress(s.interface, s.vhid, s.address);
    case 'address.remove':
      return b.removeAddress(s.interface, s.vhid, s.address);
    case 'carp.set':
      return b.setCarpGlobals(s.globals);
    case 'maintenance.set':
      return b.setMaintenance(s.enabled);
    case 'pfsync.set':
      return b.setPfsync(s.settings);
  }
}

/** The model of what `steps` touch, read once: the vhids they name or whose addresses they move, each global only when a step sets it. */
export async function readModel(b: StepTarget, steps: readonly BackendStep[]): Promise<BatchModel> {
  const has = (op: BackendStep['op'][]) => steps.some((s) => op.includes(s.op));
  const vhids = new Map<string, ModelVhid>();
  const named: { interface: string; vhid: number }[] = [];
  const addresses: { interface: string; address: string }[] = [];
  for (const s of steps) {
    if (s.op === 'vhid.set' || s.op === 'vhid.remove' || s.op === 'address.add' || s.op === 'address.remove') named.push({ interface: s.interface, vhid: s.vhid });
    if (s.op === 'address.add' || s.op === 'address.remove') addresses.push({ interface: s.interface, address: s.address });
  }
  if (named.length > 0) {
    // The vhids the steps name and those holding the addresses they add or remove: an address
    // moved from another vhid goes back there. A backend may answer more; the model holds it all.
    for (const v of await b.listVhids({ vhids: named, addresses })) {
      const params: VhidParams = { advbaseSec: v.advbaseSec, advskew: v.advskew, key: v.key, peer: v.peer, peer6: v.peer6 };
      if (v.protocol === 'vrrpv3') Object.assign(params, { protocol: v.protocol, vrrpPriority: v.vrrpPriority, vrrpIntervalCs: v.vrrpIntervalCs });
      vhids.set(stepKey(v.interface, v.vhid), { params, addresses: [...v.addresses] });
    }
  }
  const model = modelOf(vhids);
  if (has(['carp.set'])) {
    const g = await b.getCarpGlobals();
    model.carp = { allow: g.allow, preempt: g.preempt };
  }
  if (has(['maintenance.set'])) model.maintenance = await b.getMaintenance();
  if (has(['pfsync.set'])) {
    const { running: _r, bulkUpdateDone: _d, ...settings } = await b.getPfsync();
    model.pfsync = settings;
  }
  return model;
}

/**
 * Undo steps that find their work already done are not failures: a vhid to remove that went
 * with its last address, an address to remove that went with its vhid.
 */
export function alreadyUndone(s: BackendStep, e: unknown): boolean {
  return e instanceof KernelError && ((s.op === 'vhid.remove' && e.errnoName === 'ENOENT') || (s.op === 'address.remove' && e.errnoName === 'EADDRNOTAVAIL'));
}

/** Runs undo steps to the end, whatever fails; answers what failed. */
export async function runUndo(b: StepTarget, undo: readonly BackendStep[]): Promise<KernelError[]> {
  const errors: KernelError[] = [];
  for (const s of undo) {
    try {
      await runStep(b, s);
    } catch (e) {
      if (alreadyUndone(s, e)) continue;
      errors.push(e instanceof KernelError ? e : new KernelError(`undo ${s.op}`, 5, undefined, e instanceof Error ? e.message : String(e)));
    }
  }
  return errors;
}

/**
 * A batch made of the single-step methods, taken back on the first failure: for backends whose
 * steps are cheap one by one. The model is read once, before the first step.
 */
export async function applyStepwise(b: StepTarget, steps: readonly BackendStep[]): Promise<void> {
  if (steps.length === 0) return;
  const model = await readModel(b, steps);
  const inverses: BackendStep[][] = [];
  for (const [index, step] of steps.entries()) {
    // Planned before the step runs; a failed step is not taken back (the contract's steps
    // change nothing when they fail), and the model is not used after a failure.
    const inverse = inverseOf(model, step);
    try {
      await runStep(b, step);
    } catch (e) {
      const undoErrors = await runUndo(b, inverses.reverse().flat());
      if (e instanceof KernelError) throw new BatchError(index, step, e, undoErrors);
      throw e;
    }
    inverses.push(inverse);
  }
}

/**
 * State changes made during a batch, told to the listeners once the batch has ended (so a batch
 * of many vhids is one evaluation for them); outside a batch each is told at once. A batch
 * started inside a batch (an undo) joins the outer one.
 */
export class HeldStateChanges {
  private held?: StateChange[];

  constructor(private readonly tell: (c: StateChange) => void) {}

  report(c: StateChange): void {
    if (this.held) this.held.push(c);
    else this.tell(c);
  }

  async during(batch: () => Promise<void>): Promise<void> {
    if (this.held) return batch();
    this.held = [];
    try {
      await batch();
    } finally {
      const held = this.held;
      this.held = undefined;
      for (const c of held) this.tell(c);
    }
  }
}
