/*
 * Self-test of libfakefreebsd.so and libfakenv.so, driven only through symbols
 * looked up with dlsym, as koffi does. Prints "ok N - ..." / "not ok N - ..." per
 * check and exits non-zero if any check failed.
 *
 * Usage: fakebsd-selftest [BUILD_DIR]   (default: the directory of this program)
 */
#define _GNU_SOURCE
#include "fbsd_abi.h"
#include "fbsd_errnames.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- bindings ---- */

static int (*x_socket)(int, int, int);
static int (*x_close)(int);
static int (*x_ioctl)(int, unsigned long, ...);
static ssize_t (*x_send)(int, const void *, size_t, int);
static ssize_t (*x_recv)(int, void *, size_t, int);
static int (*x_sysctlbyname)(const char *, void *, size_t *, const void *, size_t);
static unsigned int (*x_if_nametoindex)(const char *);
static void (*x_free)(void *);
static int (*c_reset)(void);
static int (*c_reboot)(void);
static int (*c_add_interface)(const char *, int);
static int (*c_remove_interface)(const char *);
static int (*c_set_interface_flags)(const char *, int);
static int (*c_set_osreldate)(int);
static int (*c_set_modules)(int, int);
static int (*c_set_uid)(int);
static int (*c_set_vhid_state)(const char *, int, int);
static int (*c_get_vhid)(const char *, int, int *, int *, int *);
static int (*c_fail_next)(unsigned long, int);
static int (*c_fail_next_netlink)(int, int);
static long (*c_ioctl_count)(unsigned long);
static long (*c_netlink_count)(int);
static int (*c_pfsync_bulk)(int);
static int (*x_open)(const char *, int, ...);
static int (*c_pf_set)(int, int, long, long, long, long);
static long (*c_events)(unsigned long, char *, size_t);
static int (*c_dump)(char *, size_t);

typedef struct nvlist nvlist_t;
static nvlist_t *(*nv_create)(int);
static void (*nv_destroy)(nvlist_t *);
static int (*nv_error)(const nvlist_t *);
static void (*nv_add_string)(nvlist_t *, const char *, const char *);
static void (*nv_add_number)(nvlist_t *, const char *, uint64_t);
static void (*nv_add_binary)(nvlist_t *, const char *, const void *, size_t);
static void (*nv_add_nvlist)(nvlist_t *, const char *, const nvlist_t *);
static void (*nv_move_nvlist)(nvlist_t *, const char *, nvlist_t *);
static bool (*nv_exists_string)(const nvlist_t *, const char *);
static bool (*nv_exists_number)(const nvlist_t *, const char *);
static bool (*nv_exists_nvlist)(const nvlist_t *, const char *);
static bool (*nv_exists_binary)(const nvlist_t *, const char *);
static void (*nv_free_string)(nvlist_t *, const char *);
static void (*nv_free_number)(nvlist_t *, const char *);
static const char *(*nv_get_string)(const nvlist_t *, const char *);
static uint64_t (*nv_get_number)(const nvlist_t *, const char *);
static const nvlist_t *(*nv_get_nvlist)(const nvlist_t *, const char *);
static const void *(*nv_get_binary)(const nvlist_t *, const char *, size_t *);
static void *(*nv_pack)(const nvlist_t *, size_t *);
static nvlist_t *(*nv_unpack)(const void *, size_t, int);
static bool (*nv_exists_bool)(const nvlist_t *, const char *);
static bool (*nv_get_bool)(const nvlist_t *, const char *);
static bool (*nv_exists_number_array)(const nvlist_t *, const char *);
static const uint64_t *(*nv_get_number_array)(const nvlist_t *, const char *, size_t *);

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);
	if (p == NULL) {
		printf("Bail out! missing symbol %s\n", name);
		exit(2);
	}
	return p;
}

#define BIND(h, var, name) (*(void **)&(var) = sym((h), (name)))

static void load(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/libfakefreebsd.so", dir);
	void *k = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (k == NULL) {
		printf("Bail out! dlopen %s: %s\n", path, dlerror());
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/libfakenv.so", dir);
	void *n = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (n == NULL) {
		printf("Bail out! dlopen %s: %s\n", path, dlerror());
		exit(2);
	}
	BIND(k, x_socket, "socket");
	BIND(k, x_close, "close");
	BIND(k, x_ioctl, "ioctl");
	BIND(k, x_send, "send");
	BIND(k, x_recv, "recv");
	BIND(k, x_sysctlbyname, "sysctlbyname");
	BIND(k, x_if_nametoindex, "if_nametoindex");
	BIND(k, x_free, "free");
	BIND(k, c_reset, "fakebsd_reset");
	BIND(k, c_reboot, "fakebsd_reboot");
	BIND(k, c_add_interface, "fakebsd_add_interface");
	BIND(k, c_remove_interface, "fakebsd_remove_interface");
	BIND(k, c_set_interface_flags, "fakebsd_set_interface_flags");
	BIND(k, c_set_osreldate, "fakebsd_set_osreldate");
	BIND(k, c_set_modules, "fakebsd_set_modules");
	BIND(k, c_set_uid, "fakebsd_set_uid");
	BIND(k, c_set_vhid_state, "fakebsd_set_vhid_state");
	BIND(k, c_get_vhid, "fakebsd_get_vhid");
	BIND(k, c_fail_next, "fakebsd_fail_next");
	BIND(k, c_fail_next_netlink, "fakebsd_fail_next_netlink");
	BIND(k, c_ioctl_count, "fakebsd_ioctl_count");
	BIND(k, c_netlink_count, "fakebsd_netlink_count");
	BIND(k, c_pfsync_bulk, "fakebsd_pfsync_bulk");
	BIND(k, x_open, "open");
	BIND(k, c_pf_set, "fakebsd_pf_set");
	BIND(k, c_events, "fakebsd_events");
	BIND(k, c_dump, "fakebsd_dump");
	/* 14+ names; the plain 13 names are checked to be the same functions below. */
	BIND(n, nv_create, "FreeBSD_nvlist_create");
	BIND(n, nv_destroy, "FreeBSD_nvlist_destroy");
	BIND(n, nv_error, "FreeBSD_nvlist_error");
	BIND(n, nv_add_string, "FreeBSD_nvlist_add_string");
	BIND(n, nv_add_number, "FreeBSD_nvlist_add_number");
	BIND(n, nv_add_binary, "FreeBSD_nvlist_add_binary");
	BIND(n, nv_add_nvlist, "FreeBSD_nvlist_add_nvlist");
	BIND(n, nv_move_nvlist, "FreeBSD_nvlist_move_nvlist");
	BIND(n, nv_exists_string, "FreeBSD_nvlist_exists_string");
	BIND(n, nv_exists_number, "FreeBSD_nvlist_exists_number");
	BIND(n, nv_exists_nvlist, "FreeBSD_nvlist_exists_nvlist");
	BIND(n, nv_exists_binary, "FreeBSD_nvlist_exists_binary");
	BIND(n, nv_free_string, "FreeBSD_nvlist_free_string");
	BIND(n, nv_free_number, "FreeBSD_nvlist_free_number");
	BIND(n, nv_get_string, "FreeBSD_nvlist_get_string");
	BIND(n, nv_get_number, "FreeBSD_nvlist_get_number");
	BIND(n, nv_get_nvlist, "FreeBSD_nvlist_get_nvlist");
	BIND(n, nv_get_binary, "FreeBSD_nvlist_get_binary");
	BIND(n, nv_pack, "FreeBSD_nvlist_pack");
	BIND(n, nv_unpack, "FreeBSD_nvlist_unpack");
	BIND(n, nv_exists_bool, "FreeBSD_nvlist_exists_bool");
	BIND(n, nv_get_bool, "FreeBSD_nvlist_get_bool");
	BIND(n, nv_exists_number_array, "FreeBSD_nvlist_exists_number_array");
	BIND(n, nv_get_number_array, "FreeBSD_nvlist_get_number_array");
	static const char *plain[] = {"nvlist_create", "nvlist_destroy", "nvlist_error", "nvlist_add_string",
	                              "nvlist_add_number", "nvlist_add_binary", "nvlist_add_nvlist",
	                              "nvlist_move_nvlist", "nvlist_exists_string", "nvlist_exists_number",
	                              "nvlist_exists_nvlist", "nvlist_exists_binary", "nvlist_free_string",
	                              "nvlist_free_number", "nvlist_free_nvlist", "nvlist_get_string",
	                              "nvlist_get_number", "nvlist_get_nvlist", "nvlist_get_binary", "nvlist_pack",
	                              "nvlist_unpack"};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char pref[64];
		snprintf(pref, sizeof(pref), "FreeBSD_%s", plain[i]);
		if (sym(n, plain[i]) != sym(n, pref)) {
			printf("Bail out! %s and %s differ\n", plain[i], pref);
			exit(2);
		}
	}
}

/* ---- reporting ---- */

