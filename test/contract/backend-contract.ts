/**
 * The backend contract (src/kernel/backend.ts) as one suite that every backend must pass.
 * The factory returns a fresh backend whose interfaces include em0 and em1 and not nosuch0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchError, type BackendStep, type KernelBackend } from '../../src/kernel/backend.js';
import { KernelError } from '../../src/kernel/errno.js';

export interface ContractEnv {
  backend: KernelBackend;
  /** Lets timers run (manual clocks advance; real ones wait). */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

const P = { advbaseSec: 1, advskew: 0 };

/** What a batch may change, without the live states a batch's undo does not restore; addresses as sets. */
async function configured(b: KernelBackend) {
  const g = await b.getCarpGlobals();
  const { running: _r, bulkUpdateDone: _d, ...pfsync } = await b.getPfsync();
  return {
    vhids: (await b.listVhids()).map(({ since: _s, reason: _why, state: _st, ...v }) => ({ ...v, addresses: [...v.addresses].sort() })),
    carp: { allow: g.allow, preempt: g.preempt, demotion: g.demotion },
    maintenance: await b.getMaintenance(),
    pfsync,
  };
}

async function rejectsWith(p: Promise<unknown>, errnoName: string, iface?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KernelError, `expected KernelError, got ${String(e)}`);
    assert.equal(e.errnoName, errnoName, e.message);
    if (iface !== undefined) assert.equal(e.iface, iface);
    return true;
  });
}

