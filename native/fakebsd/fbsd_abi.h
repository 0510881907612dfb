/*
 * FreeBSD userland/kernel ABI facts used by the fake (amd64/arm64 LP64 layouts).
 * Numbers come from reference/freebsd-kernel-abi.md; the structs below are
 * written from its offset tables and checked with static asserts, so a layout
 * mistake fails the build instead of silently disagreeing with the TypeScript side.
 */
#ifndef FBSD_ABI_H
#define FBSD_ABI_H

#include <stddef.h>
#include <stdint.h>

/* errno (FreeBSD numbering; identical in 13/14/15). */
#define FBSD_EPERM 1
#define FBSD_ENOENT 2
#define FBSD_ESRCH 3
#define FBSD_EINTR 4
#define FBSD_EIO 5
#define FBSD_ENXIO 6
#define FBSD_E2BIG 7
#define FBSD_EBADF 9
#define FBSD_ENOMEM 12
#define FBSD_EACCES 13
#define FBSD_EFAULT 14
#define FBSD_EBUSY 16
#define FBSD_EEXIST 17
#define FBSD_ENODEV 19
#define FBSD_ENOTDIR 20
#define FBSD_EINVAL 22
#define FBSD_ENFILE 23
#define FBSD_EMFILE 24
#define FBSD_ENOTTY 25
#define FBSD_EFBIG 27
#define FBSD_ENOSPC 28
#define FBSD_EPIPE 32
#define FBSD_ERANGE 34
#define FBSD_EAGAIN 35
#define FBSD_EINPROGRESS 36
#define FBSD_EALREADY 37
#define FBSD_ENOTSOCK 38
#define FBSD_EDESTADDRREQ 39
#define FBSD_EMSGSIZE 40
#define FBSD_EPROTOTYPE 41
#define FBSD_ENOPROTOOPT 42
#define FBSD_EPROTONOSUPPORT 43
#define FBSD_ESOCKTNOSUPPORT 44
#define FBSD_EOPNOTSUPP 45
#define FBSD_EPFNOSUPPORT 46
#define FBSD_EAFNOSUPPORT 47
#define FBSD_EADDRINUSE 48
#define FBSD_EADDRNOTAVAIL 49
#define FBSD_ENETDOWN 50
#define FBSD_ENOBUFS 55
#define FBSD_ENOTCONN 57
#define FBSD_ETIMEDOUT 60
#define FBSD_ENOSYS 78
#define FBSD_EOVERFLOW 84
#define FBSD_ENOATTR 87
#define FBSD_EDOOFUS 88
#define FBSD_EBADMSG 89
#define FBSD_EPROTO 92
#define FBSD_EINTEGRITY 97

/* Address families, socket types and flags. */
#define FBSD_AF_UNSPEC 0
#define FBSD_AF_INET 2
#define FBSD_AF_INET6 28
#define FBSD_AF_NETLINK 38
#define FBSD_SOCK_STREAM 1
#define FBSD_SOCK_DGRAM 2
#define FBSD_SOCK_RAW 3
#define FBSD_SOCK_CLOEXEC 0x10000000
#define FBSD_SOCK_NONBLOCK 0x20000000
#define FBSD_NETLINK_ROUTE 0
#define FBSD_NETLINK_GENERIC 16
#define FBSD_MSG_PEEK 0x2
#define FBSD_MSG_TRUNC 0x10
#define FBSD_MSG_DONTWAIT 0x80

/* Interface flags. */
#define FBSD_IFF_UP 0x1
#define FBSD_IFF_BROADCAST 0x2
#define FBSD_IFF_LOOPBACK 0x8
#define FBSD_IFF_POINTOPOINT 0x10
#define FBSD_IFF_RUNNING 0x40
#define FBSD_IFF_MULTICAST 0x8000
/* Bits SIOCSIFFLAGS cannot change (subset of IFF_CANTCHANGE relevant here). */
#define FBSD_IFF_CANTCHANGE (FBSD_IFF_BROADCAST | FBSD_IFF_LOOPBACK | FBSD_IFF_POINTOPOINT | \
                             FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST)