static int n_checks, n_failed;

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	n_checks++;
	if (!ok)
		n_failed++;
	printf("%s %d - ", ok ? "ok" : "not ok", n_checks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Checks that a call returned -1 with the given FreeBSD errno. */
#define EXPECT_ERR(call, want, desc)                                                                       \
	do {                                                                                                   \
		errno = 0;                                                                                         \
		long r_ = (long)(call);                                                                            \
		int e_ = errno;                                                                                    \
		check(r_ == -1 && e_ == (want), "%s -> %s (got %ld, %s)", (desc), fbsd_errname(want), r_,          \
		      fbsd_errname(e_));                                                                           \
	} while (0)

#define EXPECT_OK(call, desc)                                                                              \
	do {                                                                                                   \
		errno = 0;                                                                                         \
		long r_ = (long)(call);                                                                            \
		int e_ = errno;                                                                                    \
		check(r_ != -1, "%s succeeds (got %ld, %s)", (desc), r_, r_ == -1 ? fbsd_errname(e_) : "-");       \
	} while (0)

/* ---- request builders ---- */

static int sock4, sock6;

static void reset_all(void)
{
	c_reset();
}

static int svh(const char *ifname, int vhid, int advbase, int advskew, const char *key, int state)
{
	struct fbsd_carpreq cr;
	struct fbsd_ifreq ifr;
	memset(&cr, 0, sizeof(cr));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_ifru.data = &cr;
	cr.carpr_count = 1;
	cr.carpr_vhid = vhid;
	cr.carpr_advbase = advbase;
	cr.carpr_advskew = advskew;
	cr.carpr_state = state;
	if (key != NULL)
		memcpy(cr.carpr_key, key, strnlen(key, FBSD_CARP_KEY_LEN));
	return x_ioctl(sock4, FBSD_SIOCSVH, &ifr);
}

static int gvh(const char *ifname, int vhid, struct fbsd_carpreq *out, int count)
{
	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memset(out, 0, sizeof(*out) * (size_t)(count > 0 ? count : 1));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_ifru.data = out;
	out[0].carpr_vhid = vhid;
	out[0].carpr_count = count;
	return x_ioctl(sock4, FBSD_SIOCGVH, &ifr);
}

static struct fbsd_in_aliasreq mk_in_alias(const char *ifname, const char *addr, int plen, int vhid)
{
	struct fbsd_in_aliasreq r;
	memset(&r, 0, sizeof(r));
	snprintf(r.ifra_name, sizeof(r.ifra_name), "%s", ifname);
	r.ifra_addr.sin_len = 16;
	r.ifra_addr.sin_family = FBSD_AF_INET;
	inet_pton(AF_INET, addr, r.ifra_addr.sin_addr);
	if (plen >= 0) {
		r.ifra_mask.sin_len = 16;
		r.ifra_mask.sin_family = FBSD_AF_INET;
		uint32_t m = plen ? htonl(0xffffffffu << (32 - plen)) : 0;
		memcpy(r.ifra_mask.sin_addr, &m, 4);
	}
	r.ifra_vhid = vhid;
	return r;
}

static int aifaddr(const char *ifname, const char *addr, int plen, int vhid)
{
	struct fbsd_in_aliasreq r = mk_in_alias(ifname, addr, plen, vhid);
	return x_ioctl(sock4, FBSD_SIOCAIFADDR, &r);
}

static int difaddr_len(const char *ifname, const char *addr, int sin_len)
{
	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_ifru.addr.sin_len = (uint8_t)sin_len;
	ifr.ifr_ifru.addr.sin_family = FBSD_AF_INET;
	inet_pton(AF_INET, addr, ifr.ifr_ifru.addr.sin_addr);
	return x_ioctl(sock4, FBSD_SIOCDIFADDR, &ifr);
}

static struct fbsd_in6_aliasreq mk_in6_alias(const char *ifname, const char *addr, int plen, int vhid)
{
	struct fbsd_in6_aliasreq r;
	memset(&r, 0, sizeof(r));
	snprintf(r.ifra_name, sizeof(r.ifra_name), "%s", ifname);
	r.ifra_addr.sin6_len = 28;
	r.ifra_addr.sin6_family = FBSD_AF_INET6;
	inet_pton(AF_INET6, addr, r.ifra_addr.sin6_addr);
	r.ifra_prefixmask.sin6_len = 28;
	r.ifra_prefixmask.sin6_family = FBSD_AF_INET6;
	for (int i = 0; i < plen; i++)
		r.ifra_prefixmask.sin6_addr[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	r.ifra_lifetime.ia6t_vltime = 0xffffffffu;
	r.ifra_lifetime.ia6t_pltime = 0xffffffffu;
	r.ifra_vhid = vhid;
	return r;
}

static int difaddr6(const char *ifname, const char *addr)
{
	struct fbsd_in6_ifreq r;
	memset(&r, 0, sizeof(r));
	snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", ifname);
	r.ifr_ifru.addr.sin6_len = 28;
	r.ifr_ifru.addr.sin6_family = FBSD_AF_INET6;
	inet_pton(AF_INET6, addr, r.ifr_ifru.addr.sin6_addr);
	return x_ioctl(sock6, FBSD_SIOCDIFADDR_IN6, &r);
}

static int dump_has(const char *needle)
{
	static char buf[1 << 16];
	c_dump(buf, sizeof(buf));
	return strstr(buf, needle) != NULL;
}

static int sysctl_int(const char *name, int *out)
{
	size_t len = sizeof(*out);
	return x_sysctlbyname(name, out, &len, NULL, 0);
}

static int sysctl_set_int(const char *name, int v)
{
	return x_sysctlbyname(name, NULL, NULL, &v, sizeof(v));
}

/* Runs fn with stderr captured into buf. */
static void capture_stderr(void (*fn)(void *), void *arg, char *buf, size_t len)
{
	char tmpl[] = "/tmp/fakebsd-stderr-XXXXXX";
	int tfd = mkstemp(tmpl);
	int saved = dup(2);
	fflush(stderr);
	dup2(tfd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(tfd, 0, SEEK_SET);
	ssize_t n = read(tfd, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(tfd);
	unlink(tmpl);
}

/* ---- sections ---- */

static void t_basics(void)
{
	reset_all();
	check(x_if_nametoindex("em0") == 1 && x_if_nametoindex("em1") == 2 && x_if_nametoindex("lo0") == 3 &&
	          x_if_nametoindex("pfsync0") == 4,
	      "default interfaces em0/em1/lo0/pfsync0 have indexes 1..4");
	EXPECT_ERR(x_if_nametoindex("nope0") == 0 ? -1 : 0, FBSD_ENXIO, "if_nametoindex(nope0)");

	int fd = x_socket(FBSD_AF_INET, FBSD_SOCK_DGRAM | FBSD_SOCK_CLOEXEC | FBSD_SOCK_NONBLOCK, 0);
	check(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "socket strips SOCK_CLOEXEC|SOCK_NONBLOCK and honours CLOEXEC");
	int fd2 = x_socket(FBSD_AF_INET, FBSD_SOCK_DGRAM, 0);
	check(fd2 >= 0 && fd2 != fd && !(fcntl(fd2, F_GETFD) & FD_CLOEXEC), "socket returns a distinct real fd");
	EXPECT_OK(x_close(fd), "close(fake socket)");
	EXPECT_OK(x_close(fd2), "close(second fake socket)");
	EXPECT_ERR(x_close(fd), FBSD_EBADF, "close twice");
	EXPECT_ERR(x_socket(10, FBSD_SOCK_DGRAM, 0), FBSD_EAFNOSUPPORT, "socket(Linux AF_INET6=10)");
	EXPECT_ERR(x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, 0), FBSD_EPROTONOSUPPORT, "socket(AF_NETLINK, NETLINK_ROUTE)");
	c_set_osreldate(1300139);
	EXPECT_ERR(x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC), FBSD_EAFNOSUPPORT,
	           "socket(AF_NETLINK) on 13.x");
	c_set_osreldate(1400097);
	int nl = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC);
	check(nl >= 0, "socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC) on 14.x");
	x_close(nl);

	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "em1");
	EXPECT_OK(x_ioctl(sock4, FBSD_SIOCGIFINDEX, &ifr), "SIOCGIFINDEX em1");
	check(ifr.ifr_ifru.index == 2, "SIOCGIFINDEX em1 = 2 (got %d)", ifr.ifr_ifru.index);
	EXPECT_OK(x_ioctl(sock4, FBSD_SIOCGIFFLAGS, &ifr), "SIOCGIFFLAGS em1");
	check((uint16_t)ifr.ifr_ifru.flags[0] == (FBSD_IFF_UP | FBSD_IFF_BROADCAST | FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST),
	      "em1 flags UP|BROADCAST|RUNNING|MULTICAST (got 0x%x)", (uint16_t)ifr.ifr_ifru.flags[0]);
	EXPECT_ERR(x_ioctl(sock4, 0xc0206933UL /* SIOCGIFMTU */, &ifr), FBSD_ENOTTY, "unsupported ioctl");
	EXPECT_ERR(x_ioctl(0, FBSD_SIOCGIFINDEX, &ifr), FBSD_ENOTTY, "ioctl on a non-socket fd");

	long before = c_ioctl_count(FBSD_SIOCGIFINDEX);
	x_ioctl(sock4, FBSD_SIOCGIFINDEX, &ifr);
	check(c_ioctl_count(FBSD_SIOCGIFINDEX) == before + 1 && c_ioctl_count(0) >= before + 1,
	      "ioctl counters count per request");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "pfsync0");
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCIFCREATE2, &ifr), FBSD_EEXIST, "SIOCIFCREATE2 pfsync0 (T14)");
}

