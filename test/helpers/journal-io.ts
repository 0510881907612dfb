/**
 * A journal file layer for tests, around the real one: an fsync can be held until released,
 * made to fail, and every completed fsync is counted with the file size it made durable.
 */
import { nodeJournalIo, type JournalHandle, type JournalIo } from '../../src/config/journal.js';

export interface ControlledIo extends JournalIo {
  /** Completed fsyncs, each with the size of the file it made durable. */
  readonly synced: { file: string; size: number }[];
  /** The next fsync waits until release(); resolves once it has started waiting. */
  holdNextSync(): Promise<void>;
  release(): void;
  /** The next fsync fails with EIO (after its hold, if any). */
  failNextSync(): void;
  /** The next truncate fails with EIO. */
  failNextTruncate(): void;
  /** Bytes of `file` made durable so far. */
  durableSize(file: string): number;
}

const eio = (call: string) => Object.assign(new Error(`EIO: i/o error, ${call}`), { code: 'EIO' });

export function controlledIo(): ControlledIo {
  const synced: { file: string; size: number }[] = [];
  let hold: { started: () => void; gate: Promise<void>; open: () => void } | undefined;
  let release: (() => void) | undefined;
  let failSync = false;
  let failTruncate = false;
  const io: ControlledIo = {
    synced,
    holdNextSync() {
      return new Promise<void>((started) => {
        let open!: () => void;
        const gate = new Promise<void>((r) => (open = r));
        hold = { started, gate, open };
      });
    },
    release() {
      release?.();
      release = undefined;
    },
    failNextSync() {
      failSync = true;
    },
    failNextTruncate() {
      failTruncate = true;
    },
    durableSize(file) {
      return synced.filter((s) => s.file === file).reduce((m, s) => Math.max(m, s.size), 0);
    },
    async open(file): Promise<JournalHandle> {
      const h = await nodeJournalIo.open(file);
      return {
        get size() {
          return h.size;
        },
        append: (data) => h.append(data),
        async sync() {
          const held = hold;
          hold = undefined;
          if (held) {
            release = held.open;
            held.started();
            await held.gate;
          }
          if (failSync) {
            failSync = false;
            throw eio('fsync');
          }
          const size = h.size;
          await h.sync();
          synced.push({ file, size });
        },
        async truncate(n) {
          if (failTruncate) {
            failTruncate = false;
            throw eio('ftruncate');
          }
          await h.truncate(n);
        },
        close: () => h.close(),
      };
    },
  };
  return io;
}