#define FBSD_IFNAMSIZ 16

/* ioctl requests (32-bit values; the kernel truncates the u_long). */
#define FBSD_SIOCSVH 0xc02069f5u
#define FBSD_SIOCGVH 0xc02069f6u
#define FBSD_SIOCAIFADDR 0x8044692bu
#define FBSD_OSIOCAIFADDR 0x8040691au
#define FBSD_SIOCDIFADDR 0x80206919u
#define FBSD_SIOCAIFADDR_IN6 0x8088691bu
#define FBSD_OSIOCAIFADDR_IN6 0x8080691au
#define FBSD_SIOCDIFADDR_IN6 0x81206919u
#define FBSD_SIOCSETPFSYNC 0x802069f7u
#define FBSD_SIOCGETPFSYNC 0xc02069f8u
#define FBSD_SIOCSETPFSYNCNV 0x802069f9u
#define FBSD_SIOCGETPFSYNCNV 0xc02069fau
#define FBSD_SIOCGIFFLAGS 0xc0206911u
/* pf(4) on /dev/pf (reference/pf-status.md): _IOWR('D', 21, struct pf_status) and
 * _IOWR('D', 21, struct pfioc_nv); same number 21, different sizes. */
#define FBSD_DIOCGETSTATUS 0xc1a04415u
#define FBSD_DIOCGETSTATUSNV 0xc0184415u
#define FBSD_OSREL_13_1 1301000
#define FBSD_O_ACCMODE 0x0003
#define FBSD_O_CLOEXEC 0x00100000
#define FBSD_SIOCSIFFLAGS 0x80206910u
#define FBSD_SIOCGIFINDEX 0xc0206920u
#define FBSD_SIOCIFCREATE 0xc020697au
#define FBSD_SIOCIFCREATE2 0xc020697cu

/* CARP. */
#define FBSD_CARP_KEY_LEN 20
#define FBSD_CARP_MAXVHID 255
#define FBSD_CARP_MAXSKEW 240
#define FBSD_CARP_MAXSTATE 2
#define FBSD_CARP_DFLTINTV 1
#define FBSD_CARP_INIT 0
#define FBSD_CARP_BACKUP 1
#define FBSD_CARP_MASTER 2
#define FBSD_CARP_VERSION_CARP 2
#define FBSD_CARP_VERSION_VRRPv3 3

/* pfsync. */
#define FBSD_PFSYNCF_OK 0x1
#define FBSD_PFSYNCF_DEFER 0x2
#define FBSD_PFSYNC_MSG_VERSION_UNSPECIFIED 0
#define FBSD_PFSYNC_MSG_VERSION_1301 1301
#define FBSD_PFSYNC_MSG_VERSION_1400 1400
#define FBSD_PFSYNC_MSG_VERSION_1500 1500
#define FBSD_IFR_CAP_NV_MAXBUFSIZE 2097152u
#define FBSD_INADDR_PFSYNC_GROUP 0xe00000f0u /* host order */
#define FBSD_INADDR_CARP_GROUP 0xe0000012u   /* host order */

