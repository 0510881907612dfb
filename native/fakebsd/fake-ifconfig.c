/*
 * fake-ifconfig: one process per change, the way pfSense drives ifconfig(8), but
 * through the fake FreeBSD libc (dlopen'ed, so its symbols never replace this
 * program's own libc). State is shared with other processes via FAKEBSD_STATE.
 *
 *   fake-ifconfig IF vhid N [advbase S] [advskew K] [pass P] [state backup|master]
 *   fake-ifconfig IF inet A[/P] [vhid N] alias      (SIOCAIFADDR)
 *   fake-ifconfig IF inet6 A[/P] [vhid N] alias     (SIOCAIFADDR_IN6)
 *   fake-ifconfig IF inet A -alias                  (SIOCDIFADDR)
 *   fake-ifconfig IF inet6 A -alias                 (SIOCDIFADDR_IN6)
 *   fake-ifconfig IF carp                           (list vhids, SIOCGVH per vhid)
 *   fake-ifconfig -dump                             (fakebsd_dump JSON)
 *
 * Exit status 0 on success; 1 with "ifconfig: <op>: <errno name>" on failure.
 */
#define _GNU_SOURCE
#include "fbsd_abi.h"
#include "fbsd_errnames.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int (*f_socket)(int, int, int);
static int (*f_ioctl)(int, unsigned long, ...);
static int (*f_close)(int);
static int (*f_dump)(char *, size_t);

static void load_lib(void)
{
	char path[PATH_MAX];
	const char *env = getenv("CARPD_FREEBSD_LIBC");
	if (env != NULL && env[0] != '\0') {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		char exe[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0) {
			fprintf(stderr, "ifconfig: cannot locate libfakefreebsd.so\n");
			exit(1);
		}
		exe[n] = '\0';
		snprintf(path, sizeof(path), "%s/libfakefreebsd.so", dirname(exe));
	}
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		fprintf(stderr, "ifconfig: dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	f_socket = (int (*)(int, int, int))dlsym(h, "socket");
	f_ioctl = (int (*)(int, unsigned long, ...))dlsym(h, "ioctl");
	f_close = (int (*)(int))dlsym(h, "close");
	f_dump = (int (*)(char *, size_t))dlsym(h, "fakebsd_dump");
	if (!f_socket || !f_ioctl || !f_close) {
		fprintf(stderr, "ifconfig: %s lacks socket/ioctl/close\n", path);
		exit(1);
	}
}

static void fail(const char *op, int e)
{
	fprintf(stderr, "ifconfig: %s: %s\n", op, fbsd_errname(e));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: fake-ifconfig IF vhid N [advbase S] [advskew K] [pass P] [state backup|master]\n"
	                "       fake-ifconfig IF inet|inet6 ADDR[/PLEN] [vhid N] alias\n"
	                "       fake-ifconfig IF inet|inet6 ADDR -alias\n"
	                "       fake-ifconfig IF carp\n"
	                "       fake-ifconfig -dump\n");
	exit(1);
}

static int open_socket(int family)
{
	int s = f_socket(family, FBSD_SOCK_DGRAM, 0);
	if (s < 0)
		fail("socket", errno);
	return s;
}

