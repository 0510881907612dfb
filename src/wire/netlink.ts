/**
 * Netlink framing (RFC 3549), pure: the same bytes on Linux (NETLINK_ROUTE, kernel/linux/
 * rtnetlink.ts) and FreeBSD 14+ (generic netlink "carp", kernel/freebsd/netlink-carp.ts). Only the
 * sign of NLMSG_ERROR's errno differs (Linux negative, FreeBSD positive): decodeNlmsgerr takes
 * either. Host byte order (little-endian on every target carpd has).
 *
 *  struct nlmsghdr (16 B)                  struct genlmsghdr (4 B)    struct nlattr (4 B)
 *  +0  u32 nlmsg_len  header + payload     +0 u8  cmd                 +0 u16 nla_len  4 + payload (unpadded)
 *  +4  u16 nlmsg_type                      +1 u8  version             +2 u16 nla_type (NESTED / NET_BYTEORDER
 *  +6  u16 nlmsg_flags                     +2 u16 reserved                           bits masked off)
 *  +8  u32 nlmsg_seq                                                  +4 payload, zero padded to 4 bytes
 *  +12 u32 nlmsg_pid
 *
 *  struct nlmsgerr (20 B): +0 i32 error, +4 nlmsghdr echo
 *
 *  A request is nlmsghdr | [genlmsghdr] | nlattr...; messages follow each other at 4-byte boundaries.
 */

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLA_HDRLEN = 4;
export const NLMSGERR_LEN = 20;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_MIN_TYPE = 16;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
/** On a dump's messages (Linux): the table changed while it was read, so it may be inconsistent. */
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_CAPPED = 0x100; // on NLMSG_ERROR: the echo is the request header only
export const NLM_F_ACK_TLVS = 0x200; // on NLMSG_ERROR: extended-ack attributes follow the echo
export const NLMSGERR_ATTR_MSG = 1;
const NLA_TYPE_MASK = 0x3fff; // ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
export const GENL_ID_CTRL = 16;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
/** Anything larger is not a carp(4) or ctrl reply: refuse instead of waiting for it forever. */
export const NLMSG_MAX_LEN = 1 << 20;

/** Bytes that are not a well-formed netlink reply. Kernel-reported errors are KernelError instead. */
export class NetlinkFormatError extends Error {
  constructor(message: string) {
    super(`malformed netlink reply: ${message}`);
    this.name = 'NetlinkFormatError';
  }
}

const align4 = (n: number) => (n + 3) & ~3;

export interface NlMsgHdr { len: number; type: number; flags: number; seq: number; pid: number }
export interface NlMessage extends NlMsgHdr { payload: Buffer }
export interface NlAttr { type: number; payload: Buffer }

export function encodeNlmsghdr(h: NlMsgHdr, buf: Buffer, off: number): void {
  buf.writeUInt32LE(h.len, off);
  buf.writeUInt16LE(h.type, off + 4);
  buf.writeUInt16LE(h.flags, off + 6);
  buf.writeUInt32LE(h.seq >>> 0, off + 8);
  buf.writeUInt32LE(h.pid >>> 0, off + 12);
}

export function decodeNlmsghdr(buf: Buffer, off: number): NlMsgHdr {
  if (off < 0 || off + NLMSG_HDRLEN > buf.length) throw new NetlinkFormatError(`${buf.length - off} bytes left, a header needs ${NLMSG_HDRLEN}`);
  return { len: buf.readUInt32LE(off), type: buf.readUInt16LE(off + 4), flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), pid: buf.readUInt32LE(off + 12) };
}

/** One attribute: header, payload, zero padding. */
export function nlattr(type: number, payload: Buffer): Buffer {
  if (NLA_HDRLEN + payload.length > 0xffff) throw new RangeError(`attribute ${type} payload too long (${payload.length} bytes)`);
  const out = Buffer.alloc(align4(NLA_HDRLEN + payload.length));
  out.writeUInt16LE(NLA_HDRLEN + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, NLA_HDRLEN);
  return out;
}

export const u8 = (v: number) => Buffer.from([v]);
export const u16 = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
export const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
export const s32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
/** NUL-terminated string attribute; interface names stay within IFNAMSIZ including the NUL. */
export function cstr(s: string, max: number, what: string): Buffer {
  // One buffer, the NUL already in it (a batch encodes hundreds of names).
  const n = Buffer.byteLength(s, 'utf8');
  if (n === 0 || n >= max || s.includes('\0')) throw new RangeError(`${what} "${s}" must be 1..${max - 1} bytes without NUL`);
  const out = Buffer.alloc(n + 1);
  out.write(s, 0, n, 'utf8');
  return out;
}

/** A generic netlink request: nlmsghdr + genlmsghdr (version 0, as the kernel replies) + attributes. */
export function genlMessage(type: number, flags: number, seq: number, cmd: number, attrs: Buffer[]): Buffer {
  const body = Buffer.concat(attrs);
  const out = Buffer.alloc(NLMSG_HDRLEN + GENL_HDRLEN + body.length);
  encodeNlmsghdr({ len: out.length, type, flags, seq, pid: 0 }, out, 0);
  out[NLMSG_HDRLEN] = cmd;
  body.copy(out, NLMSG_HDRLEN + GENL_HDRLEN);
  return out;
}

