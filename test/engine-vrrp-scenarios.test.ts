/**
 * The VRRPv3 engine: every scenario file under test/engine/vrrp-scenarios/ as its own test
 * (rewrite the expected blocks with UPDATE_SCENARIOS=1), plus direct tests of vrrpStep() and
 * the formulas.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  vrrpAdvertisedPriority,
  vrrpCheckSettings,
  vrrpCompareAddresses,
  vrrpInitialState,
  vrrpMasterDownIntervalMs,
  vrrpSkewTimeMs,
  vrrpStep,
} from '../src/engine/vrrp.js';
import type { VrrpAction, VrrpInput, VrrpSettings, VrrpState } from '../src/engine/vrrp-types.js';
import { testScenarioFiles } from './engine/lan.js';
import { runVrrpScenario } from './engine/vrrp-runner.js';

testScenarioFiles(fileURLToPath(new URL('./engine/vrrp-scenarios/', import.meta.url)), 'vrrp scenario', runVrrpScenario);

const S: VrrpSettings = { vrid: 1, priority: 100, intervalCs: 100, preempt: true, demotion: 0, primaryAddress: '192.0.2.11' };

/** Runs inputs from `s`, each at its time, and returns the final state and the last actions. */
function drive(s: VrrpState, ...inputs: [number, VrrpInput][]): { state: VrrpState; actions: VrrpAction[] } {
  let r = { state: s, actions: [] as VrrpAction[] };
  for (const [t, input] of inputs) r = vrrpStep(r.state, input, t);
  return r;
}

const kinds = (actions: VrrpAction[]) => actions.map((a) => ('timer' in a ? `${a.kind} ${a.timer}` : a.kind));
const advert = (priority: number, intervalCs = 100, from = '192.0.2.12'): VrrpInput => ({ kind: 'advert', from, priority, intervalCs });
const backup = (s: VrrpSettings = S) => vrrpStep(vrrpInitialState(s), { kind: 'up' }, 0).state;
const master = (s: VrrpSettings = S) => vrrpStep(backup(s), { kind: 'timer', timer: 'master-down' }, vrrpMasterDownIntervalMs(vrrpAdvertisedPriority(s), s.intervalCs)).state;

test('Skew_Time and Master_Down_Interval (RFC 5798 §6.1, keepalived-measured values §11.2)', () => {
  assert.equal(vrrpSkewTimeMs(100, 100), 609.375); // (256 − 100) / 256 × 1 s
  assert.equal(vrrpMasterDownIntervalMs(100, 100), 3609.375); // 3 × 1 s + 0.609375 s
  assert.equal(vrrpSkewTimeMs(100, 50), 304.6875);
  assert.equal(vrrpMasterDownIntervalMs(100, 50), 1804.6875);
  assert.equal(vrrpMasterDownIntervalMs(200, 100), 3218.75); // cold start of the priority-200 node
  assert.equal(vrrpSkewTimeMs(255, 100), 1000 / 256);
  assert.equal(vrrpMasterDownIntervalMs(1, 4095), 3 * 40950 + (255 * 40950) / 256);
});

test('advertised priority: clamp(priority − demotion, 1, 254), the owner never demoted (§11.3)', () => {
  assert.equal(vrrpAdvertisedPriority({ ...S, demotion: 40 }), 60);
  assert.equal(vrrpAdvertisedPriority({ ...S, demotion: 240 }), 1); // never 0: that would be a resignation
  assert.equal(vrrpAdvertisedPriority({ ...S, priority: 254, demotion: -10 }), 254); // never 255 either
  assert.equal(vrrpAdvertisedPriority({ ...S, priority: 255, demotion: 240 }), 255);
});

test('primary addresses compare as unsigned integers in network order', () => {
  assert.equal(vrrpCompareAddresses('192.0.2.12', '192.0.2.11'), 1);
  assert.equal(vrrpCompareAddresses('10.0.0.2', '9.255.255.255'), 1); // not as text
  assert.equal(vrrpCompareAddresses('192.0.2.200', '192.0.2.30'), 1);
  assert.equal(vrrpCompareAddresses('255.0.0.1', '1.0.0.255'), 1); // unsigned, most significant octet first
  assert.equal(vrrpCompareAddresses('fe80::2', 'fe80::10'), -1);
  assert.equal(vrrpCompareAddresses('fe80::1:0', 'fe80::ffff'), 1);
  assert.equal(vrrpCompareAddresses('2001:db8::A', '2001:0db8:0:0::a'), 0);
  // Outside the RFC (mixed families, no address): still a total, antisymmetric order.
  assert.equal(vrrpCompareAddresses('192.0.2.1', 'fe80::1'), -1);
  assert.equal(vrrpCompareAddresses('fe80::1', '192.0.2.1'), 1);
  assert.equal(vrrpCompareAddresses('x', '192.0.2.1'), 1);
});

