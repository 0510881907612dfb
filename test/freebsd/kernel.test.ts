/**
 * The freebsd backend against the real kernel: carp(4), pfsync(4), net.inet.carp.* and devd(8),
 * through the real libc.so.7 and libnv. It runs on FreeBSD as root with carp and pfsync loaded
 * (.cirrus.yml); anywhere else every test skips with a reason starting "FreeBSD only".
 *
 * What the backend reports is checked against what ifconfig(8) and sysctl(8) show. Each test
 * works on its own epair(4) with documentation addresses, and puts back every global setting it
 * changes (allow, preempt, demotion, pfsync0). The pfsync test comes last: attaching pfsync
 * starts a bulk update that demotes carp for about a minute, and its cleanup waits for that.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { PfsyncSettings, StateChange } from '../../src/kernel/backend.js';
import { openFreebsdBackend } from '../../src/kernel/freebsd/backend.js';
import {
  Cleanup,
  DEVD_PIPE,
  carpOf,
  createEpair,
  demotion,
  freebsdMajor,
  hasAddress,
  ifconfig,
  makeStateDir,
  openBackend,
  rejectsWith,
  run,
  setSysctl,
  skipReason,
  sysctlInt,
  tryRun,
  vhidAddresses,
  vhidOf,
  waitFor,
} from './helpers.js';

const skip = skipReason();

/** master-down interval = 3 × advbase + advskew/256 s (3.4 s here); the bound leaves room for a slow VM. */
const STATE_WAIT_MS = 30_000;
const KEY = 'carpd-test';
const MAINTENANCE = 240;

