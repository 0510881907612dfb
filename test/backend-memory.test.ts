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