test('settings are checked like checkSettings', () => {
  for (const bad of [{ vrid: 0 }, { vrid: 256 }, { priority: 0 }, { priority: 256 }, { intervalCs: 0 }, { intervalCs: 4096 }, { intervalCs: 1.5 }, { demotion: 0.5 }, { primaryAddress: 'nope' }]) {
    assert.throws(() => vrrpInitialState({ ...S, ...bad }), RangeError, JSON.stringify(bad));
  }
  vrrpCheckSettings({ ...S, priority: 255, intervalCs: 4095, primaryAddress: 'fe80::1' });
  const b = backup();
  assert.throws(() => vrrpStep(b, { kind: 'settings', settings: { ...S, vrid: 2 } }, 5), RangeError);
  assert.throws(() => vrrpStep(b, { kind: 'settings', settings: { ...S, priority: 0 } }, 5), RangeError);
});

test('start-up: a backup waits Master_Down_Interval, the owner is MASTER at once (§6.4.1)', () => {
  const up = vrrpStep(vrrpInitialState(S), { kind: 'up' }, 0);
  assert.deepEqual(kinds(up.actions), ['transition', 'arm master-down']);
  assert.deepEqual(up.actions[1], { kind: 'arm', timer: 'master-down', afterMs: 3609.375 });
  const owner = vrrpStep(vrrpInitialState({ ...S, priority: 255 }), { kind: 'up' }, 0);
  assert.deepEqual(kinds(owner.actions), ['transition', 'send', 'install-vips', 'arm advert']);
  assert.deepEqual(owner.actions[1], { kind: 'send', priority: 255, intervalCs: 100 });
  assert.deepEqual(owner.actions[3], { kind: 'arm', timer: 'advert', afterMs: 1000 });
});

test('becoming MASTER: state, advertisement, VIPs, Adver_Timer; losing it: cancel, state, master-down, VIPs', () => {
  const r = drive(vrrpInitialState(S), [0, { kind: 'up' }], [3609.375, { kind: 'timer', timer: 'master-down' }]);
  assert.deepEqual(kinds(r.actions), ['cancel master-down', 'transition', 'send', 'install-vips', 'arm advert']);
  assert.equal(r.state.reason, 'master-down timer expired: no advertisement for 3.609 s');
  const back = vrrpStep(r.state, advert(200, 50), 4000);
  assert.deepEqual(kinds(back.actions), ['cancel advert', 'transition', 'arm master-down', 'remove-vips']);
  assert.equal(back.state.cause, 'higher-priority');
  assert.equal(back.state.reason, 'higher priority 200 > 100 from 192.0.2.12');
  // Master_Down_Timer from the winner's interval: 3 × 0.5 s + 156/256 × 0.5 s.
  assert.deepEqual(back.actions[2], { kind: 'arm', timer: 'master-down', afterMs: 1804.6875 });
  assert.equal(back.state.masterAdverIntervalCs, 50);
});

test('MASTER: equal priority yields only to a larger address; lower priorities are ignored (§6.4.3)', () => {
  const m = master();
  const smaller = vrrpStep(m, advert(100, 100, '192.0.2.10'), 4000);
  assert.deepEqual(smaller.actions, []);
  assert.equal(smaller.state.state, 'MASTER');
  assert.equal(smaller.state.lastHeard?.ignored, true);
  assert.deepEqual(vrrpStep(m, advert(99), 4000).actions, []);
  const larger = vrrpStep(m, advert(100, 100, '192.0.2.12'), 4000);
  assert.equal(larger.state.cause, 'larger-address');
  // Its own address (a looped-back packet) is not larger.
  assert.deepEqual(vrrpStep(m, advert(100, 100, '192.0.2.11'), 4000).actions, []);
});

test('MASTER answers a priority-0 advertisement at once and restarts Adver_Timer', () => {
  const r = vrrpStep(master(), advert(0), 4200);
  assert.deepEqual(r.actions, [
    { kind: 'send', priority: 100, intervalCs: 100 },
    { kind: 'arm', timer: 'advert', afterMs: 1000 },
  ]);
  assert.equal(r.state.state, 'MASTER');
});

test('BACKUP: priority 0 → Skew_Time; ≥ own or no preempt → adopt interval, restart; lower + preempt → discard (§6.4.2)', () => {
  const b = backup();
  assert.deepEqual(vrrpStep(b, advert(0), 500).actions, [{ kind: 'arm', timer: 'master-down', afterMs: 609.375 }]);
  const eq = vrrpStep(b, advert(100, 200), 500);
  assert.deepEqual(eq.actions, [{ kind: 'arm', timer: 'master-down', afterMs: 3 * 2000 + (156 * 2000) / 256 }]);
  assert.equal(eq.state.masterAdverIntervalCs, 200);
  assert.equal(eq.state.masterDownFromMs, 500);
  const lower = vrrpStep(b, advert(50), 500);
  assert.deepEqual(lower.actions, []);
  assert.equal(lower.state.masterDownFromMs, 0);
  const expired = vrrpStep(lower.state, { kind: 'timer', timer: 'master-down' }, 3609.375);
  assert.equal(expired.state.cause, 'preempt');
  assert.equal(
    expired.state.reason,
    'preempting lower priority 50 < 100 of 192.0.2.12: its advertisements ignored, master-down timer expired after 3.609 s',
  );
  const noPreempt = backup({ ...S, preempt: false });
  assert.deepEqual(kinds(vrrpStep(noPreempt, advert(50), 500).actions), ['arm master-down']);
  // The owner preempts even with preempt off (RFC 5798 §6.1).
  const owner = vrrpStep(master({ ...S, priority: 255, preempt: false }), { kind: 'force', state: 'BACKUP' }, 10).state;
  assert.deepEqual(vrrpStep(owner, advert(200), 500).actions, []);
});

