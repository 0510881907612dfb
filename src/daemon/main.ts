#!/usr/bin/env node
/**
 * carpd's composition root: flags → logger → store → backend → service → API listener, and
 * the signals: SIGHUP re-reads the bootstrap file, SIGTERM/SIGINT stop gracefully (in-flight
 * changes finish, listeners close).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import path from 'node:path';
import type { Logger } from 'pino';
import { buildApp } from '../api/app.js';
import { EventStreams } from '../api/routes/events.js';
import { CarpdMetrics, metricsListener } from '../api/metrics.js';
import { loadOrCreateIdentity } from '../sync/identity.js';
import { SyncManager, type HealthSources } from '../sync/manager.js';
import { ConfigFileError, ConfigStore } from '../config/store.js';
import { initialState } from '../config/model.js';
import { CarpService } from '../service/service.js';
import { LoopWatch, advertisementIntervals } from '../service/loop-watch.js';
import { HookRunner } from '../notify/hooks.js';
import { WebhookRunner } from '../notify/webhooks.js';
import { startTracks } from './tracks.js';
import type { KernelBackend } from '../kernel/backend.js';
import { ensureAdminToken } from './admin-token.js';
import { ApiTlsError, loadApiTls } from './api-tls.js';
import { BackendUnavailableError, createBackend } from './backends.js';
import { applyBootstrapFile, BootstrapError } from './bootstrap.js';
import { PACKAGE_ROOT, USAGE, UsageError, parseFlags, type DaemonOptions } from './flags.js';
import { keepListening } from './listen-guard.js';
import type { LogSink } from './log-sink.js';
import { daemonLogger } from './logger.js';

export const VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const STOP_TIMEOUT_MS = 10_000;
/** How long a stop waits for API requests still being answered before it closes their connections. */
const STOP_DRAIN_MS = 500;
/** How often demotion, maintenance and pfsync's bulk update are read for events. */
const KERNEL_WATCH_MS = 2000;
/** A failed start ends the process by this time even if something still holds it open. */
const FAILED_START_EXIT_MS = 1000;

/**
 * The sources a carpd has of itself: its health tracks (service.tracksDown) and pf's status
 * (service.pfStatus: the state count and pfsync's bulk update, done only when pfsync says so;
 * undefined where there is no pf).
 */
function serviceHealthSources(service: Pick<CarpService, 'tracksDown' | 'pfStatus'>): HealthSources {
  return {
    tracksDown: () => service.tracksDown(),
    pfStatus: async () => {
      const pf = await service.pfStatus();
      return pf ? { stateCount: pf.states, bulkUpdateDone: pf.pfsyncBulkUpdateDone === true } : undefined;
    },
  };
}

/**
 * A start-up failure that has been cleaned up: what was opened is closed again, and nothing was
 * changed in the kernel.
 */
export class StartError extends Error {}

/** The management API listener, bound before anything else is opened; requests wait until the app is ready. */
async function listenFirst(opts: DaemonOptions, tls?: { certPem: string | Buffer; keyPem: string | Buffer }): Promise<{ server: Server; serve: (app: (req: IncomingMessage, res: ServerResponse) => void) => void }> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const waiting: [IncomingMessage, ServerResponse][] = [];
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (handler) handler(req, res);
    else waiting.push([req, res]);
  };
  const server: Server = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, handle) : createServer(handle);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listenPort, opts.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    server.close();
    throw new StartError(listenError(opts.listenHost, opts.listenPort, e as NodeJS.ErrnoException));
  }
  return {
    server,
    serve: (app) => {
      handler = app;
      for (const [req, res] of waiting.splice(0)) app(req, res);
    },
  };
}