static long parse_num(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

static const char *state_name(int s)
{
	return s == FBSD_CARP_MASTER ? "MASTER" : s == FBSD_CARP_BACKUP ? "BACKUP" : "INIT";
}

static int cmd_vhid(const char *ifname, int argc, char **argv)
{
	long vhid = -1, advbase = -1, advskew = -1, state = -1;
	const char *pass = NULL;
	for (int i = 0; i < argc; i += 2) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "vhid") == 0)
			vhid = parse_num(argv[i + 1], 0, 100000);
		else if (strcmp(argv[i], "advbase") == 0)
			advbase = parse_num(argv[i + 1], 0, 100000);
		else if (strcmp(argv[i], "advskew") == 0)
			advskew = parse_num(argv[i + 1], 0, 100000);
		else if (strcmp(argv[i], "pass") == 0)
			pass = argv[i + 1];
		else if (strcmp(argv[i], "state") == 0)
			state = strcmp(argv[i + 1], "master") == 0   ? FBSD_CARP_MASTER
			        : strcmp(argv[i + 1], "backup") == 0 ? FBSD_CARP_BACKUP
			                                             : (usage(), 0);
		else
			usage();
	}
	if (vhid < 0)
		usage();
	int s = open_socket(FBSD_AF_INET);
	struct fbsd_carpreq cr;
	struct fbsd_ifreq ifr;
	memset(&cr, 0, sizeof(cr));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_ifru.data = &cr;
	cr.carpr_vhid = (int32_t)vhid;
	cr.carpr_count = 1;
	/* ifconfig reads the current settings first and ignores ENOENT for a new vhid. */
	if (f_ioctl(s, FBSD_SIOCGVH, &ifr) == -1 && errno != FBSD_ENOENT)
		fail("SIOCGVH", errno);
	if (pass != NULL) {
		memset(cr.carpr_key, 0, sizeof(cr.carpr_key));
		size_t n = strnlen(pass, FBSD_CARP_KEY_LEN - 1); /* strlcpy(..., CARP_KEY_LEN) */
		memcpy(cr.carpr_key, pass, n);
	}
	if (advskew > -1)
		cr.carpr_advskew = (int32_t)advskew;
	if (advbase > -1)
		cr.carpr_advbase = (int32_t)advbase;
	if (state > -1)
		cr.carpr_state = (int32_t)state;
	if (f_ioctl(s, FBSD_SIOCSVH, &ifr) == -1)
		fail("SIOCSVH", errno);
	f_close(s);
	return 0;
}

static int cmd_carp_list(const char *ifname)
{
	int s = open_socket(FBSD_AF_INET);
	for (int v = 1; v <= FBSD_CARP_MAXVHID; v++) {
		struct fbsd_carpreq cr;
		struct fbsd_ifreq ifr;
		memset(&cr, 0, sizeof(cr));
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
		ifr.ifr_ifru.data = &cr;
		cr.carpr_vhid = v;
		cr.carpr_count = 1;
		if (f_ioctl(s, FBSD_SIOCGVH, &ifr) == -1) {
			if (errno == FBSD_ENOENT)
				continue;
			fail("SIOCGVH", errno);
		}
		printf("\tcarp: %s vhid %d advbase %d advskew %d\n", state_name(cr.carpr_state), cr.carpr_vhid,
		       cr.carpr_advbase, cr.carpr_advskew);
	}
	f_close(s);
	return 0;
}

static void split_prefix(char *addr, long *plen, long max)
{
	char *slash = strchr(addr, '/');
	*plen = -1;
	if (slash != NULL) {
		*slash = '\0';
		*plen = parse_num(slash + 1, 0, max);
	}
}

