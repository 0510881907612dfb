/**
 * The simulated LAN and the scenario-file machinery both engine runners share (runner.ts for
 * CARP, vrrp-runner.ts for VRRPv3), in the manner of etcd raft's datadriven tests.
 *
 * A scenario file is a prose header of "#" lines, then commands for one or more nodes on a
 * simulated LAN with a manual clock. Each group of commands is followed by "----" and the
 * output it must produce, up to the next blank line. UPDATE_SCENARIOS=1 rewrites those blocks.
 *
 * The LAN holds the nodes, a clock in ns, the timers each engine has armed, the advertisements
 * in flight, cut links and a delivery latency. It runs the commands every engine shares (up,
 * down, leave, force, set, kill, boot, partition, isolate, heal, latency, trace, run, state);
 * a SimEngine says what differs: how a `node` or `set` line's settings are parsed, how a node
 * starts and steps, which nodes hear its adverts and from which address, and how sends,
 * transitions and states print. Events due at the same instant are processed in the order they
 * were scheduled; events due now are processed after every command.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TimerName } from '../../src/engine/types.js';

export const NS_PER_MS = 1_000_000;

/** ns → "3390.625" (ms, trailing zeros dropped). */
export function fmtMs(ns: number): string {
  return Number.isInteger(ns / NS_PER_MS) ? String(ns / NS_PER_MS) : (ns / NS_PER_MS).toFixed(6).replace(/0+$/, '');
}

function parseMs(v: string | undefined): number {
  const ms = Number(v);
  if (v === undefined || !Number.isFinite(ms) || ms < 0) throw new Error(`bad duration ${v}`);
  return Math.round(ms * NS_PER_MS);
}

/** Calls set(key, value) for each key=value word; set returns false for a key it does not know. */
export function eachSetting(kvs: string[], set: (k: string, v: string) => boolean): void {
  for (const kv of kvs) {
    const [k, v] = kv.split('=', 2);
    if (v === undefined) throw new Error(`expected key=value, got ${kv}`);
    if (!set(k, v)) throw new Error(`unknown setting ${k}`);
  }
}

/** A true|false setting. */
export function flag(k: string, v: string): boolean {
  if (v !== 'true' && v !== 'false') throw new Error(`${k}=${v}`);
  return v === 'true';
}

/** The inputs the LAN gives an engine: the kinds both engines share, with the engine's own advert fields. */
export type LanInput<Settings, Advert> =
  | { kind: 'up' }
  | { kind: 'down'; reason: string }
  | ({ kind: 'advert'; from: string } & Advert)
  | { kind: 'timer'; timer: TimerName }
  | { kind: 'settings'; settings: Settings }
  | { kind: 'force'; state: 'BACKUP' | 'MASTER' }
  | { kind: 'leave' };

/** The actions an engine returns: the kinds both engines share, with their own send and transition fields. */
export type LanAction<Send, Transition> =
  | { kind: 'arm'; timer: TimerName; afterMs: number }
  | { kind: 'cancel'; timer: TimerName }
  | ({ kind: 'send' } & Send)
  | ({ kind: 'transition' } & Transition)
  | { kind: 'install-vips' }
  | { kind: 'remove-vips' };

export interface SimNode<Settings, State> {
  readonly name: string;
  /** How many nodes were made before it. */
  readonly index: number;
  /** The address its `node` line gave, if any. */
  readonly addr?: string;
  /** Set: its adverts reach that node only (unicast); otherwise every node of its group. */
  readonly peer?: string;
  settings: Settings;
  engine: State;
  alive: boolean;
  readonly timers: Map<TimerName, { dueNs: number; seq: number }>;
}

/** What one engine brings to the LAN. */
export interface SimEngine<Settings, State, Advert, Send, Transition> {
  /** A new node from the key=value words of its `node` line; index counts the nodes made before it. */
  create(kvs: string[], index: number): { settings: Settings; addr?: string; peer?: string };
  /** The settings after `set NAME key=value…`. */
  update(settings: Settings, kvs: string[]): Settings;
  /** A fresh engine (INIT) for a new or booted node. */
  init(node: Pick<SimNode<Settings, State>, 'settings' | 'index'>, nowMs: number): State;
  step(state: State, input: LanInput<Settings, Advert>, nowMs: number): { state: State; actions: LanAction<Send, Transition>[] };
  /** The group whose members hear each other's multicast (vhid, VRID). */
  group(settings: Settings): number;
  /** The source address of a node's adverts. */
  source(node: SimNode<Settings, State>): string;
  /** The advertisement a send action puts on the LAN. */
  advert(send: Send): Advert;
  /** Trace lines after "t=MS NAME: ". */
  showSend(send: Send, node: SimNode<Settings, State>): string;
  showTransition(transition: Transition): string;
  /** A live node's `state` line after "NAME: ". */
  showState(engine: State): string;
}

interface Delivery<Advert> {
  dueNs: number;
  seq: number;
  from: string;
  to: string;
  advert: Advert;
}