/** Why a listener could not be bound, in words, with the flag to change. */
export function listenError(host: string, port: number, e: NodeJS.ErrnoException, flag = '--listen'): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the address is in use (${flag}); another carpd, or another program, listens there`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: the address is not one of this host's (${flag})`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied (${flag}; ports below 1024 need root)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen on ${where}: the host name does not resolve (${flag})`;
    default:
      return `cannot listen on ${where} (${flag}): ${e.message}`;
  }
}

/**
 * Starts carpd. Everything that can fail without touching the kernel is done first: the state
 * dir and the stored configuration, the sync identity, the management API listener and the
 * sync listener (both bound before the backend is opened), the backend (opened, not changed),
 * and a dry run of a changed bootstrap file. Only then is the backend reconciled. A failure on the way closes whatever was opened and
 * rejects, so the process exits holding no socket, having changed nothing in the kernel.
 */
export async function startDaemon(opts: DaemonOptions, logger: Logger, logSink?: LogSink): Promise<{ server: Server; stop: () => Promise<void>; reload: () => Promise<void> }> {
  const opened: (() => unknown)[] = [];
  const undo = async () => {
    for (const close of opened.reverse()) await Promise.resolve(close()).catch(() => undefined);
  };
  let server: Server;
  let store: ConfigStore;
  let backend: KernelBackend;
  let service: CarpService;
  let sync: SyncManager;
  let reconcile: Awaited<ReturnType<CarpService['start']>>;
  let tls: Awaited<ReturnType<typeof loadApiTls>> | undefined;
  let watch: NodeJS.Timeout | undefined;
  let notify: { close(): void }[] = [];
  let streams: EventStreams | undefined;
  let metricsServer: Awaited<ReturnType<typeof metricsListener>> | undefined;
  let loopWatch: LoopWatch | undefined;
  let tracks: Awaited<ReturnType<typeof startTracks>> | undefined;
  try {
    store = await ConfigStore.open(opts.stateDir, () => initialState(new Date()), { log: logger }).catch((e: unknown) => {
      throw e instanceof ConfigFileError ? e : new StartError(stateDirError(opts.stateDir, e as NodeJS.ErrnoException));
    });
    opened.push(() => store.close());
    const identity = await loadOrCreateIdentity(opts.stateDir, opts.nodeName);
    tls = opts.apiTls ? await loadApiTls({ apiTls: opts.apiTls, stateDir: opts.stateDir, nodeName: opts.nodeName }) : undefined;
    const listener = await listenFirst(opts, tls);
    server = listener.server;
    keepListening(server, logger, '--listen');
    opened.push(() => {
      server.close();
      server.closeAllConnections();
    });
    // The sync listener too is bound before the backend is opened; its TLS handshake takes the
    // stored peer, and a message waits until the sync manager exists and is resumed.
    const syncListen = opts.syncListen;
    const bound = syncListen
      ? await SyncManager.bind({
          identity,
          listen: syncListen,
          logger,
          pinned: () => {
            const p = store.current().sync.peer;
            return p ? [p.fingerprint] : [];
          },
        }).catch((e: unknown) => {
          const err = e as NodeJS.ErrnoException;
          throw typeof err.code === 'string' ? new StartError(listenError(syncListen.host, syncListen.port, err, '--sync-listen')) : e;
        })
      : undefined;
    if (bound) {
      keepListening(bound.server.listener, logger, '--sync-listen');
      opened.push(() => bound.server.close());
    }
    // --metrics-listen: bound before the backend too; scrapes are answered 503 until carpd is up.
    const metricsListen = opts.metricsListen;
    metricsServer = metricsListen
      ? await metricsListener(metricsListen.host, metricsListen.port).catch((e: unknown) => {
          const err = e as NodeJS.ErrnoException;
          throw typeof err.code === 'string' ? new StartError(listenError(metricsListen.host, metricsListen.port, err, '--metrics-listen')) : e;
        })
      : undefined;
    const metricsHttp = metricsServer?.server;
    if (metricsHttp) {
      keepListening(metricsHttp, logger, '--metrics-listen');
      opened.push(() => {
        metricsHttp.close();
        metricsHttp.closeAllConnections();
      });
    }
    backend = await createBackend(opts.backend, { stateDir: opts.stateDir, logger, sim: { group: opts.simGroup, node: opts.nodeName }, macMode: opts.macMode });
    opened.push(() => backend.close());
    service = new CarpService({ store, backend, logger });
    // The administrative demotion adjustment (per node, in the state directory) held again.
    await service.restoreAdminDemotion();
    // Hooks and webhooks hear the events from the first (the vhid states of the start included).
    const desired = () => service.desired();
    const hookRunner = new HookRunner({ events: service.events, desired, logger, node: opts.nodeName });
    notify = [hookRunner, new WebhookRunner({ events: service.events, desired, logger, node: opts.nodeName, version: VERSION })];
    opened.push(() => notify.forEach((n) => n.close()));
    sync = await SyncManager.start({ service, identity, logger, node: opts.nodeName, bound, paused: true, health: serviceHealthSources(service) });
    opened.push(() => sync.close());
    if (opts.syncListen) {
      logger.info({ event: 'sync.listening', address: `${opts.syncListen.host}:${sync.port}`, fingerprint: identity.fingerprint }, `config sync listening on https://${opts.syncListen.host}:${sync.port} (mutual TLS; this node's fingerprint ${identity.fingerprint})`);
    }
    // A bootstrap file that would be refused is found before anything is applied.
    if (opts.configFile) await applyBootstrapFile(service, opts.configFile, opts.stateDir, { dryRun: true });
    await ensureAdminToken(service, opts.stateDir, logger);
    if (opts.configFile) {
      const r = await applyBootstrapFile(service, opts.configFile, opts.stateDir);
      logger.info({ event: 'bootstrap', file: opts.configFile, result: r }, `bootstrap file ${opts.configFile}: ${r}`);
    }
    // The event loop's delay and stalls (a stall: published as loop.stalled, logged at warn).
    const svc = service;
    const loop = new LoopWatch({ vhids: () => advertisementIntervals(svc.desired()), events: service.events, logger }).start();
    loopWatch = loop;
    opened.push(() => loop.stop());
    // The app (routes, spec, metrics) is built before the engines start: a start-up stall after
    // the first vhid is up would delay reading a live master's advertisements.
    const eventStreams = new EventStreams(service.events);
    streams = eventStreams;
    const metrics = new CarpdMetrics({
      service,
      sync,
      version: VERSION,
      node: opts.nodeName,
      processMetrics: true,
      loop,
      streams: { clients: () => eventStreams.clientCount(), dropped: () => eventStreams.dropped() },
      log: logSink,
    });
    const app = buildApp({ service, logger, version: VERSION, node: opts.nodeName, sync, accessLog: opts.accessLog, metrics, streams, hookTester: hookRunner, log: logSink, loop, apiListen: { host: opts.listenHost, port: opts.listenPort } });
    reconcile = await service.start();
    // Health tracks probe once the backend is reconciled; a track down demotes as track:<name>.
    tracks = await startTracks(service, logger);
    const startedTracks = tracks;
    opened.push(() => startedTracks.close());
    // Demotion, maintenance and pfsync's bulk update change without a callback (an interface
    // down, another program): read every KERNEL_WATCH_MS, each difference an event.
    watch = setInterval(() => void service.checkKernel(), KERNEL_WATCH_MS);
    watch.unref();
    opened.push(() => clearInterval(watch));
    listener.serve(app);
    if (metricsServer && metricsHttp) {
      metricsServer.serve(metrics);
      const a = metricsHttp.address();
      const at = typeof a === 'object' && a ? `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : String(a);
      logger.info({ event: 'metrics.listening', address: at, url: `http://${at}/metrics` }, `metrics on http://${at}/metrics (plain HTTP, no token)`);
    }
    sync.resume();
  } catch (e) {
    await undo();
    throw e;
  }
  const addr = server.address();
  const where = typeof addr === 'object' && addr ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : String(addr);
  const scheme = tls ? 'https' : 'http';
  logger.info(
    { event: 'listening', address: where, url: `${scheme}://${where}`, backend: backend.name, stateDir: opts.stateDir, revision: store.current().revision, reconciled: reconcile.ok, ...(tls ? { fingerprint: tls.fingerprint, certificate: tls.certFile } : {}) },
    `carpd ${VERSION} listening on ${scheme}://${where} (backend ${backend.name}, revision ${store.current().revision}); API docs at ${scheme}://${where}/docs` +
      (tls ? `; API certificate ${tls.certFile}, SHA-256 fingerprint ${tls.fingerprint} (carpctl --url ${scheme}://${where} --fingerprint ${tls.fingerprint})` : ''),
  );

  const reload = async () => {
    if (!opts.configFile) {
      logger.info({ event: 'reload' }, 'SIGHUP: no bootstrap file configured; reconciling the backend');
    } else {
      try {
        const r = await applyBootstrapFile(service, opts.configFile, opts.stateDir);
        logger.info({ event: 'reload', file: opts.configFile, result: r }, `SIGHUP: bootstrap file ${r}`);
      } catch (e) {
        logger.error({ event: 'reload.failed', file: opts.configFile, err: (e as Error).message }, `SIGHUP: bootstrap file refused, nothing changed: ${(e as Error).message}`);
        return;
      }
    }
    await service.reconcile();
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info({ event: 'stopping' }, 'stopping: finishing in-flight changes');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      metricsServer?.server.close();
      metricsServer?.server.closeAllConnections();
      clearInterval(watch);
      loopWatch?.stop();
      // Event streams never end by themselves: they are closed first, so the listener can drain.
      streams?.close();
      await tracks?.close();
      await sync.close();
      await service.close();
      for (const n of notify) n.close();
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, STOP_DRAIN_MS).unref())]);
      server.closeAllConnections();
      await backend.close();
      logger.info({ event: 'stopped' }, 'stopped');
    })());
  return { server, stop, reload };
}

