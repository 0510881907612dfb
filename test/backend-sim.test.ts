/**
 * The sim backend against the shared backend contract (manual clock, in-memory segment), plus
 * what only it has: the sim datagram header, real advertisements on the segment, and bad
 * datagrams counted under their carpstats names instead of thrown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultBackend, parseFlags, UsageError, type DaemonOptions } from '../src/daemon/flags.js';
import { SimBackend } from '../src/kernel/sim.js';
import { CarpRuntime } from '../src/runtime/driver.js';
import { SIM_FIXED_LEN, decodeSimFrame, encodeSimFrame } from '../src/runtime/frame.js';
import { MemoryNetwork, type MemoryTransport } from '../src/runtime/transport.js';
import { DEFAULT_SIM_GROUP, UdpMulticastTransport, parseSimGroup } from '../src/runtime/udp.js';
import { carpBytes } from '../src/wire/carp.js';
import { internetChecksum } from '../src/wire/checksum.js';
import { backendContract } from './contract/backend-contract.js';
import { ManualClock } from './helpers/harness.js';

backendContract('sim', async () => {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const backend = await SimBackend.open({ clock, transport: net.endpoint(), interfaces: ['em0', 'em1'], node: 'contract' });
  return {
    backend,
    elapse: async (ms) => clock.advance(ms),
    close: () => backend.close(),
  };
});

const INSTANCE = Buffer.from('0102030405060708', 'hex');

test('sim frame: golden bytes both ways, at an offset inside a larger buffer', () => {
  const carp = Buffer.alloc(36, 0x5a);
  const bytes = encodeSimFrame({ family: 6, instance: INSTANCE, node: 'a', iface: 'em0', carp });
  assert.equal(bytes.length, SIM_FIXED_LEN + 1 + 3 + 36);
  assert.equal(bytes.subarray(0, 20).toString('hex'), '4353494d' + '01' + '06' + '01' + '03' + '0102030405060708' + '61' + '656d30');
  const outer = Buffer.alloc(bytes.length + 7, 0xa5);
  bytes.copy(outer, 7);
  const r = decodeSimFrame(outer.subarray(7));
  assert.ok(r.ok);
  assert.deepEqual({ ...r.frame, instance: Buffer.from(r.frame.instance), carp: Buffer.from(r.frame.carp) }, { family: 6, instance: INSTANCE, node: 'a', iface: 'em0', carp });
});

test('sim frame: malformed datagrams are refused with a reason, never thrown', () => {
  const good = encodeSimFrame({ family: 4, instance: INSTANCE, node: 'node-a', iface: 'em0', carp: Buffer.alloc(36) });
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['short', good.subarray(0, 10)],
    ['magic', Buffer.concat([Buffer.from('XSIM'), good.subarray(4)])],
    ['version', Buffer.from(good).fill(9, 4, 5)],
    ['family', Buffer.from(good).fill(5, 5, 6)],
    ['node length 0', Buffer.from(good).fill(0, 6, 7)],
    ['ifname length 16', Buffer.from(good).fill(16, 7, 8)],
    ['truncated names', good.subarray(0, SIM_FIXED_LEN + 3)],
    ['newline in the node name', Buffer.from(good).fill(0x0a, SIM_FIXED_LEN + 2, SIM_FIXED_LEN + 3)],
    ['space in the interface name', Buffer.from(good).fill(0x20, SIM_FIXED_LEN + 6, SIM_FIXED_LEN + 7)],
  ];
  for (const [what, bytes] of cases) {
    const r = decodeSimFrame(bytes);
    assert.equal(r.ok, false, what);
  }
  assert.throws(() => encodeSimFrame({ family: 4, instance: INSTANCE, node: '', iface: 'em0', carp: Buffer.alloc(36) }), RangeError);
  assert.throws(() => encodeSimFrame({ family: 4, instance: INSTANCE, node: 'a', iface: 'a-very-long-ifname0', carp: Buffer.alloc(36) }), RangeError);
});

test('--sim-group: administratively scoped IPv4 groups only', () => {
  assert.deepEqual(parseSimGroup('239.255.0.112:11200'), { address: '239.255.0.112', port: 11200 });
  for (const bad of ['224.0.0.18:11200', '127.0.0.1:11200', '239.255.0.112', '239.255.0.112:0', '239.255.0.112:70000', 'x:1', '[ff02::12]:1']) {
    assert.throws(() => parseSimGroup(bad), RangeError, bad);
  }
});

/** One sim backend with vhid 1 on em0, and a raw endpoint on the same segment to inject from. */
async function withInjector(t: { after(fn: () => unknown): void }, key = 'secret') {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const b = await SimBackend.open({ clock, transport: net.endpoint(), interfaces: ['em0', 'em1'], node: 'victim' });
  t.after(() => b.close());
  await b.setVhid('em0', 1, { advbaseSec: 1, advskew: 50, key });
  await b.addAddress('em0', 1, '192.0.2.1/24');
  const raw: MemoryTransport = net.endpoint('injector');
  const heard: Uint8Array[] = [];
  await raw.open((d) => heard.push(d));
  t.after(() => raw.close());
  const inject = async (bytes: Uint8Array) => {
    await raw.send(bytes);
    clock.advance(0);
  };
  const advert = (o: { key?: string; addresses?: string[]; vhid?: number; advskew?: number; iface?: string } = {}) =>
    encodeSimFrame({
      family: 4,
      instance: Buffer.alloc(8, 0xee),
      node: 'injector',
      iface: o.iface ?? 'em0',
      carp: carpBytes({ vhid: o.vhid ?? 1, advbaseSec: 1, advskew: o.advskew ?? 0, counter: 42n, key: o.key ?? key, addresses: o.addresses ?? ['192.0.2.1'] }),
    });
  return { clock, b, inject, advert, heard };
}

