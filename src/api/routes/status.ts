import { hostname } from 'node:os';
import { Router } from 'express';
import type { CarpService } from '../../service/service.js';
import { route, type Schema } from '../typed.js';
import { pfsyncStatusView, vhidStatusView } from '../views.js';

type Status = Awaited<ReturnType<CarpService['status']>>;

export function statusRouter(service: CarpService, version: string, node = hostname()): Router {
  const r = Router();
  // The service hands out the same status object until something changes; so is its view.
  const views = new WeakMap<Status, Schema<'Status'>>();
  const view = (s: Status): Schema<'Status'> => {
    const reconcile: Schema<'Status'>['reconcile'] = { ok: s.reconcile.ok, at: s.reconcile.at.toISOString() };
    if (s.reconcile.error !== undefined) reconcile.error = s.reconcile.error;
    return {
      node,
      version,
      revision: s.revision,
      startedAt: s.startedAt.toISOString(),
      reconcile,
      backend: s.backend,
      carp: { enabled: s.carp.allow, preempt: s.carp.preempt, maintenance: s.carp.maintenance, demotion: s.carp.demotion },
      vhids: s.vhids.map((v) => vhidStatusView(v, s.carp.demotion)),
      pfsync: pfsyncStatusView(s.pfsync),
    };
  };
  route(r, 'get', '/v1/status', async (_req, res) => {
    const s = await service.status();
    let body = views.get(s);
    if (body === undefined) views.set(s, (body = view(s)));
    res.json(body);
  });
  return r;
}
