/**
 * The test side of test/fixtures/linux/peer.ts: starts the fixture inside a namespace of a Lan,
 * sends it requests and waits for its replies and events. Every wait ends on an event, bounded by
 * a generous deadline that only a broken build reaches; the error then shows the fixture's
 * stderr and its last lines.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lan } from './netns.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PEER_FIXTURE = fileURLToPath(new URL('../fixtures/linux/peer.ts', import.meta.url));
/** Deadline of any single wait. */
export const WAIT_MS = 15_000;

export interface PeerError {
  name: string;
  message: string;
  errnoName?: string;
  errno?: number;
  operation?: string;
  iface?: string;
}

export interface PeerEvent {
  event: string;
  [k: string]: unknown;
}

export interface PacketEvent extends PeerEvent {
  event: 'packet';
  iface: string;
  family: 4 | 6;
  source: string;
  destination: string;
  ttl: number;
  payloadHex: string;
}

/** A request failed inside the fixture. */
export class PeerRequestError extends Error {
  constructor(readonly detail: PeerError) {
    super(detail.message);
    this.name = 'PeerRequestError';
  }
}

export class Peer {
  readonly events: PeerEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = '';
  private buffered = '';
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private readonly watchers = new Set<() => void>();
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly label: string,
  ) {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => this.onData(s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    child.stdin!.on('error', () => { /* exited: reported through `exited` */ });
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        for (const p of this.pending.values()) p.reject(new Error(`${label} exited (${code ?? signal}) before answering\n${this.stderr}`));
        this.pending.clear();
        for (const w of this.watchers) w();
        resolve({ code, signal });
      });
    });
  }

  /** Starts the fixture in `ns` and waits for its ready line. */
  static async start(lan: Lan, ns: string, label = ns): Promise<Peer> {
    const child = lan.spawn(ns, [process.execPath, '--import', 'tsx', PEER_FIXTURE], { cwd: REPO_ROOT });
    const peer = new Peer(child, label);
    await peer.waitEvent((e) => e.event === 'ready', 'ready');
    return peer;
  }

  /** Sends a request; resolves with its result or rejects with PeerRequestError. */
  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.exitInfo) return Promise.reject(new Error(`${this.label} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no reply to ${cmd} within ${WAIT_MS} ms\n${this.diagnostics()}`));
      }, WAIT_MS);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n');
    });
  }

  /** The failure of a request that must fail. */
  async callError(cmd: string, args: Record<string, unknown> = {}): Promise<PeerError> {
    try {
      await this.call(cmd, args);
    } catch (e) {
      if (e instanceof PeerRequestError) return e.detail;
      throw e;
    }
    throw new Error(`${this.label}: ${cmd} ${JSON.stringify(args)} succeeded, expected an error`);
  }

  /** The first event (already received or coming) matching pred. */
  waitEvent<E extends PeerEvent = PeerEvent>(pred: (e: PeerEvent) => boolean, what: string, timeoutMs = WAIT_MS): Promise<E> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found as E);
    return new Promise<E>((resolve, reject) => {
      const check = () => {
        const e = this.events.find(pred);
        if (e) {
          done();
          resolve(e as E);
        } else if (this.exitInfo) {
          done();
          reject(new Error(`${this.label} exited (${this.exitInfo.code ?? this.exitInfo.signal}) before ${what}\n${this.diagnostics()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms\n${this.diagnostics()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
    });
  }

  packets(): PacketEvent[] {
    return this.events.filter((e): e is PacketEvent => e.event === 'packet');
  }

  /** Waits for a packet whose payload is `hex`. */
  waitPacket(hex: string, what = `packet ${hex.slice(0, 16)}…`): Promise<PacketEvent> {
    return this.waitEvent<PacketEvent>((e) => e.event === 'packet' && e.payloadHex === hex, what);
  }

  /** Asks the fixture to close everything and waits for the process to end on its own. */
  async close(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exitInfo) await this.call('close');
    return this.waitExit();
  }

  waitExit(timeoutMs = WAIT_MS): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return Promise.race([
      this.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${this.label} still running ${timeoutMs} ms after close\n${this.diagnostics()}`)), timeoutMs).unref()),
    ]);
  }

  diagnostics(): string {
    return `stderr: ${this.stderr.trim() || '(empty)'}\nlast lines: ${this.events.slice(-8).map((e) => JSON.stringify(e)).join('\n')}`;
  }

  private onData(s: string): void {
    this.buffered += s;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (!line.trim()) continue;
      let msg: { id?: number; ok?: boolean; result?: unknown; error?: PeerError; event?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        this.stderr += `[unparsed stdout] ${line}\n`;
        continue;
      }
      if (typeof msg.id === 'number' && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id)!;
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new PeerRequestError(msg.error ?? { name: 'Error', message: 'unknown failure' }));
      } else if (typeof msg.event === 'string') {
        this.events.push(msg as PeerEvent);
        for (const w of [...this.watchers]) w();
      }
    }
  }
}
