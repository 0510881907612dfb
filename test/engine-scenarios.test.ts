/**
 * The CARP engine: every scenario file under test/engine/scenarios/ as its own test (rewrite the
 * expected blocks with UPDATE_SCENARIOS=1), plus direct tests of step() and the formulas.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { initialState, step } from '../src/engine/engine.js';
import { advertIntervalMs, compareTimers, demotedSkew, ownMasterDownMs, timeValueUs } from '../src/engine/timing.js';
import type { Action, EngineInput, EngineState, VhidSettings } from '../src/engine/types.js';
import { testScenarioFiles } from './engine/lan.js';
import { runScenario } from './engine/runner.js';

testScenarioFiles(fileURLToPath(new URL('./engine/scenarios/', import.meta.url)), 'scenario', runScenario);

const S: VhidSettings = { vhid: 1, advbaseSec: 1, advskew: 100, preempt: false, demotion: 0 };

/** Runs inputs from `s`, each at its time, and returns the final state and the last actions. */
function drive(s: EngineState, ...inputs: [number, EngineInput][]): { state: EngineState; actions: Action[] } {
  let r = { state: s, actions: [] as Action[] };
  for (const [t, input] of inputs) r = step(r.state, input, t);
  return r;
}

const kinds = (actions: Action[]) => actions.map((a) => ('timer' in a ? `${a.kind} ${a.timer}` : a.kind));
const advert = (advbaseSec: number, advskew: number, counter = 7n): EngineInput => ({ kind: 'advert', from: 'peer', advbaseSec, advskew, counter });

test('timing formulas: T_ad = advbase + skew/256, T_down = 3 × advbase + skew/256 (§6.1, §6.2)', () => {
  assert.equal(advertIntervalMs(1, 100), 1390.625);
  assert.equal(advertIntervalMs(2, 240), 2937.5);
  assert.equal(ownMasterDownMs({ ...S, advskew: 100 }), 3390.625); // not 3 × 1.390625 s
  assert.equal(ownMasterDownMs({ ...S, advbaseSec: 2, advskew: 240 }), 6937.5);
  assert.equal(timeValueUs(1, 1), 1_003_906); // integer division as FreeBSD
  assert.equal(compareTimers({ advbaseSec: 1, advskew: 240 }, { advbaseSec: 2, advskew: 0 }), -1); // advbase dominates
  assert.equal(compareTimers({ advbaseSec: 1, advskew: 7 }, { advbaseSec: 1, advskew: 7 }), 0);
});

test('demoted skew is clamp(advskew + demotion, 0, 240) (§6.4)', () => {
  assert.equal(demotedSkew({ ...S, advskew: 100, demotion: 240 }), 240);
  assert.equal(demotedSkew({ ...S, advskew: 100, demotion: -500 }), 0);
  assert.equal(demotedSkew({ ...S, advskew: 250, demotion: 0 }), 240); // 241..254 are advertised as 240
  assert.equal(demotedSkew({ ...S, advskew: 100, demotion: 20 }), 120);
});

test('master-down uses the configured skew, adverts and comparison the demoted one (§6.2, §6.4)', () => {
  const s = initialState({ ...S, advskew: 0, demotion: 240 }, 1n);
  const up = step(s, { kind: 'up' }, 0);
  assert.deepEqual(up.actions[1], { kind: 'arm', timer: 'master-down', afterMs: 3000 });
  const m = step(up.state, { kind: 'timer', timer: 'master-down' }, 3000);
  const send = m.actions.find((a) => a.kind === 'send');
  assert.equal(send && 'advskew' in send ? send.advskew : -1, 240);
  // First interval with the configured skew (carp_setrun), then with the demoted one (§6.1).
  assert.deepEqual(m.actions.at(-1), { kind: 'arm', timer: 'advert', afterMs: 1000 });
  const next = step(m.state, { kind: 'timer', timer: 'advert' }, 4000);
  assert.deepEqual(next.actions.at(-1), { kind: 'arm', timer: 'advert', afterMs: 1937.5 });
});

test('becoming MASTER acts in FreeBSD order: state, advertisement, VIPs, advertisement timer (§7.4)', () => {
  const r = drive(initialState(S, 1n), [0, { kind: 'up' }], [3390.625, { kind: 'timer', timer: 'master-down' }]);
  assert.deepEqual(kinds(r.actions), ['cancel master-down', 'transition', 'send', 'install-vips', 'arm advert']);
  assert.equal(r.state.reason, 'master-down timer expired: no advertisement for 3.391 s');
  const back = step(r.state, advert(1, 100), 4000);
  assert.deepEqual(kinds(back.actions), ['cancel advert', 'transition', 'arm master-down', 'remove-vips']);
  assert.equal(back.state.cause, 'equal-timers');
});

