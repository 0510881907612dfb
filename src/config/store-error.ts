/**
 * What the state directory's writes report: a failed write as a StoreWriteError (the file it
 * was writing, the errno name such as ENOSPC or EROFS, and a sentence naming both), and the
 * store's health as status shows it (whether the last write went through, and if not, why).
 */

/** A write to the state directory that failed. `errno` is undefined when the failure was not the file system's. */
export class StoreWriteError extends Error {
  constructor(
    message: string,
    readonly path: string,
    readonly errno: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreWriteError';
  }
}

const ERRNO = /^E[A-Z0-9]+$/;

/** The errno name of a node:fs error (its `code`), or undefined. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && ERRNO.test(code) ? code : undefined;
}

/**
 * `e` as a StoreWriteError that names `file`: "could not append to <file>: ENOSPC (no space
 * left on device)". One that is a StoreWriteError already is handed back as it is.
 */
export function storeWriteError(what: string, file: string, e: unknown): StoreWriteError {
  if (e instanceof StoreWriteError) return e;
  const errno = errnoOf(e);
  const message = e instanceof Error ? e.message : String(e);
  // node:fs says "ENOSPC: no space left on device, write '/path'": keep the words.
  const words = errno ? (new RegExp(`^${errno}: ([^,]+)`).exec(message)?.[1] ?? message) : message;
  return new StoreWriteError(`${what} ${file}: ${errno ? `${errno} (${words})` : words}`, file, errno, { cause: e });
}

/** The last failed write to the state directory. */
export interface StoreFault {
  errno: string | undefined;
  path: string;
  at: Date;
  message: string;
}

/**
 * Whether the state directory took the last write. A new object on every change, so a holder
 * can tell a change by identity.
 */
export interface StoreHealth {
  readonly writable: boolean;
  readonly lastError?: StoreFault;
}