test('sim: bad datagrams are counted under their carpstats names and dropped', async (t) => {
  const { b, inject, advert } = await withInjector(t);
  const good = advert();
  await inject(advert({ key: 'wrong' }));
  await inject(advert({ addresses: ['192.0.2.99'] }));
  await inject(advert({ vhid: 9 }));
  await inject(advert({ iface: 'em1' }));
  await inject(Buffer.concat([good.subarray(0, good.length - 36), Buffer.from(good.subarray(good.length - 36)).fill(0, 6, 8)]));
  await inject(good.subarray(0, good.length - 1));
  const v3 = Buffer.from(good.subarray(good.length - 36)).fill(0x31, 0, 1).fill(0, 6, 8);
  v3.writeUInt16BE(internetChecksum(v3, 0, 36), 6);
  await inject(Buffer.concat([good.subarray(0, good.length - 36), v3]));
  await inject(Buffer.from('definitely not a sim frame'));
  await inject(advert({ iface: 'em7' }));
  const c = (await b.stats()).carp;
  assert.deepEqual(
    { ipackets: c.ipackets, badauth: c.badauth, badvhid: c.badvhid, badif: c.badif, badsum: c.badsum, badver: c.badver, badlen: c.badlen, hdrops: c.hdrops },
    { ipackets: 8, badauth: 2, badvhid: 1, badif: 1, badsum: 1, badver: 1, badlen: 1, hdrops: 1 },
    JSON.stringify(c),
  );
  // None of them reached the engine: no peer was heard, the vhid is still waiting in BACKUP.
  assert.equal((await b.listVhids())[0].state, 'BACKUP');
  await inject(good);
  assert.equal((await b.stats()).carp.ipackets, 9);
});

test('sim: a MASTER sends real advertisements; a better one makes it BACKUP with the sender named', async (t) => {
  const { clock, b, inject, advert, heard } = await withInjector(t);
  clock.advance(3500);
  assert.equal((await b.listVhids())[0].state, 'MASTER');
  const sent = heard.map((d) => decodeSimFrame(d)).filter((r) => r.ok);
  assert.ok(sent.length >= 1);
  assert.ok(sent.every((r) => r.ok && r.frame.node === 'victim' && r.frame.iface === 'em0' && r.frame.carp.length === 36));
  assert.deepEqual(b.installedVips(), [{ interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] }]);
  await inject(advert({ advskew: 0 }));
  const [v] = await b.listVhids();
  assert.equal(v.state, 'BACKUP');
  assert.match(v.reason, /injector/);
  assert.deepEqual(b.installedVips(), []);
  assert.ok((await b.stats()).carp.opackets >= 1);
});

test('sim: a vhid with IPv4 and IPv6 addresses advertises once per family', async (t) => {
  const { clock, b, heard } = await withInjector(t);
  await b.addAddress('em0', 1, '2001:db8::1/64');
  clock.advance(3500);
  await new Promise((r) => setImmediate(r));
  const families = heard.map((d) => decodeSimFrame(d)).flatMap((r) => (r.ok ? [r.frame.family] : []));
  assert.ok(families.includes(4) && families.includes(6), families.join());
  const c = (await b.stats()).carp;
  assert.ok(c.opackets >= 1 && c.opackets6 >= 1, JSON.stringify(c));
});

