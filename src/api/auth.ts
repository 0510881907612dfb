/** Bearer-token authentication: read tokens may only read; admin tokens may do everything. */
import type { NextFunction, Request, Response } from 'express';
import { CarpdError } from '../errors.js';
import type { AuthContext, CarpService } from '../service/service.js';
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

export function authenticate(service: CarpService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      sendProblem(res, new CarpdError('CARPD_ERR_UNAUTHORIZED', 'send Authorization: Bearer <token>; the first admin token is in <state-dir>/admin.token'), req);
      return;
    }
    const auth = service.authenticate(token);
    if (!auth) {
      sendProblem(res, new CarpdError('CARPD_ERR_UNAUTHORIZED', 'the token is not valid (revoked or mistyped); ask an admin for a token or use <state-dir>/admin.token'), req);
      return;
    }
    if (auth.role !== 'admin' && !READ_METHODS.has(req.method)) {
      sendProblem(res, new CarpdError('CARPD_ERR_FORBIDDEN', `token "${auth.name}" has the read role and may only use GET; use an admin token to make changes`), req);
      return;
    }
    req.auth = auth;
    next();
  };
}

export function actorOf(req: Pick<Request, 'auth'>): string {
  return req.auth ? `token:${req.auth.name}` : 'anonymous';
}
