/**
 * Bodies built, serialized and checked against the spec once per change of what they show, then
 * served as bytes with a strong ETag: a read that polls (GET /v1/status) costs authentication
 * and one write, and `If-None-Match` with the tag it already has answers 304 without a body.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FieldProblem } from '../errors.js';

export interface Prebuilt {
  readonly bytes: Buffer;
  /** A strong entity tag (RFC 9110 §8.8.3): the quoted hash of the bytes. */
  readonly etag: string;
  /** The 200 answer's header fields as a flat list, which writeHead takes without building a header object. */
  readonly headers: readonly string[];
}

/** Why a body was not served: the schema's problems with it. */
export interface Refused {
  readonly problems: FieldProblem[];
}

export function etagOfBytes(bytes: Buffer): string {
  return `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 22)}"`;
}

/**
 * The prebuilt body of each snapshot of some state. `source` is an object that stands for one
 * state and is replaced when the state changes (service.status() hands out the same object
 * until then), so each is built once; a rebuilt body with the same bytes as the last keeps its
 * tag and is not checked again.
 */
export class PrebuiltBodies<S extends object> {
  private readonly bySource = new WeakMap<S, Prebuilt | Refused>();
  private last?: Prebuilt;

  constructor(
    private readonly build: (source: S) => unknown,
    /** The response schema's check: undefined when the body matches. */
    private readonly check: (body: unknown) => FieldProblem[] | undefined,
    /** Told once per refused body (carpd logs it). */
    private readonly refused: (problems: FieldProblem[]) => void,
  ) {}

  get(source: S): Prebuilt | Refused {
    let out = this.bySource.get(source);
    if (out) return out;
    const body = this.build(source);
    const bytes = Buffer.from(JSON.stringify(body), 'utf8');
    const etag = etagOfBytes(bytes);
    if (this.last?.etag === etag) {
      out = this.last;
    } else {
      const problems = this.check(body);
      if (problems) {
        out = { problems };
        this.refused(problems);
      } else {
        out = this.last = { bytes, etag, headers: ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(bytes.length), 'ETag', etag] };
      }
    }
    this.bySource.set(source, out);
    return out;
  }
}

/**
 * Whether an If-None-Match field value names `etag`, by the weak comparison RFC 9110 §13.1.2
 * asks for (`W/"x"` matches `"x"`); `*` matches any current body. A value that is not a list of
 * entity tags matches nothing, so the full body is sent.
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const want = etag.startsWith('W/') ? etag.slice(2) : etag;
  let i = 0;
  const n = header.length;
  const skip = () => {
    while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++;
  };
  skip();
  if (header.slice(i).trim() === '*') return true;
  while (i < n) {
    if (header.startsWith('W/', i)) i += 2;
    if (header[i] !== '"') return false;
    const end = header.indexOf('"', i + 1);
    if (end < 0) return false;
    if (header.slice(i, end + 1) === want) return true;
    i = end + 1;
    skip();
  }
  return false;
}

/** Answers with the prebuilt body, or 304 when the client already holds it. */
export function sendPrebuilt(req: IncomingMessage, res: ServerResponse, body: Prebuilt): void {
  if (ifNoneMatchHits(req.headers['if-none-match'], body.etag)) {
    res.writeHead(304, ['ETag', body.etag]);
    res.end();
    return;
  }
  res.writeHead(200, body.headers as string[]);
  res.end(body.bytes);
}
