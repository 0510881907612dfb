/**
 * The fake FreeBSD libc/libnv in native/: builds it, runs its C self-test, and checks the
 * cross-process behaviour (a shared FAKEBSD_STATE "kernel") with fake-ifconfig children.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const buildDir = path.join(nativeDir, 'build');
const ifconfigBin = path.join(buildDir, 'fake-ifconfig');
const selftestBin = path.join(buildDir, 'fakebsd-selftest');

const haveCompiler = spawnSync('gcc', ['--version']).status === 0 && spawnSync('make', ['--version']).status === 0;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function childEnv(state: string | null, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('CARPD_FREEBSD_LIBC' in extra)) delete env.CARPD_FREEBSD_LIBC;
  if (state === null) delete env.FAKEBSD_STATE;
  else env.FAKEBSD_STATE = state;
  return env;
}

function ifconfig(state: string | null, args: string[], extra: Record<string, string> = {}): Run {
  const r = spawnSync(ifconfigBin, args, { env: childEnv(state, extra), encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function ifconfigAsync(state: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(ifconfigBin, args, { env: childEnv(state) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

function ok(r: Run, what: string): void {
  assert.equal(r.code, 0, `${what} failed: ${r.err}`);
}

interface Dump {
  osreldate: number;
  interfaces: { name: string; addresses: { address: string; vhid: number }[] }[];
  vhids: { interface: string; vhid: number; state: string; advskew: number; addresses: number }[];
}

function dump(state: string): Dump {
  const r = ifconfig(state, ['-dump']);
  ok(r, 'fake-ifconfig -dump');
  return JSON.parse(r.out) as Dump;
}

describe('fake FreeBSD libc and libnv (native/)', { skip: haveCompiler ? false : 'no C compiler (gcc/make) found' }, () => {
  let work = '';
  let selftest: { code: number | null; lines: string[]; raw: string } = { code: null, lines: [], raw: '' };

  before(() => {
    const made = spawnSync('make', ['-C', nativeDir], { encoding: 'utf8' });
    assert.equal(made.status, 0, `make -C native failed:\n${made.stdout}\n${made.stderr}`);
    work = mkdtempSync(path.join(tmpdir(), 'fakebsd-'));
    const r = spawnSync(selftestBin, [buildDir], { env: childEnv(null), encoding: 'utf8' });
    selftest = { code: r.status, lines: r.stdout.split('\n'), raw: `${r.stdout}\n${r.stderr}` };
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let n = 0;
  const stateFile = (): string => path.join(work, `state-${++n}`);

  test('the C self-test passes every check', () => {
    const failed = selftest.lines.filter((l) => l.startsWith('not ok'));
    assert.deepEqual(failed, [], selftest.raw);
    assert.equal(selftest.code, 0, selftest.raw);
    const count = selftest.lines.filter((l) => /^ok \d+ /.test(l)).length;
    assert.ok(count >= 200, `only ${count} checks ran:\n${selftest.raw}`);
  });

  // Behaviours carpd depends on: each must be present in the self-test and pass.
  const required = [
    'SET without ADVSKEW zero-fills it',
    'SET without IFNAME/IFINDEX -> positive ENXIO (6)',
    'SET with NLM_F_ACK -> NLMSG_ERROR error 0',
    'GET without NLM_F_DUMP: one NLM_F_MULTI message per vhid, then NLMSG_DONE',
    'NV SET without version -> EDOOFUS',
    'and prints the PANIC line on stderr',
    'NV GET with a small buffer -> EFBIG without reporting the size',
    '14: defer=1 does not enable defer; GET returns the flag word OK only',
    '13: defer=1 enables defer, GET returns 1',
    '14: defer=2 enables defer, GET returns 3',
    'writing 0 leaves demotion alone (delta, T9)',
    'writing 10 adds 10',
    'SIOCAIFADDR vhid 5 on an interface with no vhid at all -> ENOPROTOOPT',
    'SIOCAIFADDR vhid 5 where only vhid 1 exists -> ENOENT',
    'removing the last address destroys the vhid (T8)',
    'removing the last IPv6 address destroys the vhid',
    'the EINVAL for advskew 255 leaves the new vhid 3 behind',
    '... deletes the first IPv4 address instead (T1)',
    'OSIOCAIFADDR ignores the vhid (T3)',
    'vltime 0 succeeds but adds nothing (T7)',
    'SIOCAIFADDR_IN6 with sin6_len 16 (12.4) -> EAFNOSUPPORT',
    '14: list-all returns only the last vhid in slot 0',
    '13: list-all fills one slot per vhid',
    'nvlist_get_number on a missing key aborts (T13)',
    'adding an existing key latches EEXIST',
    'CTRL_CMD_GETFAMILY "carp" -> CTRL_ATTR_FAMILY_ID 0x20',
    'recv with nothing queued, MSG_DONTWAIT -> EAGAIN',
    'DIOCGETSTATUS: running 1, states 77',
    'the nvlist reply: running true, states 77',
    'DIOCGETSTATUSNV with size < len',
    'DIOCGETSTATUS on 15 (removed)',
    'open /dev/pf without pf.ko',
  ];
  for (const name of required) {
    test(`self-test: ${name}`, () => {
      const line = selftest.lines.find((l) => l.includes(name));
      assert.ok(line, `no self-test check named "${name}"`);
      assert.match(line, /^ok \d+ /, line);
    });
  }

  test('the libraries export the FreeBSD names and nothing else', (t) => {
    const nm = spawnSync('nm', ['-D', '--defined-only', path.join(buildDir, 'libfakefreebsd.so')], { encoding: 'utf8' });
    if (nm.status !== 0) {
      t.diagnostic('nm unavailable; export list not checked');
      return;
    }
    const names = nm.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[2])
      .filter((s): s is string => Boolean(s));
    const libc = ['close', 'free', 'if_nametoindex', 'ioctl', 'open', 'recv', 'send', 'socket', 'sysctlbyname'];
    assert.deepEqual(names.filter((s) => !s.startsWith('fakebsd_')).sort(), libc);
    const nv = spawnSync('nm', ['-D', '--defined-only', path.join(buildDir, 'libfakenv.so')], { encoding: 'utf8' });
    const nvNames = nv.stdout.split('\n').map((l) => l.trim().split(/\s+/)[2]).filter(Boolean);
    for (const fn of ['nvlist_create', 'nvlist_pack', 'nvlist_unpack', 'nvlist_get_number', 'nvlist_move_nvlist']) {
      assert.ok(nvNames.includes(fn), `${fn} missing`);
      assert.ok(nvNames.includes(`FreeBSD_${fn}`), `FreeBSD_${fn} missing`);
    }
  });

  test('a vhid configured by one process is seen by the next (shared FAKEBSD_STATE)', () => {
    const st = stateFile();
    ok(ifconfig(st, ['em0', 'vhid', '1', 'advskew', '100', 'pass', 'secret']), 'vhid 1');
    const listed = ifconfig(st, ['em0', 'carp']);
    ok(listed, 'carp list');
    assert.match(listed.out, /carp: INIT vhid 1 advbase 1 advskew 100/);
  });

  test('without FAKEBSD_STATE every process has its own kernel', () => {
    ok(ifconfig(null, ['em0', 'vhid', '1']), 'vhid 1');
    const listed = ifconfig(null, ['em0', 'carp']);
    ok(listed, 'carp list');
    assert.equal(listed.out, '');
  });

  test('an address before its vhid: ENOPROTOOPT without any vhid, ENOENT with others', () => {
    const st = stateFile();
    const r = ifconfig(st, ['em0', 'inet', '192.0.2.10/24', 'vhid', '1', 'alias']);
    assert.equal(r.code, 1);
    assert.equal(r.err.trim(), 'ifconfig: SIOCAIFADDR: ENOPROTOOPT');
    ok(ifconfig(st, ['em0', 'vhid', '2']), 'vhid 2');
    const r2 = ifconfig(st, ['em0', 'inet6', '2001:db8::10/64', 'vhid', '1', 'alias']);
    assert.equal(r2.code, 1);
    assert.equal(r2.err.trim(), 'ifconfig: SIOCAIFADDR_IN6: ENOENT');
  });

  test('removing the last address of a vhid removes the vhid', () => {
    const st = stateFile();
    ok(ifconfig(st, ['em0', 'vhid', '1', 'advskew', '20']), 'vhid 1');
    ok(ifconfig(st, ['em0', 'inet', '192.0.2.10/24', 'vhid', '1', 'alias']), 'inet alias');
    ok(ifconfig(st, ['em0', 'inet6', '2001:db8::10/64', 'vhid', '1', 'alias']), 'inet6 alias');
    assert.match(ifconfig(st, ['em0', 'carp']).out, /BACKUP vhid 1 advbase 1 advskew 20/);
    ok(ifconfig(st, ['em0', 'inet', '192.0.2.10', '-alias']), 'inet -alias');
    assert.match(ifconfig(st, ['em0', 'carp']).out, /vhid 1 /);
    ok(ifconfig(st, ['em0', 'inet6', '2001:db8::10', '-alias']), 'inet6 -alias');
    assert.equal(ifconfig(st, ['em0', 'carp']).out, '');
    const gone = ifconfig(st, ['em0', 'inet', '192.0.2.10', '-alias']);
    assert.equal(gone.err.trim(), 'ifconfig: SIOCDIFADDR: EADDRNOTAVAIL');
  });

  test('advskew 255 fails with EINVAL but leaves the new vhid behind', () => {
    const st = stateFile();
    const r = ifconfig(st, ['em0', 'vhid', '3', 'advskew', '255']);
    assert.equal(r.code, 1);
    assert.equal(r.err.trim(), 'ifconfig: SIOCSVH: EINVAL');
    assert.match(ifconfig(st, ['em0', 'carp']).out, /vhid 3 advbase 1 advskew 0/);
  });

  test('carp on lo0 is refused and unknown interfaces are ENXIO', () => {
    const st = stateFile();
    // ifconfig reads the vhid first, and SIOCGVH already checks the interface type.
    assert.equal(ifconfig(st, ['lo0', 'vhid', '1']).err.trim(), 'ifconfig: SIOCGVH: EOPNOTSUPP');
    assert.equal(ifconfig(st, ['vlan99', 'vhid', '1']).err.trim(), 'ifconfig: SIOCGVH: ENXIO');
  });

  test('concurrent processes serialise on the state file', async () => {
    const st = stateFile();
    ok(ifconfig(st, ['em0', 'vhid', '7']), 'vhid 7');
    const runs = await Promise.all(
      Array.from({ length: 16 }, (_, i) => ifconfigAsync(st, ['em0', 'inet', `192.0.2.${i + 1}/32`, 'vhid', '7', 'alias'])),
    );
    for (const r of runs) ok(r, 'parallel alias');
    const d = dump(st);
    const em0 = d.interfaces.find((i) => i.name === 'em0');
    assert.equal(em0?.addresses.filter((a) => a.vhid === 7).length, 16);
    assert.equal(d.vhids.find((v) => v.vhid === 7)?.addresses, 16);
  });

  test('a state file of the wrong size is reinitialised to the defaults', () => {
    const st = stateFile();
    writeFileSync(st, 'not a fake kernel');
    const r = ifconfig(st, ['-dump']);
    ok(r, 'dump');
    const d = JSON.parse(r.out) as Dump;
    assert.equal(d.osreldate, 1400097);
    assert.deepEqual(
      d.interfaces.map((i) => i.name),
      ['em0', 'em1', 'lo0', 'pfsync0'],
    );
    assert.match(r.err, /unexpected size, reinitialising/);
  });

  test('CARPD_FREEBSD_LIBC selects the library fake-ifconfig loads', () => {
    const bad = ifconfig(null, ['em0', 'carp'], { CARPD_FREEBSD_LIBC: path.join(work, 'missing.so') });
    assert.equal(bad.code, 1);
    assert.match(bad.err, /dlopen/);
    const good = ifconfig(null, ['em0', 'carp'], { CARPD_FREEBSD_LIBC: path.join(buildDir, 'libfakefreebsd.so') });
    ok(good, 'explicit library');
  });
});