export function backendContract(name: string, make: () => Promise<ContractEnv>): void {
  const withEnv = (title: string, fn: (env: ContractEnv) => Promise<void>) =>
    test(`${name} backend: ${title}`, async (t) => {
      const env = await make();
      t.after(() => env.close());
      await fn(env);
    });

  withEnv('a vhid is created, carries addresses of both families, and is listed', async ({ backend: b }) => {
    await b.setVhid('em0', 7, { ...P, advskew: 100, key: 'pass' });
    await b.addAddress('em0', 7, '192.0.2.7/24');
    await b.addAddress('em0', 7, '2001:db8::7/64');
    const [v] = await b.listVhids();
    assert.equal(v.interface, 'em0');
    assert.equal(v.vhid, 7);
    assert.equal(v.advskew, 100);
    assert.equal(v.key, 'pass');
    assert.deepEqual(v.addresses, ['192.0.2.7/24', '2001:db8::7/64']);
    assert.notEqual(v.state, 'MASTER');
  });

  withEnv('a query answers the vhids it names and the holders of its addresses, in order', async ({ backend: b }) => {
    for (const [iface, vhid, addr] of [['em0', 3, '192.0.2.3/24'], ['em0', 9, '192.0.2.9/24'], ['em1', 3, '2001:db8::3/64'], ['em1', 5, '198.51.100.5/24']] as const) {
      await b.setVhid(iface, vhid, P);
      await b.addAddress(iface, vhid, addr);
    }
    const keys = (vs: { interface: string; vhid: number }[]) => vs.map((v) => `${v.interface}/${v.vhid}`);
    // Named (one absent), and by address with another prefix length; em0's 2001:db8::3 is nobody's.
    const got = await b.listVhids({
      vhids: [{ interface: 'em1', vhid: 5 }, { interface: 'em0', vhid: 200 }],
      addresses: [{ interface: 'em0', address: '192.0.2.9/32' }, { interface: 'em0', address: '2001:db8::3/64' }],
    });
    const k = keys(got);
    assert.ok(k.includes('em1/5') && k.includes('em0/9'), k.join(' '));
    assert.ok(!k.includes('em0/200'));
    assert.deepEqual(k, [...k].sort((x, y) => (x.split('/')[0] === y.split('/')[0] ? Number(x.split('/')[1]) - Number(y.split('/')[1]) : x < y ? -1 : 1)));
    const em09 = got.find((v) => v.interface === 'em0' && v.vhid === 9)!;
    assert.deepEqual(em09.addresses, ['192.0.2.9/24']);
    // Without a query: all of them.
    assert.deepEqual(keys(await b.listVhids()), ['em0/3', 'em0/9', 'em1/3', 'em1/5']);
    // An address moved to another vhid is found at its new holder, and no longer at the old one's.
    await b.addAddress('em0', 3, '192.0.2.9/24');
    const moved = keys(await b.listVhids({ addresses: [{ interface: 'em0', address: '192.0.2.9/24' }] }));
    assert.ok(moved.includes('em0/3'), moved.join(' '));
  });

  withEnv('an address before its vhid: ENOPROTOOPT without vhids, ENOENT with others', async ({ backend: b }) => {
    await rejectsWith(b.addAddress('em0', 1, '192.0.2.1/24'), 'ENOPROTOOPT', 'em0');
    await b.setVhid('em0', 2, P);
    await b.addAddress('em0', 2, '192.0.2.2/24');
    await rejectsWith(b.addAddress('em0', 1, '192.0.2.1/24'), 'ENOENT', 'em0');
  });

  withEnv('out-of-range values are EINVAL', async ({ backend: b }) => {
    await rejectsWith(b.setVhid('em0', 0, P), 'EINVAL');
    await rejectsWith(b.setVhid('em0', 256, P), 'EINVAL');
    await rejectsWith(b.setVhid('em0', 1, { ...P, advskew: 255 }), 'EINVAL');
    await rejectsWith(b.setVhid('em0', 1, { ...P, advbaseSec: 0 }), 'EINVAL');
    await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 256, defer: false, version: 1400 }), 'EINVAL');
    await rejectsWith(b.setPfsync({ syncdev: 'em1', maxupd: 128, defer: false, version: 1234 }), 'EINVAL');
  });

  withEnv('an unknown interface is ENXIO', async ({ backend: b }) => {
    await rejectsWith(b.setVhid('nosuch0', 1, P), 'ENXIO', 'nosuch0');
  });

  withEnv('removing the last address removes the vhid', async ({ backend: b }) => {
    await b.setVhid('em0', 3, P);
    await b.addAddress('em0', 3, '192.0.2.3/24');
    await b.addAddress('em0', 3, '192.0.2.4/24');
    await b.removeAddress('em0', 3, '192.0.2.3/24');
    assert.deepEqual((await b.listVhids()).map((v) => v.addresses), [['192.0.2.4/24']]);
    await b.removeAddress('em0', 3, '192.0.2.4/24');
    assert.deepEqual(await b.listVhids(), []);
    await rejectsWith(b.removeAddress('em0', 3, '192.0.2.4/24'), 'EADDRNOTAVAIL');
    await rejectsWith(b.removeVhid('em0', 3), 'ENOENT');
  });

  withEnv('the same vhid on two interfaces is two vhids', async ({ backend: b }) => {
    await b.setVhid('em0', 1, P);
    await b.setVhid('em1', 1, { ...P, advskew: 50 });
    await b.addAddress('em0', 1, '192.0.2.1/24');
    await b.addAddress('em1', 1, '198.51.100.1/24');
    const l = await b.listVhids();
    assert.deepEqual(l.map((v) => `${v.interface}/${v.vhid}/${v.advskew}`), ['em0/1/0', 'em1/1/50']);
  });

  withEnv('unicast peers are kept and can be cleared back to multicast', async ({ backend: b }) => {
    if (!b.capabilities().unicast) return;
    await b.setVhid('em0', 4, { ...P, peer: '192.0.2.2', peer6: '2001:db8::2' });
    await b.addAddress('em0', 4, '192.0.2.44/24');
    let [v] = await b.listVhids();
    assert.equal(v.peer, '192.0.2.2');
    assert.equal(v.peer6, '2001:db8::2');
    await b.setVhid('em0', 4, P);
    [v] = await b.listVhids();
    assert.equal(v.peer, undefined);
    assert.equal(v.peer6, undefined);
  });

  withEnv('vrrpv3 without the capability is EOPNOTSUPP and creates nothing', async ({ backend: b }) => {
    if (b.capabilities().vrrpv3) return;
    await rejectsWith(b.setVhid('em0', 8, { ...P, protocol: 'vrrpv3', vrrpPriority: 150, vrrpIntervalCs: 50 }), 'EOPNOTSUPP', 'em0');
    assert.deepEqual(await b.listVhids(), []);
  });

  withEnv('vrrpv3 vhids are stored and reported, priority and interval change in place', async ({ backend: b }) => {
    if (!b.capabilities().vrrpv3) return;
    await b.setVhid('em0', 8, { ...P, protocol: 'vrrpv3', vrrpPriority: 150, vrrpIntervalCs: 50 });
    await b.addAddress('em0', 8, '192.0.2.8/24');
    await b.setVhid('em0', 9, P);
    await b.addAddress('em0', 9, '192.0.2.9/24');
    let [v, c] = await b.listVhids();
    assert.deepEqual([v.vhid, v.protocol, v.vrrpPriority, v.vrrpIntervalCs, v.addresses], [8, 'vrrpv3', 150, 50, ['192.0.2.8/24']]);
    assert.equal(c.protocol ?? 'carp', 'carp', 'a vhid set without a protocol is carp');
    await b.setVhid('em0', 8, { ...P, protocol: 'vrrpv3', vrrpPriority: 200, vrrpIntervalCs: 100 });
    [v] = await b.listVhids();
    assert.deepEqual([v.protocol, v.vrrpPriority, v.vrrpIntervalCs, v.addresses], ['vrrpv3', 200, 100, ['192.0.2.8/24']]);
  });

  withEnv('vrrpv3: a protocol change in place is EINVAL and changes nothing; ranges are EINVAL', async ({ backend: b }) => {
    if (!b.capabilities().vrrpv3) return;
    const V = { ...P, protocol: 'vrrpv3' as const, vrrpPriority: 100, vrrpIntervalCs: 100 };
    await b.setVhid('em0', 8, V);
    await b.addAddress('em0', 8, '192.0.2.8/24');
    await b.setVhid('em0', 9, P);
    await b.addAddress('em0', 9, '192.0.2.9/24');
    await rejectsWith(b.setVhid('em0', 8, P), 'EINVAL', 'em0');
    await rejectsWith(b.setVhid('em0', 9, V), 'EINVAL', 'em0');
    const [v, c] = await b.listVhids();
    assert.deepEqual([v.vhid, v.protocol, v.addresses], [8, 'vrrpv3', ['192.0.2.8/24']]);
    assert.deepEqual([c.vhid, c.protocol ?? 'carp', c.addresses], [9, 'carp', ['192.0.2.9/24']]);
    // Removed and set again, the vhid takes the other protocol.
    await b.removeVhid('em0', 8);
    await b.setVhid('em0', 8, P);
    assert.equal((await b.listVhids())[0].protocol ?? 'carp', 'carp');
    for (const bad of [{ vrrpPriority: 0 }, { vrrpPriority: 255 }, { vrrpIntervalCs: 0 }, { vrrpIntervalCs: 4096 }]) {
      await rejectsWith(b.setVhid('em0', 10, { ...V, ...bad }), 'EINVAL', 'em0');
    }
    assert.deepEqual((await b.listVhids()).map((x) => x.vhid), [8, 9]);
  });

  withEnv('maintenance adds exactly 240 once and takes exactly that back', async ({ backend: b }) => {
    const base = (await b.getCarpGlobals()).demotion;
    await b.setMaintenance(true);
    await b.setMaintenance(true);
    assert.equal(await b.getMaintenance(), true);
    assert.equal((await b.getCarpGlobals()).demotion, base + 240);
    await b.setMaintenance(false);
    assert.equal((await b.getCarpGlobals()).demotion, base);
  });

  withEnv('named demotions add exactly their amount beside maintenance, change by the difference, and are taken back exactly', async ({ backend: b }) => {
    const base = (await b.getCarpGlobals()).demotion;
    assert.deepEqual([...(await b.demotions())], []);
    await b.setDemotion('splitbrain', 240);
    await b.setDemotion('splitbrain', 240);
    assert.equal((await b.getCarpGlobals()).demotion, base + 240, 'idempotent');
    await b.setMaintenance(true);
    await b.setDemotion('track.wan', 50);
    assert.equal((await b.getCarpGlobals()).demotion, base + 530);
    assert.deepEqual([...(await b.demotions())], [['splitbrain', 240], ['track.wan', 50]]);
    await b.setDemotion('track.wan', 20);
    assert.equal((await b.getCarpGlobals()).demotion, base + 500);
    await b.setDemotion('splitbrain', 0);
    await b.setDemotion('splitbrain', 0);
    assert.equal((await b.getCarpGlobals()).demotion, base + 260);
    assert.equal(await b.getMaintenance(), true, 'maintenance is its own');
    await b.setMaintenance(false);
    await b.setDemotion('track.wan', 0);
    assert.equal((await b.getCarpGlobals()).demotion, base);
    assert.deepEqual([...(await b.demotions())], []);
    // Only `admin` may be negative (the administrative adjustment), within -240..240.
    await b.setDemotion('admin', -3);
    assert.equal((await b.getCarpGlobals()).demotion, base - 3);
    assert.deepEqual([...(await b.demotions())], [['admin', -3]]);
    await b.setDemotion('admin', 0);
    assert.equal((await b.getCarpGlobals()).demotion, base);
    for (const [name, amount] of [['maintenance', 10], ['other', 10], ['Split Brain', 10], ['', 10], ['splitbrain', -1], ['track:wan', -1], ['splitbrain', 241], ['splitbrain', 1.5], ['admin', -241], ['admin', 241]] as const) {
      await rejectsWith(b.setDemotion(name, amount), 'EINVAL');
    }
    assert.equal((await b.getCarpGlobals()).demotion, base);
  });

  withEnv('allow=0 puts every vhid in INIT; allow=1 brings them back', async ({ backend: b, elapse }) => {
    await b.setVhid('em0', 9, P);
    await b.addAddress('em0', 9, '192.0.2.9/24');
    await elapse(3100);
    assert.equal((await b.listVhids())[0].state, 'MASTER');
    await b.setCarpGlobals({ allow: false, preempt: true });
    assert.equal((await b.listVhids())[0].state, 'INIT');
    assert.deepEqual(await b.getCarpGlobals().then((g) => [g.allow, g.preempt]), [false, true]);
    await b.setCarpGlobals({ allow: true, preempt: true });
    assert.notEqual((await b.listVhids())[0].state, 'INIT');
  });

  withEnv('state changes are reported with a reason; forced BACKUP is reported as such', async ({ backend: b, elapse }) => {
    const seen: string[] = [];
    const off = b.onStateChange((c) => seen.push(`${c.vhid}:${c.previous}->${c.state}:${c.reason}`));
    await b.setVhid('em0', 5, P);
    await b.addAddress('em0', 5, '192.0.2.5/24');
    await elapse(3100);
    assert.equal((await b.listVhids())[0].state, 'MASTER');
    if (b.capabilities().forceState) {
      await b.forceState('em0', 5, 'BACKUP');
      const [v] = await b.listVhids();
      assert.equal(v.state, 'BACKUP');
      assert.match(v.reason, /forced/);
    }
    off();
    assert.ok(seen.some((s) => s.startsWith('5:BACKUP->MASTER:') && s.length > 'x:BACKUP->MASTER:'.length + 2), seen.join('\n'));
  });

  withEnv('a batch applies every step, in order, and an empty batch changes nothing', async ({ backend: b }) => {
    await b.apply([]);
    assert.deepEqual((await configured(b)).vhids, []);
    const steps: BackendStep[] = [
      { op: 'vhid.set', interface: 'em0', vhid: 1, params: { ...P, advskew: 10, key: 'one' } },
      { op: 'address.add', interface: 'em0', vhid: 1, address: '192.0.2.1/24' },
      { op: 'vhid.set', interface: 'em1', vhid: 2, params: P },
      { op: 'address.add', interface: 'em1', vhid: 2, address: '198.51.100.2/24' },
      { op: 'address.add', interface: 'em1', vhid: 2, address: '2001:db8::2/64' },
      { op: 'carp.set', globals: { allow: true, preempt: true } },
      { op: 'maintenance.set', enabled: true },
      { op: 'pfsync.set', settings: { syncdev: 'em1', maxupd: 64, defer: true, version: 1301 } },
    ];
    await b.apply(steps);
    const after = await configured(b);
    assert.deepEqual(after.vhids.map((v) => [v.interface, v.vhid, v.advskew, v.key, v.addresses]), [
      ['em0', 1, 10, 'one', ['192.0.2.1/24']],
      ['em1', 2, 0, undefined, ['198.51.100.2/24', '2001:db8::2/64']],
    ]);
    assert.deepEqual([after.carp.preempt, after.maintenance, after.pfsync.syncdev, after.pfsync.maxupd], [true, true, 'em1', 64]);
    // Moving an address between vhids and removing a vhid, in one batch.
    await b.apply([
      { op: 'address.add', interface: 'em0', vhid: 1, address: '192.0.2.11/24' },
      { op: 'vhid.set', interface: 'em0', vhid: 3, params: P },
      { op: 'address.add', interface: 'em0', vhid: 3, address: '192.0.2.1/24' },
      { op: 'vhid.remove', interface: 'em1', vhid: 2 },
    ]);
    assert.deepEqual((await configured(b)).vhids.map((v) => [v.interface, v.vhid, v.addresses]), [
      ['em0', 1, ['192.0.2.11/24']],
      ['em0', 3, ['192.0.2.1/24']],
    ]);
  });

  withEnv('a batch that fails in the middle is taken back entirely, and the steps after the failure are not made', async ({ backend: b }) => {
    await b.setVhid('em0', 3, { ...P, advskew: 10, key: 'three' });
    await b.addAddress('em0', 3, '192.0.2.3/24');
    await b.setVhid('em0', 5, { ...P, advskew: 20, key: 'five' });
    await b.addAddress('em0', 5, '192.0.2.5/24');
    await b.addAddress('em0', 5, '192.0.2.55/24');
    await b.setPfsync({ syncdev: 'em1', maxupd: 32, defer: false, version: 1301 });
    const before = await configured(b);
    const applied: BackendStep[] = [
      { op: 'maintenance.set', enabled: true },
      { op: 'vhid.set', interface: 'em0', vhid: 3, params: { ...P, advskew: 50, key: 'three' } },
      { op: 'address.add', interface: 'em0', vhid: 3, address: '192.0.2.33/24' },
      { op: 'address.remove', interface: 'em0', vhid: 3, address: '192.0.2.3/24' },
      { op: 'vhid.set', interface: 'em1', vhid: 4, params: P },
      { op: 'address.add', interface: 'em1', vhid: 4, address: '198.51.100.4/24' },
      { op: 'address.add', interface: 'em0', vhid: 3, address: '192.0.2.55/24' },
      { op: 'vhid.remove', interface: 'em0', vhid: 5 },
      { op: 'carp.set', globals: { allow: true, preempt: !before.carp.preempt } },
      { op: 'pfsync.set', settings: { syncdev: 'em0', maxupd: 200, defer: true, version: 1301 } },
    ];
    // Refused by the kernel itself: em1 has vhids, not this one (ENOENT).
    const failing: BackendStep = { op: 'address.add', interface: 'em1', vhid: 99, address: '198.51.100.99/24' };
    const later: BackendStep = { op: 'vhid.set', interface: 'em0', vhid: 7, params: P };
    await assert.rejects(b.apply([...applied, failing, later]), (e: unknown) => {
      assert.ok(e instanceof BatchError, `expected BatchError, got ${String(e)}`);
      assert.equal(e.index, applied.length);
      assert.equal(e.errnoName, 'ENOENT', e.message);
      assert.equal(e.iface, 'em1');
      assert.deepEqual(e.undoErrors, []);
      return true;
    });
    assert.deepEqual(await configured(b), before);

    // Refused before any kernel call (advskew out of range): the same outcome.
    await assert.rejects(b.apply([applied[1], applied[2], { op: 'vhid.set', interface: 'em0', vhid: 8, params: { ...P, advskew: 255 } }]), (e: unknown) => {
      assert.ok(e instanceof BatchError);
      assert.equal(e.index, 2);
      assert.equal(e.errnoName, 'EINVAL');
      return true;
    });
    assert.deepEqual(await configured(b), before);
  });

  withEnv('a batch that moves an address away and back, with the vhid that lost it, is taken back entirely', async ({ backend: b }) => {
    await b.setVhid('em0', 1, { ...P, advskew: 10 });
    await b.addAddress('em0', 1, '192.0.2.1/24');
    await b.setVhid('em0', 2, { ...P, advskew: 20 });
    await b.addAddress('em0', 2, '192.0.2.2/24');
    await b.setVhid('em1', 1, P);
    await b.addAddress('em1', 1, '192.0.2.1/24'); // the same address on another interface is another address
    const before = await configured(b);
    await assert.rejects(
      b.apply([
        { op: 'address.add', interface: 'em0', vhid: 2, address: '192.0.2.1/24' }, // vhid 1 goes with its last address
        { op: 'vhid.set', interface: 'em0', vhid: 1, params: { ...P, advskew: 30 } },
        { op: 'address.add', interface: 'em0', vhid: 1, address: '192.0.2.1/25' }, // back, with another prefix length
        { op: 'address.remove', interface: 'em0', vhid: 2, address: '192.0.2.2/24' },
        { op: 'address.add', interface: 'em0', vhid: 1, address: '192.0.2.2/24' },
        { op: 'address.add', interface: 'em1', vhid: 99, address: '198.51.100.99/24' }, // ENOENT
      ]),
      (e: unknown) => e instanceof BatchError && e.index === 5 && e.undoErrors.length === 0,
    );
    assert.deepEqual(await configured(b), before);
  });

  withEnv('pfsync settings round-trip and report running', async ({ backend: b }) => {
    await b.setPfsync({ syncdev: 'em1', syncpeer: '192.0.2.200', maxupd: 64, defer: true, version: 1301 });
    const p = await b.getPfsync();
    assert.deepEqual([p.syncdev, p.syncpeer, p.maxupd, p.defer, p.version, p.running], ['em1', '192.0.2.200', 64, true, 1301, true]);
    await b.setPfsync({ maxupd: 128, defer: false, version: 1400 });
    assert.equal((await b.getPfsync()).running, false);
  });

  withEnv('pfStatus: null without pf, else counts that are whole numbers, and it changes nothing', async ({ backend: b }) => {
    const before = await configured(b);
    const s = await b.pfStatus();
    if (b.name === 'freebsd') assert.notEqual(s, undefined);
    else assert.equal(s, null, 'a backend without pf says so rather than showing zeros');
    if (s !== null) {
      assert.equal(typeof s.running, 'boolean');
      for (const n of [s.states, s.srcNodes, s.stateSearches, s.stateInserts, s.stateRemovals]) assert.ok(Number.isSafeInteger(n) && n >= 0, String(n));
      assert.ok(['ioctl', 'nvlist', 'netlink'].includes(s.via));
      assert.ok(s.pfsyncBulkUpdateDone === null || typeof s.pfsyncBulkUpdateDone === 'boolean');
    }
    assert.deepEqual(await configured(b), before);
  });
}
