/*
 * Fake kernel state: storage (private or a shared MAP_SHARED file), locking,
 * defaults, the carp(4) softc life cycle, and the exported fakebsd_* control API.
 */
#define _GNU_SOURCE
#include "fakebsd.h"
#include "fakebsd_control.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t fk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fk_once = PTHREAD_ONCE_INIT;
static struct fk_state *fk_st;
static int fk_state_fd = -1;

static void (*fk_libc_free)(void *);

void fk_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- allocator bridge ---- */

static void fk_resolve_free(void)
{
	if (fk_libc_free == NULL) {
		void *f = dlsym(RTLD_NEXT, "free");
		if (f == NULL || f == (void *)free)
			f = dlsym(RTLD_DEFAULT, "__libc_free");
		fk_libc_free = (void (*)(void *))f;
	}
}

void fk_real_free(void *p)
{
	if (p == NULL)
		return;
	fk_resolve_free();
	if (fk_libc_free != NULL)
		fk_libc_free(p);
}

/* Memory from nvlist_pack (libfakenv) is ordinary malloc memory: hand it back to libc. */
FK_EXPORT void free(void *p)
{
	fk_real_free(p);
}

/* ---- defaults ---- */

static void fk_if_init(struct fk_if *ifp, const char *name, int index, int flags)
{
	memset(ifp, 0, sizeof(*ifp));
	fk_strlcpy(ifp->name, name, sizeof(ifp->name));
	ifp->index = index;
	ifp->flags = flags;
	if ((flags & FBSD_IFF_LOOPBACK) || strncmp(name, "lo", 2) == 0)
		ifp->kind = FK_IF_LOOP;
	else if (strncmp(name, "pfsync", 6) == 0)
		ifp->kind = FK_IF_PFSYNC;
	else
		ifp->kind = FK_IF_ETHER;
}

static int fk_free_index(struct fk_state *st)
{
	for (int idx = 1;; idx++) {
		if (fk_if_by_index(st, idx) == NULL)
			return idx;
	}
}

static int fk_add_if(struct fk_state *st, const char *name, int flags)
{
	if (name == NULL || name[0] == '\0' || strlen(name) >= FBSD_IFNAMSIZ)
		return FBSD_EINVAL;
	if (fk_if_by_name(st, name) != NULL)
		return FBSD_EEXIST;
	if (st->nifs >= FK_MAX_IFS)
		return FBSD_ENOSPC;
	fk_if_init(&st->ifs[st->nifs], name, fk_free_index(st), flags);
	st->nifs++;
	return 0;
}

/* Kernel state that a reboot wipes: vhids, addresses, sysctls, pfsync configuration. */
static void fk_kernel_defaults(struct fk_state *st)
{
	st->nvhids = 0;
	memset(st->vhids, 0, sizeof(st->vhids));
	for (int i = 0; i < st->nifs; i++) {
		st->ifs[i].naddrs = 0;
		memset(st->ifs[i].addrs, 0, sizeof(st->ifs[i].addrs));
	}
	st->carp_allow = 1;
	st->carp_preempt = 0;
	st->carp_log = 1;
	st->carp_demotion = 0;
	st->carp_senderr_adj = FBSD_CARP_MAXSKEW;
	st->carp_ifdown_adj = FBSD_CARP_MAXSKEW;
	st->carp_dscp = 56;
	memset(st->carp_stats, 0, sizeof(st->carp_stats));
	st->pfsync_carp_adj = FBSD_CARP_MAXSKEW;
	st->pfsync_defer_delay = 20;
	memset(st->pfsync_stats, 0, sizeof(st->pfsync_stats));
	memset(st->pf_syncdev, 0, sizeof(st->pf_syncdev));
	st->pf_peer_family = 0;
	memset(st->pf_peer, 0, sizeof(st->pf_peer));
	st->pf_peer_scope = 0;
	st->pf_maxupdates = 128;
	st->pf_flags = FBSD_PFSYNCF_OK; /* set at clone creation */
	st->pf_version = 0;
	st->pf_bulk_manual = 0;
	st->pf_running = 1;
	st->pf_states = 0;
	st->pf_src_nodes = 0;
	memset(st->pf_fcounters, 0, sizeof(st->pf_fcounters));
	st->ev_seq = 0;
	memset(st->events, 0, sizeof(st->events));
}