/* Netlink. */
#define FBSD_NLM_F_REQUEST 0x1
#define FBSD_NLM_F_MULTI 0x2
#define FBSD_NLM_F_ACK 0x4
#define FBSD_NLM_F_DUMP 0x300
#define FBSD_NLM_F_CAPPED 0x100
#define FBSD_NLMSG_NOOP 1
#define FBSD_NLMSG_ERROR 2
#define FBSD_NLMSG_DONE 3
#define FBSD_NLMSG_MIN_TYPE 16
#define FBSD_NLA_F_NESTED 0x8000
#define FBSD_NLA_F_NET_BYTEORDER 0x4000
#define FBSD_NLA_TYPE_MASK 0x3fff
#define FBSD_GENL_ID_CTRL 16
#define FBSD_CTRL_CMD_NEWFAMILY 1
#define FBSD_CTRL_CMD_GETFAMILY 3
#define FBSD_CTRL_ATTR_FAMILY_ID 1
#define FBSD_CTRL_ATTR_FAMILY_NAME 2
#define FBSD_CTRL_ATTR_VERSION 3
#define FBSD_CTRL_ATTR_HDRSIZE 4
#define FBSD_CTRL_ATTR_MAXATTR 5
#define FBSD_CTRL_ATTR_OPS 6
#define FBSD_CTRL_ATTR_OP_ID 1
#define FBSD_CTRL_ATTR_OP_FLAGS 2
#define FBSD_CARP_NL_CMD_GET 1
#define FBSD_CARP_NL_CMD_SET 2
#define FBSD_CARP_NL_VHID 1
#define FBSD_CARP_NL_STATE 2
#define FBSD_CARP_NL_ADVBASE 3
#define FBSD_CARP_NL_ADVSKEW 4
#define FBSD_CARP_NL_KEY 5
#define FBSD_CARP_NL_IFINDEX 6
#define FBSD_CARP_NL_ADDR 7
#define FBSD_CARP_NL_ADDR6 8
#define FBSD_CARP_NL_IFNAME 9
#define FBSD_CARP_NL_VERSION 10
#define FBSD_CARP_NL_VRRP_PRIORITY 11
#define FBSD_CARP_NL_VRRP_ADV_INTER 12

/* Version thresholds (kern.osreldate). */
#define FBSD_OSREL_14 1400000
#define FBSD_OSREL_15 1500000

/* ---- Structures, written from the reference offset tables. ---- */

struct fbsd_sockaddr_in {
	uint8_t sin_len;    /* must be 16 */
	uint8_t sin_family; /* AF_INET = 2 */
	uint16_t sin_port;
	uint8_t sin_addr[4];
	uint8_t sin_zero[8];
};

struct fbsd_sockaddr_in6 {
	uint8_t sin6_len;    /* must be 28 */
	uint8_t sin6_family; /* AF_INET6 = 28 */
	uint16_t sin6_port;
	uint32_t sin6_flowinfo;
	uint8_t sin6_addr[16];
	uint32_t sin6_scope_id;
};

struct fbsd_ifreq_nv {
	uint32_t buf_length;
	uint32_t length;
	void *buffer;
};

struct fbsd_ifreq {
	char ifr_name[FBSD_IFNAMSIZ];
	union {
		uint8_t raw[16];
		struct fbsd_sockaddr_in addr; /* ifr_addr */
		void *data;                   /* ifr_data */
		struct fbsd_ifreq_nv nv;      /* ifr_cap_nv (14+) */
		int16_t flags[2];             /* ifr_flags / ifr_flagshigh */
		int16_t index;                /* ifr_index */
	} ifr_ifru;
};

struct fbsd_carpreq {
	int32_t carpr_count;
	int32_t carpr_vhid;
	int32_t carpr_state;
	int32_t carpr_advskew;
	int32_t carpr_advbase;
	uint8_t carpr_key[FBSD_CARP_KEY_LEN];
};

struct fbsd_in_aliasreq {
	char ifra_name[FBSD_IFNAMSIZ];
	struct fbsd_sockaddr_in ifra_addr;
	struct fbsd_sockaddr_in ifra_broadaddr; /* also ifra_dstaddr */
	struct fbsd_sockaddr_in ifra_mask;
	int32_t ifra_vhid;
};

struct fbsd_in6_addrlifetime {
	int64_t ia6t_expire;
	int64_t ia6t_preferred;
	uint32_t ia6t_vltime;
	uint32_t ia6t_pltime;
};

struct fbsd_in6_aliasreq {
	char ifra_name[FBSD_IFNAMSIZ];
	struct fbsd_sockaddr_in6 ifra_addr;
	struct fbsd_sockaddr_in6 ifra_dstaddr;
	struct fbsd_sockaddr_in6 ifra_prefixmask;
	int32_t ifra_flags;
	struct fbsd_in6_addrlifetime ifra_lifetime;
	int32_t ifra_vhid;
};

