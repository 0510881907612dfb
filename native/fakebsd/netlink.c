/*
 * Generic netlink as FreeBSD 14+ implements it for carp(4): the "nlctrl" family
 * resolver and the "carp" family (CARP_NL_CMD_GET / CARP_NL_CMD_SET).
 *
 * FreeBSD differences that matter to a client: NLMSG_ERROR carries a positive errno,
 * GET always answers as a dump (NLM_F_MULTI messages then NLMSG_DONE carrying the
 * result, no extra ACK), SET zero-fills attributes that are not sent.
 */
#define _GNU_SOURCE
#include "fakebsd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NL_ALIGN(x) (((x) + 3u) & ~3u)
#define GENL_CMD_CAP_DO 0x02
#define GENL_CMD_CAP_DUMP 0x04
#define GENL_CMD_CAP_HASPOL 0x08

/* ---- writer ---- */

static int nlw_reserve(struct fk_buf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 1024;
	while (ncap < b->len + n)
		ncap *= 2;
	uint8_t *nd = realloc(b->data, ncap);
	if (nd == NULL)
		return -1;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

static void nlw_put(struct fk_buf *b, const void *data, size_t len)
{
	size_t padded = NL_ALIGN(len);
	if (nlw_reserve(b, padded) != 0)
		return;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	memset(b->data + b->len + len, 0, padded - len);
	b->len += padded;
}

static size_t nlw_begin(struct fk_buf *b, uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid)
{
	struct fbsd_nlmsghdr h = {.nlmsg_len = 0, .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq,
	                          .nlmsg_pid = pid};
	size_t off = b->len;
	nlw_put(b, &h, sizeof(h));
	return off;
}

static void nlw_end(struct fk_buf *b, size_t off)
{
	if (b->data == NULL || off + sizeof(struct fbsd_nlmsghdr) > b->len)
		return;
	uint32_t l = (uint32_t)(b->len - off);
	memcpy(b->data + off, &l, 4);
}

static void nlw_genl(struct fk_buf *b, uint8_t cmd, uint8_t version)
{
	struct fbsd_genlmsghdr g = {.cmd = cmd, .version = version, .reserved = 0};
	nlw_put(b, &g, sizeof(g));
}

static void nlw_attr(struct fk_buf *b, uint16_t type, const void *data, size_t len)
{
	struct fbsd_nlattr a = {.nla_len = (uint16_t)(sizeof(a) + len), .nla_type = type};
	size_t total = NL_ALIGN(sizeof(a) + len);
	if (nlw_reserve(b, total) != 0)
		return;
	memcpy(b->data + b->len, &a, sizeof(a));
	if (len > 0)
		memcpy(b->data + b->len + sizeof(a), data, len);
	memset(b->data + b->len + sizeof(a) + len, 0, total - sizeof(a) - len);
	b->len += total;
}

static void nlw_u8(struct fk_buf *b, uint16_t type, uint8_t v)
{
	nlw_attr(b, type, &v, 1);
}

static void nlw_u16(struct fk_buf *b, uint16_t type, uint16_t v)
{
	nlw_attr(b, type, &v, 2);
}

static void nlw_u32(struct fk_buf *b, uint16_t type, uint32_t v)
{
	nlw_attr(b, type, &v, 4);
}

static size_t nlw_nest_begin(struct fk_buf *b, uint16_t type)
{
	size_t off = b->len;
	nlw_attr(b, type, NULL, 0);
	return off;
}

static void nlw_nest_end(struct fk_buf *b, size_t off)
{
	if (b->data == NULL)
		return;
	uint16_t l = (uint16_t)(b->len - off);
	memcpy(b->data + off, &l, 2);
}

/* nlmsg_ack(): positive errno; the whole request is echoed on error, the header on success. */
static void nl_ack(struct fk_buf *out, uint32_t port, const struct fbsd_nlmsghdr *req, const uint8_t *raw,
                   int error)
{
	int capped = error == 0;
	size_t reqlen = capped ? sizeof(*req) : req->nlmsg_len;
	size_t off = nlw_begin(out, FBSD_NLMSG_ERROR, capped ? FBSD_NLM_F_CAPPED : 0, req->nlmsg_seq, port);
	int32_t e = error;
	uint8_t *tmp = malloc(4 + reqlen);
	if (tmp == NULL)
		return;
	memcpy(tmp, &e, 4);
	memcpy(tmp + 4, raw, reqlen);
	nlw_put(out, tmp, 4 + reqlen);
	fk_real_free(tmp);
	nlw_end(out, off);
}

/* nlmsg_end_dump(): NLMSG_DONE with the operation result as an int payload. */
static void nl_done(struct fk_buf *out, const struct fbsd_nlmsghdr *req, int error)
{
	size_t off = nlw_begin(out, FBSD_NLMSG_DONE, 0, req->nlmsg_seq, req->nlmsg_pid);
	int32_t e = error;
	nlw_put(out, &e, 4);
	nlw_end(out, off);
}

/* ---- attribute parsing ---- */

struct nl_carp_parsed {
	uint32_t ifindex;
	int has_ifname;
	char ifname[64];
	uint32_t state;
	uint32_t vhid;
	int32_t advbase;
	int32_t advskew;
	uint8_t key[FBSD_CARP_KEY_LEN];
	uint8_t addr[4];
	uint8_t addr6[16];
	uint8_t version;
	uint8_t vrrp_priority;
	uint16_t vrrp_adv_inter;
};

struct nl_ctrl_parsed {
	uint16_t family_id;
	int has_name;
	char name[64];
};

/* Iterates attributes; the callback returns an errno to stop. */
typedef int (*nl_attr_cb)(void *ctx, uint16_t type, const uint8_t *data, size_t dlen);

static int nl_parse_attrs(const uint8_t *p, size_t len, nl_attr_cb cb, void *ctx)
{
	size_t off = 0;
	while (len - off >= sizeof(struct fbsd_nlattr)) {
		struct fbsd_nlattr a;
		memcpy(&a, p + off, sizeof(a));
		if (a.nla_len < sizeof(a) || a.nla_len > len - off)
			return FBSD_EINVAL;
		int err = cb(ctx, a.nla_type & FBSD_NLA_TYPE_MASK, p + off + sizeof(a), a.nla_len - sizeof(a));
		if (err != 0)
			return err;
		off += NL_ALIGN(a.nla_len);
		if (off > len)
			break;
	}
	return 0;
}

static int nl_get_u32(const uint8_t *d, size_t l, uint32_t *out)
{
	if (l != 4)
		return FBSD_EINVAL;
	memcpy(out, d, 4);
	return 0;
}

static int nl_get_string(const uint8_t *d, size_t l, char *out, size_t outlen)
{
	if (l == 0 || d[l - 1] != '\0')
		return FBSD_EINVAL;
	fk_strlcpy(out, (const char *)d, outlen);
	return 0;
}

struct carp_parse_ctx {
	struct nl_carp_parsed *a;
	int v15;
};

static int nl_carp_attr(void *vctx, uint16_t type, const uint8_t *d, size_t l)
{
	struct carp_parse_ctx *ctx = vctx;
	struct nl_carp_parsed *a = ctx->a;
	uint32_t u;
	switch (type) {
	case FBSD_CARP_NL_VHID: return nl_get_u32(d, l, &a->vhid);
	case FBSD_CARP_NL_STATE: return nl_get_u32(d, l, &a->state);
	case FBSD_CARP_NL_ADVBASE:
		if (nl_get_u32(d, l, &u) != 0)
			return FBSD_EINVAL;
		a->advbase = (int32_t)u;
		return 0;
	case FBSD_CARP_NL_ADVSKEW:
		if (nl_get_u32(d, l, &u) != 0)
			return FBSD_EINVAL;
		a->advskew = (int32_t)u;
		return 0;
	case FBSD_CARP_NL_KEY:
		if (l > FBSD_CARP_KEY_LEN)
			return FBSD_EINVAL;
		memcpy(a->key, d, l);
		return 0;
	case FBSD_CARP_NL_IFINDEX: return nl_get_u32(d, l, &a->ifindex);
	case FBSD_CARP_NL_ADDR:
		if (l != 4)
			return FBSD_EINVAL;
		memcpy(a->addr, d, 4);
		return 0;
	case FBSD_CARP_NL_ADDR6:
		if (l != 16)
			return FBSD_EINVAL;
		memcpy(a->addr6, d, 16);
		return 0;
	case FBSD_CARP_NL_IFNAME:
		a->has_ifname = 1;
		return nl_get_string(d, l, a->ifname, sizeof(a->ifname));
	case FBSD_CARP_NL_VERSION:
		if (!ctx->v15)
			return 0;
		if (l != 1)
			return FBSD_EINVAL;
		a->version = d[0];
		return 0;
	case FBSD_CARP_NL_VRRP_PRIORITY:
		if (!ctx->v15)
			return 0;
		if (l != 1)
			return FBSD_EINVAL;
		a->vrrp_priority = d[0];
		return 0;
	case FBSD_CARP_NL_VRRP_ADV_INTER:
		if (!ctx->v15)
			return 0;
		if (l != 2)
			return FBSD_EINVAL;
		memcpy(&a->vrrp_adv_inter, d, 2);
		return 0;
	default: return 0; /* unknown attributes are ignored */
	}
}

static int nl_ctrl_attr(void *vctx, uint16_t type, const uint8_t *d, size_t l)
{
	struct nl_ctrl_parsed *c = vctx;
	switch (type) {
	case FBSD_CTRL_ATTR_FAMILY_ID:
		if (l != 2)
			return FBSD_EINVAL;
		memcpy(&c->family_id, d, 2);
		return 0;
	case FBSD_CTRL_ATTR_FAMILY_NAME:
		c->has_name = 1;
		return nl_get_string(d, l, c->name, sizeof(c->name));
	default: return 0;
	}
}

/* ---- nlctrl ---- */

struct nl_family {
	uint16_t id;
	const char *name;
	uint32_t version;
	uint32_t maxattr;
	int nops;
	uint32_t ops[2][2]; /* {cmd, flags} */
};

static int nl_families(const struct fk_state *st, struct nl_family *out)
{
	int n = 0;
	out[n++] = (struct nl_family){FBSD_GENL_ID_CTRL, "nlctrl", 2, 7, 1,
	                              {{FBSD_CTRL_CMD_GETFAMILY, GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP}, {0, 0}}};
	if (st->carp_loaded)
		out[n++] = (struct nl_family){FK_NL_CARP_FAMILY_ID, "carp", 2, 2, 2,
		                              {{FBSD_CARP_NL_CMD_GET, GENL_CMD_CAP_DO | GENL_CMD_CAP_DUMP |
		                                                          GENL_CMD_CAP_HASPOL},
		                               {FBSD_CARP_NL_CMD_SET, GENL_CMD_CAP_DO | GENL_CMD_CAP_HASPOL}}};
	return n;
}

static void nl_dump_family(struct fk_buf *out, const struct fbsd_nlmsghdr *req, uint16_t flags,
                           const struct nl_family *f)
{
	size_t off = nlw_begin(out, req->nlmsg_type, flags, req->nlmsg_seq, req->nlmsg_pid);
	nlw_genl(out, FBSD_CTRL_CMD_NEWFAMILY, (uint8_t)f->version);
	nlw_u16(out, FBSD_CTRL_ATTR_FAMILY_ID, f->id);
	nlw_attr(out, FBSD_CTRL_ATTR_FAMILY_NAME, f->name, strlen(f->name) + 1);
	nlw_u32(out, FBSD_CTRL_ATTR_VERSION, f->version);
	nlw_u32(out, FBSD_CTRL_ATTR_HDRSIZE, 0);
	nlw_u32(out, FBSD_CTRL_ATTR_MAXATTR, f->maxattr);
	size_t ops = nlw_nest_begin(out, FBSD_CTRL_ATTR_OPS);
	for (int i = 0; i < f->nops; i++) {
		size_t op = nlw_nest_begin(out, (uint16_t)(i + 1));
		nlw_u32(out, FBSD_CTRL_ATTR_OP_ID, f->ops[i][0]);
		nlw_u32(out, FBSD_CTRL_ATTR_OP_FLAGS, f->ops[i][1]);
		nlw_nest_end(out, op);
	}
	nlw_nest_end(out, ops);
	nlw_end(out, off);
}

static int nl_ctrl(struct fk_state *st, const struct fbsd_nlmsghdr *req, const uint8_t *attrs, size_t alen,
                   uint8_t cmd, struct fk_buf *out, int *suppress_ack)
{
	st->netlink_counts[0]++;
	if (cmd != FBSD_CTRL_CMD_GETFAMILY)
		return FBSD_EOPNOTSUPP;
	struct nl_ctrl_parsed c;
	memset(&c, 0, sizeof(c));
	int err = nl_parse_attrs(attrs, alen, nl_ctrl_attr, &c);
	if (err != 0)
		return err;
	struct nl_family fams[2];
	int n = nl_families(st, fams);
	if (c.family_id != 0 || c.has_name) {
		for (int i = 0; i < n; i++) {
			if ((c.family_id != 0 && fams[i].id == c.family_id) ||
			    (c.has_name && strcmp(fams[i].name, c.name) == 0)) {
				nl_dump_family(out, req, req->nlmsg_flags, &fams[i]);
				return 0;
			}
		}
		return FBSD_ENOENT; /* libifconfig turns this into EPROTONOSUPPORT for "carp" */
	}
	for (int i = 0; i < n; i++)
		nl_dump_family(out, req, req->nlmsg_flags | FBSD_NLM_F_MULTI, &fams[i]);
	nl_done(out, req, 0);
	*suppress_ack = 1;
	return 0;
}

/* ---- carp family ---- */

static struct fk_if *nl_carp_ifp(struct fk_state *st, const struct nl_carp_parsed *a)
{
	if (a->has_ifname) {
		if (strlen(a->ifname) >= FBSD_IFNAMSIZ)
			return NULL;
		return fk_if_by_name(st, a->ifname);
	}
	if (a->ifindex != 0)
		return fk_if_by_index(st, (int)a->ifindex);
	return NULL;
}

static void nl_carp_send(struct fk_state *st, struct fk_buf *out, const struct fbsd_nlmsghdr *req,
                         const struct fk_vhid *vh, int priv)
{
	size_t off = nlw_begin(out, req->nlmsg_type, req->nlmsg_flags | FBSD_NLM_F_MULTI, req->nlmsg_seq,
	                       req->nlmsg_pid);
	nlw_genl(out, FBSD_CARP_NL_CMD_GET, 0);
	nlw_u32(out, FBSD_CARP_NL_VHID, (uint32_t)vh->vhid);
	nlw_u32(out, FBSD_CARP_NL_STATE, (uint32_t)vh->state);
	nlw_u32(out, FBSD_CARP_NL_ADVBASE, (uint32_t)vh->advbase);
	nlw_u32(out, FBSD_CARP_NL_ADVSKEW, (uint32_t)vh->advskew);
	nlw_attr(out, FBSD_CARP_NL_ADDR, vh->peer, 4);
	nlw_attr(out, FBSD_CARP_NL_ADDR6, vh->peer6, 16);
	if (priv)
		nlw_attr(out, FBSD_CARP_NL_KEY, vh->key, FBSD_CARP_KEY_LEN);
	if (st->osreldate >= FBSD_OSREL_15) {
		nlw_u8(out, FBSD_CARP_NL_VERSION, (uint8_t)vh->version);
		nlw_u8(out, FBSD_CARP_NL_VRRP_PRIORITY, (uint8_t)vh->vrrp_priority);
		nlw_u16(out, FBSD_CARP_NL_VRRP_ADV_INTER, (uint16_t)vh->vrrp_adv_inter);
	}
	nlw_end(out, off);
}

static int nl_carp_get(struct fk_state *st, const struct fbsd_nlmsghdr *req, const struct nl_carp_parsed *a,
                       struct fk_buf *out, int *suppress_ack)
{
	struct fk_if *ifp = nl_carp_ifp(st, a);
	if (ifp == NULL)
		return FBSD_ENXIO;
	if (!fk_carp_supported(ifp))
		return FBSD_EOPNOTSUPP;

	/* carp_ioctl_get() with carpr_count = CARP_MAXVHID, result reported in NLMSG_DONE. */
	int error = 0;
	int priv = st->uid == 0;
	if (a->vhid > FBSD_CARP_MAXVHID) {
		error = FBSD_EINVAL;
	} else if (!fk_if_has_carp(st, ifp->name)) {
		error = FBSD_ENOENT;
	} else if (a->vhid != 0) {
		struct fk_vhid *vh = fk_vhid_find(st, ifp->name, (int)a->vhid);
		if (vh == NULL)
			error = FBSD_ENOENT;
		else
			nl_carp_send(st, out, req, vh, priv);
	} else {
		for (int i = 0; i < st->nvhids; i++)
			if (strcmp(st->vhids[i].ifname, ifp->name) == 0)
				nl_carp_send(st, out, req, &st->vhids[i], priv);
	}
	nl_done(out, req, error);
	*suppress_ack = 1;
	return error;
}

int fk_carp_set(struct fk_state *st, struct fk_if *ifp, const struct fbsd_carpreq *cr, const uint8_t *peer,
                const uint8_t *peer6) __attribute__((visibility("hidden")));

static int nl_carp_set(struct fk_state *st, const struct nl_carp_parsed *a)
{
	/* carp_nl_set() validates the values before it looks at the interface. */
	if (a->vhid == 0 || a->vhid > FBSD_CARP_MAXVHID)
		return FBSD_EINVAL;
	if (a->state > FBSD_CARP_MAXSTATE)
		return FBSD_EINVAL;
	if (a->advbase < 0 || a->advskew < 0)
		return FBSD_EINVAL;
	if (a->advbase > 255)
		return FBSD_EINVAL;
	if (a->advskew >= 255)
		return FBSD_EINVAL;
	if (st->osreldate >= FBSD_OSREL_15) {
		if (a->version != 0 && a->version != FBSD_CARP_VERSION_CARP && a->version != FBSD_CARP_VERSION_VRRPv3)
			return FBSD_EINVAL;
		if (a->vrrp_adv_inter > 0x0fff)
			return FBSD_EINVAL;
	}
	struct fk_if *ifp = nl_carp_ifp(st, a);
	if (ifp == NULL)
		return FBSD_ENXIO;
	if (!fk_carp_supported(ifp))
		return FBSD_EOPNOTSUPP;
	if (!(ifp->flags & FBSD_IFF_MULTICAST))
		return FBSD_EADDRNOTAVAIL;

	/* Every field comes from the (zero-filled) parsed attributes: omitted = 0. */
	struct fbsd_carpreq cr;
	memset(&cr, 0, sizeof(cr));
	cr.carpr_count = 1;
	cr.carpr_vhid = (int32_t)a->vhid;
	cr.carpr_state = (int32_t)a->state;
	cr.carpr_advbase = a->advbase;
	cr.carpr_advskew = a->advskew;
	memcpy(cr.carpr_key, a->key, sizeof(cr.carpr_key));
	int err = fk_carp_set(st, ifp, &cr, a->addr, a->addr6);
	if (err != 0 || st->osreldate < FBSD_OSREL_15)
		return err;
	struct fk_vhid *vh = fk_vhid_find(st, ifp->name, (int)a->vhid);
	if (vh != NULL) {
		if (a->version != 0)
			vh->version = a->version;
		if (a->vrrp_priority != 0)
			vh->vrrp_priority = a->vrrp_priority;
		if (a->vrrp_adv_inter != 0)
			vh->vrrp_adv_inter = a->vrrp_adv_inter;
	}
	return 0;
}

static int nl_carp(struct fk_state *st, const struct fbsd_nlmsghdr *req, const uint8_t *attrs, size_t alen,
                   uint8_t cmd, struct fk_buf *out, int *suppress_ack)
{
	if (cmd == FBSD_CARP_NL_CMD_GET)
		st->netlink_counts[1]++;
	else if (cmd == FBSD_CARP_NL_CMD_SET)
		st->netlink_counts[2]++;
	else
		st->netlink_counts[3]++;
	if (cmd != FBSD_CARP_NL_CMD_GET && cmd != FBSD_CARP_NL_CMD_SET)
		return FBSD_EOPNOTSUPP;
	if (cmd == FBSD_CARP_NL_CMD_SET && st->uid != 0)
		return FBSD_EPERM; /* cmd_priv PRIV_NETINET_CARP, checked before parsing */
	if (st->fail_nl_armed && (st->fail_nl_cmd == 0 || st->fail_nl_cmd == cmd)) {
		st->fail_nl_armed = 0;
		return st->fail_nl_errno;
	}

	struct nl_carp_parsed a;
	memset(&a, 0, sizeof(a));
	struct carp_parse_ctx ctx = {&a, st->osreldate >= FBSD_OSREL_15};
	int err = nl_parse_attrs(attrs, alen, nl_carp_attr, &ctx);
	if (err != 0)
		return err;
	if (cmd == FBSD_CARP_NL_CMD_GET)
		return nl_carp_get(st, req, &a, out, suppress_ack);
	return nl_carp_set(st, &a);
}

/* ---- entry ---- */

static void nl_one(struct fk_state *st, uint32_t port, const uint8_t *raw, struct fk_buf *out)
{
	struct fbsd_nlmsghdr req;
	memcpy(&req, raw, sizeof(req));
	st->netlink_total++;
	if (!(req.nlmsg_flags & FBSD_NLM_F_REQUEST) || req.nlmsg_type < FBSD_NLMSG_MIN_TYPE)
		return; /* the kernel ignores non-requests and control messages */

	int error;
	int suppress_ack = 0;
	if (req.nlmsg_type != FBSD_GENL_ID_CTRL && !(req.nlmsg_type == FK_NL_CARP_FAMILY_ID && st->carp_loaded)) {
		error = FBSD_EOPNOTSUPP; /* genl: unknown family id -> ENOTSUP */
		st->netlink_counts[3]++;
	} else if (req.nlmsg_len < sizeof(req) + sizeof(struct fbsd_genlmsghdr)) {
		error = FBSD_EINVAL;
	} else {
		struct fbsd_genlmsghdr g;
		memcpy(&g, raw + sizeof(req), sizeof(g));
		const uint8_t *attrs = raw + sizeof(req) + sizeof(g);
		size_t alen = req.nlmsg_len - sizeof(req) - sizeof(g);
		if (req.nlmsg_type == FBSD_GENL_ID_CTRL)
			error = nl_ctrl(st, &req, attrs, alen, g.cmd, out, &suppress_ack);
		else
			error = nl_carp(st, &req, attrs, alen, g.cmd, out, &suppress_ack);
	}
	if (!suppress_ack && (error != 0 || (req.nlmsg_flags & FBSD_NLM_F_ACK)))
		nl_ack(out, port, &req, raw, error);
}

void fk_netlink_process(struct fk_state *st, uint32_t port, const uint8_t *msg, size_t len, struct fk_buf *out)
{
	size_t off = 0;
	while (len - off >= sizeof(struct fbsd_nlmsghdr)) {
		struct fbsd_nlmsghdr h;
		memcpy(&h, msg + off, sizeof(h));
		if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len - off) {
			/* The kernel drops a malformed tail silently; say why here. */
			fprintf(stderr, "fakebsd: netlink message with nlmsg_len %u in a %zu-byte send dropped\n",
			        h.nlmsg_len, len - off);
			return;
		}
		nl_one(st, port, msg + off, out);
		off += NL_ALIGN(h.nlmsg_len);
		if (off > len)
			break;
	}
}
