/*
 * ioctl(2) dispatch: carp (SIOC[SG]VH), interface addresses (SIOC[AD]IFADDR[_IN6]),
 * pfsync (SIOC{SET,GET}PFSYNC[NV]) and a few interface requests.
 *
 * Each handler copies the caller's struct in and out like copyin/copyout, checks in
 * the kernel's order, and returns a FreeBSD errno (0 on success).
 */
#define _GNU_SOURCE
#include "fakebsd.h"
#include "nv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fk_count_ioctl(struct fk_state *st, uint32_t req)
{
	st->ioctl_total++;
	int free_slot = -1;
	for (int i = 0; i < FK_MAX_IOCTL_COUNTERS; i++) {
		if (st->ioctl_counts[i].count > 0 && st->ioctl_counts[i].request == req) {
			st->ioctl_counts[i].count++;
			return;
		}
		if (free_slot < 0 && st->ioctl_counts[i].count == 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		st->ioctl_counts[free_slot].request = req;
		st->ioctl_counts[free_slot].count = 1;
	}
}

/* Copy the NUL-terminated interface name out of a request (it may lack the NUL). */
static void fk_ifname(char out[FBSD_IFNAMSIZ], const char *in)
{
	memcpy(out, in, FBSD_IFNAMSIZ);
	out[FBSD_IFNAMSIZ - 1] = '\0';
}

static int fk_is_root(const struct fk_state *st)
{
	return st->uid == 0;
}

/* ---- carp ---- */

static void fk_carprcp(const struct fk_vhid *vh, struct fbsd_carpreq *cr, int priv)
{
	cr->carpr_state = vh->state;
	cr->carpr_vhid = vh->vhid;
	cr->carpr_advbase = vh->advbase;
	cr->carpr_advskew = vh->advskew;
	if (priv)
		memcpy(cr->carpr_key, vh->key, sizeof(cr->carpr_key));
	else
		memset(cr->carpr_key, 0, sizeof(cr->carpr_key));
}

static int fk_key_len(const uint8_t *key)
{
	int n = FBSD_CARP_KEY_LEN;
	while (n > 0 && key[n - 1] == 0)
		n--;
	return n;
}

/*
 * carp_ioctl_set(): the vhid is created before advbase/advskew are validated, so
 * an EINVAL for those leaves a new vhid behind. peer/peer6 of zero mean "keep".
 */
int fk_carp_set(struct fk_state *st, struct fk_if *ifp, const struct fbsd_carpreq *cr, const uint8_t *peer,
                const uint8_t *peer6) __attribute__((visibility("hidden")));
int fk_carp_set(struct fk_state *st, struct fk_if *ifp, const struct fbsd_carpreq *cr, const uint8_t *peer,
                const uint8_t *peer6)
{
	static const uint8_t zero16[16];
	if (cr->carpr_vhid <= 0 || cr->carpr_vhid > FBSD_CARP_MAXVHID || cr->carpr_advbase < 0 ||
	    cr->carpr_advskew < 0)
		return FBSD_EINVAL;
	struct fk_vhid *vh = fk_vhid_find(st, ifp->name, cr->carpr_vhid);
	if (vh == NULL) {
		vh = fk_vhid_create(st, ifp->name, cr->carpr_vhid);
		if (vh == NULL) {
			fprintf(stderr, "fakebsd: vhid table full (%d)\n", FK_MAX_VHIDS);
			return FBSD_ENOMEM;
		}
	}
	if (cr->carpr_advbase > 0) {
		if (cr->carpr_advbase > 255 || cr->carpr_advbase < FBSD_CARP_DFLTINTV)
			return FBSD_EINVAL;
		vh->advbase = cr->carpr_advbase;
	}
	if (cr->carpr_advskew >= 255)
		return FBSD_EINVAL;
	vh->advskew = cr->carpr_advskew;
	if (peer != NULL && memcmp(peer, zero16, 4) != 0)
		memcpy(vh->peer, peer, 4);
	if (peer6 != NULL && memcmp(peer6, zero16, 16) != 0)
		memcpy(vh->peer6, peer6, 16);
	if (cr->carpr_key[0] != 0) {
		memcpy(vh->key, cr->carpr_key, FBSD_CARP_KEY_LEN);
		vh->key_len = fk_key_len(vh->key);
	}
	if (vh->state != FBSD_CARP_INIT && cr->carpr_state != vh->state) {
		if (cr->carpr_state == FBSD_CARP_BACKUP)
			fk_set_state(st, vh, FBSD_CARP_BACKUP);
		else if (cr->carpr_state == FBSD_CARP_MASTER)
			fk_set_state(st, vh, FBSD_CARP_MASTER);
	}
	return 0;
}

static int fk_carp_ioctl(struct fk_state *st, uint32_t req, void *arg)
{
	struct fbsd_ifreq ifr;
	struct fbsd_carpreq cr;
	char name[FBSD_IFNAMSIZ];

	if (!st->carp_loaded)
		return FBSD_EPROTONOSUPPORT; /* net/if.c: carp_ioctl_p == NULL */
	if (arg == NULL)
		return FBSD_EFAULT;
	memcpy(&ifr, arg, sizeof(ifr));
	void *data = ifr.ifr_ifru.data;
	if (data == NULL)
		return FBSD_EFAULT;
	memcpy(&cr, data, sizeof(cr));
	fk_ifname(name, ifr.ifr_name);

	struct fk_if *ifp = fk_if_by_name(st, name);
	if (ifp == NULL)
		return FBSD_ENXIO;
	if (!fk_carp_supported(ifp))
		return FBSD_EOPNOTSUPP;
	if (!(ifp->flags & FBSD_IFF_MULTICAST))
		return FBSD_EADDRNOTAVAIL;

	if (req == FBSD_SIOCSVH) {
		if (!fk_is_root(st))
			return FBSD_EPERM;
		return fk_carp_set(st, ifp, &cr, NULL, NULL);
	}

	/* SIOCGVH */
	if (cr.carpr_vhid < 0 || cr.carpr_vhid > FBSD_CARP_MAXVHID)
		return FBSD_EINVAL;
	if (cr.carpr_count < 1)
		return FBSD_EMSGSIZE;
	if (!fk_if_has_carp(st, ifp->name))
		return FBSD_ENOENT;
	int priv = fk_is_root(st);
	if (cr.carpr_vhid != 0) {
		struct fk_vhid *vh = fk_vhid_find(st, ifp->name, cr.carpr_vhid);
		if (vh == NULL)
			return FBSD_ENOENT;
		fk_carprcp(vh, &cr, priv);
		cr.carpr_count = 1;
		memcpy(data, &cr, sizeof(cr));
		return 0;
	}
	int count = 0;
	for (int i = 0; i < st->nvhids; i++)
		if (strcmp(st->vhids[i].ifname, ifp->name) == 0)
			count++;
	if (count > cr.carpr_count)
		return FBSD_EMSGSIZE;
	if (st->osreldate < FBSD_OSREL_14) {
		/* 13.x: one slot per vhid, each carrying the total count. */
		int slot = 0;
		for (int i = 0; i < st->nvhids; i++) {
			if (strcmp(st->vhids[i].ifname, ifp->name) != 0)
				continue;
			struct fbsd_carpreq out = cr;
			fk_carprcp(&st->vhids[i], &out, priv);
			out.carpr_count = count;
			memcpy((uint8_t *)data + (size_t)slot * sizeof(out), &out, sizeof(out));
			slot++;
		}
		return 0;
	}
	/*
	 * 14-era: every vhid is written into the same stack carpreq and then
	 * count * 40 bytes are copied out from it. Only slot 0 (the last vhid) is real;
	 * the rest is whatever followed on the kernel stack, modelled as a fill pattern.
	 */
	for (int i = 0; i < st->nvhids; i++) {
		if (strcmp(st->vhids[i].ifname, ifp->name) != 0)
			continue;
		fk_carprcp(&st->vhids[i], &cr, priv);
		cr.carpr_count = count;
	}
	memcpy(data, &cr, sizeof(cr));
	if (count > 1)
		memset((uint8_t *)data + sizeof(cr), 0xa5, (size_t)(count - 1) * sizeof(cr));
	return 0;
}

/* ---- IPv4 addresses (netinet/in.c) ---- */

static int fk_mask_plen4(const uint8_t *mask)
{
	uint32_t m = ((uint32_t)mask[0] << 24) | ((uint32_t)mask[1] << 16) | ((uint32_t)mask[2] << 8) | mask[3];
	int n = 0;
	while (n < 32 && (m & (0x80000000u >> n)))
		n++;
	return n;
}

static int fk_classful_plen(const uint8_t *a)
{
	if ((a[0] & 0x80) == 0)
		return 8;
	if ((a[0] & 0xc0) == 0x80)
		return 16;
	return 24;
}

static int fk_find_addr4(const struct fk_if *ifp, const uint8_t *a)
{
	for (int i = 0; i < ifp->naddrs; i++)
		if (ifp->addrs[i].family == FBSD_AF_INET && memcmp(ifp->addrs[i].addr, a, 4) == 0)
			return i;
	return -1;
}

/* in_difaddr_ioctl(); keep_cif is true when called for a duplicate SIOCAIFADDR. */
static int fk_in_difaddr(struct fk_state *st, struct fk_if *ifp, const struct fbsd_sockaddr_in *sin, int keep_cif)
{
	int delete_any = sin->sin_len != sizeof(*sin) || sin->sin_family != FBSD_AF_INET;
	int idx = -1;
	for (int i = 0; i < ifp->naddrs; i++) {
		if (ifp->addrs[i].family != FBSD_AF_INET)
			continue;
		if (delete_any && idx < 0)
			idx = i; /* T1: the first IPv4 address unless the exact one exists */
		if (memcmp(ifp->addrs[i].addr, sin->sin_addr, 4) == 0)
			idx = i;
	}
	if (idx < 0)
		return FBSD_EADDRNOTAVAIL;
	struct fk_addr a = ifp->addrs[idx];
	fk_if_remove_addr(ifp, idx);
	if (a.vhid != 0)
		fk_carp_detach(st, ifp, &a, keep_cif);
	return 0;
}

static int fk_in_aifaddr(struct fk_state *st, struct fk_if *ifp, uint32_t req, const void *arg)
{
	struct fbsd_in_aliasreq ifra;
	memset(&ifra, 0, sizeof(ifra));
	/* OSIOCAIFADDR takes the 64-byte struct without ifra_vhid. */
	memcpy(&ifra, arg, req == FBSD_SIOCAIFADDR ? sizeof(ifra) : 64);
	int vhid = req == FBSD_SIOCAIFADDR ? ifra.ifra_vhid : 0;

	if (!fk_is_root(st))
		return FBSD_EPERM;
	if (ifra.ifra_addr.sin_len != sizeof(struct fbsd_sockaddr_in) || ifra.ifra_addr.sin_family != FBSD_AF_INET)
		return FBSD_EINVAL;
	if (ifra.ifra_broadaddr.sin_len != 0 &&
	    (ifra.ifra_broadaddr.sin_len != sizeof(struct fbsd_sockaddr_in) ||
	     ifra.ifra_broadaddr.sin_family != FBSD_AF_INET))
		return FBSD_EINVAL;
	if (ifra.ifra_mask.sin_len != 0 &&
	    (ifra.ifra_mask.sin_len != sizeof(struct fbsd_sockaddr_in) || ifra.ifra_mask.sin_family != FBSD_AF_INET))
		return FBSD_EINVAL;
	if ((ifp->flags & FBSD_IFF_POINTOPOINT) && ifra.ifra_broadaddr.sin_len != sizeof(struct fbsd_sockaddr_in))
		return FBSD_EDESTADDRREQ;
	if (vhid != 0 && !st->carp_loaded)
		return FBSD_EPROTONOSUPPORT;

	/* A duplicate is deleted first (keeping its vhid for SIOCAIFADDR) and re-added. */
	if (fk_find_addr4(ifp, ifra.ifra_addr.sin_addr) >= 0)
		fk_in_difaddr(st, ifp, &ifra.ifra_addr, req == FBSD_SIOCAIFADDR);

	struct fk_addr a;
	memset(&a, 0, sizeof(a));
	a.family = FBSD_AF_INET;
	memcpy(a.addr, ifra.ifra_addr.sin_addr, 4);
	a.plen = (uint8_t)(ifra.ifra_mask.sin_len != 0 ? fk_mask_plen4(ifra.ifra_mask.sin_addr)
	                                                : fk_classful_plen(ifra.ifra_addr.sin_addr));
	a.vltime = a.pltime = 0xffffffffu;
	if (ifra.ifra_mask.sin_len == 0 && !(ifp->flags & (FBSD_IFF_POINTOPOINT | FBSD_IFF_LOOPBACK)))
		fprintf(stderr, "%s: set address: WARNING: network mask should be specified; using historical default\n",
		        ifp->name);
	if (ifp->naddrs >= FK_MAX_ADDRS) {
		fprintf(stderr, "fakebsd: address table of %s full (%d)\n", ifp->name, FK_MAX_ADDRS);
		return FBSD_ENOMEM;
	}
	if (vhid != 0) {
		/* carp_attach() runs before the address is linked; on failure it is never added. */
		struct fk_addr probe = a;
		if (!fk_if_has_carp(st, ifp->name))
			return FBSD_ENOPROTOOPT;
		if (fk_vhid_find(st, ifp->name, vhid) == NULL)
			return FBSD_ENOENT;
		ifp->addrs[ifp->naddrs++] = probe;
		return fk_carp_attach(st, ifp, &ifp->addrs[ifp->naddrs - 1], vhid);
	}
	ifp->addrs[ifp->naddrs++] = a;
	return 0;
}

static int fk_in_control(struct fk_state *st, struct fk_if *ifp, uint32_t req, void *arg)
{
	if (req == FBSD_SIOCDIFADDR) {
		struct fbsd_ifreq ifr;
		memcpy(&ifr, arg, sizeof(ifr));
		if (!fk_is_root(st))
			return FBSD_EPERM;
		return fk_in_difaddr(st, ifp, &ifr.ifr_ifru.addr, 0);
	}
	return fk_in_aifaddr(st, ifp, req, arg);
}

/* ---- IPv6 addresses (netinet6/in6.c) ---- */

/* in6_mask2len(): -1 for a non-contiguous mask. */
static int fk_in6_mask2len(const uint8_t *mask, const uint8_t *lim0)
{
	int x = 0, y;
	const uint8_t *lim = lim0, *p;
	if (lim0 == NULL || lim0 - mask > 16)
		lim = mask + 16;
	for (p = mask; p < lim; x++, p++)
		if (*p != 0xff)
			break;
	y = 0;
	if (p < lim) {
		for (y = 0; y < 8; y++)
			if ((*p & (0x80 >> y)) == 0)
				break;
	}
	if (p < lim) {
		if (y != 0 && (*p & (0x00ff >> y)) != 0)
			return -1;
		for (p = p + 1; p < lim; p++)
			if (*p != 0)
				return -1;
	}
	return x * 8 + y;
}

/* KAME-style scope embedding: link-local addresses carry the interface index. */
static void fk_in6_setscope(uint8_t *a, const struct fk_if *ifp)
{
	int linklocal = a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
	int mcast_ll = a[0] == 0xff && ((a[1] & 0x0f) == 0x02 || (a[1] & 0x0f) == 0x01);
	if (linklocal || mcast_ll) {
		a[2] = (uint8_t)(ifp->index >> 8);
		a[3] = (uint8_t)ifp->index;
	}
}

static int fk_find_addr6(const struct fk_if *ifp, const uint8_t *a)
{
	for (int i = 0; i < ifp->naddrs; i++)
		if (ifp->addrs[i].family == FBSD_AF_INET6 && memcmp(ifp->addrs[i].addr, a, 16) == 0)
			return i;
	return -1;
}

static int fk_in6_control(struct fk_state *st, struct fk_if *ifp, uint32_t req, void *arg)
{
	struct fbsd_in6_aliasreq ifra;
	memset(&ifra, 0, sizeof(ifra));
	int old = req == FBSD_OSIOCAIFADDR_IN6;
	if (req == FBSD_SIOCDIFADDR_IN6)
		memcpy(&ifra, arg, 16 + sizeof(struct fbsd_sockaddr_in6)); /* name + ifru_addr */
	else
		memcpy(&ifra, arg, old ? 128 : sizeof(ifra));
	int vhid = (req == FBSD_SIOCAIFADDR_IN6) ? ifra.ifra_vhid : 0;

	uint8_t key[16];
	int idx = -1;
	memcpy(key, ifra.ifra_addr.sin6_addr, 16);
	if (ifra.ifra_addr.sin6_family == FBSD_AF_INET6) {
		fk_in6_setscope(key, ifp);
		idx = fk_find_addr6(ifp, key);
	}
	if (req == FBSD_SIOCDIFADDR_IN6 && idx < 0)
		return FBSD_EADDRNOTAVAIL;
	if (ifra.ifra_addr.sin6_family != FBSD_AF_INET6 || ifra.ifra_addr.sin6_len != sizeof(struct fbsd_sockaddr_in6))
		return FBSD_EAFNOSUPPORT;
	if (!fk_is_root(st))
		return FBSD_EPERM;

	if (req == FBSD_SIOCDIFADDR_IN6) {
		struct fk_addr a = ifp->addrs[idx];
		fk_if_remove_addr(ifp, idx);
		if (a.vhid != 0)
			fk_carp_detach(st, ifp, &a, 0);
		return 0;
	}

	/* in6_validate_ifra() */
	if ((ifp->flags & FBSD_IFF_POINTOPOINT) && ifra.ifra_dstaddr.sin6_family != FBSD_AF_INET6 &&
	    ifra.ifra_dstaddr.sin6_family != FBSD_AF_UNSPEC)
		return FBSD_EAFNOSUPPORT;
	if (ifra.ifra_prefixmask.sin6_len > sizeof(struct fbsd_sockaddr_in6))
		return FBSD_EINVAL;
	if (idx < 0 && ifra.ifra_prefixmask.sin6_len == 0)
		return FBSD_EINVAL;
	int plen;
	if (ifra.ifra_prefixmask.sin6_len != 0) {
		const uint8_t *maskbase = (const uint8_t *)&ifra.ifra_prefixmask;
		plen = fk_in6_mask2len(ifra.ifra_prefixmask.sin6_addr, maskbase + ifra.ifra_prefixmask.sin6_len);
		if (plen <= 0)
			return FBSD_EINVAL;
	} else {
		plen = ifp->addrs[idx].plen;
	}
	if (ifra.ifra_dstaddr.sin6_family == FBSD_AF_INET6) {
		if (!(ifp->flags & (FBSD_IFF_POINTOPOINT | FBSD_IFF_LOOPBACK)))
			return FBSD_EINVAL;
		if (plen != 128)
			return FBSD_EINVAL;
	}
	if (ifra.ifra_lifetime.ia6t_pltime > ifra.ifra_lifetime.ia6t_vltime)
		return FBSD_EINVAL;
	if (ifra.ifra_lifetime.ia6t_vltime == 0 && idx < 0)
		return 0; /* T7: success, nothing added */
	if (idx >= 0 && ifra.ifra_prefixmask.sin6_len != 0 && ifp->addrs[idx].plen != plen)
		return FBSD_EINVAL; /* the prefix length of an existing address cannot change */

	if (idx < 0) {
		if (ifp->naddrs >= FK_MAX_ADDRS) {
			fprintf(stderr, "fakebsd: address table of %s full (%d)\n", ifp->name, FK_MAX_ADDRS);
			return FBSD_ENOBUFS;
		}
		idx = ifp->naddrs++;
		memset(&ifp->addrs[idx], 0, sizeof(ifp->addrs[idx]));
		ifp->addrs[idx].family = FBSD_AF_INET6;
		memcpy(ifp->addrs[idx].addr, key, 16);
		ifp->addrs[idx].plen = (uint8_t)plen;
	} else if (ifp->addrs[idx].vhid != 0) {
		/* An existing address is updated in place, detached from its vhid first (kept). */
		struct fk_addr *a = &ifp->addrs[idx];
		fk_carp_detach(st, ifp, a, 1);
	}
	ifp->addrs[idx].vltime = ifra.ifra_lifetime.ia6t_vltime;
	ifp->addrs[idx].pltime = ifra.ifra_lifetime.ia6t_pltime;

	if (vhid > 0) {
		/* On failure the address stays, without a vhid (in6_control "goto out"). */
		if (!st->carp_loaded)
			return FBSD_EPROTONOSUPPORT;
		return fk_carp_attach(st, ifp, &ifp->addrs[idx], vhid);
	}
	return 0;
}

/* ---- pfsync (netpfil/pf/if_pfsync.c) ---- */

static int fk_pfsync_apply(struct fk_state *st, const char *syncdev, int peer_family, const uint8_t *peer,
                           uint32_t peer_scope, int64_t maxupdates, uint32_t flags, uint32_t version)
{
	int v14 = st->osreldate >= FBSD_OSREL_14;
	if (v14 ? (maxupdates < 0 || maxupdates > 255) : maxupdates > 255)
		return FBSD_EINVAL;
	struct fk_if *sifp = NULL;
	if (syncdev[0] != '\0') {
		sifp = fk_if_by_name(st, syncdev);
		if (sifp == NULL)
			return FBSD_EINVAL;
	}
	if (v14) {
		switch (version) {
		case FBSD_PFSYNC_MSG_VERSION_UNSPECIFIED: st->pf_version = 0; break;
		case FBSD_PFSYNC_MSG_VERSION_1301:
		case FBSD_PFSYNC_MSG_VERSION_1400: st->pf_version = version; break;
		case FBSD_PFSYNC_MSG_VERSION_1500:
			if (st->osreldate >= FBSD_OSREL_15) {
				st->pf_version = version;
				break;
			}
			return FBSD_EINVAL;
		default: return FBSD_EINVAL;
		}
	}
	static const uint8_t zero16[16];
	uint8_t group4[4] = {224, 0, 0, 240};
	uint8_t group6[16] = {0xff, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xf0};
	if (!v14) {
		/* 13.x: a zero peer always means the pfsync group. */
		st->pf_peer_family = FBSD_AF_INET;
		memset(st->pf_peer, 0, sizeof(st->pf_peer));
		memcpy(st->pf_peer, memcmp(peer, zero16, 4) == 0 ? group4 : peer, 4);
	} else if (peer_family == FBSD_AF_INET || (peer_family == FBSD_AF_UNSPEC && sifp != NULL)) {
		/* An unspecified peer becomes the group only when a syncdev is given. */
		st->pf_peer_family = FBSD_AF_INET;
		memset(st->pf_peer, 0, sizeof(st->pf_peer));
		memcpy(st->pf_peer, (peer_family == FBSD_AF_UNSPEC || memcmp(peer, zero16, 4) == 0) ? group4 : peer, 4);
		st->pf_peer_scope = 0;
	} else if (peer_family == FBSD_AF_INET6) {
		st->pf_peer_family = FBSD_AF_INET6;
		memcpy(st->pf_peer, memcmp(peer, zero16, 16) == 0 ? group6 : peer, 16);
		st->pf_peer_scope = peer_scope;
	}
	st->pf_maxupdates = (int32_t)(uint8_t)maxupdates;
	if (v14 ? (flags & FBSD_PFSYNCF_DEFER) : flags != 0)
		st->pf_flags |= FBSD_PFSYNCF_DEFER;
	else
		st->pf_flags &= ~(uint32_t)FBSD_PFSYNCF_DEFER;
	if (sifp == NULL) {
		memset(st->pf_syncdev, 0, sizeof(st->pf_syncdev));
		return 0;
	}
	if (!(sifp->flags & FBSD_IFF_MULTICAST) &&
	    ((st->pf_peer_family == FBSD_AF_INET && (st->pf_peer[0] & 0xf0) == 0xe0) ||
	     (st->pf_peer_family == FBSD_AF_INET6 && st->pf_peer[0] == 0xff)))
		return FBSD_EADDRNOTAVAIL;
	fk_strlcpy(st->pf_syncdev, sifp->name, sizeof(st->pf_syncdev));
	/*
	 * A bulk update is requested; with no peer to answer it completes at once here
	 * (PFSYNCF_OK stays set) unless a test holds it open with fakebsd_pfsync_bulk(1).
	 */
	if (st->pf_bulk_manual && (st->pf_flags & FBSD_PFSYNCF_OK)) {
		fk_carp_demote_adj(st, st->pfsync_carp_adj);
		st->pf_flags &= ~(uint32_t)FBSD_PFSYNCF_OK;
	}
	return 0;
}

static int fk_pfsync_set_legacy(struct fk_state *st, const struct fbsd_ifreq *ifr)
{
	struct fbsd_pfsyncreq pr;
	if (!fk_is_root(st))
		return FBSD_EPERM;
	if (ifr->ifr_ifru.data == NULL)
		return FBSD_EFAULT;
	memcpy(&pr, ifr->ifr_ifru.data, sizeof(pr));
	char dev[FBSD_IFNAMSIZ];
	fk_ifname(dev, pr.pfsyncr_syncdev);
	static const uint8_t zero4[4];
	int fam = memcmp(pr.pfsyncr_syncpeer, zero4, 4) != 0 ? FBSD_AF_INET : FBSD_AF_UNSPEC;
	uint8_t peer[16] = {0};
	memcpy(peer, pr.pfsyncr_syncpeer, 4);
	/* 14+: pfsync_pfsyncreq_to_kstatus() leaves version 0, i.e. back to the default. */
	return fk_pfsync_apply(st, dev, fam, peer, 0, pr.pfsyncr_maxupdates, (uint32_t)pr.pfsyncr_defer, 0);
}

static int fk_pfsync_get_legacy(struct fk_state *st, const struct fbsd_ifreq *ifr)
{
	struct fbsd_pfsyncreq pr;
	memset(&pr, 0, sizeof(pr));
	if (ifr->ifr_ifru.data == NULL)
		return FBSD_EFAULT;
	fk_strlcpy(pr.pfsyncr_syncdev, st->pf_syncdev, sizeof(pr.pfsyncr_syncdev));
	if (st->pf_peer_family == FBSD_AF_INET)
		memcpy(pr.pfsyncr_syncpeer, st->pf_peer, 4);
	pr.pfsyncr_maxupdates = st->pf_maxupdates;
	if (st->osreldate >= FBSD_OSREL_14)
		pr.pfsyncr_defer = (int32_t)st->pf_flags; /* raw flag word: OK | DEFER */
	else
		pr.pfsyncr_defer = (st->pf_flags & FBSD_PFSYNCF_DEFER) ? 1 : 0;
	memcpy(ifr->ifr_ifru.data, &pr, sizeof(pr));
	return 0;
}

static int fk_pfsync_set_nv(struct fk_state *st, const struct fbsd_ifreq *ifr)
{
	if (!fk_is_root(st))
		return FBSD_EPERM;
	uint32_t len = ifr->ifr_ifru.nv.length;
	if (len > FBSD_IFR_CAP_NV_MAXBUFSIZE)
		return FBSD_EINVAL;
	if (ifr->ifr_ifru.nv.buffer == NULL)
		return FBSD_EFAULT;
	nvlist_t *nvl = nvlist_unpack(ifr->ifr_ifru.nv.buffer, len, 0);
	if (nvl == NULL)
		return FBSD_EINVAL;

	/*
	 * pfsync_nvstatus_to_kstatus(): a missing "version" is a nvlist_get_number() on a
	 * missing key, which panics the 14-era kernel. A missing "maxupdates"/"flags" makes it
	 * return EINVAL, which its caller ignores, applying an all-zero configuration. Both are
	 * refused here so that the omission cannot go unnoticed.
	 */
	char dev[FBSD_IFNAMSIZ] = {0};
	int64_t maxupdates = 0;
	uint32_t flags = 0, version = 0;
	int peer_family = FBSD_AF_UNSPEC;
	uint8_t peer[16] = {0};
	uint32_t scope = 0;
	const char *missing = !nvlist_exists_number(nvl, "maxupdates") ? "maxupdates"
	                      : !nvlist_exists_number(nvl, "flags")    ? "flags"
	                      : !nvlist_exists_number(nvl, "version")  ? "version"
	                                                               : NULL;
	if (missing != NULL) {
		if (strcmp(missing, "version") == 0)
			fprintf(stderr, "fakebsd: PANIC: nvlist_get_number on missing key version "
			                "(SIOCSETPFSYNCNV; a 14.x kernel panics here)\n");
		else
			fprintf(stderr, "fakebsd: PANIC: nvlist_get_number on missing key %s (SIOCSETPFSYNCNV; a 14.x "
			                "kernel ignores the EINVAL and applies an all-zero configuration, detaching "
			                "syncdev)\n", missing);
		nvlist_destroy(nvl);
		return FBSD_EDOOFUS;
	}
	maxupdates = (int64_t)(int32_t)(uint32_t)nvlist_get_number(nvl, "maxupdates");
	version = (uint32_t)nvlist_get_number(nvl, "version");
	flags = (uint32_t)nvlist_get_number(nvl, "flags");
	if (nvlist_exists_string(nvl, "syncdev"))
		fk_strlcpy(dev, nvlist_get_string(nvl, "syncdev"), sizeof(dev));
	if (nvlist_exists_nvlist(nvl, "syncpeer")) {
		const nvlist_t *sp = nvlist_get_nvlist(nvl, "syncpeer");
		uint64_t af = nvlist_exists_number(sp, "af") ? nvlist_get_number(sp, "af") : 0;
		size_t blen = 0;
		const uint8_t *b = nvlist_exists_binary(sp, "address") ? nvlist_get_binary(sp, "address", &blen) : NULL;
		if (b != NULL && af == FBSD_AF_INET && blen == sizeof(struct fbsd_sockaddr_in)) {
			peer_family = FBSD_AF_INET;
			memcpy(peer, b + 4, 4);
		} else if (b != NULL && af == FBSD_AF_INET6 && blen == sizeof(struct fbsd_sockaddr_in6)) {
			peer_family = FBSD_AF_INET6;
			memcpy(peer, b + 8, 16);
			memcpy(&scope, b + 24, 4);
		} else {
			/* The kernel's EINVAL here is ignored too (the peer silently becomes the group). */
			fprintf(stderr, "fakebsd: SIOCSETPFSYNCNV: malformed syncpeer (af %llu, address %zu bytes; "
			                "want af 2 + 16-byte sockaddr_in or af 28 + 28-byte sockaddr_in6); a 14.x kernel "
			                "ignores this and uses the multicast group\n",
			        (unsigned long long)af, blen);
			nvlist_destroy(nvl);
			return FBSD_EINVAL;
		}
	}
	nvlist_destroy(nvl);
	return fk_pfsync_apply(st, dev, peer_family, peer, scope, maxupdates, flags, version);
}

static int fk_pfsync_get_nv(struct fk_state *st, void *arg, const struct fbsd_ifreq *ifr)
{
	nvlist_t *nvl = nvlist_create(0);
	if (nvl == NULL)
		return FBSD_ENOMEM;
	if (st->pf_syncdev[0] != '\0')
		nvlist_add_string(nvl, "syncdev", st->pf_syncdev);
	nvlist_add_number(nvl, "maxupdates", (uint64_t)st->pf_maxupdates);
	nvlist_add_number(nvl, "flags", st->pf_flags);
	nvlist_add_number(nvl, "version", fk_pfsync_version(st));
	if (st->pf_peer_family == FBSD_AF_INET || st->pf_peer_family == FBSD_AF_INET6) {
		nvlist_t *sp = nvlist_create(0);
		if (st->pf_peer_family == FBSD_AF_INET) {
			struct fbsd_sockaddr_in sin = {.sin_len = sizeof(sin), .sin_family = FBSD_AF_INET};
			memcpy(sin.sin_addr, st->pf_peer, 4);
			nvlist_add_number(sp, "af", FBSD_AF_INET);
			nvlist_add_binary(sp, "address", &sin, sizeof(sin));
		} else {
			struct fbsd_sockaddr_in6 sin6 = {.sin6_len = sizeof(sin6), .sin6_family = FBSD_AF_INET6};
			memcpy(sin6.sin6_addr, st->pf_peer, 16);
			sin6.sin6_scope_id = st->pf_peer_scope;
			nvlist_add_number(sp, "af", FBSD_AF_INET6);
			nvlist_add_binary(sp, "address", &sin6, sizeof(sin6));
		}
		nvlist_move_nvlist(nvl, "syncpeer", sp);
	}
	size_t len = 0;
	void *packed = nvlist_pack(nvl, &len);
	nvlist_destroy(nvl);
	if (packed == NULL)
		return FBSD_ENOMEM;
	if (len > ifr->ifr_ifru.nv.buf_length) {
		/* The kernel sets length before failing, but the ifreq is not copied back. */
		fk_real_free(packed);
		return FBSD_EFBIG;
	}
	if (ifr->ifr_ifru.nv.buffer == NULL) {
		fk_real_free(packed);
		return FBSD_EFAULT;
	}
	memcpy(ifr->ifr_ifru.nv.buffer, packed, len);
	fk_real_free(packed);
	struct fbsd_ifreq out = *ifr;
	out.ifr_ifru.nv.length = (uint32_t)len;
	memcpy(arg, &out, sizeof(out));
	return 0;
}

static int fk_pfsync_ioctl(struct fk_state *st, struct fk_if *ifp, uint32_t req, void *arg)
{
	struct fbsd_ifreq ifr;
	memcpy(&ifr, arg, sizeof(ifr));
	if (ifp->kind != FK_IF_PFSYNC)
		return FBSD_EINVAL; /* ether_ioctl()/loioctl() default case */
	switch (req) {
	case FBSD_SIOCSETPFSYNC: return fk_pfsync_set_legacy(st, &ifr);
	case FBSD_SIOCGETPFSYNC: return fk_pfsync_get_legacy(st, &ifr);
	case FBSD_SIOCSETPFSYNCNV:
		if (st->osreldate < FBSD_OSREL_14)
			return FBSD_ENOTTY;
		return fk_pfsync_set_nv(st, &ifr);
	case FBSD_SIOCGETPFSYNCNV:
		if (st->osreldate < FBSD_OSREL_14)
			return FBSD_ENOTTY;
		return fk_pfsync_get_nv(st, arg, &ifr);
	default: return FBSD_ENOTTY;
	}
}

/* ---- generic interface requests (net/if.c) ---- */

static int fk_if_generic(struct fk_state *st, struct fk_if *ifp, uint32_t req, void *arg)
{
	struct fbsd_ifreq ifr;
	memcpy(&ifr, arg, sizeof(ifr));
	switch (req) {
	case FBSD_SIOCGIFINDEX:
		ifr.ifr_ifru.index = (int16_t)ifp->index;
		memcpy(arg, &ifr, sizeof(ifr));
		return 0;
	case FBSD_SIOCGIFFLAGS:
		ifr.ifr_ifru.flags[0] = (int16_t)(ifp->flags & 0xffff);
		ifr.ifr_ifru.flags[1] = (int16_t)((uint32_t)ifp->flags >> 16);
		memcpy(arg, &ifr, sizeof(ifr));
		return 0;
	case FBSD_SIOCSIFFLAGS: {
		if (!fk_is_root(st))
			return FBSD_EPERM;
		int nf = (int)(uint16_t)ifr.ifr_ifru.flags[0] | ((int)(uint16_t)ifr.ifr_ifru.flags[1] << 16);
		int was_up = ifp->flags & FBSD_IFF_UP;
		ifp->flags = (nf & ~FBSD_IFF_CANTCHANGE) | (ifp->flags & FBSD_IFF_CANTCHANGE);
		/* The driver follows IFF_UP with IFF_DRV_RUNNING. */
		if (ifp->flags & FBSD_IFF_UP)
			ifp->flags |= FBSD_IFF_RUNNING;
		else
			ifp->flags &= ~FBSD_IFF_RUNNING;
		if (was_up != (ifp->flags & FBSD_IFF_UP))
			fk_carp_linkstate(st, ifp->name);
		return 0;
	}
	default: return FBSD_ENOTTY;
	}
}

int fk_ioctl(struct fk_state *st, const struct fk_sockinfo *so, uint32_t req, void *arg)
{
	fk_count_ioctl(st, req);
	if (st->fail_ioctl_armed && (st->fail_ioctl_request == 0 || st->fail_ioctl_request == req)) {
		st->fail_ioctl_armed = 0;
		return st->fail_ioctl_errno;
	}
	if (so->domain == FK_DOMAIN_DEVPF)
		return fk_pf_ioctl(st, so->type, req, arg);
	if (arg == NULL)
		return FBSD_EFAULT;

	if (req == FBSD_SIOCSVH || req == FBSD_SIOCGVH)
		return fk_carp_ioctl(st, req, arg);

	char name[FBSD_IFNAMSIZ];
	fk_ifname(name, arg);

	if (req == FBSD_SIOCIFCREATE || req == FBSD_SIOCIFCREATE2) {
		if (!fk_is_root(st))
			return FBSD_EPERM;
		if (fk_if_by_name(st, name) != NULL)
			return FBSD_EEXIST; /* T14: pfsync0 exists once pfsync is loaded */
		return FBSD_EINVAL;     /* no cloner, or pfsync unit != 0 */
	}

	struct fk_if *ifp = fk_if_by_name(st, name);
	switch (req) {
	case FBSD_SIOCAIFADDR:
	case FBSD_OSIOCAIFADDR:
	case FBSD_SIOCDIFADDR:
		if (ifp == NULL)
			return FBSD_ENXIO;
		/* Only an AF_INET socket routes these to in_control(); elsewhere the driver says EINVAL. */
		if (so->domain != FBSD_AF_INET)
			return ifp->kind == FK_IF_PFSYNC ? FBSD_ENOTTY : FBSD_EINVAL;
		return fk_in_control(st, ifp, req, arg);
	case FBSD_SIOCAIFADDR_IN6:
	case FBSD_OSIOCAIFADDR_IN6:
	case FBSD_SIOCDIFADDR_IN6:
		if (ifp == NULL)
			return FBSD_ENXIO;
		if (so->domain != FBSD_AF_INET6)
			return ifp->kind == FK_IF_PFSYNC ? FBSD_ENOTTY : FBSD_EINVAL;
		return fk_in6_control(st, ifp, req, arg);
	case FBSD_SIOCSETPFSYNC:
	case FBSD_SIOCGETPFSYNC:
	case FBSD_SIOCSETPFSYNCNV:
	case FBSD_SIOCGETPFSYNCNV:
		if (ifp == NULL)
			return FBSD_ENXIO;
		return fk_pfsync_ioctl(st, ifp, req, arg);
	case FBSD_SIOCGIFINDEX:
	case FBSD_SIOCGIFFLAGS:
	case FBSD_SIOCSIFFLAGS:
		if (ifp == NULL)
			return FBSD_ENXIO;
		return fk_if_generic(st, ifp, req, arg);
	default:
		return FBSD_ENOTTY;
	}
}
