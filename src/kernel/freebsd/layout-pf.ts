/**
 * pf's status as /dev/pf answers it (reference/pf-status.md; the layout and the request numbers
 * are read from pfvar.h and held to reference/pf-status-abi.json by test/freebsd-layout.test.ts).
 *
 *  DIOCGETSTATUS   = _IOWR('D', 21, struct pf_status)  0xc1a04415   13.x, 14.x (gone in 15)
 *  DIOCGETSTATUSNV = _IOWR('D', 21, struct pfioc_nv)   0xc0184415   13.1+, 14.x, 15.x
 *
 *  struct pf_status (416 B, amd64 = arm64)          struct pfioc_nv (24 B)
 *  +0   u64 counters[16]     PFRES_MAX             +0  void  *data
 *  +128 u64 lcounters[7]     LCNT_MAX              +8  size_t len    packed size, set by the kernel
 *  +184 u64 fcounters[3]     search insert removal +16 size_t size   the buffer's size; 0 = size probe
 *  +208 u64 scounters[3]
 *  +232 u64 pcounters[2][2][3]
 *  +328 u64 bcounters[2][2]
 *  +360 u32 running  +364 states  +368 src_nodes  +372 since  +376 debug  +380 hostid (network order)
 *  +384 char ifname[16]  +400 u8 pf_chksum[16]
 *
 * The nvlist reply carries `running` (bool), `states`, `src_nodes` (numbers) and `fcounters`, an
 * nvlist of parallel arrays `counters`, `names`, `ids` (FCNT_STATE_SEARCH 0, FCNT_STATE_INSERT 1,
 * FCNT_STATE_REMOVALS 2), among other keys carpd does not read.
 */
import type { PfStatus } from '../backend.js';
import { IOC_INOUT, ioc, need } from './layout.js';
import type { NvObject, NvSchema } from './libnv.js';

export const PF_STATUS_SIZE = 416;
export const PFIOC_NV_SIZE = 24;
export const DIOCGETSTATUS = ioc(IOC_INOUT, 'D', 21, PF_STATUS_SIZE);
export const DIOCGETSTATUSNV = ioc(IOC_INOUT, 'D', 21, PFIOC_NV_SIZE);
/** pf's device; O_RDONLY is enough for both status requests. */
export const PF_DEVICE = '/dev/pf';
/** FreeBSD's open(2) flags (sys/fcntl.h): not Linux's. */
export const O_RDONLY = 0;
export const O_CLOEXEC = 0x00100000;

/** The FCNT_* indices of fcounters. */
export const FCNT = { search: 0, insert: 1, removals: 2 } as const;

/** Offsets of struct pf_status as this module reads and writes them. */
export const PF_STATUS_LAYOUT = {
  size: PF_STATUS_SIZE,
  fields: {
    counters: { offset: 0, size: 128 },
    lcounters: { offset: 128, size: 56 },
    fcounters: { offset: 184, size: 24 },
    scounters: { offset: 208, size: 24 },
    pcounters: { offset: 232, size: 96 },
    bcounters: { offset: 328, size: 32 },
    running: { offset: 360, size: 4 },
    states: { offset: 364, size: 4 },
    src_nodes: { offset: 368, size: 4 },
    since: { offset: 372, size: 4 },
    debug: { offset: 376, size: 4 },
    hostid: { offset: 380, size: 4 },
    ifname: { offset: 384, size: 16 },
    pf_chksum: { offset: 400, size: 16 },
  },
} as const;

export const PFIOC_NV_LAYOUT = {
  size: PFIOC_NV_SIZE,
  fields: { data: { offset: 0, size: 8 }, len: { offset: 8, size: 8 }, size: { offset: 16, size: 8 } },
} as const;

const F = PF_STATUS_LAYOUT.fields;

/** What both forms carry that carpd reports (PfStatus without how it was read and pfsync). */
export type PfCounts = Omit<PfStatus, 'via' | 'pfsyncBulkUpdateDone'>;

const u64 = (buf: Buffer, off: number): number => {
  const v = buf.readBigUInt64LE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
};

