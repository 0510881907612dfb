/**
 * A carpd node with config sync in this process: its own state dir, the memory backend (em0,
 * em1) on a manual clock, the API over HTTP on a loopback port, and a SyncManager whose listener
 * is real mutual TLS on 127.0.0.1. stop() takes it all down and may be called more than once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { MemoryBackend } from '../../src/kernel/memory.js';
import { loadOrCreateIdentity } from '../../src/sync/identity.js';
import { SyncManager } from '../../src/sync/manager.js';
import { ManualClock, makeHarness } from './harness.js';

export async function startSyncNodeInProcess(name: string, dirPrefix = 'carpd-sync-node') {
  const dir = mkdtempSync(path.join(tmpdir(), `${dirPrefix}-${name}-`));
  const clock = new ManualClock();
  const h = await makeHarness({ dir, clock, backend: new MemoryBackend({ clock, interfaces: ['em0', 'em1'] }) });
  const identity = await loadOrCreateIdentity(dir, name);
  const sync = await SyncManager.start({ service: h.service, identity, logger: pino({ level: 'silent' }), node: name, listen: { host: '127.0.0.1', port: 0 }, retry: { firstMs: 20, maxMs: 200 }, timeoutMs: 2000 });
  h.attachSync(sync);
  const server = createServer((req, res) => h.app(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    server.closeAllConnections();
    server.close();
    await sync.close();
    await h.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, h, sync, identity, url, syncPort: sync.port!, stop };
}
