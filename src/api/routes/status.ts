/**
 * GET /v1/status, the resource monitors poll. The service assembles the status once per change
 * it knows of (or per second); its body is built, serialized and checked against the spec's
 * response schema once per such status, then served as bytes with a strong ETag (a hash of
 * them), so a poll costs authentication and one write, and 304 while the tag still matches.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { CarpdError, type FieldProblem } from '../../errors.js';
import { bearerToken } from '../auth.js';
import type { AuthContext, CarpService } from '../../service/service.js';
import { PrebuiltBodies, sendPrebuilt } from '../prebuilt.js';
import { sendProblem } from '../problem.js';
import { route, type Schema } from '../typed.js';
import { pfsyncStatusView, vhidStatusView } from '../views.js';

export type Status = Awaited<ReturnType<CarpService['status']>>;

/** The response schema GET /v1/status answers 200 with, as a JSON pointer into the spec. */
export const STATUS_SCHEMA = '#/paths/~1v1~1status/get/responses/200/content/application~1json/schema';

export function statusView(s: Status, node: string, version: string): Schema<'Status'> {
  const reconcile: Schema<'Status'>['reconcile'] = { ok: s.reconcile.ok, at: s.reconcile.at.toISOString() };
  if (s.reconcile.error !== undefined) reconcile.error = s.reconcile.error;
  return {
    node,
    version,
    revision: s.revision,
    startedAt: s.startedAt.toISOString(),
    reconcile,
    backend: s.backend,
    carp: { enabled: s.carp.allow, preempt: s.carp.preempt, maintenance: s.carp.maintenance, demotion: s.carp.demotion, temporarilyDisabled: s.carp.temporarilyDisabled, contributors: s.carp.contributors },
    vhids: s.vhids.map((v) => vhidStatusView(v, s.carp.demotion)),
    pfsync: pfsyncStatusView(s.pfsync),
    pf: s.pf ? { ...s.pf } : null,
    ...('pfError' in s ? { pfError: s.pfError } : {}),
    store: storeHealthView(s.store),
  };
}

export function storeHealthView(h: Status['store']): Schema<'StoreHealth'> {
  const e = h.lastError;
  return { writable: h.writable, lastError: h.writable || !e ? null : { errno: e.errno ?? null, path: e.path, at: e.at.toISOString(), detail: e.message } };
}

type StatusService = Pick<CarpService, 'status' | 'freshStatus' | 'authenticate'>;

export interface StatusEndpointDeps {
  service: StatusService;
  logger: Logger;
  version: string;
  node?: string;
  /** The response schema's check (SpecValidator.check on STATUS_SCHEMA). */
  check: (body: unknown) => FieldProblem[] | undefined;
  /** The body of a status; statusView unless a test hands in another. */
  view?: (s: Status, node: string, version: string) => unknown;
  /** Whether the request's source is refused (too many failed authentications): the app answers it. */
  blocked?: (req: IncomingMessage) => boolean;
}

export class StatusEndpoint {
  private readonly service: StatusService;
  private readonly bodies: PrebuiltBodies<Status>;
  private readonly blocked?: (req: IncomingMessage) => boolean;

  constructor(deps: StatusEndpointDeps) {
    this.blocked = deps.blocked;
    const node = deps.node ?? hostname();
    const view = deps.view ?? statusView;
    this.service = deps.service;
    this.bodies = new PrebuiltBodies<Status>(
      (s) => view(s, node, deps.version),
      deps.check,
      (problems) => deps.logger.error({ event: 'response.invalid', url: '/v1/status', errors: problems }, 'a response did not match the API schema'),
    );
  }

  /**
   * Whether a request can skip body parsing and request validation: a plain GET of the path,
   * with no query and no body, is a valid request of this operation whatever its headers.
   */
  static isPlainGet(req: IncomingMessage): boolean {
    return req.method === 'GET' && req.url === '/v1/status' && req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] ?? '0') === '0';
  }

  /**
   * Answers a plain GET with a valid token while the status is fresh, with no framework in
   * between; false when it did not answer (another request, no or a refused token, a status to
   * assemble, a refused body), for the app to answer as it answers any request.
   */
  tryPoll(req: IncomingMessage, res: ServerResponse): boolean {
    if (!StatusEndpoint.isPlainGet(req)) return false;
    if (this.blocked?.(req)) return false;
    const token = bearerToken(req.headers.authorization);
    const auth = token === undefined ? undefined : this.service.authenticate(token);
    if (!auth) return false;
    // For the access log, as the app's authentication records it.
    (req as IncomingMessage & { auth?: AuthContext }).auth = auth;
    const status = this.service.freshStatus();
    if (!status) return false;
    const body = this.bodies.get(status);
    if ('problems' in body) return false;
    sendPrebuilt(req, res, body);
    return true;
  }

  async serve(req: Request, res: Response): Promise<void> {
    const body = this.bodies.get(await this.service.status());
    if ('problems' in body) {
      sendProblem(res, new CarpdError('CARPD_ERR_INTERNAL', 'carpd failed to answer this request; the error is in its log'), req);
      return;
    }
    sendPrebuilt(req, res, body);
  }
}

export function statusRouter(endpoint: StatusEndpoint): Router {
  const r = Router();
  route(r, 'get', '/v1/status', (req, res) => endpoint.serve(req, res));
  return r;
}