static void t_carp_ioctl(void)
{
	struct fbsd_carpreq cr[4];
	reset_all();
	EXPECT_ERR(gvh("em0", 1, cr, 1), FBSD_ENOENT, "SIOCGVH on an interface without carp");
	EXPECT_OK(svh("em0", 1, 2, 100, "secret", 0), "SIOCSVH em0 vhid 1 advbase 2 advskew 100 key");
	EXPECT_OK(gvh("em0", 1, cr, 1), "SIOCGVH em0 vhid 1");
	check(cr[0].carpr_vhid == 1 && cr[0].carpr_advbase == 2 && cr[0].carpr_advskew == 100 &&
	          cr[0].carpr_state == FBSD_CARP_INIT && cr[0].carpr_count == 1 &&
	          memcmp(cr[0].carpr_key, "secret\0\0", 8) == 0,
	      "SIOCGVH returns vhid/advbase/advskew/INIT/key (state %d, skew %d)", cr[0].carpr_state,
	      cr[0].carpr_advskew);
	c_set_uid(1000);
	EXPECT_OK(gvh("em0", 1, cr, 1), "SIOCGVH as non-root");
	check(cr[0].carpr_key[0] == 0, "non-root SIOCGVH gets a zeroed key");
	EXPECT_ERR(svh("em0", 1, 1, 0, NULL, 0), FBSD_EPERM, "SIOCSVH as non-root");
	c_set_uid(0);

	EXPECT_OK(svh("em0", 1, 0, 100, NULL, 0), "SIOCSVH with advbase 0 and empty key");
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_advbase == 2 && memcmp(cr[0].carpr_key, "secret", 6) == 0,
	      "advbase 0 keeps advbase, key[0]==0 keeps the key");

	EXPECT_ERR(svh("nope0", 1, 1, 0, NULL, 0), FBSD_ENXIO, "SIOCSVH unknown interface");
	EXPECT_ERR(svh("lo0", 1, 1, 0, NULL, 0), FBSD_EOPNOTSUPP, "SIOCSVH on lo0");
	EXPECT_ERR(svh("pfsync0", 1, 1, 0, NULL, 0), FBSD_EOPNOTSUPP, "SIOCSVH on pfsync0");
	EXPECT_ERR(svh("em0", 0, 1, 0, NULL, 0), FBSD_EINVAL, "SIOCSVH vhid 0");
	EXPECT_ERR(svh("em0", 256, 1, 0, NULL, 0), FBSD_EINVAL, "SIOCSVH vhid 256");
	EXPECT_ERR(svh("em0", 2, 1, -1, NULL, 0), FBSD_EINVAL, "SIOCSVH negative advskew");
	check(gvh("em0", 2, cr, 1) == -1, "a negative advskew is rejected before the vhid is created");
	EXPECT_ERR(svh("em0", 3, 1, 255, NULL, 0), FBSD_EINVAL, "SIOCSVH advskew 255 on a new vhid");
	check(gvh("em0", 3, cr, 1) == 0 && cr[0].carpr_advskew == 0,
	      "the EINVAL for advskew 255 leaves the new vhid 3 behind (12.6)");
	EXPECT_ERR(svh("em0", 3, 256, 0, NULL, 0), FBSD_EINVAL, "SIOCSVH advbase 256");
	EXPECT_ERR(gvh("em0", 1, cr, 0), FBSD_EMSGSIZE, "SIOCGVH carpr_count 0");
	EXPECT_ERR(gvh("em0", 9, cr, 1), FBSD_ENOENT, "SIOCGVH missing vhid");
	EXPECT_ERR(gvh("em0", 256, cr, 1), FBSD_EINVAL, "SIOCGVH vhid 256");

	c_add_interface("em2", FBSD_IFF_UP | FBSD_IFF_BROADCAST | FBSD_IFF_RUNNING);
	EXPECT_ERR(svh("em2", 1, 1, 0, NULL, 0), FBSD_EADDRNOTAVAIL, "SIOCSVH on a non-multicast interface");

	/* state forcing only outside INIT */
	EXPECT_OK(svh("em0", 1, 0, 100, NULL, FBSD_CARP_MASTER), "SIOCSVH state MASTER while INIT");
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_INIT, "state is not forced while the vhid is INIT");
	EXPECT_OK(aifaddr("em0", "192.0.2.10", 24, 1), "SIOCAIFADDR 192.0.2.10/24 vhid 1");
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_BACKUP, "the first address moves the vhid INIT -> BACKUP");
	EXPECT_OK(svh("em0", 1, 0, 100, NULL, FBSD_CARP_MASTER), "SIOCSVH state MASTER");
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_MASTER, "SIOCSVH forces MASTER once out of INIT");

	/* list-all */
	svh("em0", 7, 1, 70, NULL, 0);
	EXPECT_ERR(gvh("em0", 0, cr, 2), FBSD_EMSGSIZE, "SIOCGVH vhid 0 with 2 slots for 3 vhids");
	EXPECT_OK(gvh("em0", 0, cr, 4), "SIOCGVH vhid 0 on 14");
	uint8_t pattern[sizeof(cr[0])];
	memset(pattern, 0xa5, sizeof(pattern));
	check(cr[0].carpr_vhid == 7 && cr[0].carpr_count == 3 && memcmp(&cr[1], pattern, sizeof(pattern)) == 0,
	      "14: list-all returns only the last vhid in slot 0, garbage after (slot0 vhid %d count %d)",
	      cr[0].carpr_vhid, cr[0].carpr_count);
	c_set_osreldate(1300139);
	EXPECT_OK(gvh("em0", 0, cr, 4), "SIOCGVH vhid 0 on 13");
	check(cr[0].carpr_vhid == 1 && cr[1].carpr_vhid == 3 && cr[2].carpr_vhid == 7 && cr[1].carpr_count == 3 &&
	          cr[2].carpr_advskew == 70,
	      "13: list-all fills one slot per vhid with the total count");
	c_set_osreldate(1400097);

	c_set_modules(1, 1);
	EXPECT_ERR(c_set_modules(0, 1), FBSD_EBUSY, "unloading carp with vhids");
	reset_all();
	c_set_modules(0, 1);
	EXPECT_ERR(svh("em0", 1, 1, 0, NULL, 0), FBSD_EPROTONOSUPPORT, "SIOCSVH without carp.ko");
	EXPECT_ERR(gvh("em0", 1, cr, 1), FBSD_EPROTONOSUPPORT, "SIOCGVH without carp.ko");
	EXPECT_ERR(aifaddr("em0", "192.0.2.1", 24, 1), FBSD_EPROTONOSUPPORT, "SIOCAIFADDR vhid 1 without carp.ko");
	EXPECT_OK(aifaddr("em0", "192.0.2.1", 24, 0), "SIOCAIFADDR vhid 0 without carp.ko");

	/* request widened with sign extension: truncated like the kernel does */
	reset_all();
	svh("em0", 4, 1, 0, NULL, 0);
	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "em0");
	ifr.ifr_ifru.data = cr;
	memset(cr, 0, sizeof(cr));
	cr[0].carpr_vhid = 4;
	cr[0].carpr_count = 1;
	EXPECT_OK(x_ioctl(sock4, (unsigned long)(long)(int32_t)FBSD_SIOCGVH, &ifr),
	          "SIOCGVH passed sign-extended is truncated to 32 bits");
}

static void t_addresses(void)
{
	struct fbsd_carpreq cr[1];
	reset_all();
	EXPECT_ERR(aifaddr("em1", "198.51.100.5", 24, 5), FBSD_ENOPROTOOPT,
	           "SIOCAIFADDR vhid 5 on an interface with no vhid at all");
	check(!dump_has("198.51.100.5"), "the rejected address was not added");
	svh("em0", 1, 1, 0, NULL, 0);
	EXPECT_ERR(aifaddr("em0", "192.0.2.20", 24, 5), FBSD_ENOENT, "SIOCAIFADDR vhid 5 where only vhid 1 exists");
	EXPECT_ERR(aifaddr("nope0", "192.0.2.20", 24, 0), FBSD_ENXIO, "SIOCAIFADDR unknown interface");

	struct fbsd_in_aliasreq r = mk_in_alias("em0", "192.0.2.21", 24, 1);
	r.ifra_addr.sin_len = 0;
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCAIFADDR, &r), FBSD_EINVAL, "SIOCAIFADDR with sin_len 0");
	r = mk_in_alias("em0", "192.0.2.21", 24, 1);
	r.ifra_addr.sin_family = 10;
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCAIFADDR, &r), FBSD_EINVAL, "SIOCAIFADDR with Linux AF_INET6 family");
	r = mk_in_alias("em0", "192.0.2.21", 24, 1);
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR, &r), FBSD_EINVAL, "SIOCAIFADDR on an AF_INET6 socket");
	c_set_uid(1000);
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCAIFADDR, &r), FBSD_EPERM, "SIOCAIFADDR as non-root");
	c_set_uid(0);

	EXPECT_OK(aifaddr("em0", "192.0.2.1", 24, 0), "SIOCAIFADDR plain 192.0.2.1/24");
	EXPECT_OK(aifaddr("em0", "192.0.2.10", 24, 1), "SIOCAIFADDR 192.0.2.10/24 vhid 1");
	EXPECT_OK(aifaddr("em0", "192.0.2.11", 32, 1), "SIOCAIFADDR 192.0.2.11/32 vhid 1");
	check(dump_has("\"address\":\"192.0.2.10\",\"prefixlen\":24,\"vhid\":1"), "the address records prefix and vhid");
	EXPECT_OK(aifaddr("em0", "192.0.2.10", 24, 1), "SIOCAIFADDR of an existing address");
	check(dump_has("\"address\":\"192.0.2.10\",\"prefixlen\":24,\"vhid\":1") && dump_has("\"addresses\":2,"),
	      "a duplicate SIOCAIFADDR re-adds the address and keeps the vhid (12.2)");

	struct fbsd_in_aliasreq o = mk_in_alias("em0", "192.0.2.30", 24, 1);
	EXPECT_OK(x_ioctl(sock4, FBSD_OSIOCAIFADDR, &o), "OSIOCAIFADDR with ifra_vhid 1");
	check(dump_has("\"address\":\"192.0.2.30\",\"prefixlen\":24,\"vhid\":0"), "OSIOCAIFADDR ignores the vhid (T3)");

	EXPECT_ERR(difaddr_len("em0", "203.0.113.1", 16), FBSD_EADDRNOTAVAIL, "SIOCDIFADDR of an absent address");
	EXPECT_OK(difaddr_len("em0", "192.0.2.30", 0), "SIOCDIFADDR with sin_len 0 of a present address");
	check(!dump_has("192.0.2.30") && dump_has("\"192.0.2.1\""), "bad sin_len still deletes the matching address (12.5)");
	EXPECT_OK(difaddr_len("em0", "203.0.113.1", 0), "SIOCDIFADDR with sin_len 0 of an absent address");
	check(!dump_has("\"192.0.2.1\"") && dump_has("192.0.2.10"), "... deletes the first IPv4 address instead (T1)");

	EXPECT_OK(difaddr_len("em0", "192.0.2.10", 16), "SIOCDIFADDR 192.0.2.10");
	check(gvh("em0", 1, cr, 1) == 0, "vhid 1 survives while 192.0.2.11 remains");
	EXPECT_OK(difaddr_len("em0", "192.0.2.11", 16), "SIOCDIFADDR of the vhid's last address");
	EXPECT_ERR(gvh("em0", 1, cr, 1), FBSD_ENOENT, "removing the last address destroys the vhid (T8)");

	/* OSIOCAIFADDR over a CARP address drops it from the vhid, which then dies */
	svh("em0", 2, 1, 0, NULL, 0);
	aifaddr("em0", "192.0.2.40", 24, 2);
	o = mk_in_alias("em0", "192.0.2.40", 24, 2);
	EXPECT_OK(x_ioctl(sock4, FBSD_OSIOCAIFADDR, &o), "OSIOCAIFADDR over a CARP address");
	EXPECT_ERR(gvh("em0", 2, cr, 1), FBSD_ENOENT, "... destroys the vhid that lost its only address");

	/* a failed re-add loses the address: the duplicate was deleted first */
	svh("em0", 3, 1, 0, NULL, 0);
	aifaddr("em0", "192.0.2.50", 24, 3);
	aifaddr("em0", "192.0.2.51", 24, 3);
	EXPECT_ERR(aifaddr("em0", "192.0.2.50", 24, 9), FBSD_ENOENT, "re-adding with a missing vhid");
	check(!dump_has("192.0.2.50"), "... loses the existing address, as the kernel does");

	/* IPv6 */
	reset_all();
	svh("em0", 1, 1, 0, NULL, 0);
	struct fbsd_in6_aliasreq r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_addr.sin6_len = 16;
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EAFNOSUPPORT, "SIOCAIFADDR_IN6 with sin6_len 16 (12.4)");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_addr.sin6_family = 10;
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EAFNOSUPPORT, "SIOCAIFADDR_IN6 with family 10");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_prefixmask.sin6_addr[9] = 0x01;
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EINVAL, "SIOCAIFADDR_IN6 non-contiguous mask");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_prefixmask.sin6_len = 0;
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EINVAL, "SIOCAIFADDR_IN6 new address without mask");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_lifetime.ia6t_pltime = 0xffffffffu;
	r6.ifra_lifetime.ia6t_vltime = 100;
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EINVAL, "SIOCAIFADDR_IN6 pltime > vltime");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	r6.ifra_lifetime.ia6t_pltime = 0;
	r6.ifra_lifetime.ia6t_vltime = 0;
	EXPECT_OK(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), "SIOCAIFADDR_IN6 with vltime 0");
	check(!dump_has("2001:db8::10"), "vltime 0 succeeds but adds nothing (T7)");
	r6 = mk_in6_alias("em0", "2001:db8::10", 64, 1);
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EINVAL, "SIOCAIFADDR_IN6 on an AF_INET socket");
	EXPECT_OK(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), "SIOCAIFADDR_IN6 2001:db8::10/64 vhid 1");
	check(dump_has("\"address\":\"2001:db8::10\",\"prefixlen\":64,\"vhid\":1"), "IPv6 address recorded with vhid 1");
	r6 = mk_in6_alias("em0", "2001:db8::10", 48, 1);
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_EINVAL, "changing an IPv6 prefix length");
	r6 = mk_in6_alias("em0", "2001:db8::11", 64, 7);
	EXPECT_ERR(x_ioctl(sock6, FBSD_SIOCAIFADDR_IN6, &r6), FBSD_ENOENT, "SIOCAIFADDR_IN6 with a missing vhid");
	check(dump_has("\"address\":\"2001:db8::11\",\"prefixlen\":64,\"vhid\":0"),
	      "... leaves the IPv6 address on the interface without a vhid (in6_control)");
	EXPECT_ERR(difaddr6("em0", "2001:db8::99"), FBSD_EADDRNOTAVAIL, "SIOCDIFADDR_IN6 of an absent address");
	EXPECT_OK(difaddr6("em0", "2001:db8::11"), "SIOCDIFADDR_IN6 2001:db8::11");
	EXPECT_OK(difaddr6("em0", "2001:db8::10"), "SIOCDIFADDR_IN6 of the vhid's last address");
	EXPECT_ERR(gvh("em0", 1, cr, 1), FBSD_ENOENT, "removing the last IPv6 address destroys the vhid");

	/* fail_next */
	reset_all();
	c_fail_next(FBSD_SIOCAIFADDR, FBSD_EBUSY);
	EXPECT_ERR(aifaddr("em0", "192.0.2.60", 24, 0), FBSD_EBUSY, "fakebsd_fail_next(SIOCAIFADDR, EBUSY)");
	check(!dump_has("192.0.2.60"), "the injected failure changes nothing");
	EXPECT_OK(aifaddr("em0", "192.0.2.60", 24, 0), "the next SIOCAIFADDR works again");
	c_fail_next(0, FBSD_EIO);
	EXPECT_ERR(svh("em0", 1, 1, 0, NULL, 0), FBSD_EIO, "fakebsd_fail_next(0 = any ioctl)");
}

