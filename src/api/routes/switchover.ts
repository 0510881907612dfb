/**
 * The orchestrated switchover (sync/switchover.ts): POST /v1/cluster/switchover starts a job,
 * GET /v1/jobs and /v1/jobs/{id} show them. Without config sync (no manager, or no peer) a
 * switchover is refused with CARPD_ERR_SWITCHOVER_STANDALONE.
 */
import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import type { Job, JobCheck, JobStep, JobVhid, SwitchoverRequest, Switchover } from '../../sync/switchover.js';
import { route, type Assert, type SameFields, type Schema } from '../typed.js';

type Shapes = [
  Assert<SameFields<Schema<'Job'>, Job>>,
  Assert<SameFields<Schema<'JobCheck'>, JobCheck>>,
  Assert<SameFields<Schema<'JobStep'>, JobStep>>,
  Assert<SameFields<Schema<'JobVhid'>, JobVhid>>,
  Assert<SameFields<Schema<'SwitchoverRequest'>, SwitchoverRequest>>,
];

const jobLocation = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;

/** `switchover`: the daemon's (one per process: it holds the jobs); undefined without config sync. */
export function switchoverRouter(switchover: Switchover | undefined): Router {
  const r = Router();
  const jobs = (): Switchover | undefined => switchover;

  route(r, 'post', '/v1/cluster/switchover', async (req, res) => {
    const s = jobs();
    if (!s) throw new CarpdError('CARPD_ERR_SWITCHOVER_STANDALONE', 'config sync is not running in this carpd: there is no peer to hand the vhids to');
    // The body is optional (the spec's requestBody is not required): none is {}.
    const body = ((req.body as unknown) ?? {}) as Schema<'SwitchoverRequest'>;
    const job = await s.start({ to: body.to, back: body.back, dryRun: body.dryRun, marginMs: body.marginMs });
    if (job.dryRun) {
      res.json(job);
      return;
    }
    if (req.query.wait === true) {
      res.json(await s.wait(job.id));
      return;
    }
    res.status(202).location(jobLocation(job.id)).json(job);
  });

  route(r, 'get', '/v1/jobs', (_req, res) => {
    res.json({ jobs: jobs()?.list() ?? [] });
  });

  route(r, 'get', '/v1/jobs/{id}', (req, res) => {
    const s = jobs();
    if (!s) throw new CarpdError('CARPD_ERR_JOB_NOT_FOUND', `no job ${req.params.id}: config sync is not running in this carpd, so it runs no switchover`);
    res.json(s.get(req.params.id));
  });

  return r;
}
