/*
 * Internal declarations of the fake FreeBSD kernel (libfakefreebsd.so).
 *
 * Everything here is hidden; only the libc names and the fakebsd_* control API are
 * exported (see FK_EXPORT). The kernel state is one fixed-size struct without
 * pointers so it can live in a MAP_SHARED file and be shared between processes.
 */
#ifndef FAKEBSD_H
#define FAKEBSD_H

#include <stdint.h>
#include <stddef.h>

#include "fbsd_abi.h"

#define FK_EXPORT __attribute__((visibility("default")))
#define FK_HIDDEN __attribute__((visibility("hidden")))

#define FK_MAX_IFS 32
#define FK_MAX_ADDRS 64
#define FK_MAX_VHIDS 512
#define FK_MAX_IOCTL_COUNTERS 64
#define FK_MAX_EVENTS 256
#define FK_EVENT_LEN 80

#define FK_STATE_MAGIC 0x534b4246u /* "FBKS" */
#define FK_STATE_LAYOUT 4

/* Interface kinds: carp(4) accepts only Ethernet-like parents. */
#define FK_IF_ETHER 0
#define FK_IF_LOOP 1
#define FK_IF_PFSYNC 2

#define FK_NL_CARP_FAMILY_ID 0x20

struct fk_addr {
	uint8_t family; /* FBSD_AF_INET / FBSD_AF_INET6 */
	uint8_t plen;
	uint16_t pad;
	int32_t vhid;
	uint8_t addr[16]; /* IPv4 in the first 4 bytes, network order */
	uint32_t vltime;
	uint32_t pltime;
};

struct fk_if {
	char name[FBSD_IFNAMSIZ];
	int32_t index;
	int32_t flags; /* FreeBSD IFF_* bits; IFF_RUNNING doubles as "link up" */
	int32_t kind;
	int32_t naddrs;
	struct fk_addr addrs[FK_MAX_ADDRS]; /* in if_addrhead order */
};

struct fk_vhid {
	char ifname[FBSD_IFNAMSIZ];
	int32_t vhid;
	int32_t advbase;
	int32_t advskew;
	int32_t state;
	uint8_t key[FBSD_CARP_KEY_LEN];
	int32_t key_len;
	uint8_t peer[4];   /* network order; 224.0.0.18 = multicast */
	uint8_t peer6[16]; /* ff02::12 = multicast */
	int32_t suppress;  /* ifdown demotion currently applied */
	int32_t version;   /* 15: CARP_VERSION_* */
	int32_t vrrp_priority;
	int32_t vrrp_adv_inter;
};

struct fk_ioctl_counter {
	uint32_t request;
	uint32_t pad;
	int64_t count;
};

struct fk_event {
	uint64_t seq;
	char line[FK_EVENT_LEN];
};

struct fk_state {
	uint32_t magic;
	uint32_t layout;
	uint64_t size;

	int32_t osreldate;
	int32_t carp_loaded;
	int32_t pfsync_loaded;
	int32_t uid;

	int32_t nifs;
	struct fk_if ifs[FK_MAX_IFS];
	int32_t nvhids;
	struct fk_vhid vhids[FK_MAX_VHIDS]; /* creation order, as the kernel's TAILQ */

	/* net.inet.carp.* */
	int32_t carp_allow;
	int32_t carp_preempt;
	int32_t carp_log;
	int32_t carp_demotion;
	int32_t carp_senderr_adj;
	int32_t carp_ifdown_adj;
	int32_t carp_dscp;
	int32_t pad0;
	uint64_t carp_stats[16];

	/* net.pfsync.* */
	int32_t pfsync_carp_adj;
	uint32_t pfsync_defer_delay;
	uint64_t pfsync_stats[50]; /* up to 400 bytes (15.x) */

	/* pfsync0 softc */
	char pf_syncdev[FBSD_IFNAMSIZ];
	int32_t pf_peer_family; /* 0 = never set */
	uint8_t pf_peer[16];
	uint32_t pf_peer_scope;
	int32_t pf_maxupdates;
	uint32_t pf_flags;   /* PFSYNCF_OK | PFSYNCF_DEFER */
	uint32_t pf_version; /* 0 = default for the running osreldate */
	int32_t pf_bulk_manual;

