/**
 * carpd's log destination: bounded and non-blocking. Logging never stops the event loop (the
 * API, /healthz, SIGTERM, sync and the CARP engine go on) and never ends the process, whatever
 * stdout is and however it fails.
 *
 * - Lines wait in a queue of at most LOG_QUEUE_BYTES (1 MiB); one write is in flight at a time,
 *   up to WRITE_CHUNK_BYTES of whole lines.
 * - The write mechanism depends on what fd 1 is (fs.fstatSync): a regular file (or /dev/null) is
 *   written with asynchronous fs.write; a pipe or a socket (daemon(8) -o and -S hand carpd a
 *   pipe) through a non-blocking net.Socket, so a reader that stopped reading blocks no thread
 *   (a write stuck in libuv's threadpool would also hold up the process's exit); a terminal
 *   through a tty.WriteStream switched to non-blocking mode.
 * - When the queue is full (the destination is full: ENOSPC, EDQUOT; failing: EIO; or stalled)
 *   NEW lines are dropped and the queued, older ones kept: the lines that led up to the trouble
 *   are the ones worth reading, and a drop is then one gap, at one place, in an otherwise
 *   ordered log. Once the queue has drained to half, ONE line, a valid pino JSON line at warn
 *   level (`event: "log.dropped"`), takes the gap's place: how many lines were lost and why
 *   (the errno code of the failed write, or "stalled").
 * - A failed write (ENOSPC, EIO, ...) is retried on an unref'd timer, 100 ms doubling to 1 s;
 *   nothing is ever retried synchronously. A pipe or socket that fails (EPIPE: the reader is
 *   gone) is closed for good; every later line is counted as dropped.
 * - Nothing here throws: every stream 'error' is handled, every write is caught.
 * - At stop, `end()` gives the queue a bounded time (LOG_FLUSH_MS) to drain, then closes.
 * - At a sudden exit (process.exit after the stop timeout, an uncaught exception) the lines
 *   still queued for a regular file are written synchronously, once (`exitFlush`).
 */
import fs from 'node:fs';
import net from 'node:net';
import tty from 'node:tty';
import { systemClock, type Clock } from '../clock.js';

/** The most queued log text, in bytes; beyond it new lines are dropped. */
export const LOG_QUEUE_BYTES = 1024 * 1024;
/** The longest a stop waits for queued lines to be written. */
export const LOG_FLUSH_MS = 200;
/** The most bytes of whole lines handed to one write. */
export const WRITE_CHUNK_BYTES = 64 * 1024;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 1000;
/** pino's number for warn. */
const WARN = 40;

/** What GET /v1/stats shows as `log`. */
export interface LogSinkStats {
  /** Lines written to the destination since carpd started (the "dropped" summaries included). */
  linesWritten: number;
  /** Lines never written: dropped when the queue was full or the destination gone. */
  linesDropped: number;
  /** Bytes waiting to be written now (the write in flight included). */
  bytesQueued: number;
  /** Why the last write failed or the last line was dropped: an errno code or "stalled"; absent if never. */
  lastError?: string;
}

/** One way of writing to the destination. */
export interface LogWriter {
  /** Writes `data`; `done` is called once: with the bytes written (maybe fewer than asked) or an error. */
  write(data: Buffer, done: (err: NodeJS.ErrnoException | null, written: number) => void): void;
  /** A destination that failed once is gone for good (a closed pipe or socket); otherwise a failed write is retried. */
  readonly fatal: boolean;
  /** Releases the destination (never closes fd 1 itself for a file). */
  close(): void;
  /**
   * A synchronous write that cannot block for long (a regular file), for the lines still queued
   * when the process exits; absent where it could block (a stalled pipe or terminal). A pipe's
   * lines are handed to libuv at once, which writes what the pipe takes.
   */
  writeSync?(data: Buffer): number;
  /** Whether writeSync may be used while a write is in flight (it keeps whole lines apart). */
  readonly syncBesideInFlight?: boolean;
}

