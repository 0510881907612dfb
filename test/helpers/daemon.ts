/**
 * carpd as a real child process: `node --import tsx src/daemon/main.ts ...`, its JSON log
 * lines collected as they arrive, and a small HTTP client. Every child is registered with the
 * test's t.after (and a process exit hook) so that a failing test never leaves one running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = 'src/daemon/main.ts';
// scripts/test.sh compiles dist/ first and sets this: a compiled start takes a third of a
// tsx one, which matters to the durability test's 200 restarts.
const ENTRY = process.env.CARPD_TEST_DIST === '1' ? ['dist/daemon/main.js'] : ['--import', 'tsx', MAIN];

/** A safety net only: every wait below ends on an event; this bounds a hung child. */
export const SAFETY_TIMEOUT_MS = 60_000;

export interface LogLine {
  level?: number;
  event?: string;
  msg?: string;
  [k: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface TestContextLike {
  after(fn: () => unknown): void;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export class DaemonProcess {
  readonly child: ChildProcess;
  /** Resolves once the child has exited and its output is fully read. */
  readonly exited: Promise<Exit>;
  private out = '';
  private err = '';
  private pending = '';
  readonly logs: LogLine[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private exitInfo?: Exit;

  /**
   * `netns`: run inside that network namespace (`ip netns exec` replaces itself with node, so the
   * pid is carpd's). `shell`: a shell line run first, which then execs node (e.g. `ulimit -n 60`).
   */
  constructor(args: string[], env: NodeJS.ProcessEnv, netns?: string, shell?: string) {
    const node = [process.execPath, ...ENTRY, ...args];
    const argv = shell === undefined ? node : ['sh', '-c', `${shell}; exec "$0" "$@"`, ...node];
    const [cmd, ...rest] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
    this.child = spawn(cmd, rest, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => this.onStdout(s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.err += s));
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        live.delete(this.child);
        if (this.pending.trim() !== '') this.onLine(this.pending);
        this.pending = '';
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get output(): string {
    return this.out + this.err;
  }
  get running(): boolean {
    return this.exitInfo === undefined;
  }

  private onStdout(s: string): void {
    this.out += s;
    this.pending += s;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      return; // not a log line (usage text goes to stderr; nothing else is expected)
    }
    this.logs.push(parsed);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(parsed)) return true;
      w.resolve(parsed);
      return false;
    });
  }

  /** The first log line (already seen or still to come) that matches; rejects if the child exits first. */
  waitForLog(pred: (l: LogLine) => boolean, what = 'log line'): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${SAFETY_TIMEOUT_MS} ms\n${this.output}`)), SAFETY_TIMEOUT_MS);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void this.exited.then((x) => {
        clearTimeout(timer);
        reject(new Error(`carpd exited (code ${x.code}, signal ${x.signal}) before the ${what}\n${this.output}`));
      });
    });
  }

  waitForEvent(event: string, extra: (l: LogLine) => boolean = () => true): Promise<LogLine> {
    return this.waitForLog((l) => l.event === event && extra(l), `"${event}" log line`);
  }

  /** Exit with a safety bound; a child that never exits fails the test instead of hanging it. */
  async waitForExit(): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`carpd did not exit within ${SAFETY_TIMEOUT_MS} ms\n${this.output}`)), SAFETY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.exited, bound]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(signal);
  }
}

/** The environment without carpd's own variables, so the runner's environment cannot steer a test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // NODE_TEST_CONTEXT would make the child think it is a test file talking to the runner.
    if (!k.startsWith('CARPD_') && k !== 'NODE_TEST_CONTEXT') env[k] = v;
  }
  return { ...env, ...extra };
}

/** Spawns carpd without waiting for anything (for runs expected to fail). */
export function spawnDaemon(t: TestContextLike, args: string[], opts: { env?: Record<string, string>; netns?: string; shell?: string } = {}): DaemonProcess {
  const d = new DaemonProcess(args, cleanEnv(opts.env), opts.netns, opts.shell);
  t.after(async () => {
    d.kill('SIGKILL');
    await d.exited;
  });
  return d;
}

export interface RunningDaemon extends DaemonProcess {
  port: number;
  listening: LogLine;
}

/** Spawns carpd and resolves once it logs that it is listening, with the port it chose. */
export async function startDaemon(t: TestContextLike, args: string[], opts: { env?: Record<string, string>; netns?: string; shell?: string } = {}): Promise<RunningDaemon> {
  const d = spawnDaemon(t, args, opts);
  const listening = await d.waitForEvent('listening');
  const m = /:(\d+)$/.exec(String(listening.address));
  if (!m) throw new Error(`cannot read the port from ${JSON.stringify(listening)}`);
  return Object.assign(d, { port: Number(m[1]), listening });
}

/** The usual flags: any free port on loopback, the memory backend. */
export function daemonArgs(stateDir: string, ...more: string[]): string[] {
  return ['--listen', '127.0.0.1:0', '--state-dir', stateDir, '--backend', 'memory', ...more];
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The parsed body, when it is JSON. */
  body: any;
}

/** ETag `"7"` → 7. */
export function etagRevision(r: Reply): number {
  const m = /^"(\d+)"$/.exec(String(r.headers.etag));
  if (!m) throw new Error(`no revision ETag in ${r.status} reply: ${JSON.stringify(r.headers)}`);
  return Number(m[1]);
}

/**
 * One HTTP request on its own connection (no keep-alive pool, no retries: a request either
 * reached carpd once or not at all). Resolves when the whole reply is read; rejects on a
 * connection error. `onSent` runs once the request is flushed to the socket.
 */
export function call(port: number, method: string, url: string, opts: { host?: string; token?: string; body?: unknown; onSent?: () => void } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = httpRequest({ host: opts.host ?? '127.0.0.1', port, method, path: url, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('error', reject);
      res.on('end', () => {
        let body: unknown;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
    });
    req.on('error', reject);
    if (opts.onSent) req.on('finish', opts.onSent);
    req.end(payload);
  });
}
