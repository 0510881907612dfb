/** Helpers every router shares: mutation options from the request, plan-or-result answers. */
import type { Request, Response } from 'express';
import type { MutationOptions, MutationOutcome } from '../../service/service.js';
import { actorOf } from '../auth.js';
import { etagOf } from '../views.js';

export function mutationOptions(req: Request): MutationOptions {
  return { actor: actorOf(req), ifMatch: req.get('if-match'), dryRun: String(req.query.dryRun) === 'true', force: String(req.query.force) === 'true' };
}

/** Answers a dry run with its plan, or a done change through `done` with the new ETag set. */
export async function answer<T>(res: Response, outcome: MutationOutcome<T>, done: (result: T) => unknown): Promise<void> {
  if (outcome.kind === 'plan') {
    res.status(200).json(outcome.plan);
    return;
  }
  res.setHeader('ETag', etagOf(outcome.state.revision));
  await done(outcome.result);
}

export function vhidParam(req: Request): { iface: string; vhid: number } {
  return { iface: String(req.params.interface), vhid: Number(req.params.vhid) };
}
