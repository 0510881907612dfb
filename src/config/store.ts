/**
 * The durable, revisioned desired state: a snapshot and a journal of the changes since.
 *
 *   <state-dir>/config.json                     the whole document at revision S (a snapshot)
 *   <state-dir>/revisions/<S>.journal           revisions S+1, S+2, … as JSON Patch records
 *   <state-dir>/revisions/<B>.snapshot.json     older snapshots and their journals, kept while
 *   <state-dir>/revisions/<B>.journal           one of the last 50 revisions needs them
 *
 * A commit appends one record (journal.ts: checksummed, one line) to the journal and fsyncs
 * it: one fsync, no file created, no rename. Commits staged while a write is under way share
 * the next one (group commit): one append and one fsync for all of them, each still its own
 * revision. A revision counts once its fsync has returned; if the write or the fsync fails,
 * the whole group is dropped and cut back out of the file.
 *
 * Every `snapshotEveryRevisions` revisions or `snapshotEveryBytes` of journal, and at a clean
 * close, the document is written whole again: config.json is linked to
 * revisions/<S>.snapshot.json (history), a journal for the new revision R is created, then
 * config.json is replaced by revision R (each write to a temporary file, fsynced, renamed,
 * directory fsynced). A crash at any point leaves a state dir that opens to the last durable
 * revision. After a clean stop config.json holds the whole configuration in force.
 *
 * Opening reads config.json, then the journal named after its revision and any journal that
 * continues it. A record cut short at the end of the journal (a crash during an append, never
 * acknowledged) is dropped with a warning; a bad record followed by good ones, a config.json
 * that does not parse or breaks a rule, or a config.json changed by hand while the journal
 * holds revisions on top of it stops carpd with the file, the place and the reason, and
 * nothing is overwritten. A state dir of the earlier format (config.json + revisions/<N>.json,
 * one whole document per revision) is converted on first open: its history becomes snapshots
 * and journals, and the old files are removed once the new ones are durable.
 *
 * Reading the state dir's files is in store-files.ts, the conversion of the earlier format in
 * store-upgrade.ts, the journal's line format in journal.ts.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readStoredState } from './document.js';
import type { DesiredState } from './model.js';
import { checkState } from './validate.js';
import { fsyncDir, removeStaleTemps, wasRenamed, writeFileAtomic } from './atomic.js';
import { errnoOf, storeWriteError, StoreWriteError, type StoreHealth } from './store-error.js';
import { diffStates, freezeState, type StateDiff } from './change.js';
import { encodeLine, nodeJournalIo, readLines, recordProblem, type JournalHandle, type JournalIo, type JournalRecord, type RevisionMeta } from './journal.js';
import { applyRecord, ConfigFileError, isEmptyJournal, journalName, KEEP_REVISIONS, listRevisions, metaOf, pad, parseStateText, plain, readChecked, readJournal, sha256, snapshotName, type Listing, type ParsedJournal, type StoreLog } from './store-files.js';
import { startJournal } from './store-upgrade.js';

export type { RevisionMeta } from './journal.js';
export { ConfigFileError, KEEP_REVISIONS, type StoreLog } from './store-files.js';
export { StoreWriteError, type StoreFault, type StoreHealth } from './store-error.js';

export const SNAPSHOT_EVERY_REVISIONS = 1000;
export const SNAPSHOT_EVERY_BYTES = 1024 * 1024;

export interface StoreOptions {
  /** A new snapshot once the journal holds this many revisions (default 1000). */
  snapshotEveryRevisions?: number;
  /** … or this many bytes (default 1 MiB). */
  snapshotEveryBytes?: number;
  /** The journal's file operations (default: node:fs). */
  io?: JournalIo;
  log?: StoreLog;
  /** The time a failed write is stamped with (default: the system clock). */
  now?: () => Date;
}

const silent: StoreLog = { warn: () => undefined, info: () => undefined };