static void fk_full_defaults(struct fk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->magic = FK_STATE_MAGIC;
	st->layout = FK_STATE_LAYOUT;
	st->size = sizeof(*st);
	st->osreldate = 1400097;
	st->carp_loaded = 1;
	st->pfsync_loaded = 1;
	st->pf_loaded = 1;
	st->uid = 0;
	int ether = FBSD_IFF_UP | FBSD_IFF_BROADCAST | FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST;
	fk_add_if(st, "em0", ether);
	fk_add_if(st, "em1", ether);
	fk_add_if(st, "lo0", FBSD_IFF_LOOPBACK | FBSD_IFF_UP | FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST);
	fk_add_if(st, "pfsync0", 0);
	st->boot_sec = 1700000000;
	st->boot_usec = 123456;
	fk_kernel_defaults(st);
}

/* ---- storage and locking ---- */

static void fk_attach(void)
{
	const char *path = getenv("FAKEBSD_STATE");
	if (path != NULL && path[0] != '\0') {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "fakebsd: cannot open FAKEBSD_STATE %s: %s; using private state\n", path,
			        strerror(errno));
		} else {
			struct stat sb;
			int fresh = 0;
			flock(fd, LOCK_EX);
			if (fstat(fd, &sb) == 0 && (size_t)sb.st_size != sizeof(struct fk_state)) {
				if (sb.st_size != 0)
					fprintf(stderr, "fakebsd: %s has an unexpected size, reinitialising\n", path);
				if (ftruncate(fd, (off_t)sizeof(struct fk_state)) != 0)
					fprintf(stderr, "fakebsd: ftruncate %s: %s\n", path, strerror(errno));
				fresh = 1;
			}
			void *m = mmap(NULL, sizeof(struct fk_state), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (m == MAP_FAILED) {
				fprintf(stderr, "fakebsd: mmap %s: %s; using private state\n", path, strerror(errno));
				flock(fd, LOCK_UN);
				syscall(SYS_close, fd);
			} else {
				struct fk_state *st = m;
				if (fresh || st->magic != FK_STATE_MAGIC || st->layout != FK_STATE_LAYOUT ||
				    st->size != sizeof(*st))
					fk_full_defaults(st);
				flock(fd, LOCK_UN);
				fk_state_fd = fd;
				fk_st = st;
			}
		}
	}
	if (fk_st == NULL) {
		void *m = mmap(NULL, sizeof(struct fk_state), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		               -1, 0);
		if (m == MAP_FAILED) {
			fprintf(stderr, "fakebsd: cannot allocate state\n");
			abort();
		}
		fk_st = m;
		fk_full_defaults(fk_st);
	}
}

struct fk_state *fk_lock(void)
{
	pthread_once(&fk_once, fk_attach);
	pthread_mutex_lock(&fk_mu);
	if (fk_state_fd >= 0)
		while (flock(fk_state_fd, LOCK_EX) != 0 && errno == EINTR)
			;
	return fk_st;
}

void fk_unlock(void)
{
	if (fk_state_fd >= 0)
		flock(fk_state_fd, LOCK_UN);
	pthread_mutex_unlock(&fk_mu);
}

/* ---- lookups ---- */

struct fk_if *fk_if_by_name(struct fk_state *st, const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < st->nifs; i++)
		if (strncmp(st->ifs[i].name, name, FBSD_IFNAMSIZ) == 0)
			return &st->ifs[i];
	return NULL;
}

