/**
 * Generic netlink framing as FreeBSD 14+ speaks it (freebsd-kernel-abi.md §3.5, §12).
 * Sizes asserted against freebsd-abi.json by test/freebsd-layout.test.ts.
 *
 *  struct nlmsghdr (16 B)                  struct genlmsghdr (4 B)    struct nlattr (4 B)
 *  +0  u32 nlmsg_len  header + payload     +0 u8  cmd                 +0 u16 nla_len  4 + payload (unpadded)
 *  +4  u16 nlmsg_type                      +1 u8  version             +2 u16 nla_type (NESTED / NET_BYTEORDER
 *  +6  u16 nlmsg_flags                     +2 u16 reserved                           bits masked off)
 *  +8  u32 nlmsg_seq                                                  +4 payload, zero padded to 4 bytes
 *  +12 u32 nlmsg_pid
 *
 *  struct nlmsgerr (20 B): +0 i32 error (FreeBSD positive, Linux negative: §12.1), +4 nlmsghdr echo
 *
 *  The framing itself is pure and shared with Linux's rtnetlink: src/wire/netlink.ts. This file
 *  adds FreeBSD's layouts, its error sign and the family lookup; the carp family is netlink-carp.ts.
 */
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_GETFAMILY,
  GENL_HDRLEN,
  GENL_ID_CTRL,
  NLMSG_ERROR,
  NLM_F_REQUEST,
  NetlinkFormatError,
  cstr,
  decodeNlmsgerr,
  genlMessage,
  nlattr,
  parseAttrs,
  splitMessages,
} from '../../wire/netlink.js';
import type { AbiVersion, StructLayout } from './layout.js';

export * from '../../wire/netlink.js';

/** Netlink structs in freebsd-abi.json naming; absent from 13, which has no netlink. */
export function netlinkLayouts(version: AbiVersion): Record<string, StructLayout> {
  if (version === 13) return {};
  const f = (offset: number, size: number) => ({ offset, size });
  return {
    nlmsghdr: { size: 16, fields: { nlmsg_len: f(0, 4), nlmsg_type: f(4, 2), nlmsg_flags: f(6, 2), nlmsg_seq: f(8, 4), nlmsg_pid: f(12, 4) } },
    genlmsghdr: { size: 4, fields: { cmd: f(0, 1), version: f(1, 1), reserved: f(2, 2) } },
    nlattr: { size: 4, fields: { nla_len: f(0, 2), nla_type: f(2, 2) } },
    nlmsgerr: { size: 20, fields: { error: f(0, 4), msg: f(4, 16) } },
  };
}

export interface ReplyContext {
  /** Messages of other sequence numbers (stale replies) are skipped. */
  seq?: number;
  /** Names the failed operation in the KernelError ("netlink carp SET"). */
  operation?: string;
  iface?: string;
}

export function kernelError(ctx: ReplyContext, fallback: string, errno: number, why?: string): KernelError {
  return new KernelError(ctx.operation ?? fallback, errno, ctx.iface, why);
}

// ---- family lookup ----------------------------------------------------------------------------

export function buildGetFamilyRequest(seq: number, name = 'carp'): Buffer {
  return genlMessage(GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, [nlattr(CTRL_ATTR_FAMILY_NAME, cstr(name, 16, 'family name'))]);
}

/**
 * The family id from a ctrl reply, or undefined when these bytes hold no reply to `seq` (read
 * again). A missing family answers ENOENT; like libifconfig it is reported as EPROTONOSUPPORT
 * (§3.5: carp.ko not loaded).
 */
export function parseGetFamilyReply(bytes: Buffer, ctx: ReplyContext & { family?: string } = {}): number | undefined {
  const family = ctx.family ?? 'carp';
  const op = `netlink GETFAMILY ${family}`;
  for (const m of splitMessages(bytes)) {
    if (ctx.seq !== undefined && m.seq !== ctx.seq) continue;
    if (m.type === NLMSG_ERROR) {
      const e = decodeNlmsgerr(m);
      if (e.errno === FREEBSD_ERRNO.ENOENT) throw kernelError(ctx, op, FREEBSD_ERRNO.EPROTONOSUPPORT, `generic netlink family "${family}" is not registered`);
      if (e.errno !== 0) throw kernelError(ctx, op, e.errno, e.message);
      continue; // an acknowledgement
    }
    if (m.type !== GENL_ID_CTRL) throw new NetlinkFormatError(`unexpected message type ${m.type} in a ctrl reply`);
    if (m.payload.length < GENL_HDRLEN) throw new NetlinkFormatError('ctrl reply without genlmsghdr');
    let id: number | undefined;
    for (const a of parseAttrs(m.payload, GENL_HDRLEN)) {
      if (a.type === CTRL_ATTR_FAMILY_ID) {
        if (a.payload.length !== 2) throw new NetlinkFormatError(`CTRL_ATTR_FAMILY_ID has ${a.payload.length} bytes, want 2`);
        id = a.payload.readUInt16LE(0);
      } else if (a.type === CTRL_ATTR_FAMILY_NAME) {
        const name = a.payload.toString('utf8').replace(/\0.*$/s, '');
        if (name !== family) throw new NetlinkFormatError(`ctrl reply for family "${name}", asked for "${family}"`);
      }
    }
    if (id === undefined) throw new NetlinkFormatError('ctrl reply without CTRL_ATTR_FAMILY_ID');
    return id;
  }
  return undefined;
}

/** true once the acknowledgement of `seq` is in these bytes; a non-zero errno throws KernelError. */
export function parseAck(bytes: Buffer, ctx: ReplyContext = {}): boolean {
  for (const m of splitMessages(bytes)) {
    if (ctx.seq !== undefined && m.seq !== ctx.seq) continue;
    if (m.type !== NLMSG_ERROR) continue;
    const e = decodeNlmsgerr(m);
    if (e.errno !== 0) throw kernelError(ctx, 'netlink request', e.errno, e.message);
    return true;
  }
  return false;
}
