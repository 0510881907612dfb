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
 * The demotion record is replaced atomically (writeFileAtomic: temp file, fsync, rename, fsync of
 * the directory) and is 0600. It is written only when carpd's demotion moves.
 *
 * The ledger is written on every address change, so it is kept as a base and a log:
 *
 *  freebsd-ledger.json     the base: the whole ledger as of the last compaction, replaced
 *                          atomically (temp file, fsync, rename; 0600)
 *  freebsd-ledger.log      what changed since, one line per save (0600), framed as the config
 *                          journal's lines are (config/journal.ts: a CRC-32, a space, a JSON
 *                          object, LF): {"i":[every interface]} when the interfaces changed,
 *                          {"a":{"em0/7":[CIDRs]}} with the whole address list of every vhid the
 *                          save changed ([] when it has none left)
 *
 * A save appends its line with one write(2) before the caller goes on to the kernel: a crash of
 * carpd loses nothing written, so the ledger stays ahead of the kernel (backend.ts, "Ledger
 * order"). Every line holds whole values, so replaying the log on the base gives the ledger,
 * and replaying it again on a base that already has it changes nothing. A line that is torn
 * or fails its checksum is skipped: only a crash of the machine can leave one (or a failed
 * append, which is cut off or superseded by a compaction that writes the whole ledger), and such
 * a crash takes carp(4)'s vhids and addresses with it, so what the lost lines said is gone from
 * the kernel too; the first read after the restart prunes what the kernel no longer has
 * (tracker.ts readAll). For the same reason a batch's line (batch.ts) is not fsynced: its
 * durability buys nothing after a crash of the machine, and an fsync of its own would queue
 * the service's journal fsync behind it. A single-step save still waits for its fsync (which
 * covers every line before it), as does a compaction for the base's. A failed append falls back
 * to a compaction; a failed compaction is a KernelError (EIO), like any other failed backend
 * step.
 *
 * Opening replays the log on the base and compacts: the base is written again and the log
 * emptied (when the base cannot be written, the log is kept, cut after its last whole line).
 * The log is compacted too when it grows past COMPACT_BYTES, and when the ledger is closed.
 * Saves and compactions run one at a time, in the order they were asked for.
 */
import fsSync, { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseCidr } from '../../wire/address.js';
import { writeFileAtomic } from '../../config/atomic.js';
import { frameLine, readLines } from '../../config/journal.js';
import { KernelError } from '../errno.js';

export const LEDGER_FILE = 'freebsd-ledger.json';
export const LEDGER_LOG = 'freebsd-ledger.log';
/** The log is folded into the base once it is this long (a few thousand VIP changes). */
export const COMPACT_BYTES = 512 * 1024;
export const DEMOTION_FILE = 'freebsd-demotion.json';

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${file} is not readable JSON (${(e as Error).message}); move it away to start over`);
  }
}

async function writeJson(file: string, value: unknown, operation: string, opts: { syncDir: boolean; compact?: boolean }): Promise<void> {
  try {
    await writeFileAtomic(file, `${opts.compact ? JSON.stringify(value) : JSON.stringify(value, null, 2)}\n`, { syncDir: opts.syncDir });
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

const fsyncFd = (fd: number) => new Promise<void>((resolve, reject) => fsSync.fsync(fd, (e) => (e ? reject(e) : resolve())));

const isCidrList = (x: unknown): x is unknown[] => Array.isArray(x);
const cidrsOf = (list: unknown[]): string[] => list.filter((a): a is string => typeof a === 'string' && parseCidr(a) !== undefined);

/**
 * The ledger as the state directory holds it: the base, then every intact line of the log on
 * top (a torn or corrupt line is skipped). Reads only; AddressLedger.open also compacts.
 */
export async function readLedger(stateDir: string): Promise<{ interfaces: string[]; addresses: Record<string, string[]>; logLines: number; skipped: number; logEnd: number }> {
  const base = path.join(stateDir, LEDGER_FILE);
  const raw = (await readJson(base)) as Partial<LedgerFile> | undefined;
  const ifaces = new Set<string>();
  const addrs = new Map<string, string[]>();
  if (raw !== undefined) {
    if (raw.version !== 1 || !Array.isArray(raw.interfaces) || typeof raw.addresses !== 'object' || raw.addresses === null) {
      throw new Error(`${base} has an unknown layout; move it away to start over`);
    }
    for (const i of raw.interfaces) if (typeof i === 'string') ifaces.add(i);
    for (const [k, list] of Object.entries(raw.addresses)) if (isCidrList(list)) addrs.set(k, cidrsOf(list));
  }
  let logLines = 0;
  let skipped = 0;
  /** Where the last line that has its LF ends: what follows is a torn tail. */
  let logEnd = 0;
  let buf: Buffer | undefined;
  try {
    buf = await fs.readFile(path.join(stateDir, LEDGER_LOG));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${path.join(stateDir, LEDGER_LOG)} is not readable (${(e as Error).message}); move it away to start over`);
  }
  for (const line of buf ? readLines(buf) : []) {
    if (line.end > line.offset && buf![line.end - 1] === 0x0a) logEnd = line.end;
    if (!line.ok) {
      skipped++;
      continue;
    }
    logLines++;
    const { i, a } = line.value as { i?: unknown; a?: unknown };
    if (Array.isArray(i)) {
      ifaces.clear();
      for (const x of i) if (typeof x === 'string') ifaces.add(x);
    }
    if (typeof a === 'object' && a !== null && !Array.isArray(a)) {
      for (const [k, list] of Object.entries(a)) {
        const cidrs = isCidrList(list) ? cidrsOf(list) : [];
        if (cidrs.length > 0) addrs.set(k, cidrs);
        else addrs.delete(k);
      }
    }
  }
  const addresses: Record<string, string[]> = {};
  for (const [k, list] of [...addrs].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) if (list.length > 0) addresses[k] = list;
  return { interfaces: [...ifaces].sort(), addresses, logLines, skipped, logEnd };
}