test('sim: close() makes a MASTER bow out on the segment', async (t) => {
  const { clock, b, heard } = await withInjector(t);
  clock.advance(3500);
  heard.length = 0;
  await b.close();
  clock.advance(0);
  const bowOut = heard.map((d) => decodeSimFrame(d)).find((r) => r.ok && r.frame.carp[5] === 255 && r.frame.carp[2] === 255);
  assert.ok(bowOut, 'no bow-out advertisement (advbase 255, skew 255) on the segment');
  assert.equal((await b.listVhids())[0].state, 'INIT');
});

test('sim runtime: nothing a peer sends makes it throw', async (t) => {
  const clock = new ManualClock();
  const net = new MemoryNetwork({ clock });
  const rt = new CarpRuntime({ clock, transport: net.endpoint(), node: 'fuzz', random: () => 7n });
  await rt.open();
  t.after(() => rt.close());
  rt.configure({ iface: 'em0', vhid: 1, advbaseSec: 1, advskew: 0, key: 'k', addresses: ['192.0.2.1/24'] });
  rt.input('em0', 1, { kind: 'up' });
  const raw = net.endpoint('fuzzer');
  await raw.open(() => {});
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 8) & 0xff;
  const base = encodeSimFrame({ family: 4, instance: Buffer.alloc(8, 1), node: 'x', iface: 'em0', carp: Buffer.alloc(36) });
  for (let i = 0; i < 2000; i++) {
    const bytes = Buffer.from(base.subarray(0, rnd() % (base.length + 8)));
    for (let j = 0; j < 4; j++) if (bytes.length) bytes[rnd() % bytes.length] = rnd();
    await raw.send(bytes);
  }
  assert.doesNotThrow(() => clock.advance(0));
  const s = rt.stats();
  assert.equal(s.ipackets + s.ipackets6, 2000);
  await raw.close();
});

test('flags: sim is the default off FreeBSD; --sim-group and --node-name win over their environment variables', () => {
  assert.equal(defaultBackend('linux'), 'sim');
  assert.equal(defaultBackend('darwin'), 'sim');
  assert.equal(defaultBackend('freebsd'), 'freebsd');
  const base = parseFlags([], {}) as DaemonOptions;
  assert.deepEqual(base.simGroup, DEFAULT_SIM_GROUP);
  assert.match(base.nodeName, /^[A-Za-z0-9][A-Za-z0-9._-]*$/);
  const env = { CARPD_SIM_GROUP: '239.1.2.3:4000', CARPD_NODE_NAME: 'from-env' };
  const fromEnv = parseFlags([], env) as DaemonOptions;
  assert.deepEqual([fromEnv.simGroup, fromEnv.nodeName], [{ address: '239.1.2.3', port: 4000 }, 'from-env']);
  const fromFlags = parseFlags(['--sim-group', '239.255.9.9:5000', '--node-name', 'fw-a'], env) as DaemonOptions;
  assert.deepEqual([fromFlags.simGroup, fromFlags.nodeName], [{ address: '239.255.9.9', port: 5000 }, 'fw-a']);
  assert.throws(() => parseFlags(['--sim-group', '224.0.0.18:112'], {}), (e: unknown) => e instanceof UsageError && /--sim-group .*239\.0\.0\.0\/8/.test(e.message));
  assert.throws(() => parseFlags(['--node-name', 'has space'], {}), UsageError);
  assert.throws(() => parseFlags(['--node-name', 'x'.repeat(65)], {}), UsageError);
});

test('UDP transport: every socket joined to the group on loopback receives every datagram, its own included', { timeout: 10_000 }, async (t) => {
  const group = { address: '239.255.0.112', port: 20000 + Math.floor(Math.random() * 40000) };
  const got: string[][] = [[], []];
  const transports = [new UdpMulticastTransport(group), new UdpMulticastTransport(group)];
  t.after(() => Promise.all(transports.map((x) => x.close())));
  let arrived!: () => void;
  const all = new Promise<void>((r) => (arrived = r));
  await Promise.all(
    transports.map((x, i) =>
      x.open((d, info) => {
        got[i].push(`${Buffer.from(d).toString()}${info.local ? '' : ' (foreign)'}`);
        if (got[0].length === 2 && got[1].length === 2) arrived();
      }),
    ),
  );
  await transports[0].send(Buffer.from('from 0'));
  await transports[1].send(Buffer.from('from 1'));
  await all;
  assert.deepEqual(got.map((g) => g.sort()), [['from 0', 'from 1'], ['from 0', 'from 1']]);
});
