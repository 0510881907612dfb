/*
 * socket(2)/close(2)/send(2)/recv(2)/if_nametoindex(3) with FreeBSD semantics.
 *
 * A fake socket is a real file descriptor (an open /dev/null, so numbers are unique
 * and close-on-exec works) plus an entry in a per-process table. Netlink sockets
 * keep their pending replies here; the kernel state they act on is shared.
 */
#define _GNU_SOURCE
#include "fakebsd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#define FK_MAX_SOCKS 256

struct fk_sock {
	int fd; /* -1 = free slot */
	int domain;
	int type;
	int protocol;
	int nonblock;
	uint32_t port;
	struct fk_buf rx; /* whole netlink messages, back to back */
	size_t rx_off;
};

static pthread_mutex_t fk_sock_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fk_sock fk_socks[FK_MAX_SOCKS];
static int fk_socks_ready;
static uint32_t fk_next_port;

static void fk_socks_init(void)
{
	if (fk_socks_ready)
		return;
	for (int i = 0; i < FK_MAX_SOCKS; i++)
		fk_socks[i].fd = -1;
	fk_socks_ready = 1;
}

static struct fk_sock *fk_sock_find(int fd)
{
	fk_socks_init();
	if (fd < 0)
		return NULL;
	for (int i = 0; i < FK_MAX_SOCKS; i++)
		if (fk_socks[i].fd == fd)
			return &fk_socks[i];
	return NULL;
}

int fk_fd_valid(int fd)
{
	return fd >= 0 && syscall(SYS_fcntl, fd, F_GETFD) != -1;
}

int fk_sock_info(int fd, struct fk_sockinfo *out)
{
	pthread_mutex_lock(&fk_sock_mu);
	struct fk_sock *s = fk_sock_find(fd);
	if (s != NULL) {
		out->domain = s->domain;
		out->type = s->type;
		out->protocol = s->protocol;
	}
	pthread_mutex_unlock(&fk_sock_mu);
	return s != NULL;
}