test('a vhid with an IPv4 and an IPv6 address: backend and ifconfig agree; MASTER through devd; forced BACKUP; advskew; unicast peer; removal', { skip }, async (t) => {
  assert.ok(existsSync(DEVD_PIPE), `devd(8) is not running (no ${DEVD_PIPE}); the backend hears state changes from it`);
  const c = new Cleanup(t);
  const { a } = createEpair(c);
  const b = await openBackend(c, makeStateDir(c));
  const VHID = 42;
  const V4 = '192.0.2.42/24';
  const V6 = '2001:db8::42/64';
  const PEER = '192.0.2.2';
  const events: StateChange[] = [];
  b.onStateChange((e) => events.push(e));
  const eventsFor = (from: number, state: string) => events.slice(from).filter((e) => e.interface === a && e.vhid === VHID && e.state === state);
  const seen = () => `ifconfig: ${JSON.stringify(ifconfig(a).carp)}; events: ${JSON.stringify(events)}`;

  await b.setVhid(a, VHID, { advbaseSec: 1, advskew: 100, key: KEY });
  await b.addAddress(a, VHID, V4);
  await b.addAddress(a, VHID, V6);

  let v = await vhidOf(b, a, VHID);
  assert.deepEqual([v.advbaseSec, v.advskew, v.key, v.peer, v.peer6], [1, 100, KEY, undefined, undefined]);
  assert.deepEqual([...v.addresses].sort(), [V4, V6].sort());
  let k = ifconfig(a);
  assert.deepEqual([carpOf(k, VHID).advbase, carpOf(k, VHID).advskew], [1, 100], k.text);
  assert.match(k.text, new RegExp(`carp: \\S+ vhid ${VHID} advbase 1 advskew 100\\b`));
  assert.deepEqual(vhidAddresses(k, VHID), [V4, V6].sort(), k.text);

  // Alone on the link it must become MASTER once the master-down timer expires; the event has to
  // come from devd, so nothing here asks the backend for the state while waiting.
  const master = await waitFor('MASTER event from devd', () => carpOf(ifconfig(a), VHID).state === 'MASTER' && eventsFor(0, 'MASTER')[0], STATE_WAIT_MS, seen);
  assert.notEqual(master.previous, 'MASTER');
  assert.match(master.reason, /devd/);
  v = await vhidOf(b, a, VHID);
  assert.equal(v.state, 'MASTER');
  assert.match(v.reason, /devd/);

  // Forced BACKUP holds for one master-down interval, then nobody else advertises and it is MASTER again.
  const mark = events.length;
  await b.forceState(a, VHID, 'BACKUP');
  v = await vhidOf(b, a, VHID);
  assert.equal(v.state, 'BACKUP');
  assert.match(v.reason, /forced/);
  assert.deepEqual([v.advbaseSec, v.advskew, v.key], [1, 100, KEY], 'forcing the state kept the parameters');
  assert.equal(carpOf(ifconfig(a), VHID).state, 'BACKUP');
  const forced = eventsFor(mark, 'BACKUP')[0];
  assert.ok(forced, seen());
  assert.equal(forced.previous, 'MASTER');
  assert.match(forced.reason, /forced/);
  const again = await waitFor('MASTER again after the forced BACKUP', () => carpOf(ifconfig(a), VHID).state === 'MASTER' && eventsFor(mark, 'MASTER')[0], STATE_WAIT_MS, seen);
  assert.match(again.reason, /devd/);

  await b.setVhid(a, VHID, { advbaseSec: 1, advskew: 50, key: KEY });
  v = await vhidOf(b, a, VHID);
  assert.deepEqual([v.advbaseSec, v.advskew, v.key], [1, 50, KEY]);
  k = ifconfig(a);
  assert.deepEqual([carpOf(k, VHID).advbase, carpOf(k, VHID).advskew], [1, 50], k.text);

  if (freebsdMajor() >= 14) {
    assert.equal(b.capabilities().unicast, true, 'FreeBSD 14+ has the carp netlink family');
    await b.setVhid(a, VHID, { advbaseSec: 1, advskew: 50, key: KEY, peer: PEER });
    v = await vhidOf(b, a, VHID);
    assert.deepEqual([v.peer, v.peer6, v.advskew, v.key], [PEER, undefined, 50, KEY]);
    k = ifconfig(a);
    assert.match(k.text, /\bpeer 192\.0\.2\.2 /);
    assert.equal(carpOf(k, VHID).peer, PEER);
    await b.setVhid(a, VHID, { advbaseSec: 1, advskew: 50, key: KEY });
    v = await vhidOf(b, a, VHID);
    assert.deepEqual([v.peer, v.peer6, v.advskew], [undefined, undefined, 50]);
    k = ifconfig(a);
    assert.doesNotMatch(k.text, /\bpeer 192\.0\.2\.2\b/);
    assert.equal(carpOf(k, VHID).peer, '224.0.0.18', 'back to multicast');
  } else {
    assert.equal(b.capabilities().unicast, false);
    await rejectsWith(b.setVhid(a, VHID, { advbaseSec: 1, advskew: 50, key: KEY, peer: PEER }), 'EOPNOTSUPP', a);
  }

  // IPv6 first: the vhid then keeps advertising over IPv4 only, which cannot fail on the epair.
  await b.removeAddress(a, VHID, V6);
  v = await vhidOf(b, a, VHID);
  assert.deepEqual(v.addresses, [V4]);
  k = ifconfig(a);
  assert.equal(hasAddress(k, '2001:db8::42'), false, k.text);
  assert.deepEqual(vhidAddresses(k, VHID), [V4], k.text);
  await b.removeAddress(a, VHID, V4);
  assert.deepEqual((await b.listVhids()).filter((x) => x.interface === a), []);
  k = ifconfig(a);
  assert.deepEqual(k.carp, [], k.text);
  assert.equal(hasAddress(k, '192.0.2.42'), false, k.text);
  await rejectsWith(b.removeVhid(a, VHID), 'ENOENT', a);
});

test('an address for a vhid that does not exist: ENOPROTOOPT on an interface without vhids, ENOENT beside another vhid, nothing left behind', { skip }, async (t) => {
  const c = new Cleanup(t);
  const { a } = createEpair(c);
  const b = await openBackend(c, makeStateDir(c));
  const stray = ['192.0.2.70', '2001:db8::70'];

  await rejectsWith(b.addAddress(a, 7, '192.0.2.70/24'), 'ENOPROTOOPT', a);
  await rejectsWith(b.addAddress(a, 7, '2001:db8::70/64'), 'ENOPROTOOPT', a);
  let k = ifconfig(a);
  assert.deepEqual(k.carp, [], k.text);
  assert.deepEqual(stray.filter((x) => hasAddress(k, x)), [], 'a refused address stayed on the interface');
  assert.deepEqual(await b.listVhids(), []);

  await b.setVhid(a, 8, { advbaseSec: 1, advskew: 0 });
  await b.addAddress(a, 8, '198.51.100.80/24');
  await rejectsWith(b.addAddress(a, 7, '192.0.2.70/24'), 'ENOENT', a);
  await rejectsWith(b.addAddress(a, 7, '2001:db8::70/64'), 'ENOENT', a);
  k = ifconfig(a);
  assert.deepEqual(k.carp.map((x) => x.vhid), [8], k.text);
  assert.deepEqual(stray.filter((x) => hasAddress(k, x)), [], 'a refused address stayed on the interface');
  assert.deepEqual((await b.listVhids()).map((x) => `${x.interface}/${x.vhid}`), [`${a}/8`]);

  await b.removeAddress(a, 8, '198.51.100.80/24');
  assert.deepEqual(ifconfig(a).carp, []);
});

