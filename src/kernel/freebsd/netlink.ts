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
 *  The framing itself is pure and shared with Linux's rtnetlink: src/wire/netlink.ts, and so is
 *  the request socket: src/kernel/netlink-socket.ts. This file adds FreeBSD's layouts, its calls
 *  and error sign for that socket, and the family lookup; the carp family is netlink-carp.ts.
 */
import { FREEBSD_ERRNO, KernelError } from '../errno.js';
import type { NetlinkPlatform } from '../netlink-socket.js';
import {
  CTRL_ATTR_FAMILY_ID,
  CTRL_ATTR_FAMILY_NAME,
  CTRL_CMD_GETFAMILY,
  GENL_HDRLEN,
  GENL_ID_CTRL,
  NLMSG_ERROR,
  NLM_F_REQUEST,
  NetlinkFormatError,
  NetlinkReply,
  type NlMessage,
  cstr,
  genlMessage,
  nlattr,
  parseAttrs,
  splitMessages,
} from '../../wire/netlink.js';
import type { AbiVersion, StructLayout } from './layout.js';
import type { Libc } from './libc.js';

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

/** recv(2) flag (sys/socket.h): never wait for data. FreeBSD's value, not Linux's 0x40. */
export const MSG_DONTWAIT = 0x80;

/** NLMSG_DONE's errno: FreeBSD writes it positive (§12.1); either sign is read. */
export const freebsdDoneErrno = (raw: number): number => Math.abs(raw);

/** The request socket's calls on FreeBSD: send/recv of the libc binding, FreeBSD errno numbers. */
export function freebsdNetlinkPlatform(libc: Libc): NetlinkPlatform {
  return {
    send: (fd, msg) => {
      libc.send(fd, msg, 0);
    },
    recv: (fd, buf) => {
      try {
        return libc.recv(fd, buf, MSG_DONTWAIT);
      } catch (e) {
        if (e instanceof KernelError && e.errno === FREEBSD_ERRNO.EAGAIN) return undefined;
        throw e;
      }
    },
    close: (fd) => libc.close(fd),
    doneErrno: freebsdDoneErrno,
    replyError: (errno, operation, iface, message) => new KernelError(operation, errno, iface, message),
  };
}

// ---- family lookup ----------------------------------------------------------------------------

export function buildGetFamilyRequest(seq: number, name = 'carp'): Buffer {
  return genlMessage(GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, [nlattr(CTRL_ATTR_FAMILY_NAME, cstr(name, 16, 'family name'))]);
}

/** A missing family answers ENOENT; like libifconfig it is reported as EPROTONOSUPPORT (§3.5: carp.ko not loaded). */
export function familyNotRegistered(family: string, ctx: ReplyContext = {}): KernelError {
  return kernelError(ctx, `netlink GETFAMILY ${family}`, FREEBSD_ERRNO.EPROTONOSUPPORT, `generic netlink family "${family}" is not registered`);
}

/** The family id in one message of a ctrl reply; anything else there is a NetlinkFormatError. */
export function decodeFamilyMessage(m: NlMessage, family: string): number {
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

/**
 * The family id from a ctrl reply, or undefined when these bytes hold no reply to `seq` (read
 * again). A missing family is EPROTONOSUPPORT (familyNotRegistered).
 */
export function parseGetFamilyReply(bytes: Buffer, ctx: ReplyContext & { family?: string } = {}): number | undefined {
  const family = ctx.family ?? 'carp';
  const reply = new NetlinkReply(ctx.seq, freebsdDoneErrno);
  for (const m of splitMessages(bytes)) {
    if (reply.accept(m)) return decodeFamilyMessage(m, family);
    const end = reply.ended;
    if (end?.errno === FREEBSD_ERRNO.ENOENT) throw familyNotRegistered(family, ctx);
    if (end && end.errno !== 0) throw kernelError(ctx, `netlink GETFAMILY ${family}`, end.errno, end.message);
    if (end) return undefined; // an acknowledgement without the family
  }
  return undefined;
}

/** true once the acknowledgement of `seq` is in these bytes; a non-zero errno throws KernelError. */
export function parseAck(bytes: Buffer, ctx: ReplyContext = {}): boolean {
  const reply = new NetlinkReply(ctx.seq, freebsdDoneErrno);
  for (const m of splitMessages(bytes)) {
    if (m.type !== NLMSG_ERROR) continue; // an acknowledgement is an NLMSG_ERROR with errno 0
    reply.accept(m);
    const end = reply.ended;
    if (end && end.errno !== 0) throw kernelError(ctx, 'netlink request', end.errno, end.message);
    if (end) return true;
  }
  return false;
}