static void t_carp_states(void)
{
	struct fbsd_carpreq cr[1];
	int v = 0;
	char ev[4096];
	reset_all();
	svh("em0", 1, 1, 0, NULL, 0);
	aifaddr("em0", "192.0.2.10", 24, 1);
	c_set_vhid_state("em0", 1, FBSD_CARP_MASTER);
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_MASTER, "fakebsd_set_vhid_state MASTER");
	EXPECT_OK(sysctl_set_int("net.inet.carp.allow", 0), "net.inet.carp.allow=0");
	gvh("em0", 1, cr, 1);
	sysctl_int("net.inet.carp.demotion", &v);
	check(cr[0].carpr_state == FBSD_CARP_INIT && v == 240,
	      "allow=0 pushes vhids to INIT and adds the ifdown demotion (state %d demotion %d)", cr[0].carpr_state, v);
	sysctl_set_int("net.inet.carp.allow", 1);
	gvh("em0", 1, cr, 1);
	sysctl_int("net.inet.carp.demotion", &v);
	check(cr[0].carpr_state == FBSD_CARP_BACKUP && v == 0, "allow=1 brings vhids with addresses back to BACKUP");
	c_events(0, ev, sizeof(ev));
	check(strstr(ev, "!system=CARP subsystem=1@em0 type=MASTER\n!system=CARP subsystem=1@em0 type=INIT\n") != NULL,
	      "state changes are recorded as devd lines");
	c_set_vhid_state("em0", 1, FBSD_CARP_MASTER);
	aifaddr("em0", "192.0.2.11", 24, 1);
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_BACKUP, "attaching another address runs carp_sc_state (MASTER -> BACKUP)");
	c_set_interface_flags("em0", FBSD_IFF_BROADCAST | FBSD_IFF_MULTICAST);
	gvh("em0", 1, cr, 1);
	sysctl_int("net.inet.carp.demotion", &v);
	check(cr[0].carpr_state == FBSD_CARP_INIT && v == 240, "link down: INIT and ifdown demotion");
	c_set_interface_flags("em0", FBSD_IFF_UP | FBSD_IFF_BROADCAST | FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST);
	sysctl_int("net.inet.carp.demotion", &v);
	check(v == 0, "link up removes the ifdown demotion");

	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "em0");
	x_ioctl(sock4, FBSD_SIOCGIFFLAGS, &ifr);
	ifr.ifr_ifru.flags[0] = (int16_t)(ifr.ifr_ifru.flags[0] & ~FBSD_IFF_UP);
	EXPECT_OK(x_ioctl(sock4, FBSD_SIOCSIFFLAGS, &ifr), "SIOCSIFFLAGS em0 down");
	gvh("em0", 1, cr, 1);
	x_ioctl(sock4, FBSD_SIOCGIFFLAGS, &ifr);
	check(cr[0].carpr_state == FBSD_CARP_INIT && !(ifr.ifr_ifru.flags[0] & FBSD_IFF_RUNNING),
	      "ifconfig down: driver clears RUNNING, vhid goes INIT");
	ifr.ifr_ifru.flags[0] = (int16_t)(ifr.ifr_ifru.flags[0] | FBSD_IFF_UP);
	x_ioctl(sock4, FBSD_SIOCSIFFLAGS, &ifr);
	gvh("em0", 1, cr, 1);
	check(cr[0].carpr_state == FBSD_CARP_BACKUP, "ifconfig up: vhid back to BACKUP");
	unsigned long last = (unsigned long)c_events(0, ev, sizeof(ev));
	c_set_vhid_state("em0", 1, FBSD_CARP_MASTER);
	c_events(last, ev, sizeof(ev));
	check(strcmp(ev, "!system=CARP subsystem=1@em0 type=MASTER\n") == 0, "fakebsd_events returns lines after a sequence");

	c_add_interface("vlan10", FBSD_IFF_UP | FBSD_IFF_BROADCAST | FBSD_IFF_RUNNING | FBSD_IFF_MULTICAST);
	check(x_if_nametoindex("vlan10") == 5, "fakebsd_add_interface takes the lowest free index");
	EXPECT_ERR(c_add_interface("vlan10", 0), FBSD_EEXIST, "adding an existing interface");
	svh("vlan10", 4, 1, 0, NULL, 0);
	aifaddr("vlan10", "203.0.113.1", 24, 4);
	EXPECT_OK(c_remove_interface("vlan10"), "fakebsd_remove_interface vlan10");
	check(c_get_vhid("vlan10", 4, NULL, NULL, NULL) == -1 && x_if_nametoindex("vlan10") == 0 &&
	          !dump_has("203.0.113.1"),
	      "removing an interface destroys its vhids and addresses");
}

static void t_sysctl(void)
{
	int v = -1;
	size_t len;
	reset_all();
	EXPECT_OK(sysctl_int("net.inet.carp.allow", &v), "read net.inet.carp.allow");
	check(v == 1, "allow defaults to 1");
	sysctl_int("net.inet.carp.preempt", &v);
	check(v == 0, "preempt defaults to 0");
	sysctl_int("net.inet.carp.log", &v);
	check(v == 1, "log defaults to 1");
	sysctl_int("net.pfsync.carp_demotion_factor", &v);
	check(v == 240, "net.pfsync.carp_demotion_factor defaults to 240");
	sysctl_int("kern.osreldate", &v);
	check(v == 1400097, "kern.osreldate defaults to 1400097");

	EXPECT_OK(sysctl_set_int("net.inet.carp.demotion", 240), "write demotion 240");
	sysctl_int("net.inet.carp.demotion", &v);
	check(v == 240, "demotion is 240");
	sysctl_set_int("net.inet.carp.demotion", 0);
	sysctl_int("net.inet.carp.demotion", &v);
	check(v == 240, "writing 0 leaves demotion alone (delta, T9)");
	sysctl_set_int("net.inet.carp.demotion", 10);
	sysctl_int("net.inet.carp.demotion", &v);
	check(v == 250, "writing 10 adds 10 (got %d)", v);
	int old = -1, delta = -300;
	len = sizeof(old);
	EXPECT_OK(x_sysctlbyname("net.inet.carp.demotion", &old, &len, &delta, sizeof(delta)),
	          "read-and-write demotion -300");
	sysctl_int("net.inet.carp.demotion", &v);
	check(old == 250 && v == -50, "the old value is returned and the sum may go negative (old %d now %d)", old, v);

	c_set_uid(1000);
	EXPECT_ERR(sysctl_set_int("net.inet.carp.demotion", 1), FBSD_EPERM, "sysctl write as non-root");
	EXPECT_OK(sysctl_int("net.inet.carp.demotion", &v), "sysctl read as non-root");
	c_set_uid(0);
	EXPECT_ERR(sysctl_set_int("kern.osreldate", 1500000), FBSD_EPERM, "write kern.osreldate");
	EXPECT_ERR(sysctl_int("net.inet.carp.nope", &v), FBSD_ENOENT, "unknown carp sysctl");
	EXPECT_ERR(sysctl_int("kern.nope", &v), FBSD_ENOENT, "unknown sysctl");
	char small[2];
	len = sizeof(small);
	EXPECT_ERR(x_sysctlbyname("kern.osreldate", small, &len, NULL, 0), FBSD_ENOMEM, "short buffer");
	EXPECT_ERR(x_sysctlbyname("net.inet.carp.preempt", NULL, NULL, "\1", 1), FBSD_EINVAL, "1-byte int write");

	len = 0;
	EXPECT_OK(x_sysctlbyname("net.pfsync.stats", NULL, &len, NULL, 0), "size query net.pfsync.stats");
	check(len == 368, "14: pfsyncstats is 368 bytes (got %zu)", len);
	c_set_osreldate(1300139);
	x_sysctlbyname("net.pfsync.stats", NULL, &len, NULL, 0);
	check(len == 336, "13: pfsyncstats is 336 bytes (got %zu)", len);
	c_set_osreldate(1500068);
	x_sysctlbyname("net.pfsync.stats", NULL, &len, NULL, 0);
	check(len == 400, "15: pfsyncstats is 400 bytes (got %zu)", len);
	c_set_osreldate(1400097);
	len = 0;
	x_sysctlbyname("net.inet.carp.stats", NULL, &len, NULL, 0);
	check(len == 128, "net.inet.carp.stats is 128 bytes");

	struct fbsd_timeval tv1, tv2;
	len = sizeof(tv1);
	EXPECT_OK(x_sysctlbyname("kern.boottime", &tv1, &len, NULL, 0), "read kern.boottime");
	check(len == 16, "kern.boottime is a 16-byte timeval");
	sysctl_set_int("net.inet.carp.demotion", 240);
	svh("em0", 1, 1, 0, NULL, 0);
	c_reboot();
	len = sizeof(tv2);
	x_sysctlbyname("kern.boottime", &tv2, &len, NULL, 0);
	sysctl_int("net.inet.carp.demotion", &v);
	check(tv2.tv_sec != tv1.tv_sec && v == 0 && x_if_nametoindex("em1") == 2 && !dump_has("\"vhid\":1,"),
	      "fakebsd_reboot changes boottime, zeroes demotion, drops vhids, keeps interfaces");

	c_set_modules(0, 0);
	EXPECT_ERR(sysctl_int("net.inet.carp.allow", &v), FBSD_ENOENT, "carp sysctls vanish without carp.ko");
	EXPECT_ERR(sysctl_int("net.pfsync.carp_demotion_factor", &v), FBSD_ENOENT, "pfsync sysctls vanish without pfsync.ko");
	check(x_if_nametoindex("pfsync0") == 0, "pfsync0 vanishes without pfsync.ko");
	c_set_modules(1, 1);
	check(x_if_nametoindex("pfsync0") != 0, "pfsync0 reappears when pfsync.ko loads");
}

