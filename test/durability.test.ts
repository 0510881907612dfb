/**
 * Crash safety of the stored desired state, with the real daemon: SIGKILL at random points of
 * a stream of API writes, then the state dir must load, hold every acknowledged write, and
 * hold at most the one write that was in flight. Also: a corrupt config.json stops carpd and
 * is never overwritten.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { TMP_MARK } from '../src/config/atomic.js';
import { initialState, type DesiredState } from '../src/config/model.js';
import { ConfigStore, KEEP_REVISIONS } from '../src/config/store.js';
import { call, daemonArgs, etagRevision, spawnDaemon, startDaemon, type Reply } from './helpers/daemon.js';
import { prng } from './helpers/prng.js';

const KILLS = Number(process.env.CARPD_DURABILITY_KILLS ?? 200);
/** Bounds the VIP set; far below the 255 vhids of an interface. */
const MAX_VIPS = 12;
const MIN_VIPS = 3;
const INTERFACES = ['em0', 'em1'] as const;

const tmp = (t: { after: (fn: () => void) => void }) => {
  const d = mkdtempSync(path.join(tmpdir(), 'carpd-durability-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};


/** What the test expects of a VIP: the fields its writes set. */
interface ModelVip {
  interface: string;
  vhid: number;
  addresses: string[];
  advskew: number;
}
type Model = Map<string, ModelVip>;
type Op =
  | { kind: 'create'; vip: ModelVip }
  | { kind: 'delete'; interface: string; vhid: number }
  | { kind: 'patch'; interface: string; vhid: number; advskew: number };

const keyOf = (iface: string, vhid: number) => `${iface}/${vhid}`;

function applyOp(m: Model, op: Op): Model {
  const next: Model = new Map([...m].map(([k, v]) => [k, { ...v, addresses: [...v.addresses] }]));
  if (op.kind === 'create') next.set(keyOf(op.vip.interface, op.vip.vhid), op.vip);
  else if (op.kind === 'delete') next.delete(keyOf(op.interface, op.vhid));
  else next.get(keyOf(op.interface, op.vhid))!.advskew = op.advskew;
  return next;
}

const sortedModel = (m: Model): ModelVip[] => [...m.values()].sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1));
const storedVips = (s: DesiredState): ModelVip[] =>
  [...s.vips].sort((a, b) => (a.interface === b.interface ? a.vhid - b.vhid : a.interface < b.interface ? -1 : 1)).map((v) => ({ interface: v.interface, vhid: v.vhid, addresses: v.addresses, advskew: v.advskew }));

/**
 * Makes operations that always change the document (so every acknowledged write is a new
 * revision): unique addresses, vhids cycling per interface, a bounded set.
 */
class OpMaker {
  private v4 = 0;
  private v6 = 0;
  private readonly nextVhid: Record<string, number> = { em0: 1, em1: 1 };
  constructor(private readonly rnd: () => number) {}

  next(m: Model): Op {
    const r = this.rnd();
    if (m.size < MIN_VIPS || (m.size < MAX_VIPS && r < 0.45)) return this.create(m);
    const vips = sortedModel(m);
    const pick = vips[Math.floor(this.rnd() * vips.length)];
    if (m.size >= MAX_VIPS || r < 0.75) return { kind: 'delete', interface: pick.interface, vhid: pick.vhid };
    // A different advskew, or the write would change nothing and make no revision.
    const advskew = (pick.advskew + 1 + Math.floor(this.rnd() * 253)) % 254;
    return { kind: 'patch', interface: pick.interface, vhid: pick.vhid, advskew };
  }

  private create(m: Model): Op {
    const iface = INTERFACES[Math.floor(this.rnd() * INTERFACES.length)];
    let vhid = this.nextVhid[iface];
    while (m.has(keyOf(iface, vhid))) vhid = (vhid % 255) + 1;
    this.nextVhid[iface] = (vhid % 255) + 1;
    const inUse = new Set([...m.values()].flatMap((v) => v.addresses.map((a) => a.split('/')[0])));
    let v4: string;
    do {
      // 2 × 254 host addresses, alternating between the two documentation networks.
      const n = this.v4++ % 508;
      v4 = `${n % 2 === 0 ? '198.51.100' : '203.0.113'}.${Math.floor(n / 2) + 1}`;
    } while (inUse.has(v4));
    const addresses = [`${v4}/24`];
    // Canonical (RFC 5952) text, as carpd stores it: lower-case hex without leading zeros.
    if (this.rnd() < 0.5) addresses.push(`2001:db8::${(++this.v6).toString(16)}/64`);
    return { kind: 'create', vip: { interface: iface, vhid, addresses, advskew: Math.floor(this.rnd() * 255) } };
  }
}

function send(port: number, token: string, op: Op, onSent?: () => void): Promise<Reply> {
  switch (op.kind) {
    case 'create':
      return call(port, 'POST', '/v1/vips', { token, onSent, body: { interface: op.vip.interface, vhid: op.vip.vhid, addresses: op.vip.addresses, advskew: op.vip.advskew } });
    case 'delete':
      return call(port, 'DELETE', `/v1/vips/${op.interface}/${op.vhid}`, { token, onSent });
    case 'patch':
      return call(port, 'PATCH', `/v1/vips/${op.interface}/${op.vhid}`, { token, onSent, body: { advskew: op.advskew } });
  }
}

function tempFiles(dir: string): string[] {
  return [dir, path.join(dir, 'revisions')].flatMap((d) => readdirSync(d).filter((n) => n.includes(TMP_MARK)).map((n) => path.join(d, n)));
}

test(`SIGKILL at random points of a stream of API writes (${KILLS} kills): the store loads, is a committed revision, and no acknowledged write is missing`, { timeout: 30 * 60_000 }, async (t) => {
  const seed = Number(process.env.CARPD_DURABILITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
  // Printed first so that a failure can be replayed (CARPD_DURABILITY_SEED=...); the kill
  // timing still depends on the machine, the choices of operations and kill points do not.
  console.log(`# durability seed ${seed} (replay with CARPD_DURABILITY_SEED=${seed})`);
  t.diagnostic(`seed ${seed}`);
  const rnd = prng(seed);
  const ops = new OpMaker(rnd);
  const dir = tmp(t);
  const started = Date.now();

  // The first start creates the state and the admin token; revision 1 is that token.
  let token = '';
  let acked = { revision: -1, model: new Map() as Model };
  const stats = { writesAcked: 0, killedInFlight: 0, inFlightCommitted: 0, killedIdle: 0, tempsFound: 0, orphanRevisions: 0, startMs: 0 };

  for (let i = 0; i < KILLS; i++) {
    const t0 = Date.now();
    const d = await startDaemon(t, daemonArgs(dir));
    stats.startMs += Date.now() - t0;
    if (i === 0) {
      token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
      acked = { revision: Number(d.listening.revision), model: new Map() };
    }
    // The restart after a kill is carpd's own check that the state dir loads.
    assert.equal(d.listening.revision, acked.revision, `kill ${i}: carpd restarted at another revision than the one verified`);

    let killed = false;
    const kill = () => {
      if (!killed) {
        killed = true;
        d.kill('SIGKILL');
      }
    };
    // After `n` acknowledged writes, the kill: between writes ('idle'), as soon as the next
    // request is on the wire ('sent'), or a random delay after the next write starts
    // ('delay'; it keeps writing until the kill lands). The first write after a start takes
    // ~80 ms (the validator warms up), later ones ~6-10 ms, so the delay is 0-60 ms on the
    // first write and 0-12 ms on a later one: both reach the fsyncs and renames.
    const n = rnd() < 0.4 ? 0 : 1 + Math.floor(rnd() * 5);
    const r = rnd();
    const trigger = r < 0.15 ? 'idle' : r < 0.3 ? 'sent' : 'delay';
    const delayMs = Math.floor(rnd() * (n === 0 ? 61 : 13));
    let inFlight: { op: Op; revision: number; model: Model } | undefined;
    for (let count = 0; !killed; count++) {
      if (count === n && trigger === 'idle') {
        kill();
        break;
      }
      const op = ops.next(acked.model);
      inFlight = { op, revision: acked.revision + 1, model: applyOp(acked.model, op) };
      if (count === n && trigger === 'delay') setTimeout(kill, delayMs);
      const onSent = count === n && trigger === 'sent' ? kill : undefined;
      let reply: Reply;
      try {
        reply = await send(d.port, token, op, onSent);
      } catch (e) {
        // Only the kill may cut a request short.
        assert.ok(killed, `kill ${i}: request failed without a kill: ${(e as Error).message}\n${d.output}`);
        break;
      }
      // A reply that made it out before the kill is an acknowledgement like any other.
      assert.ok(reply.status >= 200 && reply.status < 300, `kill ${i}: ${JSON.stringify(op)} answered ${reply.status} ${reply.text}`);
      assert.equal(etagRevision(reply), inFlight.revision, `kill ${i}: ETag of an acknowledged write`);
      acked = { revision: inFlight.revision, model: inFlight.model };
      inFlight = undefined;
      stats.writesAcked++;
    }
    const exit = await d.waitForExit();
    assert.equal(exit.signal, 'SIGKILL', `kill ${i}: carpd exited on its own (${exit.code})\n${d.output}`);
    if (inFlight) stats.killedInFlight++;
    else stats.killedIdle++;

    // What the kill left behind, before anything tidies it (for the summary only).
    stats.tempsFound += tempFiles(dir).length > 0 ? 1 : 0;
    let rawRevision = NaN;
    try {
      rawRevision = (JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { revision: number }).revision;
    } catch {
      // Left to ConfigStore.open below to report, with the field and the reason.
    }
    stats.orphanRevisions += readdirSync(path.join(dir, 'revisions')).some((n) => Number(n.slice(0, 10)) > rawRevision) ? 1 : 0;

    // (a) it loads; never as a fresh state dir.
    const store = await ConfigStore.open(dir, () => assert.fail(`kill ${i}: config.json vanished and the store would start empty`));
    const s = store.current();
    // (b) the last acknowledged revision, or the one in flight, nothing else.
    const allowed = inFlight ? [acked.revision, inFlight.revision] : [acked.revision];
    assert.ok(allowed.includes(s.revision), `kill ${i}: stored revision ${s.revision}, acknowledged ${acked.revision}${inFlight ? ` (+1 in flight)` : ''}`);
    // (c) every acknowledged write is there, and the in-flight one entirely or not at all.
    const expected = s.revision === acked.revision ? acked.model : inFlight!.model;
    assert.deepEqual(storedVips(s), sortedModel(expected), `kill ${i}: VIPs at revision ${s.revision}`);
    if (inFlight && s.revision === inFlight.revision) {
      stats.inFlightCommitted++;
      acked = { revision: inFlight.revision, model: inFlight.model };
    }
    // The history agrees with config.json: its newest entry is the revision in force.
    assert.equal(store.revisions()[0]?.revision, s.revision, `kill ${i}: newest history entry`);
    assert.deepEqual(await store.loadRevision(s.revision), s, `kill ${i}: revisions/ copy of the revision in force`);
    // (d) nothing half-written survives an open; the files stay private.
    assert.deepEqual(tempFiles(dir), [], `kill ${i}: temp files after open`);
    const revs = readdirSync(path.join(dir, 'revisions'));
    assert.ok(revs.length <= KEEP_REVISIONS, `kill ${i}: ${revs.length} revision files kept`);
    assert.ok(revs.every((n) => Number(n.slice(0, 10)) <= s.revision), `kill ${i}: revision newer than config.json kept: ${revs.join(' ')}`);
    assert.equal(statSync(path.join(dir, 'config.json')).mode & 0o777, 0o600, `kill ${i}: config.json mode`);
  }

  // The last kill is verified by one more start, like every other one.
  const last = await startDaemon(t, daemonArgs(dir));
  assert.equal(last.listening.revision, acked.revision);
  const list = await call(last.port, 'GET', '/v1/vips', { token });
  assert.equal(list.status, 200);
  const listed = new Map((list.body.items as ModelVip[]).map((v) => [keyOf(v.interface, v.vhid), { interface: v.interface, vhid: v.vhid, addresses: v.addresses, advskew: v.advskew }]));
  assert.deepEqual(sortedModel(listed), sortedModel(acked.model));
  last.kill('SIGKILL');
  await last.waitForExit();

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const summary = `${KILLS} kills in ${seconds} s: ${stats.writesAcked} writes acknowledged; ${stats.killedInFlight} kills with a write in flight (${stats.inFlightCommitted} of those committed), ${stats.killedIdle} between writes; ${stats.tempsFound} left temp files, ${stats.orphanRevisions} left an unacknowledged revision file; mean start ${(stats.startMs / (KILLS + 1)).toFixed(0)} ms; seed ${seed}`;
  t.diagnostic(summary);
  // The test means nothing if no kill ever landed on a write.
  assert.ok(stats.killedInFlight > 0, summary);
});

test('a first start killed between writing revision 0 and config.json starts again instead of refusing forever', async (t) => {
  const dir = tmp(t);
  // What a kill between the two writes of the very first commit leaves: revisions/0 only.
  mkdirSync(path.join(dir, 'revisions'), { recursive: true, mode: 0o700 });
  const s0 = initialState(new Date('2026-01-01T00:00:00Z'));
  writeFileSync(path.join(dir, 'revisions', '0000000000.json'), JSON.stringify({ meta: { revision: 0, createdAt: s0.updatedAt, actor: 'carpd', summary: 'initial configuration' }, state: s0 }), { mode: 0o600 });
  const d = await startDaemon(t, daemonArgs(dir));
  // Revision 0 made again, then 1: the admin token.
  assert.equal(d.listening.revision, 1);
  d.kill('SIGKILL');
  await d.waitForExit();
});

test('a kill after a snapshot but before its pruning leaves history files no revision needs; the next open prunes them', async (t) => {
  const dir = tmp(t);
  const every = 10;
  const open = () => ConfigStore.open(dir, () => assert.fail('must not re-initialise'), { snapshotEveryRevisions: every });
  const s = await ConfigStore.open(dir, () => initialState(new Date('2026-01-01T00:00:00Z')), { snapshotEveryRevisions: every });
  const revisionsDir = path.join(dir, 'revisions');
  const commitUpTo = async (store: ConfigStore, last: number) => {
    for (let i = store.current().revision + 1; i <= last; i++) await store.commit({ ...store.current(), revision: i, carp: { ...store.current().carp, preempt: i % 2 === 0 } }, { actor: 'x', summary: `r${i}` });
  };
  await commitUpTo(s, every + 1);
  // The first snapshot and its journal, as they were before a later snapshot pruned them:
  // what a kill just before the removal leaves.
  const first = ['0000000000.snapshot.json', '0000000000.journal'].map((n) => [n, readFileSync(path.join(revisionsDir, n))] as const);
  await commitUpTo(s, 2 * KEEP_REVISIONS);
  await s.close();
  const bounded = readdirSync(revisionsDir).sort();
  assert.ok(bounded.length <= 2 * Math.ceil(KEEP_REVISIONS / every) + 2, bounded.join(' '));
  assert.ok(!bounded.includes('0000000000.journal'));
  for (const [n, data] of first) writeFileSync(path.join(revisionsDir, n), data, { mode: 0o600 });

  const again = await open();
  assert.equal(again.revisions().length, KEEP_REVISIONS);
  assert.deepEqual(readdirSync(revisionsDir).sort(), bounded);
  // And it stays bounded from then on.
  await commitUpTo(again, 3 * KEEP_REVISIONS);
  await again.close();
  assert.ok(readdirSync(revisionsDir).length <= bounded.length, readdirSync(revisionsDir).join(' '));
  assert.equal((await open()).revisions().length, KEEP_REVISIONS);
});

async function refusedConfig(t: { after: (fn: () => void) => void }, corrupt: (doc: Record<string, any>, text: string) => string, field: RegExp | undefined) {
  const dir = tmp(t);
  // A real state dir with a VIP, made by carpd itself.
  const d = await startDaemon(t, daemonArgs(dir));
  const token = readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
  const created = await call(d.port, 'POST', '/v1/vips', { token, body: { interface: 'em0', vhid: 5, addresses: ['198.51.100.5/24'], advskew: 10 } });
  assert.equal(created.status, 201, created.text);
  d.kill('SIGTERM');
  assert.equal((await d.waitForExit()).code, 0);

  const file = path.join(dir, 'config.json');
  const original = readFileSync(file, 'utf8');
  const bad = Buffer.from(corrupt(JSON.parse(original) as Record<string, any>, original));
  writeFileSync(file, bad);
  const mode = statSync(file).mode;

  const again = spawnDaemon(t, daemonArgs(dir));
  const exit = await again.waitForExit();
  assert.equal(exit.code, 1, again.output);
  const fatal = again.logs.find((l) => l.event === 'start.failed');
  assert.ok(fatal, `no start.failed log line:\n${again.output}`);
  assert.ok(String(fatal.err).includes(file) && String(fatal.msg).includes(file), `the log names the file: ${fatal.msg}`);
  if (field) assert.match(String(fatal.err), field);
  assert.ok(readFileSync(file).equals(bad), 'config.json was rewritten');
  assert.equal(statSync(file).mode, mode);
  assert.deepEqual(tempFiles(dir), []);
}

test('a truncated config.json stops carpd with exit code 1 naming the file, and is left byte-identical', async (t) => {
  await refusedConfig(t, (_doc, text) => text.slice(0, Math.floor(text.length / 2)), /not valid JSON/);
});

test('a config.json with advskew 999 stops carpd with exit code 1 naming the file and the field, and is left byte-identical', async (t) => {
  await refusedConfig(
    t,
    (doc) => {
      doc.vips[0].advskew = 999;
      return JSON.stringify(doc, null, 2) + '\n';
    },
    /\/vips\/(0|em0\/5)\/advskew: .*999/,
  );
});
