import { Router } from 'express';
import { canonicalIp } from '../../wire/address.js';
import type { PfsyncVersion } from '../../config/model.js';
import type { CarpService } from '../../service/service.js';
import { etagOf, pfsyncConfigView, pfsyncStatusView } from '../views.js';
import { answer, mutationOptions } from './common.js';

interface PfsyncBody {
  enabled: boolean;
  syncdev?: string;
  syncpeer?: string | null;
  maxupd?: number;
  defer?: boolean;
  version?: PfsyncVersion;
}

export function pfsyncRouter(service: CarpService): Router {
  const r = Router();
  const view = async () => ({ ...pfsyncConfigView(service.desired().pfsync), status: pfsyncStatusView(await service.livePfsync()) });

  r.get('/v1/pfsync', async (_req, res) => {
    res.setHeader('ETag', etagOf(service.desired().revision));
    res.json(await view());
  });

  // PUT replaces the settings: a field not given takes its default (maxupd 128, defer off, version 1400).
  r.put('/v1/pfsync', async (req, res) => {
    const b = req.body as PfsyncBody;
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