export function decodePfStatus(buf: Buffer, off = 0): PfCounts {
  need(buf, off, PF_STATUS_SIZE, 'pf_status');
  const fc = off + F.fcounters.offset;
  return {
    running: buf.readUInt32LE(off + F.running.offset) !== 0,
    states: buf.readUInt32LE(off + F.states.offset),
    srcNodes: buf.readUInt32LE(off + F.src_nodes.offset),
    stateSearches: u64(buf, fc + 8 * FCNT.search),
    stateInserts: u64(buf, fc + 8 * FCNT.insert),
    stateRemovals: u64(buf, fc + 8 * FCNT.removals),
  };
}

/** The reverse of decodePfStatus, for tests (every other field zero). */
export function encodePfStatus(v: PfCounts, buf: Buffer, off = 0): void {
  need(buf, off, PF_STATUS_SIZE, 'pf_status');
  buf.fill(0, off, off + PF_STATUS_SIZE);
  buf.writeUInt32LE(v.running ? 1 : 0, off + F.running.offset);
  buf.writeUInt32LE(v.states, off + F.states.offset);
  buf.writeUInt32LE(v.srcNodes, off + F.src_nodes.offset);
  const fc = off + F.fcounters.offset;
  buf.writeBigUInt64LE(BigInt(v.stateSearches), fc + 8 * FCNT.search);
  buf.writeBigUInt64LE(BigInt(v.stateInserts), fc + 8 * FCNT.insert);
  buf.writeBigUInt64LE(BigInt(v.stateRemovals), fc + 8 * FCNT.removals);
}

/** struct pfioc_nv: where the reply goes (data, size) and, after the call, its length. */
export function pfiocNvBytes(v: { data: bigint; len: number; size: number }): Buffer {
  const b = Buffer.alloc(PFIOC_NV_SIZE);
  b.writeBigUInt64LE(v.data, PFIOC_NV_LAYOUT.fields.data.offset);
  b.writeBigUInt64LE(BigInt(v.len), PFIOC_NV_LAYOUT.fields.len.offset);
  b.writeBigUInt64LE(BigInt(v.size), PFIOC_NV_LAYOUT.fields.size.offset);
  return b;
}

export function decodePfiocNv(buf: Buffer): { data: bigint; len: number; size: number } {
  need(buf, 0, PFIOC_NV_SIZE, 'pfioc_nv');
  return {
    data: buf.readBigUInt64LE(PFIOC_NV_LAYOUT.fields.data.offset),
    len: Number(buf.readBigUInt64LE(PFIOC_NV_LAYOUT.fields.len.offset)),
    size: Number(buf.readBigUInt64LE(PFIOC_NV_LAYOUT.fields.size.offset)),
  };
}

/** The keys of DIOCGETSTATUSNV's reply carpd reads (libnv reads only what a schema names, T13). */
export const PF_STATUS_NV_SCHEMA: NvSchema = {
  running: 'bool',
  states: 'number',
  src_nodes: 'number',
  fcounters: { counters: 'number[]', ids: 'number[]' },
};

/** The nvlist reply, read: a missing or mistyped key is an error (EBADMSG), never a zero. */
export function pfStatusFromNv(o: NvObject): PfCounts {
  const num = (key: string): number => {
    const v = o[key];
    if (typeof v !== 'number') throw new TypeError(`DIOCGETSTATUSNV: "${key}" is missing or not a number`);
    return v;
  };
  if (typeof o.running !== 'boolean') throw new TypeError('DIOCGETSTATUSNV: "running" is missing or not a bool');
  const fc = o.fcounters;
  if (!fc || typeof fc !== 'object' || Buffer.isBuffer(fc) || Array.isArray(fc)) throw new TypeError('DIOCGETSTATUSNV: "fcounters" is missing');
  const counters = fc.counters;
  if (!Array.isArray(counters)) throw new TypeError('DIOCGETSTATUSNV: "fcounters.counters" is missing');
  // ids name each counter (FCNT_*); without them the kernel's order is the index.
  const ids = Array.isArray(fc.ids) && fc.ids.length === counters.length ? fc.ids : counters.map((_, i) => i);
  const at = (id: number): number => {
    const i = ids.indexOf(id);
    const v = i < 0 ? undefined : counters[i];
    if (typeof v !== 'number') throw new TypeError(`DIOCGETSTATUSNV: fcounters has no counter ${id}`);
    return v;
  };
  return {
    running: o.running,
    states: num('states'),
    srcNodes: num('src_nodes'),
    stateSearches: at(FCNT.search),
    stateInserts: at(FCNT.insert),
    stateRemovals: at(FCNT.removals),
  };
}