static int pfsync_legacy_set(const char *ifname, const char *dev, const char *peer, int maxupd, int defer)
{
	struct fbsd_pfsyncreq pr;
	struct fbsd_ifreq ifr;
	memset(&pr, 0, sizeof(pr));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	snprintf(pr.pfsyncr_syncdev, sizeof(pr.pfsyncr_syncdev), "%s", dev);
	if (peer != NULL)
		inet_pton(AF_INET, peer, pr.pfsyncr_syncpeer);
	pr.pfsyncr_maxupdates = maxupd;
	pr.pfsyncr_defer = defer;
	ifr.ifr_ifru.data = &pr;
	return x_ioctl(sock4, FBSD_SIOCSETPFSYNC, &ifr);
}

static int pfsync_legacy_get(struct fbsd_pfsyncreq *pr)
{
	struct fbsd_ifreq ifr;
	memset(pr, 0, sizeof(*pr));
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "pfsync0");
	ifr.ifr_ifru.data = pr;
	return x_ioctl(sock4, FBSD_SIOCGETPFSYNC, &ifr);
}

static int pfsync_nv_set(nvlist_t *nvl)
{
	size_t len = 0;
	void *buf = nv_pack(nvl, &len);
	if (buf == NULL)
		return -2;
	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "pfsync0");
	ifr.ifr_ifru.nv.buffer = buf;
	ifr.ifr_ifru.nv.length = (uint32_t)len;
	ifr.ifr_ifru.nv.buf_length = (uint32_t)len;
	int r = x_ioctl(sock4, FBSD_SIOCSETPFSYNCNV, &ifr);
	int e = errno;
	x_free(buf); /* nvlist_pack memory released through the fake libc's free */
	errno = e;
	return r;
}

static nvlist_t *pfsync_nv_get(uint32_t buflen, int *err, struct fbsd_ifreq *ifr_out)
{
	static uint8_t buf[1 << 16];
	struct fbsd_ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "pfsync0");
	ifr.ifr_ifru.nv.buffer = buf;
	ifr.ifr_ifru.nv.buf_length = buflen;
	ifr.ifr_ifru.nv.length = 12345;
	int r = x_ioctl(sock4, FBSD_SIOCGETPFSYNCNV, &ifr);
	*err = r == 0 ? 0 : errno;
	if (ifr_out)
		*ifr_out = ifr;
	if (r != 0)
		return NULL;
	return nv_unpack(buf, ifr.ifr_ifru.nv.length, 0);
}

static nvlist_t *full_nv(const char *syncdev, uint64_t maxupd, uint64_t flags, int64_t version)
{
	nvlist_t *n = nv_create(0);
	if (syncdev != NULL)
		nv_add_string(n, "syncdev", syncdev);
	nv_add_number(n, "maxupdates", maxupd);
	nv_add_number(n, "flags", flags);
	if (version >= 0)
		nv_add_number(n, "version", (uint64_t)version);
	return n;
}

struct nv_call {
	nvlist_t *nvl;
	int ret;
	int err;
};

static void run_nv_set(void *arg)
{
	struct nv_call *c = arg;
	c->ret = pfsync_nv_set(c->nvl);
	c->err = errno;
}

static void t_pfsync(void)
{
	struct fbsd_pfsyncreq pr;
	int err;
	char cap[2048];
	reset_all();

	EXPECT_ERR(pfsync_legacy_set("pfsync0", "em1", NULL, 256, 0), FBSD_EINVAL, "legacy SET maxupdates 256");
	EXPECT_ERR(pfsync_legacy_set("pfsync0", "em9", NULL, 128, 0), FBSD_EINVAL, "legacy SET unknown syncdev");
	EXPECT_ERR(pfsync_legacy_set("em0", "em1", NULL, 128, 0), FBSD_EINVAL, "legacy SET on em0");
	EXPECT_ERR(pfsync_legacy_set("pfsync9", "em1", NULL, 128, 0), FBSD_ENXIO, "legacy SET on pfsync9");
	c_set_uid(1000);
	EXPECT_ERR(pfsync_legacy_set("pfsync0", "em1", NULL, 128, 0), FBSD_EPERM, "legacy SET as non-root");
	c_set_uid(0);
	EXPECT_OK(pfsync_legacy_set("pfsync0", "em1", NULL, 64, 1), "14: legacy SET syncdev em1 defer=1");
	pfsync_legacy_get(&pr);
	check(strcmp(pr.pfsyncr_syncdev, "em1") == 0 && pr.pfsyncr_maxupdates == 64 &&
	          pr.pfsyncr_defer == FBSD_PFSYNCF_OK,
	      "14: defer=1 does not enable defer; GET returns the flag word OK only (got %d)", pr.pfsyncr_defer);
	check(memcmp(pr.pfsyncr_syncpeer, "\xe0\x00\x00\xf0", 4) == 0, "a zero syncpeer becomes 224.0.0.240");
	pfsync_legacy_set("pfsync0", "em1", NULL, 64, FBSD_PFSYNCF_DEFER);
	pfsync_legacy_get(&pr);
	check(pr.pfsyncr_defer == (FBSD_PFSYNCF_OK | FBSD_PFSYNCF_DEFER), "14: defer=2 enables defer, GET returns 3 (got %d)",
	      pr.pfsyncr_defer);
	c_set_osreldate(1300139);
	pfsync_legacy_set("pfsync0", "em1", NULL, 64, 1);
	pfsync_legacy_get(&pr);
	check(pr.pfsyncr_defer == 1, "13: defer=1 enables defer, GET returns 1 (got %d)", pr.pfsyncr_defer);
	pfsync_legacy_set("pfsync0", "em1", NULL, 64, 0);
	pfsync_legacy_get(&pr);
	check(pr.pfsyncr_defer == 0, "13: defer=0, GET returns 0");
	nvlist_t *nv = full_nv("em1", 128, 0, 1400);
	EXPECT_ERR(pfsync_nv_set(nv), FBSD_ENOTTY, "13: SIOCSETPFSYNCNV does not exist");
	nv_destroy(nv);
	pfsync_nv_get(4096, &err, NULL);
	check(err == FBSD_ENOTTY, "13: SIOCGETPFSYNCNV -> ENOTTY (got %s)", fbsd_errname(err));
	c_set_osreldate(1400097);

	reset_all();
	nvlist_t *g = pfsync_nv_get(65536, &err, NULL);
	check(g != NULL && !nv_exists_string(g, "syncdev") && !nv_exists_nvlist(g, "syncpeer") &&
	          nv_get_number(g, "maxupdates") == 128 && nv_get_number(g, "flags") == FBSD_PFSYNCF_OK &&
	          nv_get_number(g, "version") == 1400,
	      "14: NV GET defaults: no syncdev/syncpeer, maxupdates 128, flags OK, version 1400");
	nv_destroy(g);
	struct fbsd_ifreq ifr;
	g = pfsync_nv_get(8, &err, &ifr);
	check(g == NULL && err == FBSD_EFBIG && ifr.ifr_ifru.nv.length == 12345,
	      "NV GET with a small buffer -> EFBIG without reporting the size (12.8)");

	nv = full_nv("em1", 200, FBSD_PFSYNCF_DEFER, 1301);
	nvlist_t *peer = nv_create(0);
	struct fbsd_sockaddr_in sin = {.sin_len = 16, .sin_family = FBSD_AF_INET};
	inet_pton(AF_INET, "198.51.100.7", sin.sin_addr);
	nv_add_number(peer, "af", FBSD_AF_INET);
	nv_add_binary(peer, "address", &sin, sizeof(sin));
	nv_move_nvlist(nv, "syncpeer", peer);
	EXPECT_OK(pfsync_nv_set(nv), "NV SET syncdev em1, peer 198.51.100.7, maxupdates 200, defer, version 1301");
	nv_destroy(nv);
	g = pfsync_nv_get(65536, &err, NULL);
	size_t blen = 0;
	const uint8_t *b = NULL;
	if (g != NULL && nv_exists_nvlist(g, "syncpeer"))
		b = nv_get_binary(nv_get_nvlist(g, "syncpeer"), "address", &blen);
	check(g != NULL && strcmp(nv_get_string(g, "syncdev"), "em1") == 0 && nv_get_number(g, "maxupdates") == 200 &&
	          nv_get_number(g, "flags") == (FBSD_PFSYNCF_OK | FBSD_PFSYNCF_DEFER) &&
	          nv_get_number(g, "version") == 1301 && b != NULL && blen == 16 && b[0] == 16 && b[1] == 2 &&
	          memcmp(b + 4, sin.sin_addr, 4) == 0,
	      "NV GET reflects the SET (syncdev, 200, OK|DEFER, 1301, sockaddr_in peer)");
	nv_destroy(g);
	pfsync_legacy_set("pfsync0", "em1", "198.51.100.7", 200, FBSD_PFSYNCF_DEFER);
	g = pfsync_nv_get(65536, &err, NULL);
	check(g != NULL && nv_get_number(g, "version") == 1400, "14: a legacy SET resets a pinned version to the default");
	nv_destroy(g);

	nv = full_nv("em1", 128, 0, 1500);
	EXPECT_ERR(pfsync_nv_set(nv), FBSD_EINVAL, "14: NV SET version 1500");
	nv_destroy(nv);
	nv = full_nv("em1", 128, 0, 1234);
	EXPECT_ERR(pfsync_nv_set(nv), FBSD_EINVAL, "NV SET version 1234");
	nv_destroy(nv);
	nv = full_nv("em9", 128, 0, 0);
	EXPECT_ERR(pfsync_nv_set(nv), FBSD_EINVAL, "NV SET unknown syncdev");
	nv_destroy(nv);
	nv = full_nv("em1", 300, 0, 0);
	EXPECT_ERR(pfsync_nv_set(nv), FBSD_EINVAL, "NV SET maxupdates 300");
	nv_destroy(nv);
	uint8_t junk[16] = "not an nvlist!!";
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "pfsync0");
	ifr.ifr_ifru.nv.buffer = junk;
	ifr.ifr_ifru.nv.length = sizeof(junk);
	EXPECT_ERR(x_ioctl(sock4, FBSD_SIOCSETPFSYNCNV, &ifr), FBSD_EINVAL, "NV SET of bytes that do not unpack");
	c_set_osreldate(1500068);
	nv = full_nv("em1", 128, 0, 1500);
	EXPECT_OK(pfsync_nv_set(nv), "15: NV SET version 1500");
	nv_destroy(nv);
	nv = full_nv("em1", 128, 0, 0);
	pfsync_nv_set(nv);
	nv_destroy(nv);
	g = pfsync_nv_get(65536, &err, NULL);
	check(g != NULL && nv_get_number(g, "version") == 1500, "15: version 0 means the 1500 default");
	nv_destroy(g);
	c_set_osreldate(1400097);

	struct nv_call call = {full_nv("em1", 128, 0, -1), 0, 0};
	capture_stderr(run_nv_set, &call, cap, sizeof(cap));
	check(call.ret == -1 && call.err == FBSD_EDOOFUS, "NV SET without version -> EDOOFUS (got %s)",
	      fbsd_errname(call.err));
	check(strstr(cap, "fakebsd: PANIC: nvlist_get_number on missing key version") != NULL,
	      "... and prints the PANIC line on stderr");
	nv_destroy(call.nvl);

	nv = nv_create(0);
	nv_add_string(nv, "syncdev", "em1");
	nv_add_number(nv, "flags", 0);
	nv_add_number(nv, "version", 1400);
	pfsync_legacy_set("pfsync0", "em1", NULL, 99, 0);
	call = (struct nv_call){nv, 0, 0};
	capture_stderr(run_nv_set, &call, cap, sizeof(cap));
	g = pfsync_nv_get(65536, &err, NULL);
	check(call.ret == -1 && call.err == FBSD_EDOOFUS && g != NULL && nv_exists_string(g, "syncdev") &&
	          nv_get_number(g, "maxupdates") == 99 &&
	          strstr(cap, "PANIC: nvlist_get_number on missing key maxupdates") != NULL,
	      "NV SET without maxupdates -> EDOOFUS, PANIC line, configuration unchanged");
	nv_destroy(g);
	nv_destroy(nv);

	nv = full_nv("em1", 128, 0, 1400);
	peer = nv_create(0);
	nv_add_number(peer, "af", FBSD_AF_INET);
	nv_add_binary(peer, "address", sin.sin_addr, 4);
	nv_move_nvlist(nv, "syncpeer", peer);
	call = (struct nv_call){nv, 0, 0};
	capture_stderr(run_nv_set, &call, cap, sizeof(cap));
	check(call.ret == -1 && call.err == FBSD_EINVAL && strstr(cap, "malformed syncpeer") != NULL,
	      "NV SET with a 4-byte syncpeer address -> EINVAL (the kernel would silently use the group)");
	nv_destroy(nv);

	nv = full_nv("em1", 128, 0, 1400);
	peer = nv_create(0);
	struct fbsd_sockaddr_in6 sin6 = {.sin6_len = 28, .sin6_family = FBSD_AF_INET6};
	inet_pton(AF_INET6, "2001:db8::77", sin6.sin6_addr);
	nv_add_number(peer, "af", FBSD_AF_INET6);
	nv_add_binary(peer, "address", &sin6, sizeof(sin6));
	nv_move_nvlist(nv, "syncpeer", peer);
	EXPECT_OK(pfsync_nv_set(nv), "NV SET with an IPv6 syncpeer");
	nv_destroy(nv);
	g = pfsync_nv_get(65536, &err, NULL);
	b = NULL;
	blen = 0;
	if (g != NULL && nv_exists_nvlist(g, "syncpeer"))
		b = nv_get_binary(nv_get_nvlist(g, "syncpeer"), "address", &blen);
	check(b != NULL && blen == 28 && b[0] == 28 && b[1] == FBSD_AF_INET6 && memcmp(b + 8, sin6.sin6_addr, 16) == 0 &&
	          nv_get_number(nv_get_nvlist(g, "syncpeer"), "af") == FBSD_AF_INET6,
	      "NV GET returns the IPv6 syncpeer as a 28-byte sockaddr_in6");
	nv_destroy(g);

	c_pfsync_bulk(1);
	int dem = 0;
	sysctl_int("net.inet.carp.demotion", &dem);
	pfsync_legacy_get(&pr);
	check(dem == 240 && pr.pfsyncr_defer == 0, "a pending bulk update clears PFSYNCF_OK and demotes by 240");
	c_pfsync_bulk(0);
	sysctl_int("net.inet.carp.demotion", &dem);
	check(dem == 0, "completing the bulk update removes the demotion");

	c_set_modules(1, 0);
	EXPECT_ERR(pfsync_legacy_get(&pr), FBSD_ENXIO, "SIOCGETPFSYNC without pfsync.ko");
	c_set_modules(1, 1);
}