	/* pf(4): /dev/pf exists while pf_loaded */
	int32_t pf_loaded;
	int32_t pf_running;
	uint64_t pf_states;
	uint64_t pf_src_nodes;
	uint64_t pf_fcounters[3]; /* searches, inserts, removals */

	/* kern.boottime */
	int64_t boot_sec;
	int64_t boot_usec;

	/* instrumentation */
	int64_t ioctl_total;
	struct fk_ioctl_counter ioctl_counts[FK_MAX_IOCTL_COUNTERS];
	int64_t netlink_total;
	int64_t netlink_counts[4]; /* [0] ctrl, [1] carp GET, [2] carp SET, [3] other */
	int64_t sysctl_total;
	int32_t fail_ioctl_armed;
	uint32_t fail_ioctl_request;
	int32_t fail_ioctl_errno;
	int32_t fail_nl_armed;
	int32_t fail_nl_cmd;
	int32_t fail_nl_errno;

	/* devctl "!system=CARP ..." lines, newest last */
	uint64_t ev_seq;
	struct fk_event events[FK_MAX_EVENTS];
};

/* state.c */
FK_HIDDEN struct fk_state *fk_lock(void);
FK_HIDDEN void fk_unlock(void);
FK_HIDDEN void fk_real_free(void *p);
FK_HIDDEN struct fk_if *fk_if_by_name(struct fk_state *st, const char *name);
FK_HIDDEN struct fk_if *fk_if_by_index(struct fk_state *st, int index);
FK_HIDDEN struct fk_vhid *fk_vhid_find(struct fk_state *st, const char *ifname, int vhid);
FK_HIDDEN int fk_if_has_carp(struct fk_state *st, const char *ifname);
FK_HIDDEN struct fk_vhid *fk_vhid_create(struct fk_state *st, const char *ifname, int vhid);
FK_HIDDEN void fk_vhid_destroy(struct fk_state *st, struct fk_vhid *vh);
FK_HIDDEN int fk_vhid_naddrs(struct fk_state *st, const struct fk_vhid *vh);
FK_HIDDEN void fk_set_state(struct fk_state *st, struct fk_vhid *vh, int state);
FK_HIDDEN void fk_carp_sc_state(struct fk_state *st, struct fk_vhid *vh);
FK_HIDDEN void fk_carp_setrun(struct fk_state *st, struct fk_vhid *vh);
FK_HIDDEN void fk_carp_linkstate(struct fk_state *st, const char *ifname);
FK_HIDDEN void fk_carp_demote_adj(struct fk_state *st, int adj);
FK_HIDDEN int fk_carp_attach(struct fk_state *st, struct fk_if *ifp, struct fk_addr *a, int vhid);
FK_HIDDEN void fk_carp_detach(struct fk_state *st, struct fk_if *ifp, struct fk_addr *a, int keep_cif);
FK_HIDDEN void fk_if_remove_addr(struct fk_if *ifp, int idx);
FK_HIDDEN uint32_t fk_pfsync_version(const struct fk_state *st);
FK_HIDDEN int fk_carp_supported(const struct fk_if *ifp);

/* sockets.c */
struct fk_sockinfo {
	int domain;
	int type;
	int protocol;
};
FK_HIDDEN int fk_sock_info(int fd, struct fk_sockinfo *out);
FK_HIDDEN int fk_fd_valid(int fd);

/* ioctl.c */
FK_HIDDEN int fk_ioctl(struct fk_state *st, const struct fk_sockinfo *so, uint32_t req, void *arg);
/* A /dev/pf descriptor is a fake socket of this domain, its type holding the access mode. */
#define FK_DOMAIN_DEVPF (-1)

/* pf.c */
FK_HIDDEN int fk_pf_ioctl(struct fk_state *st, int accmode, uint32_t req, void *arg);

/* netlink.c */
struct fk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
FK_HIDDEN void fk_netlink_process(struct fk_state *st, uint32_t port, const uint8_t *msg, size_t len,
                                  struct fk_buf *out);
FK_HIDDEN void fk_buf_free(struct fk_buf *b);

/* Helpers. */
FK_HIDDEN void fk_strlcpy(char *dst, const char *src, size_t size);

#endif
