/**
 * dispatchRouters (src/api/dispatch.ts): a request goes to the router that holds its operation,
 * and wherever that cannot be told for sure, through the routers in order, as if each were
 * mounted: the first one with a matching route answers.
 */
import assert from 'node:assert/strict';
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import pino from 'pino';
import { dispatchRouters } from '../src/api/dispatch.js';
import { loadSpec } from '../src/api/spec.js';
import { SpecValidator } from '../src/api/validator.js';

const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** An app as buildApp orders it: the spec validator, then the routers; a 404 and an error answer after them. */
async function serve(routers: Router[]): Promise<(path: string, method?: string) => Promise<{ status: number; body: string }>> {
  const app = express();
  app.use(new SpecValidator(loadSpec()).middleware({ responses: false, logger: pino({ level: 'silent' }) }));
  app.use(dispatchRouters(routers));
  app.use((_req: Request, res: Response) => void res.status(404).send('none'));
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => void res.status(599).send(err.message));
  const s = http.createServer(app);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return async (path, method = 'GET') => {
    const res = await fetch(base + path, { method });
    return { status: res.status, body: await res.text() };
  };
}

const answering = (name: string, method: 'get' | 'delete', ...paths: string[]) => {
  const r = Router();
  for (const p of paths) r[method](p, (_req: Request, res: Response) => void res.send(name));
  return r;
};

test('dispatch: each request reaches the router of its operation, whatever the routers before it', async () => {
  const get = await serve([answering('a', 'get', '/v1/vips'), answering('b', 'get', '/v1/vhids/free'), answering('c', 'delete', '/v1/vips/:interface/:vhid'), answering('d', 'get', '/v1/vips/:interface/:vhid')]);
  assert.deepEqual(await get('/v1/vips'), { status: 200, body: 'a' });
  assert.deepEqual(await get('/v1/vhids/free?interface=em0'), { status: 200, body: 'b' });
  assert.deepEqual(await get('/v1/vips/em0/3', 'DELETE'), { status: 200, body: 'c' });
  assert.deepEqual(await get('/v1/vips/em0/3'), { status: 200, body: 'd' });
  // Case and a trailing slash, as Express matches them.
  assert.deepEqual(await get('/V1/VIPS/'), { status: 200, body: 'a' });
  // An operation of the spec no router holds: past every router, to what follows them.
  assert.deepEqual(await get('/v1/status'), { status: 404, body: 'none' });
});

test('dispatch: the first router holding a route answers, as when mounted in order', async () => {
  const get = await serve([answering('first', 'get', '/v1/vips'), answering('second', 'get', '/v1/vips')]);
  assert.deepEqual(await get('/v1/vips'), { status: 200, body: 'first' });
});

test('dispatch: routes that can match the same path go through the routers in order', async () => {
  // `/v1/vips/em0/:vhid` (no operation of its own) also matches what `/v1/vips/{interface}/{vhid}` does.
  const get = await serve([answering('em0 only', 'get', '/v1/vips/em0/:vhid'), answering('any', 'get', '/v1/vips/:interface/:vhid')]);
  assert.deepEqual(await get('/v1/vips/em0/1'), { status: 200, body: 'em0 only' });
  assert.deepEqual(await get('/v1/vips/em1/1'), { status: 200, body: 'any' });
});

test('dispatch: a router with a middleware of its own sends every request through the routers in order', async () => {
  const guarded = Router();
  guarded.use((_req: Request, res: Response) => void res.status(403).send('guard'));
  const get = await serve([guarded, answering('a', 'get', '/v1/vips')]);
  assert.deepEqual(await get('/v1/vips'), { status: 403, body: 'guard' });
});
