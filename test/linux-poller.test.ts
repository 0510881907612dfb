/**
 * src/kernel/linux/poller.ts and the errno translation of src/kernel/linux/libc.ts, on pipes in
 * the test's own process: no namespaces and no root needed, only Linux and koffi.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { platform } from 'node:os';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FREEBSD_ERRNO, KernelError } from '../src/kernel/errno.js';
import { LINUX_ERRNO, O_CLOEXEC, O_NONBLOCK, UnmappedErrnoError, linuxKernelError, linuxLibc } from '../src/kernel/linux/libc.js';
import { Poller } from '../src/kernel/linux/poller.js';

const skip = platform() === 'linux' ? undefined : `needs Linux (this host is ${platform()})`;
const WAIT_MS = 10_000;
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** Resolves when pred holds, checking after every call of `notify`; rejects after the deadline. */
function signal() {
  const waiters = new Set<() => void>();
  return {
    notify: () => waiters.forEach((w) => w()),
    until(pred: () => boolean, what: string): Promise<void> {
      if (pred()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${WAIT_MS} ms`));
        }, WAIT_MS);
        const check = () => {
          if (!pred()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
  };
}

function pipe(t: { after(fn: () => void): void }): { r: number; w: number } {
  const libc = linuxLibc();
  const [r, w] = libc.pipe2(O_NONBLOCK | O_CLOEXEC);
  t.after(() => {
    for (const fd of [r, w]) {
      try {
        libc.close(fd);
      } catch { /* closed by the test */ }
    }
  });
  return { r, w };
}

/** A handler that drains the pipe and records what it read. */
function reader(fd: number, log: string[], s: { notify(): void }) {
  const libc = linuxLibc();
  return () => {
    const b = Buffer.alloc(256);
    for (let n = libc.read(fd, b); n !== null && n > 0; n = libc.read(fd, b)) log.push(b.toString('utf8', 0, n));
    s.notify();
  };
}

test('Linux errno numbers become KernelErrors with the FreeBSD errno of the same name', { skip }, () => {
  const e = linuxKernelError(LINUX_ERRNO.EADDRNOTAVAIL, 'remove address 192.0.2.50/24', 'lan0');
  assert.ok(e instanceof KernelError);
  assert.equal(e.errnoName, 'EADDRNOTAVAIL');
  assert.equal(e.errno, FREEBSD_ERRNO.EADDRNOTAVAIL); // 49, not Linux's 99
  assert.equal(e.iface, 'lan0');
  assert.match(e.message, /^remove address 192\.0\.2\.50\/24 on lan0 failed: EADDRNOTAVAIL/);
  assert.equal(linuxKernelError(11, 'recv').errno, FREEBSD_ERRNO.EAGAIN); // 11 on Linux, 35 on FreeBSD
  assert.equal(linuxKernelError(95, 'x').errnoName, 'EOPNOTSUPP'); // ENOTSUP is the same number
  assert.equal(linuxKernelError(17, 'x').errno, FREEBSD_ERRNO.EEXIST);
  assert.equal(linuxKernelError(105, 'x').errno, FREEBSD_ERRNO.ENOBUFS);

  const nodata = linuxKernelError(LINUX_ERRNO.ENODATA, 'read thing', 'lan0');
  assert.ok(nodata instanceof UnmappedErrnoError && nodata instanceof KernelError);
  assert.equal(nodata.errno, 0);
  assert.equal(nodata.errnoName, 'ENODATA');
  assert.match(nodata.message, /read thing on lan0 failed: ENODATA \(Linux errno 61\)/);
  const unknown = linuxKernelError(4000, 'frob');
  assert.equal(unknown.errnoName, 'errno 4000');
  assert.match(unknown.message, /errno 4000/);
});

test('libc failures are named KernelErrors', { skip }, () => {
  const libc = linuxLibc();
  assert.throws(() => libc.ifNameToIndex('nosuchif0'), (e: unknown) => e instanceof KernelError && e.errnoName === 'ENXIO' && e.errno === FREEBSD_ERRNO.ENXIO && e.iface === 'nosuchif0');
  assert.throws(() => libc.socket(12345, 3, 0, 'open a socket'), (e: unknown) => e instanceof KernelError && e.errnoName === 'EAFNOSUPPORT' && e.errno === FREEBSD_ERRNO.EAFNOSUPPORT);
  assert.throws(() => libc.close(-1), (e: unknown) => e instanceof KernelError && e.errnoName === 'EBADF');
  assert.equal(libc.ifIndexToName(libc.ifNameToIndex('lo')), 'lo');
  assert.equal(libc.ifIndexToName(0x7ffffff0), undefined);
  const [r, w] = libc.pipe2(O_NONBLOCK | O_CLOEXEC);
  assert.equal(libc.read(r, Buffer.alloc(4)), null, 'an empty non-blocking pipe says EAGAIN as null');
  libc.close(r);
  libc.close(w);
});

test('Poller: handlers run for ready fds; add and remove while a poll is in flight refresh the set', { skip }, async (t) => {
  const errors: Error[] = [];
  const poller = new Poller({ onError: (e) => errors.push(e) });
  t.after(() => poller.close());
  const libc = linuxLibc();
  const s = signal();
  const a = pipe(t);
  const b = pipe(t);
  const got = { a: [] as string[], b: [] as string[] };

  poller.add(a.r, reader(a.r, got.a, s));
  libc.write(a.w, Buffer.from('1'));
  await s.until(() => got.a.join('') === '1', 'read of a');

  // The loop is now blocked in poll([a, self-pipe]); b only gets polled if add() wakes it.
  poller.add(b.r, reader(b.r, got.b, s));
  libc.write(b.w, Buffer.from('x'));
  await s.until(() => got.b.join('') === 'x', 'read of b added while polling');

  // Removing a while polling: data written to a and then b is seen on b only. Had a still been
  // polled, its handler would have run before b's (same round or an earlier one).
  poller.remove(a.r);
  libc.write(a.w, Buffer.from('2'));
  libc.write(b.w, Buffer.from('y'));
  await s.until(() => got.b.join('') === 'xy', 'second read of b');
  assert.deepEqual(got.a, ['1'], 'a removed fd is no longer read');
  assert.equal(poller.size, 1);
  assert.deepEqual(errors, []);

  await poller.close();
  await poller.close(); // idempotent
  assert.throws(() => poller.add(a.r, () => {}), /closed/);
});

test('Poller: a throwing handler is reported and the loop goes on; a closed registered fd is dropped', { skip }, async (t) => {
  const errors: Error[] = [];
  const s = signal();
  const poller = new Poller({ onError: (e) => (errors.push(e), s.notify()) });
  t.after(() => poller.close());
  const libc = linuxLibc();
  const a = pipe(t);
  const b = pipe(t);
  const got: string[] = [];
  let throws = true;
  poller.add(a.r, () => {
    const n = libc.read(a.r, Buffer.alloc(16));
    if (throws) {
      throws = false;
      throw new Error(`handler failed after ${n} bytes`);
    }
    got.push('a');
    s.notify();
  });
  libc.write(a.w, Buffer.from('1'));
  await s.until(() => errors.length === 1, 'reported handler error');
  assert.match(errors[0].message, /handler failed after 1 bytes/);
  libc.write(a.w, Buffer.from('2'));
  await s.until(() => got.length === 1, 'handler running again');

  // An fd closed without remove(): poll says POLLNVAL; the poller must drop it, not spin.
  const [r2, w2] = libc.pipe2(O_NONBLOCK | O_CLOEXEC);
  libc.close(w2);
  poller.add(b.r, reader(b.r, [], s));
  poller.add(r2, () => {});
  libc.close(r2);
  libc.write(b.w, Buffer.from('z')); // wakes a poll that may have started before the close
  await s.until(() => errors.some((e) => /was closed while registered/.test(e.message)), 'POLLNVAL report');
  assert.equal(poller.size, 2, 'a and b remain, the closed fd is gone');
});

test('Poller: after close() the process ends by itself, exit code 0', { skip }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/linux/poller-exit.ts'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exit = await Promise.race([
    new Promise<{ code: number | null }>((resolve) => child.on('close', (code) => resolve({ code }))),
    new Promise<never>((_, reject) =>
      setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the fixture did not exit within ${WAIT_MS} ms after closing its Poller\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, WAIT_MS).unref(),
    ),
  ]);
  assert.equal(exit.code, 0, stderr);
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; data?: string; size?: number });
  assert.deepEqual(lines, [{ event: 'read', data: 'ping' }, { event: 'closed', size: 0 }]);
});
