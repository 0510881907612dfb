/**
 * An in-process carpd for tests: a temporary state dir, the memory backend on a manual clock,
 * the service, the Express app (never listening), an admin and a read token, and a supertest
 * agent whose every response is checked against the spec.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import request from 'supertest';
import type { Express } from 'express';
import { buildApp } from '../../src/api/app.js';
import { initialState } from '../../src/config/model.js';
import { ConfigStore, type StoreOptions } from '../../src/config/store.js';
import type { KernelBackend } from '../../src/kernel/backend.js';
import { MemoryBackend } from '../../src/kernel/memory.js';
import { CarpService, hashToken } from '../../src/service/service.js';
import type { SyncManager } from '../../src/sync/manager.js';
import { ManualClock } from './manual-clock.js';
import { assertMatchesSpec } from './spec.js';

export { ManualClock };

export const ADMIN_TOKEN = 'carpd_test_admin_token_0123456789';
export const READ_TOKEN = 'carpd_test_read_token_0123456789';

export interface Harness {
  dir: string;
  clock: ManualClock;
  backend: KernelBackend;
  service: CarpService;
  store: ConfigStore;
  app: Express;
  /** supertest helpers with auth; every response is checked against the spec. */
  api: ReturnType<typeof makeApi>;
  /** Rebuilds app and api with config sync behind /v1/sync and /v1/cluster. */
  attachSync(sync: SyncManager): void;
  close(): Promise<void>;
}

/**
 * `dir` reopens an existing state dir (a restart); the harness then leaves the dir in place on
 * close, for its creator to remove.
 */
export async function makeHarness(opts: { backend?: KernelBackend; interfaces?: string[]; clock?: ManualClock; dir?: string; storeOptions?: StoreOptions } = {}): Promise<Harness> {
  const ownsDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'carpd-test-'));
  const clock = opts.clock ?? new ManualClock();
  const backend = opts.backend ?? new MemoryBackend({ clock, interfaces: opts.interfaces ?? ['em0', 'em1', 'vlan10', 'igb0.20'] });
  const created = new Date(clock.wall()).toISOString();
  const store = await ConfigStore.open(dir, () => {
    const s = initialState(new Date(clock.wall()));
    s.api.tokens.push({ name: 'admin', role: 'admin', sha256: hashToken(ADMIN_TOKEN), createdAt: created });
    s.api.tokens.push({ name: 'reader', role: 'read', sha256: hashToken(READ_TOKEN), createdAt: created });
    return s;
  }, opts.storeOptions);
  const logger = pino({ level: 'silent' });
  const service = new CarpService({ store, backend, logger, now: () => new Date(clock.wall()) });
  await service.start();
  const app = buildApp({ service, logger, version: '0.0.0-test', node: 'test-node' });
  const h: Harness = {
    dir,
    clock,
    backend,
    service,
    store,
    app,
    api: makeApi(app),
    attachSync(sync) {
      h.app = buildApp({ service, logger, version: '0.0.0-test', node: 'test-node', sync });
      h.api = makeApi(h.app);
    },
    async close() {
      await service.close();
      await backend.close();
      if (ownsDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

function makeApi(app: Express) {
  const call = async (method: Method, url: string, opts: { body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string; contentType?: string } = {}) => {
    let req = request(app)[method](url);
    const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
    if (token !== null) req = req.set('Authorization', `Bearer ${token}`);
    for (const [k, v] of Object.entries(opts.headers ?? {})) req = req.set(k, v);
    if (opts.raw !== undefined) req = req.set('Content-Type', opts.contentType ?? 'application/json').send(opts.raw);
    else if (opts.body !== undefined) req = req.set('Content-Type', opts.contentType ?? 'application/json').send(JSON.stringify(opts.body));
    const res = await req;
    assertMatchesSpec(method, url, res);
    return res;
  };
  return {
    call,
    get: (url: string, o?: Parameters<typeof call>[2]) => call('get', url, o),
    post: (url: string, body?: unknown, o?: Parameters<typeof call>[2]) => call('post', url, { ...o, body }),
    put: (url: string, body?: unknown, o?: Parameters<typeof call>[2]) => call('put', url, { ...o, body }),
    patch: (url: string, body?: unknown, o?: Parameters<typeof call>[2]) => call('patch', url, { ...o, body }),
    delete: (url: string, o?: Parameters<typeof call>[2]) => call('delete', url, o),
  };
}

/** The stored desired state's bytes: config.json and every file of revisions/ (the journal), for checking that a refused change wrote nothing. */
export function storedBytes(dir: string): Buffer {
  const revisions = path.join(dir, 'revisions');
  return Buffer.concat([readFileSync(path.join(dir, 'config.json')), ...readdirSync(revisions).sort().map((n) => readFileSync(path.join(revisions, n)))]);
}
