/**
 * test/helpers/netns.ts itself: the topology it builds (addresses, sysctls, bridge), the
 * management links from the root namespace, cut/heal, and that destroy() leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import { Peer, WAIT_MS } from './helpers/linux-peer.js';
import { createLan, mgmtPeerInterface, netnsUnavailable } from './helpers/netns.js';

const skip = netnsUnavailable();
const nftMissing = spawnSync('nft', ['--version'], { stdio: 'ignore' }).status === 0 ? undefined : 'needs nftables: `nft` not found';

function netnsList(): string[] {
  return (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

function rootLinkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

/** Connects from the root namespace and reads what the server says. */
function fetchGreeting(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, timeout: WAIT_MS });
    let data = '';
    s.setEncoding('utf8').on('data', (d: string) => (data += d));
    s.on('end', () => resolve(data));
    s.on('timeout', () => s.destroy(new Error(`no answer from ${host}:${port}`)));
    s.on('error', reject);
  });
}

test('netnsUnavailable gives no FreeBSD-only reason', () => {
  const reason = netnsUnavailable();
  if (reason !== undefined) {
    assert.doesNotMatch(reason, /FreeBSD only/);
    assert.ok(!reason.includes('\n'));
  }
});

test('createLan: addresses, sysctls, management links from the root namespace; destroy removes everything', { skip }, async (t) => {
  const lan = await createLan({ nodes: 2, ipv6: true });
  t.after(() => lan.destroy());
  const names = [...lan.nodes.map((n) => n.ns), lan.client.ns];
  for (const ns of names) assert.ok(netnsList().includes(ns), `${ns} exists`);
  assert.equal(new Set(names).size, names.length);

  for (const [i, n] of lan.nodes.entries()) {
    assert.deepEqual({ iface: n.iface, address: n.address, prefix: n.prefix, address6: n.address6 }, { iface: 'lan0', address: `192.0.2.${10 + i}`, prefix: 24, address6: `2001:db8::${10 + i}` });
    const addrs = await lan.addresses(n.ns);
    assert.ok(addrs.includes(`${n.address}/24`) && addrs.includes(`${n.address6}/64`), addrs.join(' '));
    assert.match(n.mgmtAddress, /^203\.0\.113\.\d+$/);
    assert.ok((await lan.addresses(n.ns, 'mgmt0')).some((a) => a.startsWith(`${n.mgmtAddress}/`)));
    const sys = await lan.exec(n.ns, ['sh', '-c', 'cat /proc/sys/net/ipv4/conf/all/rp_filter /proc/sys/net/ipv4/conf/lan0/rp_filter /proc/sys/net/ipv6/conf/lan0/accept_dad']);
    assert.deepEqual(sys.stdout.trim().split('\n'), ['0', '0', '0']);
    const lo = await lan.exec(n.ns, ['ip', '-j', 'link', 'show', 'dev', 'lo']);
    assert.ok((JSON.parse(lo.stdout) as { flags: string[] }[])[0].flags.includes('UP'), 'lo is up');
  }
  assert.ok((await lan.addresses(lan.client.ns)).includes('192.0.2.100/24'));
  const arpAccept = await lan.exec(lan.client.ns, ['cat', '/proc/sys/net/ipv4/conf/lan0/arp_accept']);
  assert.equal(arpAccept.stdout.trim(), '1');
  assert.match(await lan.mac(lan.nodes[0].ns), /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  const failed = await lan.exec(lan.nodes[0].ns, ['sh', '-c', 'echo oops >&2; exit 3']);
  assert.deepEqual(failed, { code: 3, stdout: '', stderr: 'oops\n' });
  assert.equal((await lan.exec(lan.nodes[0].ns, ['cat'], { input: 'fed in' })).stdout, 'fed in');

  // A server inside node 1's namespace, reached from this (root namespace) process.
  const n1 = lan.nodes[1];
  const server = lan.spawn(n1.ns, [process.execPath, '-e', `require('node:net').createServer((s) => s.end('hello from ' + process.argv[1])).listen(7000, process.argv[1], () => console.log('listening'))`, n1.mgmtAddress]);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('listening') && resolve());
    server.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  assert.equal(await fetchGreeting(n1.mgmtAddress, 7000), `hello from ${n1.mgmtAddress}`);

  const rootIfaces = lan.nodes.map((_, i) => mgmtPeerInterface(lan, i));
  for (const name of rootIfaces) assert.ok(rootLinkExists(name), `${name} in the root namespace`);
  await lan.destroy();
  await lan.destroy(); // idempotent
  assert.notEqual(server.exitCode ?? server.signalCode, null, 'processes started through the Lan were killed');
  for (const ns of names) assert.ok(!netnsList().includes(ns), `${ns} deleted`);
  for (const name of rootIfaces) assert.ok(!rootLinkExists(name), `${name} deleted`);
});

test('cut/heal: frames between two nodes are dropped in the bridge until healed', { skip: skip ?? nftMissing }, async (t) => {
  const lan = await createLan({ nodes: 2 });
  t.after(() => lan.destroy());
  const [a, b] = await Promise.all(lan.nodes.map((n, i) => Peer.start(lan, n.ns, `node${i}`)));
  const c = await Peer.start(lan, lan.client.ns, 'client');
  await Promise.all([a, b, c].map((p) => p.call('attach', { iface: 'lan0', v4: true, v6: false })));
  const send = (p: Peer, hex: string) => p.call('send', { iface: 'lan0', family: 4, destination: '224.0.0.18', payloadHex: hex });

  await lan.cut(0, 1);
  await send(a, '21000001');
  await c.waitPacket('21000001', 'packet reaching the client during the cut');
  await send(b, '21000002');
  await c.waitPacket('21000002', 'packet from node 1 reaching the client during the cut');
  await lan.heal();
  await send(a, '21000003');
  await b.waitPacket('21000003', 'packet after heal');
  assert.ok(!b.packets().some((p) => p.payloadHex === '21000001'), 'node 1 got node 0 packet sent during the cut');
  await send(b, '21000004');
  await a.waitPacket('21000004', 'packet after heal, the other way');
  assert.ok(!a.packets().some((p) => p.payloadHex === '21000002'), 'node 0 got node 1 packet sent during the cut');

  await lan.cut(0);
  await send(a, '21000005');
  await send(b, '21000006');
  await c.waitPacket('21000006', 'node 1 still reaching the client while node 0 is cut off');
  await lan.heal();
  await lan.heal(); // healing twice is fine
  await send(a, '21000007');
  await c.waitPacket('21000007', 'node 0 reaching the client after heal');
  assert.ok(!c.packets().some((p) => p.payloadHex === '21000005'), 'the client got a packet from the cut-off node');
  assert.ok(!b.packets().some((p) => p.payloadHex === '21000005'), 'node 1 got a packet from the cut-off node');
  await assert.rejects(lan.cut(5), RangeError);
});
