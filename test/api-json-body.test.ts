/**
 * The JSON body parser's short way (src/api/json-body.ts) against express.json itself: for
 * each body, the same parsed value or the same refusal (status, type, message).
 */
import assert from 'node:assert/strict';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { BODY_LIMIT, BODY_LIMIT_BYTES } from '../src/api/app.js';
import { jsonBody } from '../src/api/json-body.js';

const TYPES = ['application/json', 'application/merge-patch+json'];

interface Outcome {
  status: number;
  body: unknown;
}

function appWith(parser: RequestHandler): express.Express {
  const app = express();
  app.use(parser);
  app.use((req: Request, res: Response) => {
    res.json({ parsed: req.body === undefined ? '(undefined)' : req.body });
  });
  app.use((err: { status?: number; type?: string; message?: string }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status ?? 500).json({ status: err.status, type: err.type, message: err.message });
  });
  return app;
}

const servers: Server[] = [];
let fast = '';
let reference = '';

before(async () => {
  const listen = async (app: express.Express) => {
    const s = http.createServer(app);
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  fast = await listen(appWith(jsonBody(BODY_LIMIT_BYTES, TYPES)));
  reference = await listen(appWith(express.json({ limit: BODY_LIMIT, type: TYPES })));
});

after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function send(base: string, body: Buffer | string, headers: Record<string, string>): Promise<Outcome> {
  const res = await fetch(`${base}/x`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers });
  return { status: res.status, body: await res.json() };
}

const JSON_TYPE = { 'content-type': 'application/json' };

const CASES: { name: string; body: Buffer | string; headers?: Record<string, string> }[] = [
  { name: 'an object', body: '{"interface":"em0","addresses":["192.0.2.50/24"],"vhid":7}' },
  { name: 'an array', body: '[1,2,{"a":null}]' },
  { name: 'leading JSON whitespace', body: ' \t\r\n{"a":1}' },
  { name: 'a UTF-8 byte order mark', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"a":"é"}')]) },
  { name: 'non-ASCII text', body: '{"description":"Zürich ✓"}' },
  { name: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) },
  { name: 'malformed JSON', body: '{"a":1,' },
  { name: 'trailing garbage', body: '{"a":1} x' },
  { name: 'a string (strict)', body: '"text"' },
  { name: 'a number (strict)', body: '42' },
  { name: 'true (strict)', body: 'true' },
  { name: 'whitespace only', body: '   ' },
  { name: 'only a byte order mark', body: Buffer.from([0xef, 0xbb, 0xbf]) },
  { name: 'a non-breaking space first', body: '\u00a0{"a":1}' },
  { name: 'merge-patch', body: '{"advskew":5}', headers: { 'content-type': 'application/merge-patch+json' } },
  { name: 'charset=utf-8', body: '{"a":1}', headers: { 'content-type': 'application/json; charset=utf-8' } },
  { name: 'charset="UTF-8"', body: '{"a":1}', headers: { 'content-type': 'Application/JSON; charset="UTF-8"' } },
  { name: 'charset=latin1 (refused)', body: '{"a":1}', headers: { 'content-type': 'application/json; charset=latin1' } },
  { name: 'another media type (not parsed)', body: '{"a":1}', headers: { 'content-type': 'text/plain' } },
  { name: 'no content type', body: '{"a":1}', headers: { 'content-type': '' } },
  { name: 'a body over the limit', body: `{"a":"${'x'.repeat(BODY_LIMIT_BYTES)}"}` },
  { name: 'a body at the limit', body: `{"a":"${'x'.repeat(BODY_LIMIT_BYTES - 8)}"}` },
];

for (const c of CASES) {
  test(`json body: ${c.name} is answered as express.json answers it`, async () => {
    const headers = { ...JSON_TYPE, ...c.headers };
    const [got, want] = await Promise.all([send(fast, c.body, headers), send(reference, c.body, headers)]);
    assert.deepEqual(got, want);
  });
}

test('json body: a request that ends before its Content-Length is refused 400, as by express.json', async () => {
  const outcome = (base: string) =>
    new Promise<number | 'closed'>((resolve) => {
      const u = new URL(base);
      const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/x', headers: { ...JSON_TYPE, 'content-length': '100' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve('closed'));
      req.write('{"a":');
      // The rest never comes: the connection is cut half-way.
      setImmediate(() => req.destroy());
    });
  const [got, want] = await Promise.all([outcome(fast), outcome(reference)]);
  assert.equal(got, want);
});
