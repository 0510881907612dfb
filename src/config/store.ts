/**
 * The durable, revisioned desired state.
 *
 *   <state-dir>/config.json            the revision in force (the only source of truth)
 *   <state-dir>/revisions/<N>.json     the last 50 revisions, for history and rollback
 *
 * A commit writes revisions/<N>.json, then config.json, each atomically. A write is
 * acknowledged only after config.json is renamed and its directory fsynced. A crash between
 * the two leaves a revision file newer than config.json: it was never acknowledged and is
 * removed at the next start. A config.json that cannot be read or is invalid stops carpd
 * with the file, the field and the reason, and is never overwritten.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readStoredState, DocumentError } from './document.js';
import type { DesiredState } from './model.js';
import { fsyncDir, removeStaleTemps, writeFileAtomic } from './atomic.js';

export const KEEP_REVISIONS = 50;

export interface RevisionMeta {
  revision: number;
  createdAt: string;
  actor: string;
  summary: string;
}

interface RevisionFile {
  meta: RevisionMeta;
  state: DesiredState;
}

export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${file}: ${field === '' ? '(document)' : field}: ${reason}`);
    this.name = 'ConfigFileError';
  }
}

function revisionName(n: number): string {
  return `${String(n).padStart(10, '0')}.json`;
}

export class ConfigStore {
  private state: DesiredState;
  private history: RevisionMeta[];

  private constructor(
    readonly dir: string,
    state: DesiredState,
    history: RevisionMeta[],
  ) {
    this.state = state;
    this.history = history;
  }

  get configFile(): string {
    return path.join(this.dir, 'config.json');
  }

  private get revisionsDir(): string {
    return path.join(this.dir, 'revisions');
  }

  /**
   * Opens the store, creating the directory (0700) and, on a first start, revision 0 made
   * by `initial()`.
   */
  static async open(dir: string, initial: () => DesiredState): Promise<ConfigStore> {
    await fs.mkdir(path.join(dir, 'revisions'), { recursive: true, mode: 0o700 });
    await removeStaleTemps(dir);
    await removeStaleTemps(path.join(dir, 'revisions'));
    const file = path.join(dir, 'config.json');
    let text: string | undefined;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigFileError(file, '', `cannot be read: ${(e as Error).message}`);
    }
    if (text === undefined) {
      let leftovers = (await fs.readdir(path.join(dir, 'revisions'))).filter((n) => n.endsWith('.json'));
      // A first start killed between its two writes leaves only revision 0, never acknowledged:
      // start over rather than refuse to start forever.
      if (leftovers.length === 1 && leftovers[0] === revisionName(0)) {
        await fs.rm(path.join(dir, 'revisions', leftovers[0]), { force: true });
        leftovers = [];
      }
      if (leftovers.length > 0) {
        throw new ConfigFileError(file, '', `is missing while ${leftovers.length} stored revisions exist; restore it (for example from revisions/) instead of starting empty`);
      }
      const store = new ConfigStore(dir, initial(), []);
      await store.write(store.state, { revision: store.state.revision, createdAt: store.state.updatedAt, actor: 'carpd', summary: 'initial configuration' });
      return store;
    }
    const state = parseStateFile(file, text);
    // Files are 0600; tighten one restored with looser permissions rather than leak secrets.
    await fs.chmod(file, 0o600);
    const history = await loadHistory(path.join(dir, 'revisions'), state.revision);
    return new ConfigStore(dir, state, history);
  }

  current(): DesiredState {
    return this.state;
  }

  revisions(): RevisionMeta[] {
    return [...this.history].reverse();
  }

  async loadRevision(n: number): Promise<DesiredState | undefined> {
    if (!this.history.some((m) => m.revision === n)) return undefined;
    const file = path.join(this.revisionsDir, revisionName(n));
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as RevisionFile;
    return readStoredState(parsed.state);
  }

  /** Makes `next` the revision in force. Resolves only once it is durable. */
  async commit(next: DesiredState, meta: Omit<RevisionMeta, 'revision' | 'createdAt'>): Promise<void> {
    if (next.revision !== this.state.revision + 1) {
      throw new Error(`commit of revision ${next.revision} on top of ${this.state.revision}`);
    }
    await this.write(next, { revision: next.revision, createdAt: next.updatedAt, ...meta });
  }

  private async write(next: DesiredState, meta: RevisionMeta): Promise<void> {
    const record: RevisionFile = { meta, state: next };
    await writeFileAtomic(path.join(this.revisionsDir, revisionName(next.revision)), JSON.stringify(record, null, 1) + '\n');
    await writeFileAtomic(this.configFile, JSON.stringify(next, null, 2) + '\n');
    this.state = next;
    this.history.push(meta);
    while (this.history.length > KEEP_REVISIONS) {
      const old = this.history.shift()!;
      await fs.rm(path.join(this.revisionsDir, revisionName(old.revision)), { force: true });
    }
  }
}

function parseStateFile(file: string, text: string): DesiredState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigFileError(file, '', `is not valid JSON (${(e as Error).message}); carpd will not overwrite it: fix or restore it`);
  }
  try {
    return readStoredState(raw);
  } catch (e) {
    if (e instanceof DocumentError) throw new ConfigFileError(file, e.field, e.reason);
    throw e;
  }
}

/** Metadata of the stored revisions up to `current`; newer ones were never acknowledged. */
async function loadHistory(dir: string, current: number): Promise<RevisionMeta[]> {
  const metas: RevisionMeta[] = [];
  let removed = false;
  for (const name of (await fs.readdir(dir)).sort()) {
    if (!/^\d{10}\.json$/.test(name)) continue;
    const n = Number(name.slice(0, 10));
    if (n > current) {
      await fs.rm(path.join(dir, name), { force: true });
      removed = true;
      continue;
    }
    try {
      const rec = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as RevisionFile;
      if (rec.meta?.revision === n) metas.push(rec.meta);
    } catch {
      // A history file that does not parse only loses that history entry; config.json is the truth.
    }
  }
  // A crash after a commit but before its pruning leaves one revision too many; prune it now,
  // or nothing ever would (the next commit only removes the oldest one it knows of).
  for (const old of metas.splice(0, Math.max(0, metas.length - KEEP_REVISIONS))) {
    await fs.rm(path.join(dir, revisionName(old.revision)), { force: true });
    removed = true;
  }
  if (removed) await fsyncDir(dir);
  return metas;
}
