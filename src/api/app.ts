/**
 * buildApp(deps) assembles the HTTP API; it never listens (the daemon and the tests do).
 * Order: open endpoints (health, spec, docs, the status page's files at /ui/) → authentication → JSON body → OpenAPI request
 * validation → routers → problem+json errors. Responses are validated against the spec too:
 * per request, except the status body, which is checked once per change of state. A plain
 * GET /v1/status with a valid token while the status is fresh is answered before all of this,
 * from that prebuilt body (src/api/routes/status.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { CarpdError } from '../errors.js';
import type { LoopWatch } from '../service/loop-watch.js';
import type { CarpService } from '../service/service.js';
import { authenticate, routeName, type AuthAudit } from './auth.js';
import { AuthLimiter, sourceKey } from './auth-limit.js';
import { CarpdMetrics } from './metrics.js';
import { errorHandler, sendProblem } from './problem.js';
import { carpRouter } from './routes/carp.js';
import { configRouter } from './routes/config.js';
import { pfsyncRouter } from './routes/pfsync.js';
import { statsRouter, type LogStatsSource } from './routes/stats.js';
import { STATUS_SCHEMA, StatusEndpoint, statusRouter } from './routes/status.js';
import { tokensRouter } from './routes/tokens.js';
import { hooksRouter } from './routes/hooks.js';
import { tracksRouter } from './routes/tracks.js';
import type { HookTester } from '../service/notify.js';
import { syncRouter } from './routes/sync.js';
import { vipsRouter } from './routes/vips.js';
import { EventStreams, eventsRouter, type EventStreamOptions } from './routes/events.js';
import type { SyncManager } from '../sync/manager.js';
import { Switchover } from '../sync/switchover.js';
import { switchoverRouter } from './routes/switchover.js';
import { diagnosticsRouter } from './routes/diagnostics.js';
import { dispatchRouters } from './dispatch.js';
import { jsonBody } from './json-body.js';
import { loadSpec } from './spec.js';
import { route } from './typed.js';
import { SpecValidator } from './validator.js';
import { uiRouter } from './ui.js';

export const BODY_LIMIT = '64kb';
/** BODY_LIMIT in bytes. */
export const BODY_LIMIT_BYTES = 64 * 1024;

export interface AppDeps {
  service: CarpService;
  logger: Logger;
  version: string;
  /** Host name reported in /v1/status. */
  node?: string;
  /** Validate every response against the spec (on by default); the status body is checked once per change either way. */
  validateResponses?: boolean;
  /** Config sync; without it the /v1/sync and /v1/cluster routes answer CARPD_ERR_SYNC_NOT_CONFIGURED. */
  sync?: SyncManager;
  /** Failed authentications per source (default: a limiter with AUTH_LIMIT_DEFAULTS on the system clock). */
  authLimiter?: AuthLimiter;
  /** The event streams of GET /v1/events (default: made here with `eventStreams` options). */
  streams?: EventStreams;
  eventStreams?: EventStreamOptions;
  /** Runs a hook once for POST /v1/hooks/{name}/test (the daemon's hook runner). */
  hookTester?: HookTester;
  /** One `http.request` log line (info) per request: method, route, status, ms, token name, source (default off). */
  accessLog?: boolean;
  /** carpd's log destination: `log` in GET /v1/stats (without it `log` is left out). */
  log?: LogStatsSource;
  /** GET /metrics and the HTTP request counters (default: metrics of this app's own, without process metrics). */
  metrics?: CarpdMetrics;
  /** The event loop's watch: `eventLoop` in GET /v1/stats (left out without it). */
  loop?: LoopWatch;
  /** The switchover's jobs (default: made here on `sync`; none without it). */
  switchover?: Switchover;
  /** The API's own listen address (--listen): GET /v1/cluster/diagnostics checks it is not a VIP (not-checked without it). */
  apiListen?: { host: string; port: number };
}

/**
 * Swagger UI at /docs, loaded on the first request there: its module and the page it builds
 * from the spec cost memory a firewall rarely needs.
 */
function lazyDocs(spec: Record<string, unknown>) {
  let docs: Promise<express.Router> | undefined;
  return (req: Request, res: Response, next: NextFunction): void => {
    docs ??= import('swagger-ui-express').then(({ default: swaggerUi }) => {
      const r = express.Router();
      r.use(swaggerUi.serve, swaggerUi.setup(spec, { customSiteTitle: 'carpd API' }));
      return r;
    });
    docs.then((r) => r(req, res, next), next);
  };
}