test('an interface that does not exist is ENXIO', { skip }, async (t) => {
  const c = new Cleanup(t);
  const name = 'carpdnosuch0';
  assert.equal(tryRun('ifconfig', [name]).ok, false, `${name} exists on this host`);
  const b = await openBackend(c, makeStateDir(c));
  await rejectsWith(b.setVhid(name, 1, { advbaseSec: 1, advskew: 0 }), 'ENXIO', name);
  await rejectsWith(b.addAddress(name, 1, '192.0.2.99/24'), 'ENXIO', name);
  assert.deepEqual(await b.listVhids(), []);
});

test('net.inet.carp.allow=0 puts the vhid in INIT and allow=1 brings it back; preempt is written with it', { skip }, async (t) => {
  const c = new Cleanup(t);
  const orig = { allow: sysctlInt('net.inet.carp.allow'), preempt: sysctlInt('net.inet.carp.preempt') };
  c.add('restore net.inet.carp.allow and net.inet.carp.preempt', () => {
    setSysctl('net.inet.carp.allow', orig.allow);
    setSysctl('net.inet.carp.preempt', orig.preempt);
  });
  const { a } = createEpair(c);
  const b = await openBackend(c, makeStateDir(c));
  const VHID = 43;
  const V4 = '198.51.100.43/24';
  const preempt = orig.preempt !== 0;
  const isMaster = async () => (await vhidOf(b, a, VHID)).state === 'MASTER' && carpOf(ifconfig(a), VHID).state === 'MASTER';
  const seen = () => JSON.stringify(ifconfig(a).carp);

  await b.setCarpGlobals({ allow: true, preempt });
  assert.equal(sysctlInt('net.inet.carp.allow'), 1);
  await b.setVhid(a, VHID, { advbaseSec: 1, advskew: 0 });
  await b.addAddress(a, VHID, V4);
  await waitFor('MASTER', isMaster, STATE_WAIT_MS, seen);

  await b.setCarpGlobals({ allow: false, preempt: !preempt });
  assert.deepEqual([sysctlInt('net.inet.carp.allow'), sysctlInt('net.inet.carp.preempt')], [0, preempt ? 0 : 1]);
  const g = await b.getCarpGlobals();
  assert.deepEqual([g.allow, g.preempt], [false, !preempt]);
  let v = await vhidOf(b, a, VHID);
  assert.equal(v.state, 'INIT');
  assert.match(v.reason, /allow/);
  assert.equal(carpOf(ifconfig(a), VHID).state, 'INIT');

  await b.setCarpGlobals({ allow: true, preempt });
  assert.deepEqual([sysctlInt('net.inet.carp.allow'), sysctlInt('net.inet.carp.preempt')], [1, preempt ? 1 : 0]);
  v = await vhidOf(b, a, VHID);
  assert.notEqual(v.state, 'INIT');
  assert.notEqual(carpOf(ifconfig(a), VHID).state, 'INIT');
  await waitFor('MASTER after allow=1', isMaster, STATE_WAIT_MS, seen);

  await b.removeAddress(a, VHID, V4);
  assert.deepEqual(ifconfig(a).carp, []);
});

