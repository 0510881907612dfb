#!/usr/bin/env node
/**
 * `npm run demo`: two carpd processes on this machine, backend sim, elect a CARP master over
 * UDP multicast on loopback; the master is killed, the backup takes over within the
 * master-down interval, the killed node comes back and preempts, and a graceful stop hands
 * over at once. No root needed: the VIP lives in carpd's memory, the advertisements are real.
 *
 * Everything shown is read from the nodes' API (/v1/status polled every 100 ms): each line is
 * a state change with the time carpd recorded for it and the reason it gave.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { masterDownMs } from '../engine/timing.js';
import { DEFAULT_SIM_GROUP } from '../runtime/udp.js';
import { DemoNode, type VhidStatus } from './node.js';

const IFACE = 'em0';
const VHID = 1;
const VIP = '192.0.2.10/24';
const PASSWORD = 'demo-s3cret';
const ADVBASE_SEC = 1;
const POLL_MS = 100;
/** Only ends a demo that went wrong; every wait ends on an observed state. */
const WAIT_LIMIT_MS = 30_000;

const t0 = Date.now();
const stamp = (ms = Date.now()) => `[${((ms - t0) / 1000).toFixed(3).padStart(7)} s]`;
const say = (text: string, at?: number) => console.log(`${stamp(at)} ${text}`);
const heading = (text: string) => console.log(`\n== ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port that nothing listens on right now, or 0 (any free port) when it is taken. */
function portOrAny(port: number): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(0));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(port)));
  });
}

/** Polls every node's vhid and prints each change of state as carpd recorded it. */
class Watcher {
  private readonly last = new Map<string, { state: string; since: string }>();
  private timer?: NodeJS.Timeout;
  readonly current = new Map<string, VhidStatus | undefined>();

  constructor(private readonly nodes: DemoNode[]) {}

  start(): void {
    const tick = async () => {
      await this.poll();
      this.timer = setTimeout(tick, POLL_MS);
    };
    void tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  async poll(): Promise<void> {
    const seen: { at: number; line: string }[] = [];
    await Promise.all(
      this.nodes.map(async (n) => {
        const v = await n.vhid(IFACE, VHID);
        this.current.set(n.name, v);
        if (!v) return;
        const prev = this.last.get(n.name);
        if (prev && prev.state === v.state && prev.since === v.since) return;
        this.last.set(n.name, { state: v.state, since: v.since });
        // A vhid seen for the first time (new, or its node restarted) started in INIT.
        const from = prev ? prev.state : 'INIT';
        seen.push({ at: Date.parse(v.since), line: `${n.name.padEnd(6)} ${IFACE} vhid ${VHID}  ${`${from} -> ${v.state}`.padEnd(16)} ${v.reason}` });
      }),
    );
    for (const e of seen.sort((x, y) => x.at - y.at)) say(e.line, e.at);
  }

  /** The node forgets what it saw of `name` (it is being restarted). */
  forget(name: string): void {
    this.last.delete(name);
    this.current.delete(name);
  }

  async until(what: string, done: () => boolean): Promise<void> {
    const deadline = Date.now() + WAIT_LIMIT_MS;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
      await sleep(POLL_MS / 2);
    }
  }

  state(n: DemoNode): string | undefined {
    return this.current.get(n.name)?.state;
  }
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-demo-'));
  // A group port of its own, so that the demo's vhid never meets another sim cluster on this machine.
  const group = `${DEFAULT_SIM_GROUP.address}:${20000 + Math.floor(Math.random() * 40000)}`;
  const [pa, pb] = [await portOrAny(18080), await portOrAny(18081)];
  const a = new DemoNode('node-a', path.join(root, 'node-a'), pa, group);
  const b = new DemoNode('node-b', path.join(root, 'node-b'), pb, group);
  const nodes = [a, b];
  const watcher = new Watcher(nodes);
  const skew = new Map([[a.name, 0], [b.name, 100]]);

  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    watcher.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(root, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

  try {
    console.log(`carpd sim demo: two carpd processes elect a CARP master over UDP multicast ${group} on 127.0.0.1`);
    console.log(`state dirs under ${root}; times are seconds since the demo started, as carpd recorded them`);

    heading('Start two nodes');
    say(`starting ${a.name} and ${b.name} (carpd --backend sim --sim-group ${group})`);
    await Promise.all(nodes.map((n) => n.start()));
    for (const n of nodes) say(`${n.name.padEnd(6)} listening on http://127.0.0.1:${n.port}`);

    heading(`Election: the same VIP on both (${IFACE} vhid ${VHID} ${VIP}, same password), advskew 0 vs 100`);
    say(`POST /v1/vips to ${nodes.map((n) => `${n.name} (advskew ${skew.get(n.name)})`).join(' and ')}`);
    watcher.start();
    await Promise.all(
      nodes.map(async (n) => {
        const r = await n.api('POST', '/v1/vips', { interface: IFACE, vhid: VHID, addresses: [VIP], password: PASSWORD, advbase: ADVBASE_SEC, advskew: skew.get(n.name) });
        if (r.status !== 201) throw new Error(`${n.name}: POST /v1/vips answered ${r.status}: ${JSON.stringify(r.body)}`);
      }),
    );
    await watcher.until('a master and a backup', () => [watcher.state(a), watcher.state(b)].sort().join() === 'BACKUP,MASTER');
    const master = watcher.state(a) === 'MASTER' ? a : b;
    const backup = master === a ? b : a;
    await sleep(2500);
    const stats = await backup.carpStats();
    say(`${master.name} is MASTER, ${backup.name} is BACKUP; ${backup.name} has received ${stats?.ipackets ?? '?'} advertisements (${stats?.badauth ?? '?'} with a bad HMAC)`);

    heading(`Failover: SIGKILL ${master.name}, the master (no goodbye)`);
    const killedAt = Date.now();
    master.kill('SIGKILL');
    say(`${master.name.padEnd(6)} killed`, killedAt);
    await master.waitForExit();
    await watcher.until(`${backup.name} to take over`, () => watcher.state(backup) === 'MASTER');
    const tookOverAt = Date.parse(watcher.current.get(backup.name)!.since);
    const bSkew = skew.get(backup.name)!;
    const boundMs = masterDownMs(ADVBASE_SEC, bSkew);
    say(`takeover ${((tookOverAt - killedAt) / 1000).toFixed(3)} s after the kill; bound 3 x advbase + advskew/256 = 3 x ${ADVBASE_SEC} + ${bSkew}/256 = ${(boundMs / 1000).toFixed(3)} s`);
    console.log(`${' '.repeat(stamp().length)} (${backup.name}'s master-down timer runs from the last advertisement it heard, up to ${ADVBASE_SEC} s before the kill)`);

    heading(`Preemption: restart ${master.name} (advskew ${skew.get(master.name)}, preempt on)`);
    watcher.forget(master.name);
    say(`${master.name.padEnd(6)} starting again; its VIP comes back from its state dir`);
    await master.restart();
    await watcher.until(`${master.name} to preempt`, () => watcher.state(master) === 'MASTER' && watcher.state(backup) === 'BACKUP');
    await sleep(1500);

    heading(`Graceful stop: SIGTERM ${master.name}, the master; it sends a bow-out advertisement`);
    const stoppedAt = Date.now();
    say(`${master.name.padEnd(6)} SIGTERM`, stoppedAt);
    await master.stop();
    await watcher.until(`${backup.name} to take over`, () => watcher.state(backup) === 'MASTER');
    const handedAt = Date.parse(watcher.current.get(backup.name)!.since);
    say(`handover ${((handedAt - stoppedAt) / 1000).toFixed(3)} s after the SIGTERM, without waiting for the master-down interval`);
    await sleep(300);
    watcher.stop();

    heading('Stop');
    await b.stop();
    await a.stop();
    say('both nodes stopped; state dirs removed');
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
