/*
 * Control API of libfakefreebsd.so, for tests and benchmarks. Not part of FreeBSD.
 * Functions return 0 (or a count) on success and -1 with errno set to a FreeBSD
 * errno value on failure.
 */
#ifndef FAKEBSD_CONTROL_H
#define FAKEBSD_CONTROL_H

#include <stddef.h>

int fakebsd_reset(void);
int fakebsd_reboot(void);
int fakebsd_add_interface(const char *name, int flags);
int fakebsd_remove_interface(const char *name);
int fakebsd_set_interface_flags(const char *name, int flags);
int fakebsd_set_osreldate(int v);
int fakebsd_set_modules(int carp, int pfsync);
int fakebsd_set_uid(int uid);
int fakebsd_set_vhid_state(const char *ifname, int vhid, int state);
int fakebsd_get_vhid(const char *ifname, int vhid, int *state, int *advbase, int *advskew);
int fakebsd_fail_next(unsigned long request, int fbsd_errno);
int fakebsd_fail_next_netlink(int carp_cmd, int fbsd_errno);
long fakebsd_ioctl_count(unsigned long request);
long fakebsd_netlink_count(int cmd);
long fakebsd_sysctl_count(void);
int fakebsd_pfsync_bulk(int pending);
int fakebsd_pf_set(int loaded, int running, long states, long searches, long inserts, long removals);
long fakebsd_events(unsigned long after, char *buf, size_t len);
int fakebsd_dump(char *buf, size_t len);

#endif
