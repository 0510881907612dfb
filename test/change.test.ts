/**
 * What a change costs follows what it touches; these randomised tests hold the cheap paths to
 * the whole-document ones they replace:
 *   - diffStates' JSON Patch turns the old document into the new one (applyPatch);
 *   - checkChange (the touched VIPs, through indexes) reports exactly what checkState (the whole
 *     document) reports, in the same order, for a valid document and any edit of it;
 *   - planning over changeScope (the touched vhids of a kept live state) gives the steps of
 *     planning over changeTarget and the whole live state.
 * Seeds are fixed and printed on failure.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffStates, draftOf, freezeState, settle } from '../src/config/change.js';
import { initialState, type DesiredState, type VipConfig } from '../src/config/model.js';
import { applyPatch, canonicalJson, diff, jsonEqual } from '../src/config/patch.js';
import { checkChange, checkState, VipIndex } from '../src/config/validate.js';
import { LiveCache } from '../src/service/live-cache.js';
import { changeScope, changeTarget, plan, targetOf, type Snapshot } from '../src/service/plan.js';
import { prng } from './helpers/prng.js';

const RUNS = 400;
const plain = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

function gen(rnd: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const chance = (p: number) => rnd() < p;
  const ADDRESSES = ['192.0.2.1/24', '192.0.2.2/24', '192.0.2.3/24', '192.0.2.3/25', '198.51.100.7/24', '2001:db8::1/64', '2001:db8::2/64'];
  const vip = (): VipConfig => {
    const protocol = chance(0.8) ? 'carp' : 'vrrpv3';
    const v: VipConfig = {
      interface: chance(0.05) ? '9bad' : pick(['em0', 'em1']),
      vhid: chance(0.03) ? 300 : 1 + Math.floor(rnd() * 5),
      addresses: Array.from({ length: chance(0.05) ? 0 : 1 + Math.floor(rnd() * 2) }, () => (chance(0.03) ? 'bogus' : pick(ADDRESSES))),
      advbaseSec: 1,
      advskew: chance(0.05) ? 999 : Math.floor(rnd() * 254),
      mode: chance(0.1) ? 'unicast' : 'multicast',
      description: `d${Math.floor(rnd() * 3)}`,
      nosync: chance(0.2),
      protocol,
    };
    if (protocol === 'vrrpv3') Object.assign(v, { vrrpPriority: 100, vrrpInterval: 100 });
    if (v.mode === 'unicast' && chance(0.7)) v.peer = '192.0.2.200';
    if (protocol === 'carp' && chance(0.2)) v.password = 'pw';
    return v;
  };
  /** A valid document: random VIPs, each kept only if the document stays valid. */
  const valid = (): DesiredState => {
    const s = initialState(new Date(0));
    for (let i = 0; i < 12; i++) {
      const next = { ...s, vips: [...s.vips, vip()] };
      if (checkState(next).length === 0) s.vips = next.vips;
    }
    if (chance(0.3)) s.pfsync = { enabled: true, syncdev: 'em1', maxupd: 128, defer: false, version: 1400 };
    s.api.tokens = [{ name: 'admin', role: 'admin', sha256: 'a'.repeat(64), createdAt: '2026-01-01T00:00:00.000Z' }];
    return freezeState(s);
  };
  /** Edits a draft of `s` as the change paths do, sometimes into something invalid. */
  const edit = (s: DesiredState): DesiredState => {
    const d = draftOf(s);
    const n = 1 + Math.floor(rnd() * 3);
    for (let k = 0; k < n; k++) {
      const r = rnd();
      if (r < 0.3) d.vips.push(vip());
      else if (r < 0.45 && d.vips.length > 0) d.vips.splice(Math.floor(rnd() * d.vips.length), 1);
      else if (r < 0.65 && d.vips.length > 0) {
        const i = Math.floor(rnd() * d.vips.length);
        const v = { ...d.vips[i], addresses: [...d.vips[i].addresses] };
        if (chance(0.5)) v.addresses.push(pick(ADDRESSES));
        if (chance(0.3)) v.vhid = 1 + Math.floor(rnd() * 5);
        if (chance(0.3)) v.advskew = chance(0.2) ? 999 : Math.floor(rnd() * 254);
        if (chance(0.2)) v.description = 'changed';
        d.vips[i] = v;
      } else if (r < 0.72) d.vips = structuredClone(d.vips).reverse(); // new objects, another order (a rollback, a sync)
      else if (r < 0.8) d.pfsync = { enabled: chance(0.7), syncdev: chance(0.8) ? 'em1' : undefined, maxupd: chance(0.9) ? 100 : 999, defer: chance(0.5), version: 1400 };
      else if (r < 0.86) d.api.tokens.push({ name: chance(0.5) ? 'admin' : 'reader', role: 'read', sha256: 'b'.repeat(64), createdAt: '2026-01-01T00:00:00.000Z' });
      else if (r < 0.92) d.carp.preempt = !d.carp.preempt;
      else d.sync.localAddresses.push(chance(0.8) ? '192.0.2.9/24' : 'nope');
    }
    return d;
  };
  return { valid, edit, chance, pick, vip };
}