struct fk_if *fk_if_by_index(struct fk_state *st, int index)
{
	for (int i = 0; i < st->nifs; i++)
		if (st->ifs[i].index == index)
			return &st->ifs[i];
	return NULL;
}

struct fk_vhid *fk_vhid_find(struct fk_state *st, const char *ifname, int vhid)
{
	for (int i = 0; i < st->nvhids; i++)
		if (st->vhids[i].vhid == vhid && strncmp(st->vhids[i].ifname, ifname, FBSD_IFNAMSIZ) == 0)
			return &st->vhids[i];
	return NULL;
}

int fk_if_has_carp(struct fk_state *st, const char *ifname)
{
	for (int i = 0; i < st->nvhids; i++)
		if (strncmp(st->vhids[i].ifname, ifname, FBSD_IFNAMSIZ) == 0)
			return 1;
	return 0;
}

int fk_carp_supported(const struct fk_if *ifp)
{
	return ifp->kind == FK_IF_ETHER;
}

int fk_vhid_naddrs(struct fk_state *st, const struct fk_vhid *vh)
{
	struct fk_if *ifp = fk_if_by_name(st, vh->ifname);
	int n = 0;
	if (ifp == NULL)
		return 0;
	for (int i = 0; i < ifp->naddrs; i++)
		if (ifp->addrs[i].vhid == vh->vhid)
			n++;
	return n;
}

uint32_t fk_pfsync_version(const struct fk_state *st)
{
	if (st->pf_version != 0)
		return st->pf_version;
	if (st->osreldate >= FBSD_OSREL_15)
		return FBSD_PFSYNC_MSG_VERSION_1500;
	if (st->osreldate >= FBSD_OSREL_14)
		return FBSD_PFSYNC_MSG_VERSION_1400;
	return FBSD_PFSYNC_MSG_VERSION_1301;
}

/* ---- carp softc life cycle (mirrors ip_carp.c) ---- */

static const char *fk_state_name(int s)
{
	switch (s) {
	case FBSD_CARP_INIT: return "INIT";
	case FBSD_CARP_BACKUP: return "BACKUP";
	case FBSD_CARP_MASTER: return "MASTER";
	default: return "?";
	}
}

void fk_set_state(struct fk_state *st, struct fk_vhid *vh, int state)
{
	if (vh->state == state)
		return;
	vh->state = state;
	/* devctl_notify("CARP", "<vhid>@<if>", "<STATE>") as devd relays it. */
	struct fk_event *ev = &st->events[st->ev_seq % FK_MAX_EVENTS];
	st->ev_seq++;
	ev->seq = st->ev_seq;
	snprintf(ev->line, sizeof(ev->line), "!system=CARP subsystem=%d@%s type=%s", vh->vhid, vh->ifname,
	         fk_state_name(state));
}

struct fk_vhid *fk_vhid_create(struct fk_state *st, const char *ifname, int vhid)
{
	if (st->nvhids >= FK_MAX_VHIDS)
		return NULL;
	struct fk_vhid *vh = &st->vhids[st->nvhids++];
	memset(vh, 0, sizeof(*vh));
	fk_strlcpy(vh->ifname, ifname, sizeof(vh->ifname));
	vh->vhid = vhid;
	vh->advbase = FBSD_CARP_DFLTINTV;
	vh->advskew = 0;
	vh->state = FBSD_CARP_INIT;
	vh->peer[0] = 224;
	vh->peer[3] = 18;
	vh->peer6[0] = 0xff;
	vh->peer6[1] = 0x02;
	vh->peer6[15] = 0x12;
	vh->version = FBSD_CARP_VERSION_CARP;
	vh->vrrp_priority = 100;
	vh->vrrp_adv_inter = 100;
	return vh;
}

void fk_carp_demote_adj(struct fk_state *st, int adj)
{
	/* The sum itself is not clamped; only the advertised skew is (DEMOTE_ADVSKEW). */
	st->carp_demotion += adj;
}