export interface LogSinkOptions {
  /** The most queued bytes (default LOG_QUEUE_BYTES). */
  limitBytes?: number;
  clock?: Clock;
  /** The `name` of the summary line (carpd's lines carry `name: "carpd"`). */
  name?: string;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** fs.write, asynchronous: a regular file, /dev/null; `exitSync`: a regular file (never blocks for long). */
export function fileWriter(fd: number, exitSync = false): LogWriter {
  return {
    fatal: false,
    ...(exitSync && { writeSync: (data: Buffer) => fs.writeSync(fd, data), syncBesideInFlight: true }),
    write(data, done) {
      try {
        fs.write(fd, data, 0, data.length, null, (err, n) => done(err, n ?? 0));
      } catch (e) {
        done(e as NodeJS.ErrnoException, 0);
      }
    },
    close() {},
  };
}

/** A stream on the fd (net.Socket for a pipe or socket, tty.WriteStream for a terminal): non-blocking, unref'd. */
export function streamWriter(stream: net.Socket): LogWriter {
  let failed: NodeJS.ErrnoException | undefined;
  let pending: ((err: NodeJS.ErrnoException | null, n: number) => void) | undefined;
  const fail = (e: NodeJS.ErrnoException) => {
    failed ??= e;
    const p = pending;
    pending = undefined;
    p?.(e, 0);
  };
  stream.on('error', fail);
  stream.on('close', () => fail(Object.assign(new Error('the log destination was closed'), { code: 'ECLOSED' })));
  // A pending write never keeps carpd running; a stop drains the queue for a bounded time first.
  stream.unref();
  return {
    fatal: true,
    write(data, done) {
      if (failed || stream.destroyed) return done(failed ?? Object.assign(new Error('closed'), { code: 'ECLOSED' }), 0);
      pending = done;
      try {
        stream.write(data, (err) => {
          if (pending !== done) return;
          pending = undefined;
          if (err) done(err as NodeJS.ErrnoException, 0);
          else done(null, data.length);
        });
      } catch (e) {
        fail(e as NodeJS.ErrnoException);
      }
    },
    close() {
      pending = undefined;
      stream.destroy();
    },
  };
}

/** A destination that cannot be written at all (fd 1 closed): every line is dropped with this reason. */
export function deadWriter(code: string): LogWriter {
  return { fatal: true, write: (_data, done) => done(Object.assign(new Error(code), { code }), 0), close() {} };
}

/** The writer for what `fd` is (fd 1 by default): see the file's comment. */
export function writerFor(fd: number): LogWriter {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    return deadWriter((e as NodeJS.ErrnoException).code ?? 'EBADF');
  }
  try {
    if (tty.isatty(fd)) {
      const s = new tty.WriteStream(fd);
      // Node makes a terminal's stream blocking; a terminal stopped with ^S would then stop carpd.
      (s as unknown as { _handle?: { setBlocking?: (b: boolean) => unknown } })._handle?.setBlocking?.(false);
      return streamWriter(s);
    }
    if (st.isFIFO() || st.isSocket()) return streamWriter(new net.Socket({ fd, readable: false, writable: true }));
  } catch {
    // Not a stream Node can open on this fd (a datagram socket, say): written as a file is.
  }
  return fileWriter(fd, st.isFile());
}

