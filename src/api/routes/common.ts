/** Helpers every router shares: mutation options from the request, plan-or-result answers. */
import type { Request, Response } from 'express';
import type { MutationOptions, MutationOutcome } from '../../service/service.js';
import { actorOf } from '../auth.js';
import type { Params, Query, RawParams, Schema } from '../typed.js';
import { etagOf } from '../views.js';

/** The parameters of a change (dryRun, force), as the spec names them; an operation may offer fewer. */
type MutationQuery = Query<'/v1/vips', 'post'>;

/**
 * The options of a change from its request. The operation's query may name no parameter other
 * than dryRun and force: one renamed in the spec would otherwise be ignored here.
 */
export function mutationOptions<Q extends object>(req: Pick<Request, 'auth' | 'get'> & { query: Q & Record<Exclude<keyof Q, keyof MutationQuery>, never> }): MutationOptions {
  const query: MutationQuery = req.query;
  return { actor: actorOf(req), ifMatch: req.get('if-match'), dryRun: query.dryRun === true, force: query.force === true };
}

/** Answers a dry run with its plan, or a done change through `done` with the new ETag set. */
export async function answer<T>(res: Response<Schema<'Plan'>>, outcome: MutationOutcome<T>, done: (result: T) => unknown): Promise<void> {
  if (outcome.kind === 'plan') {
    res.status(200).json(outcome.plan);
    return;
  }
  res.setHeader('ETag', etagOf(outcome.state.revision));
  await done(outcome.result);
}

/**
 * Sets the ETag of a change made without dryRun, whose outcome is therefore done. A plan here
 * would be a bug: the operation has no response for it.
 */
export function committed<T>(res: Response, outcome: MutationOutcome<T>): T {
  if (outcome.kind === 'plan') throw new Error('a change made without dryRun returned a plan');
  res.setHeader('ETag', etagOf(outcome.state.revision));
  return outcome.result;
}

type VhidPath = '/v1/vips/{interface}/{vhid}';

/** The vhid a path names; the router hands path parameters over as strings. */
export function vhidParam(req: { params: RawParams<VhidPath, 'get'> }): Params<VhidPath, 'get'> {
  return { interface: req.params.interface, vhid: Number(req.params.vhid) };
}
