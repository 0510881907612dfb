/**
 * Starts the health tracks' runner (src/track/) with this platform's pinger: raw ICMP sockets
 * through koffi (kernel/linux/ping.ts, kernel/freebsd/ping.ts), loaded only when a ping track
 * probes; elsewhere none, and ping tracks fail saying so.
 */
import type { Logger } from 'pino';
import { systemClock } from '../clock.js';
import type { CarpService } from '../service/service.js';
import type { Pinger } from '../track/probes.js';
import { TrackRunner } from '../track/runner.js';

/** A pinger opened on first use, so that a node without ping tracks never opens a raw socket. */
function lazyPinger(logger: Logger): Pinger | undefined {
  const open: (() => Promise<Pinger>) | undefined =
    process.platform === 'linux'
      ? () => import('../kernel/linux/ping.js').then(({ LinuxPinger }) => new LinuxPinger())
      : process.platform === 'freebsd'
        ? () => import('../kernel/freebsd/ping.js').then(({ FreebsdPinger }) => new FreebsdPinger())
        : undefined;
  if (!open) return undefined;
  let real: Promise<Pinger> | undefined;
  let opened: Pinger | undefined;
  return {
    async ping(target, timeoutMs, signal) {
      real ??= open().then((p) => (opened = p));
      try {
        return await (await real).ping(target, timeoutMs, signal);
      } catch (e) {
        logger.warn({ event: 'track.ping.unavailable', err: (e as Error).message }, `ping tracks cannot run: ${(e as Error).message}`);
        real = undefined;
        return { ok: false, ms: 0, detail: `cannot ping: ${(e as Error).message}` };
      }
    },
    close() {
      opened?.close();
    },
  };
}

export async function startTracks(service: CarpService, logger: Logger): Promise<{ runner: TrackRunner; close(): Promise<void> }> {
  const pinger = lazyPinger(logger);
  const runner = new TrackRunner({ service, clock: systemClock, logger, pinger });
  await runner.start();
  return {
    runner,
    async close() {
      await runner.close();
      pinger?.close();
    },
  };
}