/* ---- netlink ---- */

struct nlb {
	uint8_t buf[4096];
	size_t len;
};

static void nl_start(struct nlb *b, uint16_t type, uint16_t flags, uint32_t seq, uint8_t cmd)
{
	memset(b, 0, sizeof(*b));
	struct fbsd_nlmsghdr h = {0, type, flags, seq, 0};
	memcpy(b->buf, &h, sizeof(h));
	struct fbsd_genlmsghdr g = {cmd, 1, 0};
	memcpy(b->buf + 16, &g, 4);
	b->len = 20;
	uint32_t l = 20;
	memcpy(b->buf, &l, 4);
}

static void nl_attr(struct nlb *b, uint16_t type, const void *data, size_t len)
{
	struct fbsd_nlattr a = {(uint16_t)(4 + len), type};
	memcpy(b->buf + b->len, &a, 4);
	memcpy(b->buf + b->len + 4, data, len);
	b->len += (4 + len + 3) & ~3u;
	uint32_t l = (uint32_t)b->len;
	memcpy(b->buf, &l, 4);
}

static void nl_u32(struct nlb *b, uint16_t type, uint32_t v)
{
	nl_attr(b, type, &v, 4);
}

struct nl_msg {
	struct fbsd_nlmsghdr h;
	const uint8_t *payload;
	size_t plen;
};

static int nl_split(const uint8_t *buf, size_t len, struct nl_msg *out, int max)
{
	int n = 0;
	size_t off = 0;
	while (off + 16 <= len && n < max) {
		memcpy(&out[n].h, buf + off, 16);
		if (out[n].h.nlmsg_len < 16 || off + out[n].h.nlmsg_len > len)
			break;
		out[n].payload = buf + off + 16;
		out[n].plen = out[n].h.nlmsg_len - 16;
		off += (out[n].h.nlmsg_len + 3) & ~3u;
		n++;
	}
	return n;
}

/* Finds attribute `type` after the genl header; returns its data or NULL. */
static const uint8_t *nl_find(const struct nl_msg *m, uint16_t type, size_t *dlen)
{
	size_t off = 4;
	while (off + 4 <= m->plen) {
		struct fbsd_nlattr a;
		memcpy(&a, m->payload + off, 4);
		if (a.nla_len < 4)
			break;
		if ((a.nla_type & FBSD_NLA_TYPE_MASK) == type) {
			if (dlen)
				*dlen = a.nla_len - 4u;
			return m->payload + off + 4;
		}
		off += (a.nla_len + 3u) & ~3u;
	}
	return NULL;
}

static uint32_t nl_attr_u32(const struct nl_msg *m, uint16_t type, uint32_t dflt)
{
	size_t l = 0;
	const uint8_t *d = nl_find(m, type, &l);
	uint32_t v = dflt;
	if (d != NULL && l == 4)
		memcpy(&v, d, 4);
	return v;
}

static int32_t nl_error_of(const struct nl_msg *m)
{
	int32_t e = -12345;
	if (m->plen >= 4)
		memcpy(&e, m->payload, 4);
	return e;
}

static uint8_t rxbuf[65536];

static int nl_xchg(int fd, struct nlb *b, struct nl_msg *msgs, int max)
{
	if (x_send(fd, b->buf, b->len, 0) != (ssize_t)b->len)
		return -1;
	ssize_t n = x_recv(fd, rxbuf, sizeof(rxbuf), FBSD_MSG_DONTWAIT);
	if (n < 0)
		return -1;
	return nl_split(rxbuf, (size_t)n, msgs, max);
}

static uint16_t resolve_carp(int fd, int32_t *err_out)
{
	struct nlb b;
	struct nl_msg m[4];
	nl_start(&b, FBSD_GENL_ID_CTRL, FBSD_NLM_F_REQUEST, 1, FBSD_CTRL_CMD_GETFAMILY);
	nl_attr(&b, FBSD_CTRL_ATTR_FAMILY_NAME, "carp", 5);
	int n = nl_xchg(fd, &b, m, 4);
	*err_out = 0;
	if (n < 1)
		return 0;
	if (m[0].h.nlmsg_type == FBSD_NLMSG_ERROR) {
		*err_out = nl_error_of(&m[0]);
		return 0;
	}
	size_t l = 0;
	const uint8_t *id = nl_find(&m[0], FBSD_CTRL_ATTR_FAMILY_ID, &l);
	const uint8_t *name = nl_find(&m[0], FBSD_CTRL_ATTR_FAMILY_NAME, NULL);
	uint16_t v = 0;
	if (id != NULL && l == 2 && name != NULL && strcmp((const char *)name, "carp") == 0)
		memcpy(&v, id, 2);
	return v;
}

static void carp_set_msg(struct nlb *b, uint16_t fam, uint32_t seq, const char *ifname, uint32_t vhid)
{
	nl_start(b, fam, FBSD_NLM_F_REQUEST | FBSD_NLM_F_ACK, seq, FBSD_CARP_NL_CMD_SET);
	if (ifname != NULL)
		nl_attr(b, FBSD_CARP_NL_IFNAME, ifname, strlen(ifname) + 1);
	nl_u32(b, FBSD_CARP_NL_VHID, vhid);
}

