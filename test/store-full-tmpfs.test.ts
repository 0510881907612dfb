/**
 * A real carpd whose state directory runs full: the state dir on a small tmpfs, filled by a
 * file beside it. A change is answered 507 CARPD_ERR_STORE_FULL naming the journal and ENOSPC,
 * nothing is stored (GET shows the old state), the state dir holds exactly the files and bytes
 * it held before (also with one page free, where part of the record fits), status shows it not
 * writable; once space is freed the next change goes through and status is writable again, and
 * a restart loads the state. Needs root (mount); CI runs as root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { platform, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { call, daemonArgs, startDaemon, type RunningDaemon } from './helpers/daemon.js';
import { listing } from './helpers/state-listing.js';

const PAGE = 4096;

function unavailable(): string | undefined {
  if (platform() !== 'linux') return `needs Linux tmpfs; this host is ${platform()}`;
  if (process.getuid?.() !== 0) return 'needs root: mounts a tmpfs for the state dir';
  return undefined;
}

/** A tmpfs of `size` at a new directory, unmounted (lazily: a killed daemon may still hold a file) after the test. */
function mountTmpfs(t: { after: (fn: () => void) => void }, size: string): string | undefined {
  const dir = mkdtempSync(path.join(tmpdir(), 'carpd-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  t.after(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes zeros to `file` until the file system refuses with ENOSPC; returns its descriptor. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  for (const chunk of [Buffer.alloc(64 * 1024), Buffer.alloc(PAGE)]) {
    for (;;) {
      try {
        if (writeSync(fd, chunk) < chunk.length) continue;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
  }
  return fd;
}

/** A VIP whose journal record is over 3 KB: 64 long IPv6 addresses and a long description. */
const bigVip = (iface: string, vhid: number) => ({
  interface: iface,
  vhid,
  addresses: Array.from({ length: 64 }, (_, i) => `2001:db8:aaaa:bbbb:cccc:${(0x1000 + vhid).toString(16)}:${(0x1000 + i).toString(16)}:1/64`),
  description: 'd'.repeat(255),
});

test('a full state dir: 507 naming the journal and ENOSPC, nothing stored or left behind (also with one page free), status not writable; space back: the next write and a restart', { skip: unavailable() }, async (t) => {
  const mnt = mountTmpfs(t, '2m');
  if (!mnt) return t.skip('cannot mount a tmpfs here');
  const stateDir = path.join(mnt, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  let d: RunningDaemon = await startDaemon(t, daemonArgs(stateDir));
  const token = readFileSync(path.join(stateDir, 'admin.token'), 'utf8').trim();
  const api = (method: string, url: string, body?: unknown) => call(d.port, method, url, { token, body });
  const vhids = async () => ((await api('GET', '/v1/vips')).body.items as { vhid: number }[]).map((v) => v.vhid).sort((a, b) => a - b);

  assert.equal((await api('POST', '/v1/vips', { interface: 'em0', vhid: 1, addresses: ['192.0.2.1/24'] })).status, 201);
  // A record is appended into the journal's last page before it needs a new one: leave less of
  // that page than a big record takes, so that a full file system refuses it.
  const journal = path.join(stateDir, 'revisions', '0000000000.journal');
  const slack = () => (PAGE - (statSync(journal).size % PAGE)) % PAGE;
  for (let vhid = 2; slack() >= 2000; vhid++) assert.equal((await api('POST', '/v1/vips', { interface: 'em0', vhid, addresses: [`192.0.2.${vhid}/24`] })).status, 201);
  const kept = await vhids();
  const revision = (await api('GET', '/v1/status')).body.revision as number;

  const fd = fill(path.join(mnt, 'fill'));
  t.after(() => closeSync(fd));
  const before = listing(stateDir);

  // Full: not even the journal's last page has room for the record.
  const r = await api('POST', '/v1/vips', bigVip('em1', 100));
  assert.equal(r.status, 507, r.text);
  assert.equal(r.headers['content-type'], 'application/problem+json; charset=utf-8');
  assert.equal(r.body.code, 'CARPD_ERR_STORE_FULL');
  assert.deepEqual(r.body.store, { path: journal, errno: 'ENOSPC' });
  assert.match(r.body.detail, /ENOSPC/);
  assert.deepEqual(listing(stateDir), before, 'the state dir holds exactly what it held before');
  assert.deepEqual(await vhids(), kept);
  let st = (await api('GET', '/v1/status')).body;
  assert.equal(st.revision, revision);
  assert.equal(st.store.writable, false);
  assert.equal(st.store.lastError.errno, 'ENOSPC');
  assert.equal(st.store.lastError.path, journal);

  // One page free: part of a larger record is written before the file system refuses the rest.
  // (One VIP's record is under a page, so this is a declarative apply of twelve big VIPs.)
  ftruncateSync(fd, fstatSync(fd).size - PAGE);
  const doc = (await api('GET', '/v1/config')).body;
  const big = { vips: [...doc.vips, ...Array.from({ length: 12 }, (_, i) => bigVip('em1', 101 + i))] };
  const r2 = await api('PUT', '/v1/config', big);
  assert.equal(r2.status, 507, r2.text);
  assert.deepEqual(r2.body.store, { path: journal, errno: 'ENOSPC' });
  assert.deepEqual(listing(stateDir), before, 'nothing of the part that fitted is left');
  assert.deepEqual(await vhids(), kept);
  assert.equal((await api('GET', '/v1/status')).body.store.writable, false);

  // Space is back: the next write goes through, and status says so.
  ftruncateSync(fd, 0);
  const ok = await api('POST', '/v1/vips', bigVip('em1', 100));
  assert.equal(ok.status, 201, ok.text);
  st = (await api('GET', '/v1/status')).body;
  assert.deepEqual(st.store, { writable: true, lastError: null });
  assert.equal(st.revision, revision + 1);

  // A restart loads it.
  d.kill('SIGTERM');
  assert.equal((await d.exited).code, 0);
  d = await startDaemon(t, daemonArgs(stateDir));
  assert.deepEqual(await vhids(), [...kept, 100]);
  assert.equal((await api('GET', '/v1/status')).body.revision, revision + 1);
});
