/** Health tracks: their configuration in the desired state (service/track-config.ts) and their live state (service.tracks, kept by src/track/). */
import { Router } from 'express';
import type { CarpService } from '../../service/service.js';
import { createTrack, deleteTrack, replaceTrack, trackNotFound, type TrackInput } from '../../service/track-config.js';
import type { TrackConfig } from '../../config/model.js';
import { route, type Assert, type Body, type SameFields } from '../typed.js';
import { etagOf, trackView } from '../views.js';
import { answer, mutationOptions } from './common.js';

// The bodies are handed to the service as its inputs, which must name the same fields.
type BodiesAreInputs = [Assert<SameFields<Omit<Body<'/v1/tracks', 'post'>, 'name'>, TrackInput>>, Assert<SameFields<Body<'/v1/tracks/{name}', 'put'>, TrackInput>>];

const trackLocation = (name: string) => `/v1/tracks/${encodeURIComponent(name)}`;

export function tracksRouter(service: CarpService): Router {
  const r = Router();
  const view = (t: TrackConfig) => trackView(t, service.tracks.get(t.name), (m) => service.tracks.wallOf(m), service.startedAt);

  route(r, 'get', '/v1/tracks', (_req, res) => {
    const s = service.desired();
    res.setHeader('ETag', etagOf(s.revision));
    res.json({ revision: s.revision, items: (s.tracks ?? []).map(view) });
  });

  route(r, 'post', '/v1/tracks', async (req, res) => {
    const { name, ...input } = req.body;
    const outcome = await service.mutate(mutationOptions(req), `add track ${name}`, (draft) => createTrack(draft, name, input));
    await answer(res, outcome, (t) => res.status(201).location(trackLocation(t.name)).json(view(t)));
  });

  route(r, 'get', '/v1/tracks/{name}', (req, res) => {
    const s = service.desired();
    const t = (s.tracks ?? []).find((x) => x.name === req.params.name);
    if (!t) throw trackNotFound(req.params.name);
    res.setHeader('ETag', etagOf(s.revision));
    res.json(view(t));
  });

  route(r, 'put', '/v1/tracks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `replace track ${name}`, (draft) => replaceTrack(draft, name, req.body));
    await answer(res, outcome, ({ track, created }) => {
      if (created) res.status(201).location(trackLocation(name));
      res.json(view(track));
    });
  });

  route(r, 'delete', '/v1/tracks/{name}', async (req, res) => {
    const name = req.params.name;
    const outcome = await service.mutate(mutationOptions(req), `remove track ${name}`, (draft) => deleteTrack(draft, name));
    await answer(res, outcome, () => res.status(204).end());
  });

  return r;
}
