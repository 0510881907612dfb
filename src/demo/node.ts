/**
 * One carpd child process for the demo: spawned with --backend sim on a private state dir,
 * its JSON log read for the address it listens on, and a tiny API client with its admin token.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../paths.js';

/** Started from dist/ the demo runs the compiled daemon; started through tsx, the sources. */
const DAEMON_ENTRY = fileURLToPath(import.meta.url).endsWith('.js')
  ? [path.join(PACKAGE_ROOT, 'dist/daemon/main.js')]
  : ['--import', 'tsx', path.join(PACKAGE_ROOT, 'src/daemon/main.ts')];

/** A start that takes longer than this has failed (tsx compiles on the fly: a few seconds). */
const START_TIMEOUT_MS = 60_000;

export interface VhidStatus {
  interface: string;
  vhid: number;
  state: 'INIT' | 'BACKUP' | 'MASTER';
  since: string;
  reason: string;
  advbase: number;
  advskew: number;
}

export class DemoNode {
  port = 0;
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private output = '';
  private token = '';

  /** 0 = any free port; after the first start, the port it got, so that a restart keeps it. */
  private listenPort: number;

  constructor(
    readonly name: string,
    readonly stateDir: string,
    port: number,
    private readonly simGroup: string,
  ) {
    this.listenPort = port;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns carpd and resolves once it listens; rejects with its output if it exits first. */
  async start(): Promise<void> {
    const args = [...DAEMON_ENTRY, '--backend', 'sim', '--sim-group', this.simGroup, '--node-name', this.name, '--listen', `127.0.0.1:${this.listenPort}`, '--state-dir', this.stateDir];
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CARPD_')));
    const child = spawn(process.execPath, args, { cwd: PACKAGE_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = '';
    this.port = 0;
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not start within ${START_TIMEOUT_MS / 1000} s\n${this.output}`)), START_TIMEOUT_MS);
      let pending = '';
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.output += s));
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        this.output += s;
        pending += s;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          let l: { event?: string; address?: string };
          try {
            l = JSON.parse(line) as typeof l;
          } catch {
            continue;
          }
          if (l.event === 'listening' && this.port === 0) {
            this.port = this.listenPort = Number(/:(\d+)$/.exec(String(l.address))?.[1]);
            clearTimeout(timer);
            resolve();
          }
        }
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before listening\n${this.output}`));
      });
    });
    this.token = readFileSync(path.join(this.stateDir, 'admin.token'), 'utf8').trim();
  }

  /** A restart keeps the state dir (and with it the VIP) and the port. */
  restart(): Promise<void> {
    return this.start();
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child!.kill(signal);
  }

  async waitForExit(): Promise<void> {
    await this.exited;
  }

  /** SIGTERM (carpd stops gracefully: a MASTER bows out), then the exit. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    await this.waitForExit();
  }

  async api<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
    const r = await fetch(`http://127.0.0.1:${this.port}${url}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  /** em0 vhid 1 as /v1/status shows it; undefined when the node is down or has no such vhid. */
  async vhid(iface: string, vhid: number): Promise<VhidStatus | undefined> {
    if (!this.running || this.port === 0) return undefined;
    try {
      const r = await this.api<{ vhids: VhidStatus[] }>('GET', '/v1/status');
      return r.body.vhids.find((v) => v.interface === iface && v.vhid === vhid);
    } catch {
      return undefined;
    }
  }

  async carpStats(): Promise<Record<string, number> | undefined> {
    try {
      return (await this.api<{ carp: Record<string, number> }>('GET', '/v1/stats')).body.carp;
    } catch {
      return undefined;
    }
  }
}
