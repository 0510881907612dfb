/**
 * GET /v1/cluster/diagnostics (carpctl doctor): the findings of src/sync/diagnostics.ts. Reads
 * only; a read token suffices. Without config sync: CARPD_ERR_SYNC_NOT_CONFIGURED, as /v1/cluster.
 */
import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import type { CarpService } from '../../service/service.js';
import { collectDiagnostics, type Diagnostics } from '../../sync/diagnostics.js';
import type { SyncManager } from '../../sync/manager.js';
import { route, type Assert, type SameFields, type Schema } from '../typed.js';

type Shapes = [Assert<SameFields<Schema<'Diagnostics'>, Diagnostics>>];

export function diagnosticsRouter(service: CarpService, sync: SyncManager | undefined, apiListen?: { host: string; port: number }): Router {
  const r = Router();
  route(r, 'get', '/v1/cluster/diagnostics', async (_req, res) => {
    if (!sync) throw new CarpdError('CARPD_ERR_SYNC_NOT_CONFIGURED', 'config sync is not running in this carpd');
    res.json(await collectDiagnostics(service, sync, { api: apiListen ? [{ name: 'api', ...apiListen }] : undefined }));
  });
  return r;
}