static void t_netlink(void)
{
	struct nlb b;
	struct nl_msg m[16];
	int32_t err = 0;
	int a = 0, s = 0, base = 0, n = 0;
	reset_all();
	int fd = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC);
	uint16_t fam = resolve_carp(fd, &err);
	check(fam == 0x20, "CTRL_CMD_GETFAMILY \"carp\" -> CTRL_ATTR_FAMILY_ID 0x20 (got 0x%x)", fam);

	nl_start(&b, FBSD_GENL_ID_CTRL, FBSD_NLM_F_REQUEST | FBSD_NLM_F_DUMP, 2, FBSD_CTRL_CMD_GETFAMILY);
	x_send(fd, b.buf, b.len, 0);
	ssize_t pk = x_recv(fd, rxbuf, sizeof(rxbuf), FBSD_MSG_DONTWAIT | FBSD_MSG_PEEK);
	ssize_t rd = x_recv(fd, rxbuf, sizeof(rxbuf), FBSD_MSG_DONTWAIT);
	n = rd > 0 ? nl_split(rxbuf, (size_t)rd, m, 16) : 0;
	check(pk == rd && n == 3 && nl_find(&m[0], FBSD_CTRL_ATTR_FAMILY_NAME, NULL) &&
	          strcmp((const char *)nl_find(&m[1], FBSD_CTRL_ATTR_FAMILY_NAME, NULL), "carp") == 0 &&
	          m[2].h.nlmsg_type == FBSD_NLMSG_DONE,
	      "GETFAMILY without a name dumps nlctrl and carp then NLMSG_DONE; MSG_PEEK leaves the queue");

	carp_set_msg(&b, fam, 10, "em0", 5);
	nl_u32(&b, FBSD_CARP_NL_ADVBASE, 2);
	nl_u32(&b, FBSD_CARP_NL_ADVSKEW, 50);
	nl_attr(&b, FBSD_CARP_NL_KEY, "pw", 2);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && m[0].h.nlmsg_type == FBSD_NLMSG_ERROR && nl_error_of(&m[0]) == 0 && m[0].h.nlmsg_seq == 10 &&
	          m[0].plen == 20,
	      "SET with NLM_F_ACK -> NLMSG_ERROR error 0 echoing the header");
	c_get_vhid("em0", 5, &s, &base, &a);
	check(base == 2 && a == 50, "SET created vhid 5 advbase 2 advskew 50");

	carp_set_msg(&b, fam, 11, "em0", 5);
	nl_u32(&b, FBSD_CARP_NL_ADVBASE, 2);
	n = nl_xchg(fd, &b, m, 16);
	c_get_vhid("em0", 5, &s, &base, &a);
	check(n == 1 && nl_error_of(&m[0]) == 0 && a == 0, "SET without ADVSKEW zero-fills it: advskew 50 -> 0 (T11)");

	carp_set_msg(&b, fam, 12, NULL, 5);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_ENXIO && m[0].h.nlmsg_len == 16 + 4 + b.len,
	      "SET without IFNAME/IFINDEX -> positive ENXIO (6), full request echoed (got %d)", nl_error_of(&m[0]));
	carp_set_msg(&b, fam, 13, "em0", 5);
	nl_attr(&b, FBSD_CARP_NL_KEY, "123456789012345678901", 21);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_EINVAL, "SET with a 21-byte KEY -> EINVAL (22) (got %d)",
	      nl_error_of(&m[0]));
	carp_set_msg(&b, fam, 14, "em0", 6);
	nl_u32(&b, FBSD_CARP_NL_ADVSKEW, 255);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_EINVAL && c_get_vhid("em0", 6, NULL, NULL, NULL) == -1,
	      "SET advskew 255 -> EINVAL; carp_nl_set validates before creating the vhid");
	c_set_uid(1000);
	carp_set_msg(&b, fam, 15, "em0", 5);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_EPERM, "SET as non-root -> EPERM (1)");
	c_set_uid(0);
	carp_set_msg(&b, fam, 16, "lo0", 5);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_EOPNOTSUPP, "SET on lo0 -> EOPNOTSUPP (45)");

	/* index addressing, unicast peer */
	carp_set_msg(&b, fam, 17, NULL, 8);
	nl_u32(&b, FBSD_CARP_NL_IFINDEX, 1);
	nl_u32(&b, FBSD_CARP_NL_ADVSKEW, 80);
	nl_attr(&b, FBSD_CARP_NL_ADDR, "\xc6\x33\x64\x09", 4);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == 0 && dump_has("\"vhid\":8") && dump_has("\"peer\":\"198.51.100.9\""),
	      "SET by IFINDEX with a unicast ADDR peer");
	carp_set_msg(&b, fam, 18, "em0", 8);
	nl_u32(&b, FBSD_CARP_NL_ADVSKEW, 80);
	nl_xchg(fd, &b, m, 16);
	check(dump_has("\"peer\":\"198.51.100.9\""), "an omitted (zero) ADDR keeps the unicast peer");
	carp_set_msg(&b, fam, 19, "em0", 8);
	nl_u32(&b, FBSD_CARP_NL_ADVSKEW, 80);
	nl_attr(&b, FBSD_CARP_NL_ADDR, "\xe0\x00\x00\x12", 4);
	nl_xchg(fd, &b, m, 16);
	check(!dump_has("198.51.100.9") && dump_has("\"peer\":\"224.0.0.18\""), "ADDR 224.0.0.18 returns to multicast");

	/* GET: always multipart */
	nl_start(&b, fam, FBSD_NLM_F_REQUEST, 20, FBSD_CARP_NL_CMD_GET);
	nl_attr(&b, FBSD_CARP_NL_IFNAME, "em0", 4);
	n = nl_xchg(fd, &b, m, 16);
	int32_t done_err = n >= 1 ? nl_error_of(&m[n - 1]) : -1;
	check(n == 3 && (m[0].h.nlmsg_flags & FBSD_NLM_F_MULTI) && (m[1].h.nlmsg_flags & FBSD_NLM_F_MULTI) &&
	          m[2].h.nlmsg_type == FBSD_NLMSG_DONE && done_err == 0 && nl_attr_u32(&m[0], FBSD_CARP_NL_VHID, 0) == 5 &&
	          nl_attr_u32(&m[1], FBSD_CARP_NL_VHID, 0) == 8 && nl_attr_u32(&m[1], FBSD_CARP_NL_ADVSKEW, 0) == 80,
	      "GET without NLM_F_DUMP: one NLM_F_MULTI message per vhid, then NLMSG_DONE (12.7) (%d messages)", n);
	size_t kl = 0;
	const uint8_t *key = n >= 1 ? nl_find(&m[0], FBSD_CARP_NL_KEY, &kl) : NULL;
	size_t al = 0;
	check(key != NULL && kl == 20 && memcmp(key, "pw\0", 3) == 0 && nl_find(&m[0], FBSD_CARP_NL_ADDR, &al) && al == 4,
	      "GET carries KEY (20 bytes) and ADDR for root");
	check(n >= 1 && nl_find(&m[0], FBSD_CARP_NL_VERSION, NULL) == NULL, "14: no VERSION attribute");
	c_set_uid(1000);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 3 && nl_find(&m[0], FBSD_CARP_NL_KEY, NULL) == NULL, "GET as non-root omits KEY");
	c_set_uid(0);

	nl_start(&b, fam, FBSD_NLM_F_REQUEST | FBSD_NLM_F_DUMP | FBSD_NLM_F_ACK, 21, FBSD_CARP_NL_CMD_GET);
	nl_attr(&b, FBSD_CARP_NL_IFNAME, "em0", 4);
	nl_u32(&b, FBSD_CARP_NL_VHID, 8);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 2 && nl_attr_u32(&m[0], FBSD_CARP_NL_VHID, 0) == 8 && m[1].h.nlmsg_type == FBSD_NLMSG_DONE,
	      "GET VHID 8 returns only vhid 8, and no ACK after NLMSG_DONE");
	nl_start(&b, fam, FBSD_NLM_F_REQUEST | FBSD_NLM_F_DUMP, 22, FBSD_CARP_NL_CMD_GET);
	nl_attr(&b, FBSD_CARP_NL_IFNAME, "em0", 4);
	nl_u32(&b, FBSD_CARP_NL_VHID, 9);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && m[0].h.nlmsg_type == FBSD_NLMSG_DONE && nl_error_of(&m[0]) == FBSD_ENOENT,
	      "GET of a missing vhid -> NLMSG_DONE carrying positive ENOENT");
	nl_start(&b, fam, FBSD_NLM_F_REQUEST | FBSD_NLM_F_DUMP, 23, FBSD_CARP_NL_CMD_GET);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && m[0].h.nlmsg_type == FBSD_NLMSG_ERROR && nl_error_of(&m[0]) == FBSD_ENXIO,
	      "GET without an interface -> NLMSG_ERROR ENXIO");

	/* recv semantics */
	nl_start(&b, fam, FBSD_NLM_F_REQUEST, 24, FBSD_CARP_NL_CMD_GET);
	nl_attr(&b, FBSD_CARP_NL_IFNAME, "em0", 4);
	x_send(fd, b.buf, b.len, 0);
	uint8_t small[24];
	ssize_t r1 = x_recv(fd, small, sizeof(small), FBSD_MSG_DONTWAIT);
	ssize_t r2 = x_recv(fd, rxbuf, sizeof(rxbuf), FBSD_MSG_DONTWAIT);
	n = r2 > 0 ? nl_split(rxbuf, (size_t)r2, m, 16) : 0;
	check(r1 == 24 && n == 2 && nl_attr_u32(&m[0], FBSD_CARP_NL_VHID, 0) == 8,
	      "recv into a short buffer truncates the first message and drops its rest");
	EXPECT_ERR(x_recv(fd, rxbuf, sizeof(rxbuf), FBSD_MSG_DONTWAIT), FBSD_EAGAIN, "recv with nothing queued, MSG_DONTWAIT");
	int nb = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW | FBSD_SOCK_NONBLOCK, FBSD_NETLINK_GENERIC);
	EXPECT_ERR(x_recv(nb, rxbuf, sizeof(rxbuf), 0), FBSD_EAGAIN, "recv on an empty SOCK_NONBLOCK socket");
	x_close(nb);

	/* failure injection and counters */
	long sets = c_netlink_count(FBSD_CARP_NL_CMD_SET);
	c_fail_next_netlink(FBSD_CARP_NL_CMD_SET, FBSD_ENOMEM);
	carp_set_msg(&b, fam, 25, "em0", 5);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_ENOMEM && c_netlink_count(FBSD_CARP_NL_CMD_SET) == sets + 1,
	      "fakebsd_fail_next_netlink(SET, ENOMEM) and the SET counter");

	/* 15.x attributes */
	c_set_osreldate(1500068);
	nl_start(&b, fam, FBSD_NLM_F_REQUEST, 26, FBSD_CARP_NL_CMD_GET);
	nl_attr(&b, FBSD_CARP_NL_IFNAME, "em0", 4);
	n = nl_xchg(fd, &b, m, 16);
	size_t vl = 0;
	const uint8_t *ver = n >= 1 ? nl_find(&m[0], FBSD_CARP_NL_VERSION, &vl) : NULL;
	check(ver != NULL && vl == 1 && ver[0] == FBSD_CARP_VERSION_CARP && nl_find(&m[0], FBSD_CARP_NL_VRRP_PRIORITY, NULL) &&
	          nl_find(&m[0], FBSD_CARP_NL_VRRP_ADV_INTER, NULL),
	      "15: GET adds VERSION (2), VRRP_PRIORITY and VRRP_ADV_INTER");
	c_set_osreldate(1400097);

	/* unknown family id, carp not loaded */
	nl_start(&b, 0x55, FBSD_NLM_F_REQUEST, 27, 1);
	n = nl_xchg(fd, &b, m, 16);
	check(n == 1 && nl_error_of(&m[0]) == FBSD_EOPNOTSUPP, "unknown family id -> positive EOPNOTSUPP");
	x_close(fd);
	reset_all();
	c_set_modules(0, 1);
	fd = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC);
	fam = resolve_carp(fd, &err);
	check(fam == 0 && err == FBSD_ENOENT, "GETFAMILY \"carp\" without carp.ko -> NLMSG_ERROR +ENOENT (got %d)", err);
	x_close(fd);
	c_set_modules(1, 1);
}