test('a resignation hands over after Skew_Time, with its own cause', () => {
  const b = drive(backup(), [500, advert(200, 100)], [1500, advert(0, 100)]);
  const r = vrrpStep(b.state, { kind: 'timer', timer: 'master-down' }, 2109.375);
  assert.equal(r.state.cause, 'resigned');
  assert.equal(r.state.reason, 'master 192.0.2.12 resigned (priority 0): Skew_Time 0.609 s expired');
});

test('leave: a MASTER sends priority 0 and goes to INIT; down sends nothing', () => {
  const m = master();
  const r = vrrpStep(m, { kind: 'leave' }, 4000);
  assert.deepEqual(kinds(r.actions), ['cancel advert', 'send', 'transition', 'remove-vips']);
  assert.deepEqual(r.actions[1], { kind: 'send', priority: 0, intervalCs: 100 });
  assert.equal(r.state.state, 'INIT');
  assert.deepEqual(kinds(vrrpStep(m, { kind: 'down', reason: 'link down' }, 4000).actions), ['cancel advert', 'transition', 'remove-vips']);
  assert.deepEqual(kinds(vrrpStep(backup(), { kind: 'leave' }, 10).actions), ['cancel master-down', 'transition']);
});

test('settings: a MASTER whose advertised priority or interval changes advertises at once', () => {
  const m = master();
  const r = vrrpStep(m, { kind: 'settings', settings: { ...S, demotion: 30 } }, 4000);
  assert.deepEqual(r.actions, [
    { kind: 'send', priority: 70, intervalCs: 100 },
    { kind: 'arm', timer: 'advert', afterMs: 1000 },
  ]);
  const i = vrrpStep(m, { kind: 'settings', settings: { ...S, intervalCs: 25 } }, 4000);
  assert.deepEqual(i.actions, [
    { kind: 'send', priority: 100, intervalCs: 25 },
    { kind: 'arm', timer: 'advert', afterMs: 250 },
  ]);
  assert.deepEqual(vrrpStep(m, { kind: 'settings', settings: { ...S, preempt: false } }, 4000).actions, []);
  // A demotion past the clamp changes nothing on the wire.
  const low = vrrpStep(m, { kind: 'settings', settings: { ...S, demotion: 500 } }, 4000).state;
  assert.deepEqual(vrrpStep(low, { kind: 'settings', settings: { ...S, demotion: 900 } }, 4001).actions, []);
  // The owner is never demoted.
  const o = master({ ...S, priority: 255 });
  assert.deepEqual(vrrpStep(o, { kind: 'settings', settings: { ...S, priority: 255, demotion: 240 } }, 10).actions, []);
});

test('INIT ignores adverts, timers and force; stale timers are ignored', () => {
  const s = vrrpInitialState(S);
  for (const input of [{ kind: 'force', state: 'MASTER' }, { kind: 'force', state: 'BACKUP' }, advert(255), advert(0), { kind: 'timer', timer: 'master-down' }, { kind: 'leave' }, { kind: 'down', reason: 'x' }] as VrrpInput[]) {
    const r = vrrpStep(s, input, 10);
    assert.deepEqual(r.actions, []);
    assert.equal(r.state.state, 'INIT');
  }
  assert.deepEqual(vrrpStep(backup(), { kind: 'timer', timer: 'advert' }, 5).actions, []);
  assert.deepEqual(vrrpStep(master(), { kind: 'timer', timer: 'master-down' }, 5).actions, []);
  assert.deepEqual(vrrpStep(backup(), { kind: 'up' }, 5).actions, []);
});

test('never throws on any received priority 0..255 and interval 0..4095, in any state', () => {
  const states = [vrrpInitialState(S), backup(), master(), backup({ ...S, preempt: false }), master({ ...S, priority: 255 })];
  for (const s of states) {
    for (let p = 0; p <= 255; p++) {
      for (const i of [0, 1, 100, 4095]) {
        const r = vrrpStep(s, advert(p, i), 10);
        for (const a of r.actions) if (a.kind === 'arm') assert.ok(Number.isFinite(a.afterMs) && a.afterMs > 0, `${p}/${i}: ${a.afterMs}`);
        assert.ok(r.state.masterAdverIntervalCs >= 1 && r.state.masterAdverIntervalCs <= 4095);
      }
    }
  }
});
