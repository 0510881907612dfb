/** Hooks and webhooks in the desired state (service/notify.ts); the runners are in src/notify/. */
import { Router } from 'express';
import { CarpdError } from '../../errors.js';
import type { CarpService } from '../../service/service.js';
import { createHook, createWebhook, deleteHook, deleteWebhook, hookNotFound, replaceHook, replaceWebhook, webhookNotFound, type HookInput, type HookTester, type WebhookInput } from '../../service/notify.js';
import { route, type Assert, type Body, type SameFields } from '../typed.js';
import { etagOf, hookView, webhookView } from '../views.js';
import { answer, mutationOptions } from './common.js';

// The bodies are handed to the service as its inputs, which must name the same fields.
type BodiesAreInputs = [
  Assert<SameFields<Omit<Body<'/v1/hooks', 'post'>, 'name'>, HookInput>>,
  Assert<SameFields<Body<'/v1/hooks/{name}', 'put'>, HookInput>>,
  Assert<SameFields<Omit<Body<'/v1/webhooks', 'post'>, 'name'>, WebhookInput>>,
  Assert<SameFields<Body<'/v1/webhooks/{name}', 'put'>, WebhookInput>>,
];

const hookLocation = (name: string) => `/v1/hooks/${encodeURIComponent(name)}`;
const webhookLocation = (name: string) => `/v1/webhooks/${encodeURIComponent(name)}`;

/** `tester`: the daemon's hook runner; without it POST /v1/hooks/{name}/test answers CARPD_ERR_HOOKS_NOT_RUNNING. */
export function hooksRouter(service: CarpService, tester?: HookTester): Router {
  const r = Router();

  route(r, 'get', '/v1/hooks', (_req, res) => {
    const s = service.desired();
    res.setHeader('ETag', etagOf(s.revision));
    res.json({ revision: s.revision, items: s.hooks.map(hookView) });
  });

  route(r, 'post', '/v1/hooks', async (req, res) => {
    const { name, ...input } = req.body;
    const outcome = await service.mutate(mutationOptions(req), `add hook ${name}`, (draft) => createHook(draft, name, input));
    await answer(res, outcome, (h) => res.status(201).location(hookLocation(h.name)).json(hookView(h)));
  });

  route(r, 'get', '/v1/hooks/{name}', (req, res) => {
    const s = service.desired();
    const h = s.hooks.find((x) => x.name === req.params.name);
    if (!h) throw hookNotFound(req.params.name);
    res.setHeader('ETag', etagOf(s.revision));
    res.json(hookView(h));
  });

  route(r, 'put', '/v1/hooks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `replace hook ${name}`, (draft) => replaceHook(draft, name, req.body));
    await answer(res, outcome, ({ hook, created }) => {
      if (created) res.status(201).location(hookLocation(name));
      res.json(hookView(hook));
    });
  });

  route(r, 'delete', '/v1/hooks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `remove hook ${name}`, (draft) => deleteHook(draft, name));
    await answer(res, outcome, () => res.status(204).end());
  });

  route(r, 'post', '/v1/hooks/{name}/test', async (req, res) => {
    const name = req.params.name;
    if (!service.desired().hooks.some((h) => h.name === name)) throw hookNotFound(name);
    if (!tester) throw new CarpdError('CARPD_ERR_HOOKS_NOT_RUNNING', 'this carpd process runs no hooks (an embedded API without the hook runner)');
    res.json(await tester.test(name));
  });

  route(r, 'get', '/v1/webhooks', (_req, res) => {
    const s = service.desired();
    res.setHeader('ETag', etagOf(s.revision));
    res.json({ revision: s.revision, items: s.webhooks.map(webhookView) });
  });

  route(r, 'post', '/v1/webhooks', async (req, res) => {
    const { name, ...input } = req.body;
    const outcome = await service.mutate(mutationOptions(req), `add webhook ${name}`, (draft) => createWebhook(draft, name, input));
    await answer(res, outcome, (w) => res.status(201).location(webhookLocation(w.name)).json(webhookView(w)));
  });

  route(r, 'get', '/v1/webhooks/{name}', (req, res) => {
    const s = service.desired();
    const w = s.webhooks.find((x) => x.name === req.params.name);
    if (!w) throw webhookNotFound(req.params.name);
    res.setHeader('ETag', etagOf(s.revision));
    res.json(webhookView(w));
  });

  route(r, 'put', '/v1/webhooks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `replace webhook ${name}`, (draft) => replaceWebhook(draft, name, req.body));
    await answer(res, outcome, ({ webhook, created }) => {
      if (created) res.status(201).location(webhookLocation(name));
      res.json(webhookView(webhook));
    });
  });

  route(r, 'delete', '/v1/webhooks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `remove webhook ${name}`, (draft) => deleteWebhook(draft, name));
    await answer(res, outcome, () => res.status(204).end());
  });

  return r;
}
