/**
 * The carp(4) generic netlink family, FreeBSD 14+ (freebsd-kernel-abi.md §3.5, §12.1, §12.6,
 * §12.7; ip_carp.c carp_nl_get/carp_nl_set). The only way to set unicast peers.
 *
 *  GET request  nlmsghdr{type = family id, flags = REQUEST|DUMP} genlmsghdr{cmd = 1}
 *               [VHID u32 (absent = all)] [IFINDEX u32] [IFNAME "em0\0"]
 *  GET reply    one NLM_F_MULTI message per vhid, genlmsghdr{cmd = 1}, then NLMSG_DONE{i32 errno}
 *               VHID u32, STATE u32, ADVBASE s32, ADVSKEW s32, ADDR in_addr, ADDR6 in6_addr,
 *               KEY u8[20] (privileged callers only), 15.0+: VERSION u8, VRRP_PRIORITY u8,
 *               VRRP_ADV_INTER u16
 *  SET request  nlmsghdr{flags = REQUEST|ACK} genlmsghdr{cmd = 2} with every attribute:
 *
 *   +0  nlmsghdr (16)                 +44 ADVSKEW  len 8  s32
 *   +16 genlmsghdr{2, 0, 0} (4)       +52 KEY      len 4 + k (<= 20), padded
 *   +20 VHID     nla_len 8  u32       .. [IFINDEX len 8  u32]      (only when given: see below)
 *   +28 STATE    len 8  u32 (0)       ..  ADDR     len 8  in_addr   (224.0.0.18 = multicast)
 *   +36 ADVBASE  len 8  s32           ..  ADDR6    len 20 in6_addr  (ff02::12 = multicast)
 *                                     ..  IFNAME   len 4 + n + 1, padded
 *  reply: NLMSG_ERROR{error 0 or errno (positive on FreeBSD)}
 */
import { ADVBASE_SEC, ADVSKEW, VHID } from '../../wire/limits.js';
import type { CarpState } from '../backend.js';
import { CARP_KEY_LEN, IFNAMSIZ, IN6ADDR_CARP_GROUP, INADDR_CARP_GROUP, carpStateName, in4Bytes, in6Bytes, ipText } from './layout.js';
import { carpKeyRaw } from './layout-carp.js';
import {
  GENL_HDRLEN,
  NLA_HDRLEN,
  NLMSG_HDRLEN,
  NLMSG_MIN_TYPE,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NlMessage,
  NetlinkFormatError,
  NetlinkReply,
  NetlinkStream,
  type ReplyContext,
  cstr,
  encodeNlmsghdr,
  freebsdDoneErrno,
  genlMessage,
  kernelError,
  nlattr,
  u32,
} from './netlink.js';

export const CARP_NL_FAMILY_NAME = 'carp';
/** The multicast groups (what a vhid without unicast peers carries) and the unspecified addresses, as bytes. */
const GROUP4 = in4Bytes(INADDR_CARP_GROUP);
const GROUP6 = in6Bytes(IN6ADDR_CARP_GROUP);
const ZERO4 = Buffer.alloc(4);
const ZERO6 = Buffer.alloc(16);
export const CARP_NL_CMD_GET = 1;
export const CARP_NL_CMD_SET = 2;
export const CARP_NL = {
  VHID: 1, STATE: 2, ADVBASE: 3, ADVSKEW: 4, KEY: 5, IFINDEX: 6, ADDR: 7, ADDR6: 8, IFNAME: 9,
  VERSION: 10, VRRP_PRIORITY: 11, VRRP_ADV_INTER: 12, // 15.0+
} as const;

export interface CarpGetQuery {
  familyId: number;
  seq: number;
  ifname?: string;
  ifindex?: number;
  /** Absent or 0: every vhid of the interface. */
  vhid?: number;
}

export function buildCarpGetRequest(q: CarpGetQuery): Buffer {
  if (q.ifname === undefined && q.ifindex === undefined) throw new RangeError('carp GET needs ifname or ifindex (otherwise ENXIO)');
  const attrs: Buffer[] = [];
  if (q.vhid) attrs.push(nlattr(CARP_NL.VHID, u32(inRange('vhid', q.vhid, 0, 255))));
  if (q.ifindex !== undefined) attrs.push(nlattr(CARP_NL.IFINDEX, u32(inRange('ifindex', q.ifindex, 0, 0xffffffff))));
  if (q.ifname !== undefined) attrs.push(nlattr(CARP_NL.IFNAME, cstr(q.ifname, IFNAMSIZ, 'interface name')));
  return genlMessage(q.familyId, NLM_F_REQUEST | NLM_F_DUMP, q.seq, CARP_NL_CMD_GET, attrs);
}