void fk_buf_free(struct fk_buf *b)
{
	fk_real_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int fk_fail(int err)
{
	errno = err;
	return -1;
}

FK_EXPORT int socket(int domain, int type, int protocol)
{
	int saved = errno;
	int flags = type & (FBSD_SOCK_CLOEXEC | FBSD_SOCK_NONBLOCK);
	int base = type & ~(FBSD_SOCK_CLOEXEC | FBSD_SOCK_NONBLOCK);

	if (domain == FBSD_AF_INET || domain == FBSD_AF_INET6) {
		/* Only the datagram "ioctl socket" is modelled. */
		if (base != FBSD_SOCK_DGRAM || (protocol != 0 && protocol != 17))
			return fk_fail(FBSD_EPROTONOSUPPORT);
	} else if (domain == FBSD_AF_NETLINK) {
		struct fk_state *st = fk_lock();
		int osrel = st->osreldate;
		fk_unlock();
		if (osrel < FBSD_OSREL_14)
			return fk_fail(FBSD_EAFNOSUPPORT); /* no netlink(4) before 14.0 */
		if (base != FBSD_SOCK_RAW && base != FBSD_SOCK_DGRAM)
			return fk_fail(FBSD_EPROTOTYPE);
		if (protocol != FBSD_NETLINK_GENERIC)
			return fk_fail(FBSD_EPROTONOSUPPORT); /* NETLINK_ROUTE is not faked */
	} else {
		return fk_fail(FBSD_EAFNOSUPPORT);
	}

	int oflags = O_RDWR | ((flags & FBSD_SOCK_CLOEXEC) ? O_CLOEXEC : 0);
	long fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", oflags);
	if (fd < 0)
		return fk_fail(errno == EMFILE ? FBSD_EMFILE : errno == ENFILE ? FBSD_ENFILE : FBSD_ENOBUFS);

	pthread_mutex_lock(&fk_sock_mu);
	fk_socks_init();
	struct fk_sock *s = NULL;
	for (int i = 0; i < FK_MAX_SOCKS; i++)
		if (fk_socks[i].fd < 0) {
			s = &fk_socks[i];
			break;
		}
	if (s == NULL) {
		pthread_mutex_unlock(&fk_sock_mu);
		syscall(SYS_close, (int)fd);
		return fk_fail(FBSD_EMFILE);
	}
	memset(s, 0, sizeof(*s));
	s->fd = (int)fd;
	s->domain = domain;
	s->type = base;
	s->protocol = protocol;
	s->nonblock = (flags & FBSD_SOCK_NONBLOCK) != 0;
	/* Autobound port id: the pid for the first socket, then unique values. */
	s->port = (uint32_t)getpid() + (fk_next_port++ << 22);
	pthread_mutex_unlock(&fk_sock_mu);
	errno = saved;
	return (int)fd;
}

FK_EXPORT int close(int fd)
{
	pthread_mutex_lock(&fk_sock_mu);
	struct fk_sock *s = fk_sock_find(fd);
	if (s != NULL) {
		fk_buf_free(&s->rx);
		s->fd = -1;
	}
	pthread_mutex_unlock(&fk_sock_mu);
	/* Descriptors we did not create are closed for real as well. */
	if (syscall(SYS_close, fd) != 0)
		return fk_fail(errno == EBADF ? FBSD_EBADF : errno == EINTR ? FBSD_EINTR : FBSD_EIO);
	return 0;
}

static int fk_not_ours(int fd)
{
	return fk_fail(fk_fd_valid(fd) ? FBSD_ENOTSOCK : FBSD_EBADF);
}

FK_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	(void)flags;
	int saved = errno;
	pthread_mutex_lock(&fk_sock_mu);
	struct fk_sock *s = fk_sock_find(fd);
	if (s == NULL) {
		pthread_mutex_unlock(&fk_sock_mu);
		return fk_not_ours(fd);
	}
	if (s->domain != FBSD_AF_NETLINK) {
		pthread_mutex_unlock(&fk_sock_mu);
		return fk_fail(FBSD_EDESTADDRREQ); /* unconnected datagram socket */
	}
	if (buf == NULL && len > 0) {
		pthread_mutex_unlock(&fk_sock_mu);
		return fk_fail(FBSD_EFAULT);
	}
	uint32_t port = s->port;
	struct fk_buf out = {0};
	pthread_mutex_unlock(&fk_sock_mu);

	/* Lock order: kernel state, then the socket table (never the reverse). */
	struct fk_state *st = fk_lock();
	fk_netlink_process(st, port, buf, len, &out);
	fk_unlock();

	pthread_mutex_lock(&fk_sock_mu);
	s = fk_sock_find(fd);
	if (s != NULL && out.len > 0) {
		/* Drop the consumed prefix, then append. */
		if (s->rx_off > 0) {
			memmove(s->rx.data, s->rx.data + s->rx_off, s->rx.len - s->rx_off);
			s->rx.len -= s->rx_off;
			s->rx_off = 0;
		}
		if (s->rx.len + out.len > s->rx.cap) {
			size_t ncap = s->rx.cap ? s->rx.cap : 4096;
			while (ncap < s->rx.len + out.len)
				ncap *= 2;
			uint8_t *nd = realloc(s->rx.data, ncap);
			if (nd == NULL) {
				pthread_mutex_unlock(&fk_sock_mu);
				fk_buf_free(&out);
				return fk_fail(FBSD_ENOBUFS);
			}
			s->rx.data = nd;
			s->rx.cap = ncap;
		}
		memcpy(s->rx.data + s->rx.len, out.data, out.len);
		s->rx.len += out.len;
	}
	pthread_mutex_unlock(&fk_sock_mu);
	fk_buf_free(&out);
	errno = saved;
	return (ssize_t)len;
}

static uint32_t fk_msg_len_at(const uint8_t *p, size_t avail)
{
	if (avail < sizeof(struct fbsd_nlmsghdr))
		return (uint32_t)avail;
	uint32_t l;
	memcpy(&l, p, 4);
	l = (l + 3u) & ~3u;
	if (l < sizeof(struct fbsd_nlmsghdr) || l > avail)
		return (uint32_t)avail;
	return l;
}