static void abort_child(void *arg)
{
	(void)arg;
	nvlist_t *n = nv_create(0);
	nv_get_number(n, "missing");
}

static void t_libnv(void)
{
	nvlist_t *n = nv_create(0);
	nv_add_number(n, "a", 1);
	check(nv_error(n) == 0, "nvlist_add_number");
	nv_add_number(n, "a", 2);
	check(nv_error(n) == FBSD_EEXIST, "adding an existing key latches EEXIST");
	size_t len = 0;
	check(nv_pack(n, &len) == NULL, "nvlist_pack returns NULL once an error is latched");
	nv_destroy(n);

	n = nv_create(0);
	nv_add_string(n, "s", "hello");
	nv_add_binary(n, "b", "\x01\x02\x03", 3);
	nvlist_t *c = nv_create(0);
	nv_add_number(c, "x", 42);
	nv_add_nvlist(n, "copy", c);
	nv_add_number(c, "y", 7); /* the copy is independent */
	nv_move_nvlist(n, "moved", c);
	void *buf = nv_pack(n, &len);
	nvlist_t *u = buf ? nv_unpack(buf, len, 0) : NULL;
	size_t bl = 0;
	const uint8_t *bb = u ? nv_get_binary(u, "b", &bl) : NULL;
	check(u != NULL && strcmp(nv_get_string(u, "s"), "hello") == 0 && bl == 3 && bb[2] == 3 &&
	          nv_get_number(nv_get_nvlist(u, "copy"), "x") == 42 &&
	          !nv_exists_number(nv_get_nvlist(u, "copy"), "y") && nv_get_number(nv_get_nvlist(u, "moved"), "y") == 7,
	      "pack/unpack round trip with string, binary, copied and moved nvlists");
	check(nv_exists_string(u, "s") && !nv_exists_number(u, "s") && nv_exists_binary(u, "b") && nv_exists_nvlist(u, "copy"),
	      "nvlist_exists_* check the type");
	nv_free_string(u, "s");
	check(!nv_exists_string(u, "s"), "nvlist_free_string removes the key");
	nv_add_string(u, "s", "again");
	check(nv_error(u) == 0 && strcmp(nv_get_string(u, "s"), "again") == 0, "a freed key can be added again");
	check(nv_unpack(buf, len - 1, 0) == NULL, "nvlist_unpack rejects truncated input");
	x_free(buf); /* through the fake libc's free */
	nv_destroy(u);
	nv_destroy(n);

	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 2);
		abort_child(NULL);
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	check(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "nvlist_get_number on a missing key aborts (T13)");
}

struct thr_arg {
	uint16_t fam;
	int vhid;
	int errors;
};

/* Each thread drives its own vhid over its own netlink socket and ioctl socket. */
static void *thr_main(void *p)
{
	struct thr_arg *a = p;
	int fd = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC);
	int s4 = x_socket(FBSD_AF_INET, FBSD_SOCK_DGRAM, 0);
	uint8_t *rx = malloc(8192);
	struct nlb *b = malloc(sizeof(*b));
	struct nl_msg m[8];
	for (int i = 0; i < 300; i++) {
		carp_set_msg(b, a->fam, (uint32_t)i, "em1", (uint32_t)a->vhid);
		nl_u32(b, FBSD_CARP_NL_ADVSKEW, (uint32_t)(i % 200));
		if (x_send(fd, b->buf, b->len, 0) != (ssize_t)b->len)
			a->errors++;
		ssize_t n = x_recv(fd, rx, 8192, FBSD_MSG_DONTWAIT);
		if (n <= 0 || nl_split(rx, (size_t)n, m, 8) != 1 || nl_error_of(&m[0]) != 0)
			a->errors++;
		struct fbsd_carpreq cr;
		struct fbsd_ifreq ifr;
		memset(&cr, 0, sizeof(cr));
		memset(&ifr, 0, sizeof(ifr));
		strcpy(ifr.ifr_name, "em1");
		ifr.ifr_ifru.data = &cr;
		cr.carpr_vhid = a->vhid;
		cr.carpr_count = 1;
		if (x_ioctl(s4, FBSD_SIOCGVH, &ifr) != 0 || cr.carpr_advskew != i % 200)
			a->errors++;
	}
	free(rx);
	free(b);
	x_close(fd);
	x_close(s4);
	return NULL;
}

static void t_threads(void)
{
	enum { NT = 6 };
	pthread_t th[NT];
	struct thr_arg args[NT];
	int32_t err = 0;
	reset_all();
	int fd = x_socket(FBSD_AF_NETLINK, FBSD_SOCK_RAW, FBSD_NETLINK_GENERIC);
	uint16_t fam = resolve_carp(fd, &err);
	x_close(fd);
	long before = c_netlink_count(FBSD_CARP_NL_CMD_SET);
	for (int i = 0; i < NT; i++) {
		args[i] = (struct thr_arg){fam, 10 + i, 0};
		pthread_create(&th[i], NULL, thr_main, &args[i]);
	}
	int errors = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		errors += args[i].errors;
	}
	int all = 1;
	for (int i = 0; i < NT; i++) {
		int skew = -1;
		all &= c_get_vhid("em1", 10 + i, NULL, NULL, &skew) == 0 && skew == 299 % 200;
	}
	check(errors == 0 && all && c_netlink_count(FBSD_CARP_NL_CMD_SET) == before + NT * 300,
	      "%d threads x 300 netlink SET + SIOCGVH rounds stay consistent (%d errors)", NT, errors);
}

/* pf's status requests on /dev/pf (reference/pf-status.md). */
static void t_pf(void)
{
	reset_all();
	c_pf_set(1, 1, 77, 1000, 300, 223);
	int fd = x_open("/dev/pf", 0 /* O_RDONLY */);
	check(fd >= 0, "open /dev/pf O_RDONLY while pf is loaded (fd %d)", fd);

	struct fbsd_pf_status ps;
	memset(&ps, 0xee, sizeof(ps));
	EXPECT_OK(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUS, &ps), "DIOCGETSTATUS on 14");
	check(ps.running == 1 && ps.states == 77 && ps.fcounters[0] == 1000 && ps.fcounters[1] == 300 &&
	          ps.fcounters[2] == 223 && ps.counters[0] == 0,
	      "DIOCGETSTATUS: running 1, states 77, fcounters 1000/300/223 (got %u %u)", ps.running, ps.states);

	struct fbsd_pfioc_nv nv = {0, 0, 0};
	EXPECT_OK(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUSNV, &nv), "DIOCGETSTATUSNV size probe (size 0)");
	size_t len = nv.len;
	check(len > 0, "the size probe sets len (%zu)", len);
	uint8_t *buf = malloc(len);
	nv = (struct fbsd_pfioc_nv){(uint64_t)(uintptr_t)buf, 0, len - 1};
	EXPECT_ERR(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUSNV, &nv), FBSD_ENOSPC, "DIOCGETSTATUSNV with size < len");
	check(nv.len == 0, "ENOSPC copies nothing back (len %lu)", (unsigned long)nv.len);
	nv.size = len;
	EXPECT_OK(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUSNV, &nv), "DIOCGETSTATUSNV with the probed size");
	nvlist_t *l = nv_unpack(buf, nv.len, 0);
	bool good = l != NULL && nv_exists_bool(l, "running") && nv_get_bool(l, "running") && nv_exists_number(l, "states") &&
	            nv_get_number(l, "states") == 77 && nv_exists_nvlist(l, "fcounters") && nv_exists_number_array(l, "pcounters");
	if (good) {
		size_t n = 0;
		const uint64_t *fc = nv_get_number_array(nv_get_nvlist(l, "fcounters"), "counters", &n);
		good = n == 3 && fc[0] == 1000 && fc[1] == 300 && fc[2] == 223;
	}
	check(good, "the nvlist reply: running true, states 77, fcounters.counters [1000, 300, 223]");
	if (l != NULL)
		nv_destroy(l);
	free(buf);
	EXPECT_ERR(x_ioctl(fd, 0xc0044400UL, &ps), FBSD_EACCES, "another pf request on a read-only descriptor");

	c_set_osreldate(1500045);
	EXPECT_ERR(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUS, &ps), FBSD_EACCES, "DIOCGETSTATUS on 15 (removed)");
	c_set_osreldate(1300139);
	nv = (struct fbsd_pfioc_nv){0, 0, 0};
	EXPECT_ERR(x_ioctl(fd, (unsigned long)FBSD_DIOCGETSTATUSNV, &nv), FBSD_EACCES, "DIOCGETSTATUSNV on 13.0 (not yet)");
	x_close(fd);

	c_pf_set(0, 1, -1, -1, -1, -1);
	EXPECT_ERR(x_open("/dev/pf", 0), FBSD_ENOENT, "open /dev/pf without pf.ko");
	reset_all();
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX];
	if (argc > 1) {
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	} else {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0)
			return 2;
		exe[n] = '\0';
		snprintf(dir, sizeof(dir), "%s", dirname(exe));
	}
	unsetenv("FAKEBSD_STATE"); /* private state: the multi-process checks live in the node test */
	load(dir);
	sock4 = x_socket(FBSD_AF_INET, FBSD_SOCK_DGRAM, 0);
	sock6 = x_socket(FBSD_AF_INET6, FBSD_SOCK_DGRAM, 0);
	if (sock4 < 0 || sock6 < 0) {
		printf("Bail out! cannot create fake sockets\n");
		return 2;
	}
	t_basics();
	t_carp_ioctl();
	t_addresses();
	t_carp_states();
	t_sysctl();
	t_pfsync();
	t_netlink();
	t_libnv();
	t_pf();
	t_threads();
	printf("1..%d\n# %d checks, %d failed\n", n_checks, n_checks, n_failed);
	return n_failed == 0 ? 0 : 1;
}
