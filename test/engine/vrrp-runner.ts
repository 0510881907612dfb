/**
 * Runs VRRPv3 engine scenario files (test/engine/vrrp-scenarios/*.txt) in the format of the CARP
 * ones (runner.ts, whose parser it shares): a prose header of "#" lines, then commands for one
 * or more nodes on a simulated LAN with a manual clock. Each group of commands is followed by
 * "----" and the output it must produce, up to the next blank line. UPDATE_SCENARIOS=1 rewrites
 * those blocks.
 *
 * Commands (times in ms, fractions allowed):
 *   node NAME [vrid=1] [priority=100] [interval=100] [preempt=true] [demotion=0] [addr=192.0.2.x]
 *                            a node (in INIT); interval in centiseconds; addr is its primary
 *                            address, by default 192.0.2.11 for the first node, .12 for the next…
 *   up NAME…                 the VRID can run (link up, addresses)
 *   down NAME [reason…]      link down / no addresses
 *   leave NAME               shutdown (a MASTER sends priority 0)
 *   force NAME backup|master the administrator moves the VRID
 *   set NAME key=value…      settings change (priority, interval, preempt, demotion, addr)
 *   kill NAME…               the node dies: sends nothing, hears nothing, its timers are gone
 *   boot NAME…               a killed node starts again with a fresh engine (INIT)
 *   partition A B…           cut the links A–B (both ways);  isolate A: cut all of A's links
 *   heal [A B]               restore one link, or all
 *   latency MS               delivery delay of every advertisement (default 0)
 *   trace on|off             also print sends and VIP installs/removals
 *   run MS                   advance the clock, processing timers and deliveries in time order
 *   state                    print every node's state, advertised priority and intervals
 * Transitions print as "t=MS NAME: FROM -> TO [cause] (reason)". Events due at the same instant
 * are processed in the order they were scheduled; events due now are processed after every
 * command.
 */
import { vrrpAdvertisedPriority, vrrpInitialState, vrrpMasterDownIntervalMs, vrrpStep } from '../../src/engine/vrrp.js';
import type { TimerName } from '../../src/engine/types.js';
import type { VrrpAdvert, VrrpInput, VrrpSettings, VrrpState } from '../../src/engine/vrrp-types.js';
import { parseScenario, type Block } from './runner.js';

interface SimNode {
  name: string;
  settings: VrrpSettings;
  engine: VrrpState;
  alive: boolean;
  timers: Map<TimerName, { dueNs: number; seq: number }>;
}

interface Delivery {
  dueNs: number;
  seq: number;
  from: string;
  to: string;
  advert: VrrpAdvert;
}

const NS_PER_MS = 1_000_000;

/** ns → "3609.375" (ms, trailing zeros dropped). */
function fmtMs(ns: number): string {
  return Number.isInteger(ns / NS_PER_MS) ? String(ns / NS_PER_MS) : (ns / NS_PER_MS).toFixed(6).replace(/0+$/, '');
}

function parseMs(v: string | undefined): number {
  const ms = Number(v);
  if (v === undefined || !Number.isFinite(ms) || ms < 0) throw new Error(`bad duration ${v}`);
  return Math.round(ms * NS_PER_MS);
}

function applySettings(s: VrrpSettings, kvs: string[]): VrrpSettings {
  const n = { ...s };
  for (const kv of kvs) {
    const [k, v] = kv.split('=', 2);
    if (v === undefined) throw new Error(`expected key=value, got ${kv}`);
    if (k === 'preempt') {
      if (v !== 'true' && v !== 'false') throw new Error(`preempt=${v}`);
      n.preempt = v === 'true';
    } else if (k === 'vrid' || k === 'priority' || k === 'demotion') n[k] = Number(v);
    else if (k === 'interval') n.intervalCs = Number(v);
    else if (k === 'addr') n.primaryAddress = v;
    else throw new Error(`unknown setting ${k}`);
  }
  return n;
}

