/**
 * The state dir's files as the configuration store reads them: their names under revisions/,
 * the listing of a revisions/ directory, a journal file parsed into its header and records
 * (a torn tail kept aside, damage in the middle refused), config.json parsed and checked, and
 * a record applied to the document before it. Errors name the file, the place and the reason
 * (ConfigFileError). Shared by the store (store.ts) and the conversion of the earlier format
 * (store-upgrade.ts), which is why it is a module of its own.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { readStoredState, DocumentError } from './document.js';
import type { DesiredState } from './model.js';
import { applyPatch, PatchError } from './patch.js';
import { headerProblem, readLines, recordProblem, type JournalHeader, type JournalRecord, type RevisionMeta } from './journal.js';

export const KEEP_REVISIONS = 50;

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

/** Where the store reports what it repaired or could not do (carpd's pino logger fits). */
export interface StoreLog {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

export const pad = (n: number) => String(n).padStart(10, '0');
export const journalName = (n: number) => `${pad(n)}.journal`;
export const snapshotName = (n: number) => `${pad(n)}.snapshot.json`;
export const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

export interface Listing {
  journals: number[];
  snapshots: number[];
  /** revisions/<N>.json: the earlier format, one whole document per revision. */
  old: number[];
}

export async function listRevisions(dir: string): Promise<Listing> {
  const l: Listing = { journals: [], snapshots: [], old: [] };
  for (const name of await fs.readdir(dir)) {
    const m = /^(\d{10})\.(journal|snapshot\.json|json)$/.exec(name);
    if (!m) continue;
    const n = Number(m[1]);
    if (m[2] === 'journal') l.journals.push(n);
    else if (m[2] === 'json') l.old.push(n);
    else l.snapshots.push(n);
  }
  for (const k of ['journals', 'snapshots', 'old'] as const) l[k].sort((a, b) => a - b);
  return l;
}

export interface ParsedJournal {
  file: string;
  header: JournalHeader;
  records: { record: JournalRecord; offset: number; end: number }[];
  /** Where the last good line ends: appends go here. */
  goodEnd: number;
  torn?: { offset: number; bytes: number; reason: string };
}

export function parseJournal(file: string, buf: Buffer): ParsedJournal {
  const lines = readLines(buf);
  const first = lines[0];
  if (!first) throw new ConfigFileError(file, 'offset 0', 'the journal is empty: it has no header');
  if (!first.ok) throw new ConfigFileError(file, 'offset 0', `the journal header is unreadable: ${first.reason}`);
  const hp = headerProblem(first.value);
  if (hp) throw new ConfigFileError(file, 'offset 0', hp);
  const header = first.value as unknown as JournalHeader;
  const out: ParsedJournal = { file, header, records: [], goodEnd: first.end };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (!line.ok) {
      const later = lines.slice(i + 1).find((l) => l.ok);
      if (later) {
        throw new ConfigFileError(file, `offset ${line.offset}`, `${line.reason}, and a valid record follows at offset ${later.offset}: this is damage, not an append cut short by a crash; restore the file from a backup`);
      }
      out.torn = { offset: line.offset, bytes: buf.length - line.offset, reason: line.reason };
      break;
    }
    const rp = recordProblem(line.value);
    if (rp) throw new ConfigFileError(file, `offset ${line.offset}`, rp);
    const record = line.value as unknown as JournalRecord;
    const expected = header.base + out.records.length + 1;
    if (record.revision !== expected) throw new ConfigFileError(file, `offset ${line.offset}`, `a record of revision ${record.revision} where revision ${expected} belongs`);
    out.records.push({ record, offset: line.offset, end: line.end });
    out.goodEnd = line.end;
  }
  return out;
}

export async function readJournal(file: string): Promise<ParsedJournal> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (e) {
    throw new ConfigFileError(file, '', `cannot be read: ${(e as Error).message}`);
  }
  return parseJournal(file, buf);
}

export function parseStateText(file: string, text: string): DesiredState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigFileError(file, '', `is not valid JSON (${(e as Error).message}); carpd will not overwrite it: fix or restore it`);
  }
  return readChecked(file, raw);
}

export function readChecked(file: string, raw: unknown, what = ''): DesiredState {
  try {
    return readStoredState(raw);
  } catch (e) {
    if (e instanceof DocumentError) throw new ConfigFileError(file, e.field, what + e.reason);
    throw e;
  }
}

/** A stored document as plain JSON values, for patches to be applied to in place. */
export const plain = (s: DesiredState): Record<string, unknown> => JSON.parse(JSON.stringify(s)) as Record<string, unknown>;

export function applyRecord(doc: unknown, r: JournalRecord, file: string, offset: number): Record<string, unknown> {
  let next: unknown;
  try {
    next = applyPatch(doc, r.patch);
  } catch (e) {
    if (e instanceof PatchError) throw new ConfigFileError(file, `offset ${offset}`, `revision ${r.revision} does not apply to revision ${r.revision - 1}: ${e.message}`);
    throw e;
  }
  if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new ConfigFileError(file, `offset ${offset}`, `revision ${r.revision} is not a document`);
  const o = next as Record<string, unknown>;
  o.revision = r.revision;
  o.updatedAt = r.createdAt;
  return o;
}

export const metaOf = (r: RevisionMeta): RevisionMeta => ({ revision: r.revision, createdAt: r.createdAt, actor: r.actor, summary: r.summary });

export async function isEmptyJournal(file: string): Promise<boolean> {
  try {
    const j = parseJournal(file, await fs.readFile(file));
    return j.records.length === 0;
  } catch {
    return false;
  }
}
