/**
 * The runtime's timers on a manual clock: deadlines, not delays (no drift when every timer fires
 * a little late, a resync without a burst after a long stall, a timer fired early re-armed for the
 * rest), and a master-down timer that never acts on a silence that is only apparent (an
 * advertisement queued on the link is read first, synchronously through drainNow or before the
 * deferred takeover).
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import type { Clock } from '../src/clock.js';
import { wallDate } from '../src/clock.js';
import { CarpRuntime, type TransitionEvent } from '../src/runtime/driver.js';
import type { AdvertLink, IncomingAdvert, LinkHandlers, OutgoingAdvert } from '../src/runtime/link.js';
import { TimerTable } from '../src/runtime/timers.js';
import { carpBytes } from '../src/wire/carp.js';
import { ManualClock } from './helpers/manual-clock.js';

const VIPS = ['192.0.2.10/24'];
const KEY = 'timing';

/** A link that records what is sent (with the clock's time) and holds datagrams "queued on the socket". */
class TestLink implements AdvertLink {
  readonly description = 'test link';
  handlers?: LinkHandlers;
  sent: { at: number; a: OutgoingAdvert }[] = [];
  /** Datagrams that arrived but were not read yet (the event loop is busy). */
  queued: IncomingAdvert[] = [];
  drainNow?: () => void;

  constructor(
    private readonly clock: Clock,
    drainable: boolean,
  ) {
    if (drainable) this.drainNow = () => this.deliverQueued();
  }
  async open(h: LinkHandlers): Promise<void> {
    this.handlers = h;
  }
  async send(a: OutgoingAdvert): Promise<void> {
    this.sent.push({ at: this.clock.now(), a });
  }
  primaryAddress(): string {
    return '192.0.2.1';
  }
  async close(): Promise<void> {}
  deliverQueued(): void {
    for (const a of this.queued.splice(0)) this.handlers!.advert(a);
  }
}

/** A CARP advertisement from a peer at 192.0.2.2 with advbase 1, skew 0 (it wins against skew 100). */
function peerAdvert(counter: bigint): IncomingAdvert {
  const payload = carpBytes({ vhid: 1, advbaseSec: 1, advskew: 0, counter, key: Buffer.from(KEY), addresses: VIPS });
  return { iface: 'em0', family: 4, payload, from: '192.0.2.2', source: '192.0.2.2', destination: '224.0.0.18', ttl: 255 };
}

/** Every timer this clock arms fires `lateMs` after it was due. */
function lateClock(base: ManualClock, lateMs: () => number): Clock {
  return {
    now: () => base.now(),
    wall: () => base.wall(),
    setTimeout: (fn, ms) => base.setTimeout(fn, ms + lateMs()),
    clearTimeout: (h) => base.clearTimeout(h),
    defer: (fn) => base.defer(fn),
  };
}

async function node(clock: Clock, link: TestLink, protocol: 'carp' | 'vrrpv3' = 'carp', advskew = 0, intervalCs = 100) {
  const transitions: TransitionEvent[] = [];
  const rt = new CarpRuntime({ clock, link, node: 'a', random: () => 1n, onTransition: (e) => transitions.push(e) });
  await rt.open();
  rt.configure({ iface: 'em0', vhid: 1, advbaseSec: 1, advskew, key: KEY, addresses: VIPS, protocol, vrrpPriority: 100, vrrpIntervalCs: intervalCs });
  rt.input('em0', 1, { kind: 'up' });
  return { rt, transitions };
}

for (const [protocol, periodMs] of [
  ['carp', 1000],
  ['vrrpv3', 10],
  ['vrrpv3', 1000],
] as const) {
  test(`${protocol} every ${periodMs} ms: each timer firing 3 ms late, the Nth advertisement is still at start + N × interval`, async (t) => {
    const base = new ManualClock();
    const clock = lateClock(base, () => 3);
    const link = new TestLink(clock, true);
    const { rt, transitions } = await node(clock, link, protocol, 0, periodMs / 10);
    t.after(() => rt.close());
    base.advance(5000); // master-down (3 ms late), then MASTER
    assert.equal(rt.get('em0', 1)!.engine.state, 'MASTER');
    assert.equal(transitions.at(-1)!.to, 'MASTER');
    const N = 50;
    link.sent = [];
    base.advance(N * periodMs + 1);
    assert.ok(link.sent.length >= N, `${link.sent.length} advertisements`);
    const first = link.sent[0].at;
    const nth = link.sent[N - 1].at;
    // Deadline-based: (N − 1) periods exactly. Delay-based re-arming would give (N − 1) × (period + 3).
    assert.equal(nth - first, (N - 1) * periodMs);
  });
}

test('a stall longer than an interval: one advertisement when the loop is back, then periods from then (no burst)', async (t) => {
  const clock = new ManualClock();
  const link = new TestLink(clock, true);
  const { rt } = await node(clock, link);
  t.after(() => rt.close());
  clock.advance(5000);
  assert.equal(rt.get('em0', 1)!.engine.state, 'MASTER');
  link.sent = [];
  clock.stall(5500); // five and a half intervals with the event loop blocked
  clock.advance(0);
  assert.equal(link.sent.length, 1, 'one advertisement, not the five missed ones');
  const resumedAt = clock.now();
  clock.advance(2000);
  assert.deepEqual(
    link.sent.map((s) => s.at - resumedAt),
    [0, 1000, 2000],
  );
});