export class VrrpLan {
  private nowNs = 0;
  private seq = 0;
  private latencyNs = 0;
  private trace = false;
  private readonly nodes = new Map<string, SimNode>();
  private readonly cuts = new Set<string>();
  private deliveries: Delivery[] = [];
  private out: string[] = [];

  /** Runs one command line and returns what it printed. */
  exec(line: string): string[] {
    this.out = [];
    const [cmd, ...args] = line.trim().split(/\s+/);
    const names = () => args.map((a) => this.node(a));
    switch (cmd) {
      case 'node':
        this.addNode(args);
        break;
      case 'up':
        for (const n of names()) this.feed(n, { kind: 'up' });
        break;
      case 'down':
        this.feed(this.node(args[0]), { kind: 'down', reason: args.slice(1).join(' ') || 'link down' });
        break;
      case 'leave':
        this.feed(this.node(args[0]), { kind: 'leave' });
        break;
      case 'force': {
        const state = args[1]?.toUpperCase();
        if (state !== 'BACKUP' && state !== 'MASTER') throw new Error(`force ${args[1]}`);
        this.feed(this.node(args[0]), { kind: 'force', state });
        break;
      }
      case 'set': {
        const n = this.node(args[0]);
        n.settings = applySettings(n.settings, args.slice(1));
        this.feed(n, { kind: 'settings', settings: n.settings });
        break;
      }
      case 'kill':
        for (const n of names()) {
          n.alive = false;
          n.timers.clear();
        }
        break;
      case 'boot':
        for (const n of names()) {
          if (n.alive) throw new Error(`${n.name} is not dead`);
          n.alive = true;
          n.engine = vrrpInitialState(n.settings, this.nowNs / NS_PER_MS);
        }
        break;
      case 'partition':
        for (const b of args.slice(1)) this.cuts.add(this.link(args[0], b));
        break;
      case 'isolate':
        for (const b of this.nodes.keys()) if (b !== args[0]) this.cuts.add(this.link(args[0], b));
        break;
      case 'heal':
        if (args.length === 0) this.cuts.clear();
        else this.cuts.delete(this.link(args[0], args[1]));
        break;
      case 'latency':
        this.latencyNs = parseMs(args[0]);
        break;
      case 'trace':
        this.trace = args[0] === 'on';
        break;
      case 'run':
        this.advance(this.nowNs + parseMs(args[0]));
        return this.out;
      case 'state':
        for (const n of this.nodes.values()) this.out.push(this.describe(n));
        break;
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    this.advance(this.nowNs);
    return this.out;
  }

  private describe(n: SimNode): string {
    if (!n.alive) return `${n.name}: dead`;
    const e = n.engine;
    const p = vrrpAdvertisedPriority(e.settings);
    if (e.state === 'MASTER') return `${n.name}: MASTER priority=${p} interval=${e.settings.intervalCs}`;
    if (e.state === 'INIT') return `${n.name}: INIT`;
    const down = vrrpMasterDownIntervalMs(p, e.masterAdverIntervalCs);
    return `${n.name}: BACKUP priority=${p} master_adver_interval=${e.masterAdverIntervalCs} master_down=${fmtMs(down * NS_PER_MS)}`;
  }

  private node(name: string | undefined): SimNode {
    const n = name === undefined ? undefined : this.nodes.get(name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  private link(a: string, b: string | undefined): string {
    this.node(a);
    this.node(b);
    return [a, b].sort().join('\u0000');
  }

  private addNode(args: string[]): void {
    const [name, ...kvs] = args;
    if (!name || this.nodes.has(name)) throw new Error(`node name ${name} missing or taken`);
    const defaults: VrrpSettings = {
      vrid: 1,
      priority: 100,
      intervalCs: 100,
      preempt: true,
      demotion: 0,
      primaryAddress: `192.0.2.${11 + this.nodes.size}`,
    };
    const settings = applySettings(defaults, kvs);
    this.nodes.set(name, { name, settings, engine: vrrpInitialState(settings, this.nowNs / NS_PER_MS), alive: true, timers: new Map() });
  }

  private log(n: SimNode, text: string): void {
    this.out.push(`t=${fmtMs(this.nowNs)} ${n.name}: ${text}`);
  }

  private feed(n: SimNode, input: VrrpInput): void {
    if (!n.alive) return;
    const r = vrrpStep(n.engine, input, this.nowNs / NS_PER_MS);
    n.engine = r.state;
    for (const a of r.actions) {
      switch (a.kind) {
        case 'arm':
          n.timers.set(a.timer, { dueNs: this.nowNs + Math.round(a.afterMs * NS_PER_MS), seq: ++this.seq });
          break;
        case 'cancel':
          n.timers.delete(a.timer);
          break;
        case 'send':
          if (this.trace) this.log(n, `send priority=${a.priority} interval=${a.intervalCs}`);
          this.send(n, { priority: a.priority, intervalCs: a.intervalCs });
          break;
        case 'transition':
          this.log(n, `${a.from} -> ${a.to} [${a.cause}] (${a.reason})`);
          break;
        case 'install-vips':
        case 'remove-vips':
          if (this.trace) this.log(n, a.kind);
          break;
      }
    }
  }

  /** Multicast to 224.0.0.18 reaches every node of the VRID on the LAN. */
  private send(from: SimNode, advert: VrrpAdvert): void {
    for (const to of this.nodes.values()) {
      if (to === from || to.settings.vrid !== from.settings.vrid) continue;
      if (this.cuts.has(this.link(from.name, to.name))) continue;
      this.deliveries.push({ dueNs: this.nowNs + this.latencyNs, seq: ++this.seq, from: from.settings.primaryAddress, to: to.name, advert });
    }
  }

  /** Processes every timer and delivery due up to `endNs`, earliest first, then sets the clock. */
  private advance(endNs: number): void {
    for (;;) {
      let best: { dueNs: number; seq: number; run: () => void } | undefined;
      const consider = (dueNs: number, seq: number, run: () => void) => {
        if (dueNs <= endNs && (!best || dueNs < best.dueNs || (dueNs === best.dueNs && seq < best.seq))) best = { dueNs, seq, run };
      };
      for (const n of this.nodes.values()) {
        if (!n.alive) continue;
        for (const [timer, t] of n.timers) {
          consider(t.dueNs, t.seq, () => {
            n.timers.delete(timer);
            this.feed(n, { kind: 'timer', timer });
          });
        }
      }
      for (const d of this.deliveries) {
        consider(d.dueNs, d.seq, () => {
          this.deliveries = this.deliveries.filter((x) => x !== d);
          this.feed(this.node(d.to), { kind: 'advert', from: d.from, ...d.advert });
        });
      }
      if (!best) break;
      this.nowNs = best.dueNs;
      best.run();
    }
    this.nowNs = endNs;
  }
}

export interface VrrpScenarioResult {
  blocks: { block: Block; actual: string[] }[];
  /** The file with every expected block replaced by the actual output. */
  rewritten: string;
}

export function runVrrpScenario(text: string): VrrpScenarioResult {
  const { lines, blocks } = parseScenario(text);
  const lan = new VrrpLan();
  const results = blocks.map((block) => {
    const actual: string[] = [];
    for (const c of block.commands) {
      try {
        actual.push(...lan.exec(c.text));
      } catch (e) {
        throw new Error(`line ${c.line} (${c.text}): ${(e as Error).message}`);
      }
    }
    return { block, actual };
  });
  const out = [...lines];
  for (const { block, actual } of [...results].reverse()) {
    if (block.outStart >= 0) out.splice(block.outStart, block.outEnd - block.outStart, ...actual);
    else {
      while (out.length > 0 && out[out.length - 1].trim() === '') out.pop();
      out.push('----', ...actual, '');
    }
  }
  return { blocks: results, rewritten: out.join('\n') };
}