interface Staged {
  state: DesiredState;
  meta: RevisionMeta;
  line: Buffer;
  resolve: () => void;
  reject: (e: Error) => void;
}

interface RecordPlace {
  file: string;
  offset: number;
  end: number;
}

export class ConfigStore {
  private durableState: DesiredState;
  private headState: DesiredState;
  /** Durable revisions' history entries, oldest first, at most KEEP_REVISIONS. */
  private history: RevisionMeta[];
  /** The revision config.json holds, and its SHA-256. */
  private snapshotRevision: number;
  /** Older snapshots: revision -> file. */
  private readonly snapshots = new Map<number, string>();
  /** SHA-256 of each snapshot, from the header of the journal that starts at it. */
  private readonly snapshotSums = new Map<number, string>();
  /** Where each record that history may need is. */
  private readonly records = new Map<number, RecordPlace>();
  /** Every journal file in use: base -> file. */
  private readonly journals = new Map<number, string>();
  private active: { base: number; file: string; handle: JournalHandle; records: number };
  private pending: Staged[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private broken?: StoreWriteError;
  private closed = false;
  private readonly io: JournalIo;
  private readonly log: StoreLog;
  private readonly everyRevisions: number;
  private readonly everyBytes: number;
  private readonly now: () => Date;
  private healthNow: StoreHealth = { writable: true };

  private constructor(
    readonly dir: string,
    init: { state: DesiredState; history: RevisionMeta[]; snapshotRevision: number; active: ConfigStore['active'] },
    opts: StoreOptions,
  ) {
    this.durableState = this.headState = freezeState(init.state);
    this.history = init.history;
    this.snapshotRevision = init.snapshotRevision;
    this.active = init.active;
    this.journals.set(init.active.base, init.active.file);
    this.io = opts.io ?? nodeJournalIo;
    this.log = opts.log ?? silent;
    this.everyRevisions = opts.snapshotEveryRevisions ?? SNAPSHOT_EVERY_REVISIONS;
    this.everyBytes = opts.snapshotEveryBytes ?? SNAPSHOT_EVERY_BYTES;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Whether the state directory took the last write: false from a failed write (a commit, a
   * snapshot, or the probe at open) until the next commit is durable. A new object on each change.
   */
  health(): StoreHealth {
    return this.healthNow;
  }

  private wrote(): void {
    if (!this.healthNow.writable) this.healthNow = { writable: true };
  }

  private failed(e: StoreWriteError): void {
    this.healthNow = { writable: false, lastError: { errno: e.errno, path: e.path, at: this.now(), message: e.message } };
  }

  /** At open: a state directory that cannot be written at all (read-only, no permission) shows so at once. */
  private async probe(): Promise<void> {
    for (const d of [this.dir, this.revisionsDir]) {
      try {
        await fs.access(d, fs.constants.W_OK);
      } catch (e) {
        if (errnoOf(e) === undefined) continue;
        this.failed(storeWriteError('cannot write to', d, e));
        this.log.warn({ event: 'store.unwritable', path: d, errno: errnoOf(e) }, `the state directory cannot be written: ${this.healthNow.lastError?.message}; changes are refused until it can`);
        return;
      }
    }
  }

  get configFile(): string {
    return path.join(this.dir, 'config.json');
  }

  private get revisionsDir(): string {
    return path.join(this.dir, 'revisions');
  }

  /**
   * Opens the store, creating the directory (0700) and, on a first start, revision 0 made
   * by `initial()`; converts a state dir of the earlier format.
   */
  static async open(dir: string, initial: () => DesiredState, opts: StoreOptions = {}): Promise<ConfigStore> {
    const log = opts.log ?? silent;
    const revisionsDir = path.join(dir, 'revisions');
    await fs.mkdir(revisionsDir, { recursive: true, mode: 0o700 });
    await removeStaleTemps(dir);
    await removeStaleTemps(revisionsDir);
    const file = path.join(dir, 'config.json');
    let text: string | undefined;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigFileError(file, '', `cannot be read: ${(e as Error).message}`);
    }
    const listing = await listRevisions(revisionsDir);
    if (text === undefined) return ConfigStore.create(dir, listing, initial, opts);

    const base = parseStateText(file, text);
    // Files are 0600 and directories 0700; tighten ones restored with looser permissions rather than leak secrets.
    await fs.chmod(file, 0o600);
    for (const d of [dir, revisionsDir]) if (((await fs.stat(d)).mode & 0o077) !== 0) await fs.chmod(d, 0o700);
    const x = base.revision;
    if (!listing.journals.includes(x)) {
      await startJournal(dir, text, base, listing, log);
      return ConfigStore.open(dir, initial, opts);
    }

    // The chain: config.json, its journal, and the journals that continue it.
    const first = await readJournal(path.join(revisionsDir, journalName(x)));
    if (first.header.base !== x) throw new ConfigFileError(first.file, 'offset 0', `the header names base revision ${first.header.base}, not ${x} as the file name says`);
    const sum = sha256(text);
    let rewriteHeader = false;
    if (first.header.snapshotSha256 !== undefined && first.header.snapshotSha256 !== sum) {
      if (first.records.length > 0) {
        throw new ConfigFileError(
          file,
          '',
          `changed since carpd wrote it (SHA-256 ${sum}, the journal's header says ${first.header.snapshotSha256}), but ${path.relative(dir, first.file)} holds revisions ${x + 1}..${x + first.records.length} made on top of what it held then; carpd will not apply them to other content: put back the file carpd wrote, or move that journal away to keep this content and drop those revisions`,
        );
      }
      // Edited while carpd was stopped, with nothing on top of it: the edit is the configuration.
      rewriteHeader = true;
    }
    const chain = [first];
    let doc: Record<string, unknown> | undefined;
    let last = x;
    for (;;) {
      const j = chain[chain.length - 1];
      for (const { record, offset } of j.records) {
        doc = applyRecord(doc ?? plain(base), record, j.file, offset);
        last = record.revision;
      }
      if (last === j.header.base || !listing.journals.includes(last)) break;
      const next = await readJournal(path.join(revisionsDir, journalName(last)));
      if (next.header.base !== last) throw new ConfigFileError(next.file, 'offset 0', `the header names base revision ${next.header.base}, not ${last} as the file name says`);
      chain.push(next);
    }
    const lastJournal = chain[chain.length - 1];
    const head = doc === undefined ? base : readChecked(lastJournal.file, doc, `revision ${last}: `);
    for (const j of chain.slice(0, -1)) {
      if (j.torn) log.warn({ event: 'journal.torn', file: j.file, offset: j.torn.offset, bytes: j.torn.bytes }, `${j.file}: ignoring ${j.torn.bytes} bytes at offset ${j.torn.offset} (${j.torn.reason})`);
    }
    if (lastJournal.torn) {
      // An append cut short: never acknowledged. Cut it off, or the next append would follow it.
      const t = lastJournal.torn;
      log.warn({ event: 'journal.torn', file: lastJournal.file, offset: t.offset, bytes: t.bytes }, `${lastJournal.file}: dropped an incomplete last record at offset ${t.offset} (${t.bytes} bytes: ${t.reason}), a write cut short by a crash and never acknowledged`);
      await fs.truncate(lastJournal.file, t.offset);
      const h = await fs.open(lastJournal.file, 'r');
      await h.sync().finally(() => h.close());
    }

    // History: older snapshots and journals, up to config.json's revision.
    const inChain = new Set(chain.map((j) => j.header.base));
    const older: ParsedJournal[] = [];
    const obsolete: string[] = [];
    for (const n of listing.journals) {
      if (inChain.has(n)) continue;
      if (n < x) older.push(await readJournal(path.join(revisionsDir, journalName(n))));
      else obsolete.push(journalName(n));
    }
    for (const n of listing.snapshots) if (n >= x) obsolete.push(snapshotName(n));
    // Files of the earlier format left by a conversion that stopped before removing them.
    for (const n of listing.old) obsolete.push(`${pad(n)}.json`);
    for (const name of obsolete) await fs.rm(path.join(revisionsDir, name), { force: true });
    if (obsolete.length > 0) await fsyncDir(revisionsDir);

    let active: ConfigStore['active'];
    const activeFile = lastJournal.file;
    if (rewriteHeader) {
      await writeFileAtomic(activeFile, encodeLine({ ...first.header, snapshotSha256: sum }));
      log.info({ event: 'journal.snapshot.adopted', file }, `${file} was changed while carpd was stopped; its content is the configuration in force`);
    }
    const handle = await (opts.io ?? nodeJournalIo).open(activeFile);
    try {
      active = { base: lastJournal.header.base, file: activeFile, handle, records: lastJournal.records.length };
      const store = new ConfigStore(dir, { state: head, history: [], snapshotRevision: x, active }, opts);
      store.snapshotSums.set(x, sum);
      for (const j of [...older, ...chain]) {
        store.journals.set(j.header.base, j.file);
        if (j.header.snapshotSha256 !== undefined && j.header.base !== x) store.snapshotSums.set(j.header.base, j.header.snapshotSha256);
      }
      for (const n of listing.snapshots) if (n < x) store.snapshots.set(n, path.join(revisionsDir, snapshotName(n)));
      const metas = new Map<number, RevisionMeta>();
      // Older journals first, so that what the chain says wins; records past config.json's revision
      // in an older journal belong to a history config.json no longer continues.
      for (const j of [...older, ...chain]) {
        if (!metas.has(j.header.base)) metas.set(j.header.base, metaOf(j.header.meta));
        const inChainJ = inChain.has(j.header.base);
        for (const r of j.records) {
          if (!inChainJ && r.record.revision > x) continue;
          metas.set(r.record.revision, metaOf(r.record));
          store.records.set(r.record.revision, { file: j.file, offset: r.offset, end: r.end });
        }
      }
      store.history = store.reachable(head.revision, metas);
      await store.prune();
      await store.probe();
      return store;
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** A first start: revision 0 (or what `initial` says), its journal first, then config.json. */
  private static async create(dir: string, listing: Listing, initial: () => DesiredState, opts: StoreOptions): Promise<ConfigStore> {
    const file = path.join(dir, 'config.json');
    const revisionsDir = path.join(dir, 'revisions');
    // A first start killed before config.json was written leaves revision 0 alone, never
    // acknowledged: start over rather than refuse to start forever.
    const leftovers = [...listing.journals.map(journalName), ...listing.snapshots.map(snapshotName), ...listing.old.map((n) => `${pad(n)}.json`)];
    const aloneZero = listing.snapshots.length === 0 && ((listing.journals.length === 0 && listing.old.every((n) => n === 0)) || (listing.old.length === 0 && listing.journals.length === 1 && listing.journals[0] === 0 && (await isEmptyJournal(path.join(revisionsDir, journalName(0))))));
    if (leftovers.length > 0 && !aloneZero) {
      throw new ConfigFileError(file, '', `is missing while revisions/ holds ${leftovers.length} files (${leftovers.slice(0, 3).join(', ')}${leftovers.length > 3 ? ', …' : ''}); restore it (for example from revisions/*.snapshot.json or a backup) instead of starting empty`);
    }
    for (const name of leftovers) await fs.rm(path.join(revisionsDir, name), { force: true });
    const state = initial();
    const problems = checkState(state);
    if (problems.length > 0) throw new Error(`the initial configuration is invalid: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    const text = JSON.stringify(state, null, 2) + '\n';
    const meta: RevisionMeta = { revision: state.revision, createdAt: state.updatedAt, actor: 'carpd', summary: 'initial configuration' };
    const jfile = path.join(revisionsDir, journalName(state.revision));
    await writeFileAtomic(jfile, encodeLine({ journal: 1, base: state.revision, meta, snapshotSha256: sha256(text) }));
    await writeFileAtomic(file, text);
    const handle = await (opts.io ?? nodeJournalIo).open(jfile);
    const store = new ConfigStore(dir, { state: readStoredState(JSON.parse(text)), history: [meta], snapshotRevision: state.revision, active: { base: state.revision, file: jfile, handle, records: 0 } }, opts);
    store.snapshotSums.set(state.revision, sha256(text));
    await store.probe();
    return store;
  }


  /** The last durable revision: what readers see. */
  current(): DesiredState {
    return this.durableState;
  }

  /** The newest revision, staged or durable: what the next change builds on. */
  head(): DesiredState {
    return this.headState;
  }

  revisions(): RevisionMeta[] {
    return [...this.history].reverse();
  }

  /** A revision of the history, rebuilt from the snapshot before it and the records after that. */
  async loadRevision(n: number): Promise<DesiredState | undefined> {
    if (!this.history.some((m) => m.revision === n)) return undefined;
    if (n === this.durableState.revision) return this.durableState;
    let from = -1;
    for (const s of [this.snapshotRevision, ...this.snapshots.keys()]) if (s <= n && s > from) from = s;
    if (from < 0) return undefined;
    const snapFile = from === this.snapshotRevision ? this.configFile : this.snapshots.get(from)!;
    const text = await fs.readFile(snapFile, 'utf8');
    const sum = this.snapshotSums.get(from);
    if (sum !== undefined && sha256(text) !== sum) throw new ConfigFileError(snapFile, '', `does not hold the snapshot of revision ${from} its journal names (SHA-256 differs)`);
    let doc = plain(parseStateText(snapFile, text));
    if (from === n) return readChecked(snapFile, doc);
    const files = new Map<string, Buffer>();
    for (let r = from + 1; r <= n; r++) {
      const place = this.records.get(r);
      if (!place) return undefined;
      let buf = files.get(place.file);
      if (!buf) files.set(place.file, (buf = await fs.readFile(place.file)));
      const [line] = readLines(buf.subarray(place.offset, place.end));
      if (!line?.ok || recordProblem(line.value) || line.value.revision !== r) throw new ConfigFileError(place.file, `offset ${place.offset}`, `the record of revision ${r} is no longer readable`);
      doc = applyRecord(doc, line.value as unknown as JournalRecord, place.file, place.offset);
    }
    return readChecked(this.records.get(n)!.file, doc, `revision ${n}: `);
  }

  /** Why no revision can be staged now (the store is closed, or its journal broken), or undefined. */
  refusal(): Error | undefined {
    return this.broken ?? (this.closed ? new Error('the configuration store is closed') : undefined);
  }

  /** Makes `next` the revision in force. Resolves only once it is durable. */
  commit(next: DesiredState, meta: Omit<RevisionMeta, 'revision' | 'createdAt'>): Promise<void> {
    const durable = this.stage(next, meta);
    this.flush().catch(() => undefined);
    return durable;
  }

  /**
   * Queues `next` (the head's revision + 1) for the next flush; it becomes the head at once.
   * The promise settles with the flush that writes it. `change` is diffStates(head, next) if
   * the caller has it already. `next` is frozen: later revisions share its objects.
   */
  stage(next: DesiredState, meta: Omit<RevisionMeta, 'revision' | 'createdAt'>, change?: StateDiff): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the configuration store is closed'));
    if (this.broken) return Promise.reject(this.broken);
    const head = this.headState;
    if (next.revision !== head.revision + 1) return Promise.reject(new Error(`commit of revision ${next.revision} on top of ${head.revision}`));
    const d = change ?? diffStates(head, next);
    const full: RevisionMeta = { revision: next.revision, createdAt: next.updatedAt, actor: meta.actor, summary: meta.summary };
    const line = encodeLine({ ...full, patch: d.ops });
    freezeState(next, d.added);
    this.headState = next;
    return new Promise<void>((resolve, reject) => this.pending.push({ state: next, meta: full, line, resolve, reject }));
  }

  /**
   * Writes every staged revision with one append and one fsync. On failure none of them is
   * stored: the file is cut back to where the group began, the head goes back to the last
   * durable revision, and the group (with anything staged on top of it meanwhile) is rejected.
   */
  flush(): Promise<void> {
    const run = async () => {
      if (this.pending.length === 0) return;
      const group = this.pending;
      this.pending = [];
      const j = this.active;
      const start = j.handle.size;
      const data = group.length === 1 ? group[0].line : Buffer.concat(group.map((g) => g.line));
      try {
        if (this.broken) throw this.broken;
        await j.handle.append(data);
        await j.handle.sync();
      } catch (e) {
        const dropped = [...group, ...this.pending];
        this.pending = [];
        this.headState = this.durableState;
        const err = storeWriteError(`could not append ${group.length === 1 ? `revision ${group[0].meta.revision}` : `revisions ${group[0].meta.revision}..${group[group.length - 1].meta.revision}`} to`, j.file, e);
        if (!this.broken) {
          this.failed(err);
          await this.takeBack(start);
        }
        for (const g of dropped) g.reject(err);
        throw err;
      }
      this.wrote();
      let offset = start;
      for (const g of group) {
        this.records.set(g.meta.revision, { file: j.file, offset, end: offset + g.line.length });
        offset += g.line.length;
        this.history.push(g.meta);
      }
      j.records += group.length;
      this.durableState = group[group.length - 1].state;
      if (this.history.length > KEEP_REVISIONS) this.history.splice(0, this.history.length - KEEP_REVISIONS);
      for (const g of group) g.resolve();
    };
    const done = this.flushing.then(run);
    // The next flush waits for this one and for a snapshot it triggers; this one's caller does not.
    this.flushing = done.then(
      () => (this.dueForSnapshot() ? this.rotate().catch((e: Error) => this.log.warn({ event: 'journal.snapshot.failed', err: e.message }, `could not write a new snapshot (${e.message}); the journal goes on growing and it is tried again later`)) : undefined),
      () => undefined,
    );
    return done;
  }

  /** After a failed append: the file back to where the group began, durably. */
  private async takeBack(size: number): Promise<void> {
    try {
      await this.active.handle.truncate(size);
      await this.active.handle.sync();
    } catch (e) {
      const why = storeWriteError('could not truncate', this.active.file, e);
      this.broken = new StoreWriteError(`the journal ${this.active.file} could not be cut back after a failed write (${why.message}); no further change is accepted: restart carpd`, this.active.file, why.errno, { cause: e });
      this.failed(this.broken);
      this.log.warn({ event: 'journal.broken', file: this.active.file, err: (e as Error).message }, this.broken.message);
    }
  }

  private dueForSnapshot(): boolean {
    return !this.closed && !this.broken && (this.active.records >= this.everyRevisions || this.active.handle.size >= this.everyBytes);
  }

  /**
   * A new snapshot of the last durable revision R: config.json (revision S) kept as
   * revisions/<S>.snapshot.json, a journal for R created, config.json replaced by R, then the
   * history no longer needed removed.
   */
  private async rotate(): Promise<void> {
    const state = this.durableState;
    const r = state.revision;
    if (r === this.active.base) return;
    const text = JSON.stringify(state, null, 2) + '\n';
    const sum = sha256(text);
    const kept = path.join(this.revisionsDir, snapshotName(this.snapshotRevision));
    const jfile = path.join(this.revisionsDir, journalName(r));
    const meta = this.history.find((m) => m.revision === r)!;
    let handle: JournalHandle | undefined;
    let writing = kept;
    try {
      await fs.rm(kept, { force: true });
      try {
        await fs.link(this.configFile, kept);
      } catch {
        await writeFileAtomic(kept, await fs.readFile(this.configFile), { syncDir: false });
      }
      writing = jfile;
      await writeFileAtomic(jfile, encodeLine({ journal: 1, base: r, meta, snapshotSha256: sum }));
      handle = await this.io.open(jfile);
      writing = this.configFile;
      try {
        await writeFileAtomic(this.configFile, text);
      } catch (e) {
        // config.json holds revision R already; only its directory entry may not be durable yet.
        if (!wasRenamed(e)) throw e;
        this.log.warn({ event: 'journal.snapshot.unsynced', file: this.configFile, err: (e as Error).message }, `${this.configFile} was replaced, but its directory could not be synced (${(e as Error).message})`);
      }
    } catch (e) {
      // Nothing of a snapshot that was not made stays behind: the state dir is as before.
      await handle?.close().catch(() => undefined);
      await fs.rm(jfile, { force: true }).catch(() => undefined);
      await fs.rm(kept, { force: true }).catch(() => undefined);
      const err = storeWriteError(`could not write the snapshot of revision ${r} to`, writing, e);
      this.failed(err);
      throw err;
    }
    const old = this.active;
    this.active = { base: r, file: jfile, handle, records: 0 };
    await old.handle.close().catch(() => undefined);
    this.journals.set(r, jfile);
    this.snapshots.set(this.snapshotRevision, kept);
    this.snapshotRevision = r;
    this.snapshotSums.set(r, sum);
    this.wrote();
    await this.prune();
  }

  /** Removes the snapshots and journals no revision of the history needs any more. */
  private async prune(): Promise<void> {
    const oldest = this.history[0]?.revision ?? this.durableState.revision;
    let from = this.snapshotRevision <= oldest ? this.snapshotRevision : -1;
    for (const s of this.snapshots.keys()) if (s <= oldest && s > from) from = s;
    const gone: string[] = [];
    for (const [s, file] of this.snapshots) {
      if (s < from) {
        gone.push(file);
        this.snapshots.delete(s);
        this.snapshotSums.delete(s);
      }
    }
    // A journal is needed while it holds a record after `from`: its last record is just
    // before the next journal's base.
    const bases = [...this.journals.keys()].sort((a, b) => a - b);
    bases.forEach((b, i) => {
      const next = bases[i + 1];
      if (next !== undefined && next <= from && b !== this.active.base) {
        gone.push(this.journals.get(b)!);
        this.journals.delete(b);
      }
    });
    for (const r of this.records.keys()) if (r <= from) this.records.delete(r);
    for (const f of gone) await fs.rm(f, { force: true });
  }

  /** The history entries of revisions that can still be rebuilt, the last KEEP_REVISIONS up to `head`. */
  private reachable(head: number, metas: Map<number, RevisionMeta>): RevisionMeta[] {
    const snaps = new Set([this.snapshotRevision, ...this.snapshots.keys()]);
    const start = Math.min(head, ...snaps);
    const out: RevisionMeta[] = [];
    let ok = false;
    for (let r = start; r <= head; r++) {
      ok = snaps.has(r) || (ok && this.records.has(r));
      const m = metas.get(r);
      if (ok && m) out.push(m);
    }
    return out.slice(-KEEP_REVISIONS);
  }

  /**
   * Writes what is staged, then, if the journal holds revisions since config.json, a new
   * snapshot: after a clean stop config.json is the whole configuration in force.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => undefined);
    await this.flushing;
    this.closed = true;
    if (!this.broken && this.durableState.revision !== this.snapshotRevision) {
      await this.rotate().catch((e: Error) => this.log.warn({ event: 'journal.snapshot.failed', err: e.message }, `could not write a snapshot at close (${e.message}); the journal holds every revision`));
    }
    await this.active.handle.close().catch(() => undefined);
  }
}
