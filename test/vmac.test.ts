/**
 * The MAC mode of VIPs, without privileges: the linux backend's macvlan names and virtual MACs
 * (pure), the leftover pattern, the daemon flag, the planner, and the API end to end on the sim
 * backend (which models the MACs) and on a backend that can only do the virtual MAC (as
 * carp(4)): a mode it cannot do is refused with 422 CARPD_ERR_UNSUPPORTED and nothing changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError, parseFlags, type DaemonOptions } from '../src/daemon/flags.js';
import type { Capabilities } from '../src/kernel/backend.js';
import { IFLA_ADDRESS, IFLA_AF_SPEC, IFLA_IFNAME, IFLA_INET_CONF, IFLA_INFO_KIND, IFLA_LINK, IFLA_LINKINFO, RTM_NEWLINK, decodeLinkDetails } from '../src/kernel/linux/rtnetlink.js';
import { isVmacLink, virtualMac, virtualMacPlan, vmacName } from '../src/kernel/linux/vmac.js';
import { nlattr, u32 } from '../src/wire/netlink.js';
import { DocumentError, readBootstrap, readStoredState } from '../src/config/document.js';
import { initialState } from '../src/config/model.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { plan } from '../src/kernel/plan.js';
import { SimBackend } from '../src/kernel/sim.js';
import { MemoryNetwork } from '../src/runtime/transport.js';
import { ManualClock, makeHarness, type Harness } from './helpers/harness.js';

test('macvlan names: cv<ifindex>.<vhid>, .6 for a VRRPv3 IPv6 MAC, always within IFNAMSIZ', () => {
  assert.equal(vmacName(2, 1), 'cv2.1');
  assert.equal(vmacName(17, 255), 'cv17.255');
  assert.equal(vmacName(17, 9, true), 'cv17.9.6');
  assert.equal(vmacName(9_999_999, 255, true), 'cv9999999.255.6');
  // Beyond what decimal fits: base 36, still unique per ifindex.
  const big = vmacName(123_456_789, 255, true);
  assert.equal(big, `cv${(123_456_789).toString(36)}.255.6`);
  for (const index of [1, 99, 123_456, 2 ** 31 - 1]) for (const v6 of [false, true]) assert.ok(Buffer.byteLength(vmacName(index, 255, v6)) <= 15, `${index} ${v6}`);
  assert.throws(() => vmacName(2, 0), RangeError);
  assert.throws(() => vmacName(2, 256), RangeError);
  assert.throws(() => vmacName(0, 1), RangeError);
});

test('virtual MACs: carp(4) one for both families; VRRPv3 one per family (RFC 5798 §7.3)', () => {
  assert.equal(virtualMac('carp', 7, 4), '00:00:5e:00:01:07');
  assert.equal(virtualMac('carp', 255, 6), '00:00:5e:00:01:ff');
  assert.equal(virtualMac('vrrpv3', 7, 4), '00:00:5e:00:01:07');
  assert.equal(virtualMac('vrrpv3', 7, 6), '00:00:5e:00:02:07');
  const both = ['192.0.2.7/24', '2001:db8::7/64', '192.0.2.8/24'];
  assert.deepEqual(virtualMacPlan(3, 7, 'carp', both), [{ mac: '00:00:5e:00:01:07', name: 'cv3.7', families: [4, 6], addresses: ['192.0.2.7/24', '192.0.2.8/24', '2001:db8::7/64'] }]);
  assert.deepEqual(virtualMacPlan(3, 7, 'vrrpv3', both), [
    { mac: '00:00:5e:00:01:07', name: 'cv3.7', families: [4], addresses: ['192.0.2.7/24', '192.0.2.8/24'] },
    { mac: '00:00:5e:00:02:07', name: 'cv3.7.6', families: [6], addresses: ['2001:db8::7/64'] },
  ]);
  assert.deepEqual(virtualMacPlan(3, 7, 'vrrpv3', ['2001:db8::7/64']).map((p) => [p.name, p.mac]), [['cv3.7.6', '00:00:5e:00:02:07']]);
  assert.deepEqual(virtualMacPlan(3, 7, 'carp', []), []);
});

test('leftovers: only a macvlan whose name and MAC follow the pattern (and agree on the vhid)', () => {
  const l = (name: string, mac: string, kind?: string) => isVmacLink({ name, mac, kind });
  assert.equal(l('cv2.7', '00:00:5e:00:01:07', 'macvlan'), true);
  assert.equal(l('cv2.7.6', '00:00:5e:00:02:07', 'macvlan'), true);
  assert.equal(l('cv2.255', '00:00:5e:00:01:ff', 'macvlan'), true);
  assert.equal(l('cv2.7', '00:00:5e:00:01:07', 'veth'), false, 'not a macvlan');
  assert.equal(l('cv2.7', '00:00:5e:00:01:07'), false, 'no kind');
  assert.equal(l('cv2.8', '00:00:5e:00:01:07', 'macvlan'), false, 'vhid and MAC disagree');
  assert.equal(l('cv2.7', '02:00:5e:00:01:07', 'macvlan'), false, 'another MAC');
  assert.equal(l('cv2.7', '00:00:5e:00:00:07', 'macvlan'), false, "ucarp's advertisement MAC");
  assert.equal(l('eth0.7', '00:00:5e:00:01:07', 'macvlan'), false, 'another name');
  assert.equal(l('cv2.7x', '00:00:5e:00:01:07', 'macvlan'), false);
});

test('RTM_NEWLINK details: kind, parent and IPv4 devconf; a nested attribute that does not parse is left out', () => {
  const ifinfo = Buffer.alloc(16);
  ifinfo.writeInt32LE(9, 4);
  const conf = Buffer.alloc(4 * 40);
  conf.writeUInt32LE(2, (8 - 1) * 4); // rp_filter
  conf.writeUInt32LE(2, (18 - 1) * 4); // arp_announce
  conf.writeUInt32LE(1, (19 - 1) * 4); // arp_ignore
  const payload = Buffer.concat([
    ifinfo,
    nlattr(IFLA_IFNAME, Buffer.from('cv3.7\0')),
    nlattr(IFLA_ADDRESS, Buffer.from([0, 0, 0x5e, 0, 1, 7])),
    nlattr(IFLA_LINK, u32(3)),
    nlattr(IFLA_LINKINFO, nlattr(IFLA_INFO_KIND, Buffer.from('macvlan\0'))),
    nlattr(IFLA_AF_SPEC, nlattr(2, nlattr(IFLA_INET_CONF, conf))),
  ]);
  const m = { len: 16 + payload.length, type: RTM_NEWLINK, flags: 0, seq: 1, pid: 0, payload };
  const d = decodeLinkDetails(m);
  assert.deepEqual(d, { index: 9, name: 'cv3.7', mac: '00:00:5e:00:01:07', up: false, mtu: 0, parent: 3, kind: 'macvlan', ipv4: { rp_filter: 2, arp_announce: 2, arp_ignore: 1 } });
  assert.equal(isVmacLink(d), true);
  const broken = Buffer.concat([ifinfo, nlattr(IFLA_IFNAME, Buffer.from('x0\0')), nlattr(IFLA_LINKINFO, Buffer.from([9, 0, 1, 0]))]);
  assert.deepEqual(decodeLinkDetails({ ...m, len: 16 + broken.length, payload: broken }), { index: 9, name: 'x0', mac: '', up: false, mtu: 0 });
});

test('--mac-mode: virtual or interface, CARPD_MAC_MODE, interface refused with the freebsd backend', () => {
  const opts = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseFlags(argv, env) as DaemonOptions;
  assert.equal(opts(['--backend', 'linux']).macMode, undefined);
  assert.equal(opts(['--backend', 'linux', '--mac-mode', 'virtual']).macMode, 'virtual');
  assert.equal(opts(['--backend', 'sim'], { CARPD_MAC_MODE: 'interface' }).macMode, 'interface');
  assert.equal(opts(['--backend', 'sim', '--mac-mode', 'virtual'], { CARPD_MAC_MODE: 'interface' }).macMode, 'virtual', 'the flag wins');
  assert.equal(opts(['--backend', 'freebsd', '--mac-mode', 'virtual']).macMode, 'virtual', "carp(4)'s own: accepted");
  assert.throws(() => opts(['--backend', 'linux', '--mac-mode', 'vmac']), (e: unknown) => e instanceof UsageError && /virtual or interface/.test(e.message));
  assert.throws(() => opts(['--backend', 'freebsd', '--mac-mode', 'interface']), (e: unknown) => e instanceof UsageError && /always answers with the virtual MAC/.test(e.message));
});

test('documents: the bootstrap file takes macMode, a stored state keeps it, anything else is refused', () => {
  const vip = { interface: 'em0', vhid: 4, addresses: ['192.0.2.4/24'] };
  const b = readBootstrap({ vips: [{ ...vip, macMode: 'virtual' }, { ...vip, vhid: 5, addresses: ['192.0.2.5/24'] }] }, initialState(new Date(0)));
  assert.deepEqual(b.vips?.map((v) => v.macMode), ['virtual', undefined]);
  assert.equal('macMode' in b.vips![1], false);
  assert.throws(() => readBootstrap({ vips: [{ ...vip, macMode: 'vmac' }] }, initialState(new Date(0))), (e: unknown) => e instanceof DocumentError && /macMode/.test(e.message));
  const stored = { ...initialState(new Date(0)), vips: b.vips };
  assert.deepEqual(readStoredState(JSON.parse(JSON.stringify(stored))).vips.map((v) => v.macMode), ['virtual', undefined]);
});

test('planner: a changed macMode is a vhid.set of its own; the same one is no step', () => {
  const params = { advbaseSec: 1, advskew: 0 };
  const live = { vhids: [{ interface: 'em0', vhid: 1, params, addresses: ['192.0.2.1/24'] }], carp: { allow: true, preempt: true }, maintenance: false, pfsync: { maxupd: 128, defer: false, version: 1400 } };
  const target = (macMode?: 'virtual' | 'interface') => ({ ...live, vhids: [{ ...live.vhids[0], params: { ...params, ...(macMode ? { macMode } : {}) } }] });
  assert.deepEqual(plan(target(), live), []);
  const steps = plan(target('virtual'), live);
  assert.deepEqual(steps.map((s) => [s.op, 'params' in s ? s.params.macMode : undefined]), [['vhid.set', 'virtual']]);
  assert.deepEqual(plan(target('virtual'), target('virtual')), []);
});

async function simHarness(t: test.TestContext): Promise<Harness> {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const backend = await SimBackend.open({ clock, transport: net.endpoint(), interfaces: ['em0'], node: 'a' });
  const h = await makeHarness({ backend, clock });
  t.after(() => h.close());
  return h;
}

const statusOf = async (h: Harness, vhid: number) => ((await h.api.get('/v1/status')).body.vhids as { vhid: number; mac?: string; mac6?: string; virtualMac?: boolean }[]).find((v) => v.vhid === vhid);

test('API on sim: macMode per VIP, shown by GET and /v1/status; null goes back to the node default', async (t) => {
  const h = await simHarness(t);
  const created = await h.api.post('/v1/vips', { interface: 'em0', vhid: 7, addresses: ['192.0.2.7/24'], macMode: 'virtual' });
  assert.equal(created.status, 201, created.text);
  assert.equal(created.body.macMode, 'virtual');
  assert.equal((await h.api.get('/v1/vips/em0/7')).body.macMode, 'virtual');
  assert.equal((await h.backend.listVhids())[0].macMode, 'virtual');
  assert.deepEqual(await statusOf(h, 7), { ...(await statusOf(h, 7)), mac: '00:00:5e:00:01:07', virtualMac: true });
  assert.equal((await h.api.get('/v1/status')).body.backend.capabilities.macModes.join(), 'virtual,interface');

  // null: the node's default (interface on sim): the interface's own, locally administered MAC.
  const patched = await h.api.patch('/v1/vips/em0/7', { macMode: null });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.body.macMode, undefined);
  assert.equal((await h.backend.listVhids())[0].macMode, undefined);
  const s = await statusOf(h, 7);
  assert.equal(s?.virtualMac, false);
  assert.match(s?.mac ?? '', /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/);
  assert.notEqual(s?.mac, '00:00:5e:00:01:07');

  // VRRPv3 with both families: the IPv6 addresses have their own virtual MAC.
  const vrrp = await h.api.post('/v1/vips', { interface: 'em0', vhid: 9, protocol: 'vrrpv3', addresses: ['192.0.2.9/24', '2001:db8::9/64'], macMode: 'virtual' });
  assert.equal(vrrp.status, 201, vrrp.text);
  const v9 = await statusOf(h, 9);
  assert.equal(v9?.mac, '00:00:5e:00:01:09');
  assert.equal(v9?.mac6, '00:00:5e:00:02:09');

  // Not a mode: the schema refuses it, nothing changes.
  const rev = (await h.api.get('/v1/config')).body.revision;
  const bad = await h.api.patch('/v1/vips/em0/7', { macMode: 'vmac' });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.body.code, 'CARPD_ERR_VALIDATION');
  assert.equal((await h.api.get('/v1/config')).body.revision, rev);
});

/** A backend that, like carp(4), only ever answers with the virtual MAC. */
class VirtualOnlyBackend extends MemoryBackend {
  override capabilities(): Capabilities {
    return { ...super.capabilities(), macModes: ['virtual'] };
  }
}

