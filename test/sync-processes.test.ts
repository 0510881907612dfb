/**
 * Config sync between two real carpd processes (`--backend sim` on a multicast group of their
 * own, API and sync listener on 127.0.0.1), paired through the API exactly as a user pairs them
 * (GET /v1/sync for each fingerprint, PATCH /v1/sync on each). Processes are killed by pid
 * (SIGKILL) and restarted on the same state directory and sync port:
 *
 *   - a change on the primary is applied on the secondary with its own skew, unicast peer swapped;
 *   - the secondary down during 20 changes: the primary says so (lastError, pending), and the
 *     returning secondary converges;
 *   - both killed while pushes are in flight and restarted: nothing acknowledged is lost, no
 *     primary revision is applied twice;
 *   - an edit on the secondary is refused and changes nothing;
 *   - a push from a certificate that is not pinned is refused, counted and logged, changes nothing;
 *   - GET /v1/cluster on either node lists both nodes with their vhid states.
 *
 * Only outcomes are asserted (waited for with pollUntil), never how long they took.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SCHEMA_VERSION } from '../src/config/model.js';
import { loadOrCreateIdentity } from '../src/sync/identity.js';
import { SyncClient } from '../src/sync/transport.js';
import { pollUntil } from './helpers/poll.js';
import { SyncNode, configOf, converged, derivedVip, freeTcpPort, freeUdpPort, pair } from './helpers/sync-node.js';

/** A client whose answers these tests read as they come: SyncClient.request leaves them unchecked. */
type RawClient = Pick<SyncClient, 'close'> & { request(type: string, body: unknown): Promise<{ status: number; body: any }> };

const PRIMARY_LOCAL = '192.0.2.10';
const SECONDARY_LOCAL = '192.0.2.11';

/** Two carpd processes on a sim group of their own, paired (node-a primary, node-b secondary) and in sync. */
async function setUp(t: test.TestContext) {
  const group = `239.255.0.112:${await freeUdpPort()}`;
  const [portA, portB] = [await freeTcpPort(), await freeTcpPort()];
  const root = mkdtempSync(path.join(tmpdir(), 'carpd-sync-proc-'));
  const node = (name: string, syncPort: number, local: string) =>
    new SyncNode(t, {
      name,
      stateDir: path.join(root, name),
      apiHost: '127.0.0.1',
      syncHost: '127.0.0.1',
      syncPort,
      localAddress: `${local}/24`,
      args: ['--backend', 'sim', '--sim-group', group],
    });
  const a = node('node-a', portA, PRIMARY_LOCAL);
  const b = node('node-b', portB === portA ? await freeTcpPort() : portB, SECONDARY_LOCAL);
  // Registered before the processes' own hooks, so it runs first (after hooks run in order):
  // the processes are gone (SIGKILL by pid) before their state directories are removed.
  t.after(async () => {
    await Promise.all([a.kill(), b.kill()]);
    rmSync(root, { recursive: true, force: true });
  });
  await Promise.all([a.start(), b.start()]);
  await pair(a, b);
  await converged(a, b);
  return { a, b, root };
}

async function post(n: SyncNode, body: Record<string, unknown>) {
  const r = await n.api('POST', '/v1/vips', body);
  assert.equal(r.status, 201, `${n.name} POST /v1/vips: ${r.text}`);
  return r.body;
}

/** The secondary's VIPs are exactly the primary's with the derived skew (and, for unicast, the peer swapped). */
async function assertMirrored(a: SyncNode, b: SyncNode) {
  const [pv, sv] = await Promise.all([a.vips(), b.vips()]);
  assert.deepEqual(configOf(sv), pv.map((v) => derivedVip(v, { peer: PRIMARY_LOCAL })));
}

test('sync processes: a change on the primary is applied on the secondary with advskew + 100 and the unicast peer swapped', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  const created = await post(a, { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0, password: 'sync-pw', mode: 'unicast', peer: SECONDARY_LOCAL });
  assert.equal(created.peer, SECONDARY_LOCAL);
  await converged(a, b);

  const [v] = (await b.vips()).filter((x) => x.interface === 'em0' && x.vhid === 1);
  assert.ok(v, 'em0/1 on the secondary');
  assert.equal(v.advskew, 100, "the primary's 0 + 100");
  assert.equal(v.mode, 'unicast');
  assert.equal(v.peer, PRIMARY_LOCAL, "the primary's own address, not a copy of the primary's peer");
  assert.deepEqual(v.addresses, ['192.0.2.50/24']);
  assert.equal(v.hasPassword, true, 'the password travelled');
  const [pv] = await a.vips();
  assert.equal(pv.advskew, 0);
  assert.equal(pv.peer, SECONDARY_LOCAL, "the primary's own VIP is untouched");
  await assertMirrored(a, b);
  const st = await a.sync();
  assert.equal(st.lastError, null);
  assert.deepEqual(st.lag, { revisions: 0, seconds: 0 });
});

