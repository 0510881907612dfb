/**
 * CARP state changes as devd(8) relays them (freebsd-kernel-abi.md §6, T16).
 *
 * The kernel calls devctl_notify("CARP", "<vhid>@<ifname>", "<INIT|BACKUP|MASTER>") on every
 * transition; devd re-broadcasts every kernel event, of every system, to the stream socket
 * /var/run/devd.pipe as newline-terminated lines:
 *
 *   !system=CARP subsystem=1@vlan0.10 type=MASTER
 *
 * Interface names may contain dots, which carp(4)'s example regex does not allow for. devd drops
 * clients that read too slowly and restarts like any daemon, so events can be lost: the client
 * reconnects with capped exponential backoff and, after every (re)connection, the backend reads
 * every vhid again (the events are hints; the kernel is the truth).
 */
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../clock.js';
import type { CarpState } from '../backend.js';

export const DEFAULT_DEVD_PIPE = '/var/run/devd.pipe';

export interface DevdCarpEvent {
  vhid: number;
  iface: string;
  state: CarpState;
  /** The line as received, for logs. */
  line: string;
}

const STATES = new Set<CarpState>(['INIT', 'BACKUP', 'MASTER']);

/**
 * The CARP event of one devd line, or undefined for any other line. Notifications start with
 * '!' and carry space-separated key=value pairs; values of the CARP system contain no spaces.
 */
export function parseDevdCarpLine(line: string): DevdCarpEvent | undefined {
  const text = line.replace(/\r$/, '');
  if (!text.startsWith('!')) return undefined;
  const fields = new Map<string, string>();
  for (const tok of text.slice(1).split(' ')) {
    const eq = tok.indexOf('=');
    if (eq > 0) fields.set(tok.slice(0, eq), tok.slice(eq + 1));
  }
  if (fields.get('system') !== 'CARP') return undefined;
  const m = /^([0-9]{1,3})@([^\s/@]{1,15})$/.exec(fields.get('subsystem') ?? '');
  const state = fields.get('type') as CarpState | undefined;
  if (!m || state === undefined || !STATES.has(state)) return undefined;
  const vhid = Number(m[1]);
  if (vhid < 1 || vhid > 255) return undefined;
  return { vhid, iface: m[2], state, line: text };
}

/** Splits a byte stream into lines; a line cut across chunks waits for its end. */
export class LineSplitter {
  private rest = '';
  /** devd lines are short; anything this long without a newline is not devd talking. */
  static readonly MAX_LINE = 64 * 1024;

  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    if (this.rest.length > LineSplitter.MAX_LINE) this.rest = '';
    return lines.filter((l) => l !== '');
  }

  reset(): void {
    this.rest = '';
  }
}

export interface DevdClientOptions {
  path: string;
  logger: Logger;
  onEvent(e: DevdCarpEvent): void;
  /** After every successful (re)connection: time to re-read the state (events may have been missed). */
  onConnect(): void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** The reconnection timers run on it (default: the system clock, whose timers keep no process up). */
  clock?: Clock;
}

export class DevdClient {
  private socket?: Socket;
  private timer?: unknown;
  private attempt = 0;
  private closed = false;
  private readonly splitter = new LineSplitter();
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly clock: Clock;
  private everConnected = false;

  constructor(private readonly opts: DevdClientOptions) {
    this.minMs = opts.minBackoffMs ?? 100;
    this.maxMs = opts.maxBackoffMs ?? 30_000;
    this.clock = opts.clock ?? systemClock;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.connecting && !this.socket.destroyed;
  }

  start(): void {
    if (!this.closed && !this.socket && this.timer === undefined) this.connect();
  }

  private connect(): void {
    this.timer = undefined;
    if (this.closed) return;
    const log = this.opts.logger;
    const s = connect({ path: this.opts.path });
    // The backend must never be what keeps a process alive.
    s.unref();
    this.socket = s;
    this.splitter.reset();
    s.setEncoding('utf8');
    s.on('connect', () => {
      this.attempt = 0;
      log[this.everConnected ? 'info' : 'debug']({ event: 'devd.connected', path: this.opts.path }, `listening for CARP events on ${this.opts.path}`);
      this.everConnected = true;
      this.opts.onConnect();
    });
    s.on('data', (chunk: string) => {
      for (const line of this.splitter.push(chunk)) {
        const ev = parseDevdCarpLine(line);
        if (ev) this.opts.onEvent(ev);
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      // A missing pipe is the normal case off FreeBSD and while devd is down: quiet.
      const quiet = e.code === 'ENOENT' || e.code === 'ECONNREFUSED';
      log[quiet ? 'debug' : 'warn']({ event: 'devd.error', path: this.opts.path, code: e.code }, `devd socket ${this.opts.path}: ${e.message}`);
    });
    s.on('close', () => {
      if (this.socket === s) this.socket = undefined;
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer !== undefined) return;
    const delay = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    this.opts.logger.debug({ event: 'devd.retry', path: this.opts.path, inMs: delay }, `reconnecting to devd in ${delay} ms`);
    this.timer = this.clock.setTimeout(() => this.connect(), delay);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.socket?.destroy();
    this.socket = undefined;
  }
}
