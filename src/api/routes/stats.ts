import { Router } from 'express';
import type { KernelStats } from '../../service/live.js';
import type { LoopWatch } from '../../service/loop-watch.js';
import type { CarpService } from '../../service/service.js';
import type { AuthLimiter } from '../auth-limit.js';
import { route, type Assert, type SameFields, type Schema } from '../typed.js';

// The backend's tunables are answered as they come, so they must be the ones the spec names.
type SysctlsMatch = Assert<SameFields<Schema<'StatsSysctls'>, KernelStats['sysctls']>>;

/** Only the tunables the backend reported: an unknown one is left out, never shown as 0. */
function sysctlsView(s: KernelStats['sysctls']): Schema<'StatsSysctls'> {
  const out: Schema<'StatsSysctls'> = { ...s };
  for (const k of Object.keys(out)) if (Reflect.get(out, k) === undefined) Reflect.deleteProperty(out, k);
  return out;
}

/** Where carpd's log lines go (the daemon's log sink): its counters. */
export interface LogStatsSource {
  stats(): Schema<'LogStats'>;
}

/** `log`: the daemon's log sink (`log`), `loop`: the event loop's watch (`eventLoop`); each left out without it. */
export function statsRouter(service: CarpService, limiter: AuthLimiter, log?: LogStatsSource, loop?: LoopWatch): Router {
  const r = Router();
  route(r, 'get', '/v1/stats', async (_req, res) => {
    const s = await service.stats();
    const pfsync: Schema<'Stats'>['pfsync'] = s.pfsync && { counters: s.pfsync.counters, actMax: s.pfsync.actMax };
    res.json({
      backend: service.backend.name,
      carp: s.carp,
      ...(pfsync && { pfsync }),
      sysctls: sysctlsView(s.sysctls),
      api: limiter.stats(),
      ...(log && { log: log.stats() }),
      ...(loop && { eventLoop: loop.stats() }),
    });
  });
  return r;
}
