import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changeTarget, describeStep, plan, targetOf, type Snapshot, type Step } from '../src/service/plan.js';
import { initialState } from '../src/config/model.js';

const P = { advbaseSec: 1, advskew: 0 };
const base: Snapshot = { vhids: [], carp: { allow: true, preempt: true }, maintenance: false, pfsync: { maxupd: 128, defer: false, version: 1400 } };
const snap = (vhids: Snapshot['vhids'], extra: Partial<Snapshot> = {}): Snapshot => ({ ...base, vhids, ...extra });
const ops = (steps: Step[]) =>
  steps.map((s) => ('address' in s ? `${s.op} ${s.interface}/${s.vhid} ${s.address}` : 'vhid' in s ? `${s.op} ${s.interface}/${s.vhid}` : s.op));

/** Replays steps on a model of carp(4), failing where the kernel would. */
function replay(start: Snapshot, steps: Step[]): Snapshot['vhids'] {
  const m = new Map(start.vhids.map((v) => [`${v.interface}/${v.vhid}`, { ...v, addresses: [...v.addresses] }]));
  for (const s of steps) {
    if (!('vhid' in s)) continue;
    const k = `${s.interface}/${s.vhid}`;
    if (s.op === 'vhid.set') m.set(k, { interface: s.interface, vhid: s.vhid, params: s.params, addresses: m.get(k)?.addresses ?? [] });
    else if (s.op === 'vhid.remove') assert.ok(m.delete(k), `remove of absent ${k}`);
    else if (s.op === 'address.add') {
      assert.ok(m.has(k), `address before vhid: ${k}`);
      for (const v of m.values()) if (v.interface === s.interface) v.addresses = v.addresses.filter((a) => a.split('/')[0] !== s.address.split('/')[0]);
      m.get(k)!.addresses.push(s.address);
    } else if (s.op === 'address.remove') {
      const v = m.get(k);
      assert.ok(v && v.addresses.includes(s.address), `remove of absent ${s.address}`);
      v.addresses = v.addresses.filter((a) => a !== s.address);
      if (v.addresses.length === 0) m.delete(k);
    }
  }
  return [...m.values()].sort((a, b) => `${a.interface}/${a.vhid}`.localeCompare(`${b.interface}/${b.vhid}`));
}

function assertConverges(target: Snapshot, live: Snapshot): Step[] {
  const steps = plan(target, live);
  const after = replay(live, steps);
  const want = [...target.vhids].sort((a, b) => `${a.interface}/${a.vhid}`.localeCompare(`${b.interface}/${b.vhid}`));
  assert.deepEqual(
    after.map((v) => [v.interface, v.vhid, v.params, [...v.addresses].sort()]),
    want.map((v) => [v.interface, v.vhid, v.params, [...v.addresses].sort()]),
  );
  assert.deepEqual(plan(target, snap(after, { carp: target.carp, maintenance: target.maintenance, pfsync: target.pfsync })), [], 'a second plan must be empty');
  return steps;
}

