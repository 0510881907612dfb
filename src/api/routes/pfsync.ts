import { Router } from 'express';
import { canonicalIp } from '../../wire/address.js';
import type { CarpService } from '../../service/service.js';
import { route, type Schema } from '../typed.js';
import { etagOf, pfsyncConfigView, pfsyncStatusView } from '../views.js';
import { answer, mutationOptions } from './common.js';

export function pfsyncRouter(service: CarpService): Router {
  const r = Router();
  const view = async (): Promise<Schema<'PfsyncView'>> => ({ ...pfsyncConfigView(service.desired().pfsync), status: pfsyncStatusView(await service.livePfsync()) });

  route(r, 'get', '/v1/pfsync', async (_req, res) => {
    res.setHeader('ETag', etagOf(service.desired().revision));
    res.json(await view());
  });

  // PUT replaces the settings: a field not given takes its default (maxupd 128, defer off, version 1400).
  route(r, 'put', '/v1/pfsync', async (req, res) => {
    const b = req.body;
    const outcome = await service.mutate(mutationOptions(req), b.enabled ? `configure pfsync on ${b.syncdev ?? '(no syncdev)'}` : 'turn pfsync off', (draft) => {
      draft.pfsync = {
        enabled: b.enabled,
        maxupd: b.maxupd ?? 128,
        defer: b.defer ?? false,
        version: b.version ?? 1400,
      };
      if (b.syncdev !== undefined) draft.pfsync.syncdev = b.syncdev;
      if (b.syncpeer != null) draft.pfsync.syncpeer = canonicalIp(b.syncpeer)?.address ?? b.syncpeer;
    });
    await answer(res, outcome, async () => res.json(await view()));
  });

  return r;
}
