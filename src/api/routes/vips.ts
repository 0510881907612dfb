import { Router } from 'express';
import { findVip, sortVips, type VipConfig } from '../../config/model.js';
import { CarpdError } from '../../errors.js';
import type { CarpService } from '../../service/service.js';
import { vipNotFound } from '../../service/service.js';
import { createVip, deleteVip, freeVhid, patchVip, replaceVip, type VipInput } from '../../service/vips.js';
import { route, type Assert, type Body, type SameFields } from '../typed.js';
import { etagOf, liveIndex, vhidStatusView, vipView } from '../views.js';
import { answer, mutationOptions, vhidParam } from './common.js';

// Every VIP body is handed to the service as a VipInput, which must name the same fields.
type VipPath = '/v1/vips/{interface}/{vhid}';
type VipBodiesAreVipInputs = [
  Assert<SameFields<Omit<Body<'/v1/vips', 'post'>, 'interface' | 'vhid'>, VipInput>>,
  Assert<SameFields<Body<VipPath, 'put'>, VipInput>>,
  Assert<SameFields<Body<VipPath, 'patch'>, VipInput>>,
];

const location = (iface: string, vhid: number) => `/v1/vips/${encodeURIComponent(iface)}/${vhid}`;

export function vipsRouter(service: CarpService): Router {
  const r = Router();

  route(r, 'get', '/v1/vips', async (req, res) => {
    const state = service.desired();
    const iface = req.query.interface;
    const live = liveIndex(await service.liveVhids());
    res.setHeader('ETag', etagOf(state.revision));
    res.json({ revision: state.revision, items: sortVips(state.vips).filter((v) => iface === undefined || v.interface === iface).map((v) => vipView(v, live(v))) });
  });

  route(r, 'post', '/v1/vips', async (req, res) => {
    const { interface: iface, vhid, ...input } = req.body;
    const outcome = await service.mutate(mutationOptions(req), (vip: VipConfig) => `add VIP ${vip.interface} vhid ${vip.vhid}`, (draft) => createVip(draft, iface, vhid, input));
    await answer(res, outcome, async (vip) => {
      res.status(201).location(location(vip.interface, vip.vhid)).json(vipView(vip, await service.liveVhid(vip.interface, vip.vhid)));
    });
  });

  route(r, 'get', '/v1/vips/{interface}/{vhid}', async (req, res) => {
    const { interface: iface, vhid } = vhidParam(req);
    const state = service.desired();
    const vip = findVip(state, iface, vhid);
    if (!vip) throw vipNotFound(iface, vhid);
    const live = await service.liveVhid(iface, vhid);
    res.setHeader('ETag', etagOf(state.revision));
    res.json(vipView(vip, live));
  });

  route(r, 'put', '/v1/vips/{interface}/{vhid}', async (req, res) => {
    const { interface: iface, vhid } = vhidParam(req);
    const outcome = await service.mutate(mutationOptions(req), `replace VIP ${iface} vhid ${vhid}`, (draft) => replaceVip(draft, iface, vhid, req.body));
    await answer(res, outcome, async ({ vip, created }) => {
      const live = await service.liveVhid(iface, vhid);
      if (created) res.status(201).location(location(iface, vhid));
      res.json(vipView(vip, live));
    });
  });

  route(r, 'patch', '/v1/vips/{interface}/{vhid}', async (req, res) => {
    const { interface: iface, vhid } = vhidParam(req);
    const outcome = await service.mutate(mutationOptions(req), `change VIP ${iface} vhid ${vhid}`, (draft) => patchVip(draft, iface, vhid, req.body));
    await answer(res, outcome, async (vip) => {
      res.json(vipView(vip, await service.liveVhid(vip.interface, vip.vhid)));
    });
  });

  route(r, 'delete', '/v1/vips/{interface}/{vhid}', async (req, res) => {
    const { interface: iface, vhid } = vhidParam(req);
    const outcome = await service.mutate(mutationOptions(req), `remove VIP ${iface} vhid ${vhid}`, (draft) => deleteVip(draft, iface, vhid));
    await answer(res, outcome, () => res.status(204).end());
  });

  route(r, 'put', '/v1/vips/{interface}/{vhid}/state', async (req, res) => {
    const { interface: iface, vhid } = vhidParam(req);
    const state = req.body.state === 'backup' ? 'BACKUP' : 'MASTER';
    const outcome = await service.forceState(iface, vhid, state, mutationOptions(req));
    if (outcome.kind === 'plan') {
      res.json(outcome.plan);
      return;
    }
    res.json(vhidStatusView(outcome.result, (await service.liveCarp()).demotion));
  });

  route(r, 'get', '/v1/vhids/free', (req, res) => {
    const iface = req.query.interface;
    const n = freeVhid(service.desired(), iface);
    if (n === undefined) throw new CarpdError('CARPD_ERR_NO_FREE_VHID', `all 255 vhids of ${iface} are in use`);
    res.json({ interface: iface, vhid: n });
  });

  return r;
}