export interface CarpNlVhid {
  vhid: number;
  state: CarpState;
  advbase: number;
  advskew: number;
  /** Raw key bytes; absent for unprivileged callers. */
  key?: Buffer;
  /** Unicast IPv4 peer; undefined = multicast (224.0.0.18, or 0.0.0.0). */
  peer?: string;
  /** Unicast IPv6 peer; undefined = multicast (ff02::12, or ::). */
  peer6?: string;
  /** 15.0+: 2 CARP, 3 VRRPv3. */
  version?: number;
  vrrpPriority?: number;
  vrrpAdvInterCs?: number;
}

/** The space an attribute with `n` bytes of payload takes, padding included. */
function size(n: number): number {
  return (NLA_HDRLEN + n + 3) & ~3;
}

/** Writes an attribute header at `w.off` and moves past the attribute; answers where its payload goes. */
function attrAt(w: { buf: Buffer; off: number }, type: number, len: number): number {
  w.buf.writeUInt16LE(NLA_HDRLEN + len, w.off);
  w.buf.writeUInt16LE(type, w.off + 2);
  const at = w.off + NLA_HDRLEN;
  w.off += size(len);
  return at;
}

/** Where a fixed-size attribute's payload starts, once its length is checked. */
function fixedAt(at: number, len: number, size: number, name: string): number {
  if (len !== size) throw new NetlinkFormatError(`${name} has ${len} bytes, want ${size}`);
  return at;
}

