/**
 * Picks the backend named on the command line. Each is imported only when chosen: a node runs
 * one backend, and the others' code (the FFI bindings, the raw-socket engine) would only take
 * memory.
 */
import type { Logger } from 'pino';
import type { BackendName, KernelBackend, MacMode } from '../kernel/backend.js';
import { DEFAULT_SIM_GROUP, UdpMulticastTransport, formatSimGroup, type SimGroup } from '../runtime/udp.js';

export class BackendUnavailableError extends Error {}

export interface BackendContext {
  /** carpd's state directory: backends that keep their own records put them there. */
  stateDir: string;
  logger: Logger;
  /** The sim backend's segment and this node's name in it (--sim-group, --node-name). */
  sim?: { group?: SimGroup; node?: string };
  /** --mac-mode: the linux and sim backends' default MAC mode (freebsd's is always virtual). */
  macMode?: MacMode;
}

export async function createBackend(name: BackendName, ctx: BackendContext): Promise<KernelBackend> {
  switch (name) {
    case 'memory': {
      const { MemoryBackend } = await import('../kernel/memory.js');
      return new MemoryBackend();
    }
    case 'freebsd':
      // libc and libnv come from CARPD_FREEBSD_LIBC / CARPD_FREEBSD_LIBNV (or the system ones).
      try {
        const { openFreebsdBackend } = await import('../kernel/freebsd/backend.js');
        return await openFreebsdBackend({ stateDir: ctx.stateDir, logger: ctx.logger });
      } catch (e) {
        throw new BackendUnavailableError(`the freebsd backend cannot start: ${(e as Error).message}`);
      }
    case 'sim': {
      const group = ctx.sim?.group ?? DEFAULT_SIM_GROUP;
      const transport = new UdpMulticastTransport(group, (e) => ctx.logger.warn({ event: 'sim.socket.error', err: e.message }, `sim socket: ${e.message}`));
      try {
        const { SimBackend } = await import('../kernel/sim.js');
        return await SimBackend.open({ transport, node: ctx.sim?.node, logger: ctx.logger, macMode: ctx.macMode });
      } catch (e) {
        throw new BackendUnavailableError(`the sim backend cannot start: ${(e as Error).message}; pick another group with --sim-group (now ${formatSimGroup(group)}) or use --backend memory`);
      }
    }
    case 'linux':
      if (process.platform !== 'linux') throw new BackendUnavailableError(`the linux backend runs on Linux only (this is ${process.platform}); use --backend sim`);
      try {
        const { LinuxBackend } = await import('../kernel/linux/backend.js');
        return await LinuxBackend.open({ logger: ctx.logger, node: ctx.sim?.node, macMode: ctx.macMode });
      } catch (e) {
        const why = (e as Error).message;
        const hint = /EPERM|EACCES/.test(why) ? ' (raw sockets and address changes need root, or CAP_NET_RAW and CAP_NET_ADMIN)' : '';
        throw new BackendUnavailableError(`the linux backend cannot start: ${why}${hint}`);
      }
  }
}
