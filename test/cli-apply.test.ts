/**
 * carpctl apply / diff against a real carpd app (memory backend) listening on loopback: YAML and
 * JSON files, standard input, the plan in words, progress and result, and the exit codes
 * (apply: 0 / 1 / 2 usage; diff: 0 nothing would change, 2 something would, 1 any error).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { run, type CliIO } from '../src/cli/run.js';
import { ADMIN_TOKEN, makeHarness, type Harness } from './helpers/harness.js';

async function carpd(t: test.TestContext): Promise<{ h: Harness; url: string; dir: string }> {
  const h = await makeHarness();
  const server = createServer(h.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(path.join(tmpdir(), 'carpctl-apply-'));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { h, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, dir };
}

async function carpctl(url: string, args: string[], stdin?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {}, ...(stdin !== undefined ? { stdin: async () => stdin } : {}) };
  const code = await run([...args, '--url', url, '--token', ADMIN_TOKEN], io);
  return { code, out, err };
}

const YAML = `# two VIPs and pfsync, as an operator writes them
vips:
  - interface: em0
    vhid: 1
    addresses: [192.0.2.10/24, "2001:db8::10/64"]
    password: s3cret
  - interface: em1
    vhid: 2
    addresses: [198.51.100.10/24]
    advskew: 100
carp:
  preempt: true
pfsync:
  enabled: true
  syncdev: em1
`;

test('carpctl diff exits 2 with the plan in words when the file would change something, and applies nothing', async (t) => {
  const { h, url, dir } = await carpd(t);
  const file = path.join(dir, 'desired.yaml');
  writeFileSync(file, YAML);
  const r = await carpctl(url, ['diff', '-f', file]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.out, /would make 4 changes, \d+ kernel steps/);
  assert.match(r.out, /add VIP em0 vhid 1 \(192\.0\.2\.10\/24, 2001:db8::10\/64\)/);
  assert.match(r.out, /vhid\.set +em0 vhid 1 +create: advbase 1 s, advskew 0, password set/);
  assert.ok(!r.out.includes('s3cret') && !r.err.includes('s3cret'), 'never the password');
  assert.equal(h.service.desired().revision, 0);
  assert.deepEqual(await h.backend.listVhids(), []);
});

test('carpctl apply shows progress and the changes, ends with the revision; applied again and diffed it changes nothing (exit 0)', async (t) => {
  const { h, url, dir } = await carpd(t);
  const file = path.join(dir, 'desired.yaml');
  writeFileSync(file, YAML);
  const r = await carpctl(url, ['apply', '-f', file]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, new RegExp(`reading ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 2 VIPs`));
  assert.match(r.err, /planned against revision 0: 4 changes/);
  assert.match(r.err, /applying 4 changes, \d+ kernel steps \(If-Match: "0"\)/);
  assert.match(r.out, /changes from revision 0:\nchanges:\n  add VIP em0 vhid 1/);
  assert.match(r.out, /applied: revision 1 \(4 changes, \d+ kernel steps\)\n$/);
  assert.equal(h.service.desired().revision, 1);
  assert.equal(h.service.desired().vips[0].password, 's3cret');
  assert.deepEqual((await h.backend.listVhids()).map((v) => [v.interface, v.vhid]), [['em0', 1], ['em1', 2]]);

  const again = await carpctl(url, ['apply', '-f', file]);
  assert.equal(again.code, 0, again.err);
  assert.equal(again.out, `nothing to change: revision 1 already is what ${file} declares\n`);
  const diff = await carpctl(url, ['diff', '-f', file]);
  assert.equal(diff.code, 0, diff.err);
  assert.match(diff.out, /^no changes: revision 1/);
  assert.equal(h.service.desired().revision, 1);
});

test('carpctl apply -f - reads JSON from standard input; --dry-run prints the plan and applies nothing; --json prints the new state', async (t) => {
  const { h, url } = await carpd(t);
  const doc = JSON.stringify({ vips: [{ interface: 'em0', vhid: 3, addresses: ['192.0.2.30/24'] }] });
  const dry = await carpctl(url, ['apply', '-f', '-', '--dry-run'], doc);
  assert.equal(dry.code, 0, dry.err);
  assert.match(dry.out, /^dry run from revision 0: nothing was applied or stored\nchanges:\n  add VIP em0 vhid 3/);
  assert.equal(h.service.desired().revision, 0);

  const applied = await carpctl(url, ['apply', '-f', '-', '--json'], doc);
  assert.equal(applied.code, 0, applied.err);
  const state = JSON.parse(applied.out);
  assert.equal(state.revision, 1);
  assert.deepEqual(state.vips.map((v: { vhid: number }) => v.vhid), [3]);
  const diff = await carpctl(url, ['diff', '--file=-', '--json'], doc);
  assert.equal(diff.code, 0);
  assert.deepEqual(JSON.parse(diff.out), { dryRun: true, fromRevision: 1, changes: [], steps: [] });
});

test('carpctl apply/diff errors: an invalid document lists every problem (exit 1); a stale --if-match is 412 (exit 1); carpd unreachable (exit 1)', async (t) => {
  const { h, url, dir } = await carpd(t);
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'vips:\n  - {interface: em0, vhid: 1, addresses: [not-an-address]}\n  - {interface: em0, vhid: 2, addresses: [192.0.2.2/24], mode: unicast}\n');
  for (const verb of ['apply', 'diff']) {
    const r = await carpctl(url, [verb, '-f', bad]);
    assert.equal(r.code, 1, `${verb}: ${r.err}`);
    assert.match(r.err, /error 422 CARPD_ERR_INVALID_ADDRESS/);
    assert.match(r.err, /\/vips\/0\/addresses\/0: /);
    assert.match(r.err, /\/vips\/1\/peer: /);
  }
  const good = path.join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ vips: [] , carp: { preempt: false } }));
  const stale = await carpctl(url, ['apply', '-f', good, '--if-match', '7']);
  assert.equal(stale.code, 1);
  assert.match(stale.err, /412 CARPD_ERR_PRECONDITION_FAILED/);
  assert.match(stale.err, /hint: the desired state changed meanwhile \(now revision 0\)/);
  assert.equal(h.service.desired().revision, 0);
  const notYaml = path.join(dir, 'broken.yaml');
  writeFileSync(notYaml, 'vips: [\n');
  assert.equal((await carpctl(url, ['diff', '-f', notYaml])).code, 1);
  const scalar = path.join(dir, 'scalar.yaml');
  writeFileSync(scalar, '42\n');
  const notDoc = await carpctl(url, ['apply', '-f', scalar]);
  assert.equal(notDoc.code, 1);
  assert.match(notDoc.err, /needs at least 'vips:'/);
  const gone = await carpctl('http://127.0.0.1:1', ['diff', '-f', good]);
  assert.equal(gone.code, 1);
  assert.match(gone.err, /cannot reach carpd/);
});

test('carpctl diff: a bad command line exits 1 (2 means changes); apply keeps 2 for usage errors', async (t) => {
  const { url, dir } = await carpd(t);
  const file = path.join(dir, 'x.yaml');
  writeFileSync(file, 'vips: []\n');
  for (const args of [['diff'], ['diff', '-f', file, '--bogus'], ['diff', '-f', file, '--dry-run'], ['diff', '-f', file, 'extra'], ['diff', '-f', path.join(dir, 'missing.yaml')]]) {
    const r = await carpctl(url, args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /run 'carpctl diff --help' for usage/);
  }
  assert.equal((await carpctl(url, ['apply'])).code, 2);
  assert.equal((await carpctl(url, ['apply', '-f', path.join(dir, 'missing.yaml')])).code, 2);
  // --force is accepted (on a sync secondary it detaches what the file changes).
  assert.equal((await carpctl(url, ['diff', '-f', file, '--force'])).code, 0);
  const help = await carpctl(url, ['diff', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /exit 0: nothing would change, 2: something would, 1: any error/);
});
