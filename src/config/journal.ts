/**
 * The journal's file format: one record per line, each guarded by a checksum.
 *
 *   <crc32, 8 lower-case hex digits> <space> <JSON object> <LF>
 *
 * The CRC-32 (IEEE 802.3, as zlib and gzip) covers the JSON bytes. The first line of a
 * journal file is its header; every line after it is one revision:
 *
 *   header  {"journal":1,"base":N,"meta":{revision,createdAt,actor,summary},"snapshotSha256":"…"}
 *   record  {"revision":N+1,"createdAt":"…","actor":"…","summary":"…","patch":[RFC 6902 operations]}
 *
 * `base` is the revision the file starts from (its records are base+1, base+2, … in order),
 * `meta` that revision's history entry, and `snapshotSha256` the SHA-256 of config.json as
 * written when the file was started (config.json holds revision `base` then).
 *
 * Reading stops at the first line that is incomplete (no LF), fails its checksum, or does not
 * parse. If no valid record follows it, it is a torn tail — an append cut short by a crash,
 * never acknowledged — and is dropped; if a valid record follows, the file is corrupt in the
 * middle and carpd refuses to start, naming the file and the byte offset.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { PatchOp } from './patch.js';

export const JOURNAL_VERSION = 1;

export interface RevisionMeta {
  revision: number;
  createdAt: string;
  actor: string;
  summary: string;
}

export interface JournalHeader {
  journal: typeof JOURNAL_VERSION;
  base: number;
  meta: RevisionMeta;
  snapshotSha256?: string;
}

export interface JournalRecord extends RevisionMeta {
  patch: PatchOp[];
}

/** CRC-32 (IEEE, reflected): zlib's, built into Node since 20.15 and 22.2. */
export function crc32(buf: Uint8Array): number {
  return zlibCrc32(buf);
}

export function encodeLine(value: JournalHeader | JournalRecord): Buffer {
  return frameLine(value);
}

/** Any JSON value framed as a journal line, `<crc32 hex> <JSON>\n` (readLines reads it back). */
export function frameLine(value: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  const out = Buffer.allocUnsafe(json.length + 10);
  out.write(crc32(json).toString(16).padStart(8, '0'), 0, 'latin1');
  out[8] = 0x20;
  json.copy(out, 9);
  out[out.length - 1] = 0x0a;
  return out;
}

/** One line as read: its byte range and either the parsed value or why it is not one. */
export type Line = { offset: number; end: number } & ({ ok: true; value: Record<string, unknown> } | { ok: false; reason: string });

const HEX8 = /^[0-9a-f]{8}$/;

/** Splits a journal file into lines and checks each one's framing and checksum. */
export function readLines(buf: Buffer): Line[] {
  const lines: Line[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const nl = buf.indexOf(0x0a, offset);
    if (nl < 0) {
      lines.push({ offset, end: buf.length, ok: false, reason: `an incomplete record (${buf.length - offset} bytes without a line end)` });
      break;
    }
    lines.push({ offset, end: nl + 1, ...checkLine(buf.subarray(offset, nl)) });
    offset = nl + 1;
  }
  return lines;
}

function checkLine(line: Buffer): { ok: true; value: Record<string, unknown> } | { ok: false; reason: string } {
  const hex = line.toString('latin1', 0, 8);
  if (line.length < 11 || !HEX8.test(hex) || line[8] !== 0x20) return { ok: false, reason: 'not a journal record (no checksum)' };
  const json = line.subarray(9);
  const sum = crc32(json);
  if (sum !== parseInt(hex, 16)) return { ok: false, reason: `checksum mismatch (stored ${hex}, computed ${sum.toString(16).padStart(8, '0')})` };
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch (e) {
    return { ok: false, reason: `not valid JSON (${(e as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}

const isMeta = (m: Record<string, unknown>): boolean => Number.isSafeInteger(m.revision) && typeof m.createdAt === 'string' && typeof m.actor === 'string' && typeof m.summary === 'string';

/** Why a checked line is not a header, or undefined. */
export function headerProblem(v: Record<string, unknown>): string | undefined {
  if (v.journal !== JOURNAL_VERSION) return `not a journal header of format ${JOURNAL_VERSION}`;
  if (!Number.isSafeInteger(v.base) || (v.base as number) < 0) return 'the header has no base revision';
  const meta = v.meta as Record<string, unknown> | undefined;
  if (typeof meta !== 'object' || meta === null || !isMeta(meta) || meta.revision !== v.base) return 'the header has no history entry for its base revision';
  if (v.snapshotSha256 !== undefined && (typeof v.snapshotSha256 !== 'string' || !/^[0-9a-f]{64}$/.test(v.snapshotSha256))) return 'the header has a malformed snapshotSha256';
  return undefined;
}

/** Why a checked line is not a record, or undefined. */
export function recordProblem(v: Record<string, unknown>): string | undefined {
  if (!isMeta(v)) return 'a record without revision, createdAt, actor or summary';
  if (!Array.isArray(v.patch)) return 'a record without a patch';
  return undefined;
}

/** The file operations of the journal's append path; injected in tests to fail on demand. */
export interface JournalHandle {
  /** The file's size: where the next append goes. */
  readonly size: number;
  /** Appends all of `data` at `size`. */
  append(data: Buffer): Promise<void>;
  /** fsync(2): what was appended is durable once this resolves. */
  sync(): Promise<void>;
  /** Cuts the file back to `size` bytes (a failed append is taken back this way). */
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}

export interface JournalIo {
  /** Opens an existing journal file for appending at its end. */
  open(file: string): Promise<JournalHandle>;
}

const fsp = {
  open: promisify(fs.open),
  fstat: promisify(fs.fstat),
  fsync: promisify(fs.fsync),
  ftruncate: promisify(fs.ftruncate),
  close: promisify(fs.close),
};

/** node:fs, on a plain descriptor (a FileHandle left open by a caller that never closes the store would warn when collected). */
export const nodeJournalIo: JournalIo = {
  async open(file) {
    const fd = await fsp.open(file, 'r+');
    let size: number;
    try {
      size = (await fsp.fstat(fd)).size;
    } catch (e) {
      await fsp.close(fd);
      throw e;
    }
    return {
      get size() {
        return size;
      },
      // write(2) in place, not in the thread pool: a record lands in the page cache at once,
      // and the append costs no round trip through the pool before its fsync (which takes one).
      async append(data) {
        let done = 0;
        while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, size + done);
        size += data.length;
      },
      sync: () => fsp.fsync(fd),
      async truncate(n) {
        await fsp.ftruncate(fd, n);
        size = n;
      },
      close: () => fsp.close(fd),
    };
  },
};
