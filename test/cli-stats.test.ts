/** carpctl stats against the real API: the counter tables, the sysctls, --json, and errors. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { run } from '../src/cli/run.js';
import { CARP_COUNTERS, type KernelStats } from '../src/kernel/backend.js';
import { KernelError } from '../src/kernel/errno.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { ADMIN_TOKEN, READ_TOKEN, ManualClock, makeHarness } from './helpers/harness.js';

/** A memory backend whose stats() answers what the test sets, or fails with what it sets. */
class StatsBackend extends MemoryBackend {
  answer?: KernelStats;
  failure?: KernelError;
  override async stats(): Promise<KernelStats> {
    if (this.failure) throw this.failure;
    return this.answer ?? super.stats();
  }
}

async function serve(t: { after: (fn: () => unknown) => void }) {
  const clock = new ManualClock();
  const backend = new StatsBackend({ clock });
  const h = await makeHarness({ backend, clock });
  const server = createServer(h.app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await h.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const carpctl = async (args: string[], token = ADMIN_TOKEN) => {
    let stdout = '';
    let stderr = '';
    const code = await run(['--url', url, ...args], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: { CARPD_TOKEN: token } });
    return { code, stdout, stderr };
  };
  return { h, backend, carpctl };
}

const zeros = () => Object.fromEntries(CARP_COUNTERS.map((n) => [n, 0])) as KernelStats['carp'];

test('carpctl stats prints the sysctls and only the counters that moved', async (t) => {
  const { backend, carpctl } = await serve(t);
  const carp = { ...zeros(), ipackets: 1234, badauth: 7, opackets: 99 };
  backend.answer = {
    carp,
    pfsync: { counters: { ipackets: 0, opackets: 5, oerrors: 0 }, actMax: 15 },
    sysctls: { carpLog: 1, senderrDemotionFactor: 240, ifdownDemotionFactor: 240, pfsyncCarpDemotionFactor: 240 },
  };
  const r = await carpctl(['stats'], READ_TOKEN);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^backend: memory$/m);
  assert.match(r.stdout, /^net\.inet\.carp\.log\s+1$/m);
  assert.match(r.stdout, /^net\.inet\.carp\.senderr_demotion_factor\s+240$/m);
  assert.match(r.stdout, /^net\.inet\.carp\.ifdown_demotion_factor\s+240$/m);
  assert.match(r.stdout, /^net\.pfsync\.carp_demotion_factor\s+240$/m);
  const [, carpPart, pfsyncPart] = r.stdout.split(/^(?=carp |pfsync )/m);
  assert.match(carpPart, /^carp \(net\.inet\.carp\.stats\), non-zero only:$/m);
  assert.match(carpPart, /^COUNTER\s+VALUE$/m);
  assert.match(carpPart, /^ipackets\s+1234$/m);
  assert.match(carpPart, /^badauth\s+7$/m);
  assert.match(carpPart, /^opackets\s+99$/m);
  assert.doesNotMatch(carpPart, /badttl|preempt|ipackets6/);
  assert.match(pfsyncPart, /PFSYNC_ACT_MAX 15/);
  assert.match(pfsyncPart, /^opackets\s+5$/m);
  assert.doesNotMatch(pfsyncPart, /oerrors|ipackets/);
});

test('carpctl stats says so when nothing moved, when there are no pfsync counters, and when pfsync is absent', async (t) => {
  const { backend, carpctl } = await serve(t);
  let r = await carpctl(['stats']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /carp \(net\.inet\.carp\.stats\): all 16 counters are zero/);
  assert.match(r.stdout, /pfsync \(net\.pfsync\.stats, PFSYNC_ACT_MAX 0\): no counters kept by this backend/);

  backend.answer = { carp: zeros(), sysctls: { carpLog: 0 } };
  r = await carpctl(['stats']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^net\.inet\.carp\.log\s+0$/m);
  assert.doesNotMatch(r.stdout, /demotion_factor/);
  assert.match(r.stdout, /^pfsync: not available/m);
});

test('carpctl --json stats prints the API answer unchanged', async (t) => {
  const { h, backend, carpctl } = await serve(t);
  backend.answer = { carp: { ...zeros(), preempt: 3 }, pfsync: { counters: { stale: 2 }, actMax: 17 }, sysctls: { carpLog: 1 } };
  const r = await carpctl(['--json', 'stats']);
  assert.equal(r.code, 0, r.stderr);
  const api = await h.api.get('/v1/stats');
  assert.deepEqual(JSON.parse(r.stdout), api.body);
  assert.equal(JSON.parse(r.stdout).carp.preempt, 3);
});

test('carpctl stats: a kernel failure exits 1 with the problem, extra arguments exit 2', async (t) => {
  const { backend, carpctl } = await serve(t);
  backend.failure = KernelError.of('EPROTONOSUPPORT', 'read the CARP statistics (read net.inet.carp.stats)');
  let r = await carpctl(['stats']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error 502 CARPD_ERR_KERNEL: .*kldload carp/);
  assert.match(r.stderr, /kernel: read the CARP statistics .* failed: EPROTONOSUPPORT \(43\)/);
  assert.equal(r.stdout, '');

  r = await carpctl(['stats', 'em0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /stats: unexpected argument 'em0'/);
  r = await carpctl(['stats'], 'carpd_wrong');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CARPD_ERR_UNAUTHORIZED/);
});