export class LogSink {
  private readonly queue: string[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** The bytes of the write in flight (what is left of the chunk), and how many lines it holds. */
  private inFlight?: Buffer;
  private inFlightLines = 0;
  private inFlightBytes = 0;
  private writing = false;
  private retryTimer: unknown;
  private retryMs: number;
  /** The current failure (cleared by a successful write). */
  private failure?: string;
  private dead = false;
  private closed = false;
  /** Lines dropped since the last summary line, and why the first of them was. */
  private gap = 0;
  private gapReason = '';
  private readonly waiters: (() => void)[] = [];
  private readonly limit: number;
  private readonly clock: Clock;
  private readonly name: string;
  private readonly retryMin: number;
  private readonly retryMax: number;
  private written = 0;
  private dropped = 0;
  private lastError?: string;

  constructor(
    private readonly writer: LogWriter,
    opts: LogSinkOptions = {},
  ) {
    this.limit = opts.limitBytes ?? LOG_QUEUE_BYTES;
    this.clock = opts.clock ?? systemClock;
    this.name = opts.name ?? 'carpd';
    this.retryMin = opts.retryMinMs ?? RETRY_MIN_MS;
    this.retryMax = opts.retryMaxMs ?? RETRY_MAX_MS;
    this.retryMs = this.retryMin;
  }

  /** carpd's stdout (fd 1), written the way its kind needs. */
  static stdout(opts?: LogSinkOptions): LogSink {
    const sink = new LogSink(writerFor(1), opts);
    // A line logged just before process.exit() (the stop timeout's) or an uncaught exception
    // is still written, where that cannot block.
    process.on('exit', () => sink.exitFlush());
    return sink;
  }

  /**
   * At exit: what is queued, written synchronously, where the writer can do that without
   * blocking (a regular file) and without cutting into a line in flight. (A write in flight to
   * a file is finished by libuv's threadpool before the process ends.)
   * One attempt: a full or stalled destination just keeps the rest.
   */
  exitFlush(): void {
    try {
      const w = this.writer;
      if (!w.writeSync || this.dead || this.closed) return;
      const parts: Buffer[] = [];
      if (this.writing) {
        // A chunk waiting for its retry is the sink's own (the writer has let go of it).
        if (this.retryTimer !== undefined && this.inFlight) parts.push(this.inFlight);
        else if (!w.syncBesideInFlight) return;
      }
      if (this.gap > 0) this.summarize();
      if (this.queueHead < this.queue.length) parts.push(Buffer.from(this.queue.slice(this.queueHead).join('')));
      const data = Buffer.concat(parts);
      let off = 0;
      while (off < data.length) {
        const n = w.writeSync(data.subarray(off));
        if (n <= 0) break;
        off += n;
      }
    } catch {
      // at exit, nothing more can be done
    }
  }

  /** pino's DestinationStream: one line, ending in a newline. Never throws, never blocks. */
  write(line: string): boolean {
    try {
      this.accept(line);
    } catch {
      // Nothing about logging may end carpd.
    }
    return true;
  }

  stats(): LogSinkStats {
    return { linesWritten: this.written, linesDropped: this.dropped, bytesQueued: this.queuedBytes, ...(this.lastError !== undefined && { lastError: this.lastError }) };
  }

  /** pino's logger.flush(): `cb` once the queue is written, or after LOG_FLUSH_MS at most. */
  flush(cb?: (err?: Error) => void): void {
    void this.drain(LOG_FLUSH_MS).then(() => cb?.());
  }

  /** Resolves once nothing is queued, or after `ms`, whichever comes first. */
  drain(ms = LOG_FLUSH_MS): Promise<void> {
    if (this.idle()) return Promise.resolve();
    // A destination waiting for its retry is tried once more now.
    if (this.retryTimer !== undefined && !this.dead) {
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.send();
    }
    return new Promise((resolve) => {
      // A real (ref'd) timer: a start that failed waits for its last line, but only this long.
      const t = setTimeout(() => finish(), ms);
      const finish = () => {
        clearTimeout(t);
        const i = this.waiters.indexOf(finish);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      this.waiters.push(finish);
    });
  }

  /** At stop: a bounded drain, then the destination is released; later lines are dropped. */
  async end(ms = LOG_FLUSH_MS): Promise<void> {
    await this.drain(ms);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    try {
      this.writer.close();
    } catch {
      // closing is best effort
    }
    this.wake();
  }

  private idle(): boolean {
    return this.dead || this.closed || (this.queuedBytes === 0 && !this.writing);
  }

  private accept(line: string): void {
    const bytes = Buffer.byteLength(line);
    if (this.dead || this.closed) return this.drop(this.dead ? (this.lastError ?? 'closed') : 'closed');
    if (this.gap > 0) {
      // In a gap: lines are taken again once the queue has drained to half (no flapping between
      // one line kept and one dropped), after the line that says what was lost.
      if (this.queuedBytes > this.limit / 2) return this.drop(this.failure ?? 'stalled');
      this.summarize();
    }
    if (this.queuedBytes + bytes > this.limit) return this.drop(this.failure ?? 'stalled');
    this.enqueue(line, bytes);
    this.pump();
  }

  private enqueue(line: string, bytes: number): void {
    this.queue.push(line);
    this.queuedBytes += bytes;
  }

  private drop(reason: string, n = 1): void {
    if (n <= 0) return;
    this.dropped += n;
    this.lastError = reason;
    if (this.gap === 0) this.gapReason = reason;
    this.gap += n;
  }

  /** The summary of the gap, queued where the gap is (it may exceed the limit by its own few bytes). */
  private summarize(): void {
    const n = this.gap;
    const why = this.gapReason;
    this.gap = 0;
    const line =
      JSON.stringify({
        level: WARN,
        time: this.clock.now(),
        name: this.name,
        event: 'log.dropped',
        dropped: n,
        reason: why,
        msg: `${n} log line${n === 1 ? '' : 's'} dropped: the log destination was ${why === 'stalled' ? 'not taking lines (stalled)' : why === 'ENOSPC' || why === 'EDQUOT' ? `full (${why})` : `failing (${why})`}`,
      }) + '\n';
    this.enqueue(line, Buffer.byteLength(line));
  }

  private pump(): void {
    if (this.writing || this.dead || this.closed || this.queueHead >= this.queue.length) return;
    let size = 0;
    let end = this.queueHead;
    while (end < this.queue.length) {
      const len = this.queue[end].length;
      if (end > this.queueHead && size + len > WRITE_CHUNK_BYTES) break;
      size += len;
      end++;
    }
    const lines = this.queue.slice(this.queueHead, end);
    this.queueHead = end;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    this.inFlight = Buffer.from(lines.join(''));
    this.inFlightBytes = this.inFlight.length;
    this.inFlightLines = lines.length;
    this.writing = true;
    this.send();
  }

  private send(): void {
    const data = this.inFlight;
    if (!data || this.closed) return;
    let called = false;
    try {
      this.writer.write(data, (err, n) => {
        if (called) return;
        called = true;
        this.written_(err, n);
      });
    } catch (e) {
      if (!called) {
        called = true;
        this.written_(e as NodeJS.ErrnoException, 0);
      }
    }
  }

  private written_(err: NodeJS.ErrnoException | null, n: number): void {
    try {
      this.afterWrite(err, n);
    } catch {
      // never thrown onwards
    }
  }

  private afterWrite(err: NodeJS.ErrnoException | null, n: number): void {
    if (this.closed || !this.inFlight) return;
    if (n > 0 && n < this.inFlight.length) this.inFlight = this.inFlight.subarray(n);
    else if (n >= this.inFlight.length) this.inFlight = Buffer.alloc(0);
    if (err) {
      const code = err.code ?? 'EIO';
      this.failure = code;
      this.lastError = code;
      if (this.writer.fatal) return this.die();
      this.retryTimer = this.clock.setTimeout(() => {
        this.retryTimer = undefined;
        this.send();
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, this.retryMax);
      return;
    }
    if (this.inFlight.length > 0) {
      // A short write without an error: the rest at once (the next write says why, if it fails).
      this.send();
      return;
    }
    this.failure = undefined;
    this.retryMs = this.retryMin;
    this.written += this.inFlightLines;
    this.queuedBytes -= this.inFlightBytes;
    this.inFlight = undefined;
    this.inFlightLines = 0;
    this.inFlightBytes = 0;
    this.writing = false;
    if (this.gap > 0 && this.queuedBytes <= this.limit / 2) this.summarize();
    this.pump();
    if (this.idle()) this.wake();
  }

  /** The destination is gone: what was queued is dropped, as is every later line. */
  private die(): void {
    this.dead = true;
    const queued = this.queue.length - this.queueHead + this.inFlightLines;
    this.queue.length = 0;
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.inFlight = undefined;
    this.inFlightLines = 0;
    this.inFlightBytes = 0;
    this.writing = false;
    this.drop(this.lastError ?? 'EIO', queued);
    try {
      this.writer.close();
    } catch {
      // best effort
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
