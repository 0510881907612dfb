/**
 * The model a freebsd batch plans against (batch.ts): the vhids the batch reads, as the kernel
 * has them, the addresses the ledger says carpd bound, and an index of who holds each address;
 * and what a kernel operation that succeeded does to it. Pure: no kernel call here.
 */
import type { BackendStep, CarpGlobals, PfsyncSettings, VhidParams } from '../backend.js';
import type { CarpSet, KernelVhid } from './carp.js';
import { carpKeyRaw, carpKeyText } from './layout-carp.js';

export interface ModelVhid {
  /** The vhid as the kernel has it (the netlink attribute set; the key as raw bytes). */
  kv: KernelVhid;
  /** What carpd bound to it (the ledger). */
  addresses: string[];
}

export interface Model {
  vhids: Map<string, ModelVhid>;
  /** `iface|address` (without prefix) -> the key of the vhid holding it: holder() without a scan. */
  held: Map<string, string>;
  /** Read at the start only when the batch sets them. */
  carp?: CarpGlobals;
  maintenance?: boolean;
  pfsync?: PfsyncSettings;
}

/** One kernel operation, with the step it belongs to and the name its failure carries. */
export type Op =
  | { kind: 'set'; step: number; operation: string; set: CarpSet }
  | { kind: 'bind'; step: number; operation: string; iface: string; vhid: number; cidr: string }
  | { kind: 'unbind'; step: number; operation: string; iface: string; vhid: number; cidr: string }
  | { kind: 'destroy'; step: number; operation: string; iface: string; vhid: number }
  | { kind: 'carp'; step: number; globals: CarpGlobals }
  | { kind: 'maintenance'; step: number; on: boolean }
  | { kind: 'pfsync'; step: number; settings: PfsyncSettings };

export const keyOf = (iface: string, vhid: number) => `${iface}/${vhid}`;
export const ifaceOf = (key: string) => key.slice(0, key.lastIndexOf('/'));
export const vhidOf = (key: string) => Number(key.slice(key.lastIndexOf('/') + 1));
/** The address of a canonical CIDR (the model holds only canonical ones: formatCidr). */
export const addrOf = (cidr: string) => cidr.slice(0, cidr.lastIndexOf('/'));
export const heldKey = (iface: string, cidr: string) => `${iface}|${addrOf(cidr)}`;

export function cloneModel(m: Model): Model {
  const vhids = new Map<string, ModelVhid>();
  for (const [k, v] of m.vhids) vhids.set(k, { kv: { ...v.kv }, addresses: [...v.addresses] });
  return { ...m, vhids, held: new Map(m.held) };
}

/** Records the vhid's addresses in the index. */
export function index(m: Model, key: string, addresses: readonly string[]): void {
  if (addresses.length === 0) return;
  const iface = ifaceOf(key);
  for (const a of addresses) m.held.set(heldKey(iface, a), key);
}

export function unindex(m: Model, key: string, addresses: readonly string[]): void {
  if (addresses.length === 0) return;
  const iface = ifaceOf(key);
  for (const a of addresses) {
    const hk = heldKey(iface, a);
    if (m.held.get(hk) === key) m.held.delete(hk);
  }
}

export function holder(m: Model, iface: string, cidr: string): { key: string; cidr: string } | undefined {
  const key = m.held.get(heldKey(iface, cidr));
  const found = key === undefined ? undefined : m.vhids.get(key)?.addresses.find((x) => addrOf(x) === addrOf(cidr));
  return key === undefined || found === undefined ? undefined : { key, cidr: found };
}

/** What an operation that succeeded did, in the model. */
export function applyOp(m: Model, op: Op): void {
  switch (op.kind) {
    case 'set': {
      const { iface, vhid } = op.set;
      const key = keyOf(iface, vhid);
      const cur = m.vhids.get(key);
      const s = op.set;
      // Built by assignment, not spreads (a batch applies hundreds): the same fields, the same order.
      const kv: KernelVhid = { vhid, state: cur?.kv.state ?? 'INIT', advbase: s.advbase, advskew: s.advskew };
      // An empty KEY keeps the key (T10).
      if (s.key !== undefined) kv.key = carpKeyRaw(s.key);
      else if (cur?.kv.key) kv.key = cur.kv.key;
      if (s.peer) kv.peer = s.peer;
      if (s.peer6) kv.peer6 = s.peer6;
      if (s.version !== undefined) kv.version = s.version;
      if (s.vrrpPriority !== undefined) kv.vrrpPriority = s.vrrpPriority;
      if (s.vrrpAdvInterCs !== undefined) kv.vrrpAdvInterCs = s.vrrpAdvInterCs;
      if (cur) cur.kv = kv;
      else m.vhids.set(key, { kv, addresses: [] });
      return;
    }
    case 'bind': {
      const key = keyOf(op.iface, op.vhid);
      const v = m.vhids.get(key);
      if (!v) return;
      const a = addrOf(op.cidr);
      v.addresses = v.addresses.some((x) => addrOf(x) === a) ? v.addresses.filter((x) => addrOf(x) !== a).concat(op.cidr) : [...v.addresses, op.cidr];
      m.held.set(heldKey(op.iface, op.cidr), key);
      return;
    }
    case 'unbind': {
      const key = keyOf(op.iface, op.vhid);
      const v = m.vhids.get(key);
      if (!v) return;
      v.addresses = v.addresses.filter((x) => addrOf(x) !== addrOf(op.cidr));
      unindex(m, key, [op.cidr]);
      // carp(4): the vhid goes away with its last address.
      if (v.addresses.length === 0) m.vhids.delete(key);
      return;
    }
    case 'destroy': {
      const key = keyOf(op.iface, op.vhid);
      unindex(m, key, m.vhids.get(key)?.addresses ?? []);
      m.vhids.delete(key);
      return;
    }
    case 'carp':
      m.carp = { ...op.globals };
      return;
    case 'maintenance':
      m.maintenance = op.on;
      return;
    case 'pfsync':
      m.pfsync = { ...op.settings };
      return;
  }
}

/** The operation a step's failure is named after, as its single-step method names it. */
export function operationOf(s: Extract<BackendStep, { interface: string }>): string {
  switch (s.op) {
    case 'vhid.set':
      return `set vhid ${s.vhid}`;
    case 'vhid.remove':
      return `remove vhid ${s.vhid}`;
    case 'address.add':
      return `add address ${s.address} to vhid ${s.vhid}`;
    case 'address.remove':
      return `remove address ${s.address} from vhid ${s.vhid}`;
  }
}

export const paramsOf = (kv: KernelVhid): VhidParams => ({ advbaseSec: kv.advbase, advskew: kv.advskew, key: kv.key ? carpKeyText(kv.key) : undefined, peer: kv.peer, peer6: kv.peer6 });
