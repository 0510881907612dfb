/**
 * nvlists for the pfsync NV ioctls (SIOCSETPFSYNCNV / SIOCGETPFSYNCNV, FreeBSD 14+), built and
 * read through libnv (freebsd-kernel-abi.md §5.3, §5.4, T12, T13).
 *
 *  library        13.x: libnv.so.0, plain names (nvlist_create)
 *                 14+:  libnv.so.1, FreeBSD_-prefixed names (FreeBSD_nvlist_create); .so.0 kept
 *  pack           nvlist_create(0) -> nvlist_add_{string,number,binary,nvlist}... -> nvlist_error
 *                 -> nvlist_pack(nvl, &size) (malloc'd: copied, then released with libc free)
 *  unpack         nvlist_unpack(buf, len, 0) -> for each schema key: nvlist_exists_<type> and only
 *                 then nvlist_get_<type>: a get on a missing key calls abort() and kills Node (T13)
 *
 * libnv lists no portable key iteration among the functions the reference names, so unpacking
 * reads the keys a schema lists; keys that are absent (or of another type) are left out.
 */
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import { bind, type Koffi, loadKoffi } from '../koffi.js';
import type { Libc } from './libc.js';

export type NvValue = string | number | bigint | boolean | number[] | Buffer | NvObject;
export interface NvObject {
  [key: string]: NvValue;
}

/**
 * 'number' reads as a JS number (throws above 2^53 - 1), 'bigint' as a bigint; 'bool' and
 * 'number[]' (read only: pf's status reply) as a boolean and numbers (clamped at 2^53 - 1).
 */
export type NvType = 'string' | 'number' | 'bigint' | 'binary' | 'bool' | 'number[]';
export interface NvSchema {
  [key: string]: NvType | NvSchema;
}

/** What SIOCGETPFSYNCNV returns (§5.3); syncpeer.address is a whole sockaddr_in / sockaddr_in6. */
export const PFSYNC_NV_SCHEMA: NvSchema = {
  syncdev: 'string',
  syncpeer: { af: 'number', address: 'binary' },
  maxupdates: 'number',
  flags: 'number',
  version: 'number',
};

export interface Libnv {
  /** The library and naming that resolved. */
  readonly path: string;
  readonly prefix: 'FreeBSD_' | '';
  packNvlist(obj: NvObject): Buffer;
  unpackNvlist(buf: Buffer, schema: NvSchema): NvObject;
}

const SYMBOLS = {
  create: 'void *nvlist_create(int flags)',
  destroy: 'void nvlist_destroy(void *nvl)',
  error: 'int nvlist_error(const void *nvl)',
  add_string: 'void nvlist_add_string(void *nvl, const char *name, const char *value)',
  add_number: 'void nvlist_add_number(void *nvl, const char *name, uint64_t value)',
  add_binary: 'void nvlist_add_binary(void *nvl, const char *name, const void *value, size_t size)',
  add_nvlist: 'void nvlist_add_nvlist(void *nvl, const char *name, const void *value)',
  exists_string: 'bool nvlist_exists_string(const void *nvl, const char *name)',
  exists_number: 'bool nvlist_exists_number(const void *nvl, const char *name)',
  exists_binary: 'bool nvlist_exists_binary(const void *nvl, const char *name)',
  exists_nvlist: 'bool nvlist_exists_nvlist(const void *nvl, const char *name)',
  get_string: 'const char *nvlist_get_string(const void *nvl, const char *name)',
  get_number: 'uint64_t nvlist_get_number(const void *nvl, const char *name)',
  get_binary: 'const void *nvlist_get_binary(const void *nvl, const char *name, void *sizep)',
  get_nvlist: 'const void *nvlist_get_nvlist(const void *nvl, const char *name)',
  exists_bool: 'bool nvlist_exists_bool(const void *nvl, const char *name)',
  get_bool: 'bool nvlist_get_bool(const void *nvl, const char *name)',
  exists_number_array: 'bool nvlist_exists_number_array(const void *nvl, const char *name)',
  get_number_array: 'const void *nvlist_get_number_array(const void *nvl, const char *name, void *nitemsp)',
  pack: 'void *nvlist_pack(const void *nvl, void *sizep)',
  unpack: 'void *nvlist_unpack(const void *buf, size_t size, int flags)',
} as const;
type Sym = keyof typeof SYMBOLS;
type Fn = (...args: unknown[]) => unknown;
type Handle = bigint;

/** Declares every symbol with the prefix; undefined if the first one is missing (other naming). */
function bindAll(lib: ReturnType<Koffi['load']>, path: string, prefix: string): Record<Sym, Fn> | undefined {
  const out = {} as Record<Sym, Fn>;
  for (const [key, decl] of Object.entries(SYMBOLS) as [Sym, string][]) {
    const named = decl.replace(/\bnvlist_/, `${prefix}nvlist_`);
    if (key === 'create') {
      try {
        out[key] = lib.func(named) as Fn;
      } catch {
        return undefined;
      }
    } else out[key] = bind(lib, path, 'CARPD_FREEBSD_LIBNV', named);
  }
  return out;
}

/**
 * Loads libnv: the path given (or CARPD_FREEBSD_LIBNV), else libnv.so.1 then libnv.so.0; in each,
 * the FreeBSD_ names (14+) before the plain ones (13). `libc.free` releases packed buffers.
 */
