#!/usr/bin/env node
/**
 * carpd's composition root: flags → logger → store → backend → service → API listener, and
 * the signals: SIGHUP re-reads the bootstrap file, SIGTERM/SIGINT stop gracefully (in-flight
 * changes finish, listeners close).
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import path from 'node:path';
import type { Logger } from 'pino';
import { buildApp } from '../api/app.js';
import { loadOrCreateIdentity } from '../sync/identity.js';
import { SyncManager } from '../sync/manager.js';
import { ConfigFileError, ConfigStore } from '../config/store.js';
import { initialState } from '../config/model.js';
import { CarpService } from '../service/service.js';
import { ensureAdminToken } from './admin-token.js';
import { ApiTlsError, loadApiTls } from './api-tls.js';
import { BackendUnavailableError, createBackend } from './backends.js';
import { applyBootstrapFile, BootstrapError } from './bootstrap.js';
import { PACKAGE_ROOT, USAGE, UsageError, parseFlags, type DaemonOptions } from './flags.js';
import { createLogger } from './logger.js';

export const VERSION = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const STOP_TIMEOUT_MS = 10_000;

export async function startDaemon(opts: DaemonOptions, logger: Logger): Promise<{ server: Server; stop: () => Promise<void>; reload: () => Promise<void> }> {
  const tls = opts.apiTls ? await loadApiTls({ apiTls: opts.apiTls, stateDir: opts.stateDir, nodeName: opts.nodeName }) : undefined;
  const store = await ConfigStore.open(opts.stateDir, () => initialState(new Date()), { log: logger });
  const backend = await createBackend(opts.backend, { stateDir: opts.stateDir, logger, sim: { group: opts.simGroup, node: opts.nodeName } });
  const service = new CarpService({ store, backend, logger });
  await ensureAdminToken(service, opts.stateDir, logger);
  if (opts.configFile) {
    const r = await applyBootstrapFile(service, opts.configFile, opts.stateDir);
    logger.info({ event: 'bootstrap', file: opts.configFile, result: r }, `bootstrap file ${opts.configFile}: ${r}`);
  }
  const reconcile = await service.start();
  const identity = await loadOrCreateIdentity(opts.stateDir, opts.nodeName);
  const sync = await SyncManager.start({ service, identity, logger, node: opts.nodeName, listen: opts.syncListen });
  if (opts.syncListen) {
    logger.info({ event: 'sync.listening', address: `${opts.syncListen.host}:${sync.port}`, fingerprint: identity.fingerprint }, `config sync listening on https://${opts.syncListen.host}:${sync.port} (mutual TLS; this node's fingerprint ${identity.fingerprint})`);
  }
  const app = buildApp({ service, logger, version: VERSION, node: opts.nodeName, sync });
  const server: Server = tls ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, app) : createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listenPort, opts.listenHost, () => resolve());
  });
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
      await sync.close();
      await service.close();
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      server.closeAllConnections();
      await backend.close();
      logger.info({ event: 'stopped' }, 'stopped');
    })());
  return { server, stop, reload };
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
  const logger = createLogger(opts.logLevel);
  // The signal handlers go in before start-up: the "listening" line tells scripts that carpd
  // is up, and a SIGTERM sent as soon as it appears must stop carpd gracefully, not kill it.
  // A stop asked for during start-up is carried out once carpd is up.
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let stopAsked = false;
  const stopDaemon = (d: NonNullable<typeof daemon>) => void d.stop().then(() => logger.flush?.());
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
    daemon = await startDaemon(opts, logger);
  } catch (e) {
    const known = e instanceof ConfigFileError || e instanceof BootstrapError || e instanceof BackendUnavailableError || e instanceof ApiTlsError;
    const err = e as NodeJS.ErrnoException;
    const message = known ? e.message : err.code === 'EADDRINUSE' ? `cannot listen on ${opts.listenHost}:${opts.listenPort}: the address is in use (--listen)` : err.stack ?? String(e);
    logger.fatal({ event: 'start.failed', err: message }, `carpd cannot start: ${message}`);
    logger.flush?.();
    process.exitCode = 1;
    return;
  }
  if (stopAsked) stopDaemon(daemon);
}

await main();