struct fbsd_in6_ifreq {
	char ifr_name[FBSD_IFNAMSIZ];
	union {
		struct fbsd_sockaddr_in6 addr;
		int32_t flags6;
		uint64_t stats[34]; /* icmp6_ifstat: 272 bytes, 8-aligned */
	} ifr_ifru;
};

struct fbsd_pfsyncreq {
	char pfsyncr_syncdev[FBSD_IFNAMSIZ];
	uint8_t pfsyncr_syncpeer[4];
	int32_t pfsyncr_maxupdates;
	int32_t pfsyncr_defer;
};

/* sys/net/pfvar.h, 13.x/14.x: PFRES_MAX 16, LCNT_MAX 7, FCNT_MAX 3, SCNT_MAX 3. */
struct fbsd_pf_status {
	uint64_t counters[16];
	uint64_t lcounters[7];
	uint64_t fcounters[3]; /* FCNT_STATE_SEARCH, FCNT_STATE_INSERT, FCNT_STATE_REMOVALS */
	uint64_t scounters[3];
	uint64_t pcounters[2][2][3];
	uint64_t bcounters[2][2];
	uint32_t running;
	uint32_t states;
	uint32_t src_nodes;
	uint32_t since;
	uint32_t debug;
	uint32_t hostid; /* network order */
	char ifname[FBSD_IFNAMSIZ];
	uint8_t pf_chksum[16];
};

struct fbsd_pfioc_nv {
	uint64_t data; /* void * */
	uint64_t len;  /* size_t */
	uint64_t size; /* size_t */
};

struct fbsd_timeval {
	int64_t tv_sec;
	int64_t tv_usec;
};

struct fbsd_nlmsghdr {
	uint32_t nlmsg_len;
	uint16_t nlmsg_type;
	uint16_t nlmsg_flags;
	uint32_t nlmsg_seq;
	uint32_t nlmsg_pid;
};

struct fbsd_genlmsghdr {
	uint8_t cmd;
	uint8_t version;
	uint16_t reserved;
};

struct fbsd_nlattr {
	uint16_t nla_len; /* header + payload, unpadded */
	uint16_t nla_type;
};

struct fbsd_nlmsgerr {
	int32_t error; /* positive errno on FreeBSD */
	struct fbsd_nlmsghdr msg;
};

#define FBSD_CHECK_SIZE(t, n) _Static_assert(sizeof(struct t) == (n), #t " size")
#define FBSD_CHECK_OFF(t, f, n) _Static_assert(offsetof(struct t, f) == (n), #t "." #f " offset")