void fk_vhid_destroy(struct fk_state *st, struct fk_vhid *vh)
{
	if (vh->suppress)
		fk_carp_demote_adj(st, -st->carp_ifdown_adj);
	int idx = (int)(vh - st->vhids);
	memmove(&st->vhids[idx], &st->vhids[idx + 1], (size_t)(st->nvhids - idx - 1) * sizeof(*vh));
	st->nvhids--;
	memset(&st->vhids[st->nvhids], 0, sizeof(*vh));
}

static int fk_if_usable(const struct fk_if *ifp)
{
	return ifp != NULL && (ifp->flags & FBSD_IFF_UP) && (ifp->flags & FBSD_IFF_RUNNING);
}

void fk_carp_setrun(struct fk_state *st, struct fk_vhid *vh)
{
	struct fk_if *ifp = fk_if_by_name(st, vh->ifname);
	if (!fk_if_usable(ifp) || fk_vhid_naddrs(st, vh) == 0 || !st->carp_allow)
		return;
	if (vh->state == FBSD_CARP_INIT)
		fk_set_state(st, vh, FBSD_CARP_BACKUP); /* elections are driven by the test */
}

void fk_carp_sc_state(struct fk_state *st, struct fk_vhid *vh)
{
	struct fk_if *ifp = fk_if_by_name(st, vh->ifname);
	if (!fk_if_usable(ifp) || !st->carp_allow) {
		fk_set_state(st, vh, FBSD_CARP_INIT);
		if (!vh->suppress)
			fk_carp_demote_adj(st, st->carp_ifdown_adj);
		vh->suppress = 1;
	} else {
		/* The kernel passes through INIT even for a running MASTER. */
		fk_set_state(st, vh, FBSD_CARP_INIT);
		fk_carp_setrun(st, vh);
		if (vh->suppress)
			fk_carp_demote_adj(st, -st->carp_ifdown_adj);
		vh->suppress = 0;
	}
}

void fk_carp_linkstate(struct fk_state *st, const char *ifname)
{
	for (int i = 0; i < st->nvhids; i++)
		if (strncmp(st->vhids[i].ifname, ifname, FBSD_IFNAMSIZ) == 0)
			fk_carp_sc_state(st, &st->vhids[i]);
}

int fk_carp_attach(struct fk_state *st, struct fk_if *ifp, struct fk_addr *a, int vhid)
{
	if (!st->carp_loaded)
		return FBSD_EPROTONOSUPPORT;
	if (a->family != FBSD_AF_INET && a->family != FBSD_AF_INET6)
		return FBSD_EPROTOTYPE;
	if (!fk_if_has_carp(st, ifp->name))
		return FBSD_ENOPROTOOPT;
	struct fk_vhid *vh = fk_vhid_find(st, ifp->name, vhid);
	if (vh == NULL)
		return FBSD_ENOENT;
	a->vhid = vhid;
	fk_carp_sc_state(st, vh);
	return 0;
}

/* The address must already be out of the interface list or have its vhid cleared by us. */
void fk_carp_detach(struct fk_state *st, struct fk_if *ifp, struct fk_addr *a, int keep_cif)
{
	struct fk_vhid *vh = fk_vhid_find(st, ifp->name, a->vhid);
	a->vhid = 0;
	if (vh == NULL)
		return;
	fk_carp_sc_state(st, vh);
	if (!keep_cif && fk_vhid_naddrs(st, vh) == 0)
		fk_vhid_destroy(st, vh);
}

void fk_if_remove_addr(struct fk_if *ifp, int idx)
{
	memmove(&ifp->addrs[idx], &ifp->addrs[idx + 1], (size_t)(ifp->naddrs - idx - 1) * sizeof(ifp->addrs[0]));
	ifp->naddrs--;
	memset(&ifp->addrs[ifp->naddrs], 0, sizeof(ifp->addrs[0]));
}