/** Attributes in payload[start, payload.length); malformed input throws, never reads past the end. */
export function parseAttrs(payload: Buffer, start: number): NlAttr[] {
  const out: NlAttr[] = [];
  let off = start;
  while (off < payload.length) {
    if (payload.length - off < NLA_HDRLEN) throw new NetlinkFormatError(`${payload.length - off} stray bytes after the last attribute`);
    const len = payload.readUInt16LE(off);
    const type = payload.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN) throw new NetlinkFormatError(`attribute ${type} has nla_len ${len} < ${NLA_HDRLEN}`);
    if (off + len > payload.length) throw new NetlinkFormatError(`attribute ${type} (nla_len ${len}) overruns its message by ${off + len - payload.length} bytes`);
    out.push({ type, payload: payload.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into messages. Chunks from successive recv() calls are pushed in order; a
 * message split across chunks is kept until complete. Each message is followed by padding to 4.
 */
export class NetlinkStream {
  private pending: Buffer = EMPTY;
  private skip = 0;

  push(chunk: Buffer): NlMessage[] {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const drop = Math.min(this.skip, data.length);
    data = data.subarray(drop);
    this.skip -= drop;
    const out: NlMessage[] = [];
    let off = 0;
    // The payloads are views of one copy of the chunk: the caller's buffer is reused for the next read.
    let copy: Buffer | undefined;
    while (data.length - off >= NLMSG_HDRLEN) {
      const h = decodeNlmsghdr(data, off) as NlMessage;
      if (h.len < NLMSG_HDRLEN) throw new NetlinkFormatError(`nlmsg_len ${h.len} is shorter than the ${NLMSG_HDRLEN}-byte header`);
      if (h.len > NLMSG_MAX_LEN) throw new NetlinkFormatError(`nlmsg_len ${h.len} exceeds ${NLMSG_MAX_LEN}`);
      if (data.length - off < h.len) break;
      copy ??= Buffer.from(data.subarray(off));
      h.payload = copy.subarray(off - (data.length - copy.length) + NLMSG_HDRLEN, off - (data.length - copy.length) + h.len);
      out.push(h);
      const next = off + align4(h.len);
      this.skip = Math.max(0, next - data.length);
      off = Math.min(next, data.length);
    }
    this.pending = off === data.length ? EMPTY : Buffer.from(data.subarray(off));
    return out;
  }

  /** Bytes of an incomplete message still waiting for the rest. */
  get pendingBytes(): number {
    return this.pending.length;
  }
}

/** Every complete message of one buffer; a truncated trailing message is an error. */
export function splitMessages(bytes: Buffer): NlMessage[] {
  const s = new NetlinkStream();
  const msgs = s.push(bytes);
  if (s.pendingBytes) throw new NetlinkFormatError(`${s.pendingBytes} bytes of a truncated message at the end`);
  return msgs;
}

export interface NlError {
  /** Positive errno whichever sign the kernel used (§12.1); 0 is an acknowledgement. */
  errno: number;
  echo?: NlMsgHdr;
  /** NLMSGERR_ATTR_MSG text when the kernel sent extended-ack attributes. */
  message?: string;
}

export function decodeNlmsgerr(m: NlMessage): NlError {
  const p = m.payload;
  if (p.length < 4) throw new NetlinkFormatError(`NLMSG_ERROR payload is ${p.length} bytes, needs at least 4`);
  const errno = Math.abs(p.readInt32LE(0));
  if (p.length < NLMSGERR_LEN) return { errno };
  const echo = decodeNlmsghdr(p, 4);
  let message: string | undefined;
  if (m.flags & NLM_F_ACK_TLVS) {
    // The echo is the whole request unless capped; extended-ack attributes follow it. Their
    // text only decorates the errno, so a malformed tail is ignored rather than thrown.
    const tlvs = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(echo.len));
    try {
      const a = tlvs <= p.length ? parseAttrs(p, tlvs).find((x) => x.type === NLMSGERR_ATTR_MSG) : undefined;
      if (a) message = a.payload.toString('utf8').replace(/\0.*$/s, '');
    } catch { /* decoration only */ }
  }
  return { errno, echo, ...(message ? { message } : {}) };
}

/** How the reply to one request ended: the errno of its NLMSG_ERROR or NLMSG_DONE, 0 for success. */
export interface ReplyEnd {
  errno: number;
  /** NLMSGERR_ATTR_MSG, the kernel's explanation of a failure, when it sent one. */
  message?: string;
}

/**
 * The reply to one request, told apart from what else a socket receives. Messages of another
 * sequence number (the reply to an earlier request that was given up on) and NLMSG_NOOP are
 * not part of it; NLMSG_ERROR ends it (errno 0: the acknowledgement), and so does NLMSG_DONE,
 * which ends a dump with an errno as its int payload. That errno's sign is the platform's
 * (FreeBSD writes it positive, Linux negative: freebsd-kernel-abi.md §12.1), so `doneErrno`
 * turns the raw value into a positive errno or 0. NLMSG_ERROR's errno is read with either sign.
 */
export class NetlinkReply {
  /** Set once the reply has ended; later messages are not part of it. */
  ended?: ReplyEnd;
  /** Whether a message of the reply carried NLM_F_DUMP_INTR. */
  interrupted = false;

  /** `seq` undefined: every sequence number belongs to the reply. */
  constructor(
    private readonly seq: number | undefined,
    private readonly doneErrno: (raw: number) => number,
  ) {}

  /** true when `m` is content of the reply (neither foreign, nor a no-op, nor its end). */
  accept(m: NlMessage): boolean {
    if (this.ended || (this.seq !== undefined && m.seq !== this.seq)) return false;
    if (m.flags & NLM_F_DUMP_INTR) this.interrupted = true;
    if (m.type === NLMSG_NOOP) return false;
    if (m.type === NLMSG_ERROR) {
      const e = decodeNlmsgerr(m);
      this.ended = e.message === undefined ? { errno: e.errno } : { errno: e.errno, message: e.message };
      return false;
    }
    if (m.type === NLMSG_DONE) {
      this.ended = { errno: m.payload.length >= 4 ? this.doneErrno(m.payload.readInt32LE(0)) : 0 };
      return false;
    }
    return true;
  }
}
