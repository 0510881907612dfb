/**
 * devd(8) as the freebsd backend hears it (src/kernel/freebsd/devd.ts): a stand-in devd stream
 * socket sends CARP lines among every other system's lines, cut at arbitrary points, with
 * dotted interface names; the client keeps retrying quietly while there is no devd, reconnects
 * when devd restarts, and the backend turns the lines into state changes with reasons and
 * re-reads every vhid after each reconnection (the events are hints, T16).
 *
 * The client's reconnection timers run on a manual clock: a test moves it past a backoff delay
 * once the attempt before has failed, so no test waits on real time for a timer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { KernelBackend, StateChange } from '../src/kernel/backend.js';
import { openFreebsdBackend } from '../src/kernel/freebsd/backend.js';
import { DevdClient, LineSplitter, parseDevdCarpLine, type DevdCarpEvent } from '../src/kernel/freebsd/devd.js';
import { LIBC, LIBNV, buildNative, useFakeKernel } from './helpers/fakebsd.js';
import { ManualClock } from './helpers/manual-clock.js';

const SAFETY_MS = 15_000;

const WORK = useFakeKernel('carpd-devd-');
let serial = 0;
const sockPath = () => path.join(WORK, `devd-${++serial}.pipe`);

function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + SAFETY_MS;
    const tick = () => {
      const v = probe();
      if (v !== undefined) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`gave up waiting for ${what}`));
      setTimeout(tick, 5);
    };
    tick();
  });
}

/** devd's stream socket: every connected client gets every line. */
class FakeDevd {
  readonly clients = new Set<Socket>();
  connections = 0;
  private server?: Server;
  constructor(readonly path: string) {}

