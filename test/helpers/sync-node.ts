/**
 * carpd processes paired for config sync, for the tests that run real processes
 * (sync-processes.test.ts on loopback, sync-netns.test.ts in namespaces). A SyncNode is one
 * node's fixed identity (name, state directory, command line, sync listener address) across
 * restarts: start() spawns carpd (again, on the same API and sync ports), kill() SIGKILLs it
 * by pid; every process is also killed by the test's t.after (startDaemon registers it).
 *
 * pair() does what a user does: GET /v1/sync on each node for identity.fingerprint, then
 * PATCH /v1/sync on the secondary and on the primary with role, peer {address, port,
 * fingerprint} and localAddresses.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { call, startDaemon, type LogLine, type Reply, type RunningDaemon } from './daemon.js';
import { pollUntil } from './poll.js';

interface TestContextLike {
  after(fn: () => unknown): void;
}

/** A TCP port nothing listens on now (bound on port 0, then closed). */
export function freeTcpPort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A UDP port nothing is bound to now (for a sim group of its own). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export interface SyncNodeSpec {
  name: string;
  stateDir: string;
  /** The management API's host: --listen HOST:PORT, with apiPort, or else any free port at the first start and that same port at every restart. */
  apiHost: string;
  apiPort?: number;
  /** --sync-listen HOST:PORT, and where the peer reaches it. */
  syncHost: string;
  syncPort: number;
  /** This node's address with prefix, given as sync.localAddresses. */
  localAddress: string;
  /** More flags (the backend). */
  args: string[];
  netns?: string;
}

export class SyncNode {
  d?: RunningDaemon;
  token = '';
  /** Every process of this node so far, oldest first (their logs stay readable). */
  readonly generations: RunningDaemon[] = [];
  private apiPort?: number;

  constructor(
    private readonly t: TestContextLike,
    readonly spec: SyncNodeSpec,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  /** Spawns carpd (again, after kill()) and resolves once it listens. */
  async start(): Promise<this> {
    const s = this.spec;
    const args = ['--listen', `${s.apiHost}:${this.apiPort ?? s.apiPort ?? 0}`, '--state-dir', s.stateDir, '--node-name', s.name, '--sync-listen', `${s.syncHost}:${s.syncPort}`, ...s.args];
    this.d = await startDaemon(this.t, args, s.netns ? { netns: s.netns } : {});
    this.generations.push(this.d);
    this.apiPort = this.d.port; // a restart comes back on the same ports
    await this.d.waitForEvent('sync.listening');
    this.token = readFileSync(path.join(s.stateDir, 'admin.token'), 'utf8').trim();
    return this;
  }

  /** SIGKILL by pid; resolves once the process is gone. */
  async kill(): Promise<void> {
    const d = this.d;
    if (!d) return;
    d.kill('SIGKILL');
    await d.exited;
  }

  /** A request to the management API with the admin token. */
  api(method: string, url: string, body?: unknown): Promise<Reply> {
    if (!this.d) throw new Error(`${this.name} is not started`);
    return call(this.d.port, method, url, { host: this.spec.apiHost, token: this.token, body });
  }

  async get(url: string): Promise<any> {
    const r = await this.api('GET', url);
    assert.equal(r.status, 200, `${this.name} GET ${url}: ${r.text}`);
    return r.body;
  }

  /** GET /v1/sync. */
  sync(): Promise<any> {
    return this.get('/v1/sync');
  }

  /** GET /v1/vips items, sorted by interface and vhid. */
  async vips(): Promise<any[]> {
    const items = (await this.get('/v1/vips')).items as any[];
    return items.sort((a, b) => a.interface.localeCompare(b.interface) || a.vhid - b.vhid);
  }

  /** GET /v1/config/revisions. */
  revisions(): Promise<{ current: number; items: { revision: number; summary: string; actor: string }[] }> {
    return this.get('/v1/config/revisions');
  }

  /** Every log line of every process of this node. */
  logs(): LogLine[] {
    return this.generations.flatMap((g) => g.logs);
  }
}

/** The user's pairing: fingerprints from GET /v1/sync, then PATCH /v1/sync on the secondary and on the primary. */
export async function pair(primary: SyncNode, secondary: SyncNode): Promise<void> {
  const [fp, fs] = await Promise.all([primary.sync(), secondary.sync()]).then((x) => x.map((s) => s.identity.fingerprint as string));
  assert.notEqual(fp, fs);
  const link = async (self: SyncNode, other: SyncNode, otherFingerprint: string, role: 'primary' | 'secondary') => {
    const r = await self.api('PATCH', '/v1/sync', {
      role,
      peer: { address: other.spec.syncHost, port: other.spec.syncPort, fingerprint: otherFingerprint },
      localAddresses: [self.spec.localAddress],
    });
    assert.equal(r.status, 200, `${self.name} PATCH /v1/sync: ${r.text}`);
    assert.equal(r.body.role, role);
  };
  // The secondary first, so that the primary's first push finds it ready.
  await link(secondary, primary, fp, 'secondary');
  await link(primary, secondary, fs, 'primary');
}

/**
 * Waits until the secondary has applied the primary's current revision (its GET /v1/sync
 * peerRevision, which is its stored appliedRevision, equals the primary's localRevision) and
 * the primary has heard so (its peerRevision too). Resolves with both GET /v1/sync bodies.
 */
export async function converged(primary: SyncNode, secondary: SyncNode, limitMs = 60_000): Promise<{ p: any; s: any }> {
  return pollUntil(
    `${secondary.name} caught up with ${primary.name}`,
    async () => {
      const [p, s] = await Promise.all([primary.sync(), secondary.sync()]);
      return { p, s };
    },
    ({ p, s }) => s.peerRevision === p.localRevision && p.peerRevision === p.localRevision && p.pending === false,
    limitMs,
  );
}

/** What the secondary should hold for a VIP of the primary: its skew + 100 (capped at 254), other fields equal. */
export function derivedVip(v: any, swap?: { peer: string }): any {
  const d = { ...v };
  delete d.live;
  if (d.protocol === 'vrrpv3') d.vrrpPriority = Math.max(d.vrrpPriority - 100, 1);
  else d.advskew = Math.min(d.advskew + 100, 254);
  if (swap && d.mode === 'unicast') d.peer = swap.peer;
  return d;
}

/** A VIP list without the live part (state differs per node), for comparisons of configuration. */
export function configOf(vips: any[]): any[] {
  return vips.map((v) => {
    const c = { ...v };
    delete c.live;
    return c;
  });
}
