/* FreeBSD errno names, for messages from the test tools. */
#ifndef FBSD_ERRNAMES_H
#define FBSD_ERRNAMES_H

static inline const char *fbsd_errname(int e)
{
	switch (e) {
	case 0: return "0";
	case 1: return "EPERM";
	case 2: return "ENOENT";
	case 3: return "ESRCH";
	case 4: return "EINTR";
	case 5: return "EIO";
	case 6: return "ENXIO";
	case 7: return "E2BIG";
	case 9: return "EBADF";
	case 12: return "ENOMEM";
	case 13: return "EACCES";
	case 14: return "EFAULT";
	case 16: return "EBUSY";
	case 17: return "EEXIST";
	case 19: return "ENODEV";
	case 22: return "EINVAL";
	case 23: return "ENFILE";
	case 24: return "EMFILE";
	case 25: return "ENOTTY";
	case 27: return "EFBIG";
	case 28: return "ENOSPC";
	case 35: return "EAGAIN";
	case 38: return "ENOTSOCK";
	case 39: return "EDESTADDRREQ";
	case 40: return "EMSGSIZE";
	case 41: return "EPROTOTYPE";
	case 42: return "ENOPROTOOPT";
	case 43: return "EPROTONOSUPPORT";
	case 45: return "EOPNOTSUPP";
	case 46: return "EPFNOSUPPORT";
	case 47: return "EAFNOSUPPORT";
	case 48: return "EADDRINUSE";
	case 49: return "EADDRNOTAVAIL";
	case 55: return "ENOBUFS";
	case 78: return "ENOSYS";
	case 88: return "EDOOFUS";
	default: return "EUNKNOWN";
	}
}

#endif