test('sync processes: secondary killed during 20 changes: the primary reports the error and pending; the restarted secondary converges', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  const heard = (await a.sync()).peerRevision as number;
  await b.kill();
  for (let i = 1; i <= 20; i++) await post(a, { interface: 'em0', vhid: i, addresses: [`192.0.2.${100 + i}/24`], advskew: i });

  const down = await pollUntil('the primary reports the failing push', () => a.sync(), (s) => s.lastError !== null);
  assert.equal(down.pending, true);
  assert.match(down.lastError, /unreachable|refused|ECONNREFUSED/i);
  assert.equal(down.peerRevision, heard, 'the secondary has not applied anything since');
  assert.ok(down.lag.revisions >= 20, JSON.stringify(down.lag));

  await b.start(); // same state directory, same ports
  assert.deepEqual(b.generations.map((g) => g.port), [b.generations[0].port, b.generations[0].port]);
  const { p, s } = await converged(a, b);
  assert.equal(s.peerRevision, p.localRevision, "the secondary's appliedRevision is the primary's revision");
  assert.equal(p.lastError, null);
  const sv = await b.vips();
  assert.equal(sv.length, 20);
  assert.deepEqual(sv.map((v) => v.advskew), Array.from({ length: 20 }, (_, i) => i + 1 + 100));
  await assertMirrored(a, b);
});

/**
 * One burst of changes on the primary, cut short by SIGKILL of both processes once the
 * secondary has applied part of it, right after an acknowledged change (so the primary has
 * revisions the secondary has not applied and its push loop is busy). `order` says who dies
 * first: both in the same instant, the secondary first (the primary's push fails before it
 * dies), or the primary first (the secondary may finish applying a push whose answer nobody
 * reads, which the restarted primary then pushes again). Returns the vhids acknowledged.
 */
async function burstThenKill(t: test.TestContext, a: SyncNode, b: SyncNode, first: number, killAfter: number, order: 'together' | 'secondary-first' | 'primary-first'): Promise<number[]> {
  const base = (await a.sync()).localRevision as number;
  let applying = false;
  b.d!.waitForEvent('sync.applied', (l) => (l.primaryRevision as number) > base).then(
    () => (applying = true),
    () => undefined,
  );
  const acked: number[] = [];
  let killedAt: number | undefined;
  for (let vhid = first; vhid < first + 20; vhid++) {
    const r = await a.api('POST', '/v1/vips', { interface: 'em0', vhid, addresses: [`198.51.100.${vhid}/24`], advskew: vhid % 50 });
    assert.equal(r.status, 201, r.text);
    acked.push(vhid);
    if (applying && acked.length >= killAfter) {
      killedAt = Number(String(r.headers.etag).replaceAll('"', ''));
      break;
    }
  }
  assert.ok(killedAt !== undefined, `the burst of ${acked.length} changes ended before the secondary applied any of it`);
  if (order === 'together') {
    a.d!.kill('SIGKILL');
    b.d!.kill('SIGKILL');
  } else {
    const [x, y] = order === 'secondary-first' ? [b, a] : [a, b];
    await x.kill();
    await y.kill();
  }
  await Promise.all([a.d!.exited, b.d!.exited]);
  const applied = b.d!.logs.filter((l) => l.event === 'sync.applied').map((l) => l.primaryRevision as number);
  t.diagnostic(`${order}: killed after ${acked.length} acknowledged changes (primary revision ${killedAt}); the secondary had logged applying ${JSON.stringify(applied)}`);
  return acked;
}