test('maintenance adds exactly 240 to net.inet.carp.demotion once, keeps it across a reopen without adding again, and takes exactly that back', { skip }, async (t) => {
  const c = new Cleanup(t);
  const dir = makeStateDir(c);
  const base = demotion();
  c.add('leave maintenance', async () => {
    const r = await openFreebsdBackend({ stateDir: dir });
    try {
      await r.setMaintenance(false);
    } finally {
      await r.close();
    }
    const now = demotion();
    if (now === base + MAINTENANCE) {
      setSysctl('net.inet.carp.demotion', -MAINTENANCE);
      throw new Error(`the backend did not take its ${MAINTENANCE} back; sysctl did`);
    }
    assert.equal(now, base, 'net.inet.carp.demotion after leaving maintenance');
  });

  const b1 = await openBackend(c, dir);
  assert.equal(await b1.getMaintenance(), false);
  await b1.setMaintenance(true);
  assert.equal(demotion(), base + MAINTENANCE);
  assert.equal((await b1.getCarpGlobals()).demotion, base + MAINTENANCE);
  assert.equal(await b1.getMaintenance(), true);
  await b1.setMaintenance(true);
  assert.equal(demotion(), base + MAINTENANCE, 'a second setMaintenance(true) added again');
  await b1.close();

  const b2 = await openBackend(c, dir);
  assert.equal(await b2.getMaintenance(), true, 'maintenance survives reopening the backend');
  assert.equal(demotion(), base + MAINTENANCE, 'reopening added again');
  await b2.setMaintenance(true);
  assert.equal(demotion(), base + MAINTENANCE, 'setMaintenance(true) after a reopen added again');
  await b2.setMaintenance(false);
  assert.equal(demotion(), base);
  assert.equal(await b2.getMaintenance(), false);
  await b2.setMaintenance(false);
  assert.equal(demotion(), base, 'a second setMaintenance(false) took 240 back again');
});

const settingsOf = (p: PfsyncSettings): PfsyncSettings => ({
  ...(p.syncdev !== undefined ? { syncdev: p.syncdev } : {}),
  ...(p.syncpeer !== undefined ? { syncpeer: p.syncpeer } : {}),
  maxupd: p.maxupd,
  defer: p.defer,
  version: p.version,
});

test('pfsync: syncdev, maxupd 64, defer and the default version, read back through the backend and ifconfig; the original configuration is restored', { skip }, async (t) => {
  const c = new Cleanup(t);
  const { b: syncdev } = createEpair(c);
  const backend = await openBackend(c, makeStateDir(c));
  assert.equal(backend.capabilities().pfsync, true);
  const orig = await backend.getPfsync();
  const origUp = ifconfig('pfsync0').flags.includes('UP');
  const origDemotion = demotion();
  c.add('restore pfsync0', async () => {
    await backend.setPfsync(settingsOf(orig));
    if (!origUp && ifconfig('pfsync0').flags.includes('UP')) run('ifconfig', ['pfsync0', 'down']);
    assert.deepEqual(settingsOf(await backend.getPfsync()), settingsOf(orig), 'pfsync0 settings after restoring');
    // Attaching started a bulk update, whose demotion (net.pfsync.carp_demotion_factor) pfsync
    // takes back only when it gives up, 13 tries of 5 s later (if_pfsync.c pfsync_bulk_fail).
    await waitFor('pfsync taking back its bulk-update demotion', () => demotion() === origDemotion, 120_000, () => `net.inet.carp.demotion ${demotion()}, was ${origDemotion}`);
  });

  const major = freebsdMajor();
  const version = major >= 15 ? 1500 : major === 14 ? 1400 : 1301;
  await backend.setPfsync({ syncdev, maxupd: 64, defer: true, version });

  const p = await backend.getPfsync();
  assert.deepEqual([p.syncdev, p.syncpeer, p.maxupd, p.defer, p.version, p.running], [syncdev, undefined, 64, true, version, true]);
  const k = ifconfig('pfsync0');
  assert.ok(k.flags.includes('UP'), k.text);
  assert.equal(k.fields.get('syncdev'), syncdev, k.text);
  assert.equal(k.fields.get('maxupd'), '64', k.text);
  assert.equal(k.fields.get('defer'), 'on', k.text);
  assert.equal(k.fields.has('syncpeer'), false, k.text);
  if (major >= 14) {
    assert.equal(k.fields.get('version'), String(version), k.text);
    // No peer answers the bulk update request: it stays pending for a minute.
    assert.equal(k.fields.get('syncok'), '0', k.text);
    assert.equal(p.bulkUpdateDone, false);
  }
});
