/** Picks the backend named on the command line. */
import type { BackendName, KernelBackend } from '../kernel/backend.js';
import { MemoryBackend } from '../kernel/memory.js';

export class BackendUnavailableError extends Error {}

export async function createBackend(name: BackendName): Promise<KernelBackend> {
  switch (name) {
    case 'memory':
      return new MemoryBackend();
    case 'sim':
    case 'linux':
    case 'freebsd':
      throw new BackendUnavailableError(`the ${name} backend is not part of this build yet; use --backend memory`);
  }
}
