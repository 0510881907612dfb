/**
 * The JSON body parser: express.json (body-parser), with a shorter way for the body nearly every
 * change sends: a JSON media type with no parameter but `charset=utf-8`, a Content-Length within
 * the limit, no Content-Encoding. Such a body is read in its chunks and parsed as body-parser
 * parses it (a UTF-8 byte order mark dropped; an empty body is `{}`). Everything else, and a
 * body that does not parse, goes to express.json itself, so that every refusal (its status, its
 * type, its message) is the one body-parser gives: a body read here that fails to parse is
 * handed to it again, from memory.
 */
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';

/** A media type (and charset) the short way takes, as sent, lower case. */
function plainJson(header: string | undefined, types: ReadonlySet<string>): boolean {
  if (header === undefined) return false;
  const h = header.toLowerCase();
  const semi = h.indexOf(';');
  if (semi < 0) return types.has(h.trim());
  return types.has(h.slice(0, semi).trim()) && /^;\s*charset="?utf-8"?\s*$/.test(h.slice(semi));
}

/** Whether a request is over before its body was read (body-parser's on-finished check): it then leaves the body alone. */
function finished(req: Request): boolean {
  const socket = req.socket as { readable?: boolean } | null;
  return Boolean((req as { upgrade?: boolean }).upgrade || !socket || !socket.readable || (req.complete && !req.readable));
}

/** An error as body-parser's (http-errors) would carry it: the status and type the problem handler reads. */
function readError(message: string, type: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { status: 400, statusCode: 400, expose: true, type, ...extra });
}

/** express.json({ limit: limitBytes, type: types }), with the short way described above. */
export function jsonBody(limitBytes: number, types: readonly string[]): RequestHandler {
  const full = express.json({ limit: limitBytes, type: [...types] });
  const accepted = new Set(types.map((t) => t.toLowerCase()));

  /** body-parser on the bytes already read: for a body that does not parse, its own refusal. */
  const again = (req: Request, res: Response, body: Buffer, next: NextFunction) => {
    // What body-parser reads of a request: headers, `complete` and a readable socket (on-finished).
    const socket = Object.assign(new EventEmitter(), { readable: true });
    const replay = Object.assign(Readable.from([body]), { headers: req.headers, method: req.method, url: req.url, complete: false, socket });
    full(replay as unknown as Request, res, (err?: unknown) => {
      if (err !== undefined) return next(err);
      req.body = (replay as unknown as Request).body;
      next();
    });
  };

  return (req: Request, res: Response, next: NextFunction): void => {
    const h = req.headers;
    const lengthText = h['content-length'];
    if (
      h['content-encoding'] !== undefined ||
      h['transfer-encoding'] !== undefined ||
      lengthText === undefined ||
      !/^[1-9][0-9]{0,9}$/.test(lengthText) ||
      Number(lengthText) > limitBytes ||
      !plainJson(h['content-type'], accepted) ||
      finished(req)
    ) {
      full(req, res, next);
      return;
    }
    if (!('body' in (req as object))) (req as Request).body = undefined;
    const expected = Number(lengthText);
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onError);
      if (err) {
        next(err);
        return;
      }
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
      if (received !== expected) {
        next(readError('request size did not match content length', 'request.size.invalid', { expected, length: expected, received }));
        return;
      }
      let text = body.toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      // JSON's whitespace, as body-parser's strict check skips it.
      const first = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d])/.exec(text)?.[1];
      if (text.length === 0) {
        req.body = {};
        next();
        return;
      }
      if (first === '{' || first === '[') {
        try {
          req.body = JSON.parse(text);
          next();
          return;
        } catch {
          // refused below, in body-parser's words
        }
      }
      again(req, res, body, next);
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      received += c.length;
    };
    const onEnd = () => finish();
    const onAborted = () => finish(readError('request aborted', 'request.aborted', { code: 'ECONNABORTED', expected, length: expected, received }));
    const onError = (e: Error) => finish(Object.assign(e, { status: 400, statusCode: 400 }));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAborted);
    req.on('error', onError);
  };
}