FK_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	int saved = errno;
	pthread_mutex_lock(&fk_sock_mu);
	struct fk_sock *s = fk_sock_find(fd);
	if (s == NULL) {
		pthread_mutex_unlock(&fk_sock_mu);
		return fk_not_ours(fd);
	}
	size_t avail = s->rx.len - s->rx_off;
	if (avail == 0) {
		int nonblock = s->nonblock || (flags & FBSD_MSG_DONTWAIT);
		pthread_mutex_unlock(&fk_sock_mu);
		if (!nonblock)
			fprintf(stderr, "fakebsd: recv(%d) on an empty blocking socket would block forever; "
			                "returning EAGAIN\n", fd);
		return fk_fail(FBSD_EAGAIN);
	}
	if (buf == NULL && len > 0) {
		pthread_mutex_unlock(&fk_sock_mu);
		return fk_fail(FBSD_EFAULT);
	}
	/* Whole messages while they fit; a first message that does not fit is truncated. */
	const uint8_t *src = s->rx.data + s->rx_off;
	size_t take = 0;
	size_t consumed = 0;
	while (consumed < avail) {
		uint32_t ml = fk_msg_len_at(src + consumed, avail - consumed);
		if (take + ml > len) {
			if (take == 0) {
				take = len;
				consumed = ml;
			}
			break;
		}
		take += ml;
		consumed += ml;
	}
	if (take > 0)
		memcpy(buf, src, take);
	if (!(flags & FBSD_MSG_PEEK)) {
		s->rx_off += consumed;
		if (s->rx_off == s->rx.len)
			s->rx_off = s->rx.len = 0;
	}
	pthread_mutex_unlock(&fk_sock_mu);
	errno = saved;
	return (ssize_t)take;
}

FK_EXPORT unsigned int if_nametoindex(const char *name)
{
	int saved = errno;
	struct fk_state *st = fk_lock();
	struct fk_if *ifp = fk_if_by_name(st, name);
	unsigned int idx = ifp ? (unsigned int)ifp->index : 0;
	fk_unlock();
	if (idx == 0) {
		errno = FBSD_ENXIO;
		return 0;
	}
	errno = saved;
	return idx;
}

/*
 * open(2) with FreeBSD flags for "/dev/pf" (a fake descriptor while pf is loaded, ENOENT
 * otherwise: no pf.ko, no /dev/pf). Every other path is opened for real with the flags as
 * given (the fake's own state file).
 */
FK_EXPORT int open(const char *path, int flags, ...)
{
	if (strcmp(path, "/dev/pf") != 0) {
		int mode = 0;
		if (flags & O_CREAT) {
			__builtin_va_list ap;
			__builtin_va_start(ap, flags);
			mode = __builtin_va_arg(ap, int);
			__builtin_va_end(ap);
		}
		long rc = syscall(SYS_openat, AT_FDCWD, path, flags, mode);
		return (int)rc;
	}
	int saved = errno;
	struct fk_state *st = fk_lock();
	int loaded = st->pf_loaded;
	fk_unlock();
	if (!loaded)
		return fk_fail(FBSD_ENOENT);
	long fd = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | ((flags & FBSD_O_CLOEXEC) ? O_CLOEXEC : 0));
	if (fd < 0)
		return fk_fail(errno == EMFILE ? FBSD_EMFILE : FBSD_ENFILE);
	pthread_mutex_lock(&fk_sock_mu);
	fk_socks_init();
	struct fk_sock *s = NULL;
	for (int i = 0; i < FK_MAX_SOCKS; i++)
		if (fk_socks[i].fd < 0) {
			s = &fk_socks[i];
			break;
		}
	if (s == NULL) {
		pthread_mutex_unlock(&fk_sock_mu);
		syscall(SYS_close, (int)fd);
		return fk_fail(FBSD_EMFILE);
	}
	memset(s, 0, sizeof(*s));
	s->fd = (int)fd;
	s->domain = FK_DOMAIN_DEVPF;
	s->type = flags & FBSD_O_ACCMODE;
	pthread_mutex_unlock(&fk_sock_mu);
	errno = saved;
	return (int)fd;
}

FK_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	__builtin_va_list ap;
	__builtin_va_start(ap, request);
	void *arg = __builtin_va_arg(ap, void *);
	__builtin_va_end(ap);

	int saved = errno;
	struct fk_sockinfo so;
	if (!fk_sock_info(fd, &so))
		return fk_fail(fk_fd_valid(fd) ? FBSD_ENOTTY : FBSD_EBADF);
	if (request > 0xffffffffUL)
		fprintf(stderr, "fakebsd: WARNING ioctl sign-extension ioctl %lx (pass the request as an unsigned "
		                "32-bit value widened to u_long)\n", request);
	uint32_t req = (uint32_t)request;

	struct fk_state *st = fk_lock();
	int err = fk_ioctl(st, &so, req, arg);
	fk_unlock();
	if (err != 0)
		return fk_fail(err);
	errno = saved;
	return 0;
}
