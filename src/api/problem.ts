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
  Assert<SameFields<NonNullable<Problem['store']>, NonNullable<ProblemBody['store']>>>,
];

export function sendProblem(res: Response, e: CarpdError, req?: Request): void {
  if (e.code === 'CARPD_ERR_UNAUTHORIZED') res.setHeader('WWW-Authenticate', 'Bearer realm="carpd"');
  if (e.retryAfterSec !== undefined) res.setHeader('Retry-After', String(e.retryAfterSec));
  const body: Problem = problemOf(e, req?.originalUrl);
  res.status(e.status).type('application/problem+json').json(body);
}

/** What an error thrown by express.json (body-parser's http-errors) or by zlib carries. */
interface HttpError {
  status?: number;
  statusCode?: number;
  type?: string;
  /** zlib's code (Z_DATA_ERROR, Z_BUF_ERROR) when a compressed body does not inflate. */
  code?: string;
  message?: string;
}

/** Errors from express.json, in carpd's terms (the spec validator throws CarpdErrors itself). */
function translate(err: unknown): CarpdError | undefined {
  if (err instanceof CarpdError) return err;
  const e = err as HttpError;
  if (e?.type === 'entity.parse.failed') return new CarpdError('CARPD_ERR_MALFORMED_JSON', `the body is not valid JSON: ${e.message ?? ''}`.trim());
  // A body that does not decompress is unreadable, not a schema mismatch.
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) return new CarpdError('CARPD_ERR_MALFORMED_JSON', `the body could not be decompressed (${e.message ?? e.code}); check Content-Encoding or send it uncompressed`);
  if (e?.type === 'entity.too.large') return new CarpdError('CARPD_ERR_BODY_TOO_LARGE', 'the body is larger than 64 KiB');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', `${e.message ?? 'unsupported encoding'}; send UTF-8 JSON`);
  switch (e?.status ?? e?.statusCode) {
    case 400:
      return new CarpdError('CARPD_ERR_VALIDATION', `the request could not be read: ${e.message ?? 'bad request'}`);
    case 413:
      return new CarpdError('CARPD_ERR_BODY_TOO_LARGE', 'the body is larger than 64 KiB');
    case 415:
      return new CarpdError('CARPD_ERR_UNSUPPORTED_MEDIA_TYPE', `${e.message ?? 'unsupported media type'}; send Content-Type: application/json`);
    default:
      return undefined;
  }
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    let e = translate(err);
    if (!e) {
      logger.error({ event: 'internal', url: req.originalUrl, err }, 'internal error');
      e = new CarpdError('CARPD_ERR_INTERNAL', 'carpd failed to answer this request; the error is in its log');
    }
    if (res.headersSent) return;
    sendProblem(res, e, req);
  };
}
