import { hostname } from 'node:os';
import { Router } from 'express';
import type { CarpService } from '../../service/service.js';
import { pfsyncStatusView, vhidStatusView } from '../views.js';

export function statusRouter(service: CarpService, version: string, node = hostname()): Router {
  const r = Router();
  r.get('/v1/status', async (_req, res) => {
    const s = await service.status();
    const reconcile: Record<string, unknown> = { ok: s.reconcile.ok, at: s.reconcile.at.toISOString() };
    if (s.reconcile.error !== undefined) reconcile.error = s.reconcile.error;
    res.json({
      node,
      version,
      revision: s.revision,
      startedAt: s.startedAt.toISOString(),
      reconcile,
      backend: s.backend,
      carp: { enabled: s.carp.allow, preempt: s.carp.preempt, maintenance: s.carp.maintenance, demotion: s.carp.demotion },
      vhids: s.vhids.map((v) => vhidStatusView(v, s.carp.demotion)),
      pfsync: pfsyncStatusView(s.pfsync),
    });
  });
  return r;
}
