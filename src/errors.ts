/**
 * The one registry of carpd's stable error codes. Every code is mapped to its HTTP status
 * here and nowhere else, and every code is listed in openapi/carpd.yaml (ErrorCode), which a
 * test checks.
 */
export const ERROR_CODES = {
  CARPD_ERR_VALIDATION: { status: 400, title: 'The request does not match the API schema' },
  CARPD_ERR_MALFORMED_JSON: { status: 400, title: 'The request body is not valid JSON' },
  CARPD_ERR_BODY_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  CARPD_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported content type' },
  CARPD_ERR_UNAUTHORIZED: { status: 401, title: 'Missing or invalid token' },
  CARPD_ERR_FORBIDDEN: { status: 403, title: 'The token may not do this' },
  CARPD_ERR_ROUTE_NOT_FOUND: { status: 404, title: 'No such resource' },
  CARPD_ERR_METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed on this resource' },
  CARPD_ERR_PRECONDITION_FAILED: { status: 412, title: 'The desired state has changed since the given revision' },
  CARPD_ERR_VIP_NOT_FOUND: { status: 404, title: 'No such VIP' },
  CARPD_ERR_VHID_EXISTS: { status: 409, title: 'The vhid is already used on this interface' },
  CARPD_ERR_NO_FREE_VHID: { status: 409, title: 'Every vhid of the interface is in use' },
  CARPD_ERR_ADDRESS_IN_USE: { status: 409, title: 'The address already belongs to another vhid' },
  CARPD_ERR_ADDRESS_DUPLICATE: { status: 422, title: 'The same address is listed twice' },
  CARPD_ERR_INVALID_ADDRESS: { status: 422, title: 'Not a valid address' },
  CARPD_ERR_PEER_REQUIRED: { status: 422, title: 'Unicast mode needs a peer' },
  CARPD_ERR_PEER_NOT_ALLOWED: { status: 422, title: 'A peer is only allowed in unicast mode' },
  CARPD_ERR_PEER_FAMILY: { status: 422, title: 'The peer is of the wrong address family' },
  CARPD_ERR_PASSWORD_TOO_LONG: { status: 422, title: 'The password is longer than 19 characters' },
  CARPD_ERR_INVALID_VALUE: { status: 422, title: 'A value is out of range or not allowed' },
  CARPD_ERR_PFSYNC_SYNCDEV_REQUIRED: { status: 422, title: 'pfsync needs a sync interface' },
  CARPD_ERR_INTERFACE_NOT_FOUND: { status: 422, title: 'The interface does not exist' },
  CARPD_ERR_UNSUPPORTED: { status: 422, title: 'The backend does not support this' },
  CARPD_ERR_VHID_NOT_RUNNING: { status: 409, title: 'The vhid is in INIT and cannot be forced' },
  CARPD_ERR_REVISION_NOT_FOUND: { status: 404, title: 'No such stored revision' },
  CARPD_ERR_TOKEN_EXISTS: { status: 409, title: 'A token with that name exists' },
  CARPD_ERR_TOKEN_NOT_FOUND: { status: 404, title: 'No such token' },
  CARPD_ERR_LAST_ADMIN_TOKEN: { status: 409, title: 'The last admin token cannot be removed' },
  CARPD_ERR_HOOK_EXISTS: { status: 409, title: 'A hook with that name exists' },
  CARPD_ERR_HOOK_NOT_FOUND: { status: 404, title: 'No such hook' },
  CARPD_ERR_WEBHOOK_EXISTS: { status: 409, title: 'A webhook with that name exists' },
  CARPD_ERR_WEBHOOK_NOT_FOUND: { status: 404, title: 'No such webhook' },
  CARPD_ERR_HOOKS_NOT_RUNNING: { status: 503, title: 'This process runs no hooks' },
  CARPD_ERR_TRACK_EXISTS: { status: 409, title: 'A track with that name exists' },
  CARPD_ERR_TRACK_NOT_FOUND: { status: 404, title: 'No such track' },
  CARPD_ERR_KERNEL: { status: 502, title: 'The kernel refused the change' },
  CARPD_ERR_STORE: { status: 500, title: 'The desired state could not be stored' },
  CARPD_ERR_SYNC_MANAGED: { status: 409, title: 'The object is managed by the sync primary' },
  CARPD_ERR_SYNC_NOT_CONFIGURED: { status: 409, title: 'Config sync is not configured' },
  CARPD_ERR_SYNC_PEER_UNREACHABLE: { status: 502, title: 'The sync peer could not be reached' },
  CARPD_ERR_SYNC_UNTRUSTED: { status: 403, title: 'The sync message is not from a pinned peer' },
  CARPD_ERR_SYNC_REPLAY: { status: 409, title: 'The sync message was already received or is too old' },
  CARPD_ERR_SYNC_BAD_MESSAGE: { status: 400, title: 'The sync message is malformed' },
  CARPD_ERR_SYNC_SCHEMA: { status: 409, title: 'The sync peer speaks another schema version' },
  CARPD_ERR_SYNC_OLDER_REVISION: { status: 409, title: 'The pushed revision is older than the one applied' },
  CARPD_ERR_SYNC_ROLE: { status: 409, title: 'The sync roles do not allow this message' },
  CARPD_ERR_SHUTTING_DOWN: { status: 503, title: 'carpd is shutting down' },
  CARPD_ERR_INTERNAL: { status: 500, title: 'Internal error' },
  CARPD_ERR_TOO_MANY_FAILURES: { status: 429, title: 'Too many failed authentications from this address' },
  CARPD_ERR_STORE_FULL: { status: 507, title: 'The state directory is out of space' },
  CARPD_ERR_STORE_UNWRITABLE: { status: 503, title: 'The state directory cannot be written' },
  CARPD_ERR_SWITCHOVER_STANDALONE: { status: 409, title: 'This node has no sync peer to switch over to' },
  CARPD_ERR_SWITCHOVER_RUNNING: { status: 409, title: 'A switchover is already running' },
  CARPD_ERR_JOB_NOT_FOUND: { status: 404, title: 'No such job' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldProblem {
  path: string;
  message: string;
  code?: string;
}

/** A write to the state directory that failed: the file and the errno name (ENOSPC, EROFS, …). */
export interface StoreDetail {
  path: string;
  errno: string;
}

export interface KernelDetail {
  operation: string;
  interface?: string;
  errno: number;
  errnoName: string;
}

/** An error a client can act on: a stable code, a sentence that says what to do, optional details. */
export class CarpdError extends Error {
  readonly code: ErrorCode;
  readonly errors?: FieldProblem[];
  readonly kernel?: KernelDetail;
  readonly currentRevision?: number;
  readonly store?: StoreDetail;
  /** Seconds after which a retry may succeed (sent as Retry-After by the API). */
  readonly retryAfterSec?: number;

  constructor(
    code: ErrorCode,
    detail: string,
    extra: { errors?: FieldProblem[]; kernel?: KernelDetail; currentRevision?: number; store?: StoreDetail; retryAfterSec?: number; cause?: unknown } = {},
  ) {
    super(detail, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'CarpdError';
    this.code = code;
    this.errors = extra.errors;
    this.kernel = extra.kernel;
    this.currentRevision = extra.currentRevision;
    this.store = extra.store;
    this.retryAfterSec = extra.retryAfterSec;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Several semantic problems found at once: the first one's code names the whole error. */
export function fromProblems(problems: (FieldProblem & { code: ErrorCode })[]): CarpdError {
  const first = problems[0];
  const detail =
    problems.length === 1
      ? `${first.path}: ${first.message}`
      : `${problems.length} problems, first: ${first.path}: ${first.message}`;
  return new CarpdError(first.code, detail, { errors: problems });
}

/** The RFC 9457 body of an error, as the API and the sync listener send it. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  errors?: FieldProblem[];
  kernel?: CarpdError['kernel'];
  currentRevision?: number;
  store?: StoreDetail;
}

export function problemOf(e: CarpdError, instance?: string): ProblemBody {
  const body: ProblemBody = { type: `urn:carpd:error:${e.code}`, title: ERROR_CODES[e.code].title, status: e.status, code: e.code, detail: e.message };
  if (instance !== undefined) body.instance = instance;
  if (e.errors) body.errors = e.errors;
  if (e.kernel) body.kernel = Object.fromEntries(Object.entries(e.kernel).filter(([, v]) => v !== undefined)) as CarpdError['kernel'];
  if (e.currentRevision !== undefined) body.currentRevision = e.currentRevision;
  if (e.store) body.store = { path: e.store.path, errno: e.store.errno };
  return body;
}
