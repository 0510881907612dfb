import assert from 'node:assert/strict';
import { test } from 'node:test';
import { vrrpMasterDownIntervalMs } from '../src/engine/vrrp.js';
import { MemoryBackend } from '../src/kernel/memory.js';
import { backendContract } from './contract/backend-contract.js';
import { ManualClock } from './helpers/harness.js';

backendContract('memory', async () => {
  const clock = new ManualClock();
  const backend = new MemoryBackend({ clock, interfaces: ['em0', 'em1'] });
  return {
    backend,
    elapse: async (ms) => clock.advance(ms),
    close: () => backend.close(),
  };
});

test('memory backend: a vrrpv3 vhid becomes MASTER after 3 × interval + (256 − priority) × interval/256', async (t) => {
  const clock = new ManualClock();
  const b = new MemoryBackend({ clock, interfaces: ['em0'] });
  t.after(() => b.close());
  // Priority 100, interval 100 cs: 300 + 156 × 100/256 = 360.9375 cs (RFC 5798 §6.1).
  await b.setVhid('em0', 1, { advbaseSec: 1, advskew: 0, protocol: 'vrrpv3', vrrpPriority: 100, vrrpIntervalCs: 100 });
  await b.addAddress('em0', 1, '192.0.2.1/24');
  assert.equal(vrrpMasterDownIntervalMs(100, 100), 3609.375);
  clock.advance(3609);
  assert.equal((await b.listVhids())[0].state, 'BACKUP');
  clock.advance(1);
  const [v] = await b.listVhids();
  assert.equal(v.state, 'MASTER');
  assert.match(v.reason, /3\.609 s/);

  // A changed priority re-arms a BACKUP's timer with the new skew: 3 × 50 + 56 × 50/256 cs.
  await b.setVhid('em0', 2, { advbaseSec: 1, advskew: 0, protocol: 'vrrpv3', vrrpPriority: 200, vrrpIntervalCs: 100 });
  await b.addAddress('em0', 2, '192.0.2.2/24');
  clock.advance(1000);
  await b.setVhid('em0', 2, { advbaseSec: 1, advskew: 0, protocol: 'vrrpv3', vrrpPriority: 200, vrrpIntervalCs: 50 });
  clock.advance(vrrpMasterDownIntervalMs(200, 50) - 1);
  assert.equal((await b.listVhids())[1].state, 'BACKUP');
  clock.advance(1);
  assert.equal((await b.listVhids())[1].state, 'MASTER');
});
