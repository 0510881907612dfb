import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import { hashToken, newTokenSecret, type CarpService } from '../../service/service.js';
import { route } from '../typed.js';
import { tokenView } from '../views.js';
import { committed, mutationOptions } from './common.js';

export function tokensRouter(service: CarpService): Router {
  const r = Router();

  route(r, 'get', '/v1/tokens', (_req, res) => {
    res.json({ items: service.desired().api.tokens.map(tokenView) });
  });

  // Token changes are never dry runs: the spec offers no dryRun on them.
  route(r, 'post', '/v1/tokens', async (req, res) => {
    const { name, role } = req.body;
    const secret = newTokenSecret();
    const createdAt = new Date().toISOString();
    const outcome = await service.mutate({ ...mutationOptions(req), dryRun: false }, `add ${role} token ${name}`, (draft) => {
      if (draft.api.tokens.some((t) => t.name === name)) throw new CarpdError('CARPD_ERR_TOKEN_EXISTS', `a token named "${name}" exists; revoke it first (DELETE /v1/tokens/${name}) or pick another name`);
      draft.api.tokens.push({ name, role, sha256: hashToken(secret), createdAt });
    });
    committed(res, outcome);
    res.status(201).json({ name, role, createdAt, token: secret });
  });

  route(r, 'delete', '/v1/tokens/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate({ ...mutationOptions(req), dryRun: false }, `revoke token ${name}`, (draft) => {
      const t = draft.api.tokens.find((x) => x.name === name);
      if (!t) throw new CarpdError('CARPD_ERR_TOKEN_NOT_FOUND', `no token named "${name}"; list them with GET /v1/tokens`);
      if (t.role === 'admin' && draft.api.tokens.filter((x) => x.role === 'admin').length === 1) {
        throw new CarpdError('CARPD_ERR_LAST_ADMIN_TOKEN', `"${name}" is the last admin token; create another admin token before revoking it`);
      }
      draft.api.tokens = draft.api.tokens.filter((x) => x.name !== name);
    });
    committed(res, outcome);
    res.status(204).end();
  });

  return r;
}
