/** FreeBSD errno numbers (identical in 13, 14 and 15). Linux numbers differ above 34. */
export const FREEBSD_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, ENOMEM: 12, EACCES: 13,
  EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25,
  EFBIG: 27, ENOSPC: 28, EPIPE: 32, ERANGE: 34, EAGAIN: 35, EINPROGRESS: 36, EALREADY: 37, ENOTSOCK: 38,
  EDESTADDRREQ: 39, EMSGSIZE: 40, EPROTOTYPE: 41, ENOPROTOOPT: 42, EPROTONOSUPPORT: 43, ESOCKTNOSUPPORT: 44,
  EOPNOTSUPP: 45, EPFNOSUPPORT: 46, EAFNOSUPPORT: 47, EADDRINUSE: 48, EADDRNOTAVAIL: 49, ENETDOWN: 50,
  ENETUNREACH: 51, ENETRESET: 52, ECONNABORTED: 53, ECONNRESET: 54, ENOBUFS: 55, EISCONN: 56, ENOTCONN: 57,
  ETIMEDOUT: 60, ECONNREFUSED: 61, EHOSTDOWN: 64, EHOSTUNREACH: 65, ENOTEMPTY: 66, ENOSYS: 78, EAUTH: 80,
  ENEEDAUTH: 81, EIDRM: 82, ENOMSG: 83, EOVERFLOW: 84, ECANCELED: 85, EILSEQ: 86, ENOATTR: 87, EDOOFUS: 88,
  EBADMSG: 89, EMULTIHOP: 90, ENOLINK: 91, EPROTO: 92, ENOTCAPABLE: 93, ECAPMODE: 94, EINTEGRITY: 97,
} as const;

export type ErrnoName = keyof typeof FREEBSD_ERRNO;

const NAMES = new Map<number, ErrnoName>();
for (const [name, n] of Object.entries(FREEBSD_ERRNO) as [ErrnoName, number][]) if (!NAMES.has(n)) NAMES.set(n, name);

export function errnoName(n: number): string {
  return NAMES.get(n) ?? `errno ${n}`;
}

/**
 * A failed backend operation: what was attempted, on which interface, and the FreeBSD errno.
 * Every backend reports failures this way (the userspace ones use the FreeBSD numbers too),
 * so the service maps them to API errors in one place.
 */
export class KernelError extends Error {
  readonly errnoName: string;
  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly iface?: string,
    why?: string,
  ) {
    const name = errnoName(errno);
    super(`${operation}${iface ? ` on ${iface}` : ''} failed: ${name}${why ? ` (${why})` : ''}`);
    this.name = 'KernelError';
    this.errnoName = name;
  }

  static of(name: ErrnoName, operation: string, iface?: string, why?: string): KernelError {
    return new KernelError(operation, FREEBSD_ERRNO[name], iface, why);
  }
}