static void fill_mask(uint8_t *out, int bytes, long plen)
{
	memset(out, 0, (size_t)bytes);
	for (long i = 0; i < plen; i++)
		out[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

static int cmd_inet(const char *ifname, int argc, char **argv)
{
	if (argc < 2)
		usage();
	char addr[128];
	snprintf(addr, sizeof(addr), "%s", argv[0]);
	long plen;
	split_prefix(addr, &plen, 32);
	struct fbsd_sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_len = sizeof(sin);
	sin.sin_family = FBSD_AF_INET;
	if (inet_pton(AF_INET, addr, sin.sin_addr) != 1)
		usage();
	int s = open_socket(FBSD_AF_INET);
	if (strcmp(argv[argc - 1], "-alias") == 0) {
		struct fbsd_ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
		ifr.ifr_ifru.addr = sin;
		if (f_ioctl(s, FBSD_SIOCDIFADDR, &ifr) == -1)
			fail("SIOCDIFADDR", errno);
		f_close(s);
		return 0;
	}
	long vhid = 0;
	int i = 1;
	if (argc - i >= 2 && strcmp(argv[i], "vhid") == 0) {
		vhid = parse_num(argv[i + 1], -1000, 100000);
		i += 2;
	}
	if (i != argc - 1 || strcmp(argv[i], "alias") != 0)
		usage();
	struct fbsd_in_aliasreq ifra;
	memset(&ifra, 0, sizeof(ifra));
	snprintf(ifra.ifra_name, sizeof(ifra.ifra_name), "%s", ifname);
	ifra.ifra_addr = sin;
	if (plen >= 0) {
		ifra.ifra_mask.sin_len = sizeof(ifra.ifra_mask);
		ifra.ifra_mask.sin_family = FBSD_AF_INET;
		fill_mask(ifra.ifra_mask.sin_addr, 4, plen);
	}
	ifra.ifra_vhid = (int32_t)vhid;
	if (f_ioctl(s, FBSD_SIOCAIFADDR, &ifra) == -1)
		fail("SIOCAIFADDR", errno);
	f_close(s);
	return 0;
}

static int cmd_inet6(const char *ifname, int argc, char **argv)
{
	if (argc < 2)
		usage();
	char addr[128];
	snprintf(addr, sizeof(addr), "%s", argv[0]);
	long plen;
	split_prefix(addr, &plen, 128);
	struct fbsd_sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_len = sizeof(sin6);
	sin6.sin6_family = FBSD_AF_INET6;
	if (inet_pton(AF_INET6, addr, sin6.sin6_addr) != 1) /* Linux AF_INET6 for the parser only */
		usage();
	int s = open_socket(FBSD_AF_INET6);
	if (strcmp(argv[argc - 1], "-alias") == 0) {
		struct fbsd_in6_ifreq ifr;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
		ifr.ifr_ifru.addr = sin6;
		if (f_ioctl(s, FBSD_SIOCDIFADDR_IN6, &ifr) == -1)
			fail("SIOCDIFADDR_IN6", errno);
		f_close(s);
		return 0;
	}
	long vhid = 0;
	int i = 1;
	if (argc - i >= 2 && strcmp(argv[i], "vhid") == 0) {
		vhid = parse_num(argv[i + 1], -1000, 100000);
		i += 2;
	}
	if (i != argc - 1 || strcmp(argv[i], "alias") != 0)
		usage();
	struct fbsd_in6_aliasreq ifra;
	memset(&ifra, 0, sizeof(ifra));
	snprintf(ifra.ifra_name, sizeof(ifra.ifra_name), "%s", ifname);
	ifra.ifra_addr = sin6;
	ifra.ifra_prefixmask.sin6_len = sizeof(ifra.ifra_prefixmask);
	ifra.ifra_prefixmask.sin6_family = FBSD_AF_INET6;
	fill_mask(ifra.ifra_prefixmask.sin6_addr, 16, plen >= 0 ? plen : 64);
	ifra.ifra_lifetime.ia6t_vltime = 0xffffffffu; /* ND6_INFINITE_LIFETIME, as ifconfig */
	ifra.ifra_lifetime.ia6t_pltime = 0xffffffffu;
	ifra.ifra_vhid = (int32_t)vhid;
	if (f_ioctl(s, FBSD_SIOCAIFADDR_IN6, &ifra) == -1)
		fail("SIOCAIFADDR_IN6", errno);
	f_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	load_lib();
	if (strcmp(argv[1], "-dump") == 0) {
		if (f_dump == NULL)
			usage();
		int n = f_dump(NULL, 0);
		char *buf = malloc((size_t)n + 1);
		if (buf == NULL)
			return 1;
		f_dump(buf, (size_t)n + 1);
		printf("%s\n", buf);
		free(buf);
		return 0;
	}
	if (argc < 3)
		usage();
	const char *ifname = argv[1];
	if (strcmp(argv[2], "vhid") == 0)
		return cmd_vhid(ifname, argc - 2, argv + 2);
	if (strcmp(argv[2], "carp") == 0 && argc == 3)
		return cmd_carp_list(ifname);
	if (strcmp(argv[2], "inet") == 0)
		return cmd_inet(ifname, argc - 3, argv + 3);
	if (strcmp(argv[2], "inet6") == 0)
		return cmd_inet6(ifname, argc - 3, argv + 3);
	usage();
	return 1;
}