test('diffStates: its JSON Patch turns the old document into the new one', () => {
  for (let seed = 1; seed <= RUNS; seed++) {
    const g = gen(prng(seed));
    const before = g.valid();
    const after = g.edit(before);
    const d = diffStates(before, after, { adopt: seed % 2 === 0 });
    const doc = applyPatch(plain(before), d.ops) as Record<string, unknown>;
    assert.deepEqual({ ...doc, revision: 0, updatedAt: '' }, { ...(plain(after) as object), revision: 0, updatedAt: '' }, `seed ${seed}`);
    assert.equal(d.ops.length === 0, jsonEqual(plain({ ...before, revision: 0 }), plain({ ...after, revision: 0 })), `seed ${seed}: empty patch iff same content`);
  }
});

test('draftOf: a document in stored key order gets the same draft as any other (keys, order, accessors, edits, sharing)', () => {
  const shape = (o: object) => Object.keys(o).map((k) => {
    const d = Object.getOwnPropertyDescriptor(o, k)!;
    return [k, 'get' in d ? 'accessor' : 'data', d.enumerable, d.configurable, 'get' in d ? typeof d.set : d.writable];
  });
  for (let seed = 1; seed <= 100; seed++) {
    const stored = gen(prng(seed)).valid();
    // The same document with its keys in another order takes draftOf's general way.
    const other = freezeState(Object.fromEntries(Object.entries(stored).reverse()) as unknown as DesiredState);
    assert.notDeepEqual(Object.keys(other), Object.keys(stored));
    const [a, b] = [draftOf(stored), draftOf(other)];
    assert.deepEqual(Object.keys(a), Object.keys(stored), `seed ${seed}`);
    assert.deepEqual(shape(a), shape(b).sort((x, y) => Object.keys(stored).indexOf(x[0] as string) - Object.keys(stored).indexOf(y[0] as string)), `seed ${seed}`);
    const ea = gen(prng(seed * 7)).edit(stored);
    const eb = gen(prng(seed * 7)).edit(other);
    const [sa, sb] = [settle(ea, stored), settle(eb, other)];
    assert.deepEqual(Object.keys(sa), Object.keys(stored), `seed ${seed}`);
    assert.deepEqual(plain(sa), plain(sb), `seed ${seed}`);
    for (const k of ['hooks', 'webhooks', 'tracks', 'carp', 'pfsync', 'api', 'sync'] as const) {
      // A section the edit never looked at is the revision's own object; one it did is a copy.
      assert.equal(sa[k] === stored[k], sb[k] === other[k], `seed ${seed}: ${k} shared alike`);
    }
  }
});

test('diff and applyPatch on arbitrary JSON, escaped keys and arrays of every shape', () => {
  const rnd = prng(7);
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.3) return [1, 'a', null, true, 2.5, 'x/y~z'][Math.floor(rnd() * 6)];
    if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 5) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, () => [['a', 'b', 'c/d', 'e~f'][Math.floor(rnd() * 4)], value(depth + 1)]));
  };
  for (let i = 0; i < 2000; i++) {
    const a = value(0);
    const b = rnd() < 0.5 ? value(0) : mutate(structuredClone(a), rnd);
    const ops = diff(a, b);
    assert.equal(canonicalJson(applyPatch(structuredClone(a), ops)), canonicalJson(b), `case ${i}: ${JSON.stringify(a)} -> ${JSON.stringify(b)} by ${JSON.stringify(ops)}`);
  }
});

