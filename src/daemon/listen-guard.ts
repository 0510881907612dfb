/**
 * A listener that keeps listening when accepting fails. Node's net.Server emits 'error' when
 * accept(2) fails after it listens (ENOBUFS, ENOMEM, ENFILE; EMFILE when libuv's reserve
 * descriptor is gone too), and an 'error' nobody listens to ends the process: carpd would
 * stop advertising because the machine ran short for a moment. Instead each failure is logged
 * (`listen.accept.failed`, at error, at most once per ACCEPT_LOG_MS per listener, with how many
 * were not logged since) and the listener carries on; the client whose connection failed
 * retries.
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';

export const ACCEPT_LOG_MS = 10_000;

export function keepListening(server: EventEmitter, logger: Logger, listener: string, now: () => number = Date.now): void {
  let lastLog = -Infinity;
  let suppressed = 0;
  server.on('error', (e: NodeJS.ErrnoException) => {
    const t = now();
    if (t - lastLog < ACCEPT_LOG_MS) {
      suppressed++;
      return;
    }
    lastLog = t;
    const code = e.code ?? 'unknown';
    const short = code === 'EMFILE' || code === 'ENFILE' ? ': out of file descriptors' : code === 'ENOBUFS' || code === 'ENOMEM' ? ': out of memory' : '';
    logger.error(
      { event: 'listen.accept.failed', listener, code, err: e.message, suppressed },
      `cannot accept a connection on ${listener}${short} (${code}); still listening${suppressed ? ` (${suppressed} more since the last such line)` : ''}`,
    );
    suppressed = 0;
  });
}