test('a new VIP: vhid first, then its addresses', () => {
  const steps = assertConverges(snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24', '2001:db8::1/64'] }]), snap([]));
  assert.deepEqual(ops(steps), ['vhid.set em0/1', 'address.add em0/1 192.0.2.1/24', 'address.add em0/1 2001:db8::1/64']);
});

test('nothing to do when live matches', () => {
  const v = [{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }];
  assert.deepEqual(plan(snap(v), snap(v)), []);
});

test('replacing every address of a vhid adds before removing, so the vhid survives', () => {
  const steps = assertConverges(snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.2/24'] }]), snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }]));
  assert.deepEqual(ops(steps), ['address.add em0/1 192.0.2.2/24', 'address.remove em0/1 192.0.2.1/24']);
});

test('moving an address between vhids removes it first and recreates a vhid that emptied', () => {
  const live = snap([
    { interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] },
    { interface: 'em0', vhid: 2, params: P, addresses: ['192.0.2.2/24'] },
  ]);
  const target = snap([
    { interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.2/24'] },
    { interface: 'em0', vhid: 2, params: P, addresses: ['192.0.2.1/24'] },
  ]);
  assertConverges(target, live);
});

test('a vhid that is no longer wanted is removed whole; parameter changes update in place', () => {
  const live = snap([
    { interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] },
    { interface: 'em1', vhid: 1, params: P, addresses: ['198.51.100.1/24'] },
  ]);
  const target = snap([{ interface: 'em0', vhid: 1, params: { ...P, advskew: 100, key: 'k' }, addresses: ['192.0.2.1/24'] }]);
  const steps = assertConverges(target, live);
  assert.deepEqual(ops(steps), ['vhid.set em0/1', 'vhid.remove em1/1']);
  assert.equal((steps[0] as Extract<Step, { op: 'vhid.set' }>).create, false);
});

test('a changed prefix length replaces the address', () => {
  assertConverges(snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/25'] }]), snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }]));
});

test('globals, maintenance and pfsync are planned only when they differ', () => {
  const target = snap([], { carp: { allow: false, preempt: true }, maintenance: true, pfsync: { syncdev: 'em1', maxupd: 64, defer: true, version: 1400 } });
  assert.deepEqual(ops(plan(target, snap([]))), ['maintenance.set', 'carp.set', 'pfsync.set']);
  // Entering maintenance precedes every vhid step; leaving it follows them.
  const v = [{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }];
  assert.deepEqual(ops(plan(snap(v, { maintenance: true }), snap([]))), ['maintenance.set', 'vhid.set em0/1', 'address.add em0/1 192.0.2.1/24']);
  assert.deepEqual(ops(plan(snap(v), snap([], { maintenance: true }))), ['vhid.set em0/1', 'address.add em0/1 192.0.2.1/24', 'maintenance.set']);
  // A detached pfsync ignores the other fields.
  assert.deepEqual(plan(snap([], { pfsync: { maxupd: 1, defer: true, version: 1301 } }), snap([])), []);
});

test('planning back to the snapshot before a change undoes it', () => {
  const before = snap([{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }]);
  const half = snap([
    { interface: 'em0', vhid: 1, params: { ...P, advskew: 9 }, addresses: ['192.0.2.1/24', '192.0.2.9/24'] },
    { interface: 'em0', vhid: 3, params: P, addresses: [] },
  ]);
  assertConverges(before, half);
});

test('a change is planned on its own: drift elsewhere is neither touched nor blocking', () => {
  const before = initialState(new Date(0));
  before.vips = [
    { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, protocol: 'carp' },
    { interface: 'gone0', vhid: 1, addresses: ['198.51.100.1/24'], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, protocol: 'carp' },
  ];
  const after = structuredClone(before);
  after.vips[0].advskew = 50;
  // Live: gone0's vhid is missing (drift), em0 as stored, plus a vhid carpd does not know.
  const live = snap([
    { interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] },
    { interface: 'em1', vhid: 9, params: P, addresses: ['203.0.113.9/24'] },
  ]);
  assert.deepEqual(ops(plan(changeTarget(before, after, live), live)), ['vhid.set em0/1']);
  // The full target would also try to create gone0's vhid and remove em1's.
  assert.deepEqual(ops(plan(targetOf(after), live)).sort(), ['address.add gone0/1 198.51.100.1/24', 'vhid.remove em1/9', 'vhid.set em0/1', 'vhid.set gone0/1'].sort());
});

const VRRP = { ...P, protocol: 'vrrpv3' as const, vrrpPriority: 100, vrrpIntervalCs: 100 };

test('a protocol change removes the vhid and creates it again, then re-adds its addresses', () => {
  const carp = snap([{ interface: 'em0', vhid: 1, params: { ...P, advskew: 50 }, addresses: ['192.0.2.1/24', '2001:db8::1/64'] }]);
  const vrrp = snap([{ interface: 'em0', vhid: 1, params: VRRP, addresses: ['192.0.2.1/24', '2001:db8::1/64'] }]);
  for (const [target, live] of [[vrrp, carp], [carp, vrrp]]) {
    const steps = assertConverges(target, live);
    assert.deepEqual(ops(steps), ['vhid.remove em0/1', 'vhid.set em0/1', 'address.add em0/1 192.0.2.1/24', 'address.add em0/1 2001:db8::1/64']);
    assert.equal((steps[1] as Extract<Step, { op: 'vhid.set' }>).create, true);
    assert.match(describeStep(steps[0]).detail, /protocol changes from (carp to vrrpv3|vrrpv3 to carp)/);
  }
});

test('VRRP priority and interval change in place; the VRRP fields of a carp vhid are ignored', () => {
  const live = snap([{ interface: 'em0', vhid: 1, params: VRRP, addresses: ['192.0.2.1/24'] }]);
  for (const change of [{ vrrpPriority: 200 }, { vrrpIntervalCs: 50 }]) {
    const steps = assertConverges(snap([{ interface: 'em0', vhid: 1, params: { ...VRRP, ...change }, addresses: ['192.0.2.1/24'] }]), live);
    assert.deepEqual(ops(steps), ['vhid.set em0/1']);
    assert.equal((steps[0] as Extract<Step, { op: 'vhid.set' }>).create, false);
  }
  // A kernel may report priority/interval for a carp vhid, or `protocol: 'carp'`: nothing to do.
  const v = [{ interface: 'em0', vhid: 1, params: P, addresses: ['192.0.2.1/24'] }];
  assert.deepEqual(plan(snap(v), snap([{ ...v[0], params: { ...P, protocol: 'carp', vrrpPriority: 7, vrrpIntervalCs: 9 } }])), []);
});

test('targetOf passes protocol, priority and interval for vrrpv3 VIPs only', () => {
  const s = initialState(new Date(0));
  s.vips = [
    { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, protocol: 'carp' },
    { interface: 'em0', vhid: 2, addresses: ['192.0.2.2/24'], advbaseSec: 1, advskew: 0, mode: 'unicast', peer: '192.0.2.9', description: '', nosync: false, protocol: 'vrrpv3', vrrpPriority: 150, vrrpInterval: 25 },
  ];
  const [carp, vrrp] = targetOf(s).vhids;
  assert.equal('protocol' in carp.params, false);
  assert.deepEqual(vrrp.params, { advbaseSec: 1, advskew: 0, key: undefined, peer: '192.0.2.9', peer6: undefined, protocol: 'vrrpv3', vrrpPriority: 150, vrrpIntervalCs: 25 });
  assert.match(describeStep({ op: 'vhid.set', interface: 'em0', vhid: 2, params: vrrp.params, create: true }).detail, /^create: VRRPv3 priority 150, interval 25 cs, unicast peer 192\.0\.2\.9$/);
});
