/** Picks the backend named on the command line. */
import type { Logger } from 'pino';
import type { BackendName, KernelBackend } from '../kernel/backend.js';
import { openFreebsdBackend } from '../kernel/freebsd/backend.js';
import { MemoryBackend } from '../kernel/memory.js';

export class BackendUnavailableError extends Error {}

export interface BackendContext {
  /** carpd's state directory: backends that keep their own records put them there. */
  stateDir: string;
  logger: Logger;
}

export async function createBackend(name: BackendName, ctx: BackendContext): Promise<KernelBackend> {
  switch (name) {
    case 'memory':
      return new MemoryBackend();
    case 'freebsd':
      // libc and libnv come from CARPD_FREEBSD_LIBC / CARPD_FREEBSD_LIBNV (or the system ones).
      try {
        return await openFreebsdBackend({ stateDir: ctx.stateDir, logger: ctx.logger });
      } catch (e) {
        throw new BackendUnavailableError(`the freebsd backend cannot start: ${(e as Error).message}`);
      }
    case 'sim':
    case 'linux':
      throw new BackendUnavailableError(`the ${name} backend is not part of this build yet; use --backend memory`);
  }
}
