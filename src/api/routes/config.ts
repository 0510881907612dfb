import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import type { DeclaredConfig, DeclaredVip } from '../../service/apply.js';
import type { CarpService } from '../../service/service.js';
import { ifNoneMatchHits } from '../prebuilt.js';
import { route, type Assert, type Body, type SameFields, type Schema } from '../typed.js';
import { configView, etagOf } from '../views.js';
import { answer, mutationOptions } from './common.js';

// The declared document crosses whole into the service: the spec and the service name the same fields.
type DeclaredMatches = [Assert<SameFields<Body<'/v1/config', 'put'>, DeclaredConfig>>, Assert<SameFields<Schema<'DeclaredVip'>, DeclaredVip>>];

export function configRouter(service: CarpService): Router {
  const r = Router();

  route(r, 'get', '/v1/config', (req, res) => {
    const s = service.desired();
    const etag = etagOf(s.revision);
    res.setHeader('ETag', etag);
    // The revision names the whole document, so a client holding it needs no body.
    if (ifNoneMatchHits(req.get('if-none-match'), etag)) {
      res.status(304).end();
      return;
    }
    res.json(configView(s));
  });

  // One revision for the whole document; the same document again answers 200 with the same ETag.
  route(r, 'put', '/v1/config', async (req, res) => {
    const outcome = await service.applyDocument(mutationOptions(req), req.body);
    await answer(res, outcome, () => res.json(configView(outcome.kind === 'done' ? outcome.state : service.desired())));
  });

  route(r, 'get', '/v1/config/revisions', (_req, res) => {
    res.json({ current: service.desired().revision, items: service.revisions() });
  });

  route(r, 'post', '/v1/config/rollback', async (req, res) => {
    const { revision } = req.body;
    const old = await service.store.loadRevision(revision);
    if (!old) {
      const kept = service.revisions().map((m) => m.revision);
      throw new CarpdError('CARPD_ERR_REVISION_NOT_FOUND', `revision ${revision} is not stored (kept: ${kept.length ? `${kept[kept.length - 1]}..${kept[0]}` : 'none'}); list them with GET /v1/config/revisions`);
    }
    const outcome = await service.mutate(mutationOptions(req), `roll back to revision ${revision}`, (draft) => {
      // Tokens stay as they are: a rollback must not revive a revoked token.
      draft.vips = old.vips;
      draft.carp = old.carp;
      draft.pfsync = old.pfsync;
      draft.hooks = old.hooks;
      draft.webhooks = old.webhooks;
      draft.tracks = old.tracks ?? [];
    });
    await answer(res, outcome, () => res.json(configView(outcome.kind === 'done' ? outcome.state : service.desired())));
  });

  return r;
}