/** Why the state dir cannot be used, in words. */
function stateDirError(dir: string, e: NodeJS.ErrnoException): string {
  const why = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'ENOTDIR' ? 'a part of the path is not a directory' : e.code === 'EROFS' ? 'the file system is read-only' : e.message;
  return `cannot use the state dir ${dir} (--state-dir): ${why}`;
}

async function main(): Promise<void> {
  let opts: DaemonOptions | 'help';
  try {
    opts = parseFlags(process.argv.slice(2), process.env);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`carpd: ${e.message}\n${USAGE}`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const { logger, sink } = daemonLogger(opts.logLevel);
  // The signal handlers go in before start-up: the "listening" line tells scripts that carpd
  // is up, and a SIGTERM sent as soon as it appears must stop carpd gracefully, not kill it.
  // A stop asked for during start-up is carried out once carpd is up.
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let stopAsked = false;
  // The log gets a short, bounded drain (LOG_FLUSH_MS): a full disk or a stalled reader of
  // stdout never holds up the stop.
  const stopDaemon = (d: NonNullable<typeof daemon>) => void d.stop().then(() => sink.end());
  process.on('SIGHUP', () => void daemon?.reload());
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      setTimeout(() => {
        logger.error({ event: 'stop.timeout' }, 'graceful stop took too long; exiting');
        process.exit(1);
      }, STOP_TIMEOUT_MS).unref();
      if (daemon) stopDaemon(daemon);
      else stopAsked = true;
    });
  }
  try {
    daemon = await startDaemon(opts, logger, sink);
  } catch (e) {
    const known = e instanceof StartError || e instanceof ConfigFileError || e instanceof BootstrapError || e instanceof BackendUnavailableError || e instanceof ApiTlsError;
    const message = known ? e.message : ((e as Error).stack ?? String(e));
    logger.fatal({ event: 'start.failed', err: message }, `carpd cannot start: ${message}`);
    process.exitCode = 1;
    // startDaemon closed what it had opened, so the process ends by itself; should anything
    // still hold it, it ends anyway, well within the time a supervisor such as daemon(8) allows.
    setTimeout(() => process.exit(1), FAILED_START_EXIT_MS).unref();
    logger.flush?.();
    return;
  }
  if (stopAsked) stopDaemon(daemon);
}

await main();