test('sync processes: both killed while pushes are in flight and restarted: no acknowledged change lost, none applied twice', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  const acked: number[] = [];
  const rounds = [
    { killAfter: 4, order: 'together' },
    { killAfter: 8, order: 'secondary-first' },
    { killAfter: 12, order: 'primary-first' },
  ] as const;
  for (const [i, round] of rounds.entries()) {
    acked.push(...(await burstThenKill(t, a, b, 1 + i * 20, round.killAfter, round.order)));
    await Promise.all([a.start(), b.start()]); // same state directories, same sync ports
    await converged(a, b);
  }
  const { p } = await converged(a, b);

  // No lost change: every VIP acknowledged with 201 is on the primary and on the secondary, derived.
  const [pv, sv] = await Promise.all([a.vips(), b.vips()]);
  for (const vhid of acked) {
    assert.ok(pv.some((v) => v.vhid === vhid), `em0/${vhid} acknowledged but missing on the primary`);
    const s = sv.find((v) => v.interface === 'em0' && v.vhid === vhid);
    assert.ok(s, `em0/${vhid} acknowledged by the primary but missing on the secondary`);
    assert.equal(s.advskew, (vhid % 50) + 100);
  }
  await assertMirrored(a, b);

  // No duplicated change: each primary revision applied at most once, in increasing order.
  const revs = await b.revisions();
  assert.ok(revs.items.some((r) => r.revision === 0), `the whole history is listed (${revs.items.length} revisions)`);
  const applied = revs.items
    .slice()
    .sort((x, y) => x.revision - y.revision)
    .map((r) => /^sync: primary's revision (\d+)$/.exec(r.summary))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
  assert.equal(new Set(applied).size, applied.length, `a primary revision applied twice: ${JSON.stringify(applied)}`);
  assert.deepEqual(applied, applied.slice().sort((x, y) => x - y), 'applied in increasing order');
  assert.equal(applied.at(-1), p.localRevision);
});