/**
 * Interfaces and addresses carpd bound. In memory it is the authority the backend consults;
 * every change is written before the kernel is touched (see backend.ts, "Ledger order").
 */
export class AddressLedger {
  private readonly ifaces = new Set<string>();
  private readonly addrs = new Map<string, string[]>();
  /** What changed since the last save: the vhids ("em0/7") and whether the interfaces did. */
  private readonly dirty = new Set<string>();
  private ifacesDirty = false;
  /** The log, open for appending, and how long it is. */
  private fd?: number;
  private logSize = 0;
  /** The save or close in progress: the next one waits for it. */
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    readonly logFile: string,
  ) {}

  static async open(stateDir: string): Promise<AddressLedger> {
    const l = new AddressLedger(path.join(stateDir, LEDGER_FILE), path.join(stateDir, LEDGER_LOG));
    const r = await readLedger(stateDir);
    for (const i of r.interfaces) l.ifaces.add(i);
    for (const [k, list] of Object.entries(r.addresses)) l.addrs.set(k, list);
    // The log folded into the base (and emptied), or created empty.
    if (r.logLines + r.skipped === 0) l.openLog(0);
    else {
      try {
        await l.compact('compact the address ledger');
      } catch {
        // The base cannot be written (a full disk): appends go on after the log's last whole line.
        l.openLog(r.logEnd);
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
    this.ifacesDirty = true;
    return true;
  }

  /** Forgets an interface that no longer exists, with everything bound on it. */
  dropInterface(iface: string): boolean {
    let changed = this.ifaces.delete(iface);
    if (changed) this.ifacesDirty = true;
    for (const k of [...this.addrs.keys()]) {
      if (k.slice(0, k.lastIndexOf('/')) === iface && this.addrs.delete(k)) {
        this.dirty.add(k);
        changed = true;
      }
    }
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
    this.addInterface(iface);
    const k = `${iface}/${vhid}`;
    const list = (this.addrs.get(k) ?? []).filter((x) => addrOf(x) !== addrOf(cidr));
    list.push(cidr);
    this.addrs.set(k, list);
    this.dirty.add(k);
  }

  removeAddress(iface: string, vhid: number, cidr: string): boolean {
    const k = `${iface}/${vhid}`;
    const list = this.addrs.get(k);
    if (!list) return false;
    const next = list.filter((x) => addrOf(x) !== addrOf(cidr));
    if (next.length === list.length) return false;
    if (next.length === 0) this.addrs.delete(k);
    else this.addrs.set(k, next);
    this.dirty.add(k);
    return true;
  }

  /** Records exactly these addresses for a vhid (none: forgets it), as a batch leaves it. */
  setAddresses(iface: string, vhid: number, cidrs: readonly string[]): void {
    const k = `${iface}/${vhid}`;
    this.dirty.add(k);
    if (cidrs.length === 0) {
      this.addrs.delete(k);
      return;
    }
    this.addInterface(iface);
    this.addrs.set(k, [...cidrs]);
  }

  /** Forgets a vhid (the kernel no longer has it, so neither has it any address). */
  dropVhid(iface: string, vhid: number): boolean {
    const k = `${iface}/${vhid}`;
    if (!this.addrs.delete(k)) return false;
    this.dirty.add(k);
    return true;
  }

  /**
   * Writes what changed since the last save: one line appended to the log, on disk (in the page
   * cache) when this resolves, so a crash of carpd from then on keeps it; then, unless `fsync`
   * is false (a batch's line), its fsync.
   */
  save(operation: string, opts: { fsync?: boolean } = {}): Promise<void> {
    const run = this.tail.then(() => this.write(operation, opts));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async write(operation: string, opts: { fsync?: boolean }): Promise<void> {
    if (this.fd === undefined || this.logSize >= COMPACT_BYTES) {
      await this.compact(operation);
      return;
    }
    const a: Record<string, string[]> = {};
    for (const k of this.dirty) a[k] = this.addrs.get(k) ?? [];
    const line = frameLine(this.ifacesDirty ? { i: this.interfaces(), a } : { a });
    const fd = this.fd;
    try {
      let done = 0;
      while (done < line.length) done += fsSync.writeSync(fd, line, done, line.length - done, this.logSize + done);
    } catch {
      // Whatever part of the line got written is cut off, or superseded by the base.
      try {
        fsSync.ftruncateSync(fd, this.logSize);
      } catch { /* the compaction below empties the log */ }
      try {
        fsSync.closeSync(fd);
      } catch { /* opened again below */ }
      this.fd = undefined;
      await this.compact(operation);
      return;
    }
    this.logSize += line.length;
    this.dirty.clear();
    this.ifacesDirty = false;
    if (opts.fsync === false) return;
    try {
      await fsyncFd(fd);
    } catch (e) {
      throw KernelError.of('EIO', operation, undefined, `${this.logFile}: fsync: ${(e as Error).message}`);
    }
  }

  /** The whole ledger written as the base (atomically), then the log emptied. */
  private async compact(operation: string): Promise<void> {
    const addresses: Record<string, string[]> = {};
    for (const [k, list] of [...this.addrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) if (list.length > 0) addresses[k] = list;
    await writeJson(this.file, { version: 1, interfaces: this.interfaces(), addresses } satisfies LedgerFile, operation, { syncDir: false, compact: true });
    this.dirty.clear();
    this.ifacesDirty = false;
    // The base holds everything now; a log that cannot be emptied is replayed on it harmlessly, until the next compaction.
    try {
      this.openLog(0);
    } catch { /* saves compact until the log can be opened */ }
  }

  /** Opens the log for appending (created 0600), cut to `size` bytes (0: emptied). */
  private openLog(size: number): void {
    if (this.fd === undefined) {
      try {
        this.fd = fsSync.openSync(this.logFile, fsSync.constants.O_RDWR | fsSync.constants.O_CREAT, 0o600);
      } catch (e) {
        throw KernelError.of('EIO', 'open the address ledger', undefined, `${this.logFile}: ${(e as Error).message}`);
      }
      this.logSize = fsSync.fstatSync(this.fd).size;
    }
    if (this.logSize !== size) {
      fsSync.ftruncateSync(this.fd, size);
      this.logSize = size;
    }
  }

  /** Folds the log into the base and closes it; a failure leaves the log to the next start. */
  async close(): Promise<void> {
    await this.tail;
    if (this.fd === undefined) return;
    try {
      if (this.logSize > 0) await this.compact('close the address ledger');
    } catch { /* the next start replays the log */ }
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (fd !== undefined) fsSync.closeSync(fd);
    } catch { /* nothing to do */ }
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