test('API: a macMode the backend cannot do is 422 CARPD_ERR_UNSUPPORTED and changes nothing', async (t) => {
  const h = await makeHarness({ backend: new VirtualOnlyBackend({ interfaces: ['em0'] }) });
  t.after(() => h.close());
  const rev = (await h.api.get('/v1/config')).body.revision;
  const r = await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'], macMode: 'interface' });
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.code, 'CARPD_ERR_UNSUPPORTED');
  assert.match(r.body.detail, /macMode interface/);
  assert.deepEqual(r.body.errors, [{ path: '/vips/em0/3/macMode', message: 'macMode interface is not supported here' }]);
  assert.equal((await h.api.get('/v1/config')).body.revision, rev);
  assert.deepEqual(await h.backend.listVhids(), []);
  // The mode it does is accepted; changing an existing VIP to the other is refused the same way.
  assert.equal((await h.api.post('/v1/vips', { interface: 'em0', vhid: 3, addresses: ['192.0.2.3/24'], macMode: 'virtual' })).status, 201);
  const rev2 = (await h.api.get('/v1/config')).body.revision;
  const p = await h.api.patch('/v1/vips/em0/3', { macMode: 'interface' });
  assert.equal(p.status, 422, p.text);
  assert.equal(p.body.code, 'CARPD_ERR_UNSUPPORTED');
  assert.equal((await h.api.get('/v1/config')).body.revision, rev2);
  assert.equal((await h.backend.listVhids())[0].macMode, 'virtual');
});
