/**
 * Failures of the state directory in API terms: what the file system said decides the code,
 * so that a full disk or a read-only mount reads as what it is, not as a fault of carpd.
 *
 *   ENOSPC, EDQUOT              CARPD_ERR_STORE_FULL         507  free space, then retry
 *   EROFS, EIO, EACCES, EPERM   CARPD_ERR_STORE_UNWRITABLE   503  (Retry-After) the directory cannot be written at all
 *   anything else               CARPD_ERR_STORE              500
 *
 * The problem names the file and the errno (`store`), never the content.
 */
import { CarpdError, type ErrorCode } from '../errors.js';
import { StoreWriteError } from '../config/store.js';

/** Seconds a client is told to wait before retrying a change the state directory refused. */
export const STORE_RETRY_AFTER_SEC = 30;

const FULL = new Set(['ENOSPC', 'EDQUOT']);
const UNWRITABLE = new Set(['EROFS', 'EIO', 'EACCES', 'EPERM']);

/** The code a failed write to the state directory is answered with. */
export function storeErrorCode(errno: string | undefined): ErrorCode {
  if (errno !== undefined && FULL.has(errno)) return 'CARPD_ERR_STORE_FULL';
  if (errno !== undefined && UNWRITABLE.has(errno)) return 'CARPD_ERR_STORE_UNWRITABLE';
  return 'CARPD_ERR_STORE';
}

/** What to do about it, in words, by code. */
function advice(code: ErrorCode): string {
  switch (code) {
    case 'CARPD_ERR_STORE_FULL':
      return 'free space in the state directory and retry';
    case 'CARPD_ERR_STORE_UNWRITABLE':
      return 'make the state directory writable again (a read-only or failing file system, or its permissions) and retry';
    default:
      return 'check the state directory';
  }
}

/**
 * A CarpdError for a change that could not be stored because of `cause`. `detail` says what
 * happened to the change; the advice and the file system's words are added.
 */
export function storeFailure(cause: unknown, detail: (why: string) => string): CarpdError {
  const why = cause instanceof Error ? cause.message : String(cause);
  const fault = cause instanceof StoreWriteError ? cause : undefined;
  const code = storeErrorCode(fault?.errno);
  return new CarpdError(code, `${detail(why)}: ${advice(code)}`, {
    store: fault?.errno !== undefined ? { path: fault.path, errno: fault.errno } : undefined,
    retryAfterSec: code === 'CARPD_ERR_STORE_UNWRITABLE' ? STORE_RETRY_AFTER_SEC : undefined,
    cause,
  });
}