  async listen(): Promise<this> {
    const server = createServer((s) => {
      this.connections++;
      this.clients.add(s);
      s.on('close', () => this.clients.delete(s));
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    this.server = server;
    return this;
  }

  write(text: string): void {
    for (const c of this.clients) c.write(text);
  }

  /** devd exits: clients are cut off and the socket goes away. */
  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

/** A logger that remembers the level of every line. */
function recordingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: 'trace' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

// ---- parsing --------------------------------------------------------------------------------

test('parseDevdCarpLine keeps only well-formed CARP notifications', () => {
  assert.deepEqual(parseDevdCarpLine('!system=CARP subsystem=1@em0 type=MASTER'), { vhid: 1, iface: 'em0', state: 'MASTER', line: '!system=CARP subsystem=1@em0 type=MASTER' });
  assert.deepEqual(parseDevdCarpLine('!system=CARP subsystem=255@vlan0.10 type=BACKUP\r')?.iface, 'vlan0.10');
  assert.equal(parseDevdCarpLine('!system=CARP subsystem=12@lagg0.100.2 type=INIT')?.vhid, 12);
  for (const other of [
    '!system=IFNET subsystem=em0 type=LINK_UP',
    '+ugen0.2 vendor=0x0627 at bus=0 on uhub0',
    '?system=CARP subsystem=1@em0 type=MASTER',
    '!system=CARP subsystem=0@em0 type=MASTER',
    '!system=CARP subsystem=256@em0 type=MASTER',
    '!system=CARP subsystem=1@em0 type=BOGUS',
    '!system=CARP subsystem=em0 type=MASTER',
    '!system=CARP subsystem=1@ type=MASTER',
    '!system=CARPX subsystem=1@em0 type=MASTER',
    '',
  ]) {
    assert.equal(parseDevdCarpLine(other), undefined, other);
  }
});

test('LineSplitter joins lines cut across chunks', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('!system=CARP subsys'), []);
  assert.deepEqual(s.push('tem=1@em0 type=MASTER\n!system=IF'), ['!system=CARP subsystem=1@em0 type=MASTER']);
  assert.deepEqual(s.push('NET subsystem=em0 type=LINK_UP\n\n'), ['!system=IFNET subsystem=em0 type=LINK_UP']);
});

// ---- the client --------------------------------------------------------------------------------

test('the client delivers CARP events from a noisy, fragmented stream', async (t) => {
  const devd = await new FakeDevd(sockPath()).listen();
  t.after(() => devd.stop());
  const events: DevdCarpEvent[] = [];
  let connects = 0;
  const c = new DevdClient({ path: devd.path, logger: pino({ level: 'silent' }), onEvent: (e) => events.push(e), onConnect: () => connects++, minBackoffMs: 10, maxBackoffMs: 50, clock: new ManualClock() });
  t.after(() => c.close());
  c.start();
  await until('the connection', () => (devd.clients.size > 0 && connects === 1 ? true : undefined));
  const stream =
    '+ugen0.2 vendor=0x0627 at bus=0 on uhub0\n' +
    '!system=IFNET subsystem=em0 type=LINK_UP\n' +
    '!system=CARP subsystem=1@em0 type=BACKUP\n' +
    '!system=CARP subsystem=1@em0 type=MASTER\n' +
    '?system=ACPI subsystem=CMBAT\n' +
    '!system=CARP subsystem=7@vlan0.10 type=MASTER\n' +
    '!system=CARP subsystem=300@em0 type=MASTER\n' +
    '!system=CARP subsystem=2@igb1.20 type=INIT\n';
  // Cut in odd places: inside a key, inside "vlan0.10", right before and right after a newline.
  const cuts = [5, stream.indexOf('subsystem=1@em0'), stream.indexOf('vlan0.') + 5, stream.indexOf('\n?system'), stream.indexOf('\n?system') + 1, stream.length];
  let prev = 0;
  for (const cut of cuts) {
    devd.write(stream.slice(prev, cut));
    prev = cut;
    // A small write on a local socket is in the client's receive buffer when write() returns,
    // so the poll phase before the next immediate reads it as a chunk of its own.
    await new Promise((r) => setImmediate(r));
  }
  await until('four events', () => (events.length >= 4 ? true : undefined));
  assert.deepEqual(events.map((e) => `${e.vhid}@${e.iface}:${e.state}`), ['1@em0:BACKUP', '1@em0:MASTER', '7@vlan0.10:MASTER', '2@igb1.20:INIT']);
});

test('no devd: the client retries quietly, connects when devd appears, and again after devd restarts', async (t) => {
  const file = sockPath();
  const clock = new ManualClock();
  const { logger, lines } = recordingLogger();
  let connects = 0;
  const c = new DevdClient({ path: file, logger, onEvent: () => {}, onConnect: () => connects++, minBackoffMs: 5, maxBackoffMs: 40, clock });
  t.after(() => c.close());
  c.start();
  const retries = () => lines.filter((l) => /reconnecting/.test(l.msg)).length;
  // Each failed attempt arms the next on the clock; moving the clock past it makes that attempt.
  for (let n = 1; ; n++) {
    await until(`retry ${n} armed`, () => (retries() === n && clock.pending === 1 ? true : undefined));
    if (n === 3) break;
    clock.advance(40);
  }
  assert.deepEqual(lines.filter((l) => l.level >= 40), [], 'a missing devd pipe is logged at debug level only');

  const devd = new FakeDevd(file);
  await devd.listen();
  t.after(() => devd.stop());
  clock.advance(40);
  await until('the first connection', () => (connects === 1 && c.connected ? true : undefined));
  await devd.stop();
  await until('the client to notice', () => (!c.connected && clock.pending === 1 ? true : undefined));
  await devd.listen();
  clock.advance(40);
  await until('the reconnection', () => (connects === 2 && c.connected ? true : undefined));
  assert.equal(devd.connections, 2);
});

test('the client waits 5, 10, 20, 40, 40 ms between attempts (doubling, capped), on the clock it is given', async (t) => {
  const clock = new ManualClock();
  const c = new DevdClient({ path: sockPath(), logger: pino({ level: 'silent' }), onEvent: () => {}, onConnect: () => {}, minBackoffMs: 5, maxBackoffMs: 40, clock });
  t.after(() => c.close());
  c.start();
  const delays: number[] = [];
  for (let n = 1; n <= 5; n++) {
    await until(`attempt ${n} to fail`, () => (clock.pending === 1 ? true : undefined));
    const due = clock.nextDueInMs()!;
    delays.push(due);
    clock.advance(due);
  }
  assert.deepEqual(delays, [5, 10, 20, 40, 40]);
});

test('close() stops reconnecting', async (t) => {
  const file = sockPath();
  const clock = new ManualClock();
  const c = new DevdClient({ path: file, logger: pino({ level: 'silent' }), onEvent: () => {}, onConnect: () => {}, minBackoffMs: 5, maxBackoffMs: 10, clock });
  c.start();
  await until('the first attempt to fail and the next to be armed', () => (clock.pending === 1 ? true : undefined));
  c.close();
  const devd = await new FakeDevd(file).listen();
  t.after(() => devd.stop());
  // Several of the client's backoff periods: it would have connected by now if it still tried.
  clock.advance(100);
  // A connection made now is accepted after any the client made before it: once this one is
  // in, the count is final.
  const probe = connect({ path: file });
  probe.on('error', () => undefined);
  t.after(() => probe.destroy());
  await until('the probe connection', () => (devd.connections >= 1 ? true : undefined));
  assert.equal(devd.connections - 1, 0, 'connections besides the probe');
  assert.equal(c.connected, false);
});

// ---- through the backend, on the fake kernel ---------------------------------------------------

const unavailable = buildNative();

function loadFake() {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load(LIBC);
  const f = (decl: string) => lib.func(decl) as (...a: unknown[]) => number;
  const reset = f('int fakebsd_reset(void)');
  const addInterface = f('int fakebsd_add_interface(const char *name, int flags)');
  const setState = f('int fakebsd_set_vhid_state(const char *ifname, int vhid, int state)');
  const check = (rc: number) => assert.ok(rc >= 0, `fake control call failed (errno ${koffi.errno()})`);
  return {
    reset: () => check(reset()),
    addInterface: (name: string) => check(addInterface(name, 0x8043)), // UP|BROADCAST|RUNNING|MULTICAST
    setState: (iface: string, vhid: number, state: 0 | 1 | 2) => check(setState(iface, vhid, state)),
  };
}
const fake = unavailable ? undefined : loadFake();

function collect(b: KernelBackend): StateChange[] {
  const seen: StateChange[] = [];
  b.onStateChange((c) => seen.push(c));
  return seen;
}

test('backend: devd lines become state changes with reasons; stale lines are checked against the kernel', { skip: unavailable ?? false }, async (t) => {
  fake!.reset();
  fake!.addInterface('vlan0.10');
  const devd = await new FakeDevd(sockPath()).listen();
  t.after(() => devd.stop());
  const dir = mkdtempSync(path.join(WORK, 'state-'));
  const b = await openFreebsdBackend({ stateDir: dir, libcPath: LIBC, libnvPath: LIBNV, devdPipe: devd.path, devdBackoffMs: { min: 10, max: 50 } });
  t.after(() => b.close());
  await b.setVhid('vlan0.10', 1, { advbaseSec: 1, advskew: 0 });
  await b.addAddress('vlan0.10', 1, '198.51.100.1/24');
  await b.setVhid('em0', 2, { advbaseSec: 1, advskew: 0 });
  await b.addAddress('em0', 2, '192.0.2.2/24');
  await until('the devd connection', () => (devd.clients.size > 0 ? true : undefined));
  const seen = collect(b);

  fake!.setState('vlan0.10', 1, 2);
  // Noise, a line cut in two, and a stale BACKUP for em0 vhid 2, which the kernel still has as BACKUP.
  devd.write('!system=IFNET subsystem=vlan0.10 type=LINK_UP\n!system=CARP subsystem=2@em0 type=MAS');
  devd.write('TER\n!system=CARP subsystem=1@vlan0.');
  devd.write('10 type=MASTER\n');
  await until('the MASTER event', () => seen.find((c) => c.vhid === 1));
  assert.deepEqual(
    seen.map((c) => [c.interface, c.vhid, c.previous, c.state, c.reason]),
    [['vlan0.10', 1, 'BACKUP', 'MASTER', 'kernel reported MASTER (devd)']],
    'the em0 line announced MASTER, but the kernel says BACKUP: no change',
  );
  const v = (await b.listVhids()).find((x) => x.interface === 'vlan0.10')!;
  assert.deepEqual([v.state, v.reason], ['MASTER', 'kernel reported MASTER (devd)']);
  // Lines for interfaces carpd does not manage are ignored.
  devd.write('!system=CARP subsystem=3@em1 type=MASTER\n');

  // devd restarts; a transition happens while nobody listens; the reconnection re-reads it.
  await devd.stop();
  fake!.setState('vlan0.10', 1, 1);
  await devd.listen();
  const back = await until('the re-read after reconnecting', () => seen.find((c) => c.vhid === 1 && c.state === 'BACKUP'));
  assert.equal(back.previous, 'MASTER');
  assert.match(back.reason, /after connecting to devd/);
  rmSync(dir, { recursive: true, force: true });
});
