/**
 * What the FreeBSD backend remembers between runs, in its state directory:
 *
 *  freebsd-ledger.json     the interfaces carpd bound vhids on, and the addresses it bound to
 *                          each vhid. carp(4) has no request that lists a vhid's addresses
 *                          (SIOCGVH and the netlink GET carry parameters and state only), so this
 *                          is where listVhids takes addresses from; vhids themselves, their
 *                          parameters and states are always read from the kernel.
 *  freebsd-demotion.json   how much carpd itself added to net.inet.carp.demotion (maintenance,
 *                          and its named demotions such as splitbrain), and in which boot
 *                          (kern.boottime), because the sysctl is a shared delta (T9).
 *
 * Both files are replaced atomically (writeFileAtomic: temp file, fsync, rename) and are 0600.
 * A write that fails is a KernelError (EIO), like any other failed backend step.
 *
 * The ledger is written on every address change, with one fsync (the new file's, before the
 * rename) and without the fsync of the directory that makes the rename itself durable: what it
 * records does not outlive the machine. A crash of carpd loses nothing rename(2) has done; a
 * crash of the machine takes carp(4)'s vhids and addresses with it, so the old and the new
 * ledger both describe a kernel that is gone, and the first read after the restart prunes what
 * the kernel no longer has (tracker.ts readAll). The file fsync stays, so that the ledger is
 * never found empty or torn after a power loss, which would stop carpd at start. A change the
 * service commits is durable anyway: its commit fsyncs the state directory, which holds both.
 * The demotion record keeps the directory fsync; it is written only when carpd's demotion moves.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseCidr } from '../../wire/address.js';
import { writeFileAtomic } from '../../config/atomic.js';
import { KernelError } from '../errno.js';

export const LEDGER_FILE = 'freebsd-ledger.json';
export const DEMOTION_FILE = 'freebsd-demotion.json';

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file} is not readable JSON (${(e as Error).message}); move it away to start over`);
  }
}

async function writeJson(file: string, value: unknown, operation: string, opts: { syncDir: boolean }): Promise<void> {
  try {
    await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, opts);
  } catch (e) {
    throw KernelError.of('EIO', operation, undefined, `${file}: ${(e as Error).message}`);
  }
}

const addrOf = (cidr: string) => parseCidr(cidr)?.address ?? cidr;

interface LedgerFile {
  version: 1;
  interfaces: string[];
  /** "em0/7" -> canonical CIDRs in the order they were bound. */
  addresses: Record<string, string[]>;
}

/**
 * Interfaces and addresses carpd bound. In memory it is the authority the backend consults;
 * every change is written before the kernel is touched (see backend.ts, "Ledger order").
 */
export class AddressLedger {
  private readonly ifaces = new Set<string>();
  private readonly addrs = new Map<string, string[]>();

  private constructor(readonly file: string) {}

  static async open(stateDir: string): Promise<AddressLedger> {
    const l = new AddressLedger(path.join(stateDir, LEDGER_FILE));
    const raw = (await readJson(l.file)) as Partial<LedgerFile> | undefined;
    if (raw !== undefined) {
      if (raw.version !== 1 || !Array.isArray(raw.interfaces) || typeof raw.addresses !== 'object' || raw.addresses === null) {
        throw new Error(`${l.file} has an unknown layout; move it away to start over`);
      }
      for (const i of raw.interfaces) if (typeof i === 'string') l.ifaces.add(i);
      for (const [k, list] of Object.entries(raw.addresses)) {
        if (Array.isArray(list)) l.addrs.set(k, list.filter((a): a is string => typeof a === 'string' && parseCidr(a) !== undefined));
      }
    }
    return l;
  }

  interfaces(): string[] {
    return [...this.ifaces].sort();
  }

  hasInterface(iface: string): boolean {
    return this.ifaces.has(iface);
  }

  addInterface(iface: string): boolean {
    if (this.ifaces.has(iface)) return false;
    this.ifaces.add(iface);
    return true;
  }

  /** Forgets an interface that no longer exists, with everything bound on it. */
  dropInterface(iface: string): boolean {
    let changed = this.ifaces.delete(iface);
    for (const k of [...this.addrs.keys()]) if (k.slice(0, k.lastIndexOf('/')) === iface) changed = this.addrs.delete(k) || changed;
    return changed;
  }

  addresses(iface: string, vhid: number): string[] {
    return [...(this.addrs.get(`${iface}/${vhid}`) ?? [])];
  }

  /** The vhids of an interface that have addresses in the ledger. */
  vhidsWithAddresses(iface: string): number[] {
    const out: number[] = [];
    for (const [k, list] of this.addrs) if (list.length > 0 && k.slice(0, k.lastIndexOf('/')) === iface) out.push(Number(k.slice(k.lastIndexOf('/') + 1)));
    return out.sort((a, b) => a - b);
  }

