/*
 * sysctlbyname(3) for the OIDs carpd reads or writes.
 *
 * Follows kern_sysctl.c conventions: oldp == NULL reports the size, a short buffer
 * gets a partial copy and ENOMEM, writes need privilege (EPERM) and a read-only OID
 * refuses them (EPERM), an int write needs at least 4 bytes (EINVAL).
 */
#define _GNU_SOURCE
#include "fakebsd.h"

#include <errno.h>
#include <string.h>

enum oid_kind { OID_INT, OID_INT_RO, OID_UINT, OID_OPAQUE, OID_TIMEVAL };

struct fk_sysctl_req {
	void *oldp;
	size_t *oldlenp;
	const void *newp;
	size_t newlen;
};

static int sc_out(const struct fk_sysctl_req *r, const void *val, size_t len)
{
	if (r->oldlenp == NULL)
		return 0;
	if (r->oldp == NULL) {
		*r->oldlenp = len;
		return 0;
	}
	size_t room = *r->oldlenp;
	if (room < len) {
		memcpy(r->oldp, val, room);
		return FBSD_ENOMEM; /* *oldlenp keeps the valid length */
	}
	memcpy(r->oldp, val, len);
	*r->oldlenp = len;
	return 0;
}

static int sc_in_int(const struct fk_sysctl_req *r, int32_t *out)
{
	if (r->newlen < sizeof(int32_t))
		return FBSD_EINVAL;
	memcpy(out, r->newp, sizeof(int32_t));
	return 0;
}

static size_t fk_pfsyncstats_size(const struct fk_state *st)
{
	if (st->osreldate >= FBSD_OSREL_15)
		return 400; /* PFSYNC_ACT_MAX 17 */
	if (st->osreldate >= FBSD_OSREL_14)
		return 368; /* 15 */
	return 336;     /* 13 */
}

static int sc_int_rw(const struct fk_sysctl_req *r, int32_t *var)
{
	int32_t old = *var, nv;
	int err = sc_out(r, &old, sizeof(old));
	if (err != 0 || r->newp == NULL)
		return err;
	if ((err = sc_in_int(r, &nv)) != 0)
		return err;
	*var = nv;
	return 0;
}

static int fk_sysctl(struct fk_state *st, const char *name, const struct fk_sysctl_req *r)
{
	int writing = r->newp != NULL;
	int root = st->uid == 0;

	if (strcmp(name, "kern.osreldate") == 0) {
		if (writing)
			return FBSD_EPERM;
		return sc_out(r, &st->osreldate, sizeof(int32_t));
	}
	if (strcmp(name, "kern.boottime") == 0) {
		if (writing)
			return FBSD_EPERM;
		struct fbsd_timeval tv = {st->boot_sec, st->boot_usec};
		return sc_out(r, &tv, sizeof(tv));
	}

	if (strncmp(name, "net.inet.carp.", 14) == 0 && st->carp_loaded) {
		const char *leaf = name + 14;
		if (writing && !root)
			return FBSD_EPERM;
		if (strcmp(leaf, "allow") == 0) {
			int32_t old = st->carp_allow, nv;
			int err = sc_out(r, &old, sizeof(old));
			if (err != 0 || !writing)
				return err;
			if ((err = sc_in_int(r, &nv)) != 0)
				return err;
			if (nv != st->carp_allow) {
				st->carp_allow = nv;
				for (int i = 0; i < st->nvhids; i++)
					fk_carp_sc_state(st, &st->vhids[i]);
			}
			return 0;
		}
		if (strcmp(leaf, "preempt") == 0)
			return sc_int_rw(r, &st->carp_preempt);
		if (strcmp(leaf, "log") == 0)
			return sc_int_rw(r, &st->carp_log);
		if (strcmp(leaf, "senderr_demotion_factor") == 0)
			return sc_int_rw(r, &st->carp_senderr_adj);
		if (strcmp(leaf, "ifdown_demotion_factor") == 0)
			return sc_int_rw(r, &st->carp_ifdown_adj);
		if (strcmp(leaf, "dscp") == 0) {
			int32_t old = st->carp_dscp, nv;
			int err = sc_out(r, &old, sizeof(old));
			if (err != 0 || !writing)
				return err;
			if ((err = sc_in_int(r, &nv)) != 0)
				return err;
			if (nv < 0 || nv > 63)
				return FBSD_EINVAL;
			st->carp_dscp = nv;
			return 0;
		}
		if (strcmp(leaf, "demotion") == 0) {
			/* carp_demote_adj_sysctl(): the written value is a delta (T9). */
			int32_t old = st->carp_demotion, delta;
			int err = sc_out(r, &old, sizeof(old));
			if (err != 0 || !writing)
				return err;
			if ((err = sc_in_int(r, &delta)) != 0)
				return err;
			fk_carp_demote_adj(st, delta);
			return 0;
		}
		if (strcmp(leaf, "stats") == 0) {
			uint64_t copy[16];
			memcpy(copy, st->carp_stats, sizeof(copy));
			int err = sc_out(r, copy, sizeof(copy));
			if (err != 0 || !writing)
				return err;
			memset(st->carp_stats, 0, sizeof(st->carp_stats)); /* PCPUSTAT: any write zeroes */
			return 0;
		}
		return FBSD_ENOENT;
	}

	if (strncmp(name, "net.pfsync.", 11) == 0 && st->pfsync_loaded) {
		const char *leaf = name + 11;
		if (writing && !root)
			return FBSD_EPERM;
		if (strcmp(leaf, "carp_demotion_factor") == 0)
			return sc_int_rw(r, &st->pfsync_carp_adj);
		if (strcmp(leaf, "defer_delay") == 0 && st->osreldate >= FBSD_OSREL_14)
			return sc_int_rw(r, (int32_t *)&st->pfsync_defer_delay);
		if (strcmp(leaf, "stats") == 0) {
			size_t sz = fk_pfsyncstats_size(st);
			uint8_t copy[400];
			memcpy(copy, st->pfsync_stats, sz);
			int err = sc_out(r, copy, sz);
			if (err != 0 || !writing)
				return err;
			if (r->newlen < sz)
				return FBSD_EINVAL;
			memcpy(st->pfsync_stats, r->newp, sz);
			return 0;
		}
		if (strcmp(leaf, "pfsync_buckets") == 0) {
			if (writing)
				return FBSD_EPERM;
			uint64_t b = 4;
			return sc_out(r, &b, sizeof(b));
		}
		return FBSD_ENOENT;
	}
	return FBSD_ENOENT;
}

FK_EXPORT int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, const void *newp, size_t newlen)
{
	int saved = errno;
	if (name == NULL) {
		errno = FBSD_EFAULT;
		return -1;
	}
	struct fk_sysctl_req r = {oldp, oldlenp, newp, newlen};
	struct fk_state *st = fk_lock();
	st->sysctl_total++;
	int err = fk_sysctl(st, name, &r);
	fk_unlock();
	if (err != 0) {
		errno = err;
		return -1;
	}
	errno = saved;
	return 0;
}
