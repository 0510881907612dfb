import { Router } from 'express';
import type { KernelStats } from '../../service/live.js';
import type { CarpService } from '../../service/service.js';

/** Only the tunables the backend reported: an unknown one is left out, never shown as 0. */
function sysctlsView(s: KernelStats['sysctls']) {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
}

export function statsRouter(service: CarpService): Router {
  const r = Router();
  r.get('/v1/stats', async (_req, res) => {
    const s = await service.stats();
    const body: Record<string, unknown> = { backend: service.backend.name, carp: s.carp };
    if (s.pfsync) body.pfsync = { counters: s.pfsync.counters, actMax: s.pfsync.actMax };
    body.sysctls = sysctlsView(s.sysctls);
    res.json(body);
  });
  return r;
}