  /** The vhid holding an address (compared without prefix length) on an interface. */
  holder(iface: string, cidr: string): { vhid: number; cidr: string } | undefined {
    const a = addrOf(cidr);
    for (const [k, list] of this.addrs) {
      if (k.slice(0, k.lastIndexOf('/')) !== iface) continue;
      const found = list.find((x) => addrOf(x) === a);
      if (found !== undefined) return { vhid: Number(k.slice(k.lastIndexOf('/') + 1)), cidr: found };
    }
    return undefined;
  }

  addAddress(iface: string, vhid: number, cidr: string): void {
    this.ifaces.add(iface);
    const k = `${iface}/${vhid}`;
    const list = (this.addrs.get(k) ?? []).filter((x) => addrOf(x) !== addrOf(cidr));
    list.push(cidr);
    this.addrs.set(k, list);
  }

  removeAddress(iface: string, vhid: number, cidr: string): boolean {
    const k = `${iface}/${vhid}`;
    const list = this.addrs.get(k);
    if (!list) return false;
    const next = list.filter((x) => addrOf(x) !== addrOf(cidr));
    if (next.length === list.length) return false;
    if (next.length === 0) this.addrs.delete(k);
    else this.addrs.set(k, next);
    return true;
  }

  /** Records exactly these addresses for a vhid (none: forgets it), as a batch leaves it. */
  setAddresses(iface: string, vhid: number, cidrs: readonly string[]): void {
    if (cidrs.length === 0) {
      this.addrs.delete(`${iface}/${vhid}`);
      return;
    }
    this.ifaces.add(iface);
    this.addrs.set(`${iface}/${vhid}`, [...cidrs]);
  }

  /** Forgets a vhid (the kernel no longer has it, so neither has it any address). */
  dropVhid(iface: string, vhid: number): boolean {
    return this.addrs.delete(`${iface}/${vhid}`);
  }

  async save(operation: string): Promise<void> {
    const addresses: Record<string, string[]> = {};
    for (const [k, list] of [...this.addrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) if (list.length > 0) addresses[k] = list;
    await writeJson(this.file, { version: 1, interfaces: this.interfaces(), addresses } satisfies LedgerFile, operation, { syncDir: false });
  }
}

export interface BootTime {
  sec: number;
  usec: number;
}

export interface DemotionRecord {
  version: 1;
  boottime: BootTime;
  /** What carpd has added to net.inet.carp.demotion in this boot for maintenance: 0 or 240. */
  added: number;
  /** carpd's named demotions (setDemotion) added in this boot: name -> amount, only those other than 0 (`admin` may be negative). */
  named?: Record<string, number>;
  /**
   * Written before the sysctl, removed after it: lets the next start settle a crash in between.
   * enter/leave: maintenance; set: the named demotion `name` from `from` to `to`.
   */
  pending?: { op: 'enter' | 'leave'; demotionBefore: number; at: string } | { op: 'set'; name: string; from: number; to: number; demotionBefore: number; at: string };
}

const isAmount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
/** A named demotion's amount: negative too (the `admin` adjustment). */
const isNamedAmount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

export async function readDemotionRecord(stateDir: string): Promise<DemotionRecord | undefined> {
  const file = path.join(stateDir, DEMOTION_FILE);
  const raw = (await readJson(file)) as Partial<DemotionRecord> | undefined;
  if (raw === undefined) return undefined;
  const bt = raw.boottime as Partial<BootTime> | undefined;
  if (raw.version !== 1 || typeof raw.added !== 'number' || typeof bt?.sec !== 'number' || typeof bt.usec !== 'number') {
    throw new Error(`${file} has an unknown layout; check net.inet.carp.demotion by hand, then move the file away`);
  }
  const named: Record<string, number> = {};
  if (raw.named !== undefined) {
    if (typeof raw.named !== 'object' || raw.named === null || Array.isArray(raw.named) || !Object.values(raw.named).every(isNamedAmount)) {
      throw new Error(`${file} has an unknown layout; check net.inet.carp.demotion by hand, then move the file away`);
    }
    for (const [k, v] of Object.entries(raw.named)) if (v !== 0) named[k] = v;
  }
  const p = raw.pending as Record<string, unknown> | undefined;
  let pending: DemotionRecord['pending'];
  if (p && (p.op === 'enter' || p.op === 'leave') && typeof p.demotionBefore === 'number') pending = { op: p.op, demotionBefore: p.demotionBefore, at: String(p.at) };
  else if (p && p.op === 'set' && typeof p.name === 'string' && isNamedAmount(p.from) && isNamedAmount(p.to) && typeof p.demotionBefore === 'number') {
    pending = { op: 'set', name: p.name, from: p.from, to: p.to, demotionBefore: p.demotionBefore, at: String(p.at) };
  }
  return { version: 1, boottime: { sec: bt.sec, usec: bt.usec }, added: raw.added, ...(Object.keys(named).length ? { named } : {}), ...(pending ? { pending } : {}) };
}

export async function writeDemotionRecord(stateDir: string, r: DemotionRecord, operation: string): Promise<void> {
  await writeJson(path.join(stateDir, DEMOTION_FILE), r, operation, { syncDir: true });
}
