/**
 * A journal file layer that fails on demand the way a file system does: an append that writes
 * part of its data (as much as fits on a disk with a page free) and then fails with an errno,
 * and an open (of the journal a new snapshot starts) that fails with one.
 */
import { nodeJournalIo, type JournalHandle, type JournalIo } from '../../src/config/journal.js';

export const fsError = (errno: string, call: string): NodeJS.ErrnoException => Object.assign(new Error(`${errno}: file system error, ${call}`), { code: errno, syscall: call });

export interface FaultyIo extends JournalIo {
  /** The next append writes `partial` bytes of its data (default: half), then fails with `errno`. */
  failNextAppend(errno: string, partial?: number): void;
  /** The next open fails with `errno`. */
  failNextOpen(errno: string): void;
}

export function faultyIo(): FaultyIo {
  let append: { errno: string; partial?: number } | undefined;
  let open: string | undefined;
  return {
    failNextAppend(errno, partial) {
      append = { errno, partial };
    },
    failNextOpen(errno) {
      open = errno;
    },
    async open(file): Promise<JournalHandle> {
      if (open) {
        const errno = open;
        open = undefined;
        throw fsError(errno, 'open');
      }
      const h = await nodeJournalIo.open(file);
      return {
        get size() {
          return h.size;
        },
        async append(data) {
          const f = append;
          append = undefined;
          if (!f) return h.append(data);
          // What a short write(2) leaves: part of the record on disk, then the error.
          await h.append(data.subarray(0, f.partial ?? Math.floor(data.length / 2)));
          throw fsError(f.errno, 'write');
        },
        sync: () => h.sync(),
        truncate: (n) => h.truncate(n),
        close: () => h.close(),
      };
    },
  };
}