export function loadLibnv(libc: Pick<Libc, 'free'>, path: string | undefined = process.env.CARPD_FREEBSD_LIBNV): Libnv {
  const koffi = loadKoffi('the FreeBSD backend');
  const candidates = path ? [path] : ['libnv.so.1', 'libnv.so.0'];
  const problems: string[] = [];
  for (const p of candidates) {
    let lib: ReturnType<Koffi['load']>;
    try {
      lib = koffi.load(p);
    } catch (e) {
      problems.push(`${p}: ${(e as Error).message}`);
      continue;
    }
    for (const prefix of ['FreeBSD_', ''] as const) {
      const f = bindAll(lib, p, prefix);
      if (f) return makeLibnv(koffi, f, libc, p, prefix);
    }
    problems.push(`${p}: neither FreeBSD_nvlist_create nor nvlist_create`);
  }
  throw new Error(`cannot load libnv (set CARPD_FREEBSD_LIBNV to its path): ${problems.join('; ')}`);
}

function makeLibnv(koffi: Koffi, f: Record<Sym, Fn>, libc: Pick<Libc, 'free'>, path: string, prefix: 'FreeBSD_' | ''): Libnv {
  const bytesAt = (ptr: unknown, size: number): Buffer => {
    if (size === 0) return Buffer.alloc(0);
    if (ptr === null || ptr === undefined) throw new KernelError('nvlist get_binary', FREEBSD_ERRNO.EFAULT);
    return Buffer.from(new Uint8Array(koffi.view(ptr, size))); // a copy: the memory is libnv's
  };

  const create = (): Handle => {
    const h = f.create(0);
    if (h === null || h === undefined) throw new KernelError('nvlist create', koffi.errno() || FREEBSD_ERRNO.ENOMEM);
    return h as Handle;
  };

  const fill = (nvl: Handle, obj: NvObject): void => {
    for (const [key, v] of Object.entries(obj)) {
      if (typeof v === 'boolean' || Array.isArray(v)) throw new TypeError(`nvlist "${key}": bools and arrays are read, never written, by carpd`);
      if (typeof v === 'string') f.add_string(nvl, key, v);
      else if (typeof v === 'number' || typeof v === 'bigint') {
        if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`nvlist number "${key}" must be a safe integer, got ${v}`);
        const n = BigInt(v);
        if (n < 0n || n > 0xffffffffffffffffn) throw new RangeError(`nvlist number "${key}" outside 0..2^64-1`);
        f.add_number(nvl, key, n);
      } else if (Buffer.isBuffer(v)) f.add_binary(nvl, key, v, v.length);
      else {
        // nvlist_add_nvlist copies the child, so ours is destroyed either way.
        const child = create();
        try {
          fill(child, v);
          f.add_nvlist(nvl, key, child);
        } finally {
          f.destroy(child);
        }
      }
    }
  };

  const toNumber = (key: string, v: bigint, as: NvType): number | bigint => {
    if (as === 'bigint') return v;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`nvlist number "${key}" = ${v} exceeds 2^53 - 1; read it as 'bigint'`);
    return Number(v);
  };

  const walk = (nvl: Handle, schema: NvSchema): NvObject => {
    const out: NvObject = {};
    for (const [key, type] of Object.entries(schema)) {
      // T13: every get is preceded by the matching exists; a get on a missing key aborts.
      if (typeof type === 'object') {
        if (f.exists_nvlist(nvl, key)) out[key] = walk(f.get_nvlist(nvl, key) as Handle, type);
      } else if (type === 'string') {
        if (f.exists_string(nvl, key)) out[key] = f.get_string(nvl, key) as string;
      } else if (type === 'bool') {
        if (f.exists_bool(nvl, key)) out[key] = Boolean(f.get_bool(nvl, key));
      } else if (type === 'number[]') {
        if (f.exists_number_array(nvl, key)) {
          const nitemsp = Buffer.alloc(8);
          const ptr = f.get_number_array(nvl, key, nitemsp);
          const n = Number(nitemsp.readBigUInt64LE(0));
          const bytes = bytesAt(ptr, n * 8);
          out[key] = Array.from({ length: n }, (_, i) => {
            const v = bytes.readBigUInt64LE(i * 8);
            return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
          });
        }
      } else if (type === 'binary') {
        if (f.exists_binary(nvl, key)) {
          const sizep = Buffer.alloc(8);
          const ptr = f.get_binary(nvl, key, sizep);
          out[key] = bytesAt(ptr, Number(sizep.readBigUInt64LE(0)));
        }
      } else if (f.exists_number(nvl, key)) {
        out[key] = toNumber(key, BigInt(f.get_number(nvl, key) as number | bigint), type);
      }
    }
    return out;
  };

  return {
    path,
    prefix,
    packNvlist(obj) {
      const nvl = create();
      try {
        fill(nvl, obj);
        // add_* errors are latched (EEXIST for a duplicate key, ENOMEM) and make pack fail.
        const err = Number(f.error(nvl));
        if (err !== 0) throw new KernelError('nvlist add', err, undefined, 'libnv refused a value');
        const sizep = Buffer.alloc(8);
        const packed = f.pack(nvl, sizep);
        if (packed === null || packed === undefined) throw new KernelError('nvlist pack', Number(f.error(nvl)) || koffi.errno() || FREEBSD_ERRNO.ENOMEM);
        try {
          return bytesAt(packed, Number(sizep.readBigUInt64LE(0)));
        } finally {
          libc.free(packed as bigint);
        }
      } finally {
        f.destroy(nvl);
      }
    },
    unpackNvlist(buf, schema) {
      const nvl = f.unpack(buf, buf.length, 0);
      if (nvl === null || nvl === undefined) throw new KernelError('nvlist unpack', koffi.errno() || FREEBSD_ERRNO.EINVAL, undefined, 'not a packed nvlist');
      try {
        return walk(nvl as Handle, schema);
      } finally {
        f.destroy(nvl);
      }
    },
  };
}
