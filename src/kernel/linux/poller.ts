/**
 * Readiness of raw and netlink sockets without blocking the event loop (toolchain-notes.md, "Raw
 * CARP packets from Node"): Node core cannot watch a raw fd, and a blocking recv in libuv's pool
 * or in a worker can neither be woken nor terminated. So one loop per process does
 *
 *     poll.async([fd1 POLLIN, fd2 POLLIN, ..., self-pipe read end POLLIN], infinite)
 *
 * on one of koffi's worker threads, and when it returns, calls on the main thread the handler of
 * every ready fd; handlers drain their socket with non-blocking recv until EAGAIN. A write to the
 * self-pipe wakes the poll: add() and remove() do so when a poll is in flight so that the next
 * round polls the new set, and close() does so to end the loop.
 *
 * While at least one fd is registered, the pending asynchronous poll keeps the process alive (like
 * a listening server). With no fd registered, and after close(), nothing is pending: the loop only
 * runs while there is something to watch.
 *
 * Handlers must tolerate a spurious call (recv says EAGAIN): an fd removed while a poll was in
 * flight may have been closed and its number reused. A handler is only called if its registration
 * is still the current one for that fd; POLLNVAL (an fd closed without remove()) unregisters it and
 * is reported through onError instead of spinning.
 */
import { O_CLOEXEC, O_NONBLOCK, POLLERR, POLLFD_LEN, POLLHUP, POLLIN, POLLNVAL, linuxLibc, type LinuxLibc } from './libc.js';

/** Called on the main thread when the fd is readable (or has an error or hang-up to report). */
export type ReadableHandler = (fd: number, revents: number) => void;

export interface PollerOptions {
  libc?: LinuxLibc;
  /** Handler exceptions and loop trouble. Default: process.emitWarning. */
  onError?(e: Error): void;
}

interface Registration {
  fd: number;
  handler: ReadableHandler;
}

/** Consecutive failed polls before the loop reports and backs off; poll(2) fails only on EINTR/ENOMEM in practice. */
const POLL_FAILURES_BEFORE_BACKOFF = 16;

export class Poller {
  private readonly libc: LinuxLibc;
  private readonly onError: (e: Error) => void;
  private readonly regs = new Map<number, Registration>();
  private readonly pipeRead: number;
  private readonly pipeWrite: number;
  private running: Promise<void> | undefined;
  private inFlight = false;
  private wakePending = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(opts: PollerOptions = {}) {
    this.libc = opts.libc ?? linuxLibc();
    this.onError = opts.onError ?? ((e) => process.emitWarning(e));
    [this.pipeRead, this.pipeWrite] = this.libc.pipe2(O_NONBLOCK | O_CLOEXEC);
  }

  /** Registered descriptors (the self-pipe not included). */
  get size(): number {
    return this.regs.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Watches fd for readability; replaces the handler when fd is already registered. */
  add(fd: number, onReadable: ReadableHandler): void {
    if (this.closed) throw new Error('Poller is closed');
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`not a file descriptor: ${fd}`);
    if (fd === this.pipeRead || fd === this.pipeWrite) throw new RangeError(`fd ${fd} is the poller's own pipe`);
    this.regs.set(fd, { fd, handler: onReadable });
    this.changed();
  }

  /** Stops watching fd. The caller may close fd right after (see the file comment). */
  remove(fd: number): void {
    if (!this.regs.delete(fd)) return;
    this.changed();
  }

  /** Ends the loop, waits for the pending poll to return, closes the self-pipe. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.regs.clear();
      this.closing = (async () => {
        this.wake();
        await this.running;
        this.libc.close(this.pipeRead);
        this.libc.close(this.pipeWrite);
      })();
    }
    return this.closing;
  }

  private changed(): void {
    if (this.running) this.wake();
    else if (this.regs.size > 0) this.running = this.loop();
  }

  /** Makes an in-flight poll return. Not needed between polls: every round rebuilds its fd set. */
  private wake(): void {
    if (!this.inFlight || this.wakePending) return;
    this.wakePending = true;
    try {
      this.libc.write(this.pipeWrite, Buffer.from([1])); // null (pipe full) means it is readable anyway
    } catch (e) {
      this.onError(e as Error);
    }
  }

  private drainPipe(): void {
    const sink = Buffer.alloc(64);
    try {
      while ((this.libc.read(this.pipeRead, sink) ?? 0) > 0) { /* discard */ }
    } catch (e) {
      this.onError(e as Error);
    }
    this.wakePending = false;
  }

  private async loop(): Promise<void> {
    let failures = 0;
    try {
      while (!this.closed && this.regs.size > 0) {
        const polled = [...this.regs.values()];
        const fds = Buffer.alloc((polled.length + 1) * POLLFD_LEN);
        polled.forEach((r, i) => {
          fds.writeInt32LE(r.fd, i * POLLFD_LEN);
          fds.writeInt16LE(POLLIN, i * POLLFD_LEN + 4);
        });
        const self = polled.length * POLLFD_LEN;
        fds.writeInt32LE(this.pipeRead, self);
        fds.writeInt16LE(POLLIN, self + 4);

        this.inFlight = true;
        let rc: number;
        try {
          rc = await this.libc.pollAsync(fds, -1);
        } finally {
          this.inFlight = false;
        }
        if (fds.readInt16LE(self + 6) !== 0) this.drainPipe();
        if (this.closed) break;
        if (rc < 0) {
          if (++failures >= POLL_FAILURES_BEFORE_BACKOFF) {
            this.onError(new Error(`poll failed ${failures} times in a row; retrying in 100 ms`));
            failures = 0;
            await new Promise((r) => setTimeout(r, 100));
          }
          continue;
        }
        failures = 0;
        for (let i = 0; i < polled.length; i++) {
          const revents = fds.readInt16LE(i * POLLFD_LEN + 6);
          if (revents === 0) continue;
          const reg = polled[i];
          if (this.regs.get(reg.fd) !== reg) continue; // removed or replaced meanwhile
          if (revents & POLLNVAL) {
            this.regs.delete(reg.fd);
            this.onError(new Error(`fd ${reg.fd} was closed while registered with the poller; it is no longer watched`));
            continue;
          }
          if (revents & (POLLIN | POLLERR | POLLHUP)) {
            try {
              reg.handler(reg.fd, revents);
            } catch (e) {
              this.onError(e instanceof Error ? e : new Error(String(e)));
            }
          }
        }
      }
    } catch (e) {
      this.onError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.running = undefined;
      // Registered while the last round was ending: start again.
      if (!this.closed && this.regs.size > 0) this.running = this.loop();
    }
  }
}

let shared: Poller | undefined;

/** The process-wide Poller, created on first use (and again after it was closed). */
export function sharedPoller(): Poller {
  if (!shared || shared.isClosed) shared = new Poller();
  return shared;
}
