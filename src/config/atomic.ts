/**
 * Crash-safe file replacement: write a temporary file in the same directory, fsync it,
 * rename it over the target, fsync the directory. After a crash the target holds either the
 * old or the new content, never a mix. Files are created 0600: they may hold secrets.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const TMP_MARK = '.tmp-';

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Replaces `file` with `data`. Whatever fails before the rename leaves no file behind (the
 * temporary file is removed, also when only part of it could be written). A failure of the
 * directory's fsync after the rename carries `renamed: true` (see wasRenamed): the new content
 * is in place then, only not yet known to be durable.
 */
export async function writeFileAtomic(file: string, data: string | Buffer, opts: { syncDir?: boolean } = {}): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `${path.basename(file)}${TMP_MARK}${randomBytes(6).toString('hex')}`);
  const h = await fs.open(tmp, 'wx', 0o600);
  try {
    try {
      await h.writeFile(data);
      await h.sync();
    } catch (e) {
      await h.close().catch(() => undefined);
      throw e;
    }
    await h.close();
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
  if (opts.syncDir !== false) {
    try {
      await fsyncDir(dir);
    } catch (e) {
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { renamed: true });
    }
  }
}

/** Whether a writeFileAtomic failure came after the rename (the directory's fsync). */
export const wasRenamed = (e: unknown): boolean => (e as { renamed?: unknown } | undefined)?.renamed === true;

/** Temporary files left by a crash mid-write: never committed, safe to remove. */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir)) {
    if (name.includes(TMP_MARK)) {
      await fs.rm(path.join(dir, name), { force: true });
      removed.push(name);
    }
  }
  return removed;
}