/** Whether `bytes` sit in `buf` at `at`. */
function sameBytes(buf: Buffer, at: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

/** nla_type without NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
const NLA_TYPE_MASK = 0x3fff;

export function decodeCarpVhid(m: NlMessage): CarpNlVhid {
  if (m.payload.length < GENL_HDRLEN) throw new NetlinkFormatError('carp message without genlmsghdr');
  if (m.payload[0] !== CARP_NL_CMD_GET) throw new NetlinkFormatError(`carp reply with command ${m.payload[0]}, want ${CARP_NL_CMD_GET}`);
  let vhid: number | undefined;
  let stateNum: number | undefined;
  let advbase: number | undefined;
  let advskew: number | undefined;
  const opt: Omit<Partial<CarpNlVhid>, 'vhid' | 'state' | 'advbase' | 'advskew'> = {};
  // The attributes walked in place (parseAttrs' checks, no object per attribute): a dump holds many vhids.
  const payload = m.payload;
  for (let off = GENL_HDRLEN; off < payload.length; ) {
    if (payload.length - off < NLA_HDRLEN) throw new NetlinkFormatError(`${payload.length - off} stray bytes after the last attribute`);
    const len = payload.readUInt16LE(off);
    const type = payload.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN) throw new NetlinkFormatError(`attribute ${type} has nla_len ${len} < ${NLA_HDRLEN}`);
    if (off + len > payload.length) throw new NetlinkFormatError(`attribute ${type} (nla_len ${len}) overruns its message by ${off + len - payload.length} bytes`);
    const at = off + NLA_HDRLEN;
    const n = len - NLA_HDRLEN;
    off += (len + 3) & ~3;
    switch (type) {
      case CARP_NL.VHID: vhid = payload.readUInt32LE(fixedAt(at, n, 4, 'CARP_NL_VHID')); break;
      case CARP_NL.STATE: stateNum = payload.readUInt32LE(fixedAt(at, n, 4, 'CARP_NL_STATE')); break;
      case CARP_NL.ADVBASE: advbase = payload.readInt32LE(fixedAt(at, n, 4, 'CARP_NL_ADVBASE')); break;
      case CARP_NL.ADVSKEW: advskew = payload.readInt32LE(fixedAt(at, n, 4, 'CARP_NL_ADVSKEW')); break;
      case CARP_NL.KEY:
        if (n > CARP_KEY_LEN) throw new NetlinkFormatError(`CARP_NL_KEY has ${n} bytes, at most ${CARP_KEY_LEN}`);
        opt.key = Buffer.from(payload.subarray(at, at + n));
        break;
      case CARP_NL.ADDR: {
        // Multicast (the group, or nothing) is what almost every vhid has: no text made for it.
        fixedAt(at, n, 4, 'CARP_NL_ADDR');
        if (sameBytes(payload, at, GROUP4) || sameBytes(payload, at, ZERO4)) delete opt.peer;
        else opt.peer = ipText(payload.subarray(at, at + 4));
        break;
      }
      case CARP_NL.ADDR6: {
        fixedAt(at, n, 16, 'CARP_NL_ADDR6');
        if (sameBytes(payload, at, GROUP6) || sameBytes(payload, at, ZERO6)) delete opt.peer6;
        else opt.peer6 = ipText(payload.subarray(at, at + 16));
        break;
      }
      case CARP_NL.VERSION: opt.version = payload[fixedAt(at, n, 1, 'CARP_NL_VERSION')]; break;
      case CARP_NL.VRRP_PRIORITY: opt.vrrpPriority = payload[fixedAt(at, n, 1, 'CARP_NL_VRRP_PRIORITY')]; break;
      case CARP_NL.VRRP_ADV_INTER: opt.vrrpAdvInterCs = payload.readUInt16LE(fixedAt(at, n, 2, 'CARP_NL_VRRP_ADV_INTER')); break;
      default: break; // attributes of later versions
    }
  }
  if (vhid === undefined || stateNum === undefined || advbase === undefined || advskew === undefined) {
    throw new NetlinkFormatError('carp reply lacks one of VHID, STATE, ADVBASE, ADVSKEW');
  }
  const state = carpStateName(stateNum);
  if (!state) throw new NetlinkFormatError(`carp reply with unknown state ${stateNum}`);
  return { vhid, state, advbase, advskew, ...opt };
}

/**
 * Collects a GET dump. The request socket hands it each message of the reply (message()); for
 * bytes as received, push() each recv() buffer until it returns true (NLMSG_DONE, or an
 * acknowledgement). An errno in NLMSG_ERROR or NLMSG_DONE throws KernelError (e.g. ENOENT: no
 * such vhid, or no carp on the interface); malformed bytes throw NetlinkFormatError.
 */
export class CarpGetReplyParser {
  readonly vhids: CarpNlVhid[] = [];
  private stream = new NetlinkStream();
  private readonly reply: NetlinkReply;
  private finished = false;

  constructor(private readonly ctx: ReplyContext & { familyId?: number } = {}) {
    this.reply = new NetlinkReply(ctx.seq, freebsdDoneErrno);
  }

  get done(): boolean {
    return this.finished;
  }

  /** One message of the dump (not its end): a vhid of the carp family. */
  message(m: NlMessage): void {
    const wanted = this.ctx.familyId ?? m.type;
    if (m.type !== wanted || m.type < NLMSG_MIN_TYPE) throw new NetlinkFormatError(`unexpected message type ${m.type} in a carp dump`);
    this.vhids.push(decodeCarpVhid(m));
  }

  /** The reply ended (by the socket, which has read its NLMSG_DONE). */
  end(): void {
    this.finished = true;
  }

  push(chunk: Buffer): boolean {
    if (this.finished) return true;
    for (const m of this.stream.push(chunk)) {
      if (this.reply.accept(m)) {
        this.message(m);
        continue;
      }
      const end = this.reply.ended;
      if (!end) continue;
      if (end.errno !== 0) throw kernelError(this.ctx, 'netlink carp GET', end.errno);
      this.finished = true;
      return true;
    }
    return false;
  }

  /** The vhids, once the dump ended; otherwise a NetlinkFormatError (the reply was cut short). */
  result(): CarpNlVhid[] {
    if (!this.finished) throw new NetlinkFormatError('the carp dump ended without NLMSG_DONE');
    return this.vhids;
  }
}

export function parseCarpGetReply(chunks: Iterable<Buffer>, ctx: ReplyContext & { familyId?: number } = {}): CarpNlVhid[] {
  const p = new CarpGetReplyParser(ctx);
  for (const c of chunks) if (p.push(c)) break;
  return p.result();
}

// ---- carp SET ---------------------------------------------------------------------------------

export interface CarpSetParams {
  familyId: number;
  seq: number;
  ifname: string;
  /** Sent only when given: IFNAME names the interface (see buildCarpSetRequest). */
  ifindex?: number;
  vhid: number;
  /** 1..255; 0 keeps the current value (a new vhid starts at 1). */
  advbase: number;
  advskew: number;
  /** Passphrase or raw bytes (<= 20, no NUL). Absent: the kernel keeps its key (key[0] == 0). */
  key?: string | Buffer;
  /** Forces the state like `ifconfig ... state`; absent sends 0, which changes nothing. */
  forceState?: 'BACKUP' | 'MASTER';
  /** Unicast IPv4 peer; undefined = multicast, sent as 224.0.0.18. */
  peer?: string;
  /** Unicast IPv6 peer; undefined = multicast, sent as ff02::12. */
  peer6?: string;
  /** 15.0+ only; sent when given (pass the values read by GET to keep them). */
  version?: number;
  vrrpPriority?: number;
  vrrpAdvInterCs?: number;
}

function inRange(what: string, v: number, lo: number, hi: number): number {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${what} ${v} outside ${lo}..${hi}`);
  return v;
}

/**
 * The kernel fills every attribute a SET leaves out with zero (§3.5, T11), so every one is sent:
 * STATE 0 is a no-op (ip_carp.c acts only on BACKUP/MASTER), an empty KEY keeps the key, and the
 * peers go back to multicast only when the group address itself is sent: 0.0.0.0 / :: would keep
 * the current unicast peer. Ranges are checked here because the kernel creates the vhid before
 * it validates advbase/advskew (§12.6). IFINDEX is the exception: carp_nl_set looks the
 * interface up by IFNAME and falls back to IFINDEX only without a name (ip_carp.c), so an index
 * would cost an if_nametoindex(3) for nothing; it is sent only when the caller has one.
 */
export function buildCarpSetRequest(p: CarpSetParams): Buffer {
  inRange('vhid', p.vhid, VHID.min, VHID.max);
  inRange('advbase', p.advbase, 0, ADVBASE_SEC.max);
  inRange('advskew', p.advskew, ADVSKEW.min, ADVSKEW.max);
  const key = p.key === undefined ? Buffer.alloc(0) : typeof p.key === 'string' ? carpKeyRaw(p.key) : p.key;
  if (key.length > CARP_KEY_LEN) throw new RangeError(`CARP key is ${key.length} bytes; at most ${CARP_KEY_LEN}`);
  const addr = p.peer === undefined ? GROUP4 : in4Bytes(p.peer);
  const addr6 = p.peer6 === undefined ? GROUP6 : in6Bytes(p.peer6);
  // 0.0.0.0 / :: would silently keep the old peer (ip_carp.c carp_ioctl_set): refuse them.
  for (const a of [addr, addr6]) if (a.every((b) => b === 0)) throw new RangeError('an unspecified peer keeps the old one; leave it undefined for multicast');
  if (p.ifindex !== undefined) inRange('ifindex', p.ifindex, 0, 0xffffffff);
  const name = cstr(p.ifname, IFNAMSIZ, 'interface name');
  if (p.version !== undefined) inRange('version', p.version, 0, 255);
  if (p.vrrpPriority !== undefined) inRange('vrrpPriority', p.vrrpPriority, 0, 255);
  if (p.vrrpAdvInterCs !== undefined) inRange('vrrpAdvInterCs', p.vrrpAdvInterCs, 0, 0xfff);
  // One buffer for the whole message, the attributes written in place (a batch builds hundreds).
  const bytes =
    NLMSG_HDRLEN + GENL_HDRLEN + 4 * size(4) + size(key.length) + (p.ifindex !== undefined ? size(4) : 0) + size(4) + size(16) + size(name.length) +
    (p.version !== undefined ? size(1) : 0) + (p.vrrpPriority !== undefined ? size(1) : 0) + (p.vrrpAdvInterCs !== undefined ? size(2) : 0);
  const out = Buffer.alloc(bytes);
  const w = { buf: out, off: NLMSG_HDRLEN + GENL_HDRLEN };
  out.writeUInt32LE(p.vhid >>> 0, attrAt(w, CARP_NL.VHID, 4));
  out.writeUInt32LE(p.forceState === undefined ? 0 : p.forceState === 'BACKUP' ? 1 : 2, attrAt(w, CARP_NL.STATE, 4));
  out.writeInt32LE(p.advbase, attrAt(w, CARP_NL.ADVBASE, 4));
  out.writeInt32LE(p.advskew, attrAt(w, CARP_NL.ADVSKEW, 4));
  key.copy(out, attrAt(w, CARP_NL.KEY, key.length));
  if (p.ifindex !== undefined) out.writeUInt32LE(p.ifindex >>> 0, attrAt(w, CARP_NL.IFINDEX, 4));
  addr.copy(out, attrAt(w, CARP_NL.ADDR, 4));
  addr6.copy(out, attrAt(w, CARP_NL.ADDR6, 16));
  name.copy(out, attrAt(w, CARP_NL.IFNAME, name.length));
  if (p.version !== undefined) out[attrAt(w, CARP_NL.VERSION, 1)] = p.version;
  if (p.vrrpPriority !== undefined) out[attrAt(w, CARP_NL.VRRP_PRIORITY, 1)] = p.vrrpPriority;
  if (p.vrrpAdvInterCs !== undefined) out.writeUInt16LE(p.vrrpAdvInterCs, attrAt(w, CARP_NL.VRRP_ADV_INTER, 2));
  encodeNlmsghdr({ len: bytes, type: p.familyId, flags: NLM_F_REQUEST | NLM_F_ACK, seq: p.seq, pid: 0 }, out, 0);
  out[NLMSG_HDRLEN] = CARP_NL_CMD_SET;
  return out;
}
