/**
 * Config sync and the cluster view: GET/PATCH /v1/sync, GET /v1/sync/plan, POST /v1/sync/run,
 * GET /v1/cluster. The sync section of the desired state is changed through the same
 * serialized mutate path as everything else (revisioned, If-Match, dryRun); the live part
 * (last attempt, lag, errors) comes from the SyncManager.
 */
import { Router } from 'express';
import { SYNC_DEFAULT_PORT, type SyncConfig } from '../../config/model.js';
import { CarpdError } from '../../errors.js';
import type { CarpService } from '../../service/service.js';
import { parseFingerprint } from '../../sync/identity.js';
import type { NodeReport, PfReportStatus, SyncManager } from '../../sync/manager.js';
import { route, type Assert, type SameFields, type Schema } from '../typed.js';
import { etagOf } from '../views.js';
import { answer, mutationOptions } from './common.js';

// Overrides go into the desired state as the spec gives them and come back out the same way;
// a node of /v1/cluster is a NodeReport with what this node knows of reaching it.
type ClusterNode = Schema<'ClusterNode'>;
type SyncShapes = [
  Assert<SameFields<Schema<'SyncOverride'>, SyncConfig['overrides'][number]>>,
  Assert<SameFields<Omit<ClusterNode, 'self' | 'reachable' | 'error' | 'pf'>, NodeReport>>,
  Assert<SameFields<NonNullable<ClusterNode['pf']>, PfReportStatus>>,
  Assert<SameFields<NonNullable<ClusterNode['carp']>, NodeReport['carp']>>,
  Assert<SameFields<NonNullable<ClusterNode['pfsync']>, NodeReport['pfsync']>>,
  Assert<SameFields<NonNullable<ClusterNode['vhids']>[number], NodeReport['vhids'][number]>>,
];

export function syncRouter(service: CarpService, sync: SyncManager | undefined): Router {
  const r = Router();
  const manager = (): SyncManager => {
    if (!sync) throw new CarpdError('CARPD_ERR_SYNC_NOT_CONFIGURED', 'config sync is not running in this carpd');
    return sync;
  };

  route(r, 'get', '/v1/sync', (_req, res) => {
    res.setHeader('ETag', etagOf(service.desired().revision));
    res.json(manager().status());
  });

  route(r, 'patch', '/v1/sync', async (req, res) => {
    const m = manager();
    const body = req.body;
    let fingerprint: string | undefined;
    if (body.peer) {
      fingerprint = parseFingerprint(body.peer.fingerprint);
      if (!fingerprint) {
        throw new CarpdError('CARPD_ERR_INVALID_VALUE', 'peer.fingerprint is not a SHA-256 certificate fingerprint', {
          errors: [{ path: '/peer/fingerprint', message: 'give the 32 hex pairs carpctl sync identity prints on the peer (colons and a sha256: prefix are accepted)' }],
        });
      }
    }
    if (body.splitBrainPolicy !== undefined) await m.checkPolicy(body.splitBrainPolicy);
    const words = Object.keys(body).join(', ');
    const outcome = await service.mutate(mutationOptions(req), `set sync ${words}`, (draft) => {
      const y = draft.sync;
      const before = JSON.stringify({ role: y.role, peer: y.peer });
      if (body.role !== undefined) y.role = body.role;
      if (body.peer === null) delete y.peer;
      else if (body.peer) y.peer = { address: body.peer.address, port: body.peer.port ?? SYNC_DEFAULT_PORT, fingerprint: fingerprint! };
      if (body.advskewRule) y.advskewRule = { add: body.advskewRule.add ?? y.advskewRule.add, cap: body.advskewRule.cap ?? y.advskewRule.cap };
      if (body.overrides) y.overrides = body.overrides.map((o) => ({ ...o }));
      if (body.localAddresses) y.localAddresses = [...body.localAddresses];
      // Node-local like the rest of this section; absent means alert.
      if (body.splitBrainPolicy === 'alert') delete y.splitBrainPolicy;
      else if (body.splitBrainPolicy !== undefined) y.splitBrainPolicy = body.splitBrainPolicy;
      if (body.reattach) {
        y.detached = { vips: y.detached.vips.filter((k) => !body.reattach!.includes(k)), carp: y.detached.carp && !body.reattach.includes('carp') };
      }
      // Another peer or role starts over: the next snapshot from the (new) primary is taken whatever its revision.
      if (JSON.stringify({ role: y.role, peer: y.peer }) !== before) y.appliedRevision = 0;
    });
    await answer(res, outcome, () => {
      m.schedule();
      res.json(m.status());
    });
  });

  route(r, 'get', '/v1/sync/plan', async (_req, res) => {
    res.json(await manager().plan());
  });

  route(r, 'post', '/v1/sync/run', async (_req, res) => {
    const out = await manager().run();
    // Not reached: 502. Reached but refused (an older revision, a snapshot that cannot be applied there): 200 with ok false and why.
    if (!out.reached) throw new CarpdError('CARPD_ERR_SYNC_PEER_UNREACHABLE', out.detail);
    res.json({ ...out, sync: manager().status() });
  });

  route(r, 'get', '/v1/cluster', async (_req, res) => {
    res.json(await manager().cluster());
  });

  return r;
}
