/** Bearer-token authentication: read tokens may only read; admin tokens may do everything. */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { sourceKey, type AuthFailure, type AuthLimiter } from './auth-limit.js';
import { CarpdError } from '../errors.js';
import type { AuthContext, CarpService } from '../service/service.js';
import type { EventBus } from '../service/events.js';
import { sendProblem } from './problem.js';

declare module 'express-serve-static-core' {
  interface Request {
    auth?: AuthContext;
  }
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

/** What authentication reports to: the limiter per source, the log, and the route a path is (for the log). */
export interface AuthAudit {
  limiter: AuthLimiter;
  logger: Logger;
  /** Where a failed authentication is published (and logged); without it, only logged. */
  events?: EventBus;
  /** The spec's path template of a request path (`/v1/vips/{interface}/{vhid}`), when it is one. */
  routeOf: (path: string) => string | undefined;
}

/** The path of a request without its query, as logs name it: its template when it is a route of the spec. */
export function routeName(audit: Pick<AuthAudit, 'routeOf'>, url: string | undefined): string {
  const path = (url ?? '').split('?')[0];
  return audit.routeOf(path) ?? (path.length > 128 ? `${path.slice(0, 128)}…` : path);
}

/**
 * Answers 429 when the request's source is blocked (limiter), with Retry-After; true when it
 * did. Runs before the token is even looked at.
 */
export function refuseBlocked(audit: AuthAudit, req: Request, res: Response): boolean {
  const retryAfterSec = audit.limiter.blocked(sourceKey(req.socket.remoteAddress));
  if (retryAfterSec === undefined) return false;
  audit.limiter.throttled();
  res.setHeader('Retry-After', String(retryAfterSec));
  sendProblem(res, new CarpdError('CARPD_ERR_TOO_MANY_FAILURES', `too many invalid tokens from this address; retry in ${retryAfterSec} s with a valid token`), req);
  return true;
}

/** Logs and counts a failed authentication; never the token presented. */
function failed(audit: AuthAudit, req: Request, why: AuthFailure): void {
  const address = req.socket.remoteAddress ?? 'unknown';
  const source = sourceKey(address);
  const route = routeName(audit, req.originalUrl);
  const { blockedForSec } = audit.limiter.fail(source, why);
  const body = { source: address, method: req.method, route, reason: why };
  const msg = `authentication failed: ${why} from ${address} (${req.method} ${route})`;
  const e = audit.events?.publish('auth.failed', body, { level: false });
  audit.logger.warn({ event: 'auth.failed', ...(e ? { eventId: e.id } : {}), ...body }, msg);
  if (blockedForSec !== undefined) {
    audit.logger.warn({ event: 'auth.blocked', source, seconds: blockedForSec }, `too many invalid tokens from ${source}: its requests are answered 429 for ${blockedForSec} s`);
  }
}

export function authenticate(service: CarpService, audit: AuthAudit) {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (refuseBlocked(audit, req, res)) return;
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      failed(audit, req, 'missing token');
      sendProblem(res, new CarpdError('CARPD_ERR_UNAUTHORIZED', 'send Authorization: Bearer <token>; the first admin token is in <state-dir>/admin.token'), req);
      return;
    }
    const auth = service.authenticate(token);
    if (!auth) {
      failed(audit, req, 'invalid token');
      sendProblem(res, new CarpdError('CARPD_ERR_UNAUTHORIZED', 'the token is not valid (revoked or mistyped); ask an admin for a token or use <state-dir>/admin.token'), req);
      return;
    }
    req.auth = auth;
    if (auth.role !== 'admin' && !READ_METHODS.has(req.method)) {
      sendProblem(res, new CarpdError('CARPD_ERR_FORBIDDEN', `token "${auth.name}" has the read role and may only use GET; use an admin token to make changes`), req);
      return;
    }
    next();
  };
}

export function actorOf(req: Pick<Request, 'auth'>): string {
  return req.auth ? `token:${req.auth.name}` : 'anonymous';
}