test('sync processes: an edit of a synced object on the secondary is refused with CARPD_ERR_SYNC_MANAGED and changes nothing', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  await post(a, { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 10 });
  await converged(a, b);
  const [revBefore, vipsBefore, carpBefore] = await Promise.all([b.revisions(), b.vips(), b.get('/v1/carp')]);

  const attempts: [string, string, unknown][] = [
    ['PATCH', '/v1/vips/em0/1', { advskew: 7 }],
    ['DELETE', '/v1/vips/em0/1', undefined],
    ['POST', '/v1/vips', { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'] }],
    ['PATCH', '/v1/carp', { preempt: false }],
  ];
  for (const [method, url, body] of attempts) {
    const r = await b.api(method, url, body);
    assert.equal(r.status, 409, `${method} ${url}: ${r.text}`);
    assert.equal(r.body.code, 'CARPD_ERR_SYNC_MANAGED', r.text);
    assert.match(r.body.detail, /primary.*127\.0\.0\.1.*force=true/);
  }

  const [revAfter, vipsAfter, carpAfter] = await Promise.all([b.revisions(), b.vips(), b.get('/v1/carp')]);
  assert.equal(revAfter.current, revBefore.current, 'no revision stored');
  assert.deepEqual(revAfter.items, revBefore.items);
  assert.deepEqual(configOf(vipsAfter), configOf(vipsBefore));
  assert.equal(carpAfter.preempt, carpBefore.preempt);
  assert.deepEqual((await b.sync()).detached, { vips: [], carp: false }, 'nothing detached');
});

test('sync processes: a push from a certificate that is not pinned is refused (403), counted, logged, and changes nothing', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  await post(a, { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'] });
  await converged(a, b);
  const before = await b.sync();
  const [revBefore, vipsBefore] = await Promise.all([b.revisions(), b.vips()]);

  // A third node: its own identity, which nobody pinned, aiming at the secondary's listener.
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-sync-intruder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const intruder = await loadOrCreateIdentity(dir, 'node-c');
  const client: RawClient = new SyncClient({ identity: intruder, peer: { host: '127.0.0.1', port: b.spec.syncPort, fingerprint: before.identity.fingerprint }, schemaVersion: SCHEMA_VERSION });
  t.after(() => client.close());
  const snapshot = {
    revision: (await a.sync()).localRevision + 100,
    vips: [{ interface: 'em0', vhid: 9, addresses: ['192.0.2.59/24'], advbaseSec: 1, advskew: 0, mode: 'multicast', description: 'intruder', nosync: false, protocol: 'carp' }],
    carp: { enabled: false, preempt: false },
    localAddresses: ['192.0.2.12/24'],
  };
  const r = await client.request('push', snapshot);
  assert.equal(r.status, 403, JSON.stringify(r.body));
  assert.equal(r.body.code, 'CARPD_ERR_SYNC_UNTRUSTED');
  assert.equal(r.body.reason, 'unknown-peer');

  const after = await b.sync();
  assert.equal(after.rejected['unknown-peer'], before.rejected['unknown-peer'] + 1, JSON.stringify(after.rejected));
  const line = await b.d!.waitForLog((l) => l.event === 'sync.rejected' && l.reason === 'unknown-peer', 'sync.rejected warn line');
  assert.equal(line.level, 40, 'warn');
  assert.equal((line.peer as { fingerprint: string }).fingerprint, intruder.fingerprint);
  assert.match(String(line.msg), /not pinned/);

  const [revAfter, vipsAfter] = await Promise.all([b.revisions(), b.vips()]);
  assert.equal(revAfter.current, revBefore.current, "the secondary's revision is unchanged");
  assert.deepEqual(configOf(vipsAfter), configOf(vipsBefore));
  assert.equal(after.peerRevision, before.peerRevision);
  // The real primary still gets through.
  await post(a, { interface: 'em0', vhid: 2, addresses: ['192.0.2.51/24'] });
  await converged(a, b);
  await assertMirrored(a, b);
});

test('sync processes: GET /v1/cluster on either node lists both nodes with their vhid states', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  await post(a, { interface: 'em0', vhid: 1, addresses: ['192.0.2.50/24'], advskew: 0 });
  await converged(a, b);
  const stateOf = (n: any) => n.vhids?.find((v: any) => v.interface === 'em0' && v.vhid === 1)?.state;
  // advskew 0 on the primary, 100 on the secondary, one sim segment: the primary is MASTER.
  for (const [self, peer] of [
    [a, b],
    [b, a],
  ] as const) {
    const c = await pollUntil(
      `GET /v1/cluster on ${self.name}`,
      () => self.get('/v1/cluster'),
      (x) => x.nodes.length === 2 && x.nodes[1].reachable && stateOf(x.nodes[self === a ? 0 : 1]) === 'MASTER' && stateOf(x.nodes[self === a ? 1 : 0]) === 'BACKUP',
    );
    assert.deepEqual(
      c.nodes.map((n: any) => ({ node: n.node, self: n.self, reachable: n.reachable, error: n.error })),
      [
        { node: self.name, self: true, reachable: true, error: null },
        { node: peer.name, self: false, reachable: true, error: null },
      ],
    );
    const [me, other] = c.nodes;
    assert.equal(me.role, self === a ? 'primary' : 'secondary');
    assert.equal(other.role, self === a ? 'secondary' : 'primary');
    assert.equal(other.appliedRevision, self === a ? me.revision : 0);
    for (const n of c.nodes) {
      assert.deepEqual(
        n.vhids.map((v: any) => [v.interface, v.vhid]),
        [['em0', 1]],
      );
      assert.ok(!Number.isNaN(Date.parse(n.vhids[0].since)));
    }
    assert.deepEqual(c.splitBrain, []);
  }
});

/*
 * Two pushes of the pinned primary in flight at once — a request stalled on a bad link and
 * delivered after the retry that replaced it — the newer (M) reaching the secondary first and
 * the older (N < M) arriving while M is still queued or being applied. The secondary checks the
 * revision again inside its serialized change queue, so N is refused and M stands. Here the two
 * messages are sent by SyncClients holding the primary's own identity (the primary itself is
 * stopped), as a late delivery would arrive.
 */
test('an older push of the pinned primary arriving while a newer one is being applied does not roll the secondary back', { timeout: 90_000 }, async (t) => {
  const { a, b } = await setUp(t);
  await a.kill(); // its identity stands in for it, sending what the network delivers late
  const identity = await loadOrCreateIdentity(a.spec.stateDir, a.name);
  const fingerprint = (await b.sync()).identity.fingerprint;
  const vip = (vhid: number) => ({ interface: 'em0', vhid, addresses: [`198.51.100.${vhid}/24`], advbaseSec: 1, advskew: 0, mode: 'multicast', description: '', nosync: false, protocol: 'carp' });
  const snapshot = (revision: number, vhids: number[]) => ({ revision, vips: vhids.map(vip), carp: { enabled: true, preempt: true }, localAddresses: [`${PRIMARY_LOCAL}/24`] });
  for (let trial = 0; trial < 5; trial++) {
    const applied = (await b.sync()).peerRevision as number;
    const newer = snapshot(applied + 2, [1 + trial * 2, 2 + trial * 2]);
    const older = snapshot(applied + 1, [200]);
    const clients = [0, 1].map((): RawClient => new SyncClient({ identity, peer: { host: '127.0.0.1', port: b.spec.syncPort, fingerprint }, schemaVersion: SCHEMA_VERSION }));
    t.after(() => clients.forEach((c) => c.close()));
    // Sent in this order, in the same instant: the newer one reaches the secondary first.
    const answers = await Promise.all([clients[0].request('push', newer), clients[1].request('push', older)]);
    const s = await b.sync();
    const vhids = (await b.vips()).map((v) => v.vhid);
    assert.deepEqual(
      { appliedRevision: s.peerRevision, vhids },
      { appliedRevision: newer.revision, vhids: newer.vips.map((v) => v.vhid) },
      `trial ${trial}: the secondary went back to the older revision ${older.revision} after applying ${newer.revision}; answers: ${JSON.stringify(answers.map((x) => [x.status, x.body?.detail ?? x.body?.code]))}`,
    );
  }
});