static void fk_remove_if(struct fk_state *st, struct fk_if *ifp)
{
	char name[FBSD_IFNAMSIZ];
	fk_strlcpy(name, ifp->name, sizeof(name));
	/* carp_ifdetach: every vhid on the parent goes away. */
	for (int i = st->nvhids - 1; i >= 0; i--)
		if (strncmp(st->vhids[i].ifname, name, FBSD_IFNAMSIZ) == 0)
			fk_vhid_destroy(st, &st->vhids[i]);
	/* pfsync_detach_ifnet */
	if (strncmp(st->pf_syncdev, name, FBSD_IFNAMSIZ) == 0)
		memset(st->pf_syncdev, 0, sizeof(st->pf_syncdev));
	int idx = (int)(ifp - st->ifs);
	memmove(&st->ifs[idx], &st->ifs[idx + 1], (size_t)(st->nifs - idx - 1) * sizeof(*ifp));
	st->nifs--;
	memset(&st->ifs[st->nifs], 0, sizeof(*ifp));
}

/* ---- control API ---- */

static int fk_ret(int err)
{
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

FK_EXPORT int fakebsd_reset(void)
{
	struct fk_state *st = fk_lock();
	fk_full_defaults(st);
	fk_unlock();
	return 0;
}

FK_EXPORT int fakebsd_reboot(void)
{
	struct fk_state *st = fk_lock();
	int64_t boot = st->boot_sec;
	fk_kernel_defaults(st);
	st->boot_sec = boot + 3600;
	st->boot_usec = (st->boot_usec + 1) % 1000000;
	fk_unlock();
	return 0;
}

FK_EXPORT int fakebsd_add_interface(const char *name, int flags)
{
	struct fk_state *st = fk_lock();
	int err = fk_add_if(st, name, flags);
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_remove_interface(const char *name)
{
	struct fk_state *st = fk_lock();
	struct fk_if *ifp = fk_if_by_name(st, name);
	int err = FBSD_ENXIO;
	if (ifp != NULL) {
		fk_remove_if(st, ifp);
		err = 0;
	}
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_set_interface_flags(const char *name, int flags)
{
	struct fk_state *st = fk_lock();
	struct fk_if *ifp = fk_if_by_name(st, name);
	int err = FBSD_ENXIO;
	if (ifp != NULL) {
		ifp->flags = flags;
		fk_carp_linkstate(st, ifp->name);
		err = 0;
	}
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_set_osreldate(int v)
{
	if (v < 1000000 || v > 9999999)
		return fk_ret(FBSD_EINVAL);
	struct fk_state *st = fk_lock();
	st->osreldate = v;
	fk_unlock();
	return 0;
}

FK_EXPORT int fakebsd_set_modules(int carp, int pfsync)
{
	struct fk_state *st = fk_lock();
	int err = 0;
	if (!carp && st->carp_loaded && st->nvhids > 0) {
		err = FBSD_EBUSY; /* kldunload carp refuses while vhids exist */
		goto out;
	}
	st->carp_loaded = carp ? 1 : 0;
	if (!pfsync && st->pfsync_loaded) {
		struct fk_if *ifp = fk_if_by_name(st, "pfsync0");
		if (ifp != NULL)
			fk_remove_if(st, ifp);
		memset(st->pf_syncdev, 0, sizeof(st->pf_syncdev));
		st->pf_peer_family = 0;
		st->pf_maxupdates = 128;
		st->pf_flags = FBSD_PFSYNCF_OK;
		st->pf_version = 0;
	} else if (pfsync && !st->pfsync_loaded && fk_if_by_name(st, "pfsync0") == NULL) {
		fk_add_if(st, "pfsync0", 0); /* the cloner creates pfsync0 on load */
	}
	st->pfsync_loaded = pfsync ? 1 : 0;
out:
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_set_uid(int uid)
{
	struct fk_state *st = fk_lock();
	st->uid = uid;
	fk_unlock();
	return 0;
}

FK_EXPORT int fakebsd_set_vhid_state(const char *ifname, int vhid, int state)
{
	if (state < FBSD_CARP_INIT || state > FBSD_CARP_MASTER)
		return fk_ret(FBSD_EINVAL);
	struct fk_state *st = fk_lock();
	struct fk_vhid *vh = ifname ? fk_vhid_find(st, ifname, vhid) : NULL;
	int err = FBSD_ENOENT;
	if (vh != NULL) {
		fk_set_state(st, vh, state);
		err = 0;
	}
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_get_vhid(const char *ifname, int vhid, int *state, int *advbase, int *advskew)
{
	struct fk_state *st = fk_lock();
	struct fk_vhid *vh = ifname ? fk_vhid_find(st, ifname, vhid) : NULL;
	int err = FBSD_ENOENT;
	if (vh != NULL) {
		if (state)
			*state = vh->state;
		if (advbase)
			*advbase = vh->advbase;
		if (advskew)
			*advskew = vh->advskew;
		err = 0;
	}
	fk_unlock();
	return fk_ret(err);
}

FK_EXPORT int fakebsd_fail_next(unsigned long request, int fbsd_errno)
{
	struct fk_state *st = fk_lock();
	st->fail_ioctl_armed = fbsd_errno != 0;
	st->fail_ioctl_request = (uint32_t)request;
	st->fail_ioctl_errno = fbsd_errno;
	fk_unlock();
	return 0;
}

FK_EXPORT int fakebsd_fail_next_netlink(int carp_cmd, int fbsd_errno)
{
	struct fk_state *st = fk_lock();
	st->fail_nl_armed = fbsd_errno != 0;
	st->fail_nl_cmd = carp_cmd;
	st->fail_nl_errno = fbsd_errno;
	fk_unlock();
	return 0;
}

FK_EXPORT long fakebsd_ioctl_count(unsigned long request)
{
	struct fk_state *st = fk_lock();
	long n = 0;
	if (request == 0) {
		n = (long)st->ioctl_total;
	} else {
		for (int i = 0; i < FK_MAX_IOCTL_COUNTERS; i++)
			if (st->ioctl_counts[i].count > 0 && st->ioctl_counts[i].request == (uint32_t)request)
				n = (long)st->ioctl_counts[i].count;
	}
	fk_unlock();
	return n;
}

FK_EXPORT long fakebsd_netlink_count(int cmd)
{
	struct fk_state *st = fk_lock();
	long n = 0;
	if (cmd == 0)
		n = (long)st->netlink_total;
	else if (cmd == FBSD_CARP_NL_CMD_GET)
		n = (long)st->netlink_counts[1];
	else if (cmd == FBSD_CARP_NL_CMD_SET)
		n = (long)st->netlink_counts[2];
	else if (cmd == FBSD_CTRL_CMD_GETFAMILY)
		n = (long)st->netlink_counts[0];
	fk_unlock();
	return n;
}

FK_EXPORT long fakebsd_sysctl_count(void)
{
	struct fk_state *st = fk_lock();
	long n = (long)st->sysctl_total;
	fk_unlock();
	return n;
}

FK_EXPORT int fakebsd_pfsync_bulk(int pending)
{
	struct fk_state *st = fk_lock();
	if (pending) {
		/* pfsync_kstatus_to_softc: "pfsync bulk start" */
		if (st->pf_flags & FBSD_PFSYNCF_OK)
			fk_carp_demote_adj(st, st->pfsync_carp_adj);
		st->pf_flags &= ~(uint32_t)FBSD_PFSYNCF_OK;
		st->pf_bulk_manual = 1;
	} else {
		if (!(st->pf_flags & FBSD_PFSYNCF_OK))
			fk_carp_demote_adj(st, -st->pfsync_carp_adj);
		st->pf_flags |= FBSD_PFSYNCF_OK;
		st->pf_bulk_manual = 0;
	}
	fk_unlock();
	return 0;
}

/* pf's module and status as DIOCGETSTATUS[NV] report them; a negative count keeps the current one. */
FK_EXPORT int fakebsd_pf_set(int loaded, int running, long states, long searches, long inserts, long removals)
{
	struct fk_state *st = fk_lock();
	st->pf_loaded = loaded ? 1 : 0;
	st->pf_running = running ? 1 : 0;
	if (states >= 0)
		st->pf_states = (uint64_t)states;
	if (searches >= 0)
		st->pf_fcounters[0] = (uint64_t)searches;
	if (inserts >= 0)
		st->pf_fcounters[1] = (uint64_t)inserts;
	if (removals >= 0)
		st->pf_fcounters[2] = (uint64_t)removals;
	fk_unlock();
	return 0;
}

FK_EXPORT long fakebsd_events(unsigned long after, char *buf, size_t len)
{
	struct fk_state *st = fk_lock();
	size_t off = 0;
	unsigned long last = after;
	uint64_t first = st->ev_seq > FK_MAX_EVENTS ? st->ev_seq - FK_MAX_EVENTS + 1 : 1;
	if (buf != NULL && len > 0)
		buf[0] = '\0';
	for (uint64_t s = first; s <= st->ev_seq; s++) {
		if (s <= after)
			continue;
		const struct fk_event *ev = &st->events[(s - 1) % FK_MAX_EVENTS];
		size_t l = strlen(ev->line);
		if (buf == NULL || off + l + 2 > len)
			break;
		memcpy(buf + off, ev->line, l);
		buf[off + l] = '\n';
		off += l + 1;
		buf[off] = '\0';
		last = (unsigned long)s;
	}
	fk_unlock();
	return (long)last;
}

/* ---- dump ---- */

struct fk_out {
	char *buf;
	size_t len;
	size_t used;
};

__attribute__((format(printf, 2, 3))) static void fk_out(struct fk_out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t room = o->used < o->len ? o->len - o->used : 0;
	int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
}

static const char *fk_addr_str(int family, const uint8_t *addr, char *out, size_t outlen)
{
	if (family == FBSD_AF_INET)
		return inet_ntop(AF_INET, addr, out, (socklen_t)outlen);
	uint8_t tmp[16];
	memcpy(tmp, addr, 16);
	/* Hide the embedded scope (KAME style) of link-local addresses. */
	if (tmp[0] == 0xfe && (tmp[1] & 0xc0) == 0x80) {
		tmp[2] = 0;
		tmp[3] = 0;
	}
	return inet_ntop(AF_INET6, tmp, out, (socklen_t)outlen);
}

static int fk_effective_skew(const struct fk_state *st, const struct fk_vhid *vh)
{
	int s = vh->advskew + st->carp_demotion;
	if (s > FBSD_CARP_MAXSKEW)
		s = FBSD_CARP_MAXSKEW;
	if (s < 0 && st->osreldate >= FBSD_OSREL_14)
		s = 0;
	return s;
}

FK_EXPORT int fakebsd_dump(char *buf, size_t len)
{
	struct fk_state *st = fk_lock();
	struct fk_out o = {buf, len, 0};
	char a[64];
	if (buf != NULL && len > 0)
		buf[0] = '\0';
	fk_out(&o, "{\"osreldate\":%d,\"uid\":%d,\"modules\":{\"carp\":%d,\"pfsync\":%d},", st->osreldate, st->uid,
	       st->carp_loaded, st->pfsync_loaded);
	fk_out(&o, "\"boottime\":{\"sec\":%lld,\"usec\":%lld},", (long long)st->boot_sec, (long long)st->boot_usec);
	fk_out(&o,
	       "\"sysctl\":{\"net.inet.carp.allow\":%d,\"net.inet.carp.preempt\":%d,\"net.inet.carp.log\":%d,"
	       "\"net.inet.carp.demotion\":%d,\"net.pfsync.carp_demotion_factor\":%d},",
	       st->carp_allow, st->carp_preempt, st->carp_log, st->carp_demotion, st->pfsync_carp_adj);
	fk_out(&o, "\"pfsync\":{\"syncdev\":\"%s\",", st->pf_syncdev);
	if (st->pf_peer_family == FBSD_AF_INET || st->pf_peer_family == FBSD_AF_INET6)
		fk_out(&o, "\"syncpeer\":\"%s\",", fk_addr_str(st->pf_peer_family, st->pf_peer, a, sizeof(a)));
	else
		fk_out(&o, "\"syncpeer\":null,");
	fk_out(&o, "\"maxupdates\":%d,\"flags\":%u,\"version\":%u},", st->pf_maxupdates, st->pf_flags,
	       fk_pfsync_version(st));
	fk_out(&o, "\"interfaces\":[");
	for (int i = 0; i < st->nifs; i++) {
		const struct fk_if *ifp = &st->ifs[i];
		fk_out(&o, "%s{\"name\":\"%s\",\"index\":%d,\"flags\":%d,\"addresses\":[", i ? "," : "", ifp->name,
		       ifp->index, ifp->flags);
		for (int j = 0; j < ifp->naddrs; j++) {
			const struct fk_addr *ad = &ifp->addrs[j];
			fk_out(&o, "%s{\"family\":\"%s\",\"address\":\"%s\",\"prefixlen\":%d,\"vhid\":%d}", j ? "," : "",
			       ad->family == FBSD_AF_INET ? "inet" : "inet6",
			       fk_addr_str(ad->family, ad->addr, a, sizeof(a)), ad->plen, ad->vhid);
		}
		fk_out(&o, "]}");
	}
	fk_out(&o, "],\"vhids\":[");
	for (int i = 0; i < st->nvhids; i++) {
		const struct fk_vhid *vh = &st->vhids[i];
		char p4[32], p6[64];
		fk_out(&o,
		       "%s{\"interface\":\"%s\",\"vhid\":%d,\"state\":\"%s\",\"advbase\":%d,\"advskew\":%d,"
		       "\"effective_skew\":%d,\"addresses\":%d,\"key\":\"",
		       i ? "," : "", vh->ifname, vh->vhid, fk_state_name(vh->state), vh->advbase, vh->advskew,
		       fk_effective_skew(st, vh), fk_vhid_naddrs(st, vh));
		for (int k = 0; k < FBSD_CARP_KEY_LEN; k++)
			fk_out(&o, "%02x", vh->key[k]);
		fk_out(&o, "\",\"peer\":\"%s\",\"peer6\":\"%s\"}", fk_addr_str(FBSD_AF_INET, vh->peer, p4, sizeof(p4)),
		       fk_addr_str(FBSD_AF_INET6, vh->peer6, p6, sizeof(p6)));
	}
	fk_out(&o, "],\"ioctls\":{\"total\":%lld", (long long)st->ioctl_total);
	for (int i = 0; i < FK_MAX_IOCTL_COUNTERS; i++)
		if (st->ioctl_counts[i].count > 0)
			fk_out(&o, ",\"0x%08x\":%lld", st->ioctl_counts[i].request, (long long)st->ioctl_counts[i].count);
	fk_out(&o, "},\"netlink\":{\"total\":%lld,\"getfamily\":%lld,\"get\":%lld,\"set\":%lld},\"sysctls\":%lld}",
	       (long long)st->netlink_total, (long long)st->netlink_counts[0], (long long)st->netlink_counts[1],
	       (long long)st->netlink_counts[2], (long long)st->sysctl_total);
	fk_unlock();
	return (int)o.used;
}
