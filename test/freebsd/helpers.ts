/**
 * Shared pieces of the real-kernel tests: whether this host can run them, the commands that set
 * up and inspect the kernel independently of carpd (ifconfig, sysctl, kldstat; carpd itself never
 * forks them), parsers for ifconfig(8)'s output, and cleanup that runs even when a test fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { platform, tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { KernelBackend, LiveVhid } from '../../src/kernel/backend.js';
import { KernelError } from '../../src/kernel/errno.js';
import { openFreebsdBackend } from '../../src/kernel/freebsd/backend.js';

/** devd(8)'s stream socket, where the backend hears about CARP state changes. */
export const DEVD_PIPE = '/var/run/devd.pipe';

// ---- when the tests can run -----------------------------------------------------------------------

let cachedSkip: string | false | undefined;

/**
 * false on FreeBSD as root with carp(4) and pfsync(4) loaded; otherwise the one-line reason to
 * skip. Every reason starts with "FreeBSD only": the Linux CI accepts only those skips, and the
 * FreeBSD CI fails on them, because there these tests must run.
 */
export function skipReason(): string | false {
  cachedSkip ??= probeHost();
  return cachedSkip;
}

function probeHost(): string | false {
  if (platform() !== 'freebsd') return `FreeBSD only: this host is ${platform()}`;
  if (process.getuid?.() !== 0) return 'FreeBSD only: needs root (carp(4) and pfsync(4) are configured by root only)';
  if (!kldLoaded('carp')) return 'FreeBSD only: carp(4) not loaded (kldload carp)';
  if (!kldLoaded('pfsync')) return 'FreeBSD only: pfsync(4) not loaded (kldload pf pfsync)';
  return false;
}

function kldLoaded(module: string): boolean {
  return spawnSync('kldstat', ['-q', '-m', module]).status === 0;
}

// ---- commands -------------------------------------------------------------------------------------

/** A fixed environment: IFCONFIG_FORMAT would change how addresses are printed. */
const ENV: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
delete ENV.IFCONFIG_FORMAT;

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

export function tryRun(cmd: string, args: string[]): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: ENV, timeout: 30_000 });
  if (r.error) return { ok: false, stdout: '', stderr: r.error.message };
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