FBSD_CHECK_SIZE(fbsd_sockaddr_in, 16);
FBSD_CHECK_OFF(fbsd_sockaddr_in, sin_addr, 4);
FBSD_CHECK_SIZE(fbsd_sockaddr_in6, 28);
FBSD_CHECK_OFF(fbsd_sockaddr_in6, sin6_addr, 8);
FBSD_CHECK_OFF(fbsd_sockaddr_in6, sin6_scope_id, 24);
FBSD_CHECK_SIZE(fbsd_ifreq, 32);
FBSD_CHECK_OFF(fbsd_ifreq, ifr_ifru, 16);
FBSD_CHECK_OFF(fbsd_ifreq, ifr_ifru.nv.length, 20);
FBSD_CHECK_OFF(fbsd_ifreq, ifr_ifru.nv.buffer, 24);
FBSD_CHECK_SIZE(fbsd_carpreq, 40);
FBSD_CHECK_OFF(fbsd_carpreq, carpr_advskew, 12);
FBSD_CHECK_OFF(fbsd_carpreq, carpr_advbase, 16);
FBSD_CHECK_OFF(fbsd_carpreq, carpr_key, 20);
FBSD_CHECK_SIZE(fbsd_in_aliasreq, 68);
FBSD_CHECK_OFF(fbsd_in_aliasreq, ifra_mask, 48);
FBSD_CHECK_OFF(fbsd_in_aliasreq, ifra_vhid, 64);
FBSD_CHECK_SIZE(fbsd_in6_addrlifetime, 24);
FBSD_CHECK_SIZE(fbsd_in6_aliasreq, 136);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_dstaddr, 44);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_prefixmask, 72);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_flags, 100);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_lifetime, 104);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_lifetime.ia6t_vltime, 120);
FBSD_CHECK_OFF(fbsd_in6_aliasreq, ifra_vhid, 128);
FBSD_CHECK_SIZE(fbsd_in6_ifreq, 288);
FBSD_CHECK_SIZE(fbsd_pfsyncreq, 28);
FBSD_CHECK_OFF(fbsd_pfsyncreq, pfsyncr_maxupdates, 20);
FBSD_CHECK_SIZE(fbsd_timeval, 16);
FBSD_CHECK_SIZE(fbsd_pf_status, 416);
FBSD_CHECK_OFF(fbsd_pf_status, lcounters, 128);
FBSD_CHECK_OFF(fbsd_pf_status, fcounters, 184);
FBSD_CHECK_OFF(fbsd_pf_status, scounters, 208);
FBSD_CHECK_OFF(fbsd_pf_status, pcounters, 232);
FBSD_CHECK_OFF(fbsd_pf_status, bcounters, 328);
FBSD_CHECK_OFF(fbsd_pf_status, running, 360);
FBSD_CHECK_OFF(fbsd_pf_status, states, 364);
FBSD_CHECK_OFF(fbsd_pf_status, src_nodes, 368);
FBSD_CHECK_OFF(fbsd_pf_status, hostid, 380);
FBSD_CHECK_OFF(fbsd_pf_status, ifname, 384);
FBSD_CHECK_OFF(fbsd_pf_status, pf_chksum, 400);
FBSD_CHECK_SIZE(fbsd_pfioc_nv, 24);
FBSD_CHECK_SIZE(fbsd_nlmsghdr, 16);
FBSD_CHECK_SIZE(fbsd_genlmsghdr, 4);
FBSD_CHECK_SIZE(fbsd_nlattr, 4);
FBSD_CHECK_SIZE(fbsd_nlmsgerr, 20);

/* The ioctl numbers encode sizeof(struct ifreq) etc.; keep the encoding honest. */
#define FBSD_IOC_LEN(req) (((req) >> 16) & 0x1fffu)
_Static_assert(FBSD_IOC_LEN(FBSD_SIOCSVH) == sizeof(struct fbsd_ifreq), "SIOCSVH encodes ifreq");
_Static_assert(FBSD_IOC_LEN(FBSD_SIOCAIFADDR) == sizeof(struct fbsd_in_aliasreq), "SIOCAIFADDR");
_Static_assert(FBSD_IOC_LEN(FBSD_SIOCAIFADDR_IN6) == sizeof(struct fbsd_in6_aliasreq), "SIOCAIFADDR_IN6");
_Static_assert(FBSD_IOC_LEN(FBSD_SIOCDIFADDR_IN6) == sizeof(struct fbsd_in6_ifreq), "SIOCDIFADDR_IN6");
_Static_assert(FBSD_IOC_LEN(FBSD_OSIOCAIFADDR) == 64, "OSIOCAIFADDR (oifaliasreq)");
_Static_assert(FBSD_IOC_LEN(FBSD_OSIOCAIFADDR_IN6) == 128, "OSIOCAIFADDR_IN6 (oin6_aliasreq)");
_Static_assert(FBSD_IOC_LEN(FBSD_DIOCGETSTATUS) == sizeof(struct fbsd_pf_status), "DIOCGETSTATUS");
_Static_assert(FBSD_IOC_LEN(FBSD_DIOCGETSTATUSNV) == sizeof(struct fbsd_pfioc_nv), "DIOCGETSTATUSNV");

#endif