test('a timer the clock fires early is re-armed for the rest: nothing happens before its deadline', () => {
  const base = new ManualClock();
  // Fires after half the delay asked (from 1 ms up), as a clock on a stale loop time might.
  const clock: Clock = { ...lateClock(base, () => 0), setTimeout: (fn, ms) => base.setTimeout(fn, ms >= 1 ? ms / 2 : ms) };
  const timers = new TimerTable(clock);
  const start = base.now();
  const fired: { deadline: number; now: number }[] = [];
  timers.arm('k', 1000, (f) => fired.push({ deadline: f.deadline, now: f.now }));
  base.advance(999);
  assert.equal(fired.length, 0);
  base.advance(1);
  assert.deepEqual(fired, [{ deadline: start + 1000, now: start + 1000 }]);
});

test('TimerTable: a re-armed or cancelled key has a new generation; a stale handle never fires', () => {
  const clock = new ManualClock();
  const timers = new TimerTable(clock);
  let n = 0;
  timers.arm('k', 10, () => n++);
  const g = timers.generation('k');
  timers.arm('k', 20, () => (n += 10));
  assert.notEqual(timers.generation('k'), g);
  clock.advance(15);
  assert.equal(n, 0);
  clock.advance(5);
  assert.equal(n, 10);
  const g2 = timers.generation('k');
  timers.cancel('k');
  assert.notEqual(timers.generation('k'), g2);
});

/** A BACKUP (skew 100) that has heard the peer once at the start; its master-down is 3.390625 s. */
async function backup(clock: Clock, link: TestLink) {
  const n = await node(clock, link, 'carp', 100);
  link.handlers!.advert(peerAdvert(10n));
  assert.equal(n.rt.get('em0', 1)!.engine.state, 'BACKUP');
  return n;
}

test('master-down fires while an advertisement sits on the socket: drainNow reads it first, the node stays BACKUP', async (t) => {
  const clock = new ManualClock();
  const link = new TestLink(clock, true);
  const { rt, transitions } = await backup(clock, link);
  t.after(() => rt.close());
  const before = transitions.length;
  clock.advance(3000);
  link.queued.push(peerAdvert(11n)); // arrived at 3 s, not read: the loop is stalled
  clock.advance(600); // master-down (3.39 s) fires
  assert.equal(rt.get('em0', 1)!.engine.state, 'BACKUP');
  assert.equal(transitions.length, before, 'no transition');
  assert.equal(link.queued.length, 0, 'the queued advertisement was read');
  // The read re-armed master-down from then: real silence still makes it MASTER.
  clock.advance(4000);
  assert.equal(rt.get('em0', 1)!.engine.state, 'MASTER');
  assert.equal(transitions.at(-1)!.cause, 'master-down');
});

test('master-down fires while an advertisement is on its way (delivered before the deferred takeover): the node stays BACKUP', async (t) => {
  const base = new ManualClock();
  const deferred: (() => void)[] = [];
  const clock: Clock = { ...lateClock(base, () => 0), defer: (fn) => deferred.push(fn) };
  const link = new TestLink(clock, false); // no drainNow: a UDP socket, read by the event loop only
  const { rt, transitions } = await backup(clock, link);
  t.after(() => rt.close());
  const before = transitions.length;
  base.advance(3500); // master-down fires; its action waits for the I/O phase
  assert.equal(deferred.length, 1);
  assert.equal(rt.get('em0', 1)!.engine.state, 'BACKUP');
  link.handlers!.advert(peerAdvert(11n)); // the poll phase reads the datagram
  for (const fn of deferred.splice(0)) fn();
  assert.equal(rt.get('em0', 1)!.engine.state, 'BACKUP');
  assert.equal(transitions.length, before, 'no transition');

  // The same without the datagram: the deferred action makes it MASTER.
  base.advance(4000);
  assert.equal(deferred.length, 1);
  for (const fn of deferred.splice(0)) fn();
  assert.equal(rt.get('em0', 1)!.engine.state, 'MASTER');
  assert.equal(transitions.at(-1)!.cause, 'master-down');
});

test('a master-down timer fired late says how long the silence really was; the status since is the wall time of the transition', async (t) => {
  const clock = new ManualClock();
  const link = new TestLink(clock, true);
  const { rt, transitions } = await backup(clock, link);
  t.after(() => rt.close());
  const heardAt = clock.now();
  clock.stall(5000); // due at 3.39 s, fired at 5 s
  clock.stepWall(3_600_000); // and the wall clock set an hour forward meanwhile
  clock.advance(0);
  const e = transitions.at(-1)!;
  assert.equal(e.to, 'MASTER');
  assert.match(e.reason, /5\.000 s/);
  assert.equal(e.atMs - heardAt, 5000, 'monotonic');
  // Shown: the wall clock's idea of that instant.
  assert.equal(wallDate(clock, e.atMs).getTime(), clock.wall());
});