test('force and advertisements are ignored in INIT; stale timers are ignored', () => {
  const s = initialState(S, 1n);
  for (const input of [{ kind: 'force', state: 'MASTER' }, { kind: 'force', state: 'BACKUP' }, advert(1, 0), { kind: 'timer', timer: 'master-down' }] as EngineInput[]) {
    const r = step(s, input, 10);
    assert.deepEqual(r.actions, []);
    assert.equal(r.state.state, 'INIT');
  }
  const b = step(s, { kind: 'up' }, 0).state;
  assert.deepEqual(step(b, { kind: 'timer', timer: 'advert' }, 5).actions, []);
  assert.deepEqual(step(b, { kind: 'force', state: 'BACKUP' }, 5).actions, []);
});

test('BACKUP and a slower master: restart master-down without preempt, take over with it (§7.2)', () => {
  const b = step(initialState({ ...S, advskew: 0 }, 1n), { kind: 'up' }, 0).state;
  const stay = step(b, advert(1, 100), 500);
  assert.deepEqual(kinds(stay.actions), ['arm master-down']);
  assert.equal(stay.state.masterDownFromMs, 500);
  const take = step({ ...b, settings: { ...b.settings, preempt: true } }, advert(1, 100), 500);
  assert.equal(take.state.state, 'MASTER');
  assert.equal(take.state.reason, 'preempting a slower master: peer (advbase 1, skew 100 > 0)');
  // §7.2 step 2: advertising less often than 3 × our advbase → take over even without preempt.
  const rare = step(b, advert(4, 0), 500);
  assert.equal(rare.state.cause, 'master-will-time-out');
});

test('a demotion change makes a MASTER advertise at once with the new skew (§6.4)', () => {
  const m = drive(initialState(S, 1n), [0, { kind: 'up' }], [3390.625, { kind: 'timer', timer: 'master-down' }]).state;
  const r = step(m, { kind: 'settings', settings: { ...S, demotion: 240 } }, 3500);
  assert.deepEqual(kinds(r.actions), ['send', 'arm advert']);
  assert.deepEqual({ ...r.actions[0], counter: 0n }, { kind: 'send', advbaseSec: 1, advskew: 240, counter: 0n });
  assert.deepEqual(step(m, { kind: 'settings', settings: { ...S, advskew: 50 } }, 3500).actions, []);
  assert.throws(() => step(m, { kind: 'settings', settings: { ...S, vhid: 2 } }, 3500), RangeError);
  assert.throws(() => initialState({ ...S, advskew: 255 }, 1n), RangeError);
});

test('counter: random until a peer is heard, then the peer value + 1, wrapping at 2^64 (§5)', () => {
  const sends = (actions: Action[]) => actions.flatMap((a) => (a.kind === 'send' ? [a.counter] : []));
  let r = drive(initialState(S, 42n), [0, { kind: 'up' }], [3390.625, { kind: 'timer', timer: 'master-down' }]);
  const [c1] = sends(r.actions);
  r = step(r.state, { kind: 'timer', timer: 'advert' }, 4781.25);
  const [c2] = sends(r.actions);
  assert.notEqual(c1, c2);
  // Same seed, same values: the randomness is injected.
  const again = drive(initialState(S, 42n), [0, { kind: 'up' }], [3390.625, { kind: 'timer', timer: 'master-down' }]);
  assert.deepEqual(sends(again.actions), [c1]);
  // A slower peer is ignored by the MASTER, but its counter is taken over.
  r = step(r.state, advert(1, 200, 2n ** 64n - 2n), 5000);
  assert.equal(r.state.state, 'MASTER');
  r = step(r.state, { kind: 'timer', timer: 'advert' }, 6171.875);
  assert.deepEqual(sends(r.actions), [2n ** 64n - 1n]);
  r = step(r.state, { kind: 'timer', timer: 'advert' }, 7562.5);
  assert.deepEqual(sends(r.actions), [0n]);
});

test('leave: a MASTER sends the bow-out (advbase 255, skew 255) and goes to INIT (§7.6)', () => {
  const m = drive(initialState(S, 1n), [0, { kind: 'up' }], [3390.625, { kind: 'timer', timer: 'master-down' }]).state;
  const r = step(m, { kind: 'leave' }, 4000);
  assert.deepEqual(kinds(r.actions), ['cancel advert', 'send', 'transition', 'remove-vips']);
  assert.deepEqual({ ...r.actions[1], counter: 0n }, { kind: 'send', advbaseSec: 255, advskew: 255, counter: 0n });
  assert.equal(r.state.state, 'INIT');
  // A down sends nothing (FreeBSD).
  assert.deepEqual(kinds(step(m, { kind: 'down', reason: 'link down' }, 4000).actions), ['cancel advert', 'transition', 'remove-vips']);
});