export function buildApp(deps: AppDeps): Express {
  const spec = loadSpec();
  const validator = new SpecValidator(spec);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const audit: AuthAudit = { limiter: deps.authLimiter ?? new AuthLimiter(), logger: deps.logger, events: deps.service.events, routeOf: (path) => validator.templateOf(path) };
  const streams = deps.streams ?? new EventStreams(deps.service.events, deps.eventStreams);
  const metrics =
    deps.metrics ??
    new CarpdMetrics({ service: deps.service, sync: deps.sync, version: deps.version, node: deps.node, streams: { clients: () => streams.clientCount(), dropped: () => streams.dropped() }, log: deps.log, loop: deps.loop });
  const status = new StatusEndpoint({
    service: deps.service,
    logger: deps.logger,
    version: deps.version,
    node: deps.node,
    check: (body) => validator.check(STATUS_SCHEMA, body),
    blocked: (req) => audit.limiter.blocked(sourceKey(req.socket.remoteAddress)) !== undefined,
  });

  route(app, 'get', '/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(spec);
  });
  app.use('/docs', lazyDocs(spec));
  // The status page's static files: no token (the data it asks for needs one).
  app.use('/ui', uiRouter());

  app.use(authenticate(deps.service, audit));
  app.use(jsonBody(BODY_LIMIT_BYTES, ['application/json', 'application/merge-patch+json']));
  app.use(validator.middleware({ responses: deps.validateResponses !== false, logger: deps.logger }));

  route(app, 'get', '/metrics', async (_req, res) => {
    const text = await metrics.metrics();
    // Text, not JSON: the typed response takes only the spec's JSON bodies, and the response
    // validator checks only what res.json sends.
    res.set({ 'Content-Type': metrics.contentType, 'Cache-Control': 'no-store' }).send(text as never);
  });
  // Each request goes straight to the router of the operation the validator matched (dispatch.ts).
  app.use(
    dispatchRouters([
      statusRouter(status),
      statsRouter(deps.service, audit.limiter, deps.log, deps.loop),
      vipsRouter(deps.service),
      carpRouter(deps.service),
      pfsyncRouter(deps.service),
      configRouter(deps.service),
      tokensRouter(deps.service),
      hooksRouter(deps.service, deps.hookTester),
      tracksRouter(deps.service),
      syncRouter(deps.service, deps.sync),
      eventsRouter(deps.service.events, streams),
      switchoverRouter(deps.switchover ?? (deps.sync ? new Switchover({ service: deps.service, sync: deps.sync }) : undefined)),
      diagnosticsRouter(deps.service, deps.sync, deps.apiListen),
    ]),
  );

  app.use((req, res) => sendProblem(res, new CarpdError('CARPD_ERR_ROUTE_NOT_FOUND', 'no such resource; the API is described at /openapi.json and /docs'), req));
  app.use(errorHandler(deps.logger));

  // A monitor's poll of the status is answered before Express dispatches the request at all:
  // its prototype switch, router and final handler cost as much as writing the answer. The poll
  // is authenticated with the same check; anything else (a refused token included) goes
  // through the app above, which answers it as it answers any request.
  const dispatch = (app as unknown as { handle: ExpressHandle }).handle.bind(app);
  (app as unknown as { handle: ExpressHandle }).handle = (req, res, done) => {
    if (deps.accessLog) logAccess(audit, req, res);
    metrics.track(req, res, audit.routeOf);
    if (!status.tryPoll(req, res)) dispatch(req, res, done);
  };
  return app;
}

/**
 * The access log: one line per request once it is answered (or its connection closed first),
 * with the route's template rather than its path, so that lines group by operation and carry
 * no query. The token's name, never the token.
 */
function logAccess(audit: AuthAudit, req: IncomingMessage, res: ServerResponse): void {
  const start = performance.now();
  res.once('close', () => {
    const ms = Math.round((performance.now() - start) * 100) / 100;
    const method = req.method ?? '?';
    const route = routeName(audit, req.url);
    const token = (req as IncomingMessage & { auth?: { name: string } }).auth?.name ?? null;
    const source = req.socket.remoteAddress ?? null;
    const aborted = !res.writableFinished;
    audit.logger.info(
      // `tokenName`, not `token`: the logger redacts every field named token.
      { event: 'http.request', method, route, status: res.statusCode, ms, tokenName: token, source, ...(aborted ? { aborted } : {}) },
      `${method} ${route} ${aborted ? 'aborted' : res.statusCode} ${ms} ms${token === null ? '' : ` token ${token}`} from ${source ?? 'unknown'}`,
    );
  });
}

/** Express's entry point for each request (what the app function calls). */
type ExpressHandle = (req: IncomingMessage, res: ServerResponse, done?: (err?: unknown) => void) => void;
