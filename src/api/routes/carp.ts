import { Router } from 'express';
import type { CarpService } from '../../service/service.js';
import { demotionContributors } from '../../service/watch.js';
import { route, type Schema } from '../typed.js';
import { etagOf } from '../views.js';
import { answer, mutationOptions } from './common.js';

export function carpRouter(service: CarpService): Router {
  const r = Router();
  const view = async (): Promise<Schema<'Carp'>> => {
    const c = service.desired().carp;
    const live = await service.liveCarp();
    const named = service.namedDemotions();
    return { enabled: c.enabled, preempt: c.preempt, maintenance: c.maintenance, demotion: live.demotion, temporarilyDisabled: live.temporarilyDisabled, contributors: demotionContributors(live.demotion, live.maintenance, named) };
  };

  route(r, 'get', '/v1/carp', async (_req, res) => {
    res.setHeader('ETag', etagOf(service.desired().revision));
    res.json(await view());
  });

  route(r, 'patch', '/v1/carp', async (req, res) => {
    const body = req.body;
    const words = Object.entries(body).map(([k, v]) => `${k}=${v}`).join(', ');
    const outcome = await service.mutate(mutationOptions(req), `set CARP ${words}`, (draft) => {
      if (body.enabled !== undefined) draft.carp.enabled = body.enabled;
      if (body.preempt !== undefined) draft.carp.preempt = body.preempt;
    });
    await answer(res, outcome, async () => res.json(await view()));
  });

  route(r, 'put', '/v1/carp/maintenance', async (req, res) => {
    const { enabled } = req.body;
    const outcome = await service.mutate(mutationOptions(req), enabled ? 'enter maintenance mode' : 'leave maintenance mode', (draft) => {
      draft.carp.maintenance = enabled;
    });
    await answer(res, outcome, async () => res.json(await view()));
  });

  // Not stored: the ETag stays the revision in force.
  route(r, 'put', '/v1/carp/temporary-disable', async (req, res) => {
    const outcome = await service.setTemporaryDisable(req.body.disabled, mutationOptions(req));
    await answer(res, outcome, async () => res.json(await view()));
  });

  // This node's own adjustment (admin-demotion.ts): not the desired state, no revision, never synced.
  route(r, 'get', '/v1/carp/demotion/admin', async (_req, res) => {
    res.json({ value: await service.adminDemotion() });
  });

  route(r, 'put', '/v1/carp/demotion/admin', async (req, res) => {
    res.json({ value: await service.setAdminDemotion(req.body.value) });
  });

  route(r, 'delete', '/v1/carp/demotion/admin', async (_req, res) => {
    res.json({ value: await service.setAdminDemotion(0) });
  });

  return r;
}
