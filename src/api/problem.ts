/** Every error leaves as RFC 9457 problem+json with a stable code; this is the only mapping. */
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { CarpdError, problemOf, type ProblemBody } from '../errors.js';
import type { Assert, SameFields, Schema } from './typed.js';

// errors.ts builds the problem bodies (the sync listener sends them too): they must name the
// fields the spec gives them.
type Problem = Schema<'Problem'>;
type ProblemMatches = [
  Assert<SameFields<Problem, ProblemBody>>,
  Assert<SameFields<NonNullable<Problem['errors']>[number], NonNullable<ProblemBody['errors']>[number]>>,
  Assert<SameFields<NonNullable<Problem['kernel']>, NonNullable<ProblemBody['kernel']>>>,
];

export function sendProblem(res: Response, e: CarpdError, req?: Request): void {
  if (e.code === 'CARPD_ERR_UNAUTHORIZED') res.setHeader('WWW-Authenticate', 'Bearer realm="carpd"');
  const body: Problem = problemOf(e, req?.originalUrl);
  res.status(e.status).type('application/problem+json').json(body);
}

interface ValidatorError {
  status?: number;
  statusCode?: number;
  type?: string;
  /** zlib's code (Z_DATA_ERROR, Z_BUF_ERROR) when a compressed body does not inflate. */
  code?: string;
  message?: string;
  errors?: { path?: string; message?: string; errorCode?: string }[];
  /** express-openapi-validator puts the resource's methods here on a 405. */
  headers?: Record<string, string>;
}

/** Errors from express.json and express-openapi-validator, in carpd's terms. */
function translate(err: unknown, req: Request): CarpdError | undefined {
  if (err instanceof CarpdError) return err;
  const e = err as ValidatorError;
  if (e?.type === 'entity.parse.failed') return new CarpdError('CARPD_ERR_MALFORMED_JSON', `the body is not valid JSON: ${e.message ?? ''}`.trim());
  // A body that does not decompress is unreadable, not a schema mismatch.
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) return new CarpdError('CARPD_ERR_MALFORMED_JSON', `the body could not be decompressed (${e.message ?? e.code}); check Content-Encoding or send it uncompressed`);
  if (e?.type === 'entity.too.large') return new CarpdError('CARPD_ERR_BODY_TOO_LARGE', 'the body is larger than 64 KiB');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', `${e.message ?? 'unsupported encoding'}; send UTF-8 JSON`);
  const status = e?.status ?? e?.statusCode;
  const errors = e?.errors?.map((x) => ({ path: x.path ?? '', message: x.message ?? '', ...(x.errorCode ? { code: x.errorCode } : {}) }));
  switch (status) {
    case 400:
      return new CarpdError('CARPD_ERR_VALIDATION', `the request does not match the API schema: ${(errors ?? []).map((x) => `${x.path} ${x.message}`).join('; ') || e.message}`, { errors });
    case 404:
      return new CarpdError('CARPD_ERR_ROUTE_NOT_FOUND', 'no such resource; the API is described at /openapi.json and /docs');
    case 405:
      return new CarpdError('CARPD_ERR_METHOD_NOT_ALLOWED', `${e.message ?? 'method not allowed'}; see /docs for the methods of this resource`);
    case 413:
      return new CarpdError('CARPD_ERR_BODY_TOO_LARGE', 'the body is larger than 64 KiB');
    case 415:
      if (req.headers['content-type'] === undefined) return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', 'the request has no body or no Content-Type; send a JSON body with Content-Type: application/json');
      return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', `${e.message ?? 'unsupported media type'}; send Content-Type: application/json`);
    default:
      return undefined;
  }
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    let e = translate(err, req);
    if (!e) {
      const v = err as ValidatorError;
      if ((v?.status ?? 0) === 500 && Array.isArray(v?.errors)) {
        logger.error({ event: 'response.invalid', url: req.originalUrl, errors: v.errors }, 'a response did not match the API schema');
      } else {
        logger.error({ event: 'internal', url: req.originalUrl, err }, 'internal error');
      }
      e = new CarpdError('CARPD_ERR_INTERNAL', 'carpd failed to answer this request; the error is in its log');
    }
    if (res.headersSent) return;
    // RFC 9110 requires a 405 to name the methods the resource does allow.
    const allow = (err as ValidatorError)?.headers?.Allow;
    if (e.code === 'CARPD_ERR_METHOD_NOT_ALLOWED' && allow) res.setHeader('Allow', allow.toUpperCase());
    sendProblem(res, e, req);
  };
}
