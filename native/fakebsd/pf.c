/*
 * pf(4)'s status requests on /dev/pf (reference/pf-status.md):
 *
 *  DIOCGETSTATUS    struct pf_status (416 bytes); 13.x and 14.x only: 15 dropped it, and a
 *                   request pf does not know answers EACCES on a read-only descriptor.
 *  DIOCGETSTATUSNV  struct pfioc_nv { data, len, size }: 13.1 and later. The reply is packed
 *                   into data; size 0 is a size probe (len set, success); size < len is
 *                   ENOSPC and nothing is copied back.
 *
 * Anything else answers EACCES on a read-only descriptor and ENODEV on a read-write one.
 * Counters other than the state table's are zero; the nvlist carries every key the kernel
 * sends except the string arrays of counter names (this fake's libnv has none): each
 * counters nvlist has its `counters` and `ids` arrays.
 */
#define _GNU_SOURCE
#include "fakebsd.h"
#include "nv.h"

#include <string.h>

static void fk_pf_counters(nvlist_t *parent, const char *name, const uint64_t *vals, size_t n)
{
	uint64_t ids[16];
	for (size_t i = 0; i < n && i < 16; i++)
		ids[i] = i;
	nvlist_t *c = nvlist_create(0);
	nvlist_add_number_array(c, "counters", vals, n);
	nvlist_add_number_array(c, "ids", ids, n);
	nvlist_move_nvlist(parent, name, c);
}

static int fk_pf_status_nv(struct fk_state *st, struct fbsd_pfioc_nv *nv)
{
	static const uint64_t zeros[16];
	nvlist_t *nvl = nvlist_create(0);
	nvlist_add_bool(nvl, "running", st->pf_running != 0);
	nvlist_add_number(nvl, "since", 0);
	nvlist_add_number(nvl, "debug", 1);
	nvlist_add_number(nvl, "hostid", 0x01020304);
	nvlist_add_number(nvl, "states", st->pf_states);
	nvlist_add_number(nvl, "src_nodes", st->pf_src_nodes);
	if (st->osreldate >= FBSD_OSREL_14)
		nvlist_add_number(nvl, "reass", 0);
	nvlist_add_bool(nvl, "syncookies_active", false);
	fk_pf_counters(nvl, "counters", zeros, 16);
	fk_pf_counters(nvl, "lcounters", zeros, 7);
	fk_pf_counters(nvl, "fcounters", st->pf_fcounters, 3);
	fk_pf_counters(nvl, "scounters", zeros, 3);
	nvlist_add_string(nvl, "ifname", "");
	uint8_t chksum[16] = {0};
	nvlist_add_binary(nvl, "chksum", chksum, sizeof(chksum));
	nvlist_add_number_array(nvl, "pcounters", zeros, 8);
	nvlist_add_number_array(nvl, "bcounters", zeros, 4);
	size_t len = 0;
	void *packed = nvlist_pack(nvl, &len);
	nvlist_destroy(nvl);
	if (packed == NULL)
		return FBSD_ENOMEM;
	int err = 0;
	if (nv->size == 0) {
		nv->len = len; /* the size probe */
	} else if (nv->size < len) {
		err = FBSD_ENOSPC; /* nothing copied back */
	} else if (nv->data == 0) {
		err = FBSD_EFAULT;
	} else {
		memcpy((void *)(uintptr_t)nv->data, packed, len);
		nv->len = len;
	}
	fk_real_free(packed);
	return err;
}

static void fk_pf_status_bin(struct fk_state *st, struct fbsd_pf_status *ps)
{
	memset(ps, 0, sizeof(*ps));
	memcpy(ps->fcounters, st->pf_fcounters, sizeof(ps->fcounters));
	ps->running = st->pf_running ? 1 : 0;
	ps->states = (uint32_t)st->pf_states;
	ps->src_nodes = (uint32_t)st->pf_src_nodes;
	ps->debug = 1;
	ps->hostid = 0x04030201; /* 0x01020304 in network order */
}

int fk_pf_ioctl(struct fk_state *st, int accmode, uint32_t req, void *arg)
{
	int denied = accmode == 0 ? FBSD_EACCES : FBSD_ENODEV;
	if (!st->pf_loaded)
		return FBSD_ENXIO;
	switch (req) {
	case FBSD_DIOCGETSTATUS:
		if (st->osreldate >= FBSD_OSREL_15)
			return denied;
		if (arg == NULL)
			return FBSD_EFAULT;
		fk_pf_status_bin(st, arg);
		return 0;
	case FBSD_DIOCGETSTATUSNV:
		if (st->osreldate < FBSD_OSREL_13_1)
			return denied;
		if (arg == NULL)
			return FBSD_EFAULT;
		return fk_pf_status_nv(st, arg);
	default:
		return denied;
	}
}
