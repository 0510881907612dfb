import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventBus, eventTypesOf } from '../src/service/events.js';
import { demotionContributors, KernelWatch, type CarpReading } from '../src/service/watch.js';

const body = (n: number) => ({ revision: n, actor: 'admin', origin: 'api' as const, summary: `r${n}`, steps: 0 });

test('ids increase from the first, subscribers get every event in order, a failing one does not stop the others', () => {
  const bus = new EventBus({ firstId: 100, now: () => 0 });
  const seen: number[] = [];
  bus.subscribe(() => {
    throw new Error('boom');
  });
  bus.subscribe((e) => seen.push(e.id));
  for (let i = 0; i < 3; i++) bus.publish('config.committed', body(i));
  assert.deepEqual(seen, [100, 101, 102]);
  assert.equal(bus.lastId, 102);
  assert.equal(bus.published.get('config.committed'), 3);
});

test('since(): what a reconnecting client missed, and when it fell too far behind or is from an earlier run', () => {
  const bus = new EventBus({ firstId: 1000, capacity: 1000, now: () => 0 });
  assert.deepEqual(bus.since(999), { events: [], lost: undefined });
  assert.deepEqual(bus.since(0), { events: [] });
  for (let i = 0; i < 1500; i++) bus.publish('config.committed', body(i));
  const near = bus.since(2400);
  assert.deepEqual(near.events.map((e) => e.id), [2401, 2402, 2403, 2404, 2405, ...Array.from({ length: 94 }, (_, i) => 2406 + i)]);
  assert.equal(near.lost, undefined);
  const far = bus.since(1200);
  assert.equal(far.lost?.reason, 'buffer');
  assert.equal(far.lost?.oldest, 1500);
  assert.equal(far.events.length, 1000);
  assert.equal(far.events[0].id, 1500);
  assert.equal(bus.since(1499).lost, undefined, 'the event just before the oldest kept was seen: nothing lost');
  assert.equal(bus.since(5).lost?.reason, 'restart');
  const future = bus.since(10_000);
  assert.equal(future.lost?.reason, 'restart');
  assert.equal(future.events.length, 1000);
  assert.deepEqual(bus.since(2499).events, []);
});

test('filters name a type or a family', () => {
  assert.deepEqual(eventTypesOf('vhid.state'), ['vhid.state']);
  assert.deepEqual(eventTypesOf('splitbrain'), ['splitbrain.detected', 'splitbrain.cleared']);
  assert.equal(eventTypesOf('vhid'), undefined);
});

test('demotion contributors: maintenance, named ones, the rest as other', () => {
  assert.deepEqual(demotionContributors(0, false), []);
  assert.deepEqual(demotionContributors(240, true), [{ name: 'maintenance', value: 240 }]);
  assert.deepEqual(demotionContributors(480, true, new Map([['splitbrain', 100]])), [
    { name: 'maintenance', value: 240 },
    { name: 'splitbrain', value: 100 },
    { name: 'other', value: 140 },
  ]);
});

test('the kernel watch publishes what changed since its last reading', async () => {
  const bus = new EventBus({ firstId: 1, now: () => 0 });
  let reading: CarpReading = { demotion: 0, maintenance: false, pfsync: { running: true, bulkUpdateDone: true, syncdev: 'em1', version: 1400 } as never };
  const watch = new KernelWatch(async () => reading, bus);
  await watch.check();
  assert.equal(bus.lastId, 0, 'the first reading is the baseline');
  reading = { ...reading, demotion: 240, maintenance: true };
  await watch.check();
  reading = { ...reading, pfsync: { ...reading.pfsync!, bulkUpdateDone: false } };
  await watch.check();
  await watch.check();
  const events = bus.since(0).events;
  assert.deepEqual(events.map((e) => e.type), ['maintenance', 'demotion', 'pfsync']);
  assert.deepEqual(events[1].data, { total: 240, previous: 0, contributors: [{ name: 'maintenance', value: 240 }] });
  assert.equal((events[2].data as { phase: string }).phase, 'bulk.start');
  assert.equal(watch.demotion, 240);
});

test('since(0) is every kept event, with nothing lost', () => {
  const bus = new EventBus({ firstId: 5000, now: () => 0 });
  for (let i = 0; i < 3; i++) bus.publish('config.committed', body(i));
  const all = bus.since(0);
  assert.deepEqual(all.events.map((e) => e.id), [5000, 5001, 5002]);
  assert.equal(all.lost, undefined);
});