export class SimLan<Settings, State, Advert, Send, Transition> {
  private nowNs = 0;
  private seq = 0;
  private latencyNs = 0;
  private trace = false;
  private readonly nodes = new Map<string, SimNode<Settings, State>>();
  private readonly cuts = new Set<string>();
  private deliveries: Delivery<Advert>[] = [];
  private out: string[] = [];

  constructor(private readonly engine: SimEngine<Settings, State, Advert, Send, Transition>) {}

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
        n.settings = this.engine.update(n.settings, args.slice(1));
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
          n.engine = this.engine.init(n, this.nowNs / NS_PER_MS);
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
        for (const n of this.nodes.values()) this.out.push(`${n.name}: ${n.alive ? this.engine.showState(n.engine) : 'dead'}`);
        break;
      default:
        throw new Error(`unknown command ${cmd}`);
    }
    this.advance(this.nowNs);
    return this.out;
  }

  private node(name: string | undefined): SimNode<Settings, State> {
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
    const index = this.nodes.size;
    const { settings, addr, peer } = this.engine.create(kvs, index);
    const engine = this.engine.init({ settings, index }, this.nowNs / NS_PER_MS);
    this.nodes.set(name, { name, index, addr, peer, settings, engine, alive: true, timers: new Map() });
  }

  private log(n: SimNode<Settings, State>, text: string): void {
    this.out.push(`t=${fmtMs(this.nowNs)} ${n.name}: ${text}`);
  }

  private feed(n: SimNode<Settings, State>, input: LanInput<Settings, Advert>): void {
    if (!n.alive) return;
    const r = this.engine.step(n.engine, input, this.nowNs / NS_PER_MS);
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
          if (this.trace) this.log(n, this.engine.showSend(a, n));
          this.send(n, this.engine.advert(a));
          break;
        case 'transition':
          this.log(n, this.engine.showTransition(a));
          break;
        case 'install-vips':
        case 'remove-vips':
          if (this.trace) this.log(n, a.kind);
          break;
      }
    }
  }

  /** Multicast reaches every node of the group on the LAN; unicast (peer) only the peer. */
  private send(from: SimNode<Settings, State>, advert: Advert): void {
    const group = this.engine.group(from.settings);
    for (const to of this.nodes.values()) {
      if (to === from || this.engine.group(to.settings) !== group) continue;
      if (from.peer !== undefined && to.name !== from.peer) continue;
      if (this.cuts.has(this.link(from.name, to.name))) continue;
      this.deliveries.push({ dueNs: this.nowNs + this.latencyNs, seq: ++this.seq, from: this.engine.source(from), to: to.name, advert });
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

export interface Block {
  /** 1-based line numbers and text of the commands. */
  commands: { line: number; text: string }[];
  expected: string[];
  /** Line index range [outStart, outEnd) of the expected output; outStart -1 when "----" is missing. */
  outStart: number;
  outEnd: number;
}

export function parseScenario(text: string): { lines: string[]; blocks: Block[] } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let commands: Block['commands'] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() === '----') {
      let j = i + 1;
      while (j < lines.length && lines[j].trim() !== '') j++;
      blocks.push({ commands, expected: lines.slice(i + 1, j), outStart: i + 1, outEnd: j });
      commands = [];
      i = j;
      continue;
    }
    const cmd = lines[i].replace(/#.*$/, '').trim();
    if (cmd !== '') commands.push({ line: i + 1, text: cmd });
  }
  if (commands.length > 0) blocks.push({ commands, expected: [], outStart: -1, outEnd: -1 });
  return { lines, blocks };
}

export interface ScenarioResult {
  blocks: { block: Block; actual: string[] }[];
  /** The file with every expected block replaced by the actual output. */
  rewritten: string;
}

/** Runs a scenario file's commands on a fresh LAN of the engine. */
export function runScenarioOn<Settings, State, Advert, Send, Transition>(
  engine: SimEngine<Settings, State, Advert, Send, Transition>,
  text: string,
): ScenarioResult {
  const { lines, blocks } = parseScenario(text);
  const lan = new SimLan(engine);
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

/**
 * Every *.txt under `dir` as its own test, named "LABEL FILE": each block's output must equal
 * its expected block; with UPDATE_SCENARIOS=1 the file is rewritten with the actual output.
 */
export function testScenarioFiles(dir: string, label: string, run: (text: string) => ScenarioResult): void {
  const update = process.env.UPDATE_SCENARIOS === '1';
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    test(`${label} ${file}`, () => {
      const path = join(dir, file);
      const text = readFileSync(path, 'utf8');
      const r = run(text);
      if (update) {
        if (r.rewritten !== text) writeFileSync(path, r.rewritten);
        return;
      }
      for (const { block, actual } of r.blocks) {
        const where = `${file}:${block.commands[0]?.line ?? '?'}: ${block.commands.map((c) => c.text).join('; ')}`;
        assert.ok(block.outStart >= 0, `${where}: no "----" expected block`);
        assert.equal(actual.join('\n'), block.expected.join('\n'), where);
      }
    });
  }
}