export function run(cmd: string, args: string[]): string {
  const r = tryRun(cmd, args);
  if (!r.ok) throw new Error(`${[cmd, ...args].join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export function sysctlInt(name: string): number {
  const text = run('sysctl', ['-n', name]).trim();
  const n = Number(text);
  if (text === '' || !Number.isInteger(n)) throw new Error(`sysctl ${name} is not an integer: ${JSON.stringify(text)}`);
  return n;
}

export function setSysctl(name: string, value: number): void {
  run('sysctl', [`${name}=${value}`]);
}

/** net.inet.carp.demotion: the sum of every demotion on the host (a write adds to it). */
export function demotion(): number {
  return sysctlInt('net.inet.carp.demotion');
}

export function freebsdMajor(): number {
  return Math.floor(sysctlInt('kern.osreldate') / 100000);
}

// ---- ifconfig(8) output ---------------------------------------------------------------------------

/** `\tcarp: MASTER vhid 1 advbase 1 advskew 100` and, on 14+, `\t      peer 224.0.0.18 peer6 ff02::12` (sbin/ifconfig/carp.c). */
export interface IfconfigCarp {
  state: string;
  vhid: number;
  advbase: number;
  advskew: number;
  peer?: string;
  peer6?: string;
}

/** `\tinet 192.0.2.1 netmask 0xffffff00 broadcast 192.0.2.255 vhid 1`, `\tinet6 2001:db8::1 prefixlen 64 vhid 1`. */
export interface IfconfigAddress {
  family: 4 | 6;
  address: string;
  prefix: number;
  vhid?: number;
}

export interface Ifconfig {
  name: string;
  flags: string[];
  carp: IfconfigCarp[];
  addresses: IfconfigAddress[];
  /** Every `key: value` pair, as pfsync0 prints its settings (`syncdev: epair0b maxupd: 64 defer: on version: 1400`). */
  fields: Map<string, string>;
  text: string;
}

function valueAfter(tokens: string[], key: string): string | undefined {
  const i = tokens.indexOf(key);
  return i >= 0 ? tokens[i + 1] : undefined;
}

function maskBits(hex: string): number {
  let n = Number.parseInt(hex, 16);
  let bits = 0;
  while (n) {
    bits += n & 1;
    n >>>= 1;
  }
  return bits;
}

export function parseIfconfig(text: string): Ifconfig {
  const lines = text.split('\n');
  const head = /^(\S+): flags=[0-9a-f]+<([^>]*)>/.exec(lines[0] ?? '');
  assert.ok(head, `not ifconfig output: ${JSON.stringify(lines[0])}`);
  const out: Ifconfig = { name: head[1], flags: head[2] ? head[2].split(',') : [], carp: [], addresses: [], fields: new Map(), text };
  for (const line of lines.slice(1)) {
    const carp = /^\s+carp: (\S+) vhid (\d+) advbase (\d+) advskew (\d+)/.exec(line);
    if (carp) {
      out.carp.push({ state: carp[1], vhid: Number(carp[2]), advbase: Number(carp[3]), advskew: Number(carp[4]) });
      continue;
    }
    const peer = /^\s+peer (\S+) peer6 (\S+)/.exec(line);
    if (peer && out.carp.length > 0) {
      Object.assign(out.carp[out.carp.length - 1], { peer: peer[1], peer6: peer[2] });
      continue;
    }
    const tokens = line.trim().split(/\s+/);
    const vhidText = valueAfter(tokens, 'vhid');
    const vhid = vhidText === undefined ? {} : { vhid: Number(vhidText) };
    if (tokens[0] === 'inet' && tokens[1]) {
      const [address, cidr] = tokens[1].split('/');
      const mask = valueAfter(tokens, 'netmask');
      const prefix = cidr !== undefined ? Number(cidr) : mask?.startsWith('0x') ? maskBits(mask.slice(2)) : NaN;
      out.addresses.push({ family: 4, address, prefix, ...vhid });
      continue;
    }
    if (tokens[0] === 'inet6' && tokens[1]) {
      const [withScope, cidr] = tokens[1].split('/');
      const plen = valueAfter(tokens, 'prefixlen');
      out.addresses.push({ family: 6, address: withScope.split('%')[0], prefix: Number(cidr ?? plen), ...vhid });
      continue;
    }
    for (let i = 0; i + 1 < tokens.length; i++) {
      if (tokens[i].endsWith(':') && tokens[i].length > 1) out.fields.set(tokens[i].slice(0, -1), tokens[i + 1]);
    }
  }
  return out;
}

export function ifconfig(iface: string): Ifconfig {
  return parseIfconfig(run('ifconfig', [iface]));
}

export function carpOf(k: Ifconfig, vhid: number): IfconfigCarp {
  const c = k.carp.find((x) => x.vhid === vhid);
  assert.ok(c, `ifconfig ${k.name} shows no carp vhid ${vhid}:\n${k.text}`);
  return c;
}

/** The addresses bound to `vhid` as ifconfig prints them, in CIDR form, sorted. */
export function vhidAddresses(k: Ifconfig, vhid: number): string[] {
  return k.addresses
    .filter((a) => a.vhid === vhid)
    .map((a) => `${a.address}/${a.prefix}`)
    .sort();
}

export function hasAddress(k: Ifconfig, address: string): boolean {
  return k.addresses.some((a) => a.address === address);
}

// ---- cleanup ------------------------------------------------------------------------------------

/**
 * Undo steps run last-registered-first in one after hook, each attempted even when an earlier
 * one failed, so that an epair is destroyed and a sysctl put back whatever went wrong before.
 */
export class Cleanup {
  private readonly steps: { what: string; fn: () => unknown }[] = [];

  constructor(t: TestContext) {
    t.after(() => this.runAll());
  }

  add(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  private async runAll(): Promise<void> {
    const failures: string[] = [];
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.fn();
      } catch (e) {
        failures.push(`${step.what}: ${(e as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`cleanup failed:\n${failures.join('\n')}`);
  }
}

// ---- fixtures -------------------------------------------------------------------------------------

export interface Epair {
  a: string;
  b: string;
}

/** A fresh epair(4), both ends up, destroyed by the cleanup. */
export function createEpair(c: Cleanup): Epair {
  const a = run('ifconfig', ['epair', 'create']).trim();
  const m = /^(epair\d+)a$/.exec(a);
  assert.ok(m, `ifconfig epair create printed ${JSON.stringify(a)}`);
  const b = `${m[1]}b`;
  c.add(`destroy ${a}`, () => {
    if (tryRun('ifconfig', [a]).ok) run('ifconfig', [a, 'destroy']);
  });
  for (const i of [a, b]) {
    run('ifconfig', [i, 'up']);
    // devd applies rc.conf's ipv6_activate_all_interfaces=NO to new interfaces (ifdisabled). Then
    // IPv6 advertisements fail, and carp(4) can add its send-error demotion, which it does not
    // take back when the vhid goes away.
    run('ifconfig', [i, 'inet6', '-ifdisabled']);
  }
  return { a, b };
}

export function makeStateDir(c: Cleanup): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-kernel-'));
  c.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The backend on the real libc.so.7 and libnv, closed by the cleanup (closing twice is harmless). */
export async function openBackend(c: Cleanup, stateDir: string): Promise<KernelBackend> {
  const b = await openFreebsdBackend({ stateDir });
  c.add('close the backend', () => b.close());
  return b;
}

export async function vhidOf(b: KernelBackend, iface: string, vhid: number): Promise<LiveVhid> {
  const list = await b.listVhids();
  const v = list.find((x) => x.interface === iface && x.vhid === vhid);
  assert.ok(v, `listVhids has no ${iface} vhid ${vhid}: ${JSON.stringify(list)}`);
  return v;
}

// ---- waiting and errors -----------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` returns a value (not undefined/false); fails after `ms` with what was last seen. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms: number, seen?: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`no ${what} within ${ms} ms${seen ? `; last seen: ${seen()}` : ''}`);
    await sleep(200);
  }
}

export async function rejectsWith(p: Promise<unknown>, errnoName: string, iface?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KernelError, `expected KernelError, got ${String(e)}`);
    assert.equal(e.errnoName, errnoName, e.message);
    if (iface !== undefined) assert.equal(e.iface, iface, e.message);
    return true;
  });
}