function mutate(v: unknown, rnd: () => number): unknown {
  if (Array.isArray(v)) {
    const r = rnd();
    if (r < 0.3) v.splice(Math.floor(rnd() * (v.length + 1)), 0, 'new');
    else if (r < 0.6 && v.length > 0) v.splice(Math.floor(rnd() * v.length), 1);
    else if (v.length > 0) v[Math.floor(rnd() * v.length)] = mutate(v[Math.floor(rnd() * v.length)], rnd);
    return v;
  }
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length > 0 && rnd() < 0.4) delete o[keys[Math.floor(rnd() * keys.length)]];
    else o[['a', 'z', 'c/d'][Math.floor(rnd() * 3)]] = keys.length > 0 ? mutate(o[keys[0]], rnd) : 0;
    return o;
  }
  return rnd() < 0.5 ? v : 'changed';
}

test('checkChange reports exactly what checkState reports for the whole document, in the same order', () => {
  let invalid = 0;
  for (let seed = 1; seed <= RUNS * 2; seed++) {
    const g = gen(prng(seed));
    const before = g.valid();
    assert.deepEqual(checkState(before), [], `seed ${seed}: the generated document is valid`);
    const after = g.edit(before);
    const d = diffStates(before, after, { adopt: true });
    const want = checkState(after);
    if (want.length > 0) invalid++;
    assert.deepEqual(checkChange(after, d, VipIndex.of(before)), want, `seed ${seed}`);
  }
  // The edits must break rules often enough to mean something.
  assert.ok(invalid > RUNS / 2, `${invalid} invalid edits`);
});

test('a VipIndex kept in step with changes equals one built from the document', () => {
  const g = gen(prng(99));
  let s = g.valid();
  const index = VipIndex.of(s);
  for (let i = 0; i < 300; i++) {
    const next = g.edit(s);
    const d = diffStates(s, next, { adopt: true });
    if (checkChange(next, d, index).length > 0) continue;
    index.apply(d);
    s = freezeState(next);
    const fresh = VipIndex.of(s);
    for (const v of s.vips) {
      assert.equal(index.vip(`${v.interface}/${v.vhid}`), fresh.vip(`${v.interface}/${v.vhid}`));
      for (const a of v.addresses) assert.deepEqual(index.holders(a.split('/')[0]), fresh.holders(a.split('/')[0]));
    }
  }
});

test('planning over changeScope gives the steps of planning over changeTarget and the whole live state', () => {
  let planned = 0;
  for (let seed = 1; seed <= RUNS * 3; seed++) {
    const rnd = prng(seed);
    const g = gen(rnd);
    const before = g.valid();
    const after = g.edit(before);
    // Only valid changes are planned.
    if (checkState(after).length > 0) continue;
    planned++;
    // Live: the stored state, drifted: a vhid missing, one carpd does not know, other params.
    const live: Snapshot = targetOf(before);
    if (g.chance(0.3) && live.vhids.length > 0) live.vhids.splice(Math.floor(rnd() * live.vhids.length), 1);
    if (g.chance(0.3) && live.vhids.length > 0) live.vhids[0] = { ...live.vhids[0], params: { ...live.vhids[0].params, advskew: 77 } };
    if (g.chance(0.4)) {
      const used = new Set(live.vhids.flatMap((v) => v.addresses.map((a) => `${v.interface} ${a.split('/')[0]}`)));
      const extra = { interface: g.pick(['em0', 'em1']), vhid: 200, params: { advbaseSec: 1, advskew: 5 }, addresses: [g.pick(['192.0.2.1/24', '192.0.2.5/24', '2001:db8::2/64'])] };
      if (!used.has(`${extra.interface} ${extra.addresses[0].split('/')[0]}`)) live.vhids.push(extra);
    }
    if (g.chance(0.2)) live.carp = { allow: !live.carp.allow, preempt: live.carp.preempt };
    live.vhids.sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
    const want = plan(changeTarget(before, after, live), live);
    const d = diffStates(before, after, { adopt: true });
    const scope = changeScope(before, after, d, new LiveCache(live, 0));
    assert.deepEqual(plan(scope.target, scope.live), want, `seed ${seed}`);
  }
  assert.ok(planned > RUNS / 2, `${planned} valid changes planned`);
});
